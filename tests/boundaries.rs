//! Trust boundaries held over HTTP against the running platform: what one tenant, department
//! or role can reach of what is not its own.

use iot_e2e::{Api, Device, Error, TestResult, eventually, start_platform, tenant_admin};
use iot_local::platform::Running;
use serde_json::{Value, json};
use std::time::Duration;

const JSON_SENSOR: &str = include_str!("../examples/products/json-sensor.rhai");
const PASSWORD: &str = "a user password";
const WAIT: Duration = Duration::from_secs(15);

async fn user(
    running: &Running,
    admin: &Api,
    tenant: &str,
    id: &str,
    roles: &[&str],
    department: Option<&str>,
) -> Result<Api, Error> {
    admin
        .create(
            "/v1/users",
            &json!({ "id": id, "name": id, "password": PASSWORD, "roles": roles, "department_id": department }),
        )
        .await?;
    Api::login(running.http_addr, tenant, id, PASSWORD).await
}

/// Departments `north` and `south`, the product `air`, and one device in each department
/// (`n-1`, `s-1`) that has sent one reading of `temperature`.
async fn two_departments(running: &Running, admin: &Api, prefix: &str) -> TestResult {
    for id in ["north", "south"] {
        admin
            .create("/v1/departments", &json!({ "id": id, "name": id }))
            .await?;
    }
    admin
        .create(
            "/v1/products",
            &json!({ "id": "air", "name": "Air", "script": { "source": JSON_SENSOR } }),
        )
        .await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    for (uid, dept) in [("n-1", "north"), ("s-1", "south")] {
        let uid = format!("{prefix}{uid}");
        admin
            .create(
                "/v1/devices",
                &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": dept }),
            )
            .await?;
        let mut device = Device::connect(broker, &uid).await?;
        device
            .publish(r#"{"ts": 1795435200, "temp": 30.5, "hum": 40, "co2": 600}"#)
            .await?;
        eventually("the reading", WAIT, || async {
            let (_, latest) = admin.get(&format!("/v1/devices/{uid}/latest")).await?;
            Ok((latest.to_string().contains("30.5")).then_some(()))
        })
        .await?;
    }
    Ok(())
}

fn job(uids: &[&str]) -> Value {
    json!({ "id": "avg", "name": "avg", "cron": "0 * * * *", "lead_ms": 3_600_000,
            "signals": ["temperature"], "devices": { "type": "devices", "uids": uids },
            "script": "#{ n: count(series.temperature), avg: avg(series.temperature) }", "enabled": true })
}

/// The run time of the jobs below: an hour after the readings.
const RUN_AT: &str = "2026-11-23T12:30:00Z";

fn computed_for(run: &Value) -> Vec<String> {
    run["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["device_uid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_jobs_stay_within_their_tenant_and_the_callers_departments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    two_departments(&running, &acme, "").await?;
    let rival = tenant_admin(&running, "rival").await?;
    rival
        .create(
            "/v1/products",
            &json!({ "id": "air", "name": "Air", "script": { "source": JSON_SENSOR } }),
        )
        .await?;

    // Naming another tenant's uid is refused as naming an absent one, at create and update.
    for uids in [&["n-1"][..], &["ghost"][..]] {
        let (status, problem) = rival.post("/v1/stat-jobs", &job(uids)).await?;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(
            problem["errors"][0]["pointer"], "/devices/uids",
            "{problem}"
        );
    }
    rival
        .create(
            "/v1/stat-jobs",
            &json!({ "id": "avg", "name": "avg", "cron": "0 * * * *", "lead_ms": 3_600_000,
                     "signals": ["temperature"], "devices": { "type": "product", "product_id": "air" },
                     "script": "#{ n: count(series.temperature) }", "enabled": true }),
        )
        .await?;
    let (status, problem) = rival.put("/v1/stat-jobs/avg", &job(&["s-1"])).await?;
    assert_eq!(status, 422, "{problem}");
    let (status, run) = rival
        .post("/v1/stat-jobs/avg/run", &json!({ "at": RUN_AT }))
        .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["results"], json!([]), "rival has no devices: {run}");

    // acme's job of the same id: its results are its own, and rival reads none of them.
    acme.create("/v1/stat-jobs", &job(&["n-1", "s-1"])).await?;
    let (status, run) = acme
        .post("/v1/stat-jobs/avg/run", &json!({ "at": RUN_AT }))
        .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(computed_for(&run), ["n-1", "s-1"], "{run}");
    let window = "from=2026-11-23T12:00:00Z&to=2026-11-23T13:00:00Z";
    let (status, _) = rival
        .get(&format!("/v1/stat-jobs/avg/results?device=n-1&{window}"))
        .await?;
    assert_eq!(status, 404);

    // A scoped operator runs the job for their department's devices, and reads only those.
    let nora = user(
        &running,
        &acme,
        "acme",
        "nora",
        &["operator"],
        Some("north"),
    )
    .await?;
    let (status, run) = nora
        .post("/v1/stat-jobs/avg/run", &json!({ "at": RUN_AT }))
        .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(computed_for(&run), ["n-1"], "{run}");
    let (status, _) = nora
        .get(&format!("/v1/stat-jobs/avg/results?device=s-1&{window}"))
        .await?;
    assert_eq!(status, 404);
    // ... and cannot save a job naming a device she does not see.
    let (status, problem) = nora.put("/v1/stat-jobs/avg", &job(&["s-1"])).await?;
    assert_eq!(status, 422, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_grant_gives_only_its_action() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    two_departments(&running, &admin, "").await?;
    let (status, role) = admin
        .put(
            "/v1/roles/south-reader",
            &json!({ "permissions": [ { "object": "department:south", "action": "GET" } ] }),
        )
        .await?;
    assert_eq!(status, 200, "{role}");
    let nora = user(
        &running,
        &admin,
        "acme",
        "nora",
        &["operator", "south-reader"],
        Some("north"),
    )
    .await?;
    // She reads south's data ...
    for path in ["/v1/devices/s-1", "/v1/devices/s-1/latest"] {
        assert_eq!(nora.get(path).await?.0, 200, "{path}");
    }
    // ... and changes none of it: not the device, its commands, its shadow, its token.
    let writes = [
        (
            "PUT",
            "/v1/devices/s-1",
            json!({ "identification_code": "s-1", "product_id": "air", "department_id": "south", "name": "mine" }),
        ),
        (
            "POST",
            "/v1/devices/s-1/commands",
            json!({ "name": "reboot", "payload": {} }),
        ),
        (
            "PUT",
            "/v1/devices/s-1/shadow/desired",
            json!({ "interval_s": 1 }),
        ),
        ("POST", "/v1/devices/s-1/token", json!({})),
        ("DELETE", "/v1/devices/s-1", json!({})),
    ];
    for (method, path, body) in &writes {
        let (status, answer) = match *method {
            "PUT" => nora.put(path, body).await?,
            "DELETE" => nora.delete(path).await?,
            _ => nora.post(path, body).await?,
        };
        assert!(
            status == 403 || status == 404,
            "{method} {path}: {status} {answer}"
        );
    }
    let (_, device) = admin.get("/v1/devices/s-1").await?;
    assert_eq!(device["department_id"], "south", "{device}");
    assert_ne!(device["name"], "mine", "{device}");
    // Her own department she changes as her operator role allows.
    let (status, answer) = nora
        .put(
            "/v1/devices/n-1",
            &json!({ "identification_code": "n-1", "product_id": "air", "department_id": "north", "name": "mine" }),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_name_only_the_tenants_own_sns_destinations() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    let arn = "arn:aws:sns:local:000000000000:";
    let email = |id: &str, topic: String| json!({ "id": id, "name": id, "kind": { "type": "email", "topic_arn": topic } });
    for topic in [
        // The alarm-events topic: what is published there comes back as alarm events.
        format!("{arn}iot-local-alarm-events"),
        // Another tenant's topic, and one outside the platform's names.
        format!("{arn}iot-local-email-rival-ops"),
        "arn:aws:sns:us-east-1:123456789012:anything".to_owned(),
    ] {
        let (status, problem) = acme
            .post("/v1/channels", &email("mail", topic.clone()))
            .await?;
        assert_eq!(status, 422, "{topic}: {problem}");
        assert_eq!(
            problem["errors"][0]["pointer"], "/kind/topic_arn",
            "{problem}"
        );
    }
    let (status, push) = acme
        .post(
            "/v1/channels",
            &json!({ "id": "push", "name": "push", "kind": { "type": "push",
                "endpoint_arns": [format!("{arn}iot-local-alarm-events")] } }),
        )
        .await?;
    assert_eq!(status, 422, "{push}");
    acme.create(
        "/v1/channels",
        &email("mail", format!("{arn}iot-local-email-acme-ops")),
    )
    .await?;
    let (status, problem) = acme
        .put(
            "/v1/channels/mail",
            &email("mail", format!("{arn}iot-local-alarm-events")),
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_channels_point_at_public_addresses_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    let hook = |url: &str| {
        json!({ "id": "hook", "name": "hook",
                "kind": { "type": "webhook", "flavor": "generic", "url": url } })
    };
    // The tests allow 127.0.0.1 only; every other internal address is refused at save.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://10.0.0.1/hook",
        "http://0x7f000002/hook",
        "ftp://example.com/hook",
    ] {
        let (status, problem) = acme.post("/v1/channels", &hook(url)).await?;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/kind/url", "{problem}");
    }
    acme.create("/v1/channels", &hook("http://127.0.0.1:9/hook"))
        .await?;
    running.shutdown().await;
    Ok(())
}
