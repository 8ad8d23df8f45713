//! [`DeviceGateway`] on AWS IoT Core: a thing per device (in its tenant's thing group), one
//! X.509 certificate per device with the platform's device policy attached (the policy scopes
//! topics to `${iot:Connection.Thing.ThingName}`), commands published through IoT Data, desired
//! state in the classic shadow, and firmware rollouts as IoT Jobs (`jobs.rs`).
//!
//! The private key is returned once, to the caller of `register`, and never stored or logged.

use async_trait::async_trait;
use aws_sdk_iot::types::{AttributePayload, CertificateStatus};
use aws_sdk_iotdataplane::primitives::Blob;
use iot_core::model::Device;
use iot_core::ota::Rollout;
use iot_core::ports::{DeviceCredentials, DeviceGateway, GatewayError, RolloutJob};
use serde_json::json;

use crate::error::{code, describe};

mod jobs;

pub type IotClient = aws_sdk_iot::Client;
pub type IotDataClient = aws_sdk_iotdataplane::Client;

#[derive(Clone, Debug)]
pub struct IotSettings {
    /// The device policy every certificate gets (declared in the SAM template).
    pub policy_name: String,
    /// Thing groups are `{prefix}{tenant}`, so fleet jobs and policies can target a tenant.
    pub thing_group_prefix: String,
    /// A deny-all policy (declared in the SAM template) attached to a suspended tenant's thing
    /// group: an explicit deny outweighs the device policy for every thing in it.
    pub suspended_policy_name: String,
    /// The bucket firmware images are uploaded to.
    pub firmware_bucket: String,
    /// The role IoT Jobs assumes to presign firmware download links (declared in the SAM
    /// template; this function may pass it, nothing more).
    pub job_presign_role_arn: String,
}

#[derive(Clone)]
pub struct IotGateway {
    iot: IotClient,
    data: IotDataClient,
    settings: IotSettings,
    /// The account's ATS data endpoint, which devices connect to.
    endpoint: String,
}

fn unavailable<E, R>(error: &aws_sdk_iot::error::SdkError<E, R>) -> GatewayError
where
    E: std::error::Error + aws_sdk_iot::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    GatewayError::Unavailable(describe(error))
}

fn data_error<E, R>(device_uid: &str, error: &aws_sdk_iot::error::SdkError<E, R>) -> GatewayError
where
    E: std::error::Error + aws_sdk_iot::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match code(error) {
        Some("ResourceNotFoundException") => GatewayError::UnknownDevice(device_uid.to_owned()),
        _ => GatewayError::Unavailable(describe(error)),
    }
}

impl IotGateway {
    /// Looks up the account's data endpoint once. On AWS the IoT Data client must be aimed at
    /// it; on an emulator the configured endpoint serves both planes.
    pub async fn connect(
        config: &aws_config::SdkConfig,
        settings: IotSettings,
    ) -> Result<Self, GatewayError> {
        let iot = IotClient::new(config);
        let endpoint = iot
            .describe_endpoint()
            .endpoint_type("iot:Data-ATS")
            .send()
            .await
            .map_err(|e| unavailable(&e))?
            .endpoint_address()
            .unwrap_or_default()
            .to_owned();
        let data = if crate::config::uses_custom_endpoint(config) {
            IotDataClient::new(config)
        } else {
            let data_config = aws_sdk_iotdataplane::config::Builder::from(config)
                .endpoint_url(format!("https://{endpoint}"))
                .build();
            IotDataClient::from_conf(data_config)
        };
        Ok(Self {
            iot,
            data,
            settings,
            endpoint,
        })
    }

    async fn ensure_group(&self, tenant: &str) -> Result<String, GatewayError> {
        let group = format!("{}{tenant}", self.settings.thing_group_prefix);
        match self
            .iot
            .create_thing_group()
            .thing_group_name(&group)
            .send()
            .await
        {
            Ok(_) => Ok(group),
            Err(e) if code(&e) == Some("ResourceAlreadyExistsException") => Ok(group),
            Err(e) => Err(unavailable(&e)),
        }
    }

    async fn thing_arn(&self, device_uid: &str) -> Result<String, GatewayError> {
        let thing = self
            .iot
            .describe_thing()
            .thing_name(device_uid)
            .send()
            .await
            .map_err(|e| data_error(device_uid, &e))?;
        Ok(thing.thing_arn().unwrap_or_default().to_owned())
    }

    /// The thing's shadow document, `None` if it has none.
    async fn read_shadow(
        &self,
        device_uid: &str,
    ) -> Result<Option<serde_json::Value>, GatewayError> {
        match self
            .data
            .get_thing_shadow()
            .thing_name(device_uid)
            .send()
            .await
        {
            Ok(output) => {
                let bytes = output.payload().map(|p| p.as_ref()).unwrap_or_default();
                serde_json::from_slice(bytes)
                    .map(Some)
                    .map_err(|e| GatewayError::Unavailable(format!("shadow of {device_uid}: {e}")))
            }
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(GatewayError::Unavailable(describe(&e))),
        }
    }
}

#[async_trait]
impl DeviceGateway for IotGateway {
    async fn register(&self, device: &Device) -> Result<DeviceCredentials, GatewayError> {
        match self.thing_arn(&device.uid).await {
            Ok(_) => return Err(GatewayError::AlreadyRegistered(device.uid.clone())),
            Err(GatewayError::UnknownDevice(_)) => {}
            Err(e) => return Err(e),
        }
        let attributes = AttributePayload::builder()
            .attributes("tenant_id", &device.tenant_id)
            .attributes("product_id", &device.product_id)
            .build();
        self.iot
            .create_thing()
            .thing_name(&device.uid)
            .attribute_payload(attributes)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let group = self.ensure_group(&device.tenant_id).await?;
        self.iot
            .add_thing_to_thing_group()
            .thing_group_name(group)
            .thing_name(&device.uid)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let keys = self
            .iot
            .create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let certificate_arn = keys.certificate_arn().unwrap_or_default().to_owned();
        self.iot
            .attach_policy()
            .policy_name(&self.settings.policy_name)
            .target(&certificate_arn)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        self.iot
            .attach_thing_principal()
            .thing_name(&device.uid)
            .principal(&certificate_arn)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        tracing::info!(device = %device.uid, certificate = keys.certificate_id().unwrap_or_default(), "device registered");
        Ok(DeviceCredentials {
            certificate_id: keys.certificate_id().unwrap_or_default().to_owned(),
            certificate_pem: keys.certificate_pem().unwrap_or_default().to_owned(),
            private_key_pem: keys
                .key_pair()
                .and_then(|k| k.private_key())
                .unwrap_or_default()
                .to_owned(),
            endpoint: self.endpoint.clone(),
        })
    }

    /// Revokes and deletes the device's certificates, then the thing.
    async fn deregister(&self, device_uid: &str) -> Result<(), GatewayError> {
        self.thing_arn(device_uid).await?;
        let principals = self
            .iot
            .list_thing_principals()
            .thing_name(device_uid)
            .send()
            .await
            .map_err(|e| data_error(device_uid, &e))?;
        for arn in principals.principals() {
            self.iot
                .detach_thing_principal()
                .thing_name(device_uid)
                .principal(arn)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            self.iot
                .detach_policy()
                .policy_name(&self.settings.policy_name)
                .target(arn)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            let Some(id) = arn.rsplit('/').next() else {
                continue;
            };
            self.iot
                .update_certificate()
                .certificate_id(id)
                .new_status(CertificateStatus::Inactive)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            self.iot
                .delete_certificate()
                .certificate_id(id)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
        }
        self.iot
            .delete_thing()
            .thing_name(device_uid)
            .send()
            .await
            .map_err(|e| data_error(device_uid, &e))?;
        Ok(())
    }

    /// A thing group's policies apply to its things when they connect with their thing name
    /// as client id, as the device policy requires; IoT Core re-evaluates them on the next
    /// publish or subscribe of a live connection.
    async fn set_tenant_access(&self, tenant: &str, allowed: bool) -> Result<(), GatewayError> {
        let group = self.ensure_group(tenant).await?;
        let arn = self
            .iot
            .describe_thing_group()
            .thing_group_name(&group)
            .send()
            .await
            .map_err(|e| unavailable(&e))?
            .thing_group_arn()
            .unwrap_or_default()
            .to_owned();
        let policy = &self.settings.suspended_policy_name;
        if allowed {
            match self
                .iot
                .detach_policy()
                .policy_name(policy)
                .target(&arn)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code(&e) == Some("ResourceNotFoundException") => {}
                Err(e) => return Err(unavailable(&e)),
            }
        } else {
            self.iot
                .attach_policy()
                .policy_name(policy)
                .target(&arn)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
        }
        tracing::info!(%tenant, allowed, "tenant's device access changed");
        Ok(())
    }

    async fn send_command(
        &self,
        device_uid: &str,
        command: &serde_json::Value,
    ) -> Result<(), GatewayError> {
        self.thing_arn(device_uid).await?;
        self.data
            .publish()
            .topic(iot_core::topics::command_topic(device_uid))
            .qos(1)
            .payload(Blob::new(command.to_string()))
            .send()
            .await
            .map_err(|e| GatewayError::Unavailable(describe(&e)))?;
        Ok(())
    }

    async fn set_desired(
        &self,
        device_uid: &str,
        desired: &serde_json::Value,
    ) -> Result<serde_json::Value, GatewayError> {
        self.thing_arn(device_uid).await?;
        let document = json!({ "state": { "desired": desired } });
        self.data
            .update_thing_shadow()
            .thing_name(device_uid)
            .payload(Blob::new(document.to_string()))
            .send()
            .await
            .map_err(|e| GatewayError::Unavailable(describe(&e)))?;
        // The update answers only what changed; the whole document is a read away.
        let shadow = self.read_shadow(device_uid).await?;
        Ok(shadow.unwrap_or_else(|| json!({ "state": { "desired": desired } })))
    }

    async fn shadow(&self, device_uid: &str) -> Result<Option<serde_json::Value>, GatewayError> {
        self.thing_arn(device_uid).await?;
        self.read_shadow(device_uid).await
    }

    async fn start_rollout(&self, job: &RolloutJob<'_>) -> Result<(), GatewayError> {
        self.create_rollout_job(job).await
    }

    async fn cancel_rollout(&self, rollout: &Rollout, force: bool) -> Result<(), GatewayError> {
        self.cancel_rollout_job(rollout, force).await
    }
}
