use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::Device;
use crate::ota::{FirmwarePackage, Rollout};

/// A device's identity, returned once at registration and never stored by the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceCredentials {
    pub certificate_id: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
    /// The MQTT endpoint the device connects to.
    pub endpoint: String,
}

/// A rollout's job as a gateway starts it: the devices are checked and their executions
/// queued already.
#[derive(Clone, Copy, Debug)]
pub struct RolloutJob<'a> {
    pub rollout: &'a Rollout,
    pub package: &'a FirmwarePackage,
    pub devices: &'a [String],
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GatewayError {
    #[error("device {0:?} is not registered")]
    UnknownDevice(String),
    #[error("device {0:?} is already registered")]
    AlreadyRegistered(String),
    #[error("device gateway unavailable: {0}")]
    Unavailable(String),
}

/// A credential whose live broker sessions end when it is replaced or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCredential {
    /// The device's token (its MQTT password), by uid.
    DeviceToken(String),
    /// An application credential, by id.
    Application(String),
}

/// The device side of the platform: registry and credentials, commands and desired state, jobs
/// (AWS IoT Core, or the embedded broker).
#[async_trait]
pub trait DeviceGateway: Send + Sync {
    async fn register(&self, device: &Device) -> Result<DeviceCredentials, GatewayError>;
    /// Deletes the device's identity; its live connections end.
    async fn deregister(&self, device_uid: &str) -> Result<(), GatewayError>;
    /// Refuses (`false`) or again accepts the connections of every device of a tenant, and
    /// ends those that are live: a suspended tenant. On IoT Core, a deny-all policy on the
    /// tenant's thing group; on the embedded broker, its sessions are closed and CONNECTs are
    /// refused while the tenant's record says suspended.
    async fn set_tenant_access(&self, tenant: &str, allowed: bool) -> Result<(), GatewayError>;
    /// Ends the live sessions opened with a credential that was just replaced or deleted,
    /// where the platform runs the broker. Other brokers check it at the next sign-in only
    /// (IoT Core has no such credentials; Mosquitto reads its files again on SIGHUP).
    async fn end_sessions(&self, _credential: &SessionCredential) -> Result<(), GatewayError> {
        Ok(())
    }
    /// Publishes a command to `things/{uid}/down/command`.
    async fn send_command(
        &self,
        device_uid: &str,
        command: &serde_json::Value,
    ) -> Result<(), GatewayError>;
    /// Merges desired state into the device shadow and answers the shadow after it; the
    /// device hears the difference on `$aws/things/{uid}/shadow/update/delta`.
    async fn set_desired(
        &self,
        device_uid: &str,
        desired: &serde_json::Value,
    ) -> Result<serde_json::Value, GatewayError>;
    /// The device shadow document (`{"state": {"desired": ..., "reported": ...}, ...}`), or
    /// `None` if nothing was ever set.
    async fn shadow(&self, device_uid: &str) -> Result<Option<serde_json::Value>, GatewayError>;
    /// Starts a rollout's job. On AWS an IoT job with the rollout's rate, abort and timeout
    /// settings; where the platform runs jobs itself, nothing to do (its engine reads the
    /// store).
    async fn start_rollout(&self, job: &RolloutJob<'_>) -> Result<(), GatewayError>;
    /// Cancels a rollout's job: queued executions, and with `force` those in progress too.
    async fn cancel_rollout(&self, rollout: &Rollout, force: bool) -> Result<(), GatewayError>;
}
