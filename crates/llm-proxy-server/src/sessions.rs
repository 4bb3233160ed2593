//! Dashboard and admin-API sessions: a signed cookie naming a session row.
//!
//! The cookie holds `v1.<session id>.<expiry ms>.<HMAC-SHA256 of the rest>` under the secret key
//! (`LLM_PROXY_SECRET_KEY`, else one generated and kept in the data directory): a forged or
//! altered cookie fails the signature before the database is asked. The row says whether the
//! session still stands (logout, password change). The CSRF token is the HMAC of the session id
//! under the same key, so it is the session's own and needs no storage.

use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use llm_proxy_core::UnixMillis;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "llm_proxy_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub struct Sessions {
    key: [u8; 32],
    pub ttl: Duration,
    secure: bool,
}

impl Sessions {
    pub fn new(key: [u8; 32], ttl: Duration, secure: bool) -> Self {
        Self { key, ttl, secure }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // A key of any length is accepted by HMAC.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return [0; 32] };
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// The cookie value for session `id` expiring at `expires_at`.
    pub fn token(&self, id: &str, expires_at: UnixMillis) -> String {
        let body = format!("v1.{id}.{}", expires_at.to_i64());
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&[b"session.", body.as_bytes()]));
        format!("{body}.{sig}")
    }

    /// The session id a cookie value names, if it is signed by this key and not expired at `now`.
    pub fn verify(&self, token: &str, now: UnixMillis) -> Option<String> {
        let (body, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !bool::from(self.mac(&[b"session.", body.as_bytes()]).as_slice().ct_eq(&sig)) {
            return None;
        }
        let mut fields = body.split('.');
        let (Some("v1"), Some(id), Some(expires), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let expires = expires.parse::<i64>().ok()?;
        (expires > now.to_i64()).then(|| id.to_string())
    }

    /// The CSRF token of session `id`.
    pub fn csrf(&self, id: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(&[b"csrf.", id.as_bytes()]))
    }

    /// Whether `presented` is session `id`'s CSRF token.
    pub fn csrf_matches(&self, id: &str, presented: &str) -> bool {
        bool::from(self.csrf(id).as_bytes().ct_eq(presented.as_bytes()))
    }

    /// `Set-Cookie` for a new session: HttpOnly, SameSite=Strict, Secure when configured.
    pub fn set_cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let value =
            format!("{COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}", self.ttl.as_secs());
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// A random id of 128 bits, hex.
pub fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret `name` (32 bytes): `configured` (any text, hashed to 32 bytes) when set, else the
/// one kept in `dir/name` (64 hex digits, mode 0600), made there on first use with a warning —
/// instances that share sessions or data must share it.
pub fn load_or_create_key(configured: Option<&str>, dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    use sha2::Digest;
    if let Some(k) = configured {
        return Ok(llm_proxy_core::config::decode_key32(k).unwrap_or_else(|| Sha256::digest(k.as_bytes()).into()));
    }
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return llm_proxy_core::config::decode_key32(&text)
                .ok_or_else(|| anyhow::anyhow!("{} does not hold 32 bytes as 64 hex digits", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    write_private(&path, &key.iter().map(|b| format!("{b:02x}")).collect::<String>())?;
    tracing::warn!(
        path = %path.display(),
        "no {name} configured: generated one and kept it there (mode 0600); set LLM_PROXY_{} to the same value on every instance",
        name.to_uppercase()
    );
    Ok(key)
}

/// Creates `path` readable by its owner only, failing if it exists (another instance won the race:
/// its key is read instead).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => f.write_all(text.as_bytes()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new([7; 32], Duration::from_secs(3600), false)
    }

    #[test]
    fn a_signed_token_names_its_session_until_it_expires() {
        let s = sessions();
        let token = s.token("abc123", UnixMillis::from_i64(10_000));
        assert_eq!(s.verify(&token, UnixMillis::from_i64(9_999)).as_deref(), Some("abc123"));
        assert_eq!(s.verify(&token, UnixMillis::from_i64(10_000)), None, "expired");
        let forged = token.replace("abc123", "abc124");
        assert_eq!(s.verify(&forged, UnixMillis::from_i64(0)), None, "altered");
        let longer = token.replace(".10000.", ".99999999.");
        assert_eq!(s.verify(&longer, UnixMillis::from_i64(0)), None, "expiry extended");
        let other = Sessions::new([8; 32], Duration::from_secs(3600), false);
        assert_eq!(other.verify(&token, UnixMillis::from_i64(0)), None, "another key");
        for junk in ["", "v1", "v1.a.b.c", "....", "v1.abc.10000.!!!"] {
            assert_eq!(s.verify(junk, UnixMillis::from_i64(0)), None, "{junk}");
        }
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let s = sessions();
        let t = s.csrf("one");
        assert!(s.csrf_matches("one", &t));
        assert!(!s.csrf_matches("two", &t));
        assert!(!s.csrf_matches("one", ""));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_marked_strict() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("theme=dark; llm_proxy_session=v1.x.1.sig; a=b"));
        assert_eq!(session_cookie(&h), Some("v1.x.1.sig"));
        let set = sessions().set_cookie("tok");
        let set = set.to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
        let secure = Sessions::new([7; 32], Duration::from_secs(60), true).set_cookie("tok");
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn a_generated_key_is_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_key(None, dir.path(), "secret_key").unwrap();
        let b = load_or_create_key(None, dir.path(), "secret_key").unwrap();
        assert_eq!(a, b, "the second start reads the first one's key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret_key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = load_or_create_key(Some("some configured secret"), dir.path(), "secret_key").unwrap();
        assert_ne!(configured, a);
    }
}
