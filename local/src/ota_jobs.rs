//! Firmware jobs on one machine: the platform answers the AWS IoT Jobs MQTT API itself
//! (`iot_core::usecase::DeviceJobs`) and advances rollouts on a timer with the rules IoT Jobs
//! applies (`OtaService::advance`), so a device's OTA client is the same here and on AWS.
//! Download links are signed tokens of the local API, minted at each delivery.

use iot_core::auth::AuthService;
use iot_core::time::HOUR;
use iot_core::topics::JobsRequest;
use iot_core::usecase::{DeviceJobs, DownloadLinks, JobsMessage, OtaError, OtaService};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::gateway::LocalGateway;

/// Links to `GET {base}/v1/firmware-downloads/{token}`, valid an hour from each delivery.
pub struct SignedLinks {
    pub auth: Arc<AuthService>,
    /// `http://host:port` as devices reach the API.
    pub base: String,
}

impl DownloadLinks for SignedLinks {
    fn url(&self, tenant: &str, package_id: &str, device_uid: &str) -> Result<String, OtaError> {
        let token = self
            .auth
            .download_token(tenant, package_id, device_uid, HOUR)
            .map_err(|e| OtaError::Link(e.to_string()))?;
        Ok(format!("{}/v1/firmware-downloads/{token}", self.base))
    }
}

pub struct LocalJobs {
    pub jobs: DeviceJobs,
    pub ota: Arc<OtaService>,
    pub gateway: Arc<LocalGateway>,
}

impl LocalJobs {
    async fn send(&self, messages: Vec<JobsMessage>) {
        for message in messages {
            let bytes = message.payload.to_string().into_bytes();
            if let Err(e) = self
                .gateway
                .publish_to(&message.tenant, message.topic, bytes)
                .await
            {
                tracing::warn!(error = %e, "a jobs answer was not sent");
            }
        }
    }

    /// A device's jobs request: answered on its `/accepted` or `/rejected` topic (a device
    /// that does not exist gets no answer).
    pub async fn answer(
        &self,
        topic: &str,
        uid: &str,
        request: JobsRequest<'_>,
        payload: &[u8],
    ) -> Result<(), OtaError> {
        let messages = self.jobs.answer(topic, uid, request, payload).await?;
        self.send(messages).await;
        Ok(())
    }

    /// One step of every active rollout; devices whose next job changed hear `notify-next`.
    pub async fn advance(&self, now: iot_core::time::Millis) -> Result<(), OtaError> {
        let advanced = self.ota.advance(now).await?;
        for rollout in &advanced.aborted {
            tracing::warn!(tenant = %rollout.tenant_id, rollout = %rollout.id,
                reason = rollout.reason.as_deref().unwrap_or(""), "rollout aborted");
        }
        for uid in advanced.notify {
            let next = self.jobs.notify_next(&uid).await?;
            self.send(next.into_iter().collect()).await;
        }
        Ok(())
    }
}

/// Advances rollouts every `every` until shutdown.
pub async fn ota_timer(
    jobs: Arc<LocalJobs>,
    clock: Arc<dyn iot_core::ports::Clock>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        if let Err(error) = jobs.advance(clock.now_ms()).await {
            tracing::warn!(%error, "advancing rollouts failed; trying again");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}
