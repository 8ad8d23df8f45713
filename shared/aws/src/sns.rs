//! [`EventBus`] on SNS. A bus topic name maps to a topic ARN; event attributes become SNS
//! message attributes, so subscriptions filter by tenant or level without reading bodies.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use iot_core::ports::{BusEvent, EventBus, QueueError};
use std::collections::HashMap;

use crate::LazyClient;
use crate::error::describe;

#[derive(Clone)]
pub struct SnsBus {
    client: LazyClient<Client>,
    /// Bus topic name -> SNS topic ARN.
    topics: HashMap<String, String>,
}

impl SnsBus {
    pub fn new(client: impl Into<LazyClient<Client>>, topics: HashMap<String, String>) -> Self {
        Self {
            client: client.into(),
            topics,
        }
    }
}

#[async_trait]
impl EventBus for SnsBus {
    async fn publish(&self, event: BusEvent) -> Result<(), QueueError> {
        let arn = self.topics.get(&event.topic).ok_or_else(|| {
            QueueError::Unavailable(format!("no SNS topic configured for {:?}", event.topic))
        })?;
        let mut request = self
            .client
            .get()
            .publish()
            .topic_arn(arn)
            .message(event.body);
        for (name, value) in event.attributes {
            // SNS refuses empty attribute values.
            if value.is_empty() {
                continue;
            }
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| QueueError::Unavailable(e.to_string()))?;
            request = request.message_attributes(name, attribute);
        }
        request
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(())
    }
}
