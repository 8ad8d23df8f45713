//! The ingest function. The telemetry topic rule hands it each device message, either through
//! the ingest queue (an SQS batch; the usual path) or by invoking it directly; the presence rule
//! hands it connect and disconnect events. Telemetry goes through the core's ingest use case
//! once per message id; presence updates the device's online status; the job rules hand it
//! IoT Jobs events, which record each device's execution of a rollout and the rollout's end.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine as _;
use iot_aws::{LazyClient, S3BlobStore, SqsQueue};
use iot_core::idempotency::{Handled, Idempotency};
use iot_core::model::Presence;
use iot_core::ota::ExecutionStatus;
use iot_core::parse::Parser;
use iot_core::ports::{Clock, SystemClock};
use iot_core::repo::Catalog;
use iot_core::time::SECOND;
use iot_core::usecase::{InboundMessage, Ingest, IngestOutcome, OtaService};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::env::{self, EnvError};
use crate::stores::{TelemetryBackend, meta_store};

/// The IAM actions this function uses, with the DynamoDB telemetry backend or Timestream
/// (`template.yaml` grants exactly these; a test compares).
pub const IAM_ACTIONS: &[&str] = &[
    // device, product and code lookups; idempotency claims; presence; job statuses from
    // IoT Jobs events (executions, rollouts, each device's firmware version)
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    // telemetry points (DynamoDB backend): batches, and the latest-value items
    "dynamodb:BatchWriteItem",
    // telemetry (Timestream backend)
    "timestream:WriteRecords",
    "timestream:DescribeEndpoints",
    // alarm-evaluation requests (SendMessageBatch is authorised as SendMessage)
    "sqs:SendMessage",
    // dead letters in the raw archive
    "s3:PutObject",
];

#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub meta_table: String,
    pub telemetry: TelemetryBackend,
    pub alarm_queue_url: String,
    /// Where messages that cannot be ingested are kept, with the reason.
    pub raw_bucket: String,
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            telemetry: TelemetryBackend::from_env()?,
            alarm_queue_url: env::required("ALARM_QUEUE_URL")?,
            raw_bucket: env::required("RAW_BUCKET")?,
        })
    }
}

/// What the telemetry rule's SELECT produces:
/// `SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS client_id,
/// timestamp() AS received_at, newuuid() AS message_id FROM 'things/+/up/#'`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleMessage {
    /// The raw payload, base64 (binary payloads survive the JSON).
    pub payload: String,
    pub topic: String,
    #[serde(default)]
    pub client_id: Option<String>,
    /// Milliseconds since the epoch, when IoT Core received it.
    #[serde(default)]
    pub received_at: Option<i64>,
    /// Unique per message; redeliveries keep it.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// An AWS IoT lifecycle event from `$aws/events/presence/{connected|disconnected}/{client id}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEvent {
    pub client_id: String,
    pub timestamp: i64,
    pub event_type: String,
    #[serde(default)]
    pub disconnect_reason: Option<String>,
}

/// An AWS IoT Jobs event from `$aws/events/jobExecution/{jobId}/{status}`: a device's
/// execution reached an end (or was removed).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionEvent {
    pub job_id: String,
    pub thing_arn: String,
    pub status: ExecutionStatus,
    #[serde(default)]
    pub status_details: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub timestamp: i64,
}

/// An AWS IoT Jobs event from `$aws/events/job/{jobId}/{operation}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    pub job_id: String,
    /// `completed`, `canceled`, `deleted`, ...
    pub operation: String,
    pub timestamp: i64,
}

pub struct IngestFunction {
    ingest: Ingest,
    ota: OtaService,
    catalog: Catalog,
    idempotency: Idempotency,
    clock: Arc<dyn Clock>,
}

/// A message that failed in a way a retry can fix (a store or queue was unavailable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Retry(String);

/// What became of a message, as a direct invocation answers.
fn summary(outcome: IngestOutcome) -> Value {
    match outcome {
        IngestOutcome::Stored {
            records,
            partial_dead_letter,
            ..
        } => json!({ "stored": records, "dead_letter": partial_dead_letter }),
        IngestOutcome::DeadLettered { reason, key } => {
            json!({ "stored": 0, "dead_letter": key, "reason": reason })
        }
    }
}

impl IngestFunction {
    pub async fn new(
        sdk: &SdkConfig,
        config: &IngestConfig,
    ) -> Result<Self, crate::start::StartError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let meta = meta_store(&dynamodb, &config.meta_table);
        let catalog = Catalog::new(meta.clone());
        let telemetry = config.telemetry.build(sdk, &dynamodb).await?;
        let alarm_queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.alarm_queue_url);
        // Only bad payloads go to the raw archive.
        let raw = S3BlobStore::new(
            LazyClient::new(sdk, iot_aws::s3::client),
            &config.raw_bucket,
        );
        let ingest = Ingest::new(
            catalog.clone(),
            telemetry,
            Arc::new(alarm_queue),
            Arc::new(raw),
            clock.clone(),
            Parser::default(),
        );
        Ok(Self {
            ingest,
            ota: OtaService::recorder(catalog.clone(), clock.clone()),
            catalog,
            idempotency: Idempotency::new(meta, clock.clone()),
            clock,
        })
    }

    /// Any event the function accepts: an SQS batch (answers with the failed message ids), a
    /// rule message or a presence event invoked directly (answers with what became of it, or
    /// fails so Lambda retries the invocation).
    pub async fn handle(&self, event: Value) -> Result<Value, crate::Error> {
        if event.get("Records").is_some() {
            let batch: SqsEvent = serde_json::from_value(event)?;
            let response = iot_aws::batch::process(batch, |m| self.handle_queued(m)).await?;
            return Ok(serde_json::to_value(response)?);
        }
        Ok(self.handle_one(event, None).await?)
    }

    async fn handle_queued(&self, message: SqsMessage) -> Result<(), Retry> {
        let id = iot_aws::batch::logical_id(&message).map(str::to_owned);
        let body = message.body.unwrap_or_default();
        match serde_json::from_str::<Value>(&body) {
            Ok(value) => self.handle_one(value, id.as_deref()).await.map(drop),
            Err(e) => {
                // Not what the rule sends: keep it raw with the reason rather than retry it.
                let inbound = InboundMessage {
                    message_id: id.unwrap_or_else(|| "unknown".into()),
                    topic: String::new(),
                    payload: body.into_bytes(),
                    received_at: self.clock.now_ms(),
                };
                let reason = format!("the queued message is not JSON: {e}");
                self.ingest
                    .dead_letter(&inbound, "envelope", &reason)
                    .await
                    .map(drop)
                    .map_err(|e| Retry(e.to_string()))
            }
        }
    }

    async fn handle_one(&self, event: Value, queue_id: Option<&str>) -> Result<Value, Retry> {
        match event.get("eventType").and_then(Value::as_str) {
            Some("JOB_EXECUTION") => {
                return match serde_json::from_value::<JobExecutionEvent>(event) {
                    Ok(e) => self.job_execution(&e).await,
                    Err(e) => {
                        Ok(json!({ "ignored": format!("unreadable job execution event: {e}") }))
                    }
                };
            }
            Some("JOB") => {
                return match serde_json::from_value::<JobEvent>(event) {
                    Ok(e) => self.job(&e).await,
                    Err(e) => Ok(json!({ "ignored": format!("unreadable job event: {e}") })),
                };
            }
            _ => {}
        }
        if event.get("eventType").is_some() && event.get("clientId").is_some() {
            return match serde_json::from_value::<PresenceEvent>(event) {
                Ok(presence) => self.presence(&presence).await,
                Err(e) => Ok(json!({ "ignored": format!("unreadable presence event: {e}") })),
            };
        }
        let (message, undecodable) = self.inbound(event, queue_id);
        if let Some(reason) = undecodable {
            let outcome = self
                .ingest
                .dead_letter(&message, "envelope", &reason)
                .await
                .map_err(|e| Retry(e.to_string()))?;
            return Ok(summary(outcome));
        }
        let key = format!("ingest:{}", message.message_id);
        let handled = self
            .idempotency
            .run(&key, || self.ingest.ingest(&message))
            .await
            .map_err(|e| Retry(e.to_string()))?;
        Ok(match handled {
            Handled::AlreadyDone => json!({ "duplicate": message.message_id }),
            Handled::Done(outcome) => summary(outcome),
        })
    }

    /// The message to ingest, and why it cannot be decoded if it cannot (it is then kept raw).
    fn inbound(&self, event: Value, queue_id: Option<&str>) -> (InboundMessage, Option<String>) {
        let now = self.clock.now_ms();
        let fallback_id = || queue_id.map_or_else(|| format!("direct-{now}"), str::to_owned);
        let rule = match RuleMessage::deserialize(&event) {
            Ok(rule) => rule,
            Err(e) => {
                let message = InboundMessage {
                    message_id: fallback_id(),
                    topic: event["topic"].as_str().unwrap_or_default().to_owned(),
                    payload: event.to_string().into_bytes(),
                    received_at: now,
                };
                return (message, Some(format!("not a telemetry rule message: {e}")));
            }
        };
        let message_id = rule.message_id.clone().unwrap_or_else(fallback_id);
        let received_at = rule.received_at.unwrap_or(now);
        match base64::engine::general_purpose::STANDARD.decode(rule.payload.as_bytes()) {
            Ok(payload) => (
                InboundMessage {
                    message_id,
                    topic: rule.topic,
                    payload,
                    received_at,
                },
                None,
            ),
            Err(e) => (
                InboundMessage {
                    message_id,
                    topic: rule.topic,
                    payload: rule.payload.into_bytes(),
                    received_at,
                },
                Some(format!("the payload is not base64: {e}")),
            ),
        }
    }

    /// A device's execution of a rollout reached an end: recorded (a success sets the
    /// device's firmware version). Events of jobs that are no rollout, or of things that are
    /// no device of it, are ignored.
    async fn job_execution(&self, event: &JobExecutionEvent) -> Result<Value, Retry> {
        // The thing's name is the device uid.
        let uid = event.thing_arn.rsplit('/').next().unwrap_or_default();
        let recorded = self
            .ota
            .job_execution_event(
                &event.job_id,
                uid,
                event.status,
                event.status_details.clone(),
                event.timestamp * SECOND,
            )
            .await
            .map_err(|e| Retry(e.to_string()))?;
        Ok(match recorded {
            Some(execution) => json!({ "device": uid, "status": execution.status }),
            None => {
                json!({ "ignored": format!("job {} of {uid:?} is no rollout's", event.job_id) })
            }
        })
    }

    /// A rollout's job completed, or was cancelled by its abort rules.
    async fn job(&self, event: &JobEvent) -> Result<Value, Retry> {
        let changed = self
            .ota
            .job_event(&event.job_id, &event.operation, event.timestamp * SECOND)
            .await
            .map_err(|e| Retry(e.to_string()))?;
        Ok(match changed {
            Some(rollout) => json!({ "rollout": rollout.id, "status": rollout.status }),
            None => json!({ "ignored": format!("job {} {}", event.job_id, event.operation) }),
        })
    }

    async fn presence(&self, event: &PresenceEvent) -> Result<Value, Retry> {
        let online = match event.event_type.as_str() {
            "connected" => true,
            "disconnected" => false,
            other => return Ok(json!({ "ignored": format!("event type {other:?}") })),
        };
        // The device policy makes a device's client id its thing name, which is its uid.
        let uid = event.client_id.as_str();
        let device = self
            .catalog
            .device(uid)
            .await
            .map_err(|e| Retry(e.to_string()))?;
        if device.is_none() {
            tracing::info!(client_id = %uid, "presence of a client that is no device; ignored");
            return Ok(json!({ "ignored": format!("{uid:?} is not a registered device") }));
        }
        let presence = Presence {
            online,
            since: event.timestamp,
            reason: event.disconnect_reason.clone(),
        };
        let recorded = self
            .catalog
            .record_presence(uid, &presence)
            .await
            .map_err(|e| Retry(e.to_string()))?;
        Ok(json!({ "device": uid, "online": online, "recorded": recorded }))
    }
}
