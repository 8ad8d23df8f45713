//! The notify function: alarm events from the notify queue, which is subscribed to the
//! alarm-events topic, rendered and delivered by the core through SNS (e-mail, SMS, push),
//! webhooks and in-system messages.

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use iot_aws::{LazyClient, SnsNotifier};
use iot_core::alarm::AlarmTransition;
use iot_core::ports::{Clock, SystemClock};
use iot_core::repo::Catalog;
use iot_core::usecase::{InboxNotifier, NotifyService};
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
}

impl NotifyConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            webhook_timeout: Duration::from_millis(env::parsed("WEBHOOK_TIMEOUT_MS", 5_000)?),
        })
    }
}

/// SNS's envelope around a message it delivers to SQS (without raw message delivery).
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

/// The alarm transition in a queued message, with or without SNS's envelope.
pub fn transition_of(body: &str) -> Result<AlarmTransition, String> {
    let inner = match serde_json::from_str::<SnsEnvelope>(body) {
        Ok(envelope) if envelope.kind == "Notification" => envelope.message,
        _ => body.to_owned(),
    };
    serde_json::from_str(&inner).map_err(|e| format!("not an alarm event: {e}"))
}

pub struct NotifyFunction {
    service: NotifyService,
}

impl NotifyFunction {
    pub fn new(sdk: &SdkConfig, config: &NotifyConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let catalog = Catalog::new(meta_store(
            &aws_sdk_dynamodb::Client::new(sdk),
            &config.meta_table,
        ));
        let webhook = WebhookNotifier::new(config.webhook_timeout);
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
        }
    }

    /// Delivers each event; deliveries that may succeed later are retried through the queue
    /// (the core skips those already done), the rest are logged and counted.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, crate::Error> {
        Ok(iot_aws::batch::process(event, |m| self.notify(m)).await?)
    }

    async fn notify(&self, message: SqsMessage) -> Result<(), String> {
        let transition = transition_of(message.body.as_deref().unwrap_or(""))?;
        let outcome = self
            .service
            .notify(&transition)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(alarm = %transition.alarm_id, delivered = outcome.delivered, failed = outcome.failed.len(), "notified");
        Ok(())
    }
}
