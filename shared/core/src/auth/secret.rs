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

/// How a broker's password file keeps a password: `$7$101$` and the standard base64 of a
/// 12-byte salt and of PBKDF2-HMAC-SHA512 over 101 rounds, the format Mosquitto's
/// `password_file` reads. Stored beside a device token's or application credential's digest
/// so the password file can be written without the secret (which is shown once and kept
/// nowhere); the secrets are 32 random bytes, so the few rounds do not weaken them.
pub fn broker_password_hash(password: &str) -> String {
    let mut salt = [0u8; 12];
    OsRng.fill_bytes(&mut salt);
    broker_password_hash_with_salt(password, &salt)
}

fn broker_password_hash_with_salt(password: &str, salt: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    const ROUNDS: u32 = 101;
    let mut hash = [0u8; 64];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
        std::num::NonZeroU32::new(ROUNDS).expect("non-zero"),
        salt,
        password.as_bytes(),
        &mut hash,
    );
    format!(
        "$7${ROUNDS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// AES-256-GCM keys for secrets that are stored but must be read back (TOTP seeds): a ring
/// whose first key seals and whose every key opens, so the key can be rotated without
/// re-enrolling anyone. Sealed text is `v2:{kid}:` and URL-safe base64 of nonce and
/// ciphertext; `v1:` text, sealed before the key was separate from the token signing key,
/// opens with the keys derived from the signing keys.
pub struct SealingKey {
    keys: Vec<(String, aws_lc_rs::aead::LessSafeKey)>,
    legacy: Vec<aws_lc_rs::aead::LessSafeKey>,
}

const SEALED_PREFIX: &str = "v2:";
const LEGACY_PREFIX: &str = "v1:";

fn aead_key(secret: &[u8], purpose: &str) -> aws_lc_rs::aead::LessSafeKey {
    let mut hasher = Sha256::new();
    hasher.update(b"iot-platform sealing key\0");
    hasher.update(purpose.as_bytes());
    hasher.update(b"\0");
    hasher.update(secret);
    let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &hasher.finalize())
        .expect("a SHA-256 digest is an AES-256 key");
    aws_lc_rs::aead::LessSafeKey::new(key)
}

/// The id of a key: a digest prefix, so it names the key without revealing it.
pub fn key_id(secret: &[u8]) -> String {
    digest(&hex::encode(secret))[..12].to_owned()
}

impl SealingKey {
    /// The ring of `secrets`, the first sealing. Callers pass at least one.
    pub fn from_secrets(secrets: &[&[u8]]) -> Self {
        Self {
            keys: secrets
                .iter()
                .map(|s| (key_id(s), aead_key(s, "seal")))
                .collect(),
            legacy: Vec::new(),
        }
    }

    /// Also opens `v1:` text sealed under the keys derived from these token signing keys.
    pub fn with_legacy(mut self, signing_secrets: &[&[u8]]) -> Self {
        self.legacy = signing_secrets
            .iter()
            .map(|s| aead_key(s, "totp"))
            .collect();
        self
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let Some((kid, key)) = self.keys.first() else {
            return String::new();
        };
        seal_with(key, kid.as_bytes(), plaintext)
            .map_or_else(String::new, |body| format!("{SEALED_PREFIX}{kid}:{body}"))
    }

    /// The plaintext, if `sealed` was sealed by a key of this ring and is intact.
    pub fn open(&self, sealed: &str) -> Option<String> {
        if let Some(rest) = sealed.strip_prefix(SEALED_PREFIX) {
            let (kid, body) = rest.split_once(':')?;
            let (_, key) = self.keys.iter().find(|(id, _)| id == kid)?;
            return open_with(key, kid.as_bytes(), body);
        }
        let body = sealed.strip_prefix(LEGACY_PREFIX)?;
        self.legacy.iter().find_map(|key| open_with(key, b"", body))
    }

    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(SEALED_PREFIX) || text.starts_with(LEGACY_PREFIX)
    }

    /// Whether `sealed` is sealed under the current key (so it need not be sealed again).
    pub fn is_current(&self, sealed: &str) -> bool {
        self.keys.first().is_some_and(|(kid, _)| {
            sealed
                .strip_prefix(SEALED_PREFIX)
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(id, _)| id == kid)
        })
    }

    /// The legacy (`v1:`) sealing under a token signing key; for tests of the upgrade.
    pub fn seal_legacy(signing_secret: &[u8], plaintext: &str) -> String {
        seal_with(&aead_key(signing_secret, "totp"), b"", plaintext)
            .map_or_else(String::new, |body| format!("{LEGACY_PREFIX}{body}"))
    }
}

/// URL-safe base64 of a fresh nonce and the ciphertext; `None` only for inputs beyond GCM's
/// limit (64 GiB).
fn seal_with(key: &aws_lc_rs::aead::LessSafeKey, aad: &[u8], plaintext: &str) -> Option<String> {
    let mut nonce = [0u8; aws_lc_rs::aead::NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut data = plaintext.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
        aws_lc_rs::aead::Aad::from(aad),
        &mut data,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend(data);
    Some(URL_SAFE_NO_PAD.encode(out))
}

fn open_with(key: &aws_lc_rs::aead::LessSafeKey, aad: &[u8], body: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    if bytes.len() < aws_lc_rs::aead::NONCE_LEN {
        return None;
    }
    let (nonce, data) = bytes.split_at(aws_lc_rs::aead::NONCE_LEN);
    let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = data.to_vec();
    let plain = key
        .open_in_place(nonce, aws_lc_rs::aead::Aad::from(aad), &mut data)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_a_key_of_the_ring_only() {
        let first: &[u8] = b"a sealing key of enough bytes....";
        let second: &[u8] = b"a newer sealing key of enough b..";
        let key = SealingKey::from_secrets(&[first]);
        let sealed = key.seal("JBSWY3DPEHPK3PXP");
        assert!(SealingKey::is_sealed(&sealed) && key.is_current(&sealed));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            key.seal("JBSWY3DPEHPK3PXP"),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        // Rotated: the new key seals, the old one still opens.
        let rotated = SealingKey::from_secrets(&[second, first]);
        assert_eq!(rotated.open(&sealed).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal("x")));
        assert_eq!(SealingKey::from_secrets(&[second]).open(&sealed), None);
        // Another key id put on the same text does not open it either (the id is bound).
        let relabelled = sealed.replacen(&key_id(first), &key_id(second), 1);
        assert_eq!(rotated.open(&relabelled), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open(&tampered), None);
        assert_eq!(key.open("JBSWY3DPEHPK3PXP"), None);
    }

    #[test]
    fn legacy_text_opens_only_with_its_signing_key() {
        let signing: &[u8] = b"a signing key of enough bytes....";
        let legacy = SealingKey::seal_legacy(signing, "JBSWY3DPEHPK3PXP");
        assert!(SealingKey::is_sealed(&legacy));
        let ring = SealingKey::from_secrets(&[b"a sealing key of enough bytes...."]);
        assert_eq!(ring.open(&legacy), None);
        let ring = ring.with_legacy(&[b"another signing key of enough b..", signing]);
        assert_eq!(ring.open(&legacy).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert!(!ring.is_current(&legacy));
    }

    #[test]
    fn broker_hashes_are_what_mosquitto_passwd_writes() {
        // `mosquitto_passwd -b` (Mosquitto 2.0) wrote this line for password "secretpass".
        let salt = base64::engine::general_purpose::STANDARD
            .decode("lMz+Pg2Q4ycZNAnx")
            .unwrap_or_default();
        assert_eq!(
            broker_password_hash_with_salt("secretpass", &salt),
            "$7$101$lMz+Pg2Q4ycZNAnx$92iWVVZBuawNq5OeRqyyRXYkkx7F2FrfWokOrZEdmap1uvyvxdsCsOVPVeZiVYGdeRXgRhsje887UnIM8x+m4g=="
        );
        assert_ne!(
            broker_password_hash("x"),
            broker_password_hash("x"),
            "salted"
        );
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
