//! Single sign-on: an ID token of the tenant's OpenID Connect provider, used once, reaches the
//! user linked to its subject, and a second factor is the provider's only if the tenant says so.

use serde_json::{Map, Value};

use super::oidc::{OidcError, OidcProvider, username_from, validate_id_token};
use super::secret::digest;
use super::service::{AuthError, AuthService, LoginOutcome};
use super::user::{Credential, User};
use crate::ports::StoreError;
use crate::time::SECOND;

/// `amr` values (RFC 8176) that mean a second factor was used.
const SECOND_FACTORS: &[&str] = &[
    "mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm", "sms", "tel",
];

impl AuthService {
    /// Signs in with an ID token of the tenant's OpenID Connect provider. The token works once;
    /// it reaches the user whose `sso_subject` is its `sub`, or a user it creates when the
    /// provider is set to (`auto_create`). With TOTP on and a provider the tenant does not trust
    /// for a second factor, a code is asked for next.
    pub async fn sso_login(
        &self,
        tenant: &str,
        id_token: &str,
        client: Option<&str>,
    ) -> Result<LoginOutcome, AuthError> {
        let settings = self.catalog.settings(tenant).await?;
        let (Some(provider), Some(jwks)) = (settings.oidc, self.jwks.as_ref()) else {
            return Err(AuthError::SsoNotConfigured);
        };
        let now = self.clock.now_ms();
        let keys = jwks
            .jwks(&provider.jwks_uri, false)
            .await
            .map_err(OidcError::from)?;
        let claims = match validate_id_token(id_token, &provider, &keys, now) {
            // A key the cached set lacks: the provider may have rotated; read it again, once.
            Err(OidcError::Invalid(why)) if why.contains("does not publish") => {
                let keys = jwks
                    .jwks(&provider.jwks_uri, true)
                    .await
                    .map_err(OidcError::from)?;
                validate_id_token(id_token, &provider, &keys, now)?
            }
            other => other?,
        };
        // Used once: a token copied from a log or a browser does not sign in again.
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let once = format!("SSO#{tenant}#{}", digest(id_token));
        if !self.catalog.claim_once(&once, (exp + 120) * SECOND).await? {
            return Err(OidcError::Invalid(
                "it was used already; sign in at the identity provider again".into(),
            )
            .into());
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::Invalid("it has no subject (sub)".into()))?;
        let user = match self.linked_user(tenant, subject).await? {
            Some(user) => user,
            None if provider.auto_create => {
                self.create_sso_user(tenant, &provider, &claims, subject)
                    .await?
            }
            None => return Err(AuthError::SsoUnknownUser(subject.to_owned())),
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        let provider_mfa = provider.trust_amr
            && claims
                .get("amr")
                .and_then(Value::as_array)
                .is_some_and(|amr| {
                    amr.iter()
                        .filter_map(Value::as_str)
                        .any(|m| SECOND_FACTORS.contains(&m))
                });
        if provider_mfa {
            return Ok(LoginOutcome::Tokens(
                self.start_session(&user, client, &["sso", "mfa"]).await?,
            ));
        }
        let has_totp = self
            .catalog
            .credential(tenant, &user.id)
            .await?
            .is_some_and(|c| c.value.has_mfa());
        if has_totp {
            return self.second_step(&user, "sso");
        }
        Ok(LoginOutcome::Tokens(
            self.start_session(&user, client, &["sso"]).await?,
        ))
    }

    /// The user an administrator (or a first sign-in) linked to `subject`.
    async fn linked_user(&self, tenant: &str, subject: &str) -> Result<Option<User>, AuthError> {
        Ok(self
            .catalog
            .users(tenant)
            .await?
            .into_iter()
            .find(|u| u.sso_subject.as_deref() == Some(subject)))
    }

    /// A first sign-in's user, named by the provider's claim and linked to its subject. A
    /// local user of that name is never taken over: it must be linked by an administrator.
    async fn create_sso_user(
        &self,
        tenant: &str,
        provider: &OidcProvider,
        claims: &Map<String, Value>,
        subject: &str,
    ) -> Result<User, AuthError> {
        let name = claims
            .get(&provider.username_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                OidcError::Invalid(format!(
                    "it has no {:?} claim to name the user",
                    provider.username_claim
                ))
            })?;
        // A name taken from an e-mail address only if the provider checked the address.
        if provider.username_claim == "email" && !is_true(claims.get("email_verified")) {
            return Err(OidcError::Invalid(
                "the provider has not verified this e-mail address (email_verified)".into(),
            )
            .into());
        }
        let id = username_from(name);
        let user = User {
            id: id.clone(),
            tenant_id: tenant.to_owned(),
            name: claims
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_owned(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .filter(|_| is_true(claims.get("email_verified")))
                .map(str::to_owned),
            department_id: provider.default_department.clone(),
            disabled: false,
            created_at: self.clock.now_ms(),
            sso_subject: Some(subject.to_owned()),
        };
        match self
            .catalog
            .create_user(&user, &Credential::default())
            .await
        {
            Ok(()) => {
                self.grant_roles(tenant, &id, &provider.default_roles)
                    .await?;
                Ok(user)
            }
            Err(StoreError::ConditionFailed(_) | StoreError::TransactionCancelled(_)) => {
                // Made by a concurrent first sign-in of the same subject, or a local user.
                match self.catalog.user(tenant, &id).await? {
                    Some(existing) if existing.sso_subject.as_deref() == Some(subject) => {
                        Ok(existing)
                    }
                    _ => Err(AuthError::SsoNotLinked(id)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `true`, or the string `"true"` some providers send.
fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}
