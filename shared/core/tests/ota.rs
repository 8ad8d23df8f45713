//! Firmware rollouts on memory ports with a test clock, as the platform runs them where it is
//! the jobs service (one machine): devices driven through the jobs MQTT API's messages, the
//! engine advanced minute by minute.

use iot_core::model::{Device, Product};
use iot_core::ota::{
    ExecutionStatus, FirmwarePackage, PackageStatus, Rollout, RolloutStatus, firmware_key, job_id,
};
use iot_core::ports::memory::{MemoryBlobs, MemoryGateway, MemoryMetaStore};
use iot_core::ports::{BlobStore, Clock, DeviceGateway, ManualClock};
use iot_core::repo::Catalog;
use iot_core::time::MINUTE;
use iot_core::topics::jobs_request;
use iot_core::usecase::{Advanced, DeviceJobs, DownloadLinks, OtaError, OtaService};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NOW: i64 = 1_795_435_200_000;

struct Links;

impl DownloadLinks for Links {
    fn url(&self, tenant: &str, package: &str, device: &str) -> Result<String, OtaError> {
        Ok(format!("http://127.0.0.1/dl/{tenant}/{package}/{device}"))
    }
}

struct Fleet {
    clock: Arc<ManualClock>,
    catalog: Catalog,
    ota: Arc<OtaService>,
    jobs: DeviceJobs,
    blobs: Arc<MemoryBlobs>,
}

async fn fleet(devices: usize) -> Result<Fleet, Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(NOW));
    let catalog = Catalog::new(Arc::new(MemoryMetaStore::with_clock(clock.clone())));
    let blobs = Arc::new(MemoryBlobs::default());
    let gateway = Arc::new(MemoryGateway::default());
    let ota = Arc::new(OtaService::new(
        catalog.clone(),
        blobs.clone(),
        gateway.clone(),
        clock.clone(),
    ));
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
            uid: format!("d{i:02}"),
            identification_code: format!("SN{i:02}"),
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
    let jobs = DeviceJobs::new(ota.clone(), catalog.clone(), clock.clone(), Arc::new(Links));
    Ok(Fleet {
        clock,
        catalog,
        ota,
        jobs,
        blobs,
    })
}

impl Fleet {
    async fn package(&self, id: &str, version: &str) -> TestResult {
        let image = format!("image {version}").into_bytes();
        self.blobs
            .put(
                &firmware_key("acme", id),
                image.clone(),
                "application/octet-stream",
            )
            .await?;
        self.catalog
            .create_package(&FirmwarePackage {
                id: id.into(),
                tenant_id: "acme".into(),
                product_id: "pump".into(),
                version: version.into(),
                notes: String::new(),
                size: image.len() as u64,
                sha256: hex::encode(Sha256::digest(&image)),
                signature: None,
                status: PackageStatus::AwaitingUpload,
                rejection: None,
                created_at: NOW,
                created_by: "admin".into(),
            })
            .await?;
        assert_eq!(
            self.ota.check_package("acme", id).await?.status,
            PackageStatus::Ready
        );
        Ok(())
    }

    async fn start(
        &self,
        id: &str,
        package: &str,
        rollout: Value,
    ) -> Result<Rollout, Box<dyn std::error::Error>> {
        let mut body = json!({ "id": id, "tenant_id": "acme", "package_id": package, "version": "",
                               "target": { "type": "product" }, "status": "scheduled",
                               "created_at": 0, "created_by": "admin" });
        for (k, v) in rollout.as_object().ok_or("not an object")? {
            body[k] = v.clone();
        }
        let rollout: Rollout = serde_json::from_value(body)?;
        Ok(self.ota.start_rollout(rollout, &|_| true).await?)
    }

    /// A device's request on the jobs API; the payloads it receives, by topic.
    async fn ask(
        &self,
        uid: &str,
        rest: &str,
        payload: Value,
    ) -> Result<Vec<(String, Value)>, Box<dyn std::error::Error>> {
        let topic = format!("$aws/things/{uid}/jobs/{rest}");
        let (device, request) = jobs_request(&topic).ok_or("not a jobs topic")?;
        let answers = self
            .jobs
            .answer(&topic, device, request, payload.to_string().as_bytes())
            .await?;
        Ok(answers.into_iter().map(|m| (m.topic, m.payload)).collect())
    }

    /// Devices told of a job this minute start it and report: `fails` fail, the rest succeed.
    async fn minute(
        &self,
        fails: &BTreeSet<String>,
        silent: &BTreeSet<String>,
    ) -> Result<Advanced, Box<dyn std::error::Error>> {
        let advanced = self.ota.advance(self.clock.now_ms()).await?;
        for uid in &advanced.notify {
            let Some(next) = self.jobs.notify_next(uid).await? else {
                continue;
            };
            let Some(job) = next.payload["execution"]["jobId"].as_str() else {
                continue;
            };
            let started = self
                .ask(uid, "start-next", json!({ "clientToken": uid }))
                .await?;
            assert_eq!(
                started[0].1["execution"]["status"], "IN_PROGRESS",
                "{started:?}"
            );
            assert_eq!(started[0].1["clientToken"], uid.as_str());
            let document = &started[0].1["execution"]["jobDocument"];
            assert!(
                document["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with(uid.as_str())),
                "{document}"
            );
            if silent.contains(uid) {
                continue;
            }
            let status = if fails.contains(uid) {
                "FAILED"
            } else {
                "SUCCEEDED"
            };
            let version = started[0].1["execution"]["versionNumber"].clone();
            let answer = self
                .ask(uid, &format!("{job}/update"), json!({ "status": status, "expectedVersion": version,
                                                              "statusDetails": { "reason": "test" } }))
                .await?;
            assert!(answer[0].0.ends_with("/update/accepted"), "{answer:?}");
        }
        self.clock.advance(MINUTE);
        Ok(advanced)
    }
}

fn uids(range: impl Iterator<Item = usize>) -> BTreeSet<String> {
    range.map(|i| format!("d{i:02}")).collect()
}

#[tokio::test]
async fn a_rollout_runs_at_its_rate_completes_and_sets_each_devices_version() -> TestResult {
    let fleet = fleet(20).await?;
    fleet.package("fw-2", "2.0.0").await?;
    let rollout = fleet
        .start(
            "spring",
            "fw-2",
            json!({ "rate": { "max_per_minute": 5 },
            "abort": [{ "failure": "ALL", "threshold_percent": 30, "min_executions": 10 }] }),
        )
        .await?;
    assert_eq!(rollout.status, RolloutStatus::InProgress);
    // Nothing is told to a device before the engine releases it.
    let early = fleet.ask("d00", "get", json!({})).await?;
    assert_eq!(early[0].1["queuedJobs"], json!([]), "{early:?}");

    let failing = uids([3, 13].into_iter());
    let mut told_per_minute = Vec::new();
    for _ in 0..6 {
        let before = fleet.ota.progress("acme", "spring").await?.counts.queued;
        fleet.minute(&failing, &BTreeSet::new()).await?;
        let after = fleet.ota.progress("acme", "spring").await?.counts.queued;
        told_per_minute.push(before - after);
    }
    assert_eq!(
        told_per_minute,
        [5, 5, 5, 5, 0, 0],
        "five a minute, then none left"
    );
    let progress = fleet.ota.progress("acme", "spring").await?;
    assert_eq!(
        progress.rollout.status,
        RolloutStatus::Completed,
        "{progress:?}"
    );
    assert_eq!((progress.counts.succeeded, progress.counts.failed), (18, 2));
    assert_eq!(
        fleet
            .catalog
            .device_firmware("d00")
            .await?
            .map(|f| f.version),
        Some("2.0.0".into())
    );
    assert_eq!(
        fleet.catalog.device_firmware("d03").await?,
        None,
        "a failed device keeps its version"
    );

    // A device reporting on a job it does not have is refused; an ended one cannot change.
    let stray = fleet
        .ask("d00", "nope-123/update", json!({ "status": "SUCCEEDED" }))
        .await?;
    assert_eq!(
        (stray[0].0.ends_with("/rejected"), &stray[0].1["code"]),
        (true, &json!("ResourceNotFound"))
    );
    let job = job_id("acme", "spring");
    let again = fleet
        .ask(
            "d00",
            &format!("{job}/update"),
            json!({ "status": "FAILED" }),
        )
        .await?;
    assert_eq!(again[0].1["code"], "InvalidStateTransition", "{again:?}");
    let history = fleet.ask("d00", &format!("{job}/get"), json!({})).await?;
    assert_eq!(
        history[0].1["execution"]["status"], "SUCCEEDED",
        "{history:?}"
    );

    // Rolled out again, only the devices not on 2.0.0 get it.
    let retry = fleet.start("spring-retry", "fw-2", json!({})).await?;
    let skipped: BTreeSet<String> = retry.skipped.into_iter().collect();
    assert_eq!(skipped.len(), 18);
    assert!(!skipped.contains("d03") && !skipped.contains("d13"));
    Ok(())
}

#[tokio::test]
async fn a_rollout_with_too_many_failures_aborts_and_cancels_what_was_not_sent() -> TestResult {
    let fleet = fleet(20).await?;
    fleet.package("fw-3", "3.0.0").await?;
    fleet
        .start(
            "risky",
            "fw-3",
            json!({ "rate": { "max_per_minute": 5 },
            "abort": [{ "failure": "ALL", "threshold_percent": 30, "min_executions": 5 }] }),
        )
        .await?;
    let failing = uids((0..20).filter(|i| i % 2 == 0));
    let mut aborted = Vec::new();
    for _ in 0..3 {
        aborted.extend(fleet.minute(&failing, &BTreeSet::new()).await?.aborted);
    }
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    let progress = fleet.ota.progress("acme", "risky").await?;
    assert_eq!(progress.rollout.status, RolloutStatus::Aborted);
    assert!(
        progress
            .rollout
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("abort threshold")),
        "{:?}",
        progress.rollout.reason
    );
    assert_eq!(
        progress.counts.canceled, 15,
        "the 15 never told are cancelled: {:?}",
        progress.counts
    );
    assert_eq!(progress.counts.queued + progress.counts.in_progress, 0);
    Ok(())
}

#[tokio::test]
async fn a_device_that_never_reports_times_out_and_one_offline_gets_its_job_later() -> TestResult {
    let fleet = fleet(2).await?;
    fleet.package("fw-2", "2.0.0").await?;
    fleet
        .start("slow", "fw-2", json!({ "in_progress_timeout_minutes": 2 }))
        .await?;
    // d00 starts and goes silent; d01 is offline: it hears nothing and asks nothing.
    fleet.ota.advance(fleet.clock.now_ms()).await?;
    let started = fleet.ask("d00", "start-next", json!({})).await?;
    assert_eq!(started[0].1["execution"]["status"], "IN_PROGRESS");
    fleet.clock.advance(2 * MINUTE);
    let advanced = fleet.ota.advance(fleet.clock.now_ms()).await?;
    assert!(advanced.notify.contains(&"d00".to_owned()));
    let job = job_id("acme", "slow");
    let late = fleet.ask("d00", &format!("{job}/get"), json!({})).await?;
    assert_eq!(late[0].1["execution"]["status"], "TIMED_OUT", "{late:?}");

    // Back an hour later, d01 asks what is pending and finds the job waiting.
    fleet.clock.advance(60 * MINUTE);
    let pending = fleet.ask("d01", "get", json!({})).await?;
    assert_eq!(
        pending[0].1["queuedJobs"][0]["jobId"],
        job.as_str(),
        "{pending:?}"
    );
    let next = fleet.ask("d01", "$next/get", json!({})).await?;
    assert_eq!(next[0].1["execution"]["status"], "QUEUED");
    let executions = fleet.catalog.executions("acme", "slow").await?;
    let statuses: Vec<ExecutionStatus> = executions.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [ExecutionStatus::TimedOut, ExecutionStatus::Queued]
    );
    Ok(())
}
