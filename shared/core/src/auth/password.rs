//! Passwords hashed with argon2id (OWASP's parameters: 19 MiB, 2 passes, 1 lane).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use password_hash::rand_core::OsRng;
use std::sync::LazyLock;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest; hashing is costly, so an unbounded input would be a denial of service.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Why a new password is refused, said so the user can fix it.
pub fn check_strength(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(format!(
            "must have at least {MIN_PASSWORD_LEN} characters, this one has {chars}"
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("must have at most {MAX_PASSWORD_LEN} bytes"));
    }
    if password
        .chars()
        .all(|c| c == password.chars().next().unwrap_or(' '))
    {
        return Err("must not repeat a single character".into());
    }
    Ok(())
}

/// The PHC string of an argon2id hash with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Spends the time of one verification, so an unknown user name answers as slowly as a wrong
/// password and the timing does not tell which user names exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: LazyLock<Option<String>> =
        LazyLock::new(|| hash_password("not a password of anyone").ok());
    if let Some(phc) = DUMMY.as_deref() {
        let _ = verify_password(password, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() -> Result<(), String> {
        let a = hash_password("correct horse battery")?;
        let b = hash_password("correct horse battery")?;
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("correct horse battery", "not a hash"));
        Ok(())
    }

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        assert!(check_strength("short").unwrap_err().contains("at least 10"));
        assert!(check_strength("aaaaaaaaaaaa").is_err());
        assert!(check_strength(&"x1".repeat(200)).is_err());
        assert!(check_strength("a long enough passphrase").is_ok());
    }
}
