//! ZhipuAI GLM authentication: an `id.secret` API key signs short-lived HS256 JWTs
//! (header `{"alg":"HS256","sign_type":"SIGN"}`, claims `api_key` = id, `exp` and `timestamp` in
//! milliseconds). One token is reused until shortly before it expires: signing per request would
//! cost an HMAC and an allocation for nothing.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::header::HeaderValue;
use llm_proxy_core::UnixMillis;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// How long a signed token is valid.
const LIFETIME: Duration = Duration::from_secs(30 * 60);
/// A token this close to expiry is replaced, so none expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

pub(crate) struct GlmToken {
    id: String,
    secret: SecretString,
    current: ArcSwapOption<Signed>,
}

struct Signed {
    header: HeaderValue,
    /// After this the token is renewed.
    renew_at: UnixMillis,
}

impl GlmToken {
    /// `None` unless `key` has the form `id.secret`.
    pub fn new(key: &str) -> Option<Self> {
        let (id, secret) = key.split_once('.')?;
        if id.is_empty() || secret.is_empty() {
            return None;
        }
        Some(Self {
            id: id.to_string(),
            secret: SecretString::from(secret.to_string()),
            current: ArcSwapOption::empty(),
        })
    }

    /// `Bearer <jwt>`, signing a new token when the current one is near its end.
    pub fn header(&self) -> HeaderValue {
        let now = UnixMillis::now();
        if let Some(s) = self.current.load().as_ref()
            && now < s.renew_at
        {
            return s.header.clone();
        }
        // Concurrent renewals may each sign a token; any of them is valid, so no lock is needed.
        let signed = Arc::new(self.sign(now));
        let header = signed.header.clone();
        self.current.store(Some(signed));
        header
    }

    fn sign(&self, now: UnixMillis) -> Signed {
        let exp = now + LIFETIME;
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","sign_type":"SIGN","typ":"JWT"}"#);
        let claims = serde_json::json!({"api_key": self.id, "exp": exp, "timestamp": now});
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{head}.{claims}");
        // HMAC accepts a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let mut header = HeaderValue::from_str(&format!("Bearer {signing_input}.{signature}"))
            .unwrap_or_else(|_| unreachable!("base64url is a valid header value"));
        header.set_sensitive(true);
        Signed { header, renew_at: exp - RENEW_BEFORE }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(h: &HeaderValue) -> (serde_json::Value, serde_json::Value, String, String) {
        let jwt = h.to_str().unwrap().strip_prefix("Bearer ").unwrap().to_string();
        let mut it = jwt.split('.');
        let head = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
        let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
        let sig = it.next().unwrap().to_string();
        let input = jwt.rsplit_once('.').unwrap().0.to_string();
        (head, claims, sig, input)
    }

    #[test]
    fn signs_glm_tokens_and_reuses_them() {
        let t = GlmToken::new("myid.mysecret").unwrap();
        let h = t.header();
        assert!(h.is_sensitive());
        let (head, claims, sig, input) = parts(&h);
        assert_eq!(head["alg"], "HS256");
        assert_eq!(head["sign_type"], "SIGN");
        assert_eq!(claims["api_key"], "myid");
        let (exp, ts) = (claims["exp"].as_u64().unwrap(), claims["timestamp"].as_u64().unwrap());
        assert_eq!(exp - ts, LIFETIME.as_millis() as u64, "exp and timestamp are both in ms");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"mysecret").unwrap();
        mac.update(input.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        assert_eq!(t.header(), h, "the token is cached");
    }

    #[test]
    fn renews_near_expiry_and_rejects_bad_keys() {
        let t = GlmToken::new("a.b").unwrap();
        let first = t.header();
        t.current.store(Some(Arc::new(Signed {
            header: first.clone(),
            renew_at: UnixMillis::now() - Duration::from_millis(1),
        })));
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(t.header(), first);
        assert!(GlmToken::new("nodot").is_none());
        assert!(GlmToken::new(".secret").is_none());
    }
}
