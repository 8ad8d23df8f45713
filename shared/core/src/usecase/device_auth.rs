//! A device's own credential, checked the same way for HTTP ingest and for the embedded
//! broker's CONNECT: the uid's stored token digest, compared in constant time.

use thiserror::Error;

use crate::auth::secret::{constant_time_eq, digest};
use crate::model::TenantRefused;
use crate::ports::StoreError;
use crate::repo::Catalog;

#[derive(Debug, Error)]
pub enum DeviceAuthError {
    /// Unknown device, no token, or a wrong one: told alike.
    #[error("unknown device or wrong device token")]
    Refused,
    /// The device's tenant is suspended or deleted.
    #[error(transparent)]
    Tenant(#[from] TenantRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks that `secret` is the device token of `uid`, and that the device's tenant is active.
/// The token tells the device exists: deleting a device deletes its token in the same
/// transaction.
pub async fn verify_device(
    catalog: &Catalog,
    uid: &str,
    secret: &str,
) -> Result<String, DeviceAuthError> {
    let stored = catalog.device_token(uid).await?;
    if !stored.is_some_and(|d| constant_time_eq(&d, &digest(secret))) {
        return Err(DeviceAuthError::Refused);
    }
    check_tenant(catalog, uid).await
}

/// Checks that the certificate `certificate_id` (its DER's SHA-256, which the TLS layer has
/// verified against the device CA) is the one registered for `uid`: a revoked or another
/// device's certificate signs nobody in.
pub async fn verify_device_certificate(
    catalog: &Catalog,
    uid: &str,
    certificate_id: &str,
) -> Result<String, DeviceAuthError> {
    let stored = catalog.device_certificate(uid).await?;
    if !stored.is_some_and(|id| constant_time_eq(&id, certificate_id)) {
        return Err(DeviceAuthError::Refused);
    }
    check_tenant(catalog, uid).await
}

/// A device of a suspended or deleted tenant is refused; answers the device's tenant.
async fn check_tenant(catalog: &Catalog, uid: &str) -> Result<String, DeviceAuthError> {
    let device = catalog.device(uid).await?.ok_or(DeviceAuthError::Refused)?;
    check_tenant_active(catalog, &device.tenant_id).await?;
    Ok(device.tenant_id)
}

async fn check_tenant_active(catalog: &Catalog, tenant: &str) -> Result<(), DeviceAuthError> {
    if let Some(tenant) = catalog.tenant(tenant).await? {
        tenant.value.check_active()?;
    }
    Ok(())
}

/// Checks an application credential (`id` and its secret) and that its tenant is active;
/// answers the tenant whose devices the application may read.
pub async fn verify_application(
    catalog: &Catalog,
    id: &str,
    secret: &str,
) -> Result<String, DeviceAuthError> {
    let stored = catalog.app_credential(id).await?;
    let Some(credential) = stored.filter(|c| constant_time_eq(&c.digest, &digest(secret))) else {
        return Err(DeviceAuthError::Refused);
    };
    check_tenant_active(catalog, &credential.tenant_id).await?;
    Ok(credential.tenant_id)
}
