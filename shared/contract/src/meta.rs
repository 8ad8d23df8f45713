//! [`MetaStore`]: conditional writes, paging, index queries, transactions, expiry, and the
//! catalog on top.

use iot_core::model::Device;
use iot_core::ports::{
    Clock, Condition, Item, Key, ManualClock, MetaStore, Query, SortKey, StoreError, Write,
};
use iot_core::repo::Catalog;
use serde_json::json;
use std::sync::Arc;

use crate::{Outcome, ensure, same};

fn item(pk: &str, sk: &str) -> Item {
    Item::new(
        Key::new(pk, sk),
        json!({ "sk": sk, "nested": {"list": [1, 2.5, "x", null]} }),
    )
}

pub async fn conditional_writes_follow_the_version(store: &dyn MetaStore) -> Outcome {
    store.put(item("a", "1"), Condition::NotExists).await?;
    ensure(
        matches!(
            store.put(item("a", "1"), Condition::NotExists).await,
            Err(StoreError::ConditionFailed(_))
        ),
        "a second put with NotExists must fail its condition",
    )?;
    let mut next = item("a", "1");
    next.version = 2;
    store.put(next.clone(), Condition::Version(1)).await?;
    ensure(
        matches!(
            store.put(next, Condition::Version(1)).await,
            Err(StoreError::ConditionFailed(_))
        ),
        "a stale version loses",
    )?;
    let stored = store.get(&Key::new("a", "1")).await?;
    same(stored.as_ref().map(|i| i.version), Some(2), "version")?;
    same(
        stored.map(|i| i.data),
        Some(item("a", "1").data),
        "data survives the round trip",
    )?;
    ensure(
        store
            .delete(&Key::new("a", "1"), Condition::Version(1))
            .await
            .is_err(),
        "a delete with a stale version fails",
    )?;
    store
        .delete(&Key::new("a", "1"), Condition::Version(2))
        .await?;
    same(store.get(&Key::new("a", "1")).await?, None, "deleted")?;
    ensure(
        store.put(item("b", "1"), Condition::Exists).await.is_err(),
        "Exists fails on a missing item",
    )
}

async fn all_sort_keys(store: &dyn MetaStore, mut query: Query) -> Result<Vec<String>, StoreError> {
    let mut seen = Vec::new();
    loop {
        let page = store.query(&query).await?;
        seen.extend(page.items.into_iter().map(|i| i.key.sk));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(seen),
        }
    }
}

pub async fn queries_page_in_both_directions(store: &dyn MetaStore) -> Outcome {
    for sk in ["R#3", "R#1", "X#1", "R#2", "Q#9"] {
        store.put(item("p", sk), Condition::Always).await?;
    }
    store.put(item("other", "R#0"), Condition::Always).await?;
    for (descending, expected) in [
        (false, ["R#1", "R#2", "R#3"]),
        (true, ["R#3", "R#2", "R#1"]),
    ] {
        let mut query = Query::prefix("p", "R#");
        query.limit = Some(2);
        query.descending = descending;
        same(
            all_sort_keys(store, query).await?,
            expected.map(String::from).to_vec(),
            "prefix pages",
        )?;
    }
    let mut between = Query::partition("p");
    between.sort = SortKey::Between("Q".into(), "R#2".into());
    same(
        all_sort_keys(store, between).await?,
        vec!["Q#9".to_owned(), "R#1".into(), "R#2".into()],
        "between is inclusive",
    )?;
    let mut first = Query::partition("p");
    first.limit = Some(1);
    let page = store.query(&first).await?;
    same(page.items.len(), 1, "limit")?;
    ensure(page.next.is_some(), "a cut page has a cursor")?;
    ensure(
        store
            .query(&Query {
                cursor: Some("not a cursor".into()),
                ..Query::partition("p")
            })
            .await
            .is_err(),
        "a bad cursor is refused",
    )
}

pub async fn the_index_lists_items_by_their_index_key(store: &dyn MetaStore) -> Outcome {
    for (sk, index_sk) in [("1", "b"), ("2", "a"), ("3", "c")] {
        let mut it = item("TENANT#t", sk);
        it.index = Some(Key::new("BYNAME", index_sk));
        store.put(it, Condition::Always).await?;
    }
    store.put(item("TENANT#t", "4"), Condition::Always).await?;
    let listed = store.query(&Query::index("BYNAME")).await?;
    let sks: Vec<String> = listed.items.iter().map(|i| i.key.sk.clone()).collect();
    same(
        sks,
        vec!["2".to_owned(), "1".into(), "3".into()],
        "index order",
    )?;
    same(
        listed.items[0].index.clone(),
        Some(Key::new("BYNAME", "a")),
        "index key kept",
    )
}

pub async fn transactions_are_all_or_nothing(store: &dyn MetaStore) -> Outcome {
    store.put(item("a", "1"), Condition::Always).await?;
    let result = store
        .transact(vec![
            Write::Put {
                item: item("b", "1"),
                condition: Condition::NotExists,
            },
            Write::Put {
                item: item("a", "1"),
                condition: Condition::NotExists,
            },
        ])
        .await;
    ensure(
        matches!(result, Err(StoreError::TransactionCancelled(_))),
        format!("a failed condition cancels the transaction: {result:?}"),
    )?;
    same(
        store.get(&Key::new("b", "1")).await?,
        None,
        "nothing written",
    )?;
    store.put(item("c", "1"), Condition::Always).await?;
    store
        .transact(vec![
            Write::Check {
                key: Key::new("c", "1"),
                condition: Condition::Exists,
            },
            Write::Delete {
                key: Key::new("a", "1"),
                condition: Condition::Exists,
            },
            Write::Put {
                item: item("b", "1"),
                condition: Condition::NotExists,
            },
        ])
        .await?;
    ensure(
        store.get(&Key::new("a", "1")).await?.is_none(),
        "deleted in the transaction",
    )?;
    ensure(
        store.get(&Key::new("b", "1")).await?.is_some(),
        "put in the transaction",
    )?;
    let twice = store
        .transact(vec![
            Write::Check {
                key: Key::new("c", "1"),
                condition: Condition::Exists,
            },
            Write::Delete {
                key: Key::new("c", "1"),
                condition: Condition::Always,
            },
        ])
        .await;
    ensure(
        matches!(twice, Err(StoreError::Invalid(_))),
        format!("one key twice is refused: {twice:?}"),
    )
}

/// `store` must read time from `clock`.
pub async fn expired_items_are_absent(store: &dyn MetaStore, clock: &ManualClock) -> Outcome {
    let start = clock.now_ms();
    let mut it = item("a", "1");
    it.expires_at = Some(start + 1_000);
    store.put(it, Condition::NotExists).await?;
    ensure(
        store.get(&Key::new("a", "1")).await?.is_some(),
        "live before expiry",
    )?;
    ensure(
        store
            .put(item("a", "1"), Condition::NotExists)
            .await
            .is_err(),
        "a live item exists",
    )?;
    clock.set(start + 1_000);
    ensure(
        store.get(&Key::new("a", "1")).await?.is_none(),
        "absent once expired",
    )?;
    ensure(
        store.query(&Query::partition("a")).await?.items.is_empty(),
        "queries skip expired items",
    )?;
    ensure(
        store.put(item("a", "1"), Condition::Exists).await.is_err(),
        "an expired item does not exist",
    )?;
    store.put(item("a", "1"), Condition::NotExists).await?;
    Ok(())
}

pub async fn the_catalog_runs_on_it(store: Arc<dyn MetaStore>) -> Outcome {
    let catalog = Catalog::new(store);
    let device = |uid: &str, code: &str, product: &str| Device {
        uid: uid.into(),
        identification_code: code.into(),
        tenant_id: "acme".into(),
        product_id: product.into(),
        department_id: "d".into(),
        name: String::new(),
        data_since: 0,
        gateway_uid: None,
    };
    catalog.put_device(&device("m1", "SN-1", "meter")).await?;
    catalog.put_device(&device("s1", "SN-2", "sensor")).await?;
    catalog.put_device(&device("m2", "SN-3", "meter")).await?;
    ensure(
        catalog
            .put_device(&device("x", "SN-1", "meter"))
            .await
            .is_err(),
        "identification codes are unique per tenant",
    )?;
    let meters: Vec<String> = catalog
        .devices("acme", Some("meter"))
        .await?
        .into_iter()
        .map(|d| d.uid)
        .collect();
    same(
        meters,
        vec!["m1".to_owned(), "m2".into()],
        "devices of a product",
    )?;
    same(
        catalog.device_by_code("acme", "SN-2").await?.map(|d| d.uid),
        Some("s1".into()),
        "device by code",
    )?;
    let mut state = catalog.alarm_state("m1").await?;
    catalog.save_alarm_state(&mut state).await?;
    let mut stale = state.clone();
    stale.version = 0;
    ensure(
        catalog.save_alarm_state(&mut stale).await.is_err(),
        "a stale alarm state loses",
    )
}
