//! SQS batch processing with partial failures, in the spirit of Powertools for AWS Lambda's
//! batch utility: each message is handled on its own; the response lists only the messages that
//! failed, so SQS redelivers just those. When every message fails, the whole invocation fails
//! (an error, so the function's error metrics and alarms see it).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::fmt::Display;
use std::future::Future;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("all {count} messages of the batch failed; first: {first}")]
pub struct WholeBatchFailed {
    pub count: usize,
    pub first: String,
}

/// Handles each message of `event` with `handler`, in order.
pub async fn process<F, Fut, E>(
    event: SqsEvent,
    mut handler: F,
) -> Result<SqsBatchResponse, WholeBatchFailed>
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let count = event.records.len();
    let mut failures = Vec::new();
    let mut first = None;
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        if let Err(e) = handler(message).await {
            tracing::warn!(message_id = %id, error = %e, "message failed; SQS will redeliver it");
            first.get_or_insert_with(|| e.to_string());
            failures.push(id);
        }
    }
    if count > 0 && failures.len() == count {
        return Err(WholeBatchFailed {
            count,
            first: first.unwrap_or_default(),
        });
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    Ok(response)
}

/// The logical id of a message: the `message_id` attribute our producers set (it survives a
/// resend), else SQS's own id.
pub fn logical_id(message: &SqsMessage) -> Option<&str> {
    message
        .message_attributes
        .get(crate::sqs::ID_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .or(message.message_id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bodies: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("id-{i}"));
                m.body = Some((*body).to_owned());
                m
            })
            .collect();
        event
    }

    async fn handle(message: SqsMessage) -> Result<(), String> {
        match message.body.as_deref() {
            Some("bad") => Err("bad body".into()),
            _ => Ok(()),
        }
    }

    #[tokio::test]
    async fn only_failed_messages_are_reported() -> Result<(), WholeBatchFailed> {
        let response = process(event(&["ok", "bad", "ok", "bad"]), handle).await?;
        let ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["id-1", "id-3"]);

        let response = process(event(&["ok"]), handle).await?;
        assert!(response.batch_item_failures.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_batch_that_fails_whole_is_an_error() {
        let result = process(event(&["bad", "bad"]), handle).await;
        assert_eq!(
            result,
            Err(WholeBatchFailed {
                count: 2,
                first: "bad body".into()
            })
        );
    }
}
