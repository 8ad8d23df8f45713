//! What a rollout costs on one machine's store (SQLite, `synchronous = FULL`): starting one to
//! N registered devices, advancing it, and each device's jobs API exchange (start-next, then
//! a SUCCEEDED update), with the store's writes counted. Prints figures; see
//! docs/benchmarks.md.
//!
//!   cargo bench -p iot-local --bench ota -- [devices]     (default 10000)

use async_trait::async_trait;
use iot_core::model::{Device, Product};
use iot_core::ota::{FirmwarePackage, PackageStatus, Rollout, firmware_key};
use iot_core::ports::memory::{MemoryBlobs, MemoryGateway};
use iot_core::ports::{
    BlobDigest, BlobStore, Clock, Condition, DeviceGateway, Item, Key, MetaStore, Page, Query,
    StoreError, SystemClock, Write,
};
use iot_core::repo::Catalog;
use iot_core::topics::jobs_request;
use iot_core::usecase::{DeviceJobs, DownloadLinks, OtaError, OtaService};
use iot_embedded::sqlite::{Database, SqliteMetaStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The store, with its item writes counted.
struct Counted {
    inner: SqliteMetaStore,
    writes: AtomicU64,
}

#[async_trait]
impl MetaStore for Counted {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writes
            .fetch_add(writes.len() as u64, Ordering::Relaxed);
        self.inner.transact(writes).await
    }
}

struct Links;

impl DownloadLinks for Links {
    fn url(&self, _: &str, package: &str, device: &str) -> Result<String, OtaError> {
        Ok(format!("http://127.0.0.1/{package}/{device}"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let devices: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Counted {
        inner: SqliteMetaStore::new(Database::open(&dir.path().join("iot.db"))?),
        writes: AtomicU64::new(0),
    });
    let catalog = Catalog::new(store.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = Arc::new(MemoryGateway::default());
    let blobs = Arc::new(MemoryBlobs::default());
    catalog
        .put_product(&Product {
            id: "pump".into(),
            tenant_id: "acme".into(),
            name: "Pump".into(),
            script: None,
            signals: vec![],
        })
        .await?;
    for i in 0..devices {
        let device = Device {
            uid: format!("d{i:05}"),
            identification_code: format!("SN{i:05}"),
            tenant_id: "acme".into(),
            product_id: "pump".into(),
            department_id: "hq".into(),
            name: String::new(),
            data_since: 0,
            gateway_uid: None,
        };
        catalog.put_device(&device).await?;
        gateway.register(&device).await?;
    }
    let image = vec![7u8; 1 << 20];
    blobs
        .put(
            &firmware_key("acme", "fw-2"),
            image.clone(),
            "application/octet-stream",
        )
        .await?;
    let digest = BlobDigest::of(&image);
    catalog
        .create_package(&FirmwarePackage {
            id: "fw-2".into(),
            tenant_id: "acme".into(),
            product_id: "pump".into(),
            version: "2.0.0".into(),
            notes: String::new(),
            size: digest.size,
            sha256: digest.sha256,
            signature: None,
            status: PackageStatus::AwaitingUpload,
            rejection: None,
            created_at: 0,
            created_by: "bench".into(),
        })
        .await?;
    let ota = Arc::new(OtaService::new(
        catalog.clone(),
        blobs,
        gateway,
        clock.clone(),
    ));
    let started = Instant::now();
    ota.check_package("acme", "fw-2").await?;
    let check = started.elapsed();

    let rollout: Rollout = serde_json::from_value(serde_json::json!({
        "id": "bench", "tenant_id": "acme", "package_id": "fw-2", "version": "",
        "target": { "type": "product" }, "rate": { "max_per_minute": 1000 },
        "status": "scheduled", "created_at": 0, "created_by": "bench" }))?;
    let before = store.writes.load(Ordering::Relaxed);
    let started = Instant::now();
    ota.start_rollout(rollout, &|_| true).await?;
    let start = started.elapsed();
    let start_writes = store.writes.load(Ordering::Relaxed) - before;

    let started = Instant::now();
    let advanced = ota.advance(clock.now_ms()).await?;
    let advance = started.elapsed();
    let released = advanced.notify.len();

    let jobs = DeviceJobs::new(ota.clone(), catalog.clone(), clock.clone(), Arc::new(Links));
    let before = store.writes.load(Ordering::Relaxed);
    let started = Instant::now();
    for uid in &advanced.notify {
        let topic = format!("$aws/things/{uid}/jobs/start-next");
        let (device, request) = jobs_request(&topic).ok_or("topic")?;
        let answers = jobs.answer(&topic, device, request, b"{}").await?;
        let job = answers[0].payload["execution"]["jobId"]
            .as_str()
            .ok_or("no execution")?
            .to_owned();
        let topic = format!("$aws/things/{uid}/jobs/{job}/update");
        let (device, request) = jobs_request(&topic).ok_or("topic")?;
        jobs.answer(&topic, device, request, br#"{"status":"SUCCEEDED"}"#)
            .await?;
    }
    let exchanges = started.elapsed();
    let exchange_writes = store.writes.load(Ordering::Relaxed) - before;
    let per = |d: std::time::Duration, n: usize| d.as_secs_f64() * 1e3 / n.max(1) as f64;

    println!(
        "rollout of a 1 MiB image to {devices} registered devices (SQLite, synchronous = FULL)"
    );
    println!(
        "  package check (SHA-256 of the image):  {:>8.1} ms",
        check.as_secs_f64() * 1e3
    );
    println!(
        "  start:            {:>8.1} ms  ({:.3} ms and {:.2} store writes per device)",
        start.as_secs_f64() * 1e3,
        per(start, devices),
        start_writes as f64 / devices as f64
    );
    println!(
        "  first advance:    {:>8.1} ms  (released {released} at 1000 a minute)",
        advance.as_secs_f64() * 1e3
    );
    println!(
        "  device exchanges: {:>8.1} ms  ({:.3} ms and {:.2} store writes per device: start-next, then SUCCEEDED)",
        exchanges.as_secs_f64() * 1e3,
        per(exchanges, released),
        exchange_writes as f64 / released.max(1) as f64
    );
    Ok(())
}
