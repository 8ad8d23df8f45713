//! The AWS IoT Jobs MQTT API answered by the platform, where it runs jobs itself (one
//! machine): a device asks for its pending jobs, starts the next, reads one, reports on it,
//! and hears `notify-next` when its next pending job changes. Answers are messages for the
//! caller to publish; nothing here knows a broker.

use serde_json::{Value, json};
use std::sync::Arc;

use super::ota::{OtaError, OtaService};
use crate::ota::jobs_api::{
    StartNextRequest, UpdateRequest, accepted, execution_data, execution_state, execution_summary,
    rejected,
};
use crate::ota::{Execution, ExecutionStatus, JobDocument, job_id};
use crate::ports::Clock;
use crate::repo::Catalog;
use crate::topics::{JobsRequest, jobs_notify_next_topic, jobs_reply_topic};

/// Mints the download URL a job document carries, at each delivery.
pub trait DownloadLinks: Send + Sync {
    fn url(&self, tenant: &str, package_id: &str, device_uid: &str) -> Result<String, OtaError>;
}

/// A message to publish to a device of `tenant`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsMessage {
    pub tenant: String,
    pub topic: String,
    pub payload: Value,
}

pub struct DeviceJobs {
    ota: Arc<OtaService>,
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    links: Arc<dyn DownloadLinks>,
}

impl DeviceJobs {
    pub fn new(
        ota: Arc<OtaService>,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        links: Arc<dyn DownloadLinks>,
    ) -> Self {
        Self {
            ota,
            catalog,
            clock,
            links,
        }
    }

    /// The device's tenant and the executions it may see, oldest first (each with its job
    /// id): of its tenant, since it was registered, and told to it. `None` for no device.
    async fn executions(
        &self,
        uid: &str,
    ) -> Result<Option<(String, Vec<(String, Execution)>)>, OtaError> {
        let Some(device) = self.catalog.device(uid).await? else {
            return Ok(None);
        };
        let mut executions: Vec<(String, Execution)> = self
            .catalog
            .device_executions(uid)
            .await?
            .into_iter()
            .filter(|e| e.tenant_id == device.tenant_id && e.queued_at >= device.data_since)
            .filter(|e| e.released_at.is_some())
            .map(|e| (job_id(&e.tenant_id, &e.rollout_id), e))
            .collect();
        executions.sort_by_key(|(_, e)| (e.queued_at, e.rollout_id.clone()));
        Ok(Some((device.tenant_id, executions)))
    }

    /// The next pending one: in progress first, then the oldest queued (as IoT Core picks).
    fn next(executions: &[(String, Execution)]) -> Option<&(String, Execution)> {
        let pending = |status| executions.iter().find(|(_, e)| e.status == status);
        pending(ExecutionStatus::InProgress).or_else(|| pending(ExecutionStatus::Queued))
    }

    async fn document(&self, execution: &Execution) -> Result<JobDocument, OtaError> {
        let rollout = self
            .ota
            .rollout(&execution.tenant_id, &execution.rollout_id)
            .await?;
        let package = self
            .ota
            .package(&execution.tenant_id, &rollout.package_id)
            .await?;
        let url = self
            .links
            .url(&execution.tenant_id, &package.id, &execution.device_uid)?;
        Ok(JobDocument::new(&rollout, &package, url))
    }

    /// `notify-next` for a device: its next pending execution, or none; `None` if there is
    /// no such device.
    pub async fn notify_next(&self, uid: &str) -> Result<Option<JobsMessage>, OtaError> {
        let Some((tenant, executions)) = self.executions(uid).await? else {
            return Ok(None);
        };
        let mut payload = json!({});
        if let Some((job, execution)) = Self::next(&executions) {
            let document = self.document(execution).await?;
            payload["execution"] = execution_data(job, execution, Some(&document));
        }
        Ok(Some(JobsMessage {
            tenant,
            topic: jobs_notify_next_topic(uid),
            payload: accepted(payload, None, self.clock.now_ms()),
        }))
    }

    /// The answers to one request: its reply, and `notify-next` when it changed what is next;
    /// none for a device that does not exist.
    pub async fn answer(
        &self,
        topic: &str,
        uid: &str,
        request: JobsRequest<'_>,
        payload: &[u8],
    ) -> Result<Vec<JobsMessage>, OtaError> {
        let now = self.clock.now_ms();
        let Some((tenant, executions)) = self.executions(uid).await? else {
            return Ok(Vec::new());
        };
        let reply = |accepted_: bool, payload: Value| JobsMessage {
            tenant: tenant.clone(),
            topic: jobs_reply_topic(topic, accepted_),
            payload,
        };
        let client_token = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v["clientToken"].as_str().map(str::to_owned));
        let token = client_token.as_deref();
        let not_found = |wanted: &str| {
            let why = format!("no job {wanted} for this thing");
            reply(false, rejected("ResourceNotFound", &why, None, token, now))
        };
        match request {
            JobsRequest::Pending => {
                let summaries = |status| -> Vec<Value> {
                    executions
                        .iter()
                        .filter(|(_, e)| e.status == status)
                        .map(|(job, e)| execution_summary(job, e))
                        .collect()
                };
                let fields = json!({
                    "inProgressJobs": summaries(ExecutionStatus::InProgress),
                    "queuedJobs": summaries(ExecutionStatus::Queued),
                });
                Ok(vec![reply(true, accepted(fields, token, now))])
            }
            JobsRequest::StartNext => {
                let request: StartNextRequest = match parse(payload) {
                    Ok(r) => r,
                    Err(why) => {
                        return Ok(vec![reply(
                            false,
                            rejected("InvalidRequest", &why, None, token, now),
                        )]);
                    }
                };
                let Some((job, execution)) = Self::next(&executions) else {
                    return Ok(vec![reply(true, accepted(json!({}), token, now))]);
                };
                let execution = if execution.status == ExecutionStatus::Queued {
                    self.ota
                        .device_update(
                            uid,
                            &execution.rollout_id,
                            ExecutionStatus::InProgress,
                            request.status_details,
                            None,
                        )
                        .await?
                } else {
                    execution.clone()
                };
                let document = self.document(&execution).await?;
                let fields =
                    json!({ "execution": execution_data(job, &execution, Some(&document)) });
                Ok(vec![reply(true, accepted(fields, token, now))])
            }
            JobsRequest::Describe(wanted) => {
                let found = if wanted == "$next" {
                    Self::next(&executions)
                } else {
                    executions.iter().find(|(job, _)| job == wanted)
                };
                let Some((job, execution)) = found else {
                    return Ok(vec![not_found(wanted)]);
                };
                let document = self.document(execution).await?;
                let fields =
                    json!({ "execution": execution_data(job, execution, Some(&document)) });
                Ok(vec![reply(true, accepted(fields, token, now))])
            }
            JobsRequest::Update(wanted) => {
                let Some((_, execution)) = executions.iter().find(|(job, _)| job == wanted) else {
                    return Ok(vec![not_found(wanted)]);
                };
                let parsed = serde_json::from_slice::<UpdateRequest>(payload)
                    .map_err(|e| format!("the request is not valid: {e}"));
                let request = match parsed {
                    Ok(r) => r,
                    Err(why) => {
                        return Ok(vec![reply(
                            false,
                            rejected("InvalidRequest", &why, Some(execution), token, now),
                        )]);
                    }
                };
                let updated = match self
                    .ota
                    .device_update(
                        uid,
                        &execution.rollout_id,
                        request.status,
                        request.status_details,
                        request.expected_version,
                    )
                    .await
                {
                    Ok(updated) => updated,
                    Err(OtaError::Update(e)) => {
                        return Ok(vec![reply(false, e.rejected(execution, token, now))]);
                    }
                    Err(e) => return Err(e),
                };
                let mut fields = json!({});
                if request.include_job_execution_state {
                    fields["executionState"] = execution_state(&updated);
                }
                if request.include_job_document {
                    fields["jobDocument"] = json!(self.document(&updated).await?);
                }
                let mut messages = vec![reply(true, accepted(fields, token, now))];
                if updated.status.is_terminal() {
                    messages.extend(self.notify_next(uid).await?);
                }
                Ok(messages)
            }
        }
    }
}

/// A request body: JSON of the request's shape; an empty body is an empty request.
fn parse<T: serde::de::DeserializeOwned + Default>(payload: &[u8]) -> Result<T, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(|e| format!("the request is not valid: {e}"))
}
