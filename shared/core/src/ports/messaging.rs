//! Queues (SQS, or an in-process channel) and the event bus (SNS, or in-process fan-out).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueMessage {
    /// Unique per logical message; consumers use it for idempotency.
    pub id: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    pub topic: String,
    pub body: String,
    /// Message attributes subscribers can filter on (e.g. `level`, `tenant_id`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("{} message(s) not sent: {}", .0.len(), .0.iter().map(|(id, why)| format!("{id}: {why}")).collect::<Vec<_>>().join("; "))]
    Partial(Vec<(String, String)>),
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// Sends a batch (adapters split it as the service requires).
    async fn send(&self, messages: Vec<QueueMessage>) -> Result<(), QueueError>;
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: BusEvent) -> Result<(), QueueError>;
}
