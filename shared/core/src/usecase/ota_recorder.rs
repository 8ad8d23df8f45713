//! The image store and gateway of `OtaService::recorder`, which records job statuses only:
//! every other call is refused.

use crate::model::Device;
use crate::ota::Rollout;
use crate::ports::{
    BlobError, BlobStore, DeviceCredentials, DeviceGateway, GatewayError, RolloutJob,
    SessionCredential,
};

/// The image store of `OtaService::recorder`: it has none.
pub(super) struct NoImages;

#[async_trait::async_trait]
impl BlobStore for NoImages {
    async fn put(&self, _: &str, _: Vec<u8>, _: &str) -> Result<(), BlobError> {
        Err(no_images())
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, BlobError> {
        Err(no_images())
    }
    async fn list(&self, _: &str) -> Result<Vec<String>, BlobError> {
        Err(no_images())
    }
    async fn delete(&self, _: &str) -> Result<(), BlobError> {
        Err(no_images())
    }
    async fn download_url(&self, _: &str, _: u64) -> Result<String, BlobError> {
        Err(no_images())
    }
}

fn no_images() -> BlobError {
    BlobError::Unavailable("this function records job statuses only".into())
}

/// The gateway of `OtaService::recorder`: it starts no jobs.
pub(super) struct NoJobs;

#[async_trait::async_trait]
impl DeviceGateway for NoJobs {
    async fn register(&self, _: &Device) -> Result<DeviceCredentials, GatewayError> {
        Err(no_jobs())
    }
    async fn deregister(&self, _: &str) -> Result<(), GatewayError> {
        Err(no_jobs())
    }
    async fn set_tenant_access(&self, _: &str, _: bool) -> Result<(), GatewayError> {
        Err(no_jobs())
    }
    async fn end_sessions(&self, _: &SessionCredential) -> Result<(), GatewayError> {
        Err(no_jobs())
    }
    async fn send_command(&self, _: &str, _: &serde_json::Value) -> Result<(), GatewayError> {
        Err(no_jobs())
    }
    async fn set_desired(
        &self,
        _: &str,
        _: &serde_json::Value,
    ) -> Result<serde_json::Value, GatewayError> {
        Err(no_jobs())
    }
    async fn shadow(&self, _: &str) -> Result<Option<serde_json::Value>, GatewayError> {
        Err(no_jobs())
    }
    async fn start_rollout(&self, _: &RolloutJob<'_>) -> Result<(), GatewayError> {
        Err(no_jobs())
    }
    async fn cancel_rollout(&self, _: &Rollout, _: bool) -> Result<(), GatewayError> {
        Err(no_jobs())
    }
}

fn no_jobs() -> GatewayError {
    GatewayError::Unavailable("this function records job statuses only".into())
}
