//! Access tokens: short-lived JWTs signed with HS256 by the platform's own key.
//!
//! The key comes from Secrets Manager on AWS and from the data directory locally; at least 32
//! bytes. The `kid` header names the key by a digest prefix so a rotated key can be told apart.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::{Millis, SECOND};

/// Shortest signing key accepted, in bytes (the HS256 output size).
pub const MIN_KEY_BYTES: usize = 32;
/// Who issues and who accepts the tokens.
pub const ISSUER: &str = "iot-platform";
pub const AUDIENCE: &str = "iot-platform-api";
/// The audience of the short-lived token between a password and a second factor; it opens
/// nothing but `/v1/auth/mfa/verify`.
pub const MFA_AUDIENCE: &str = "iot-platform-mfa";

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
    #[error("the signing key is too short: {0} bytes, at least {MIN_KEY_BYTES} needed")]
    WeakKey(usize),
}

/// The key that signs and checks access tokens, and the key derived from it that seals
/// secrets kept at rest (TOTP seeds).
#[derive(Clone)]
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    sealing: std::sync::Arc<super::secret::SealingKey>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(TokenError::WeakKey(secret.len()));
        }
        let kid = super::secret::digest(&hex::encode(secret))[..12].to_owned();
        Ok(Self {
            kid,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            sealing: std::sync::Arc::new(super::secret::SealingKey::derive(secret, "totp")),
        })
    }

    /// Seals TOTP seeds at rest; a new signing key means users enroll their apps again.
    pub fn sealing(&self) -> &super::secret::SealingKey {
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
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against the platform clock, so tests can move time.
        validation.validate_exp = false;
        validation.leeway = 0;
        let claims = decode::<AccessClaims>(token, &self.decoding, &validation)
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
    fn short_keys_are_refused() {
        assert_eq!(
            TokenKeys::from_secret(b"short").err(),
            Some(TokenError::WeakKey(5))
        );
    }
}
