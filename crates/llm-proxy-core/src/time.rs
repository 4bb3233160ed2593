//! [`UnixMillis`]: the one type for a wall-clock instant (when a request was logged, a key expires,
//! a budget window ends, a breaker opened). Lengths of time stay [`Duration`]s.
//!
//! Instants are converted to bare integers only at the edges: SQL binds and reads
//! ([`UnixMillis::to_i64`], [`UnixMillis::from_i64`]), Redis script arguments
//! ([`UnixMillis::as_millis`]), and JSON (serde writes the bare integer).

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A wall-clock instant: milliseconds since 1970-01-01T00:00:00Z (UTC, leap seconds ignored, as
/// Unix time does).
///
/// Unsigned because no instant the gateway handles is before 1970 (a system clock set that far
/// back reads as the epoch), and because the hot paths keep instants in `AtomicU64`s (breakers) and
/// pass them to Redis scripts that expect non-negative numbers. The databases store a signed
/// BIGINT / INTEGER (and chrono counts in `i64`): [`Self::from_i64`] and [`Self::to_i64`] convert at
/// that boundary and saturate rather than fail (a negative column reads as the epoch; nothing
/// before the year 292 million overflows `i64`).
///
/// Arithmetic with a [`Duration`] saturates too (at the epoch and at [`Self::MAX`]), and drops
/// sub-millisecond parts: an instant is never worth a panic.
///
/// Serialized as a bare integer, so every JSON shape reads `"created_at": 1700000000000`.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(u64);

impl UnixMillis {
    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: Self = Self(0);
    /// The latest representable instant; sums saturate here.
    pub const MAX: Self = Self(u64::MAX);

    /// The system clock, now. One `clock_gettime`, no allocation: as cheap as the `i64` it replaces.
    pub fn now() -> Self {
        // A clock before 1970 is misconfigured; reading it as the epoch keeps every comparison
        // defined (keys look expired, windows look ended) without an error path on every request.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(Self::EPOCH, |d| Self(millis(d)))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// From a signed integer, as a database column holds it: a negative value, which this gateway
    /// never writes, reads as the epoch rather than failing the whole row.
    pub fn from_i64(value: i64) -> Self {
        Self(u64::try_from(value).unwrap_or(0))
    }

    /// As a signed integer, for a database column or chrono: beyond `i64::MAX` saturates there.
    pub fn to_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn saturating_sub(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, or `None` past [`Self::MAX`].
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        u64::try_from(d.as_millis()).ok().and_then(|ms| self.0.checked_add(ms)).map(Self)
    }
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Saturates at [`UnixMillis::MAX`].
impl Add<Duration> for UnixMillis {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(millis(d)))
    }
}

impl AddAssign<Duration> for UnixMillis {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

/// Saturates at [`UnixMillis::EPOCH`].
impl Sub<Duration> for UnixMillis {
    type Output = Self;

    fn sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(millis(d)))
    }
}

impl SubAssign<Duration> for UnixMillis {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
    }
}

/// The bare integer, as in JSON, log cursors and log lines.
impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// `UnixMillis(1700000000000)`: says which type the number is when a test or log line shows it.
impl fmt::Debug for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixMillis").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMillis = UnixMillis::from_millis(1_700_000_000_000);

    #[test]
    fn signed_integers_saturate_instead_of_failing() {
        assert_eq!(UnixMillis::from_i64(-1), UnixMillis::EPOCH);
        assert_eq!(UnixMillis::from_i64(i64::MIN), UnixMillis::EPOCH);
        assert_eq!(UnixMillis::from_i64(0), UnixMillis::EPOCH);
        assert_eq!(UnixMillis::from_i64(i64::MAX).as_millis(), i64::MAX as u64);
        assert_eq!(UnixMillis::MAX.to_i64(), i64::MAX);
        assert_eq!(UnixMillis::from_millis(i64::MAX as u64 + 1).to_i64(), i64::MAX);
        assert_eq!(UnixMillis::from_i64(T.to_i64()), T);
    }

    #[test]
    fn arithmetic_with_durations_saturates_at_both_ends() {
        assert_eq!(T + Duration::from_millis(5), UnixMillis::from_millis(1_700_000_000_005));
        assert_eq!(T - Duration::from_secs(1), UnixMillis::from_millis(1_699_999_999_000));
        assert_eq!(UnixMillis::from_millis(5) - Duration::from_millis(6), UnixMillis::EPOCH);
        assert_eq!(UnixMillis::MAX + Duration::from_millis(1), UnixMillis::MAX);
        assert_eq!(T + Duration::MAX, UnixMillis::MAX);
        assert_eq!(T - Duration::MAX, UnixMillis::EPOCH);
        assert_eq!(T + Duration::from_micros(1_999), T + Duration::from_millis(1), "sub-ms parts are dropped");
        let mut t = T;
        t += Duration::from_secs(2);
        t -= Duration::from_secs(1);
        assert_eq!(t, T + Duration::from_secs(1));
        assert_eq!(T.checked_add(Duration::from_millis(1)), Some(UnixMillis::from_millis(1_700_000_000_001)));
        assert_eq!(UnixMillis::MAX.checked_add(Duration::from_millis(1)), None);
        assert_eq!(T.checked_add(Duration::MAX), None);
    }

    #[test]
    fn the_span_between_two_instants_is_never_negative() {
        let later = T + Duration::from_millis(1_500);
        assert_eq!(later.saturating_sub(T), Duration::from_millis(1_500));
        assert_eq!(T.saturating_sub(later), Duration::ZERO);
        assert_eq!(UnixMillis::MAX.saturating_sub(UnixMillis::EPOCH), Duration::from_millis(u64::MAX));
        assert!(T < later && later > UnixMillis::EPOCH && UnixMillis::MAX > later);
    }

    #[test]
    fn serde_and_display_write_the_bare_integer() {
        assert_eq!(serde_json::to_string(&T).unwrap(), "1700000000000");
        assert_eq!(serde_json::to_string(&Some(T)).unwrap(), "1700000000000");
        assert_eq!(serde_json::to_string(&UnixMillis::MAX).unwrap(), u64::MAX.to_string());
        assert_eq!(serde_json::from_str::<UnixMillis>("1700000000000").unwrap(), T);
        assert!(serde_json::from_str::<UnixMillis>("-1").is_err(), "no instant before 1970");
        assert_eq!(T.to_string(), "1700000000000");
        assert_eq!(format!("{T:?}"), "UnixMillis(1700000000000)");
    }

    #[test]
    fn now_is_after_the_type_was_written() {
        // 2025-01-01T00:00:00Z: a clock reading earlier is not this machine's.
        assert!(UnixMillis::now() > UnixMillis::from_millis(1_735_689_600_000));
    }
}
