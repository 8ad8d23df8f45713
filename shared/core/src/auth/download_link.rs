//! Signed download links for firmware images on one machine, where no S3 presigns them: a
//! token of the platform's signing keys, for one package of one tenant, that expires. A
//! device fetches its image with the link alone, as it would a presigned S3 URL.

use super::service::AuthService;
use super::token::{AccessClaims, ISSUER, TokenError};
use crate::time::{Millis, SECOND};

/// The audience of download links: an access token is never one, nor the reverse.
pub const DOWNLOAD_AUDIENCE: &str = "iot-platform-firmware-download";

/// What a valid link grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadGrant {
    pub tenant: String,
    pub package_id: String,
    /// The device it was minted for (kept in logs, not checked).
    pub device_uid: String,
}

impl AuthService {
    /// A link token for `package_id` of `tenant`, valid `for_ms`.
    pub fn download_token(
        &self,
        tenant: &str,
        package_id: &str,
        device_uid: &str,
        for_ms: Millis,
    ) -> Result<String, TokenError> {
        let now = self.clock.now_ms();
        self.keys.sign(&AccessClaims {
            iss: ISSUER.into(),
            aud: DOWNLOAD_AUDIENCE.into(),
            sub: package_id.into(),
            tid: tenant.into(),
            sid: device_uid.into(),
            iat: now / SECOND,
            exp: (now + for_ms) / SECOND,
            amr: Vec::new(),
        })
    }

    pub fn verify_download(&self, token: &str) -> Result<DownloadGrant, TokenError> {
        let claims = self
            .keys
            .verify_for(token, DOWNLOAD_AUDIENCE, self.clock.now_ms())?;
        Ok(DownloadGrant {
            tenant: claims.tid,
            package_id: claims.sub,
            device_uid: claims.sid,
        })
    }
}
