//! [`Window`]: the span a limit counts over, and the UTC calendar arithmetic behind budget windows
//! (no date crate: three small, well-known conversions are all it takes).

use crate::UnixMillis;

const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;

/// The span a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Rolling: rate limits (GCRA over 60 s).
    Minute,
    /// Calendar windows in UTC: budgets.
    Hour,
    Day,
    Month,
}

impl Window {
    /// As in counter keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// As in messages: "the key's daily budget".
    pub fn adjective(self) -> &'static str {
        match self {
            Self::Minute => "per-minute",
            Self::Hour => "hourly",
            Self::Day => "daily",
            Self::Month => "monthly",
        }
    }

    /// The UTC calendar window that contains `now`: its name (`2026-11-22T13`, `2026-11-22`,
    /// `2026-11`) and when it ends (exclusive). `None` for the rolling `Minute`.
    pub fn calendar(self, now: UnixMillis) -> Option<(String, UnixMillis)> {
        let now_ms = now.as_millis();
        let days = now_ms / MS_PER_DAY;
        let (y, m, d) = civil_from_days(days);
        let (name, end_ms) = match self {
            Self::Minute => return None,
            Self::Hour => {
                let hour = now_ms % MS_PER_DAY / MS_PER_HOUR;
                (format!("{y:04}-{m:02}-{d:02}T{hour:02}"), (now_ms / MS_PER_HOUR + 1) * MS_PER_HOUR)
            }
            Self::Day => (format!("{y:04}-{m:02}-{d:02}"), (days + 1) * MS_PER_DAY),
            Self::Month => {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (format!("{y:04}-{m:02}"), days_from_civil(ny, nm, 1) * MS_PER_DAY)
            }
        };
        Some((name, UnixMillis::from_millis(end_ms)))
    }
}

/// `2026-11-23T00:00:00Z`.
pub(crate) fn format_utc(t: UnixMillis) -> String {
    let ms = t.as_millis();
    let (y, m, d) = civil_from_days(ms / MS_PER_DAY);
    let secs = ms % MS_PER_DAY / 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// (year, month 1–12, day 1–31) of the given day since 1970-01-01, in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shifted so years start on 1 March (the leap day ends the year) and eras of 400 years
    // start at 0000-03-01, 719,468 days before the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The inverse: days since 1970-01-01 of a date on or after it.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T13:45:30Z
    const T: u64 = 1_795_355_130_000;

    fn at(ms: u64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    #[test]
    fn calendar_windows_name_and_end_where_utc_says() {
        assert_eq!(Window::Hour.calendar(at(T)), Some(("2026-11-22T13".into(), at(1_795_356_000_000))));
        assert_eq!(Window::Day.calendar(at(T)), Some(("2026-11-22".into(), at(1_795_392_000_000))));
        assert_eq!(Window::Month.calendar(at(T)), Some(("2026-11".into(), at(1_796_083_200_000))));
        assert_eq!(Window::Minute.calendar(at(T)), None);
    }

    #[test]
    fn the_last_millisecond_of_a_year_belongs_to_it_and_the_next_starts_a_new_one() {
        // 2025-12-31T23:59:59.999Z and 2026-01-01T00:00:00Z.
        let last = 1_767_225_599_999;
        let new_year = 1_767_225_600_000;
        assert_eq!(Window::Hour.calendar(at(last)), Some(("2025-12-31T23".into(), at(new_year))));
        assert_eq!(Window::Day.calendar(at(last)), Some(("2025-12-31".into(), at(new_year))));
        assert_eq!(Window::Month.calendar(at(last)), Some(("2025-12".into(), at(new_year))));
        assert_eq!(Window::Hour.calendar(at(new_year)), Some(("2026-01-01T00".into(), at(new_year + MS_PER_HOUR))));
        assert_eq!(Window::Month.calendar(at(new_year)), Some(("2026-01".into(), at(new_year + 31 * MS_PER_DAY))));
    }

    #[test]
    fn february_has_its_leap_day() {
        // 2024-02-01 → March starts 29 days later; 2024-02-29 is a day of its own.
        let feb = 1_706_745_600_000;
        let march = 1_709_251_200_000;
        assert_eq!(Window::Month.calendar(at(feb)), Some(("2024-02".into(), at(march))));
        assert_eq!(Window::Day.calendar(at(march - 1)), Some(("2024-02-29".into(), at(march))));
        assert_eq!(format_utc(at(march)), "2024-03-01T00:00:00Z");
        assert_eq!(format_utc(at(T)), "2026-11-22T13:45:30Z");
        assert_eq!(format_utc(at(0)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn day_conversions_round_trip() {
        for days in (0..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
