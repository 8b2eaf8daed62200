//! Password hashing with Argon2id (PHC strings) and the password policy.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

/// Hashes a password into a PHC string (`$argon2id$…`). CPU-heavy: call from a blocking task.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Hashing only fails for out-of-range parameters, which the defaults are not.
        .unwrap_or_default()
}

/// Whether `password` matches the PHC string `hash`. CPU-heavy: requests verify on the bounded
/// pool instead (`crate::security::hashing::PasswordPool`).
pub fn verify(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Hashes on the blocking pool.
pub async fn hash_async(password: String) -> String {
    tokio::task::spawn_blocking(move || hash(&password)).await.unwrap_or_default()
}

/// Why a password is too weak, or `None` if it is acceptable: at least 8 characters, with a
/// letter and a digit, at most 128 characters.
pub fn weakness(password: &str) -> Option<String> {
    let len = password.chars().count();
    if len < 8 {
        return Some("must be at least 8 characters long".into());
    }
    if len > 128 {
        return Some("must be at most 128 characters long".into());
    }
    if !password.chars().any(|c| c.is_alphabetic()) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Some("must contain at least one letter and one digit".into());
    }
    None
}

/// A random password for the first administrator: 20 characters from an unambiguous alphabet,
/// always with letters and digits.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    loop {
        let p: String = (0..20).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        if weakness(&p).is_none() {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("Secret123");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "Secret123"));
        assert!(!verify(&h, "secret123"));
        assert!(!verify("not a hash", "Secret123"));
    }

    #[test]
    fn policy() {
        assert!(weakness("short1").is_some());
        assert!(weakness("onlyletters").is_some());
        assert!(weakness("12345678").is_some());
        assert!(weakness("Password1").is_none());
        assert!(weakness(&generate()).is_none());
        assert_ne!(generate(), generate());
    }
}
