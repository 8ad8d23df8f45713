//! Single sign-on with OpenID Connect: an ID token from the tenant's identity provider, checked
//! against the provider's published keys (JWKS), signs a user in.

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::time::{Millis, SECOND};

/// A tenant's identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// The `iss` its ID tokens carry, e.g. `https://login.example.com/`.
    pub issuer: String,
    /// The platform's client id at the provider: ID tokens must name it in `aud`.
    pub client_id: String,
    /// Where the provider publishes its signing keys.
    pub jwks_uri: String,
    /// The claim that names the user on the platform (`email` by default).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Create a user at their first sign-in (with `default_roles`), or only admit users an
    /// administrator created.
    #[serde(default)]
    pub auto_create: bool,
    #[serde(default)]
    pub default_roles: Vec<String>,
    #[serde(default)]
    pub default_department: Option<String>,
    /// Take the provider's word (its ID tokens' `amr`, RFC 8176) that a sign-in used a second
    /// factor. Otherwise the tenant's own TOTP applies to single sign-on as to passwords.
    #[serde(default)]
    pub trust_amr: bool,
}

fn default_username_claim() -> String {
    "email".into()
}

impl OidcProvider {
    /// Refuses settings that would make sign-in insecure or impossible.
    pub fn check(&self) -> Result<(), String> {
        for (field, text) in [("issuer", &self.issuer), ("jwks_uri", &self.jwks_uri)] {
            // Parsed, not compared as text: `http://localhost.evil.example` is not loopback.
            let url =
                url::Url::parse(text).map_err(|_| format!("{field} must be an https:// URL"))?;
            let loopback = match url.host() {
                Some(url::Host::Domain(name)) => name == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            let plain_local = url.scheme() == "http" && loopback;
            if !(url.scheme() == "https" || plain_local) || url.host().is_none() {
                return Err(format!("{field} must be an https:// URL"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(format!("{field} must not carry a user name or password"));
            }
        }
        if self.client_id.trim().is_empty() {
            return Err("client_id must not be empty".into());
        }
        Ok(())
    }
}

/// Where the providers' key sets come from (HTTPS in production).
#[async_trait]
pub trait JwksSource: Send + Sync {
    /// The key set at `uri`; `refresh` skips any cache (a token named a key not in it).
    async fn jwks(&self, uri: &str, refresh: bool) -> Result<JwkSet, JwksError>;
}

/// A key set that could not be read: where from, and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{uri}: {reason}")]
pub struct JwksError {
    pub uri: String,
    pub reason: String,
}

impl JwksError {
    pub fn new(uri: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            uri: uri.to_owned(),
            reason: reason.to_string(),
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("the ID token is not valid: {0}")]
    Invalid(String),
    #[error("the ID token has expired; sign in at the identity provider again")]
    Expired,
    #[error("the identity provider's keys could not be read: {0}")]
    Keys(#[from] JwksError),
}

/// Asymmetric algorithms only: a provider never shares a secret with us, and accepting HS256
/// would let anyone who knows the public key sign tokens.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Checks an ID token's signature against the key set, its issuer, audience and expiry at
/// `now`; returns its claims.
pub fn validate_id_token(
    token: &str,
    provider: &OidcProvider,
    keys: &JwkSet,
    now: Millis,
) -> Result<Map<String, Value>, OidcError> {
    let header = decode_header(token).map_err(|e| OidcError::Invalid(e.to_string()))?;
    if !ALLOWED.contains(&header.alg) {
        return Err(OidcError::Invalid(format!(
            "algorithm {:?} is not accepted for ID tokens",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| {
        OidcError::Invalid("it is signed by a key the provider does not publish".into())
    })?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| {
        OidcError::Keys(JwksError::new(
            &provider.jwks_uri,
            format!("a key cannot be used: {e}"),
        ))
    })?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[provider.issuer.as_str()]);
    validation.set_audience(&[provider.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.leeway = 0;
    let claims = decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| OidcError::Invalid(e.to_string()))?
        .claims;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    // One minute of tolerance for the provider's clock.
    if exp * SECOND + 60 * SECOND <= now {
        return Err(OidcError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf * SECOND > now + 60 * SECOND
    {
        return Err(OidcError::Invalid("it is not valid yet (nbf)".into()));
    }
    Ok(claims)
}

/// The platform user name for a claim value: lowercase, with characters ids do not allow
/// replaced by `_` (`Alice@Example.com` becomes `alice_example.com`).
pub fn username_from(claim: &str) -> String {
    claim
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(issuer: &str, jwks_uri: &str) -> OidcProvider {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer, "client_id": "app", "jwks_uri": jwks_uri
        }))
        .expect("a provider")
    }

    #[test]
    fn provider_urls_are_checked_as_parsed_urls() {
        let keys = "https://login.example.com/keys";
        assert!(provider("https://login.example.com/", keys).check().is_ok());
        assert!(
            provider("http://127.0.0.1:9000/", "http://localhost:9000/k")
                .check()
                .is_ok()
        );
        for issuer in [
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example/",
            "http://login.example.com/",
            "https://user:pw@login.example.com/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(provider(issuer, keys).check().is_err(), "{issuer}");
        }
    }
}
