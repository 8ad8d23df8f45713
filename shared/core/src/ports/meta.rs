//! Metadata storage, shaped like DynamoDB so the AWS adapter is a thin mapping: items addressed
//! by partition and sort key, one secondary index, conditional writes on a version number,
//! transactions, paginated key-range queries and a time to live.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::Millis;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: Key,
    /// The entity, as JSON.
    pub data: serde_json::Value,
    /// Written by the caller; [`Condition::Version`] compares against it.
    pub version: u64,
    /// Key in the secondary index (`gsi1` on DynamoDB), if the item is listed there.
    #[serde(default)]
    pub index: Option<Key>,
    /// When the item expires; stores treat expired items as absent.
    #[serde(default)]
    pub expires_at: Option<Millis>,
}

impl Item {
    pub fn new(key: Key, data: serde_json::Value) -> Self {
        Self {
            key,
            data,
            version: 1,
            index: None,
            expires_at: None,
        }
    }

    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// No live item with this key exists.
    NotExists,
    /// A live item exists.
    Exists,
    /// A live item exists with exactly this version.
    Version(u64),
}

impl Condition {
    /// Whether the condition holds for an item whose live version is `live_version`
    /// (`None`: no live item).
    pub fn holds(self, live_version: Option<u64>) -> bool {
        match self {
            Condition::Always => true,
            Condition::NotExists => live_version.is_none(),
            Condition::Exists => live_version.is_some(),
            Condition::Version(v) => live_version == Some(v),
        }
    }
}

/// Which sort keys a query returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    All,
    Prefix(String),
    /// Inclusive on both ends.
    Between(String, String),
}

impl SortKey {
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SortKey::All => true,
            SortKey::Prefix(p) => sk.starts_with(p.as_str()),
            SortKey::Between(a, b) => a.as_str() <= sk && sk <= b.as_str(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Query the secondary index instead of the table.
    pub on_index: bool,
    pub pk: String,
    pub sort: SortKey,
    pub limit: Option<usize>,
    pub descending: bool,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

impl Query {
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            on_index: false,
            pk: pk.into(),
            sort: SortKey::All,
            limit: None,
            descending: false,
            cursor: None,
        }
    }

    pub fn prefix(pk: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            sort: SortKey::Prefix(prefix.into()),
            ..Self::partition(pk)
        }
    }

    pub fn index(pk: impl Into<String>) -> Self {
        Self {
            on_index: true,
            ..Self::partition(pk)
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Only a condition, on an item the transaction does not write.
    Check {
        key: Key,
        condition: Condition,
    },
}

impl Write {
    /// The key a write addresses and the condition on it.
    pub fn target(&self) -> (&Key, Condition) {
        match self {
            Write::Put { item, condition } => (&item.key, *condition),
            Write::Delete { key, condition } | Write::Check { key, condition } => (key, *condition),
        }
    }
}

/// Most writes in one transaction (DynamoDB's limit).
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// Refuses what DynamoDB refuses before looking at any item: too many writes, or one key twice.
pub fn check_transaction(writes: &[Write]) -> Result<(), StoreError> {
    if writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::Invalid(format!(
            "{} writes in one transaction; the limit is {MAX_TRANSACTION_WRITES}",
            writes.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for write in writes {
        let (key, _) = write.target();
        if !seen.insert(key) {
            return Err(StoreError::Invalid(format!(
                "{}/{} appears twice in one transaction",
                key.pk, key.sk
            )));
        }
    }
    Ok(())
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("condition failed on {pk}/{sk}", pk = .0.pk, sk = .0.sk)]
    ConditionFailed(Key),
    #[error("transaction cancelled: {0}")]
    TransactionCancelled(String),
    #[error("stored item {pk}/{sk} is unreadable: {reason}", pk = .key.pk, sk = .key.sk)]
    Corrupt { key: Key, reason: String },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError>;
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError>;
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;
    /// All or nothing; see [`check_transaction`] for the shape rules.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}
