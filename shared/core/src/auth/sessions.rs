//! Sessions: their access and refresh tokens, refresh with reuse detection, logout, and
//! checking an access token on every request.

use super::department::DepartmentTree;
use super::secret::{constant_time_eq, digest, random_id, random_token};
use super::token::{AUDIENCE, AccessClaims, ISSUER};
use super::user::{Session, User};
use super::{AuthError, AuthService, Principal, Tokens, data_scope};
use crate::ports::StoreError;
use crate::time::SECOND;
use futures_util::future::{try_join, try_join5};
use std::sync::Arc;

impl AuthService {
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

    pub(super) fn tokens(&self, session: &Session, secret: &str) -> Result<Tokens, AuthError> {
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
    pub(super) async fn check_tenant(&self, tenant: &str) -> Result<(), AuthError> {
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
}
