//! The authentication service: its settings, errors and answers, and a tenant's first
//! administrator. What it does is cut by concern: `sign_in.rs` (passwords and the failures they
//! count), `second_factor.rs` (TOTP), `sessions.rs` (tokens, refresh, logout, every request's
//! check), `sso.rs` (OpenID Connect) and `delegation.rs` (who may grant what).

use super::oidc::JwksSource;
use super::password;
use super::policy::Grouping;
use super::token::{TokenError, TokenKeys};
use super::user::{Credential, User, default_policy};
use crate::ports::{Clock, StoreError};
use crate::repo::Catalog;
use crate::time::{DAY, MINUTE, Millis};
use std::sync::Arc;
use thiserror::Error;

#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub access_ttl_ms: Millis,
    pub refresh_ttl_ms: Millis,
    /// Consecutive failed logins that lock an account.
    pub max_failed_logins: u32,
    pub lockout_ms: Millis,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_ttl_ms: 15 * MINUTE,
            refresh_ttl_ms: 30 * DAY,
            max_failed_logins: 5,
            lockout_ms: 15 * MINUTE,
        }
    }
}

#[derive(Debug, Error)]
pub enum AuthError {
    /// Deliberately the same for an unknown user and a wrong password.
    #[error("the user name or the password is wrong")]
    InvalidCredentials,
    #[error("too many failed logins; the account is locked until {}", crate::time::to_rfc3339(*.0))]
    Locked(Millis),
    #[error("the account is disabled")]
    Disabled,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("the session has ended; log in again")]
    SessionEnded,
    #[error("the refresh token is not valid; log in again")]
    InvalidRefresh,
    #[error("the password {0}")]
    WeakPassword(String),
    #[error("the session changed concurrently; retry")]
    Contended,
    #[error("the code is wrong or was used already; enter the current code from your app")]
    InvalidCode,
    #[error("multi-factor authentication is {0}")]
    MfaState(&'static str),
    #[error("{0}")]
    Sso(#[from] super::oidc::OidcError),
    #[error("single sign-on is not set up for this tenant")]
    SsoNotConfigured,
    #[error(
        "no user is linked to this sign-in (subject {0:?}); ask an administrator to link it to your user"
    )]
    SsoUnknownUser(String),
    #[error(
        "user {0:?} exists and is not linked to this sign-in; an administrator can link them (sso_subject)"
    )]
    SsoNotLinked(String),
    #[error(transparent)]
    Tenant(#[from] crate::model::TenantRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// What a client gets after login or refresh.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// `{session id}.{secret}`: exchange it at `/v1/auth/refresh`; it works once.
    pub refresh_token: String,
}

/// What a correct password leads to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(Tokens),
    /// The user has a second factor: post a code with this token to `/v1/auth/mfa/verify`.
    MfaRequired {
        mfa_required: bool,
        mfa_token: String,
        expires_in: i64,
    },
}

impl LoginOutcome {
    /// The tokens, if no second factor is needed.
    pub fn tokens(self) -> Option<Tokens> {
        match self {
            LoginOutcome::Tokens(t) => Some(t),
            LoginOutcome::MfaRequired { .. } => None,
        }
    }
}

pub struct AuthService {
    pub(super) catalog: Catalog,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) keys: TokenKeys,
    pub(super) settings: AuthSettings,
    pub(super) jwks: Option<Arc<dyn JwksSource>>,
}

impl AuthService {
    pub fn new(
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        keys: TokenKeys,
        settings: AuthSettings,
    ) -> Self {
        Self {
            catalog,
            clock,
            keys,
            settings,
            jwks: None,
        }
    }

    /// Enables single sign-on, reading providers' keys from `jwks`.
    pub fn with_jwks(mut self, jwks: Arc<dyn JwksSource>) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Adds `g` lines for a new user, retrying if the policy changed meanwhile.
    pub(super) async fn grant_roles(
        &self,
        tenant: &str,
        user: &str,
        roles: &[String],
    ) -> Result<(), AuthError> {
        self.catalog
            .update_policy(tenant, |policy| {
                policy.groupings.extend(roles.iter().map(|role| Grouping {
                    user: user.to_owned(),
                    role: role.clone(),
                    dom: tenant.to_owned(),
                }));
                Ok::<(), AuthError>(())
            })
            .await?
            .map(drop)
            .ok_or(AuthError::Contended)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Gives a tenant its built-in roles and a first administrator, unless it has a policy
    /// already. Returns whether it did. Safe to call at every start.
    pub async fn bootstrap_tenant(
        &self,
        tenant: &str,
        admin: &str,
        admin_password: &str,
    ) -> Result<bool, AuthError> {
        if self.catalog.policy(tenant).await?.is_some() {
            return Ok(false);
        }
        password::check_strength(admin_password).map_err(AuthError::WeakPassword)?;
        let user = User {
            id: admin.to_owned(),
            tenant_id: tenant.to_owned(),
            name: "Administrator".into(),
            email: None,
            department_id: None,
            disabled: false,
            created_at: self.clock.now_ms(),
            sso_subject: None,
        };
        let credential = Credential {
            password_hash: Some(
                password::hash_password(admin_password).map_err(AuthError::Hashing)?,
            ),
            ..Credential::default()
        };
        match self.catalog.create_user(&user, &credential).await {
            Ok(())
            | Err(StoreError::TransactionCancelled(_))
            | Err(StoreError::ConditionFailed(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut policy = default_policy(tenant);
        policy.groupings.push(Grouping {
            user: admin.to_owned(),
            role: "admin".into(),
            dom: tenant.to_owned(),
        });
        match self.catalog.put_policy(tenant, &policy, None).await {
            Ok(()) => Ok(true),
            // Another instance bootstrapped it meanwhile.
            Err(StoreError::ConditionFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
