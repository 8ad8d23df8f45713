//! [`MessageQueue`] on SQS: `SendMessageBatch` in chunks of at most 10 messages and 256 KiB,
//! failed entries retried with back-off when the fault is not the sender's, then reported.
//!
//! The message's logical id travels as the `message_id` attribute, so a consumer's idempotency
//! key survives a resend (SQS gives a resent message a new SQS id).

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use iot_core::ports::{MessageQueue, QueueError, QueueMessage};
use std::time::Duration;

use crate::error::describe;

/// SQS's limits for one `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The attribute that carries [`QueueMessage::id`].
pub const ID_ATTRIBUTE: &str = "message_id";
const RETRY_ROUNDS: u32 = 4;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn entry(index: usize, message: &QueueMessage) -> Result<SendMessageBatchRequestEntry, String> {
        let id = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&message.id)
            .build()
            .map_err(|e| e.to_string())?;
        SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(&message.body)
            .message_attributes(ID_ATTRIBUTE, id)
            .build()
            .map_err(|e| e.to_string())
    }

    /// Sends one chunk; returns the messages that failed, with the reason and whether a retry
    /// may help.
    async fn send_chunk(
        &self,
        chunk: &[QueueMessage],
    ) -> Result<Vec<(QueueMessage, String, bool)>, QueueError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| Self::entry(i, m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(QueueError::Unavailable)?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(output
            .failed()
            .iter()
            .filter_map(|f| {
                let message = chunk.get(f.id().parse::<usize>().ok()?)?.clone();
                let reason = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                Some((message, reason, !f.sender_fault()))
            })
            .collect())
    }
}

/// Splits messages into chunks SQS accepts in one batch. A message alone over the size limit
/// gets a chunk of its own (SQS then refuses it, and the refusal is reported).
pub fn chunks(messages: Vec<QueueMessage>) -> Vec<Vec<QueueMessage>> {
    let mut chunks: Vec<Vec<QueueMessage>> = Vec::new();
    let mut bytes = 0;
    for message in messages {
        let size = message.body.len() + message.id.len() + ID_ATTRIBUTE.len() + "String".len();
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < MAX_BATCH_ENTRIES && bytes + size <= MAX_BATCH_BYTES => {
                chunk.push(message);
                bytes += size;
            }
            _ => {
                chunks.push(vec![message]);
                bytes = size;
            }
        }
    }
    chunks
}

#[async_trait]
impl MessageQueue for SqsQueue {
    async fn send(&self, messages: Vec<QueueMessage>) -> Result<(), QueueError> {
        let mut refused: Vec<(String, String)> = Vec::new();
        for chunk in chunks(messages) {
            let mut pending = chunk;
            let mut round = 0;
            while !pending.is_empty() {
                let failed = self.send_chunk(&pending).await?;
                round += 1;
                pending = Vec::new();
                for (message, reason, retryable) in failed {
                    if retryable && round < RETRY_ROUNDS {
                        pending.push(message);
                    } else {
                        tracing::warn!(id = %message.id, %reason, "message not queued");
                        refused.push((message.id, reason));
                    }
                }
                if !pending.is_empty() {
                    let backoff = 50u64 << round;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(backoff / 2..=backoff)))
                        .await;
                }
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(QueueError::Partial(refused))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: usize, size: usize) -> QueueMessage {
        QueueMessage {
            id: id.to_string(),
            body: "x".repeat(size),
        }
    }

    #[test]
    fn batches_respect_count_and_size_limits() {
        let small: Vec<_> = (0..23).map(|i| message(i, 10)).collect();
        let sizes: Vec<usize> = chunks(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);

        let big: Vec<_> = (0..5).map(|i| message(i, 100 * 1024)).collect();
        let sizes: Vec<usize> = chunks(big).iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [2, 2, 1],
            "two 100 KiB bodies fit in 256 KiB, three do not"
        );

        let huge = vec![message(0, 10), message(1, 300 * 1024), message(2, 10)];
        let sizes: Vec<usize> = chunks(huge).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }
}
