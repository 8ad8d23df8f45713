//! Tenants as a managed unit, over HTTP and MQTT against the running platform: the platform
//! operator (the administrator of the platform's own tenant, `acme` here) creates, limits,
//! suspends and deletes them; a uid deleted and created again is a new device.

use iot_local::platform::Running;
use iot_tests::mqtt::{connect_as, ended_without_puback};
use iot_tests::{
    Api, Error, TestResult, air_product, device_token, eventually, start_platform,
    start_platform_with, tenant_admin, tenant_user,
};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const GLOBEX_PASSWORD: &str = "globex admin password";

/// Creates tenant `globex` (admin `gina`) with `quotas`, and signs gina in.
async fn globex(running: &Running, operator: &Api, quotas: Value) -> Result<Api, Error> {
    let (status, created) = operator
        .post(
            "/v1/platform/tenants",
            &json!({ "id": "globex", "name": "Globex", "quotas": quotas,
                     "admin_user": "gina", "admin_password": GLOBEX_PASSWORD }),
        )
        .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["uid_prefix"], "globex_");
    assert_eq!(created["status"], "active");
    let gina = Api::login(running.http_addr, "globex", "gina", GLOBEX_PASSWORD).await?;
    gina.create("/v1/departments", &json!({ "id": "ops", "name": "Ops" }))
        .await?;
    air_product(&gina).await?;
    Ok(gina)
}

fn device(uid: &str) -> Value {
    json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": "ops" })
}

/// Posts one reading over HTTP ingest with the device's token; the status.
async fn ingest(running: &Running, token: &str, temp: f64) -> Result<(u16, String), Error> {
    ingest_at(running, token, temp, 1_795_435_200).await
}

/// The same, timed `ts` (epoch seconds).
async fn ingest_at(
    running: &Running,
    token: &str,
    temp: f64,
    ts: i64,
) -> Result<(u16, String), Error> {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/ingest", running.http_addr))
        .header("authorization", format!("Device {token}"))
        .body(format!(
            r#"{{"ts": {ts}, "temp": {temp}, "hum": 40, "co2": 600}}"#
        ))
        .send()
        .await?;
    Ok((answer.status().as_u16(), answer.text().await?))
}

/// Whether the broker accepts the device's CONNECT with its token.
async fn broker_accepts(broker: SocketAddr, uid: &str, token: &str) -> Result<bool, Error> {
    let mut options = MqttOptions::new(uid, broker.ip().to_string(), broker.port());
    options.set_credentials(uid, token);
    let (_client, mut events) = AsyncClient::new(options, 4);
    Ok(tokio::time::timeout(WAIT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(true),
                Err(ConnectionError::ConnectionRefused(_)) => return Ok(false),
                Err(e) => return Err(format!("no CONNACK: {e}")),
                Ok(_) => {}
            }
        }
    })
    .await??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_platform_operator_manages_tenants() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let operator = Api::new(running.http_addr).await?;
    let gina = globex(&running, &operator, json!({})).await?;

    // Another tenant's administrator has `/v1/*` in its policy, and is still refused.
    for (status, problem) in [
        gina.get("/v1/platform/tenants").await?,
        gina.post("/v1/platform/tenants/globex/resume", &json!({}))
            .await?,
        gina.delete("/v1/platform/tenants/globex").await?,
    ] {
        assert_eq!(status, 403, "{problem}");
    }
    // So is an operator of the platform's own tenant whose role does not grant the routes.
    let viewer = tenant_user(&running, &operator, "acme", "vera", &["viewer"], None).await?;
    let (status, problem) = viewer.get("/v1/platform/tenants").await?;
    assert_eq!(status, 403, "{problem}");

    let listed = operator.all_pages("/v1/platform/tenants", 10).await?;
    let ids: Vec<&str> = listed.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, ["globex"]);

    // Ids are checked, never given out twice, and the platform's own cannot be suspended.
    let new = |id: &str| json!({ "id": id, "name": "x", "admin_user": "a", "admin_password": GLOBEX_PASSWORD });
    let (status, problem) = operator
        .post("/v1/platform/tenants", &new("Bad_Id"))
        .await?;
    assert_eq!(
        (status, problem["errors"][0]["pointer"].as_str()),
        (422, Some("/id")),
        "{problem}"
    );
    for taken in ["globex", "acme"] {
        let (status, problem) = operator.post("/v1/platform/tenants", &new(taken)).await?;
        assert_eq!(status, 409, "{taken}: {problem}");
    }
    let weak =
        json!({ "id": "initech", "name": "x", "admin_user": "a", "admin_password": "short" });
    let (status, problem) = operator.post("/v1/platform/tenants", &weak).await?;
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = operator
        .post(
            "/v1/platform/tenants/acme/suspend",
            &json!({ "reason": "no" }),
        )
        .await?;
    assert_eq!(status, 403, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_has_its_own_uid_namespace_and_device_quota() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let operator = Api::new(running.http_addr).await?;
    let gina = globex(&running, &operator, json!({ "max_devices": 2 })).await?;

    let (status, problem) = gina.post("/v1/devices", &device("pump-1")).await?;
    assert_eq!(status, 422, "{problem}");
    assert!(problem.to_string().contains("globex_"), "{problem}");
    gina.create("/v1/devices", &device("globex_pump-1")).await?;
    // Taken is told alike whoever holds the uid.
    let (status, problem) = gina.post("/v1/devices", &device("globex_pump-1")).await?;
    assert_eq!(status, 409, "{problem}");
    // The platform's own tenant keeps out of a managed tenant's namespace.
    air_product(&operator).await?;
    let (status, problem) = operator
        .post("/v1/devices", &device("globex_pump-9"))
        .await?;
    assert_eq!(status, 422, "{problem}");

    let csv = "uid,identification_code,product_id,department_id\nglobex_pump-2,c2,air,ops\nglobex_pump-3,c3,air,ops\n";
    let (status, report) = gina.put_text_as("POST", "/v1/devices/import", csv).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], json!(["globex_pump-2"]), "{report}");
    assert!(
        report["refused"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("quota"),
        "{report}"
    );
    let (status, problem) = gina.post("/v1/devices", &device("globex_pump-4")).await?;
    assert_eq!(status, 403, "{problem}");

    // A higher quota lets the tenant grow.
    let (status, changed) = operator
        .put(
            "/v1/platform/tenants/globex",
            &json!({ "quotas": { "max_devices": 3 } }),
        )
        .await?;
    assert_eq!(
        (status, &changed["quotas"]["max_devices"]),
        (200, &json!(3)),
        "{changed}"
    );
    gina.create("/v1/devices", &device("globex_pump-4")).await?;

    // Stored days: what is older than the tenant's retention is not read back.
    let token = device_token(&gina, "globex_pump-4").await?;
    assert_eq!(ingest(&running, &token, 33.5).await?.0, 200);
    let window = "from=2026-11-20T00:00:00Z&to=2026-11-30T00:00:00Z";
    let path = format!("/v1/devices/globex_pump-4/telemetry?{window}");
    eventually("the reading", WAIT, || async {
        let (_, points) = gina.get(&path).await?;
        Ok(points.to_string().contains("33.5").then_some(()))
    })
    .await?;
    let (status, changed) = operator
        .put(
            "/v1/platform/tenants/globex",
            &json!({ "quotas": { "max_devices": 3, "retention_days": 1 } }),
        )
        .await?;
    assert_eq!(status, 200, "{changed}");
    for path in [path, "/v1/devices/globex_pump-4/latest".to_owned()] {
        let (status, answer) = gina.get(&path).await?;
        assert_eq!(status, 200, "{answer}");
        assert!(!answer.to_string().contains("33.5"), "{path}: {answer}");
    }
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenant_is_refused_with_the_reason_until_resumed_and_a_deleted_one_for_good()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    let operator = Api::new(running.http_addr).await?;
    let gina = globex(&running, &operator, json!({})).await?;
    gina.create("/v1/devices", &device("globex_pump-1")).await?;
    let token = device_token(&gina, "globex_pump-1").await?;
    assert_eq!(ingest(&running, &token, 20.0).await?.0, 200);
    assert!(broker_accepts(broker, "globex_pump-1", &token).await?);
    // A session open when the tenant is suspended is ended, not left to run.
    let (_live, mut live_events) = connect_as(
        broker,
        "globex_pump-1",
        Some(("globex_pump-1", token.as_str())),
    )
    .await?
    .map_err(|code| format!("refused: {code:?}"))?;

    let (status, suspended) = operator
        .post(
            "/v1/platform/tenants/globex/suspend",
            &json!({ "reason": "invoice 42 unpaid" }),
        )
        .await?;
    assert_eq!(
        (status, &suspended["status"]),
        (200, &json!("suspended")),
        "{suspended}"
    );
    assert!(
        ended_without_puback(&mut live_events).await?,
        "the live session ends"
    );
    // The signed-in administrator, a new login, the device over HTTP and over MQTT.
    let (status, problem) = gina.get("/v1/devices").await?;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("invoice 42 unpaid"),
        "{problem}"
    );
    let login = Api::login(running.http_addr, "globex", "gina", GLOBEX_PASSWORD).await;
    assert!(login.is_err_and(|e| e.to_string().contains("invoice 42 unpaid")));
    let (status, answer) = ingest(&running, &token, 21.0).await?;
    assert_eq!(status, 403, "{answer}");
    assert!(!broker_accepts(broker, "globex_pump-1", &token).await?);

    let (status, resumed) = operator
        .post("/v1/platform/tenants/globex/resume", &json!({}))
        .await?;
    assert_eq!(
        (status, &resumed["status"]),
        (200, &json!("active")),
        "{resumed}"
    );
    let gina = Api::login(running.http_addr, "globex", "gina", GLOBEX_PASSWORD).await?;
    assert_eq!(gina.get("/v1/devices").await?.0, 200);
    assert_eq!(ingest(&running, &token, 22.0).await?.0, 200);

    let (status, deleted) = operator.delete("/v1/platform/tenants/globex").await?;
    assert_eq!(
        (status, &deleted["devices_deleted"]),
        (200, &json!(1)),
        "{deleted}"
    );
    assert_eq!(gina.get("/v1/devices").await?.0, 403);
    assert!(
        Api::login(running.http_addr, "globex", "gina", GLOBEX_PASSWORD)
            .await
            .is_err()
    );
    assert_eq!(ingest(&running, &token, 23.0).await?.0, 401);
    let (status, problem) = operator
        .post("/v1/platform/tenants/globex/resume", &json!({}))
        .await?;
    assert_eq!(status, 409, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_created_again_is_a_new_device_that_sees_nothing_of_the_old_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    admin
        .create("/v1/departments", &json!({ "id": "ops", "name": "Ops" }))
        .await?;
    air_product(&admin).await?;
    admin.create("/v1/devices", &device("pump-1")).await?;
    let token = device_token(&admin, "pump-1").await?;
    assert_eq!(ingest(&running, &token, 35.5).await?.0, 200);
    let window = "from=2026-11-20T00:00:00Z&to=2026-11-30T00:00:00Z";
    eventually("the old device's reading", WAIT, || async {
        let (_, latest) = admin.get("/v1/devices/pump-1/latest").await?;
        Ok(latest.to_string().contains("35.5").then_some(()))
    })
    .await?;

    assert_eq!(admin.delete("/v1/devices/pump-1").await?.0, 204);
    // Another tenant creates the freed uid, as it may in the platform's one namespace.
    let rival = tenant_admin(&running, "rival").await?;
    rival
        .create("/v1/departments", &json!({ "id": "ops", "name": "Ops" }))
        .await?;
    air_product(&rival).await?;
    rival.create("/v1/devices", &device("pump-1")).await?;
    for path in [
        "/v1/devices/pump-1/latest".to_owned(),
        format!("/v1/devices/pump-1/telemetry?{window}"),
        format!("/v1/devices/pump-1/aggregate?signal=temperature&bucket_ms=3600000&{window}"),
    ] {
        let (status, answer) = rival.get(&path).await?;
        assert_eq!(status, 200, "{path}: {answer}");
        assert!(!answer.to_string().contains("35.5"), "{path}: {answer}");
    }
    let (status, export) = rival
        .post(
            "/v1/devices/pump-1/export",
            &json!({ "from": "2026-11-20T00:00:00Z", "to": "2026-11-30T00:00:00Z", "format": "json" }),
        )
        .await?;
    assert_eq!(status, 201, "{export}");
    assert_eq!(export["points"], 0, "{export}");
    // What the new device sends is its own.
    let token = device_token(&rival, "pump-1").await?;
    // Timed in whole seconds: the next second is surely after the old device was deleted.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let ts = now.as_secs() as i64 + 1;
    assert_eq!(ingest_at(&running, &token, 18.25, ts).await?.0, 200);
    eventually("the new device's reading", WAIT, || async {
        let (_, latest) = rival.get("/v1/devices/pump-1/latest").await?;
        Ok(latest.to_string().contains("18.25").then_some(()))
    })
    .await?;
    running.shutdown().await;
    Ok(())
}

/// A tenant's retention quota deletes what is older from the store, not only from answers:
/// the timer takes globex's points past 7 days and leaves the platform tenant's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_past_a_tenants_retention_is_deleted_from_the_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform_with(dir.path(), None, |config| {
        config.pipeline.retention_sweep_s = 1;
    })
    .await?;
    let operator = Api::new(running.http_addr).await?;
    let gina = globex(&running, &operator, json!({ "retention_days": 7 })).await?;
    gina.create("/v1/devices", &device("globex_pump-1")).await?;
    let globex_token = device_token(&gina, "globex_pump-1").await?;
    operator
        .create("/v1/departments", &json!({ "id": "ops", "name": "Ops" }))
        .await?;
    air_product(&operator).await?;
    operator.create("/v1/devices", &device("pump-1")).await?;
    let own_token = device_token(&operator, "pump-1").await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let now = now.as_secs() as i64;
    for ts in [now - 30 * 86_400, now - 8 * 86_400, now - 86_400] {
        assert_eq!(ingest_at(&running, &globex_token, 20.0, ts).await?.0, 200);
        assert_eq!(ingest_at(&running, &own_token, 20.0, ts).await?.0, 200);
    }
    // Read beside the running platform, as an operator's sqlite3 shell would.
    let db = rusqlite::Connection::open_with_flags(
        dir.path().join("iot.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let times = |uid: &str| -> Result<Vec<i64>, rusqlite::Error> {
        db.prepare("SELECT DISTINCT time / 1000 FROM telemetry WHERE device_uid = ?1 ORDER BY 1")?
            .query_map([uid], |row| row.get(0))?
            .collect()
    };
    eventually("the sweep", WAIT, || async {
        Ok((times("globex_pump-1")? == [now - 86_400]).then_some(()))
    })
    .await?;
    assert_eq!(
        times("pump-1")?,
        [now - 30 * 86_400, now - 8 * 86_400, now - 86_400]
    );
    drop(db);
    running.shutdown().await;
    Ok(())
}
