//! Opaque random secrets (refresh tokens, ids) and their stored digests, and the sealing of
//! secrets the platform must read back (TOTP seeds).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// `bytes` random bytes from the OS, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random id: 16 bytes, 22 characters, safe in keys and paths.
pub fn random_id() -> String {
    random_token(16)
}

/// What is stored instead of a bearer secret: its SHA-256, hex. Secrets are 32 random bytes,
/// so a fast hash is enough (no dictionary to attack).
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// AES-256-GCM under a key derived from the platform's signing key, for secrets that are
/// stored but must be read back. Sealed text is `v1:` and URL-safe base64 of nonce and
/// ciphertext.
pub struct SealingKey(aws_lc_rs::aead::LessSafeKey);

const SEALED_PREFIX: &str = "v1:";

impl SealingKey {
    /// The key for `purpose`, derived from `secret`: the same secret gives the same key.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"iot-platform sealing key\0");
        hasher.update(purpose.as_bytes());
        hasher.update(b"\0");
        hasher.update(secret);
        let key =
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &hasher.finalize())
                .expect("a SHA-256 digest is an AES-256 key");
        Self(aws_lc_rs::aead::LessSafeKey::new(key))
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; aws_lc_rs::aead::NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut data = plaintext.as_bytes().to_vec();
        // Sealing in place only fails for inputs beyond GCM's limit (64 GiB).
        let sealed = self.0.seal_in_place_append_tag(
            aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
            aws_lc_rs::aead::Aad::empty(),
            &mut data,
        );
        if sealed.is_err() {
            return String::new();
        }
        let mut out = nonce.to_vec();
        out.extend(data);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext, if `sealed` was sealed by this key and is intact.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if bytes.len() < aws_lc_rs::aead::NONCE_LEN {
            return None;
        }
        let (nonce, data) = bytes.split_at(aws_lc_rs::aead::NONCE_LEN);
        let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, aws_lc_rs::aead::Aad::empty(), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }

    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let key = SealingKey::derive(b"a signing key of enough bytes....", "totp");
        let sealed = key.seal("JBSWY3DPEHPK3PXP");
        assert!(SealingKey::is_sealed(&sealed));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            key.seal("JBSWY3DPEHPK3PXP"),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        let other = SealingKey::derive(b"another signing key of enough b..", "totp");
        assert_eq!(other.open(&sealed), None);
        let other_purpose = SealingKey::derive(b"a signing key of enough bytes....", "x");
        assert_eq!(other_purpose.open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open(&tampered), None);
        assert_eq!(key.open("JBSWY3DPEHPK3PXP"), None);
    }

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(digest("x"), digest("x"));
        assert_ne!(digest("x"), digest("y"));
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
