//! In-system messages: the notifier for `in_system` channels, the same on AWS and on one
//! machine because it only needs the metadata port.

use async_trait::async_trait;
use std::sync::Arc;

use crate::notify::{ChannelKind, Delivery, InboxMessage};
use crate::ports::{Clock, DeliveryError, Notifier, StoreError};
use crate::repo::Catalog;

pub struct InboxNotifier {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
}

impl InboxNotifier {
    pub fn new(catalog: Catalog, clock: Arc<dyn Clock>) -> Self {
        Self { catalog, clock }
    }
}

#[async_trait]
impl Notifier for InboxNotifier {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let ChannelKind::InSystem { user_ids } = &delivery.channel.kind else {
            return Err(DeliveryError::Permanent(format!(
                "channel {:?} is not an in-system channel",
                delivery.channel.id
            )));
        };
        let now = self.clock.now_ms();
        for user_id in user_ids {
            let message = InboxMessage {
                // The delivery key makes a retried delivery overwrite, not duplicate.
                id: format!("{}:{}", delivery.key, user_id),
                tenant_id: delivery.channel.tenant_id.clone(),
                user_id: user_id.clone(),
                subject: delivery.subject.clone(),
                body: delivery.body.clone(),
                created_at: now,
                read_at: None,
            };
            self.catalog
                .put_message(&message)
                .await
                .map_err(|e: StoreError| DeliveryError::Retryable(e.to_string()))?;
        }
        Ok(())
    }
}
