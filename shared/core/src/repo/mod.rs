//! Typed access to entities in the [`MetaStore`]: the single-table key design lives here, once,
//! for every adapter (DynamoDB, SQLite, memory).
//!
//! | entity | pk | sk | index pk / sk |
//! |---|---|---|---|
//! | device | `DEVICE#{uid}` | `DEVICE` | `TENANT#{t}#DEVICES` / `{product}#{uid}` |
//! | identification-code pointer | `TENANT#{t}#CODE#{code}` | `CODE` | |
//! | device alarm state | `DEVICE#{uid}` | `ALARMSTATE` | |
//! | device presence | `DEVICE#{uid}` | `PRESENCE` | |
//! | device token (HTTP ingest; SHA-256 only) | `DEVICE#{uid}` | `TOKEN` | |
//! | when the uid's last device was deleted | `DEVICE#{uid}` | `RETIRED` | |
//! | product | `TENANT#{t}` | `PRODUCT#{id}` | |
//! | alarm rule | `TENANT#{t}` | `RULE#{product}#{id}` | |
//! | statistics job | `TENANT#{t}` | `STATJOB#{id}` | |
//! | statistics result | `TENANT#{t}#STAT#{job}#{device}` | `{window end, 20 digits}` | |
//! | template / channel / route | `TENANT#{t}` | `TEMPLATE#{id}` / `CHANNEL#{id}` / `ROUTE#{id}` | |
//! | alarm (record) | `TENANT#{t}#ALARMS` | `{raised_at, 20 digits}#{alarm id}` | `DEVICE#{uid}#ALARMS` / same sk |
//! | in-system message | `TENANT#{t}#INBOX#{user}` | `MSG#{id}` | same pk / `{created_at, 20 digits}#{id}` |
//! | idempotency mark | `DONE#{key}` | `DONE` (with TTL) | |
//!
//! Tenants are in `tenants.rs`, application credentials in `app_credentials.rs`, device
//! certificates in `certificates.rs`, and what a deleted tenant leaves behind in `purge.rs`.

mod access;
mod app_credentials;
mod certificates;
mod purge;
mod tenants;

pub use access::{AuditFilter, Versioned};
pub use certificates::{IssuedCertificate, RevokedCertificate};

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::alarm::{AlarmRecord, AlarmRule, AlarmStatus, DeviceAlarmState, parse_alarm_id};
use crate::model::{Device, Presence, Product, ShadowSection, merge_shadow};
use crate::notify::{Channel, InboxMessage, NotificationRoute, NotificationTemplate};
use crate::ports::{Condition, Item, Key, MetaStore, Query, SortKey, StoreError, Write};
use crate::stats::{StatJob, StatResult};
use crate::time::Millis;
use certificates::certificate_key;

/// Typed repository over a [`MetaStore`].
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn MetaStore>,
}

/// A tenant's devices (of one product, if given) through the secondary index.
fn devices_query(tenant: &str, product: Option<&str>) -> Query {
    let mut query = Query::index(format!("{}#DEVICES", tenant_pk(tenant)));
    if let Some(product) = product {
        query.sort = SortKey::Prefix(format!("{product}#"));
    }
    query
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

fn presence_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "PRESENCE")
}

fn token_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "TOKEN")
}

fn retired_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "RETIRED")
}

fn shadow_key(uid: &str) -> Key {
    Key::new(format!("DEVICE#{uid}"), "SHADOW")
}

fn alarms_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}#ALARMS")
}

fn alarm_sk(raised_at: Millis, alarm_id: &str) -> String {
    format!("{raised_at:020}#{alarm_id}")
}

/// Results are keyed by tenant: two tenants' jobs of the same id never share a partition.
fn stat_results_pk(tenant: &str, job: &str, device: &str) -> String {
    format!("TENANT#{tenant}#STAT#{job}#{device}")
}

fn inbox_pk(tenant: &str, user: &str) -> String {
    format!("TENANT#{tenant}#INBOX#{user}")
}

/// Which alarms to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmFilter {
    pub device_uid: Option<String>,
    /// Only open (active or acknowledged) alarms.
    pub open_only: bool,
    pub status: Option<AlarmStatus>,
    pub limit: Option<usize>,
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
        self.write_device(device, previous, Condition::Always).await
    }

    /// Creates a device; refused (`TransactionCancelled`) if its uid or code is taken, even by
    /// a concurrent creator.
    pub async fn create_device(&self, device: &Device) -> Result<(), StoreError> {
        self.write_device(device, None, Condition::NotExists).await
    }

    async fn write_device(
        &self,
        device: &Device,
        previous: Option<Device>,
        condition: Condition,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(device_key(&device.uid), to_json(device)?);
        item.index = Some(Key::new(
            format!("{}#DEVICES", tenant_pk(&device.tenant_id)),
            format!("{}#{}", device.product_id, device.uid),
        ));
        let pointer = Item::new(
            code_key(&device.tenant_id, &device.identification_code),
            serde_json::json!({ "uid": device.uid }),
        );
        let mut writes = vec![Write::Put { item, condition }];
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

    /// When the last device of `uid` was deleted, if one was.
    pub async fn uid_retired_at(&self, uid: &str) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .store
            .get(&retired_key(uid))
            .await?
            .and_then(|item| item.data.get("deleted_at")?.as_i64()))
    }

    /// The SHA-256 of the device's HTTP ingest token, if it has one.
    pub async fn device_token(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&token_key(uid))
            .await?
            .and_then(|item| item.data.get("digest")?.as_str().map(str::to_owned)))
    }

    /// Keeps a device token as its SHA-256 `digest` (what HTTP ingest and the embedded
    /// broker check) and `broker_hash` (`auth::secret::broker_password_hash` of the password
    /// the device gives an external broker, for its password file).
    pub async fn put_device_token(
        &self,
        uid: &str,
        digest: &str,
        broker_hash: &str,
    ) -> Result<(), StoreError> {
        self.put(
            token_key(uid),
            &serde_json::json!({ "digest": digest, "broker_hash": broker_hash }),
        )
        .await
    }

    /// The broker password-file hash of the device's token, if it has one.
    pub async fn device_broker_hash(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&token_key(uid))
            .await?
            .and_then(|item| item.data.get("broker_hash")?.as_str().map(str::to_owned)))
    }

    pub async fn delete_device_token(&self, uid: &str) -> Result<(), StoreError> {
        self.store.delete(&token_key(uid), Condition::Always).await
    }

    /// The device's shadow document, where the platform keeps it (one machine).
    pub async fn device_shadow(&self, uid: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.get(shadow_key(uid)).await
    }

    /// Merges `changes` into one section of the device's shadow (see
    /// [`crate::model::merge_shadow`]) and saves it, reading it again if another update won the
    /// race. Answers the shadow as saved; `Invalid` if `changes` is not an object.
    pub async fn update_device_shadow(
        &self,
        uid: &str,
        section: ShadowSection,
        changes: &serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        for _ in 0..5 {
            let stored = self
                .get_versioned::<serde_json::Value>(shadow_key(uid))
                .await?;
            let version = stored.as_ref().map(|v| v.version);
            let mut shadow = stored.map(|v| v.value).unwrap_or_default();
            merge_shadow(&mut shadow, section, changes).ok_or_else(|| {
                StoreError::Invalid("a shadow update is a JSON object of keys".into())
            })?;
            match self.put_versioned(shadow_key(uid), &shadow, version).await {
                Ok(()) => return Ok(shadow),
                Err(StoreError::ConditionFailed(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::ConditionFailed(shadow_key(uid)))
    }

    pub async fn presence(&self, uid: &str) -> Result<Option<Presence>, StoreError> {
        self.get(presence_key(uid)).await
    }

    /// Records a connect or disconnect unless a newer one is recorded already. Returns whether
    /// it was recorded.
    pub async fn record_presence(
        &self,
        uid: &str,
        presence: &Presence,
    ) -> Result<bool, StoreError> {
        for _ in 0..5 {
            let current = self.store.get(&presence_key(uid)).await?;
            let condition = match &current {
                Some(item) => {
                    let recorded: Presence = from_item(item.clone())?;
                    if !presence.supersedes(&recorded) {
                        return Ok(false);
                    }
                    Condition::Version(item.version)
                }
                None => Condition::NotExists,
            };
            let mut item = Item::new(presence_key(uid), to_json(presence)?);
            item.version = current.map_or(1, |i| i.version + 1);
            match self.store.put(item, condition).await {
                Err(StoreError::ConditionFailed(_)) => continue,
                other => return other.map(|()| true),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the presence of device {uid:?} kept changing; retry"
        )))
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
        self.list(devices_query(tenant, product)).await
    }

    /// A page of the tenant's devices (of one product, if given) that `visible` accepts, in
    /// the order of [`Self::devices`], from `cursor` on; and the next page's cursor.
    pub async fn devices_page(
        &self,
        tenant: &str,
        product: Option<&str>,
        cursor: Option<String>,
        limit: usize,
        visible: impl Fn(&Device) -> bool,
    ) -> Result<(Vec<Device>, Option<String>), StoreError> {
        let mut query = devices_query(tenant, product);
        query.cursor = cursor;
        self.page_where(query, limit, visible).await
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

    /// Like [`Self::save_alarm_state`], and writes the alarm records in the same transaction.
    pub async fn save_alarm_state_with(
        &self,
        state: &mut DeviceAlarmState,
        records: &[AlarmRecord],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return self.save_alarm_state(state).await;
        }
        let condition = match state.version {
            0 => Condition::NotExists,
            v => Condition::Version(v),
        };
        let mut item = Item::new(state_key(&state.device_uid), to_json(state)?);
        item.version = state.version + 1;
        let mut writes = vec![Write::Put { item, condition }];
        for record in records {
            writes.push(Write::Put {
                item: alarm_item(record)?,
                condition: Condition::Always,
            });
        }
        self.store.transact(writes).await?;
        state.version += 1;
        Ok(())
    }

    // ---- alarms

    pub async fn alarm(
        &self,
        tenant: &str,
        alarm_id: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let Some((_, _, raised_at)) = parse_alarm_id(alarm_id) else {
            return Ok(None);
        };
        self.get(Key::new(alarms_pk(tenant), alarm_sk(raised_at, alarm_id)))
            .await
    }

    /// Every alarm the filter selects, newest first (up to `filter.limit`).
    pub async fn alarms(
        &self,
        tenant: &str,
        filter: &AlarmFilter,
    ) -> Result<Vec<AlarmRecord>, StoreError> {
        let (alarms, _) = self
            .alarms_page(tenant, filter, None, usize::MAX, |_| true)
            .await?;
        Ok(alarms)
    }

    /// One page of the alarms the filter selects and `visible` keeps, newest first, at most
    /// `filter.limit` (else `page_size`) of them; and the cursor after the last one, if the
    /// store may have more. The cursor is the store's, so a page costs reads of about its size
    /// however deep it is.
    pub async fn alarms_page(
        &self,
        tenant: &str,
        filter: &AlarmFilter,
        cursor: Option<String>,
        page_size: usize,
        visible: impl Fn(&AlarmRecord) -> bool,
    ) -> Result<(Vec<AlarmRecord>, Option<String>), StoreError> {
        let mut query = match &filter.device_uid {
            Some(uid) => Query::index(format!("DEVICE#{uid}#ALARMS")),
            None => Query::partition(alarms_pk(tenant)),
        };
        query.descending = true;
        query.cursor = cursor;
        let limit = filter.limit.unwrap_or(page_size);
        self.page_where(query, limit, |record: &AlarmRecord| {
            record.tenant_id == tenant
                && (!filter.open_only || record.status.is_open())
                && filter.status.is_none_or(|s| s == record.status)
                && visible(record)
        })
        .await
    }

    /// Up to `limit` items of `query` (from its cursor on) that `keep` accepts, and the cursor
    /// of the next page. Filtered here, page by page, so a caller who sees few items does not
    /// make the whole list be read.
    async fn page_where<T: serde::de::DeserializeOwned>(
        &self,
        mut query: Query,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<T>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let mut out = Vec::new();
        loop {
            // Ask for no more than still fits, so the store's cursor is right after the last
            // item returned.
            query.limit = Some(limit.saturating_sub(out.len()).clamp(1, 1_000));
            let page = self.store.query(&query).await?;
            for item in page.items {
                let value: T = from_item(item)?;
                if keep(&value) {
                    out.push(value);
                }
            }
            match page.next {
                Some(next) if out.len() < limit => query.cursor = Some(next),
                next => return Ok((out, next)),
            }
        }
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
            stat_results_pk(&result.tenant_id, &result.job_id, &result.device_uid),
            format!("{:020}", result.window.end),
        );
        self.put(key, result).await
    }

    /// Results of a tenant's job for a device whose window ends in `[from, to]`, oldest first.
    pub async fn stat_results(
        &self,
        tenant: &str,
        job: &str,
        device: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatResult>, StoreError> {
        let (results, _) = self
            .stat_results_page(tenant, job, device, (from, to), None, usize::MAX, |_| true)
            .await?;
        Ok(results)
    }

    /// A page of [`Self::stat_results`] that `keep` accepts, from `cursor` on, and the next
    /// page's cursor.
    #[allow(clippy::too_many_arguments)]
    pub async fn stat_results_page(
        &self,
        tenant: &str,
        job: &str,
        device: &str,
        (from, to): (Millis, Millis),
        cursor: Option<String>,
        limit: usize,
        keep: impl Fn(&StatResult) -> bool,
    ) -> Result<(Vec<StatResult>, Option<String>), StoreError> {
        let mut query = Query::partition(stat_results_pk(tenant, job, device));
        query.sort = SortKey::Between(format!("{:020}", from.max(0)), format!("{:020}", to.max(0)));
        query.cursor = cursor;
        self.page_where(query, limit, keep).await
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

    // ---- in-system messages

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

    // ---- listings and deletes

    pub async fn products(&self, tenant: &str) -> Result<Vec<Product>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "PRODUCT#"))
            .await
    }

    /// All alarm rules of a tenant, of every product.
    pub async fn all_rules(&self, tenant: &str) -> Result<Vec<AlarmRule>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "RULE#")).await
    }

    pub async fn stat_jobs(&self, tenant: &str) -> Result<Vec<StatJob>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "STATJOB#"))
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

    /// Deletes a tenant-level entity (`PRODUCT`, `RULE`, `STATJOB`, `TEMPLATE`, `CHANNEL`,
    /// `ROUTE`); `id` is what follows the `#` of its sort key. Missing is an error.
    pub async fn delete_entity(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        self.store
            .delete(
                &Key::new(tenant_pk(tenant), format!("{kind}#{id}")),
                Condition::Exists,
            )
            .await
    }

    /// Deletes a device, its identification-code pointer, its alarm state and its presence.
    /// Deletes a device and everything kept under its uid but its data, and leaves a mark of
    /// when, so a device created later under the uid starts with none of it.
    pub async fn delete_device(&self, device: &Device, at: Millis) -> Result<(), StoreError> {
        let uid = &device.uid;
        let mut writes = vec![
            Write::Delete {
                key: device_key(uid),
                condition: Condition::Exists,
            },
            Write::Put {
                item: Item::new(retired_key(uid), serde_json::json!({ "deleted_at": at })),
                condition: Condition::Always,
            },
        ];
        writes.extend(
            [
                code_key(&device.tenant_id, &device.identification_code),
                state_key(uid),
                presence_key(uid),
                token_key(uid),
                certificate_key(uid),
                shadow_key(uid),
            ]
            .into_iter()
            .map(|key| Write::Delete {
                key,
                condition: Condition::Always,
            }),
        );
        self.store.transact(writes).await
    }

    // ---- idempotency

    pub async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(&Key::new(format!("DONE#{key}"), "DONE"))
            .await?
            .is_some())
    }

    /// Marks `key` as done until `expires_at` if nobody did before: `false` if it was, even
    /// by a concurrent caller (a single-use check).
    pub async fn claim_once(&self, key: &str, expires_at: Millis) -> Result<bool, StoreError> {
        let mut item = Item::new(
            Key::new(format!("DONE#{key}"), "DONE"),
            serde_json::Value::Null,
        );
        item.expires_at = Some(expires_at);
        match self.store.put(item, Condition::NotExists).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed(_)) => Ok(false),
            Err(e) => Err(e),
        }
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

fn alarm_item(record: &AlarmRecord) -> Result<Item, StoreError> {
    let sk = alarm_sk(record.raised_at, &record.alarm_id);
    let mut item = Item::new(
        Key::new(alarms_pk(&record.tenant_id), sk.clone()),
        to_json(record)?,
    );
    item.index = Some(Key::new(format!("DEVICE#{}#ALARMS", record.device_uid), sk));
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryMetaStore;

    fn presence(online: bool, since: Millis) -> Presence {
        Presence {
            online,
            since,
            reason: (!online).then(|| "CONNECTION_LOST".to_owned()),
        }
    }

    #[tokio::test]
    async fn presence_only_moves_forward() -> Result<(), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        assert_eq!(catalog.presence("d1").await?, None);
        assert!(catalog.record_presence("d1", &presence(true, 100)).await?);
        assert!(catalog.record_presence("d1", &presence(false, 300)).await?);
        // A connect that happened before the disconnect arrives late: ignored.
        assert!(!catalog.record_presence("d1", &presence(true, 200)).await?);
        assert_eq!(catalog.presence("d1").await?, Some(presence(false, 300)));
        assert!(catalog.record_presence("d1", &presence(true, 400)).await?);
        assert_eq!(catalog.presence("d1").await?, Some(presence(true, 400)));
        Ok(())
    }
}
