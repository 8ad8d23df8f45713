//! Login, refresh, logout and the check of every request's token.

use futures_util::future::{try_join, try_join5};
use std::collections::BTreeSet;
use std::sync::Arc;
use thiserror::Error;

use super::department::DepartmentTree;
use super::mfa::{TotpEnrollment, recovery_codes, use_recovery_code};
use super::oidc::JwksSource;
use super::password::{self, verify_nothing, verify_password};
use super::policy::{Grouping, Policy, action_match};
use super::secret::{constant_time_eq, digest, random_id, random_token};
use super::throttle::{ACCOUNT_FACTOR, SourceThrottle};
use super::token::{AUDIENCE, AccessClaims, ISSUER, MFA_AUDIENCE, TokenError, TokenKeys};
use super::user::{Credential, Session, User, default_policy};
use crate::ports::{Clock, StoreError};
use crate::repo::Catalog;
use crate::time::{DAY, MINUTE, Millis, SECOND};

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

/// A started TOTP enrollment: what the user's authenticator app needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaEnrollment {
    /// Base32, to type in by hand.
    pub secret: String,
    /// To show as a QR code.
    pub otpauth_url: String,
}

/// How long the token between password and second factor lives.
const MFA_TOKEN_TTL_MS: Millis = 5 * MINUTE;

/// Which departments' data a user may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataScope {
    All,
    Departments(BTreeSet<String>),
}

impl DataScope {
    pub fn allows(&self, department: &str) -> bool {
        match self {
            DataScope::All => true,
            DataScope::Departments(set) => set.contains(department),
        }
    }
}

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub tenant: String,
    pub user: String,
    pub session: String,
    pub department: Option<String>,
    pub policy: Arc<Policy>,
    /// The departments whose data this request may touch: for reads at first, narrowed to
    /// the request's method by [`Principal::acting`].
    pub scope: DataScope,
    pub departments: Arc<DepartmentTree>,
    /// The tenant requires a second factor and this login had none: only the user's own
    /// `/v1/auth/*` routes (to enroll) answer.
    pub needs_mfa_enrollment: bool,
    /// This login used a second factor (TOTP, or an SSO provider's own).
    pub second_factor: bool,
}

impl Principal {
    /// Whether the tenant's policy lets this user do `action` (an HTTP method) on `object`
    /// (a request path).
    pub fn can(&self, object: &str, action: &str) -> bool {
        self.policy
            .user_may(&self.user, &self.tenant, object, action)
    }

    pub fn roles(&self) -> BTreeSet<String> {
        self.policy.roles_of(&self.user, &self.tenant)
    }

    /// The caller for one request of `action` (an HTTP method): `department:south, GET` lets
    /// them read south's data, not change it.
    pub fn acting(&self, action: &str) -> Principal {
        Principal {
            scope: data_scope(
                &self.policy,
                &self.tenant,
                &self.user,
                self.department.as_deref(),
                &self.departments,
                action,
            ),
            ..self.clone()
        }
    }
}

/// The data scope of `user` for `action`: their department subtree, plus the subtree of every
/// `department:{id}` object their roles grant for that action, or everything with
/// `department:*`.
pub fn data_scope(
    policy: &Policy,
    tenant: &str,
    user: &str,
    department: Option<&str>,
    tree: &DepartmentTree,
    action: &str,
) -> DataScope {
    let mut set = department.map(|d| tree.subtree(d)).unwrap_or_default();
    for p in policy
        .user_permissions(user, tenant)
        .filter(|p| action_match(action, &p.act))
    {
        match p.obj.strip_prefix("department:") {
            Some("*") => return DataScope::All,
            Some(id) => set.extend(tree.subtree(id)),
            None => {}
        }
    }
    DataScope::Departments(set)
}

pub struct AuthService {
    pub(super) catalog: Catalog,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) keys: TokenKeys,
    settings: AuthSettings,
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
    fn throttle(&self) -> SourceThrottle<'_> {
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
    async fn lock_of(
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
    async fn fail(
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
    fn account_limit(&self) -> u32 {
        self.settings
            .max_failed_logins
            .saturating_mul(ACCOUNT_FACTOR)
    }

    /// Counts a wrong password or code; the one that reaches the limit locks the account.
    /// Returns the end of the lock if this failure started one.
    async fn count_failure(
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

    /// The second step of a login with TOTP: a current code, or one of the recovery codes.
    /// Wrong codes count towards the lockout as wrong passwords do.
    pub async fn verify_mfa(
        &self,
        mfa_token: &str,
        code: &str,
        client: Option<&str>,
        source: Option<&str>,
    ) -> Result<Tokens, AuthError> {
        let source = source.unwrap_or("unknown");
        let now = self.clock.now_ms();
        let claims = self.keys.verify_for(mfa_token, MFA_AUDIENCE, now)?;
        let (tenant, user_id) = (claims.tid.as_str(), claims.sub.as_str());
        let (Some(user), Some(stored)) = (
            self.catalog.user(tenant, user_id).await?,
            self.catalog.credential(tenant, user_id).await?,
        ) else {
            return Err(AuthError::InvalidCredentials);
        };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        let mut credential = stored.value;
        if let Some(until) = self
            .lock_of(tenant, user_id, source, &credential, now)
            .await?
        {
            return Err(AuthError::Locked(until));
        }
        let Some(totp) = credential.totp.as_mut().filter(|t| t.confirmed) else {
            return Err(AuthError::MfaState("not enrolled"));
        };
        let accepted = match totp.accept(code, now, self.keys.sealing()) {
            Some(step) => {
                totp.last_step = step;
                totp.reseal(self.keys.sealing());
                true
            }
            None => use_recovery_code(&mut credential.recovery_digests, code),
        };
        if !accepted {
            return Err(self
                .fail(tenant, user_id, source, credential, stored.version, now)
                .await?
                .map_or(AuthError::InvalidCode, AuthError::Locked));
        }
        credential.failed_logins = 0;
        // Conditional on the version read: two logins racing with one code, one wins.
        match self
            .catalog
            .put_credential(tenant, user_id, &credential, Some(stored.version))
            .await
        {
            Ok(()) => {}
            Err(StoreError::ConditionFailed(_)) => return Err(AuthError::InvalidCode),
            Err(e) => return Err(e.into()),
        }
        // How the first step was made (a password, or single sign-on), then the code.
        let mut amr: Vec<&str> = claims.amr.iter().map(String::as_str).collect();
        amr.push("otp");
        self.start_session(&user, client, &amr).await
    }

    /// Starts TOTP enrollment: a new secret, unconfirmed until [`AuthService::confirm_mfa`].
    pub async fn enroll_mfa(&self, tenant: &str, user: &str) -> Result<MfaEnrollment, AuthError> {
        let stored = self
            .catalog
            .credential(tenant, user)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let mut credential = stored.value;
        if credential.has_mfa() {
            return Err(AuthError::MfaState(
                "on already; turn it off first to enroll a new device",
            ));
        }
        let (enrollment, secret) = TotpEnrollment::generate(self.keys.sealing());
        let answer = MfaEnrollment {
            otpauth_url: TotpEnrollment::url(&secret, &format!("{user}@{tenant}")),
            secret,
        };
        credential.totp = Some(enrollment);
        self.catalog
            .put_credential(tenant, user, &credential, Some(stored.version))
            .await?;
        Ok(answer)
    }

    /// Confirms enrollment with a code from the app; returns the recovery codes, shown once.
    pub async fn confirm_mfa(
        &self,
        tenant: &str,
        user: &str,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        let stored = self
            .catalog
            .credential(tenant, user)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let mut credential = stored.value;
        let Some(totp) = credential.totp.as_mut() else {
            return Err(AuthError::MfaState("not started; enroll first"));
        };
        if totp.confirmed {
            return Err(AuthError::MfaState("confirmed already"));
        }
        let step = totp
            .accept(code, self.clock.now_ms(), self.keys.sealing())
            .ok_or(AuthError::InvalidCode)?;
        totp.confirmed = true;
        totp.last_step = step;
        let (codes, digests) = recovery_codes();
        credential.recovery_digests = digests;
        self.catalog
            .put_credential(tenant, user, &credential, Some(stored.version))
            .await?;
        Ok(codes)
    }

    /// Turns TOTP off for a user (they, or an administrator, decided so).
    pub async fn disable_mfa(&self, tenant: &str, user: &str) -> Result<(), AuthError> {
        let stored = self
            .catalog
            .credential(tenant, user)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let mut credential = stored.value;
        credential.totp = None;
        credential.recovery_digests.clear();
        self.catalog
            .put_credential(tenant, user, &credential, Some(stored.version))
            .await?;
        Ok(())
    }

    /// Opens a session for a user who has proven who they are (password, SSO).
    pub async fn start_session(
        &self,
        user: &User,
        client: Option<&str>,
        amr: &[&str],
    ) -> Result<Tokens, AuthError> {
        self.check_tenant(&user.tenant_id).await?;
        let now = self.clock.now_ms();
        let secret = random_token(32);
        let session = Session {
            id: random_id(),
            tenant_id: user.tenant_id.clone(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now + self.settings.refresh_ttl_ms,
            refresh_digest: digest(&secret),
            previous_digest: None,
            client: client.map(str::to_owned),
            amr: amr.iter().map(|m| (*m).to_owned()).collect(),
        };
        self.catalog.put_session(&session, None).await?;
        self.tokens(&session, &secret)
    }

    fn tokens(&self, session: &Session, secret: &str) -> Result<Tokens, AuthError> {
        let now = self.clock.now_ms();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: session.user_id.clone(),
            tid: session.tenant_id.clone(),
            sid: session.id.clone(),
            iat: now / SECOND,
            exp: (now + self.settings.access_ttl_ms) / SECOND,
            amr: session.amr.clone(),
        };
        Ok(Tokens {
            access_token: self.keys.sign(&claims)?,
            token_type: "Bearer",
            expires_in: self.settings.access_ttl_ms / SECOND,
            refresh_token: format!("{}.{secret}", session.id),
        })
    }

    /// Exchanges a refresh token for new tokens; the old refresh token stops working. Presenting
    /// an already-rotated token ends the session: someone else has a copy.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let (session_id, secret) = refresh_token
            .split_once('.')
            .ok_or(AuthError::InvalidRefresh)?;
        let Some(stored) = self.catalog.session(session_id).await? else {
            return Err(AuthError::InvalidRefresh);
        };
        let mut session = stored.value;
        self.check_tenant(&session.tenant_id).await?;
        let presented = digest(secret);
        if session.expires_at <= self.clock.now_ms() {
            return Err(AuthError::SessionEnded);
        }
        if !constant_time_eq(&presented, &session.refresh_digest) {
            if session
                .previous_digest
                .as_deref()
                .is_some_and(|prev| constant_time_eq(&presented, prev))
            {
                tracing::warn!(
                    tenant = %session.tenant_id,
                    user = %session.user_id,
                    "a rotated refresh token was reused; ending the session"
                );
                self.catalog.delete_session(&session.id).await?;
            }
            return Err(AuthError::InvalidRefresh);
        }
        let user = self
            .catalog
            .user(&session.tenant_id, &session.user_id)
            .await?;
        if user.is_none_or(|u| u.disabled) {
            self.catalog.delete_session(&session.id).await?;
            return Err(AuthError::SessionEnded);
        }
        let secret = random_token(32);
        session.previous_digest = Some(std::mem::replace(
            &mut session.refresh_digest,
            digest(&secret),
        ));
        match self
            .catalog
            .put_session(&session, Some(stored.version))
            .await
        {
            Ok(()) => self.tokens(&session, &secret),
            Err(StoreError::ConditionFailed(_)) => Err(AuthError::Contended),
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses the users of a suspended or deleted tenant, saying why.
    async fn check_tenant(&self, tenant: &str) -> Result<(), AuthError> {
        match self.catalog.tenant(tenant).await? {
            Some(record) => Ok(record.value.check_active()?),
            None => Ok(()),
        }
    }

    /// Ends a session: its refresh token and every access token issued for it stop working.
    pub async fn logout(&self, session_id: &str) -> Result<(), AuthError> {
        Ok(self.catalog.delete_session(session_id).await?)
    }

    /// Ends every session of a user but `keep` (after a password change, or when disabled).
    pub async fn end_sessions(
        &self,
        tenant: &str,
        user: &str,
        keep: Option<&str>,
    ) -> Result<(), AuthError> {
        for s in self.catalog.sessions_of(tenant, user).await? {
            if Some(s.id.as_str()) != keep {
                self.catalog.delete_session(&s.id).await?;
            }
        }
        Ok(())
    }

    /// Checks an access token and its session, and resolves what the caller may see.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.verify(access_token, self.clock.now_ms())?;
        // TOTP here, or a provider the tenant trusts for it (`trust_amr`).
        let second_factor = claims.amr.iter().any(|m| m == "otp" || m == "mfa");
        let require_mfa = async {
            if second_factor {
                Ok(false)
            } else {
                Ok(self.catalog.settings(&claims.tid).await?.require_mfa)
            }
        };
        // Every request comes this way, and the reads do not depend on each other: asked at
        // once, a request waits for one round trip to the store instead of five.
        let (session, user, policy, departments, (require_mfa, tenant)) = try_join5(
            self.catalog.session(&claims.sid),
            self.catalog.user(&claims.tid, &claims.sub),
            self.catalog.policy(&claims.tid),
            self.catalog.departments(&claims.tid),
            try_join(require_mfa, self.catalog.tenant(&claims.tid)),
        )
        .await?;
        if let Some(tenant) = tenant {
            tenant.value.check_active()?;
        }
        let session = session
            .filter(|s| s.value.tenant_id == claims.tid && s.value.user_id == claims.sub)
            .ok_or(AuthError::SessionEnded)?;
        let user = user.ok_or(AuthError::SessionEnded)?;
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        let policy = policy.map(|v| v.value).unwrap_or_default();
        let tree = DepartmentTree::new(&departments);
        let scope = data_scope(
            &policy,
            &claims.tid,
            &user.id,
            user.department_id.as_deref(),
            &tree,
            "GET",
        );
        let needs_mfa_enrollment = !second_factor && require_mfa;
        Ok(Principal {
            needs_mfa_enrollment,
            second_factor,
            tenant: claims.tid,
            user: user.id,
            session: session.value.id,
            department: user.department_id,
            policy: Arc::new(policy),
            scope,
            departments: Arc::new(tree),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::mfa::TotpEnrollment;
    use crate::model::Department;
    use crate::ports::ManualClock;
    use crate::ports::memory::MemoryMetaStore;
    use crate::ports::{Condition, Item, Key, MetaStore, Page, Query, Write};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const START: Millis = 1_800_000_000_000;

    /// Logs `admin` of `acme` in with a password, expecting no second factor.
    async fn login(
        auth: &AuthService,
        password: &str,
    ) -> Result<Tokens, Box<dyn std::error::Error>> {
        Ok(auth
            .login("acme", "admin", password, None, None)
            .await?
            .tokens()
            .ok_or("a second factor was asked")?)
    }

    fn service() -> (AuthService, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(START));
        let store = Arc::new(MemoryMetaStore::with_clock(clock.clone()));
        (service_on(store, clock.clone()), clock)
    }

    fn service_on(store: Arc<dyn MetaStore>, clock: Arc<ManualClock>) -> AuthService {
        let keys = TokenKeys::from_secret(&[9u8; 32]).expect("a 32-byte key");
        AuthService::new(Catalog::new(store), clock, keys, AuthSettings::default())
    }

    #[tokio::test]
    async fn bootstrap_makes_an_admin_who_can_log_in_once_only() -> TestResult {
        let (auth, _) = service();
        assert!(
            auth.bootstrap_tenant("acme", "admin", "first password!")
                .await?
        );
        assert!(
            !auth
                .bootstrap_tenant("acme", "admin", "another password")
                .await?
        );
        let tokens = login(&auth, "first password!").await?;
        let me = auth.authenticate(&tokens.access_token).await?;
        assert_eq!((me.tenant.as_str(), me.user.as_str()), ("acme", "admin"));
        assert!(me.can("/v1/users", "POST"));
        assert_eq!(me.scope, DataScope::All);
        assert_eq!(me.roles(), BTreeSet::from(["admin".to_owned()]));
        Ok(())
    }

    /// A store whose reads each take one turn of the executor, counting how many are under way
    /// at once: reads asked one after another never overlap.
    struct OverlapCountingStore {
        inner: MemoryMetaStore,
        in_flight: std::sync::atomic::AtomicUsize,
        most_at_once: std::sync::atomic::AtomicUsize,
    }

    impl OverlapCountingStore {
        async fn read<T>(&self, read: impl Future<Output = T>) -> T {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_at_once.fetch_max(now, SeqCst);
            let mut waited = false;
            std::future::poll_fn(|cx| {
                if std::mem::replace(&mut waited, true) {
                    std::task::Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await;
            self.in_flight.fetch_sub(1, SeqCst);
            read.await
        }
    }

    #[async_trait::async_trait]
    impl MetaStore for OverlapCountingStore {
        async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
            self.read(self.inner.get(key)).await
        }
        async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
            self.inner.put(item, condition).await
        }
        async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
            self.inner.delete(key, condition).await
        }
        async fn query(&self, query: &Query) -> Result<Page, StoreError> {
            self.read(self.inner.query(query)).await
        }
        async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
            self.inner.transact(writes).await
        }
    }

    #[tokio::test]
    async fn a_request_reads_its_session_user_and_policy_at_once() -> TestResult {
        use std::sync::atomic::Ordering::SeqCst;
        let clock = Arc::new(ManualClock::new(START));
        let store = Arc::new(OverlapCountingStore {
            inner: MemoryMetaStore::with_clock(clock.clone()),
            in_flight: 0.into(),
            most_at_once: 0.into(),
        });
        let auth = service_on(store.clone(), clock);
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        let tokens = login(&auth, "first password!").await?;
        store.most_at_once.store(0, SeqCst);
        let me = auth.authenticate(&tokens.access_token).await?;
        assert_eq!(me.user, "admin");
        // Session, user, policy, departments, the tenant's settings and its record, in one
        // round trip.
        assert_eq!(store.most_at_once.load(SeqCst), 6);
        Ok(())
    }

    #[tokio::test]
    async fn password_re_checks_count_failures_as_logins_do() -> TestResult {
        let (auth, _clock) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        assert!(
            auth.check_password("acme", "admin", "first password!", None)
                .await?
        );
        for _ in 0..4 {
            assert!(!auth.check_password("acme", "admin", "guess", None).await?);
        }
        let e = auth
            .check_password("acme", "admin", "guess", None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Locked(_)), "{e}");
        // The lock holds for the right password and for sign-in alike.
        let e = auth
            .check_password("acme", "admin", "first password!", None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Locked(_)), "{e}");
        let e = auth
            .login("acme", "admin", "first password!", None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Locked(_)), "{e}");
        Ok(())
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_account_for_a_while() -> TestResult {
        let (auth, clock) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        for _ in 0..4 {
            let e = auth
                .login("acme", "admin", "wrong", None, None)
                .await
                .unwrap_err();
            assert!(matches!(e, AuthError::InvalidCredentials), "{e}");
        }
        let e = auth
            .login("acme", "admin", "wrong", None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, AuthError::Locked(t) if t == START + 15 * MINUTE),
            "{e}"
        );
        // Even the right password waits out the lock.
        let e = auth
            .login("acme", "admin", "first password!", None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Locked(_)), "{e}");
        clock.advance(15 * MINUTE);
        login(&auth, "first password!").await?;
        // An unknown user gets the very same answer as a wrong password.
        let e = auth
            .login("acme", "nobody", "x", None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials));
        Ok(())
    }

    #[tokio::test]
    async fn refresh_rotates_and_a_reused_token_ends_the_session() -> TestResult {
        let (auth, _) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        let first = login(&auth, "first password!").await?;
        let second = auth.refresh(&first.refresh_token).await?;
        assert_ne!(first.refresh_token, second.refresh_token);
        auth.authenticate(&second.access_token).await?;
        // The first token again: theft assumed, the whole session ends.
        assert!(matches!(
            auth.refresh(&first.refresh_token).await,
            Err(AuthError::InvalidRefresh)
        ));
        assert!(matches!(
            auth.refresh(&second.refresh_token).await,
            Err(AuthError::InvalidRefresh)
        ));
        assert!(matches!(
            auth.authenticate(&second.access_token).await,
            Err(AuthError::SessionEnded)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn logout_and_expiry_end_access() -> TestResult {
        let (auth, clock) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        let a = login(&auth, "first password!").await?;
        let b = login(&auth, "first password!").await?;
        let session = auth.authenticate(&a.access_token).await?.session;
        auth.logout(&session).await?;
        assert!(matches!(
            auth.authenticate(&a.access_token).await,
            Err(AuthError::SessionEnded)
        ));
        assert!(auth.refresh(&a.refresh_token).await.is_err());
        // The other login is untouched until its access token expires.
        auth.authenticate(&b.access_token).await?;
        clock.advance(15 * MINUTE);
        assert!(matches!(
            auth.authenticate(&b.access_token).await,
            Err(AuthError::Token(TokenError::Expired))
        ));
        // Its refresh token still works, once.
        let c = auth.refresh(&b.refresh_token).await?;
        auth.authenticate(&c.access_token).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_password_change_ends_the_other_sessions() -> TestResult {
        let (auth, _) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        let a = login(&auth, "first password!").await?;
        let b = login(&auth, "first password!").await?;
        let keep = auth.authenticate(&a.access_token).await?.session;
        let weak = auth
            .set_password("acme", "admin", "short", Some(&keep))
            .await;
        assert!(matches!(weak, Err(AuthError::WeakPassword(_))));
        auth.set_password("acme", "admin", "second password!", Some(&keep))
            .await?;
        auth.authenticate(&a.access_token).await?;
        assert!(auth.authenticate(&b.access_token).await.is_err());
        assert!(
            auth.login("acme", "admin", "first password!", None, None)
                .await
                .is_err()
        );
        auth.login("acme", "admin", "second password!", None, None)
            .await?;
        Ok(())
    }

    #[test]
    fn data_scope_is_the_department_subtree_plus_what_roles_grant() -> Result<(), PolicyErr> {
        let dept = |id: &str, parent: Option<&str>| Department {
            id: id.into(),
            tenant_id: "t".into(),
            name: id.into(),
            parent_id: parent.map(Into::into),
        };
        let tree = DepartmentTree::new(&[
            dept("hq", None),
            dept("north", Some("hq")),
            dept("plant-1", Some("north")),
            dept("south", Some("hq")),
        ]);
        let policy = Policy::from_csv(
            "p, auditor, t, department:south, GET\n\
             g, sam, auditor, t\n\
             p, boss, t, department:*, GET\n\
             g, bo, boss, t\n",
        )?;
        let scope = data_scope(&policy, "t", "nora", Some("north"), &tree, "GET");
        assert!(scope.allows("plant-1") && scope.allows("north"));
        assert!(!scope.allows("hq") && !scope.allows("south"));
        let scope = data_scope(&policy, "t", "sam", Some("plant-1"), &tree, "GET");
        assert!(scope.allows("plant-1") && scope.allows("south") && !scope.allows("north"));
        // A grant counts for its action only: sam reads south, and changes his own plant only.
        for write in ["PUT", "POST", "DELETE"] {
            let scope = data_scope(&policy, "t", "sam", Some("plant-1"), &tree, write);
            assert!(scope.allows("plant-1") && !scope.allows("south"), "{write}");
        }
        assert_eq!(
            data_scope(&policy, "t", "bo", None, &tree, "GET"),
            DataScope::All
        );
        assert!(!data_scope(&policy, "t", "bo", None, &tree, "PUT").allows("hq"));
        assert!(!data_scope(&policy, "t", "nobody", None, &tree, "GET").allows("hq"));
        Ok(())
    }

    type PolicyErr = super::super::PolicyError;

    #[tokio::test]
    async fn totp_is_enrolled_confirmed_and_then_asked_at_every_login() -> TestResult {
        let (auth, clock) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        let enrollment = auth.enroll_mfa("acme", "admin").await?;
        assert!(enrollment.otpauth_url.contains(&enrollment.secret));
        let app = TotpEnrollment {
            secret: enrollment.secret.clone(),
            confirmed: true,
            last_step: 0,
        };
        assert!(matches!(
            auth.confirm_mfa("acme", "admin", "000000").await,
            Err(AuthError::InvalidCode)
        ));
        let recovery = auth
            .confirm_mfa("acme", "admin", &app.code_at(clock.now_ms()))
            .await?;
        assert_eq!(recovery.len(), 10);

        let outcome = auth
            .login("acme", "admin", "first password!", None, None)
            .await?;
        let LoginOutcome::MfaRequired { mfa_token, .. } = outcome else {
            return Err("a second factor should be asked".into());
        };
        // The intermediate token is no access token.
        assert!(auth.authenticate(&mfa_token).await.is_err());
        clock.advance(30 * SECOND);
        let code = app.code_at(clock.now_ms());
        let tokens = auth.verify_mfa(&mfa_token, &code, None, None).await?;
        let me = auth.authenticate(&tokens.access_token).await?;
        assert!(!me.needs_mfa_enrollment);
        // The same code again is refused; a recovery code works once.
        assert!(matches!(
            auth.verify_mfa(&mfa_token, &code, None, None).await,
            Err(AuthError::InvalidCode)
        ));
        auth.verify_mfa(&mfa_token, &recovery[0], None, None)
            .await?;
        assert!(
            auth.verify_mfa(&mfa_token, &recovery[0], None, None)
                .await
                .is_err()
        );
        // The intermediate token expires.
        clock.advance(5 * MINUTE);
        assert!(matches!(
            auth.verify_mfa(&mfa_token, &recovery[1], None, None).await,
            Err(AuthError::Token(TokenError::Expired))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_tenant_that_requires_mfa_holds_back_users_without_it() -> TestResult {
        let (auth, _) = service();
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?;
        auth.catalog()
            .put_settings(
                "acme",
                &crate::auth::TenantSettings {
                    require_mfa: true,
                    oidc: None,
                },
            )
            .await?;
        let tokens = auth
            .login("acme", "admin", "first password!", None, None)
            .await?
            .tokens()
            .ok_or("not enrolled yet, so no second factor is asked")?;
        assert!(
            auth.authenticate(&tokens.access_token)
                .await?
                .needs_mfa_enrollment
        );
        Ok(())
    }
}
