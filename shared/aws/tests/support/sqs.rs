//! SQS helpers for the tests: make a queue, find its ARN, and take what is on it (around any
//! proxy, straight from the emulator).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use iot_aws::testing::unique_name;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A new queue; returns its URL and ARN.
pub async fn create_queue(client: &Client, prefix: &str) -> Result<(String, String), Error> {
    let url = client
        .create_queue()
        .queue_name(unique_name(prefix))
        .send()
        .await?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    Ok((url, arn))
}

/// Everything on the queue, deleted as read: (logical id attribute, body), in arrival order.
pub async fn drain(client: &Client, url: &str) -> Result<Vec<(String, String)>, Error> {
    let mut seen = Vec::new();
    loop {
        let output = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await?;
        if output.messages().is_empty() {
            return Ok(seen);
        }
        for m in output.messages() {
            let id = m
                .message_attributes()
                .and_then(|a| a.get(iot_aws::sqs::ID_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned();
            seen.push((id, m.body().unwrap_or_default().to_owned()));
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
}
