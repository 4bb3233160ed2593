//! ZhipuAI's (GLM) API tokens: an API key `id.secret` is never sent; a client signs a JWT with
//! the secret (HS256) and sends it as `Authorization: Bearer <jwt>`. Header
//! `{"alg":"HS256","sign_type":"SIGN"}`; claims `api_key` (the id), `exp` and `timestamp`, both
//! in **milliseconds** since the epoch (not JWT's usual seconds).
//!
//! [`sign`] is here so tests can make tokens; the mock uses [`verify`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused; each maps to one of GLM's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON with the expected header and claims (GLM 1002).
    Malformed(String),
    /// The signature does not match the configured secret (GLM 1004).
    BadSignature,
    /// `api_key` is not the configured key's id (GLM 1000).
    UnknownKey,
    /// `exp` (ms) is not in the future (GLM 1003).
    Expired,
}

/// The claims of a token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub api_key: String,
    pub exp_ms: u64,
    pub timestamp_ms: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A token for `api_key` (`id.secret`) issued at `now_ms`, valid for `ttl_ms`; `None` when the
/// key has no `.`.
pub fn sign(api_key: &str, now_ms: u64, ttl_ms: u64) -> Option<String> {
    let (id, secret) = api_key.split_once('.')?;
    let header = json!({"alg": "HS256", "sign_type": "SIGN"});
    let claims = json!({"api_key": id, "exp": now_ms + ttl_ms, "timestamp": now_ms});
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(signing_input.as_bytes());
    Some(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
}

/// Checks `token` against `api_key` (`id.secret`) at `now_ms`.
pub fn verify(token: &str, api_key: &str, now_ms: u64) -> Result<Claims, JwtError> {
    let malformed = |why: &str| JwtError::Malformed(why.to_string());
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| -> Result<Vec<u8>, JwtError> {
        URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| malformed(&format!("{what} is not base64url")))
    };
    let json = |bytes: Vec<u8>, what: &str| -> Result<Value, JwtError> {
        serde_json::from_slice(&bytes).map_err(|_| malformed(&format!("{what} is not JSON")))
    };
    let header_json = json(decode(header, "the header")?, "the header")?;
    if header_json["alg"] != "HS256" {
        return Err(malformed("alg must be HS256"));
    }
    if header_json["sign_type"] != "SIGN" {
        return Err(malformed("sign_type must be SIGN"));
    }
    let claims_json = json(decode(claims, "the payload")?, "the payload")?;
    let signature = decode(signature, "the signature")?;

    let (id, secret) = api_key.split_once('.').ok_or_else(|| malformed("the mock's GLM key has no '.'"))?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| JwtError::BadSignature)?;
    mac.update(format!("{header}.{claims}").as_bytes());
    mac.verify_slice(&signature).map_err(|_| JwtError::BadSignature)?;

    let api_key = claims_json["api_key"].as_str().ok_or_else(|| malformed("claim api_key (a string) is missing"))?;
    if api_key != id {
        return Err(JwtError::UnknownKey);
    }
    let exp_ms = claims_json["exp"].as_u64().ok_or_else(|| malformed("claim exp (an integer, ms) is missing"))?;
    let timestamp_ms =
        claims_json["timestamp"].as_u64().ok_or_else(|| malformed("claim timestamp (an integer, ms) is missing"))?;
    // A client that writes seconds lands here too: seconds read as milliseconds are in 1970.
    if exp_ms <= now_ms {
        return Err(JwtError::Expired);
    }
    Ok(Claims { api_key: api_key.to_string(), exp_ms, timestamp_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "mockid.mocksecret";

    #[test]
    fn a_signed_token_verifies() {
        let token = sign(KEY, 1_000, 60_000).unwrap();
        let claims = verify(&token, KEY, 2_000).unwrap();
        assert_eq!(claims, Claims { api_key: "mockid".into(), exp_ms: 61_000, timestamp_ms: 1_000 });
    }

    #[test]
    fn bad_tokens_are_refused() {
        let token = sign(KEY, 1_000, 60_000).unwrap();
        assert_eq!(verify(&token, KEY, 61_000), Err(JwtError::Expired));
        assert_eq!(verify(&token, "mockid.other", 2_000), Err(JwtError::BadSignature));
        assert_eq!(verify(&sign("otherid.mocksecret", 1_000, 60_000).unwrap(), KEY, 2_000), Err(JwtError::UnknownKey));
        assert!(matches!(verify("mockid.mocksecret", KEY, 2_000), Err(JwtError::Malformed(_))));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(verify(&tampered, KEY, 2_000).is_err());
    }
}
