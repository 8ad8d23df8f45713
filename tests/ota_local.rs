//! Firmware updates end to end on one machine: an image uploaded through the API, rolled out
//! to simulated devices that speak the AWS IoT Jobs MQTT API over the embedded broker,
//! download the image by the job document's signed link, check its SHA-256 and report. A
//! good release completes (a device offline at the start gets its job when it comes back);
//! a bad one aborts on its rule and the devices not yet told are cancelled. The rate,
//! timeout and abort rules minute by minute are tested with a test clock in
//! `shared/core/tests/ota.rs`.

use iot_local::demo::{self, JSON_PRODUCT};
use iot_local::ota_client::{OtaClient, OtaCounters};
use iot_local::{secrets, sim};
use iot_tests::{Api, Mosquitto, TestResult, device_token, eventually, start_platform};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
/// 26 simulated devices: every fourth sends binary frames (another product), so 20 are of
/// the JSON product the firmware is for.
const DEVICES: usize = 26;

async fn package(api: &Api, id: &str, version: &str) -> TestResult {
    let image = format!("env-sensor firmware {version}")
        .repeat(1000)
        .into_bytes();
    api.create(
        "/v1/firmware",
        &json!({ "id": id, "product_id": JSON_PRODUCT, "version": version, "size": image.len(),
                 "sha256": hex::encode(Sha256::digest(&image)) }),
    )
    .await?;
    let (status, ready) = api
        .put_bytes(&format!("/v1/firmware/{id}/content"), &image)
        .await?;
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
    Ok(())
}

async fn rollout_when(api: &Api, id: &str, status: &str) -> Result<Value, iot_tests::Error> {
    eventually(&format!("rollout {id} {status}"), WAIT, || async {
        let (_, rollout) = api.get(&format!("/v1/rollouts/{id}")).await?;
        Ok((rollout["status"] == status).then_some(rollout))
    })
    .await
}

fn simulate(addr: std::net::SocketAddr, key: &str, ota_fail: f64) -> tokio::task::JoinHandle<()> {
    let options = sim::SimOptions {
        host: addr.ip().to_string(),
        port: addr.port(),
        devices: DEVICES,
        rate: 2.0,
        duration: None,
        key: key.to_owned(),
        ota_fail,
    };
    tokio::spawn(async move {
        let _ = sim::run(options).await;
    })
}

/// A device of its own connection running the OTA client, as firmware on a real device would.
async fn lone_device(
    addr: std::net::SocketAddr,
    uid: &str,
    token: &str,
    counters: Arc<OtaCounters>,
) -> tokio::task::JoinHandle<()> {
    let mut options = MqttOptions::new(uid, addr.ip().to_string(), addr.port());
    options.set_credentials(uid, token);
    let (client, mut events) = AsyncClient::new(options, 16);
    let ota = OtaClient::new(uid, client, false, counters);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => ota.on_connect(),
                Ok(Event::Incoming(Packet::Publish(p))) => ota.on_message(&p.topic, &p.payload),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_reaches_a_simulated_fleet_on_the_embedded_broker() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    rollouts(&running, broker, dir.path()).await?;
    running.shutdown().await;
    Ok(())
}

/// The same over Mosquitto: the platform answers the jobs API through its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_reaches_a_simulated_fleet_on_mosquitto() -> TestResult {
    let mosquitto = Mosquitto::start().await?;
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), Some(&mosquitto.url())).await?;
    rollouts(&running, mosquitto.addr(), dir.path()).await?;
    running.shutdown().await;
    mosquitto.stop().await;
    Ok(())
}

/// A good release completes and a bad one aborts, over the broker at `broker`.
async fn rollouts(
    running: &iot_local::platform::Running,
    broker: std::net::SocketAddr,
    dir: &std::path::Path,
) -> TestResult {
    let api = Api::new(running.http_addr).await?;
    let key = secrets::simulator_key(dir)?;
    demo::install(&running.services, "acme", DEVICES, None, &key).await?;
    // One more device of the product, offline when the rollout starts.
    api.create(
        "/v1/devices",
        &json!({ "uid": "late-1", "identification_code": "LATE-1", "product_id": JSON_PRODUCT,
                 "department_id": "default" }),
    )
    .await?;
    let late_token = device_token(&api, "late-1").await?;
    package(&api, "fw-2", "2.0.0").await?;

    // A good release; sim-001 to sim-003 fail their install (3 of 21, under the rule's 30 %).
    let fleet = simulate(broker, &key, 0.1);
    let started = api
        .create(
            "/v1/rollouts",
            &json!({ "id": "good", "package_id": "fw-2", "target": { "type": "product" },
                     "rate": { "max_per_minute": 100 },
                     "abort": [{ "failure": "ALL", "threshold_percent": 30, "min_executions": 10 }] }),
        )
        .await?;
    assert_eq!(started["counts"]["queued"], 21, "{started}");
    eventually("the online devices to finish", WAIT, || async {
        let (_, rollout) = api.get("/v1/rollouts/good").await?;
        let counts = &rollout["counts"];
        let finished =
            counts["succeeded"].as_u64().unwrap_or(0) + counts["failed"].as_u64().unwrap_or(0);
        Ok((finished == 20).then_some(()))
    })
    .await?;
    let (_, waiting) = api.get("/v1/rollouts/good").await?;
    assert_eq!(
        waiting["status"], "in_progress",
        "late-1 has not reported: {waiting}"
    );
    let late = Arc::new(OtaCounters::default());
    let late_device = lone_device(broker, "late-1", &late_token, late.clone()).await;
    let done = rollout_when(&api, "good", "completed").await?;
    assert_eq!(
        (&done["counts"]["succeeded"], &done["counts"]["failed"]),
        (&json!(18), &json!(3)),
        "{done}"
    );
    late_device.abort();
    let (_, firmware) = api.get("/v1/devices/late-1/firmware").await?;
    assert_eq!(firmware["installed"]["version"], "2.0.0", "{firmware}");
    let failed = api
        .all_pages("/v1/rollouts/good/executions?status=FAILED", 10)
        .await?;
    let uids: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["device_uid"].as_str())
        .collect();
    assert_eq!(uids, ["sim-001", "sim-002", "sim-003"]);
    assert_eq!(
        failed[0]["status_details"]["reason"], "the simulated install failed",
        "{failed:?}"
    );
    let history: Vec<&str> = failed[0]["history"]
        .as_array()
        .ok_or("no history")?
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["QUEUED", "IN_PROGRESS", "FAILED"]);
    fleet.abort();

    // A bad release: half the fleet fails. Five devices are told in the first minute (late-1,
    // offline again, and four that fail), so the rule stops it once those four have failed,
    // and the seventeen still queued are cancelled.
    package(&api, "fw-3", "3.0.0").await?;
    let fleet = simulate(broker, &key, 0.5);
    api.create(
        "/v1/rollouts",
        &json!({ "id": "bad", "package_id": "fw-3", "target": { "type": "product" },
                 "rate": { "max_per_minute": 5 },
                 "abort": [{ "failure": "ALL", "threshold_percent": 30, "min_executions": 4 }] }),
    )
    .await?;
    let aborted = rollout_when(&api, "bad", "aborted").await?;
    assert!(
        aborted["reason"]
            .as_str()
            .is_some_and(|r| r.contains("abort threshold")),
        "{aborted}"
    );
    assert_eq!(
        (&aborted["counts"]["failed"], &aborted["counts"]["canceled"]),
        (&json!(4), &json!(17)),
        "{aborted}"
    );
    let (_, firmware) = api.get("/v1/devices/sim-005/firmware").await?;
    assert_eq!(
        firmware["installed"]["version"], "2.0.0",
        "a failed install keeps the old version: {firmware}"
    );
    fleet.abort();
    Ok(())
}
