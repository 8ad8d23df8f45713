//! Signing in with a password, and the failures it counts: per account and source address,
//! with the same cost for every answer.

use super::password::{self, verify_nothing, verify_password};
use super::second_factor::MFA_TOKEN_TTL_MS;
use super::throttle::{ACCOUNT_FACTOR, SourceThrottle};
use super::token::{AccessClaims, ISSUER, MFA_AUDIENCE};
use super::user::{Credential, User};
use super::{AuthError, AuthService, LoginOutcome};
use crate::time::{Millis, SECOND};

impl AuthService {
    /// Checks a password, counting failures per source address (five lock that source out) and
    /// for the account (ten times as many lock it).
    pub async fn login(
        &self,
        tenant: &str,
        user_id: &str,
        password: &str,
        client: Option<&str>,
        source: Option<&str>,
    ) -> Result<LoginOutcome, AuthError> {
        let now = self.clock.now_ms();
        let source = source.unwrap_or("unknown");
        let throttle = self.throttle();
        let source_lock = throttle.locked(tenant, user_id, source, now).await?;
        let (user, stored) = (
            self.catalog.user(tenant, user_id).await?,
            self.catalog.credential(tenant, user_id).await?,
        );
        // Every answer costs one password hash, whether the user is unknown, signs in only
        // through SSO, or is locked: the time tells nothing.
        let hash = stored
            .as_ref()
            .and_then(|s| s.value.password_hash.as_deref());
        let ok = match hash {
            Some(hash) => verify_password(password, hash),
            None => {
                verify_nothing(password);
                false
            }
        };
        let account_lock = stored
            .as_ref()
            .and_then(|s| s.value.locked_until)
            .filter(|&t| t > now);
        if let Some(until) = source_lock.max(account_lock) {
            return Err(AuthError::Locked(until));
        }
        let (user, stored) = match (user, stored, ok) {
            (Some(user), Some(stored), true) => (user, stored),
            (_, stored, _) => {
                let locked = match stored {
                    Some(stored) => {
                        self.fail(tenant, user_id, source, stored.value, stored.version, now)
                            .await?
                    }
                    None => throttle.failed(tenant, user_id, source, now).await?,
                };
                return Err(locked.map_or(AuthError::InvalidCredentials, AuthError::Locked));
            }
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        throttle.succeeded(tenant, user_id, source).await?;
        let mut credential = stored.value;
        if credential.failed_logins > 0 || credential.locked_until.is_some() {
            credential.failed_logins = 0;
            credential.locked_until = None;
            let _ = self
                .catalog
                .put_credential(tenant, user_id, &credential, Some(stored.version))
                .await;
        }
        if credential.has_mfa() {
            return self.second_step(&user, "pwd");
        }
        self.start_session(&user, client, &["pwd"])
            .await
            .map(LoginOutcome::Tokens)
    }

    /// Failed sign-ins per account and source address.
    pub(super) fn throttle(&self) -> SourceThrottle<'_> {
        SourceThrottle {
            catalog: &self.catalog,
            max_failures: self.settings.max_failed_logins,
            lockout_ms: self.settings.lockout_ms,
        }
    }

    /// The token between a first step (`pwd` or `sso`) and the TOTP code.
    pub(super) fn second_step(&self, user: &User, first: &str) -> Result<LoginOutcome, AuthError> {
        let now = self.clock.now_ms();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: MFA_AUDIENCE.into(),
            sub: user.id.clone(),
            tid: user.tenant_id.clone(),
            sid: String::new(),
            iat: now / SECOND,
            exp: (now + MFA_TOKEN_TTL_MS) / SECOND,
            amr: vec![first.into()],
        };
        Ok(LoginOutcome::MfaRequired {
            mfa_required: true,
            mfa_token: self.keys.sign(&claims)?,
            expires_in: MFA_TOKEN_TTL_MS / SECOND,
        })
    }

    /// Until when `source` may not sign in as the user: its own lock or the account's.
    pub(super) async fn lock_of(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
        credential: &Credential,
        now: Millis,
    ) -> Result<Option<Millis>, AuthError> {
        let own = self.throttle().locked(tenant, user, source, now).await?;
        Ok(own.max(credential.locked_until.filter(|&t| t > now)))
    }

    /// Counts a wrong password or code for the source and the account; the end of a lock
    /// either started.
    pub(super) async fn fail(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
        credential: Credential,
        version: u64,
        now: Millis,
    ) -> Result<Option<Millis>, AuthError> {
        let own = self.throttle().failed(tenant, user, source, now).await?;
        let account = self
            .count_failure(tenant, user, credential, version, now)
            .await;
        Ok(own.max(account))
    }

    /// Failures from any sources that lock the account itself.
    pub(super) fn account_limit(&self) -> u32 {
        self.settings
            .max_failed_logins
            .saturating_mul(ACCOUNT_FACTOR)
    }

    /// Counts a wrong password or code; the one that reaches the limit locks the account.
    /// Returns the end of the lock if this failure started one.
    pub(super) async fn count_failure(
        &self,
        tenant: &str,
        user: &str,
        mut credential: Credential,
        version: u64,
        now: Millis,
    ) -> Option<Millis> {
        credential.failed_logins += 1;
        let locked_until = (credential.failed_logins >= self.account_limit())
            .then_some(now + self.settings.lockout_ms);
        if locked_until.is_some() {
            credential.locked_until = locked_until;
            credential.failed_logins = 0;
            tracing::warn!(tenant, user, "account locked after failed logins");
        }
        // A lost race only loses one count; the next failure counts again.
        let _ = self
            .catalog
            .put_credential(tenant, user, &credential, Some(version))
            .await;
        locked_until
    }

    /// Sets a new password after checking its strength, and ends the user's other sessions.
    pub async fn set_password(
        &self,
        tenant: &str,
        user: &str,
        new_password: &str,
        keep_session: Option<&str>,
    ) -> Result<(), AuthError> {
        password::check_strength(new_password).map_err(AuthError::WeakPassword)?;
        let hash = password::hash_password(new_password).map_err(AuthError::Hashing)?;
        let stored = self.catalog.credential(tenant, user).await?;
        let credential = Credential {
            password_hash: Some(hash),
            failed_logins: 0,
            locked_until: None,
            ..stored.as_ref().map(|s| s.value.clone()).unwrap_or_default()
        };
        self.catalog
            .put_credential(tenant, user, &credential, stored.map(|s| s.version))
            .await?;
        self.end_sessions(tenant, user, keep_session).await
    }

    /// Whether `password` is the user's current one (for changes that need re-authentication).
    /// Wrong answers count as failed logins do, and a locked account answers `Locked`, so a
    /// stolen session cannot guess the password at the speed of requests.
    pub async fn check_password(
        &self,
        tenant: &str,
        user: &str,
        password: &str,
        source: Option<&str>,
    ) -> Result<bool, AuthError> {
        let now = self.clock.now_ms();
        let source = source.unwrap_or("unknown");
        let Some(stored) = self.catalog.credential(tenant, user).await? else {
            verify_nothing(password);
            return Ok(false);
        };
        if let Some(until) = self
            .lock_of(tenant, user, source, &stored.value, now)
            .await?
        {
            verify_nothing(password);
            return Err(AuthError::Locked(until));
        }
        let ok = stored
            .value
            .password_hash
            .as_deref()
            .is_some_and(|hash| verify_password(password, hash));
        if ok {
            return Ok(true);
        }
        match self
            .fail(tenant, user, source, stored.value, stored.version, now)
            .await?
        {
            Some(until) => Err(AuthError::Locked(until)),
            None => Ok(false),
        }
    }
}
