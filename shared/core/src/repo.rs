//! Typed access to entities in the [`MetaStore`]: the single-table key design lives here, once,
//! for every adapter (DynamoDB, SQLite, memory).
//!
//! | entity | pk | sk | index pk / sk |
//! |---|---|---|---|
//! | device | `DEVICE#{uid}` | `DEVICE` | `TENANT#{t}#DEVICES` / `{product}#{uid}` |
//! | identification-code pointer | `TENANT#{t}#CODE#{code}` | `CODE` | |
//! | device alarm state | `DEVICE#{uid}` | `ALARMSTATE` | |
//! | product | `TENANT#{t}` | `PRODUCT#{id}` | |
//! | alarm rule | `TENANT#{t}` | `RULE#{product}#{id}` | |
//! | statistics job | `TENANT#{t}` | `STATJOB#{id}` | |
//! | statistics result | `STAT#{job}#{device}` | `{window end, 20 digits}` | |
//! | template / channel / route | `TENANT#{t}` | `TEMPLATE#{id}` / `CHANNEL#{id}` / `ROUTE#{id}` | |
//! | idempotency mark | `DONE#{key}` | `DONE` (with TTL) | |

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::alarm::{AlarmRule, DeviceAlarmState};
use crate::model::{Device, Product};
use crate::notify::{Channel, NotificationRoute, NotificationTemplate};
use crate::ports::{Condition, Item, Key, MetaStore, Query, StoreError, Write};
use crate::stats::{StatJob, StatResult};
use crate::time::Millis;

/// Typed repository over a [`MetaStore`].
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn MetaStore>,
}

fn tenant_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}

fn device_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "DEVICE")
}

fn code_key(tenant: &str, code: &str) -> Key {
    Key::new(format!("TENANT#{tenant}#CODE#{code}"), "CODE")
}

fn state_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "ALARMSTATE")
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_json::from_value(item.data).map_err(|e| StoreError::Corrupt {
        key: item.key,
        reason: e.to_string(),
    })
}

impl Catalog {
    pub fn new(store: Arc<dyn MetaStore>) -> Self {
        Self { store }
    }

    async fn get<T: DeserializeOwned>(&self, key: Key) -> Result<Option<T>, StoreError> {
        self.store.get(&key).await?.map(from_item).transpose()
    }

    async fn put<T: Serialize>(&self, key: Key, value: &T) -> Result<(), StoreError> {
        self.store
            .put(Item::new(key, to_json(value)?), Condition::Always)
            .await
    }

    /// Every item of a partition with a sort-key prefix, across pages.
    async fn list<T: DeserializeOwned>(&self, mut query: Query) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        loop {
            let page = self.store.query(&query).await?;
            for item in page.items {
                out.push(from_item(item)?);
            }
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    // ---- devices

    pub async fn device(&self, uid: &str) -> Result<Option<Device>, StoreError> {
        self.get(device_key(uid)).await
    }

    /// Creates or updates a device and its identification-code pointer, atomically; a code
    /// already used by another device of the tenant is refused.
    pub async fn put_device(&self, device: &Device) -> Result<(), StoreError> {
        let previous = self.device(&device.uid).await?;
        let mut item = Item::new(device_key(&device.uid), to_json(device)?);
        item.index = Some(Key::new(
            format!("{}#DEVICES", tenant_pk(&device.tenant_id)),
            format!("{}#{}", device.product_id, device.uid),
        ));
        let pointer = Item::new(
            code_key(&device.tenant_id, &device.identification_code),
            serde_json::json!({ "uid": device.uid }),
        );
        let mut writes = vec![Write::Put {
            item,
            condition: Condition::Always,
        }];
        match &previous {
            Some(p)
                if p.identification_code == device.identification_code
                    && p.tenant_id == device.tenant_id => {}
            _ => {
                writes.push(Write::Put {
                    item: pointer,
                    condition: Condition::NotExists,
                });
                if let Some(p) = previous {
                    writes.push(Write::Delete {
                        key: code_key(&p.tenant_id, &p.identification_code),
                        condition: Condition::Always,
                    });
                }
            }
        }
        self.store.transact(writes).await
    }

    pub async fn device_by_code(
        &self,
        tenant: &str,
        code: &str,
    ) -> Result<Option<Device>, StoreError> {
        let pointer: Option<serde_json::Value> = self.get(code_key(tenant, code)).await?;
        match pointer.as_ref().and_then(|p| p["uid"].as_str()) {
            Some(uid) => self.device(uid).await,
            None => Ok(None),
        }
    }

    /// Devices of a tenant, optionally of one product.
    pub async fn devices(
        &self,
        tenant: &str,
        product: Option<&str>,
    ) -> Result<Vec<Device>, StoreError> {
        let mut query = Query::index(format!("{}#DEVICES", tenant_pk(tenant)));
        if let Some(product) = product {
            query.sort = crate::ports::SortKey::Prefix(format!("{product}#"));
        }
        self.list(query).await
    }

    // ---- products and rules

    pub async fn product(&self, tenant: &str, id: &str) -> Result<Option<Product>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("PRODUCT#{id}")))
            .await
    }

    pub async fn put_product(&self, product: &Product) -> Result<(), StoreError> {
        self.put(
            Key::new(
                tenant_pk(&product.tenant_id),
                format!("PRODUCT#{}", product.id),
            ),
            product,
        )
        .await
    }

    pub async fn rules(&self, tenant: &str, product: &str) -> Result<Vec<AlarmRule>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), format!("RULE#{product}#")))
            .await
    }

    pub async fn rule(
        &self,
        tenant: &str,
        product: &str,
        id: &str,
    ) -> Result<Option<AlarmRule>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("RULE#{product}#{id}")))
            .await
    }

    pub async fn put_rule(&self, rule: &AlarmRule) -> Result<(), StoreError> {
        let key = Key::new(
            tenant_pk(&rule.tenant_id),
            format!("RULE#{}#{}", rule.product_id, rule.id),
        );
        self.put(key, rule).await
    }

    // ---- alarm state (versioned)

    /// The device's alarm state, new if none was stored.
    pub async fn alarm_state(&self, uid: &str) -> Result<DeviceAlarmState, StoreError> {
        match self.store.get(&state_key(uid)).await? {
            Some(item) => {
                let version = item.version;
                let mut state: DeviceAlarmState = from_item(item)?;
                state.version = version;
                Ok(state)
            }
            None => Ok(DeviceAlarmState::new(uid)),
        }
    }

    /// Writes the state if nobody else did since it was read; bumps its version.
    pub async fn save_alarm_state(&self, state: &mut DeviceAlarmState) -> Result<(), StoreError> {
        let condition = match state.version {
            0 => Condition::NotExists,
            v => Condition::Version(v),
        };
        let mut item = Item::new(state_key(&state.device_uid), to_json(state)?);
        item.version = state.version + 1;
        self.store.put(item, condition).await?;
        state.version += 1;
        Ok(())
    }

    // ---- statistics

    pub async fn stat_job(&self, tenant: &str, id: &str) -> Result<Option<StatJob>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("STATJOB#{id}")))
            .await
    }

    pub async fn put_stat_job(&self, job: &StatJob) -> Result<(), StoreError> {
        self.put(
            Key::new(tenant_pk(&job.tenant_id), format!("STATJOB#{}", job.id)),
            job,
        )
        .await
    }

    pub async fn put_stat_result(&self, result: &StatResult) -> Result<(), StoreError> {
        let key = Key::new(
            format!("STAT#{}#{}", result.job_id, result.device_uid),
            format!("{:020}", result.window.end),
        );
        self.put(key, result).await
    }

    /// Results of a job for a device whose window ends in `[from, to]`, oldest first.
    pub async fn stat_results(
        &self,
        job: &str,
        device: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatResult>, StoreError> {
        let mut query = Query::partition(format!("STAT#{job}#{device}"));
        query.sort = crate::ports::SortKey::Between(
            format!("{:020}", from.max(0)),
            format!("{:020}", to.max(0)),
        );
        self.list(query).await
    }

    // ---- notifications

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

    // ---- idempotency

    pub async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(&Key::new(format!("DONE#{key}"), "DONE"))
            .await?
            .is_some())
    }

    /// Marks `key` as done until `expires_at`.
    pub async fn mark_done(&self, key: &str, expires_at: Millis) -> Result<(), StoreError> {
        let mut item = Item::new(
            Key::new(format!("DONE#{key}"), "DONE"),
            serde_json::Value::Null,
        );
        item.expires_at = Some(expires_at);
        self.store.put(item, Condition::Always).await
    }
}
