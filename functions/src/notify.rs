//! The notify function: alarm events from the notify queue, which is subscribed to the
//! alarm-events topic, rendered and delivered by the core through SNS (e-mail, SMS, push),
//! webhooks and in-system messages.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use iot_aws::{LazyClient, SnsNotifier};
use iot_core::alarm::AlarmTransition;
use iot_core::outbound::OutboundPolicy;
use iot_core::ports::{Clock, SystemClock};
use iot_core::repo::Catalog;
use iot_core::usecase::{InboxNotifier, NotifyService, NotifyServiceError};
use iot_notify::{ChannelRouter, WebhookNotifier};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use crate::env::{self, EnvError};
use crate::stores::meta_store;

/// The IAM actions this function uses (`template.yaml` grants exactly these; a test compares).
pub const IAM_ACTIONS: &[&str] = &[
    // device, templates, channels, routes (query), done marks and in-system messages
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    // e-mail topics, SMS, push endpoints
    "sns:Publish",
];

#[derive(Clone, Debug)]
pub struct NotifyConfig {
    pub meta_table: String,
    pub webhook_timeout: Duration,
    /// The only topic alarm events are taken from.
    pub alarm_events_topic_arn: String,
    /// Where webhooks may be besides public addresses.
    pub outbound: OutboundPolicy,
}

impl NotifyConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            webhook_timeout: Duration::from_millis(env::parsed("WEBHOOK_TIMEOUT_MS", 5_000)?),
            alarm_events_topic_arn: env::required("ALARM_EVENTS_TOPIC_ARN")?,
            outbound: env::outbound_policy()?,
        })
    }
}

/// SNS's envelope around a message it delivers to SQS (without raw message delivery).
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Message")]
    message: String,
}

/// Why a queued message is not an alarm event to deliver.
#[derive(Debug, thiserror::Error)]
pub enum NotAnAlarmEvent {
    #[error("not an SNS notification: alarm events come only from the alarm-events topic")]
    NoEnvelope,
    #[error("published on {0}, not on the alarm-events topic")]
    OtherTopic(String),
    #[error("not an alarm event: {0}")]
    Shape(#[from] serde_json::Error),
}

/// The alarm transition in a queued message: only in SNS's envelope, and only from the
/// alarm-events topic. Whatever else reaches the queue is refused, since a tenant id in a body
/// is no proof of anything.
pub fn transition_of(
    body: &str,
    alarm_events_topic_arn: &str,
) -> Result<AlarmTransition, NotAnAlarmEvent> {
    let envelope = serde_json::from_str::<SnsEnvelope>(body)
        .ok()
        .filter(|e| e.kind == "Notification")
        .ok_or(NotAnAlarmEvent::NoEnvelope)?;
    if envelope.topic_arn != alarm_events_topic_arn {
        return Err(NotAnAlarmEvent::OtherTopic(envelope.topic_arn));
    }
    Ok(serde_json::from_str(&envelope.message)?)
}

pub struct NotifyFunction {
    service: NotifyService,
    alarm_events_topic_arn: String,
}

impl NotifyFunction {
    pub fn new(sdk: &SdkConfig, config: &NotifyConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let catalog = Catalog::new(meta_store(
            &aws_sdk_dynamodb::Client::new(sdk),
            &config.meta_table,
        ));
        let webhook = WebhookNotifier::new(config.webhook_timeout, config.outbound.clone());
        let router = ChannelRouter {
            webhook: Arc::new(webhook),
            in_system: Arc::new(InboxNotifier::new(catalog.clone(), clock.clone())),
            sns: Arc::new(SnsNotifier::new(LazyClient::new(
                sdk,
                aws_sdk_sns::Client::new,
            ))),
        };
        Self {
            service: NotifyService::new(catalog, Arc::new(router), clock),
            alarm_events_topic_arn: config.alarm_events_topic_arn.clone(),
        }
    }

    /// Delivers each event; deliveries that may succeed later are retried through the queue
    /// (the core skips those already done), the rest are logged and counted.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, crate::Error> {
        Ok(iot_aws::batch::process(event, |m| self.notify(m)).await?)
    }

    async fn notify(&self, message: SqsMessage) -> Result<(), NotifyMessageError> {
        let transition = transition_of(
            message.body.as_deref().unwrap_or(""),
            &self.alarm_events_topic_arn,
        )
        .inspect_err(|_| {
            metrics::counter!("notify_refused_total").increment(1);
        })?;
        let outcome = self.service.notify(&transition).await?;
        tracing::info!(alarm = %transition.alarm_id, delivered = outcome.delivered, failed = outcome.failed.len(), "notified");
        Ok(())
    }
}

/// Why an alarm event is delivered again (and, failing every time, ends in the DLQ).
#[derive(Debug, thiserror::Error)]
enum NotifyMessageError {
    /// Permanent: not an alarm event of the platform's topic.
    #[error(transparent)]
    Refused(#[from] NotAnAlarmEvent),
    /// The store or a delivery that may succeed later failed: worth a retry.
    #[error(transparent)]
    Notify(#[from] NotifyServiceError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:iot-dev-alarm-events";

    fn transition() -> String {
        serde_json::json!({ "alarm_id": "d:r:1", "kind": "raised", "tenant_id": "acme",
            "device_uid": "d", "rule_id": "r", "rule_name": "R", "level": "critical",
            "previous_level": null, "time": 1, "signal": "t", "value": 1.0, "by": null })
        .to_string()
    }

    fn envelope(topic: &str) -> String {
        serde_json::json!({ "Type": "Notification", "TopicArn": topic, "Message": transition() })
            .to_string()
    }

    #[test]
    fn alarm_events_are_taken_from_the_alarm_events_topic_only() {
        let taken = transition_of(&envelope(TOPIC), TOPIC).expect("from the topic");
        assert_eq!(taken.tenant_id, "acme");
        let other = "arn:aws:sns:us-east-1:123456789012:iot-dev-email-acme-ops";
        assert!(matches!(
            transition_of(&envelope(other), TOPIC),
            Err(NotAnAlarmEvent::OtherTopic(t)) if t == other
        ));
        // A bare transition (someone with the queue's send right, or raw delivery) is refused.
        assert!(matches!(
            transition_of(&transition(), TOPIC),
            Err(NotAnAlarmEvent::NoEnvelope)
        ));
    }
}
