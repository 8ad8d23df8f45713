//! [`MetaStore`] on SQLite: the `items` table mirrors the DynamoDB single table.

use async_trait::async_trait;
use iot_core::ports::{
    Clock, Condition, Item, Key, MetaStore, Page, Query, SortKey, StoreError, SystemClock, Write,
    check_transaction,
};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::sync::Arc;

use super::Database;

pub struct SqliteMetaStore {
    db: Database,
    clock: Arc<dyn Clock>,
}

impl SqliteMetaStore {
    pub fn new(db: Database) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    pub fn with_clock(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Version of the live item at `key`, if any.
fn live_version(tx: &Connection, key: &Key, now: i64) -> Result<Option<u64>, rusqlite::Error> {
    tx.query_row(
        "SELECT version FROM items WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        params![key.pk, key.sk, now],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(|v| v as u64))
}

fn write_item(tx: &Connection, item: &Item) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT OR REPLACE INTO items (pk, sk, data, version, ipk, isk, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            item.key.pk,
            item.key.sk,
            item.data.to_string(),
            item.version as i64,
            item.index.as_ref().map(|k| k.pk.as_str()),
            item.index.as_ref().map(|k| k.sk.as_str()),
            item.expires_at,
        ],
    )?;
    Ok(())
}

/// Outcome of a conditional write inside the blocking closure.
enum Written {
    Done,
    ConditionFailed(Key),
}

const COLUMNS: &str = "pk, sk, data, version, ipk, isk, expires_at";

/// An `items` row as read, before its JSON is parsed.
type RawItem = (
    Key,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn read_item(row: &rusqlite::Row<'_>) -> Result<RawItem, rusqlite::Error> {
    Ok((
        Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn to_item(raw: RawItem) -> Result<Item, StoreError> {
    let (key, data, version, ipk, isk, expires_at) = raw;
    let data = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
        key: key.clone(),
        reason: e.to_string(),
    })?;
    Ok(Item {
        key,
        data,
        version: version as u64,
        index: ipk.zip(isk).map(|(pk, sk)| Key::new(pk, sk)),
        expires_at,
    })
}

/// Every key that starts with `prefix` sorts below this bound (byte order of UTF-8).
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        let now = self.clock.now_ms();
        let raw = self
            .db
            .read(move |c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)"),
                    params![key.pk, key.sk, now],
                    read_item,
                )
                .optional()
            })
            .await
            .map_err(unavailable)?;
        raw.map(to_item).transpose()
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![Write::Put { item, condition }]).await
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.transact(vec![Write::Delete {
            key: key.clone(),
            condition,
        }])
        .await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let (key_pk, key_sk) = if query.on_index {
            ("ipk", "isk")
        } else {
            ("pk", "sk")
        };
        let order = if query.descending { "DESC" } else { "ASC" };
        // Placeholders are appended to `sql` and their values to `args` in the same order.
        let mut sql = format!(
            "SELECT {COLUMNS} FROM items WHERE {key_pk} = ? AND (expires_at IS NULL OR expires_at > ?)"
        );
        let mut args = vec![
            Sql::Text(query.pk.clone()),
            Sql::Integer(self.clock.now_ms()),
        ];
        match &query.sort {
            SortKey::All => {}
            SortKey::Prefix(p) => {
                sql.push_str(&format!(" AND {key_sk} >= ? AND {key_sk} < ?"));
                args.extend([Sql::Text(p.clone()), Sql::Text(prefix_end(p))]);
            }
            SortKey::Between(a, b) => {
                sql.push_str(&format!(" AND {key_sk} >= ? AND {key_sk} <= ?"));
                args.extend([Sql::Text(a.clone()), Sql::Text(b.clone())]);
            }
        }
        // Results are ordered by (sort key, pk, sk): unique, so a cursor resumes exactly.
        if let Some(cursor) = &query.cursor {
            let (sort, pk, sk): (String, String, String) = serde_json::from_str(cursor)
                .map_err(|e| StoreError::Invalid(format!("bad cursor: {e}")))?;
            let cmp = if query.descending { "<" } else { ">" };
            sql.push_str(&format!(" AND ({key_sk}, pk, sk) {cmp} (?, ?, ?)"));
            args.extend([Sql::Text(sort), Sql::Text(pk), Sql::Text(sk)]);
        }
        sql.push_str(&format!(
            " ORDER BY {key_sk} {order}, pk {order}, sk {order}"
        ));
        // One row more than asked tells whether there is a next page.
        let limit = query.limit.unwrap_or(usize::MAX / 2);
        sql.push_str(&format!(
            " LIMIT {}",
            limit.saturating_add(1).min(i64::MAX as usize)
        ));
        let on_index = query.on_index;
        let rows = self
            .db
            .read(move |c| {
                c.prepare(&sql)?
                    .query_map(params_from_iter(args), read_item)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(unavailable)?;
        let mut items = rows
            .into_iter()
            .map(to_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| {
                let sort = if on_index {
                    i.index.as_ref().map(|k| k.sk.clone()).unwrap_or_default()
                } else {
                    i.key.sk.clone()
                };
                serde_json::to_string(&(sort, &i.key.pk, &i.key.sk)).unwrap_or_default()
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        let now = self.clock.now_ms();
        let multiple = writes.len() > 1;
        let outcome = self
            .db
            .run(move |c| {
                let tx = c.savepoint()?;
                for write in &writes {
                    let (key, condition) = write.target();
                    if !condition.holds(live_version(&tx, key, now)?) {
                        return Ok(Written::ConditionFailed(key.clone()));
                    }
                }
                for write in &writes {
                    match write {
                        Write::Put { item, .. } => write_item(&tx, item)?,
                        Write::Delete { key, .. } => {
                            tx.execute(
                                "DELETE FROM items WHERE pk = ?1 AND sk = ?2",
                                params![key.pk, key.sk],
                            )?;
                        }
                        Write::Check { .. } => {}
                    }
                }
                tx.commit()?;
                Ok(Written::Done)
            })
            .await
            .map_err(unavailable)?;
        match outcome {
            Written::Done => Ok(()),
            Written::ConditionFailed(key) if multiple => Err(StoreError::TransactionCancelled(
                StoreError::ConditionFailed(key).to_string(),
            )),
            Written::ConditionFailed(key) => Err(StoreError::ConditionFailed(key)),
        }
    }
}
