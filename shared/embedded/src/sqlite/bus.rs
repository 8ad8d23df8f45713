//! Topics fanned out to durable queues, as SNS fans out to SQS (the alarm events of one
//! machine).

use async_trait::async_trait;
use iot_core::ports::{BusEvent, EventBus, MessageQueue, QueueError, QueueMessage};
use std::collections::BTreeMap;

use super::SqliteQueue;

/// Topics fanned out to subscribed queues, as SNS fans out to SQS: each subscriber gets the
/// whole [`BusEvent`] as JSON.
#[derive(Clone, Default)]
pub struct QueueBus {
    subscriptions: BTreeMap<String, Vec<SqliteQueue>>,
}

impl QueueBus {
    pub fn subscribe(mut self, topic: &str, queue: SqliteQueue) -> Self {
        self.subscriptions
            .entry(topic.to_owned())
            .or_default()
            .push(queue);
        self
    }
}

#[async_trait]
impl EventBus for QueueBus {
    async fn publish(&self, event: BusEvent) -> Result<(), QueueError> {
        let Some(queues) = self.subscriptions.get(&event.topic) else {
            tracing::debug!(topic = %event.topic, "no subscriber; event dropped");
            return Ok(());
        };
        let body = serde_json::to_string(&event)
            .map_err(|e| QueueError::Unavailable(format!("encoding the event: {e}")))?;
        for queue in queues {
            let id = format!("{}-{}", event.topic, queue.clock.now_ms());
            queue
                .send(vec![QueueMessage {
                    id,
                    body: body.clone(),
                }])
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::Database;
    use iot_core::ports::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const HIDE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn the_bus_fans_out_to_every_subscribed_queue() -> TestResult {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let db = Database::in_memory()?;
        let a = SqliteQueue::new(db.clone(), "work", clock.clone());
        let b = SqliteQueue::new(db, "other", clock);
        let bus = QueueBus::default()
            .subscribe("alarm-events", a.clone())
            .subscribe("alarm-events", b.clone());
        let mut attributes = BTreeMap::new();
        attributes.insert("level".to_owned(), "major".to_owned());
        let event = BusEvent {
            topic: "alarm-events".into(),
            body: "{}".into(),
            attributes,
        };
        bus.publish(event.clone()).await?;
        bus.publish(BusEvent {
            topic: "nobody-listens".into(),
            ..event.clone()
        })
        .await?;
        for queue in [a, b] {
            let got = queue.receive(10, HIDE).await?;
            assert_eq!(got.len(), 1);
            assert_eq!(serde_json::from_str::<BusEvent>(&got[0].body)?, event);
        }
        Ok(())
    }
}
