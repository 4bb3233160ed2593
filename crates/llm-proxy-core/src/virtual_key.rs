//! Virtual keys: what a client presents instead of a provider key.
//!
//! A key is 256 bits of OS randomness, shown once at creation. Only its SHA-256 is stored: a
//! random 256-bit secret needs no slow hash, and SHA-256 keeps the per-request check in nanoseconds.

use std::time::Duration;

use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::UnixMillis;

/// Every virtual key starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "sk-llmp-";
/// 43 base62 characters carry 256 bits.
const KEY_RANDOM_CHARS: usize = 43;
/// How much of the key is kept in clear to tell keys apart in listings.
const DISPLAY_CHARS: usize = KEY_PREFIX.len() + 4;

/// SHA-256 of a presented key.
pub type KeyHash = [u8; 32];

pub fn hash_key(secret: &str) -> KeyHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// A freshly generated key: the secret (to print once) and what the store keeps.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: KeyHash,
    /// e.g. `sk-llmp-AbCd…`, safe to show.
    pub display: String,
}

pub fn generate_key() -> GeneratedKey {
    let random: String = OsRng.sample_iter(&Alphanumeric).take(KEY_RANDOM_CHARS).map(char::from).collect();
    let secret = format!("{KEY_PREFIX}{random}");
    let hash = hash_key(&secret);
    let display = format!("{}…", &secret[..DISPLAY_CHARS]);
    GeneratedKey { secret, hash, display }
}

/// A virtual key as stored. `Debug` is safe: it holds no secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub hash: KeyHash,
    /// The first characters of the key, for humans to tell keys apart.
    pub display: String,
    /// Model names this key may use; empty means all.
    pub models: Vec<String>,
    pub user: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub expires_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
    /// This key's own limits; unset ones fall back to the config's `rate_limits` / `cost_budget`.
    pub limits: KeyLimits,
}

/// Limits set on one key (`keys create --rpm --tpm --budget-*`). Stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Requests of this key in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// USD per calendar hour / day / month (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_hourly: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_daily: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_monthly: Option<f64>,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The first field that cannot be a limit, and why: a count of 0 (leave it out for none) or
    /// a budget that is not a positive amount.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        for (field, zero) in
            [("rpm", self.rpm == Some(0)), ("tpm", self.tpm == Some(0)), ("max_parallel", self.max_parallel == Some(0))]
        {
            if zero {
                return Err((field, "must be at least 1 (leave it out for no limit)"));
            }
        }
        for (field, v) in [
            ("budget_hourly", self.budget_hourly),
            ("budget_daily", self.budget_daily),
            ("budget_monthly", self.budget_monthly),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v <= 0.0) {
                return Err((field, "must be a positive amount in USD"));
            }
        }
        Ok(())
    }
}

impl KeyRecord {
    /// Whether the key may authenticate at `now`.
    pub fn is_active(&self, now: UnixMillis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// What `keys create` asks the store to insert.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub name: String,
    pub hash: KeyHash,
    pub display: String,
    pub models: Vec<String>,
    pub user: Option<String>,
    pub expires_at: Option<UnixMillis>,
    pub limits: KeyLimits,
}

/// Parses `30d`, `12h`, `90m`, `45s` or `2w`; `None` for zero, another unit, or more milliseconds
/// than a database column holds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let per = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    let ms = (n > 0).then(|| n.checked_mul(per)).flatten()?;
    u64::try_from(ms).ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_prefixed_and_hash_consistently() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX));
        assert_eq!(a.secret.len(), KEY_PREFIX.len() + 43);
        assert_eq!(hash_key(&a.secret), a.hash);
        assert!(!a.display.contains(&a.secret[DISPLAY_CHARS..]));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Some(Duration::from_secs(90 * 60)));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("5y"), None);
        assert_eq!(parse_duration(&format!("{}w", i64::MAX)), None);
    }
}
