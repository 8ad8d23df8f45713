//! Access tokens: short-lived JWTs signed with HS256 by the platform's own keys.
//!
//! The keys come from Secrets Manager on AWS and from the data directory locally, each at
//! least 32 bytes, as a ring: the first key signs, every key verifies the tokens whose `kid`
//! header names it, so a new key can be put first without signing anyone out. TOTP seeds are
//! sealed with keys of their own, a ring too.

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::secret::{SealingKey, key_id};
use crate::time::{Millis, SECOND};

/// Shortest signing key accepted, in bytes (the HS256 output size).
pub const MIN_KEY_BYTES: usize = 32;
/// Who issues and who accepts the tokens.
pub const ISSUER: &str = "iot-platform";
pub const AUDIENCE: &str = "iot-platform-api";
/// The audience of the short-lived token between a password and a second factor; it opens
/// nothing but `/v1/auth/mfa/verify`.
pub const MFA_AUDIENCE: &str = "iot-platform-mfa";

/// The keys of a ring as written in a key file or secret: separated by white space (one per
/// line), the current one first.
pub fn key_ring(text: &str) -> Vec<&[u8]> {
    text.split_whitespace().map(str::as_bytes).collect()
}

/// What an access token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The tenant.
    pub tid: String,
    /// The session, checked on every request so logout takes effect at once.
    pub sid: String,
    /// Issued and expiry times, seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
    /// Authentication methods (RFC 8176): `pwd`, `otp`, `sso`.
    #[serde(default)]
    pub amr: Vec<String>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired; refresh it or log in again")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("a key is too short: {0} bytes, at least {MIN_KEY_BYTES} needed")]
    WeakKey(usize),
    #[error("no {0} key is configured")]
    NoKey(&'static str),
}

/// The keys that sign and check access tokens, and those that seal secrets kept at rest
/// (TOTP seeds).
#[derive(Clone)]
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
    sealing: std::sync::Arc<SealingKey>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.decoding.iter().map(|(kid, _)| kid.as_str()).collect();
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .field("accepted", &kids)
            .finish_non_exhaustive()
    }
}

fn check_ring<'a>(ring: &[&'a [u8]], what: &'static str) -> Result<&'a [u8], TokenError> {
    if let Some(weak) = ring.iter().find(|k| k.len() < MIN_KEY_BYTES) {
        return Err(TokenError::WeakKey(weak.len()));
    }
    ring.first().copied().ok_or(TokenError::NoKey(what))
}

impl TokenKeys {
    /// Signing keys and sealing keys, each ring current key first. TOTP seeds sealed before
    /// sealing had keys of its own open with the signing keys.
    pub fn new(signing: &[&[u8]], sealing: &[&[u8]]) -> Result<Self, TokenError> {
        let current = check_ring(signing, "signing")?;
        check_ring(sealing, "sealing")?;
        Ok(Self {
            kid: key_id(current),
            encoding: EncodingKey::from_secret(current),
            decoding: signing
                .iter()
                .map(|k| (key_id(k), DecodingKey::from_secret(k)))
                .collect(),
            sealing: std::sync::Arc::new(SealingKey::from_secrets(sealing).with_legacy(signing)),
        })
    }

    /// One signing key, and a sealing key that lives as long as this value: for tools and
    /// tests that only sign.
    pub fn from_secret(secret: &[u8]) -> Result<Self, TokenError> {
        let sealing = super::secret::random_token(32);
        Self::new(&[secret], &[sealing.as_bytes()])
    }

    /// The id of the key that signs (`kid` of new tokens).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Seals TOTP seeds at rest.
    pub fn sealing(&self) -> &SealingKey {
        &self.sealing
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Checks signature, algorithm, issuer, audience and expiry (no leeway) at `now`.
    pub fn verify(&self, token: &str, now: Millis) -> Result<AccessClaims, TokenError> {
        self.verify_for(token, AUDIENCE, now)
    }

    /// As [`TokenKeys::verify`], for tokens of another audience.
    pub fn verify_for(
        &self,
        token: &str,
        audience: &str,
        now: Millis,
    ) -> Result<AccessClaims, TokenError> {
        let header = decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("the token names no key (kid)".into()))?;
        let (_, key) = self
            .decoding
            .iter()
            .find(|(id, _)| *id == kid)
            .ok_or_else(|| {
                TokenError::Invalid("signed by a key this platform no longer accepts".into())
            })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against the platform clock, so tests can move time.
        validation.validate_exp = false;
        validation.leeway = 0;
        let claims = decode::<AccessClaims>(token, key, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?
            .claims;
        if claims.exp * SECOND <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "alice".into(),
            tid: "acme".into(),
            sid: "s1".into(),
            iat: exp - 900,
            exp,
            amr: vec!["pwd".into()],
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() -> Result<(), TokenError> {
        let keys = TokenKeys::from_secret(&[7u8; 32])?;
        let token = keys.sign(&claims(1_000))?;
        assert_eq!(keys.verify(&token, 999_999)?, claims(1_000));
        assert_eq!(keys.verify(&token, 1_000_000), Err(TokenError::Expired));
        Ok(())
    }

    #[test]
    fn tampered_foreign_and_unsigned_tokens_are_refused() -> Result<(), TokenError> {
        let keys = TokenKeys::from_secret(&[7u8; 32])?;
        let token = keys.sign(&claims(1_000))?;
        // Another tenant in the payload, the signature kept.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = claims(1_000);
        let forged = AccessClaims {
            tid: "other".into(),
            ..forged
        };
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&forged).unwrap_or_default(),
        );
        assert!(matches!(
            keys.verify(&parts.join("."), 0),
            Err(TokenError::Invalid(_))
        ));
        // Signed with another key.
        let other = TokenKeys::from_secret(&[8u8; 32])?;
        assert!(matches!(
            keys.verify(&other.sign(&claims(1_000))?, 0),
            Err(TokenError::Invalid(_))
        ));
        // alg "none".
        let none = format!("eyJhbGciOiJub25lIn0.{}.", parts[1]);
        assert!(matches!(keys.verify(&none, 0), Err(TokenError::Invalid(_))));
        assert!(matches!(
            keys.verify("garbage", 0),
            Err(TokenError::Invalid(_))
        ));
        Ok(())
    }

    #[test]
    fn short_keys_and_empty_rings_are_refused() {
        assert_eq!(
            TokenKeys::from_secret(b"short").err(),
            Some(TokenError::WeakKey(5))
        );
        let good: &[u8] = &[1u8; 32];
        assert_eq!(
            TokenKeys::new(&[good, b"short"], &[good]).err(),
            Some(TokenError::WeakKey(5))
        );
        assert_eq!(
            TokenKeys::new(&key_ring(" \n "), &[good]).err(),
            Some(TokenError::NoKey("signing"))
        );
        assert_eq!(
            TokenKeys::new(&[good], &[]).err(),
            Some(TokenError::NoKey("sealing"))
        );
    }

    #[test]
    fn a_rotated_ring_accepts_the_tokens_of_its_older_keys() -> Result<(), TokenError> {
        let old: &[u8] = &[1u8; 32];
        let new: &[u8] = &[2u8; 32];
        let seal: &[u8] = &[3u8; 32];
        let before = TokenKeys::new(&[old], &[seal])?;
        let token = before.sign(&claims(1_000))?;
        let after = TokenKeys::new(&[new, old], &[seal])?;
        assert_ne!(after.kid(), before.kid());
        assert_eq!(after.verify(&token, 0)?, claims(1_000));
        // The new key signs; a ring that dropped the old key refuses the old token.
        let fresh = after.sign(&claims(1_000))?;
        assert_eq!(
            before.verify(&fresh, 0).err().map(|e| e.to_string()),
            Some("the token is not valid: signed by a key this platform no longer accepts".into())
        );
        assert!(TokenKeys::new(&[new], &[seal])?.verify(&token, 0).is_err());
        assert_eq!(key_ring("a  b\nc\n").len(), 3);
        Ok(())
    }
}
