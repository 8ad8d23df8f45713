//! The messages of the AWS IoT Jobs MQTT API, for the platform that answers it itself: the
//! same names and shapes as IoT Core's, so one device OTA client works against both.
//! Times are seconds since the epoch, as IoT Core sends them.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::{Execution, ExecutionStatus, ExecutionUpdateError, JobDocument};
use crate::time::{Millis, SECOND};

/// `start-next` and `get` requests.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartNextRequest {
    #[serde(default)]
    pub status_details: BTreeMap<String, String>,
    pub client_token: Option<String>,
}

/// `{jobId}/update`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    pub status: ExecutionStatus,
    #[serde(default)]
    pub status_details: BTreeMap<String, String>,
    pub expected_version: Option<u64>,
    #[serde(default)]
    pub include_job_execution_state: bool,
    #[serde(default)]
    pub include_job_document: bool,
    pub client_token: Option<String>,
}

fn seconds(ms: Millis) -> i64 {
    ms / SECOND
}

/// `JobExecutionData`: an execution as a device sees it.
pub fn execution_data(
    job_id: &str,
    execution: &Execution,
    document: Option<&JobDocument>,
) -> Value {
    let mut data = json!({
        "jobId": job_id,
        "thingName": execution.device_uid,
        "status": execution.status,
        "statusDetails": execution.status_details,
        "queuedAt": seconds(execution.queued_at),
        "lastUpdatedAt": seconds(execution.updated_at),
        "versionNumber": execution.version_number,
        "executionNumber": 1,
    });
    if let Some(started) = execution.started_at {
        data["startedAt"] = json!(seconds(started));
    }
    if let Some(document) = document {
        data["jobDocument"] = json!(document);
    }
    data
}

/// `JobExecutionSummary`, in `jobs/get` answers.
pub fn execution_summary(job_id: &str, execution: &Execution) -> Value {
    let mut summary = json!({
        "jobId": job_id,
        "queuedAt": seconds(execution.queued_at),
        "lastUpdatedAt": seconds(execution.updated_at),
        "versionNumber": execution.version_number,
        "executionNumber": 1,
    });
    if let Some(started) = execution.started_at {
        summary["startedAt"] = json!(seconds(started));
    }
    summary
}

/// An accepted answer: `fields` with the time and the request's client token.
pub fn accepted(fields: Value, client_token: Option<&str>, now: Millis) -> Value {
    let mut answer = fields;
    answer["timestamp"] = json!(seconds(now));
    if let Some(token) = client_token {
        answer["clientToken"] = json!(token);
    }
    answer
}

/// A rejected answer with IoT Core's error codes.
pub fn rejected(
    code: &str,
    message: &str,
    state: Option<&Execution>,
    client_token: Option<&str>,
    now: Millis,
) -> Value {
    let mut answer = json!({ "code": code, "message": message, "timestamp": seconds(now) });
    if let Some(token) = client_token {
        answer["clientToken"] = json!(token);
    }
    if let Some(e) = state {
        answer["executionState"] = execution_state(e);
    }
    answer
}

pub fn execution_state(e: &Execution) -> Value {
    json!({ "status": e.status, "statusDetails": e.status_details, "versionNumber": e.version_number })
}

impl ExecutionUpdateError {
    pub fn rejected(&self, state: &Execution, client_token: Option<&str>, now: Millis) -> Value {
        rejected(
            self.code(),
            &self.to_string(),
            Some(state),
            client_token,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_reads_as_iot_core_sends_it() {
        let update: UpdateRequest = serde_json::from_str(
            r#"{"status": "IN_PROGRESS", "statusDetails": {"step": "download"},
                "expectedVersion": 2, "includeJobDocument": true, "clientToken": "c1"}"#,
        )
        .unwrap();
        assert_eq!(update.status, ExecutionStatus::InProgress);
        assert_eq!(update.expected_version, Some(2));
        assert!(update.include_job_document && !update.include_job_execution_state);
    }

    #[test]
    fn execution_data_has_iot_core_names_and_seconds() {
        let mut e = Execution::queued("r1", "acme", "pump-1", 5_000);
        e.record(ExecutionStatus::InProgress, BTreeMap::new(), 9_000);
        let data = execution_data("r1-abc", &e, None);
        assert_eq!(data["jobId"], "r1-abc");
        assert_eq!(data["thingName"], "pump-1");
        assert_eq!(data["status"], "IN_PROGRESS");
        assert_eq!(
            (data["queuedAt"].as_i64(), data["startedAt"].as_i64()),
            (Some(5), Some(9))
        );
        assert_eq!(data["versionNumber"], 2);
    }
}
