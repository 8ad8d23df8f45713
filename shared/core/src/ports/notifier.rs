use async_trait::async_trait;
use thiserror::Error;

use crate::notify::Delivery;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// Worth retrying: timeouts, throttling, 5xx.
    #[error("delivery failed, will retry: {0}")]
    Retryable(String),
    /// Retrying will not help: a bad address, a 4xx; goes to the dead-letter queue.
    #[error("delivery failed permanently: {0}")]
    Permanent(String),
}

/// Sends a rendered message through its channel (SNS, webhooks, in-system messages).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError>;
}
