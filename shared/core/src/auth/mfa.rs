//! Time-based one-time passwords (RFC 6238: SHA-1, 6 digits, 30 s steps, as every authenticator
//! app expects) and single-use recovery codes.

use password_hash::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Secret, TOTP};

use super::secret::{SealingKey, digest};
use crate::time::{Millis, SECOND};

/// Seconds per code.
pub const STEP_SECONDS: u64 = 30;
/// Recovery codes handed out at enrollment.
pub const RECOVERY_CODES: usize = 10;
/// Who the authenticator app shows the code is for.
pub const ISSUER: &str = "IoT Platform";

/// A user's TOTP enrollment, kept with their credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrollment {
    /// Base32, as authenticator apps take it.
    pub secret: String,
    /// Set once the user proved their app has it, by entering a code.
    pub confirmed: bool,
    /// The last step a code was accepted for: a code works once.
    #[serde(default)]
    pub last_step: u64,
}

fn totp(secret_b32: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_owned()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        bytes,
        Some(ISSUER.to_owned()),
        account.replace(':', "_"),
    )
    .ok()
}

impl TotpEnrollment {
    /// A fresh 160-bit secret, unconfirmed: the enrollment to store (the secret sealed with
    /// `key`) and the secret itself, base32, for the user's app.
    pub fn generate(key: &SealingKey) -> (Self, String) {
        let mut bytes = [0u8; 20];
        OsRng.fill_bytes(&mut bytes);
        let secret = Secret::Raw(bytes.to_vec()).to_encoded().to_string();
        let enrollment = Self {
            secret: key.seal(&secret),
            confirmed: false,
            last_step: 0,
        };
        (enrollment, secret)
    }

    /// The `otpauth://` URL authenticator apps read (usually from a QR code).
    pub fn url(secret: &str, account: &str) -> String {
        totp(secret, account).map_or_else(String::new, |t| t.get_url())
    }

    /// The base32 secret: opened with `key` if sealed (enrollments made before sealing, and
    /// an app's own copy, hold it plain).
    fn plain_secret(&self, key: &SealingKey) -> Option<String> {
        if SealingKey::is_sealed(&self.secret) {
            key.open(&self.secret)
        } else {
            Some(self.secret.clone())
        }
    }

    /// Seals the secret under the ring's current key if an older key (or none) sealed it; the
    /// caller stores the enrollment it was about to store anyway.
    pub fn reseal(&mut self, key: &SealingKey) {
        if key.is_current(&self.secret) {
            return;
        }
        if let Some(plain) = self.plain_secret(key) {
            self.secret = key.seal(&plain);
        }
    }

    /// The step `code` is valid for at `now` (one step of clock skew either way), if it is
    /// valid and newer than the last accepted one.
    pub fn accept(&self, code: &str, now: Millis, key: &SealingKey) -> Option<u64> {
        let totp = totp(&self.plain_secret(key)?, "")?;
        let now_step = (now / SECOND).max(0) as u64 / STEP_SECONDS;
        let code = code.trim().replace(' ', "");
        (now_step.saturating_sub(1)..=now_step + 1)
            .filter(|&step| step > self.last_step)
            .find(|&step| {
                super::secret::constant_time_eq(&totp.generate(step * STEP_SECONDS), &code)
            })
    }

    /// The code an app holding the plain `secret` shows at `now`; for tests and simulators.
    pub fn code_at(&self, now: Millis) -> String {
        totp(&self.secret, "")
            .map_or_else(String::new, |t| t.generate((now / SECOND).max(0) as u64))
    }
}

/// New recovery codes (`xxxxx-xxxxx`, lowercase letters and digits) and their digests.
pub fn recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            OsRng.fill_bytes(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let digests = codes.iter().map(|c| digest(c)).collect();
    (codes, digests)
}

/// Removes the recovery code from `digests` if it is one of them; true if it was.
pub fn use_recovery_code(digests: &mut Vec<String>, code: &str) -> bool {
    let wanted = digest(code.trim());
    let before = digests.len();
    digests.retain(|d| !super::secret::constant_time_eq(d, &wanted));
    digests.len() < before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_within_a_step_of_skew_and_only_once() {
        let now = 1_800_000_000_000;
        let key = SealingKey::from_secrets(&[b"a sealing key of enough bytes...."]);
        let (mut enrollment, secret) = TotpEnrollment::generate(&key);
        assert!(!enrollment.secret.contains(&secret), "stored sealed");
        let app = TotpEnrollment {
            secret: secret.clone(),
            confirmed: true,
            last_step: 0,
        };
        let code = app.code_at(now);
        assert_eq!(code.len(), 6);
        let step = enrollment
            .accept(&code, now + 20 * SECOND, &key)
            .expect("valid");
        enrollment.last_step = step;
        assert_eq!(enrollment.accept(&code, now, &key), None, "replayed");
        let later = now + 90 * SECOND;
        assert_eq!(enrollment.accept(&code, later, &key), None, "too old");
        assert!(
            enrollment
                .accept(&app.code_at(later), later, &key)
                .is_some()
        );
        // Under a key outside the ring the sealed secret cannot be opened.
        let other = SealingKey::from_secrets(&[b"another sealing key of enough b.."]);
        assert_eq!(enrollment.accept(&app.code_at(later), later, &other), None);
        // Rotated: the old key still opens it, and it is sealed again under the new one.
        let rotated = SealingKey::from_secrets(&[
            b"a newer sealing key of enough b..",
            b"a sealing key of enough bytes....",
        ]);
        let before = enrollment.secret.clone();
        enrollment.reseal(&rotated);
        assert_ne!(enrollment.secret, before);
        assert!(rotated.is_current(&enrollment.secret));
        assert!(
            enrollment
                .accept(
                    &app.code_at(later + 30 * SECOND),
                    later + 30 * SECOND,
                    &SealingKey::from_secrets(&[b"a newer sealing key of enough b.."])
                )
                .is_some()
        );
        assert!(
            TotpEnrollment::url(&secret, "alice@acme")
                .starts_with("otpauth://totp/IoT%20Platform:alice%40acme?secret=")
        );
    }

    #[test]
    fn rfc_6238_test_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        let enrollment = TotpEnrollment {
            secret: Secret::Raw(b"12345678901234567890".to_vec())
                .to_encoded()
                .to_string(),
            confirmed: true,
            last_step: 0,
        };
        assert_eq!(enrollment.code_at(59 * SECOND), "287082");
    }

    #[test]
    fn recovery_codes_work_once() {
        let (codes, mut digests) = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(use_recovery_code(&mut digests, &codes[3]));
        assert!(!use_recovery_code(&mut digests, &codes[3]));
        assert_eq!(digests.len(), RECOVERY_CODES - 1);
    }
}
