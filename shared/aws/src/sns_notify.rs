//! [`Notifier`] for the SNS channels: e-mail (a topic the addresses subscribe to), SMS (each
//! number) and mobile push (each platform endpoint). Throttling and server faults are retryable;
//! a refused address or a disabled endpoint is permanent (the message goes to the dead-letter
//! queue instead of being retried for ever).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use iot_core::notify::{ChannelKind, Delivery};
use iot_core::ports::{DeliveryError, Notifier};

use crate::LazyClient;
use crate::error::{code, describe};

/// SNS's limit on an e-mail subject.
const MAX_SUBJECT: usize = 100;

#[derive(Clone)]
pub struct SnsNotifier {
    client: LazyClient<Client>,
}

impl SnsNotifier {
    pub fn new(client: impl Into<LazyClient<Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }
}

/// A subject SNS accepts: one line of printable characters, at most 100.
pub fn subject(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = line.trim();
    if trimmed.chars().count() <= MAX_SUBJECT {
        return trimmed.to_owned();
    }
    let mut cut: String = trimmed.chars().take(MAX_SUBJECT - 1).collect();
    cut.push('…');
    cut
}

fn classify<E, R>(error: &aws_sdk_sns::error::SdkError<E, R>) -> DeliveryError
where
    E: std::error::Error + aws_sdk_sns::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let why = describe(error);
    match code(error) {
        Some(
            "InvalidParameter"
            | "InvalidParameterValue"
            | "EndpointDisabled"
            | "NotFound"
            | "AuthorizationError"
            | "OptedOut",
        ) => DeliveryError::Permanent(why),
        _ => DeliveryError::Retryable(why),
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        match &delivery.channel.kind {
            ChannelKind::Email { topic_arn } => {
                self.client
                    .get()
                    .publish()
                    .topic_arn(topic_arn)
                    .subject(subject(&delivery.subject))
                    .message(&delivery.body)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
            }
            ChannelKind::Sms { phone_numbers } => {
                let transactional = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("Transactional")
                    .build()
                    .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                for number in phone_numbers {
                    self.client
                        .get()
                        .publish()
                        .phone_number(number)
                        .message(&delivery.body)
                        .message_attributes("AWS.SNS.SMS.SMSType", transactional.clone())
                        .send()
                        .await
                        .map_err(|e| classify(&e))?;
                }
            }
            ChannelKind::Push { endpoint_arns } => {
                for arn in endpoint_arns {
                    self.client
                        .get()
                        .publish()
                        .target_arn(arn)
                        .message(&delivery.body)
                        .send()
                        .await
                        .map_err(|e| classify(&e))?;
                }
            }
            ChannelKind::Webhook { .. } | ChannelKind::InSystem { .. } => {
                return Err(DeliveryError::Permanent(format!(
                    "channel {} is not an SNS channel",
                    delivery.channel.id
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_fit_sns_rules() {
        assert_eq!(subject("Alarm\nraised\ton d1 "), "Alarm raised on d1");
        let long = subject(&"é".repeat(150));
        assert_eq!(long.chars().count(), 100);
        assert!(long.ends_with('…'));
    }
}
