//! The catalog's key design on the in-memory store: device codes, listings, versioned state.

use std::sync::Arc;

use async_trait::async_trait;
use iot_core::alarm::{
    AlarmEvaluator, AlarmRule, AlarmTransition, Band, Condition as RuleCondition, Debounce,
    Direction, Level,
};
use iot_core::model::{Datum, Device, Record};
use iot_core::ports::memory::{MemoryEventBus, MemoryMetaStore};
use iot_core::ports::{
    Condition, Item, Key, MetaStore, Page, Query, StoreError, SystemClock, Write,
};
use iot_core::repo::Catalog;
use iot_core::stats::{StatResult, Window};
use iot_core::usecase::{AlarmRequest, AlarmService};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn device(uid: &str, code: &str, product: &str) -> Device {
    Device {
        uid: uid.into(),
        identification_code: code.into(),
        tenant_id: "acme".into(),
        product_id: product.into(),
        department_id: "d".into(),
        name: String::new(),
        data_since: 0,
        gateway_uid: None,
    }
}

#[tokio::test]
async fn identification_codes_are_unique_per_tenant_and_follow_edits() -> TestResult {
    let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
    catalog.put_device(&device("a", "SN-1", "p")).await?;
    let clash = catalog.put_device(&device("b", "SN-1", "p")).await;
    assert!(
        matches!(clash, Err(StoreError::TransactionCancelled(_))),
        "{clash:?}"
    );
    assert_eq!(
        catalog.device("b").await?,
        None,
        "the refused device was not half-written"
    );

    // Re-saving with the same code is fine; changing it moves the pointer.
    catalog.put_device(&device("a", "SN-1", "p")).await?;
    catalog.put_device(&device("a", "SN-2", "p")).await?;
    assert_eq!(catalog.device_by_code("acme", "SN-1").await?, None);
    assert_eq!(
        catalog.device_by_code("acme", "SN-2").await?.map(|d| d.uid),
        Some("a".into())
    );
    assert_eq!(catalog.device_by_code("other", "SN-2").await?, None);
    catalog.put_device(&device("b", "SN-1", "p")).await?;
    Ok(())
}

#[tokio::test]
async fn devices_are_listed_per_tenant_and_product() -> TestResult {
    let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
    for (uid, product) in [("m1", "meter"), ("s1", "sensor"), ("m2", "meter")] {
        catalog.put_device(&device(uid, uid, product)).await?;
    }
    let meters: Vec<String> = catalog
        .devices("acme", Some("meter"))
        .await?
        .into_iter()
        .map(|d| d.uid)
        .collect();
    assert_eq!(meters, ["m1", "m2"]);
    assert_eq!(catalog.devices("acme", None).await?.len(), 3);
    assert!(catalog.devices("nobody", None).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn statistics_results_are_queried_by_window_end() -> TestResult {
    let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
    for end in [1_000, 2_000, 3_000] {
        catalog
            .put_stat_result(&StatResult {
                job_id: "j".into(),
                tenant_id: "acme".into(),
                device_uid: "m1".into(),
                window: Window {
                    start: end - 1_000,
                    end,
                },
                values: Default::default(),
                computed_at: end,
            })
            .await?;
    }
    let ends: Vec<i64> = catalog
        .stat_results("acme", "j", "m1", 1_500, 3_000)
        .await?
        .iter()
        .map(|r| r.window.end)
        .collect();
    assert_eq!(ends, [2_000, 3_000]);
    Ok(())
}

#[tokio::test]
async fn alarm_state_writes_lose_to_a_newer_version() -> TestResult {
    let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
    let mut first = catalog.alarm_state("d1").await?;
    let mut second = catalog.alarm_state("d1").await?;
    catalog.save_alarm_state(&mut first).await?;
    assert!(matches!(
        catalog.save_alarm_state(&mut second).await,
        Err(StoreError::ConditionFailed(_))
    ));
    let mut reread = catalog.alarm_state("d1").await?;
    assert_eq!(reread.version, 1);
    catalog.save_alarm_state(&mut reread).await?;
    assert_eq!(catalog.alarm_state("d1").await?.version, 2);
    Ok(())
}

/// A store where another writer updates the alarm state right after each of our first reads,
/// as a concurrent Lambda evaluating the same device would.
struct Interfering {
    inner: MemoryMetaStore,
    interfere: std::sync::Mutex<u32>,
}

#[async_trait]
impl MetaStore for Interfering {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let item = self.inner.get(key).await?;
        let interfere = {
            let mut left = self.interfere.lock().unwrap_or_else(|p| p.into_inner());
            let now = key.sk == "ALARMSTATE" && *left > 0;
            if now {
                *left -= 1;
            }
            now
        };
        if interfere {
            let mut theirs = item
                .clone()
                .unwrap_or_else(|| Item::new(key.clone(), serde_json::json!({"device_uid": "d1"})));
            let condition = match &item {
                Some(i) => Condition::Version(i.version),
                None => Condition::NotExists,
            };
            theirs.version = item.as_ref().map_or(1, |i| i.version + 1);
            self.inner.put(theirs, condition).await?;
        }
        Ok(item)
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.transact(writes).await
    }
}

fn hot_rule() -> AlarmRule {
    AlarmRule {
        id: "hot".into(),
        tenant_id: "acme".into(),
        product_id: "p".into(),
        name: "hot".into(),
        enabled: true,
        condition: RuleCondition::Threshold {
            signal: "t".into(),
            direction: Direction::Above,
            bands: vec![Band {
                level: Level::Warning,
                threshold: 30.0,
            }],
            deadband: 0.0,
        },
        debounce: Debounce::default(),
    }
}

fn request(t: f64) -> AlarmRequest {
    AlarmRequest {
        tenant_id: "acme".into(),
        product_id: "p".into(),
        device_uid: "d1".into(),
        records: vec![Record {
            time: 1_000,
            device_uid: "d1".into(),
            identification_code: String::new(),
            data: vec![Datum::new("t", t)],
            nc: String::new(),
        }],
    }
}

#[tokio::test]
async fn a_concurrent_writer_makes_evaluation_retry_and_publish_once() -> TestResult {
    let store = Arc::new(Interfering {
        inner: MemoryMetaStore::default(),
        interfere: std::sync::Mutex::new(2),
    });
    let catalog = Catalog::new(store.clone());
    catalog.put_rule(&hot_rule()).await?;
    let bus = Arc::new(MemoryEventBus::default());
    let service = AlarmService::new(
        catalog.clone(),
        bus.clone(),
        Arc::new(SystemClock),
        AlarmEvaluator::default(),
    );

    let outcome = service.evaluate(&request(35.0)).await?;
    assert_eq!(outcome.transitions.len(), 1);
    let published: Vec<AlarmTransition> = bus
        .drain()
        .iter()
        .map(|e| serde_json::from_str(&e.body))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        published.len(),
        1,
        "lost races are retried without publishing their transitions"
    );
    let state = catalog.alarm_state("d1").await?;
    assert!(state.active("hot").is_some());
    assert!(state.outbox.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_unpublished_outbox_is_published_by_the_next_update() -> TestResult {
    let store = Arc::new(MemoryMetaStore::default());
    let catalog = Catalog::new(store.clone());
    catalog.put_rule(&hot_rule()).await?;
    // A previous run saved a transition but died before publishing it.
    let mut state = catalog.alarm_state("d1").await?;
    let mut stranded = serde_json::from_value::<AlarmTransition>(serde_json::json!({
        "alarm_id": "d1:hot:500", "kind": "raised", "tenant_id": "acme", "device_uid": "d1",
        "rule_id": "hot", "rule_name": "hot", "level": "warning", "previous_level": null, "time": 500
    }))?;
    stranded.signal = Some("t".into());
    state.outbox.push(stranded.clone());
    catalog.save_alarm_state(&mut state).await?;

    let bus = Arc::new(MemoryEventBus::default());
    let service = AlarmService::new(
        catalog.clone(),
        bus.clone(),
        Arc::new(SystemClock),
        AlarmEvaluator::default(),
    );
    service.evaluate(&request(10.0)).await?;
    let published: Vec<AlarmTransition> = bus
        .drain()
        .iter()
        .map(|e| serde_json::from_str(&e.body))
        .collect::<Result<_, _>>()?;
    assert_eq!(published, [stranded]);
    assert!(catalog.alarm_state("d1").await?.outbox.is_empty());
    Ok(())
}
