//! For tests against an AWS emulator (moto server, or LocalStack): the endpoint comes from
//! `IOT_TEST_AWS_ENDPOINT`, which the test command sets after starting the emulator on
//! 127.0.0.1. Without it the tests fail with what to do, rather than skip.

use aws_config::SdkConfig;

use crate::config::{CallPolicy, load_for_endpoint};

pub const ENDPOINT_VARIABLE: &str = "IOT_TEST_AWS_ENDPOINT";

/// The emulator's endpoint, or an error saying how to get one.
pub fn endpoint() -> Result<String, String> {
    std::env::var(ENDPOINT_VARIABLE).map_err(|_| {
        format!(
            "{ENDPOINT_VARIABLE} is not set: run the tests with ./scripts/test, which starts \
             the AWS emulator, or start one (moto_server -H 127.0.0.1 -p 5000) and set \
             {ENDPOINT_VARIABLE}=http://127.0.0.1:5000"
        )
    })
}

/// An SDK configuration aimed at the emulator.
pub async fn emulator_config() -> Result<SdkConfig, String> {
    let endpoint = endpoint()?;
    if !endpoint.starts_with("http://127.0.0.1") && !endpoint.starts_with("http://localhost") {
        return Err(format!(
            "{ENDPOINT_VARIABLE}={endpoint} is not on this machine; tests only talk to 127.0.0.1"
        ));
    }
    // Credentials and region come from the environment as in production; emulators accept any.
    for (name, value) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if std::env::var_os(name).is_none() {
            return Err(format!(
                "{name} is not set; the test command sets it to {value:?} for the emulator"
            ));
        }
    }
    Ok(load_for_endpoint(&CallPolicy::default(), &endpoint).await)
}

/// A name no other test uses, so tests share one emulator without resetting it under each
/// other.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// A new SQS queue under a unique name: its URL and ARN.
pub async fn create_queue(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
) -> Result<(String, String), String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let url = client
        .create_queue()
        .queue_name(unique_name(prefix))
        .send()
        .await
        .map_err(|e| crate::error::describe(&e))?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| crate::error::describe(&e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    Ok((url, arn))
}

/// A new SNS topic under a unique name: its ARN.
pub async fn create_topic(client: &aws_sdk_sns::Client, prefix: &str) -> Result<String, String> {
    Ok(client
        .create_topic()
        .name(unique_name(prefix))
        .send()
        .await
        .map_err(|e| crate::error::describe(&e))?
        .topic_arn()
        .unwrap_or_default()
        .to_owned())
}

/// Everything on an SQS queue, deleted as read: (logical id attribute, body), in arrival order.
pub async fn drain(
    client: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut seen = Vec::new();
    loop {
        let output = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| crate::error::describe(&e))?;
        if output.messages().is_empty() {
            return Ok(seen);
        }
        for m in output.messages() {
            let id = m
                .message_attributes()
                .and_then(|a| a.get(crate::sqs::ID_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned();
            seen.push((id, m.body().unwrap_or_default().to_owned()));
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(|e| crate::error::describe(&e))?;
        }
    }
}
