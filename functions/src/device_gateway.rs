//! The API function's device side: AWS IoT Core through [`IotGateway`], connected on first
//! use, so cold starts of requests that never touch devices pay nothing for it.

use async_trait::async_trait;
use aws_config::SdkConfig;
use iot_aws::{IotGateway, IotSettings};
use iot_core::model::Device;
use iot_core::ota::Rollout;
use iot_core::ports::{DeviceCredentials, DeviceGateway, GatewayError, RolloutJob};
use serde_json::Value;
use tokio::sync::OnceCell;

pub struct LazyIotGateway {
    sdk: SdkConfig,
    settings: IotSettings,
    gateway: OnceCell<IotGateway>,
}

impl LazyIotGateway {
    pub fn new(sdk: SdkConfig, settings: IotSettings) -> Self {
        Self {
            sdk,
            settings,
            gateway: OnceCell::new(),
        }
    }

    /// Connects (looks up the account's IoT data endpoint) once; a failure is retried on the
    /// next call.
    async fn get(&self) -> Result<&IotGateway, GatewayError> {
        self.gateway
            .get_or_try_init(|| IotGateway::connect(&self.sdk, self.settings.clone()))
            .await
    }
}

#[async_trait]
impl DeviceGateway for LazyIotGateway {
    async fn register(&self, device: &Device) -> Result<DeviceCredentials, GatewayError> {
        self.get().await?.register(device).await
    }

    async fn deregister(&self, device_uid: &str) -> Result<(), GatewayError> {
        self.get().await?.deregister(device_uid).await
    }

    async fn set_tenant_access(&self, tenant: &str, allowed: bool) -> Result<(), GatewayError> {
        self.get().await?.set_tenant_access(tenant, allowed).await
    }

    async fn send_command(&self, device_uid: &str, command: &Value) -> Result<(), GatewayError> {
        self.get().await?.send_command(device_uid, command).await
    }

    async fn set_desired(&self, device_uid: &str, desired: &Value) -> Result<Value, GatewayError> {
        self.get().await?.set_desired(device_uid, desired).await
    }

    async fn shadow(&self, device_uid: &str) -> Result<Option<Value>, GatewayError> {
        self.get().await?.shadow(device_uid).await
    }

    async fn start_rollout(&self, job: &RolloutJob<'_>) -> Result<(), GatewayError> {
        self.get().await?.start_rollout(job).await
    }

    async fn cancel_rollout(&self, rollout: &Rollout, force: bool) -> Result<(), GatewayError> {
        self.get().await?.cancel_rollout(rollout, force).await
    }
}
