//! A device's own credential, checked the same way for HTTP ingest and for the embedded
//! broker's CONNECT: the uid's stored token digest, compared in constant time.

use thiserror::Error;

use crate::auth::secret::{constant_time_eq, digest};
use crate::model::Device;
use crate::ports::StoreError;
use crate::repo::Catalog;

#[derive(Debug, Error)]
pub enum DeviceAuthError {
    /// Unknown device, no token, or a wrong one: told alike.
    #[error("unknown device or wrong device token")]
    Refused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `secret` is the device token of `uid`, and answers the device.
pub async fn verify_device(
    catalog: &Catalog,
    uid: &str,
    secret: &str,
) -> Result<Device, DeviceAuthError> {
    let (stored, device) =
        futures_util::future::try_join(catalog.device_token(uid), catalog.device(uid)).await?;
    let matches = stored.is_some_and(|d| constant_time_eq(&d, &digest(secret)));
    match device {
        Some(device) if matches => Ok(device),
        _ => Err(DeviceAuthError::Refused),
    }
}
