//! Notification templates, channels and routes, and each user's in-system messages.

use super::{Catalog, inbox_pk, tenant_pk, to_json};
use crate::notify::{Channel, InboxMessage, NotificationRoute, NotificationTemplate};
use crate::ports::{Condition, Item, Key, Query, StoreError};

impl Catalog {
    pub async fn routes(&self, tenant: &str) -> Result<Vec<NotificationRoute>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "ROUTE#")).await
    }

    pub async fn put_route(&self, route: &NotificationRoute) -> Result<(), StoreError> {
        self.put(
            Key::new(tenant_pk(&route.tenant_id), format!("ROUTE#{}", route.id)),
            route,
        )
        .await
    }

    pub async fn template(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<NotificationTemplate>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("TEMPLATE#{id}")))
            .await
    }

    pub async fn put_template(&self, template: &NotificationTemplate) -> Result<(), StoreError> {
        self.put(
            Key::new(
                tenant_pk(&template.tenant_id),
                format!("TEMPLATE#{}", template.id),
            ),
            template,
        )
        .await
    }

    pub async fn channel(&self, tenant: &str, id: &str) -> Result<Option<Channel>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("CHANNEL#{id}")))
            .await
    }

    pub async fn put_channel(&self, channel: &Channel) -> Result<(), StoreError> {
        self.put(
            Key::new(
                tenant_pk(&channel.tenant_id),
                format!("CHANNEL#{}", channel.id),
            ),
            channel,
        )
        .await
    }

    pub async fn templates(&self, tenant: &str) -> Result<Vec<NotificationTemplate>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "TEMPLATE#"))
            .await
    }

    pub async fn channels(&self, tenant: &str) -> Result<Vec<Channel>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "CHANNEL#"))
            .await
    }

    pub async fn put_message(&self, message: &InboxMessage) -> Result<(), StoreError> {
        let pk = inbox_pk(&message.tenant_id, &message.user_id);
        let mut item = Item::new(
            Key::new(pk.clone(), format!("MSG#{}", message.id)),
            to_json(message)?,
        );
        item.index = Some(Key::new(
            pk,
            format!("{:020}#{}", message.created_at, message.id),
        ));
        self.store.put(item, Condition::Always).await
    }

    pub async fn message(
        &self,
        tenant: &str,
        user: &str,
        id: &str,
    ) -> Result<Option<InboxMessage>, StoreError> {
        self.get(Key::new(inbox_pk(tenant, user), format!("MSG#{id}")))
            .await
    }

    /// A user's messages, newest first.
    pub async fn messages(
        &self,
        tenant: &str,
        user: &str,
        unread_only: bool,
    ) -> Result<Vec<InboxMessage>, StoreError> {
        let (messages, _) = self
            .messages_page(tenant, user, unread_only, None, usize::MAX)
            .await?;
        Ok(messages)
    }

    /// A page of [`Self::messages`] from `cursor` on, and the next page's cursor.
    pub async fn messages_page(
        &self,
        tenant: &str,
        user: &str,
        unread_only: bool,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<InboxMessage>, Option<String>), StoreError> {
        let mut query = Query::index(inbox_pk(tenant, user));
        query.descending = true;
        query.cursor = cursor;
        self.page_where(query, limit, |m: &InboxMessage| {
            !unread_only || m.read_at.is_none()
        })
        .await
    }
}
