//! Password hashing: argon2id with the argon2 crate's defaults (19 MiB, 2 passes, 1 lane — OWASP's
//! recommendation), as PHC strings. Hashing takes tens of milliseconds of CPU on purpose, so it
//! runs on a blocking thread, never on an async worker.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::rngs::OsRng;

/// A hash of no one's password, verified against when a login names an unknown user: that
/// costs what a wrong password costs, so the answer's timing does not tell which it was.
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The PHC string of `password`.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_now(&password)).await?
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
}

/// Whether `password` matches `hash` (`None`: check against a dummy and answer false).
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = match &hash {
            Some(h) => h.as_str(),
            None => DUMMY.get_or_init(|| hash_now("no user has this password").unwrap_or_default()).as_str(),
        };
        let matches = PasswordHash::new(stored)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        matches && hash.is_some()
    })
    .await
    .unwrap_or(false)
}

/// A password of 20 random characters (about 119 bits), for a user made without one.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("correct horse battery!".into(), Some(h)).await);
        assert!(!verify("no user has this password".into(), None).await, "an unknown user never logs in");
        assert!(!verify("x".into(), Some("not a phc string".into())).await);
    }

    #[test]
    fn generated_passwords_differ_and_are_long() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
    }
}
