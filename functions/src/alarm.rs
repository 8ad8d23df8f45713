//! The alarm function: alarm-evaluation requests from the alarm queue (an SQS batch), evaluated
//! once per message by the core, which publishes transitions to the alarm-events topic.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use iot_aws::{LazyClient, SnsBus};
use iot_core::alarm::AlarmEvaluator;
use iot_core::idempotency::{Idempotency, IdempotencyError};
use iot_core::ports::{Clock, SystemClock};
use iot_core::repo::Catalog;
use iot_core::usecase::{ALARM_EVENTS_TOPIC, AlarmRequest, AlarmService, AlarmServiceError};
use std::collections::HashMap;
use std::sync::Arc;

use crate::env::{self, EnvError};
use crate::stores::meta_store;

/// The IAM actions this function uses (`template.yaml` grants exactly these; a test compares).
pub const IAM_ACTIONS: &[&str] = &[
    // rules (query), alarm state and records (get, transactional put), idempotency
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    // transitions to the alarm-events topic
    "sns:Publish",
];

#[derive(Clone, Debug)]
pub struct AlarmConfig {
    pub meta_table: String,
    pub alarm_events_topic_arn: String,
}

impl AlarmConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            alarm_events_topic_arn: env::required("ALARM_EVENTS_TOPIC_ARN")?,
        })
    }
}

/// The alarm-events bus on SNS: the core publishes to its topic name, SNS to the stack's topic.
pub fn alarm_bus(sdk: &SdkConfig, topic_arn: &str) -> SnsBus {
    SnsBus::new(
        LazyClient::new(sdk, aws_sdk_sns::Client::new),
        HashMap::from([(ALARM_EVENTS_TOPIC.to_owned(), topic_arn.to_owned())]),
    )
}

pub struct AlarmFunction {
    service: AlarmService,
    idempotency: Idempotency,
}

impl AlarmFunction {
    pub fn new(sdk: &SdkConfig, config: &AlarmConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let meta = meta_store(&aws_sdk_dynamodb::Client::new(sdk), &config.meta_table);
        let service = AlarmService::new(
            Catalog::new(meta.clone()),
            Arc::new(alarm_bus(sdk, &config.alarm_events_topic_arn)),
            clock.clone(),
            AlarmEvaluator::default(),
        );
        Self {
            service,
            idempotency: Idempotency::new(meta, clock),
        }
    }

    /// Evaluates each request; the answer names the messages to deliver again. A request that
    /// cannot be read fails every time and so ends in the queue's dead-letter queue.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, crate::Error> {
        Ok(iot_aws::batch::process(event, |m| self.evaluate(m)).await?)
    }

    async fn evaluate(&self, message: SqsMessage) -> Result<(), AlarmMessageError> {
        let id = iot_aws::batch::logical_id(&message)
            .unwrap_or_default()
            .to_owned();
        let request: AlarmRequest = serde_json::from_str(message.body.as_deref().unwrap_or(""))
            .map_err(|source| AlarmMessageError::Unreadable {
                id: id.clone(),
                source,
            })?;
        self.idempotency
            .run(&format!("alarm:{id}"), || self.service.evaluate(&request))
            .await?;
        Ok(())
    }
}

/// Why an alarm request is delivered again (and, failing every time, ends in the DLQ).
#[derive(Debug, thiserror::Error)]
enum AlarmMessageError {
    /// Permanent: the same body fails on every delivery.
    #[error("unreadable alarm request {id}: {source}")]
    Unreadable {
        id: String,
        source: serde_json::Error,
    },
    /// The evaluation or its store failed, or another delivery holds it: worth a retry.
    #[error(transparent)]
    Evaluate(#[from] IdempotencyError<AlarmServiceError>),
}
