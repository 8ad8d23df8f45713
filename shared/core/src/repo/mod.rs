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
//! | firmware package / rollout | `TENANT#{t}` | `FIRMWARE#{id}` / `ROLLOUT#{id}` | |
//! | job execution | `DEVICE#{uid}` | `JOB#{rollout}` | `TENANT#{t}#ROLLOUT#{rollout}` / `{uid}` |
//! | firmware a device runs | `DEVICE#{uid}` | `FIRMWARE` | |
//! | IoT job id of a rollout | `JOB#{job id}` | `JOB` | |
//!
//! The keys are made here; the entities' reads and writes are one module per aggregate:
//! `devices.rs`, `products.rs` (and rules), `alarms.rs`, `stats.rs`, `notifications.rs` (and
//! inboxes), `tenants.rs`, `access.rs` (users, roles, sessions, audit), `app_credentials.rs`,
//! `certificates.rs`, `firmware.rs` (packages, rollouts, executions), and what a deleted tenant leaves behind in `purge.rs`.

mod access;
mod alarms;
mod app_credentials;
mod certificates;
mod devices;
mod firmware;
mod notifications;
mod products;
mod purge;
mod stats;
mod tenants;

pub use access::{AuditFilter, Versioned};
pub use certificates::{IssuedCertificate, RevokedCertificate};

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::alarm::AlarmStatus;
use crate::ports::{Condition, Item, Key, MetaStore, Query, SortKey, StoreError};
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

    // ---- tenant-level entities

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
