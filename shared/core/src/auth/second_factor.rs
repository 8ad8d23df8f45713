//! The second factor: TOTP enrollment, confirmation and removal, and the code that completes a
//! sign-in begun with a password.

use super::mfa::{TotpEnrollment, recovery_codes, use_recovery_code};
use super::token::MFA_AUDIENCE;
use super::{AuthError, AuthService, Tokens};
use crate::ports::StoreError;
use crate::time::{MINUTE, Millis};

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
pub(super) const MFA_TOKEN_TTL_MS: Millis = 5 * MINUTE;

impl AuthService {
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
}
