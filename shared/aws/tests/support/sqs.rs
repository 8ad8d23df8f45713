//! SQS helpers for the tests: take what is on a queue (around any proxy, straight from the
//! emulator). Queues are made with `iot_aws::testing::create_queue`.

use aws_sdk_sqs::Client;

type Error = Box<dyn std::error::Error + Send + Sync>;

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
