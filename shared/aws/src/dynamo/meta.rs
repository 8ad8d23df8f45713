//! [`MetaStore`] on one DynamoDB table (single-table design; the keys are in `iot_core::repo`
//! and `docs/architecture.md`).
//!
//! Attributes: `pk`, `sk`, `data` (the entity as a map), `ver` (optimistic version), `gsi1pk` and
//! `gsi1sk` (index `gsi1`, only on listed items), `exp` (expiry in ms, exact) and `ttl` (the
//! same in seconds, for DynamoDB's TTL deletion, which runs up to days late: reads and
//! conditions therefore treat an item past `exp` as absent themselves).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};
use iot_core::ports::{
    Clock, Condition, Item, Key, MetaStore, Page, Query, SortKey, StoreError, SystemClock, Write,
    check_transaction,
};
use std::collections::HashMap;
use std::sync::Arc;

use super::value::{from_attr, get_n, get_s, n, s, to_attr};
use crate::error::{code, describe};

pub const INDEX_NAME: &str = "gsi1";

type Attrs = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoMetaStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

/// Applies an optional condition to any of the SDK's request builders (each is its own type,
/// with the same three setters).
macro_rules! with_condition {
    ($builder:expr, $expression:expr) => {
        match $expression {
            Some(e) => $builder
                .condition_expression(e.text)
                .set_expression_attribute_names(Some(e.names))
                .set_expression_attribute_values(Some(e.values)),
            None => $builder,
        }
    };
}

/// A condition as DynamoDB expression parts.
struct Expression {
    text: String,
    names: HashMap<String, String>,
    values: Attrs,
}

impl DynamoMetaStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self::with_clock(client, table, Arc::new(SystemClock))
    }

    pub fn with_clock(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(key: &Key) -> Attrs {
        HashMap::from([("pk".into(), s(&key.pk)), ("sk".into(), s(&key.sk))])
    }

    fn encode(item: &Item) -> Attrs {
        let mut attrs = Self::key(&item.key);
        attrs.insert("data".into(), to_attr(&item.data));
        attrs.insert("ver".into(), n(item.version));
        if let Some(index) = &item.index {
            attrs.insert("gsi1pk".into(), s(&index.pk));
            attrs.insert("gsi1sk".into(), s(&index.sk));
        }
        if let Some(expires_at) = item.expires_at {
            attrs.insert("exp".into(), n(expires_at));
            attrs.insert("ttl".into(), n(expires_at.div_euclid(1000) + 1));
        }
        attrs
    }

    fn decode(attrs: &Attrs) -> Result<Item, StoreError> {
        let key = Key::new(
            get_s(attrs, "pk").unwrap_or_default(),
            get_s(attrs, "sk").unwrap_or_default(),
        );
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.clone(),
            reason,
        };
        let data = attrs
            .get("data")
            .map(from_attr)
            .transpose()
            .map_err(corrupt)?
            .ok_or_else(|| corrupt("no data attribute".into()))?;
        let index = match (get_s(attrs, "gsi1pk"), get_s(attrs, "gsi1sk")) {
            (Some(pk), Some(sk)) => Some(Key::new(pk, sk)),
            _ => None,
        };
        Ok(Item {
            version: get_n(attrs, "ver").unwrap_or(0),
            data,
            index,
            expires_at: get_n(attrs, "exp"),
            key,
        })
    }

    /// The condition, counting an item past its expiry as absent.
    fn expression(&self, condition: Condition) -> Option<Expression> {
        let now = self.clock.now_ms();
        let live = "(attribute_not_exists(#exp) OR #exp > :now)";
        let (text, mut values) = match condition {
            Condition::Always => return None,
            Condition::NotExists => (
                "attribute_not_exists(#pk) OR #exp <= :now".to_owned(),
                HashMap::new(),
            ),
            Condition::Exists => (format!("attribute_exists(#pk) AND {live}"), HashMap::new()),
            Condition::Version(v) => (
                format!("#ver = :ver AND {live}"),
                HashMap::from([(":ver".to_owned(), n(v))]),
            ),
        };
        values.insert(":now".into(), n(now));
        let mut names = HashMap::from([("#exp".to_owned(), "exp".to_owned())]);
        if text.contains("#pk") {
            names.insert("#pk".into(), "pk".into());
        }
        if text.contains("#ver") {
            names.insert("#ver".into(), "ver".into());
        }
        Some(Expression {
            text,
            names,
            values,
        })
    }

    fn unavailable<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        match code(error) {
            Some("ValidationException") => StoreError::Invalid(describe(error)),
            _ => StoreError::Unavailable(describe(error)),
        }
    }

    fn encode_cursor(key: &Attrs) -> Option<String> {
        let strings: HashMap<&str, &str> = key
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_s().ok()?.as_str())))
            .collect();
        serde_json::to_string(&strings).ok()
    }

    fn decode_cursor(cursor: &str) -> Result<Attrs, StoreError> {
        let strings: HashMap<String, String> = serde_json::from_str(cursor)
            .map_err(|_| StoreError::Invalid(format!("bad page cursor {cursor:?}")))?;
        Ok(strings.into_iter().map(|(k, v)| (k, s(v))).collect())
    }

    fn transact_item(&self, write: Write) -> Result<TransactWriteItem, StoreError> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let (key, condition) = write.target();
        let expression = self.expression(condition);
        let key_attrs = Self::key(key);
        let item = match write {
            Write::Put { item, .. } => {
                let put = with_condition!(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(Self::encode(&item))),
                    expression
                );
                TransactWriteItem::builder()
                    .put(put.build().map_err(invalid)?)
                    .build()
            }
            Write::Delete { .. } => {
                let delete = with_condition!(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs)),
                    expression
                );
                TransactWriteItem::builder()
                    .delete(delete.build().map_err(invalid)?)
                    .build()
            }
            Write::Check { .. } => {
                // DynamoDB needs a condition on a check; `Always` checks nothing.
                let e = expression.unwrap_or(Expression {
                    text: "attribute_exists(#pk) OR attribute_not_exists(#pk)".into(),
                    names: HashMap::from([("#pk".into(), "pk".into())]),
                    values: HashMap::new(),
                });
                let mut check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs))
                    .condition_expression(e.text)
                    .set_expression_attribute_names(Some(e.names));
                if !e.values.is_empty() {
                    check = check.set_expression_attribute_values(Some(e.values));
                }
                TransactWriteItem::builder()
                    .condition_check(check.build().map_err(invalid)?)
                    .build()
            }
        };
        Ok(item)
    }
}

#[async_trait]
impl MetaStore for DynamoMetaStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::unavailable(&e))?;
        let now = self.clock.now_ms();
        match output.item() {
            Some(attrs) => Ok(Some(Self::decode(attrs)?).filter(|i| !i.is_expired(now))),
            None => Ok(None),
        }
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let key = item.key.clone();
        let request = with_condition!(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::encode(&item))),
            self.expression(condition)
        );
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {
                Err(StoreError::ConditionFailed(key))
            }
            Err(e) => Err(Self::unavailable(&e)),
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let request = with_condition!(
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(key))),
            self.expression(condition)
        );
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {
                Err(StoreError::ConditionFailed(key.clone()))
            }
            Err(e) => Err(Self::unavailable(&e)),
        }
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let (pk_name, sk_name) = if query.on_index {
            ("gsi1pk", "gsi1sk")
        } else {
            ("pk", "sk")
        };
        let mut names = HashMap::from([
            ("#pk".to_owned(), pk_name.to_owned()),
            ("#exp".to_owned(), "exp".to_owned()),
        ]);
        let mut values = HashMap::from([
            (":pk".to_owned(), s(&query.pk)),
            (":now".to_owned(), n(self.clock.now_ms())),
        ]);
        let mut key_condition = "#pk = :pk".to_owned();
        match &query.sort {
            SortKey::All => {}
            SortKey::Prefix(prefix) => {
                key_condition.push_str(" AND begins_with(#sk, :a)");
                names.insert("#sk".into(), sk_name.into());
                values.insert(":a".into(), s(prefix));
            }
            SortKey::Between(a, b) => {
                key_condition.push_str(" AND #sk BETWEEN :a AND :b");
                names.insert("#sk".into(), sk_name.into());
                values.insert(":a".into(), s(a));
                values.insert(":b".into(), s(b));
            }
        }
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key_condition)
            .filter_expression("attribute_not_exists(#exp) OR #exp > :now")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!query.descending)
            .set_exclusive_start_key(
                query
                    .cursor
                    .as_deref()
                    .map(Self::decode_cursor)
                    .transpose()?,
            );
        if query.on_index {
            request = request.index_name(INDEX_NAME);
        } else {
            // Read-your-writes on the table (an index is only eventually consistent).
            request = request.consistent_read(true);
        }
        if let Some(limit) = query.limit {
            let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
            request = request.limit(limit);
        }
        let output = request.send().await.map_err(|e| Self::unavailable(&e))?;
        let items = output
            .items()
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let next = output.last_evaluated_key().and_then(Self::encode_cursor);
        Ok(Page { items, next })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        let keys: Vec<Key> = writes.iter().map(|w| w.target().0.clone()).collect();
        let items = writes
            .into_iter()
            .map(|w| self.transact_item(w))
            .collect::<Result<Vec<_>, _>>()?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    // One reason per write, in order; name the writes that failed and why.
                    let reasons: Vec<String> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .zip(&keys)
                        .filter_map(|(reason, key)| {
                            let code = reason.code().filter(|c| *c != "None")?;
                            Some(format!("{code} on {}/{}", key.pk, key.sk))
                        })
                        .collect();
                    Err(StoreError::TransactionCancelled(if reasons.is_empty() {
                        describe(&e)
                    } else {
                        reasons.join("; ")
                    }))
                }
                _ => Err(Self::unavailable(&e)),
            },
        }
    }
}
