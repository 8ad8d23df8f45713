//! The SQLite adapters behave as the ports require (the same checks the in-memory ones pass).

use std::sync::Arc;

use iot_core::model::{Datum, Device, Record, Value};
use iot_core::ports::{
    AggregateQuery, Condition, Item, Key, ManualClock, MetaStore, Query, RangeQuery, StoreError,
    TelemetryStore, Write,
};
use iot_core::repo::Catalog;
use iot_core::stats::Window;
use iot_embedded::sqlite::{Database, SqliteMetaStore, SqliteTelemetry};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn item(pk: &str, sk: &str) -> Item {
    Item::new(Key::new(pk, sk), json!({ "sk": sk }))
}

fn meta() -> Result<(SqliteMetaStore, Arc<ManualClock>), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(1_000));
    Ok((
        SqliteMetaStore::with_clock(Database::in_memory()?, clock.clone()),
        clock,
    ))
}

#[tokio::test]
async fn conditional_writes_follow_the_version() -> TestResult {
    let (store, _) = meta()?;
    store.put(item("a", "1"), Condition::NotExists).await?;
    assert!(matches!(
        store.put(item("a", "1"), Condition::NotExists).await,
        Err(StoreError::ConditionFailed(_))
    ));
    let mut next = item("a", "1");
    next.version = 2;
    store.put(next.clone(), Condition::Version(1)).await?;
    assert!(
        store.put(next, Condition::Version(1)).await.is_err(),
        "a stale version loses"
    );
    assert_eq!(
        store.get(&Key::new("a", "1")).await?.map(|i| i.version),
        Some(2)
    );
    store
        .delete(&Key::new("a", "1"), Condition::Version(2))
        .await?;
    assert_eq!(store.get(&Key::new("a", "1")).await?, None);
    Ok(())
}

#[tokio::test]
async fn prefix_queries_page_in_both_directions() -> TestResult {
    let (store, _) = meta()?;
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
        let mut seen = Vec::new();
        loop {
            let page = store.query(&query).await?;
            seen.extend(page.items.into_iter().map(|i| i.key.sk));
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected);
    }
    let mut between = Query::partition("p");
    between.sort = iot_core::ports::SortKey::Between("Q".into(), "R#2".into());
    let sks: Vec<String> = store
        .query(&between)
        .await?
        .items
        .into_iter()
        .map(|i| i.key.sk)
        .collect();
    assert_eq!(sks, ["Q#9", "R#1", "R#2"]);
    Ok(())
}

#[tokio::test]
async fn transactions_are_all_or_nothing() -> TestResult {
    let (store, _) = meta()?;
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
    assert!(
        matches!(result, Err(StoreError::TransactionCancelled(_))),
        "{result:?}"
    );
    assert_eq!(store.get(&Key::new("b", "1")).await?, None);
    // A key appears once per transaction (as on DynamoDB), so the check is on another item.
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
    assert!(store.get(&Key::new("a", "1")).await?.is_none());
    assert!(store.get(&Key::new("b", "1")).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn expired_items_are_absent() -> TestResult {
    let (store, clock) = meta()?;
    let mut it = item("a", "1");
    it.expires_at = Some(2_000);
    store.put(it, Condition::NotExists).await?;
    assert!(store.get(&Key::new("a", "1")).await?.is_some());
    clock.set(2_000);
    assert!(store.get(&Key::new("a", "1")).await?.is_none());
    assert!(store.query(&Query::partition("a")).await?.items.is_empty());
    store.put(item("a", "1"), Condition::NotExists).await?;
    Ok(())
}

#[tokio::test]
async fn the_catalog_runs_on_sqlite() -> TestResult {
    let catalog = Catalog::new(Arc::new(SqliteMetaStore::new(Database::in_memory()?)));
    let device = |uid: &str, code: &str, product: &str| Device {
        uid: uid.into(),
        identification_code: code.into(),
        tenant_id: "acme".into(),
        product_id: product.into(),
        department_id: "d".into(),
        name: String::new(),
    };
    catalog.put_device(&device("m1", "SN-1", "meter")).await?;
    catalog.put_device(&device("s1", "SN-2", "sensor")).await?;
    catalog.put_device(&device("m2", "SN-3", "meter")).await?;
    assert!(
        catalog
            .put_device(&device("x", "SN-1", "meter"))
            .await
            .is_err(),
        "codes are unique"
    );
    let meters: Vec<String> = catalog
        .devices("acme", Some("meter"))
        .await?
        .into_iter()
        .map(|d| d.uid)
        .collect();
    assert_eq!(meters, ["m1", "m2"]);
    assert_eq!(
        catalog.device_by_code("acme", "SN-2").await?.map(|d| d.uid),
        Some("s1".into())
    );
    let mut state = catalog.alarm_state("m1").await?;
    catalog.save_alarm_state(&mut state).await?;
    let mut stale = state.clone();
    stale.version = 0;
    assert!(catalog.save_alarm_state(&mut stale).await.is_err());
    Ok(())
}

fn record(device: &str, time: i64, data: Vec<Datum>) -> Record {
    Record {
        time,
        device_uid: device.into(),
        identification_code: String::new(),
        data,
        nc: String::new(),
    }
}

#[tokio::test]
async fn telemetry_range_latest_and_aggregates() -> TestResult {
    let store = SqliteTelemetry::new(Database::in_memory()?);
    let records: Vec<Record> = (0..6)
        .map(|i| {
            record(
                "d1",
                i * 1_000,
                vec![
                    Datum::new("t", i as f64),
                    Datum::new("door", i % 2 == 0),
                    Datum::new("mode", "eco"),
                ],
            )
        })
        .chain([
            record("d2", 0, vec![Datum::new("t", 99.0)]),
            record("", 0, vec![Datum::new("t", 1.0)]),
        ])
        .collect();
    let report = store.write(&records).await?;
    assert_eq!(report.written, 7);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 7);

    let range = |signals: Vec<String>, start, end, limit, descending| RangeQuery {
        device_uid: "d1".into(),
        signals,
        window: Window { start, end },
        limit,
        descending,
    };
    let t: Vec<(i64, Value)> = store
        .range(&range(vec!["t".into()], 1_000, 3_000, None, false))
        .await?
        .into_iter()
        .map(|p| (p.time, p.value))
        .collect();
    assert_eq!(
        t,
        [
            (1_000, Value::Number(1.0)),
            (2_000, Value::Number(2.0)),
            (3_000, Value::Number(3.0))
        ]
    );
    let newest = store
        .range(&range(vec![], 0, 10_000, Some(3), true))
        .await?;
    assert_eq!(newest.len(), 3);
    assert!(
        newest.iter().all(|p| p.time == 5_000),
        "every signal of the newest record"
    );
    assert!(
        store
            .range(&range(vec![], 5, 1, None, false))
            .await
            .is_err()
    );

    let latest = store.latest("d1", &[]).await?;
    let latest: Vec<(String, i64, Value)> = latest
        .into_iter()
        .map(|p| (p.signal, p.time, p.value))
        .collect();
    assert_eq!(
        latest,
        [
            ("door".into(), 5_000, Value::Bool(false)),
            ("mode".into(), 5_000, Value::from("eco")),
            ("t".into(), 5_000, Value::Number(5.0))
        ]
    );

    let buckets = store
        .aggregate(&AggregateQuery {
            device_uid: "d1".into(),
            signal: "t".into(),
            window: Window {
                start: 0,
                end: 5_000,
            },
            bucket_ms: 2_000,
        })
        .await?;
    let summary: Vec<(i64, u64, f64, f64)> = buckets
        .iter()
        .map(|b| (b.start, b.count, b.avg, b.last))
        .collect();
    assert_eq!(
        summary,
        [(0, 2, 0.5, 1.0), (2_000, 2, 2.5, 3.0), (4_000, 2, 4.5, 5.0)]
    );
    Ok(())
}

#[tokio::test]
async fn rewriting_a_point_replaces_it_and_data_survives_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("iot.db");
    {
        let store = SqliteTelemetry::new(Database::open(&path)?);
        store
            .write(&[record("d1", 1_000, vec![Datum::new("t", 1.0)])])
            .await?;
        store
            .write(&[record("d1", 1_000, vec![Datum::new("t", 2.0)])])
            .await?;
    }
    let reopened = SqliteTelemetry::new(Database::open(&path)?);
    let points = reopened.latest("d1", &["t".into()]).await?;
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, Value::Number(2.0));
    Ok(())
}
