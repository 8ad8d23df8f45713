//! The whole platform on one machine, driven as users and devices drive it: devices publish
//! over MQTT (the embedded broker, or a real Mosquitto), everything is checked through the
//! HTTP API, a webhook receiver and `/metrics`.

use iot_local::platform::StartError;
use iot_tests::{
    Api, Device, Error, Mosquitto, TestResult, WebhookReceiver, counter, eventually, free_port,
    start_platform, tenant_admin,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

const JSON_SENSOR: &str = include_str!("../examples/products/json-sensor.rhai");
const WAIT: Duration = Duration::from_secs(15);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A reading with a time of its own: points of a signal are keyed by time, so two readings in
/// the same millisecond would be one point (which is what makes redelivery idempotent).
fn reading(temperature: f64) -> String {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let ts = LAST.fetch_max(now_ms(), Ordering::SeqCst).max(now_ms()) + 1;
    LAST.store(ts, Ordering::SeqCst);
    format!(r#"{{"ts": {ts}, "temp": {temperature}, "hum": 40, "co2": 600}}"#)
}

/// A product with the JSON sensor script, one device, a graded rule, a webhook route, an inbox
/// route, and a statistics job.
async fn provision(api: &Api, webhook: &str) -> TestResult {
    api.create(
        "/v1/products",
        &json!({
            "id": "air", "name": "Indoor air",
            "script": { "source": JSON_SENSOR },
            "signals": [
                { "name": "temperature", "kind": "number", "unit": "°C", "range": { "min": -40, "max": 85 } },
                { "name": "humidity", "kind": "number" },
                { "name": "co2", "kind": "number" }
            ]
        }),
    )
    .await?;
    api.create(
        "/v1/devices",
        &json!({ "uid": "air-1", "identification_code": "SN-1", "product_id": "air", "department_id": "hq", "name": "Lab" }),
    )
    .await?;
    api.create(
        "/v1/products/air/rules",
        &json!({
            "id": "hot", "name": "Too hot", "enabled": true,
            "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
                "bands": [ { "level": "warning", "threshold": 30 }, { "level": "critical", "threshold": 40 } ],
                "deadband": 1 },
            "debounce": { "samples": 1, "for_ms": 0 }
        }),
    )
    .await?;
    api.create(
        "/v1/templates",
        &json!({ "id": "hook-json", "name": "JSON", "subject": "",
                 "body": r#"{"alarm": "${alarm_id}", "event": "${event}", "level": "${level}", "value": "${value}"}"# }),
    )
    .await?;
    api.create(
        "/v1/templates",
        &json!({ "id": "text", "name": "Text", "subject": "${rule_name} ${event}", "body": "${device_name}: ${signal} = ${value}" }),
    )
    .await?;
    api.create(
        "/v1/channels",
        &json!({ "id": "hook", "name": "Hook", "kind": { "type": "webhook", "flavor": "generic", "url": webhook } }),
    )
    .await?;
    api.create(
        "/v1/channels",
        &json!({ "id": "inbox", "name": "Inbox", "kind": { "type": "in_system", "user_ids": ["ops"] } }),
    )
    .await?;
    for (id, template, channel) in [
        ("to-hook", "hook-json", "hook"),
        ("to-inbox", "text", "inbox"),
    ] {
        api.create(
            "/v1/notification-routes",
            &json!({ "id": id, "rule_ids": [], "min_level": "warning", "events": [],
                     "template_id": template, "channel_id": channel }),
        )
        .await?;
    }
    api.create(
        "/v1/stat-jobs",
        &json!({ "id": "avg-temp", "name": "Average temperature", "cron": "0 0 1 1 *", "lead_ms": 3_600_000,
                 "signals": ["temperature"], "devices": { "type": "product", "product_id": "air" },
                 "script": "#{ avg: avg(series.temperature), n: count(series.temperature) }", "enabled": true }),
    )
    .await?;
    Ok(())
}

async fn temperatures(api: &Api) -> Result<Vec<f64>, Error> {
    let (status, body) = api
        .get("/v1/devices/air-1/telemetry?signal=temperature")
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["points"]
        .as_array()
        .ok_or("no points")?
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect())
}

async fn webhook_events(hook: &WebhookReceiver, count: usize) -> Result<Vec<String>, Error> {
    let events = || -> Vec<String> {
        hook.received()
            .iter()
            .map(|b| b["event"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    eventually(&format!("{count} webhook calls"), WAIT, || async {
        let events = events();
        Ok((events.len() >= count).then_some(events))
    })
    .await
    .map_err(|e| format!("{e}; received {:?}", events()).into())
}

/// The scenario both brokers must pass.
async fn full_flow(api: &Api, other: &Api, broker: SocketAddr, data_dir: &Path) -> TestResult {
    let hook = WebhookReceiver::start().await?;
    provision(api, &hook.url).await?;
    let mut device = Device::sign_in(broker, api, "air-1").await?;

    // Normal, hot, hotter, normal: raised, escalated, cleared, in order.
    for temperature in [25.0, 35.0, 45.0, 20.0] {
        device.publish(reading(temperature)).await?;
    }
    let stored = eventually("four readings", WAIT, || async {
        let values = temperatures(api).await?;
        Ok((values.len() >= 4).then_some(values))
    })
    .await?;
    assert_eq!(stored, [25.0, 35.0, 45.0, 20.0]);
    assert_eq!(
        webhook_events(&hook, 3).await?,
        ["raised", "escalated", "cleared"]
    );
    let first = &hook.received()[1];
    assert_eq!(
        (first["level"].as_str(), first["value"].as_str()),
        (Some("critical"), Some("45"))
    );

    let (_, alarms) = api.get("/v1/alarms?device=air-1").await?;
    let alarm = &alarms["items"][0];
    assert_eq!(
        (alarm["status"].as_str(), alarm["peak_level"].as_str()),
        (Some("cleared"), Some("critical"))
    );

    // Bad input is acknowledged, kept with its reason, counted, and the pipeline goes on.
    device.publish("this is not json").await?;
    device.publish(reading(22.0)).await?;
    eventually("the reading after the bad one", WAIT, || async {
        Ok((temperatures(api).await?.len() == 5).then_some(()))
    })
    .await?;
    // The counters move just after the commit that makes a reading visible: wait for both,
    // then check the bad message is counted once.
    eventually("the messages counted", WAIT, || async {
        let metrics = api.metrics().await?;
        Ok((counter(&metrics, "ingest_messages_failed_total") >= 1.0
            && counter(&metrics, "ingest_messages_parsed_total") >= 5.0)
            .then_some(()))
    })
    .await?;
    let metrics = api.metrics().await?;
    assert_eq!(
        counter(&metrics, "ingest_messages_failed_total"),
        1.0,
        "{metrics}"
    );
    let dead_letter = find_dead_letter(&data_dir.join("blobs/dead-letters"))?;
    assert!(
        dead_letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not JSON")),
        "{dead_letter}"
    );
    assert_eq!(dead_letter["payload_base64"], "dGhpcyBpcyBub3QganNvbg==");

    // Acknowledge and clear by hand through the API.
    device.publish(reading(33.0)).await?;
    let open = eventually("an open alarm", WAIT, || async {
        let (_, body) = api.get("/v1/alarms?status=open").await?;
        Ok(body["items"][0]["alarm_id"].as_str().map(str::to_owned))
    })
    .await?;
    let (status, ack) = api
        .post(
            &format!("/v1/alarms/{open}/acknowledge"),
            &json!({ "note": "on my way" }),
        )
        .await?;
    assert_eq!(
        (status, ack["kind"].as_str()),
        (200, Some("acknowledged")),
        "{ack}"
    );
    let (_, record) = api.get(&format!("/v1/alarms/{open}")).await?;
    assert_eq!(
        (
            record["status"].as_str(),
            record["acknowledged_by"].as_str()
        ),
        (Some("acknowledged"), Some("admin (on my way)"))
    );
    let (status, _) = api
        .post(&format!("/v1/alarms/{open}/clear"), &json!({}))
        .await?;
    assert_eq!(status, 200);
    let (status, problem) = api
        .post(&format!("/v1/alarms/{open}/clear"), &json!({}))
        .await?;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cleared"))
    );
    // Routes that name no events notify raises, escalations and clears, not acknowledgements.
    assert_eq!(webhook_events(&hook, 5).await?[3..], ["raised", "cleared"]);

    // In-system messages for the operators.
    let messages = eventually("five inbox messages", WAIT, || async {
        let (_, inbox) = api.get("/v1/users/ops/messages?unread=true").await?;
        let items = inbox["items"].as_array().cloned().unwrap_or_default();
        Ok((items.len() >= 5).then_some(items))
    })
    .await?;
    assert_eq!(messages.len(), 5);
    // The same five two at a time, newest first, through the cursor.
    let paged = api
        .all_pages("/v1/users/ops/messages?unread=true", 2)
        .await?;
    assert_eq!(paged, messages);
    let id = messages[0]["id"].as_str().ok_or("no id")?;
    let (status, _) = api
        .post(&format!("/v1/users/ops/messages/{id}/read"), &json!({}))
        .await?;
    assert_eq!(status, 200);
    let (_, unread) = api.get("/v1/users/ops/messages?unread=true").await?;
    assert_eq!(
        unread["items"].as_array().map(Vec::len),
        Some(messages.len() - 1)
    );

    // Statistics over the last hour: the six readings.
    let (status, run) = api.post("/v1/stat-jobs/avg-temp/run", &json!({})).await?;
    assert_eq!(status, 200, "{run}");
    let values = &run["results"][0]["values"];
    assert_eq!(values["n"].as_f64(), Some(6.0), "{run}");
    let expected = (25.0 + 35.0 + 45.0 + 20.0 + 22.0 + 33.0) / 6.0;
    assert!(
        (values["avg"].as_f64().unwrap_or(0.0) - expected).abs() < 1e-9,
        "{run}"
    );
    let (_, results) = api
        .get("/v1/stat-jobs/avg-temp/results?device=air-1")
        .await?;
    assert_eq!(results["items"].as_array().map(Vec::len), Some(1));

    // Another tenant sees none of it.
    assert_eq!(other.get("/v1/devices/air-1").await?.0, 404);
    assert_eq!(other.get("/v1/devices/air-1/telemetry").await?.0, 404);
    assert_eq!(other.get(&format!("/v1/alarms/{open}")).await?.0, 404);
    assert_eq!(
        other
            .post(&format!("/v1/alarms/{open}/acknowledge"), &json!({}))
            .await?
            .0,
        404
    );
    let (_, theirs) = other.get("/v1/alarms").await?;
    assert_eq!(theirs["items"], json!([]));
    Ok(())
}

/// The only dead letter (`dead-letters/{day}/{id}-{kind}.json`).
fn find_dead_letter(dir: &Path) -> Result<Value, Error> {
    let mut files = Vec::new();
    for day in std::fs::read_dir(dir)? {
        for file in std::fs::read_dir(day?.path())? {
            files.push(file?.path());
        }
    }
    match files.as_slice() {
        [file] => Ok(serde_json::from_slice(&std::fs::read(file)?)?),
        other => Err(format!("expected one dead letter, found {other:?}").into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_works_end_to_end_on_the_embedded_broker() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let api = Api::new(running.http_addr).await?;
    let other = tenant_admin(&running, "other").await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    full_flow(&api, &other, broker, dir.path()).await?;
    dashboards_name_what_the_platform_exports(&api).await?;
    api_dashboards_read_routes_that_answer(&api).await?;
    the_post_deploy_smoke_test_passes(running.http_addr, broker).await?;

    // A restart loses nothing that was acknowledged.
    running.shutdown().await;
    let running = start_platform(dir.path(), None).await?;
    let api = Api::new(running.http_addr).await?;
    assert_eq!(temperatures(&api).await?.len(), 6);
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_works_end_to_end_on_mosquitto() -> TestResult {
    let mosquitto = Mosquitto::start().await?;
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), Some(&mosquitto.url())).await?;
    assert!(
        running.mqtt_addr.is_none(),
        "no embedded broker with an external one"
    );
    let api = Api::new(running.http_addr).await?;
    let other = tenant_admin(&running, "other").await?;
    full_flow(&api, &other, mosquitto.addr(), dir.path()).await?;
    running.shutdown().await;
    mosquitto.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_keeps_what_devices_send_while_the_platform_is_down() -> TestResult {
    let mosquitto = Mosquitto::start().await?;
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), Some(&mosquitto.url())).await?;
    let hook = WebhookReceiver::start().await?;
    provision(&Api::new(running.http_addr).await?, &hook.url).await?;
    running.shutdown().await;

    // The device publishes while the platform is stopped; Mosquitto holds the messages for
    // the platform's persistent session.
    let mut device = Device::connect(mosquitto.addr(), "air-1").await?;
    for temperature in [21.0, 22.0, 23.0, 24.0, 25.0] {
        device.publish(reading(temperature)).await?;
    }
    let running = start_platform(dir.path(), Some(&mosquitto.url())).await?;
    let api = Api::new(running.http_addr).await?;
    let stored = eventually("the queued messages", WAIT, || async {
        let values = temperatures(&api).await?;
        Ok((values.len() >= 5).then_some(values))
    })
    .await?;
    assert_eq!(stored, [21.0, 22.0, 23.0, 24.0, 25.0], "each exactly once");
    running.shutdown().await;
    mosquitto.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_requests_with_what_to_fix() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let api = Api::new(running.http_addr).await?;
    let hook = WebhookReceiver::start().await?;
    provision(&api, &hook.url).await?;

    // A script that does not compile: 422 with the line and column.
    let (status, problem) = api
        .put("/v1/products/air/script", &json!({ "source": "let x = ;" }))
        .await?;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["status"], 422);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 1")),
        "{problem}"
    );
    // The stored script is unchanged, and dry-run shows what a payload becomes.
    let (status, run) = api
        .post(
            "/v1/products/air/dry-run",
            &json!({ "payload": "{\"temp\": 21.5, \"hum\": 40}" }),
        )
        .await?;
    assert_eq!(status, 200, "{run}");
    let data = run["records"][0]["data"].as_array().ok_or("no data")?;
    assert!(
        data.contains(&json!({ "name": "temperature", "value": 21.5 })),
        "{run}"
    );
    let (status, problem) = api
        .post("/v1/products/air/dry-run", &json!({ "payload": "[1, 2]" }))
        .await?;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expected a JSON object")),
        "{problem}"
    );

    // Malformed bodies, unknown references, duplicates, bad ids, bad times.
    let (status, problem) = api.post("/v1/devices", &json!({ "uid": "d2" })).await?;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("missing field")),
        "{problem}"
    );
    let device = json!({ "uid": "d2", "identification_code": "SN-1", "product_id": "air", "department_id": "hq", "name": "x" });
    let (status, problem) = api.post("/v1/devices", &device).await?;
    assert_eq!(status, 409, "an identification code is unique: {problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/identification_code");
    let (status, _) = api
        .post("/v1/devices", &json!({ "uid": "d3", "identification_code": "SN-3", "product_id": "nope", "department_id": "hq", "name": "x" }))
        .await?;
    assert_eq!(status, 422);
    let (status, _) = api
        .post("/v1/devices", &json!({ "uid": "bad/uid", "identification_code": "SN-4", "product_id": "air", "department_id": "hq", "name": "x" }))
        .await?;
    assert_eq!(status, 400);
    // A device called "import" could never be read back (that path is the CSV import).
    let (status, problem) = api
        .post("/v1/devices", &json!({ "uid": "import", "identification_code": "SN-5", "product_id": "air", "department_id": "hq", "name": "x" }))
        .await?;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/uid", "{problem}");
    let (status, _) = api
        .post("/v1/products", &json!({ "id": "air", "name": "again" }))
        .await?;
    assert_eq!(status, 409);
    let (status, problem) = api
        .get("/v1/devices/air-1/telemetry?from=yesterday")
        .await?;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["pointer"], "/from");
    let (status, _) = api
        .post("/v1/stat-jobs", &json!({ "id": "j2", "name": "x", "cron": "every day", "lead_ms": 1, "signals": ["t"],
                                        "devices": { "type": "devices", "uids": [] }, "script": "1", "enabled": true }))
        .await?;
    assert_eq!(status, 422);
    let (status, problem) = api
        .post(
            "/v1/templates",
            &json!({ "id": "t2", "name": "x", "subject": "", "body": "${nope}" }),
        )
        .await?;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nope")),
        "{problem}"
    );
    let (status, _) = api.delete("/v1/products/air").await?;
    assert_eq!(status, 409, "a product with devices stays");
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/products", running.http_addr))
        .bearer_auth(api.token().unwrap_or_default())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_problems_are_reported_clearly() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut config = iot_local::config::Config {
        data_dir: dir.path().join("data"),
        ..iot_local::config::Config::default()
    };
    config.mqtt.port = 0;
    config.mqtt.tls_port = 0;
    config.http.port = taken.local_addr()?.port();
    let err = iot_local::platform::start(&config)
        .await
        .err()
        .ok_or("started on a taken port")?;
    assert!(matches!(err, StartError::Port { .. }), "{err}");
    assert!(err.to_string().contains("--http-port"), "{err}");

    // A broker address that is not one.
    config.http.port = 0;
    config.mqtt.bind = "everywhere".into();
    let err = iot_local::platform::start(&config)
        .await
        .err()
        .ok_or("started on no address")?;
    assert!(matches!(err, StartError::BindAddress(_)), "{err}");
    config.mqtt.bind = "127.0.0.1".into();

    // A data directory that cannot be created (a file is in the way).
    let file = dir.path().join("file");
    std::fs::write(&file, "x")?;
    config.http.port = 0;
    config.data_dir = file.join("data");
    let err = iot_local::platform::start(&config)
        .await
        .err()
        .ok_or("used a bad data dir")?;
    assert!(matches!(err, StartError::DataDir { .. }), "{err}");

    // An external broker nobody runs.
    config.data_dir = dir.path().join("data");
    config.mqtt.url = format!("mqtt://127.0.0.1:{}", free_port()?);
    let err = iot_local::platform::start(&config)
        .await
        .err()
        .ok_or("no broker, yet started")?;
    assert!(matches!(err, StartError::Broker { .. }), "{err}");
    Ok(())
}

/// Every panel of `infra/grafana/api` calls a route of this platform that answers, for the
/// device of the flow above, JSON where the panel looks: its root, and in it the fields its
/// columns name.
async fn api_dashboards_read_routes_that_answer(api: &Api) -> TestResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let (from, to) = ((now - 6 * 3_600_000).to_string(), now.to_string());
    let mut rows_checked = 0;
    for (path, target) in dashboard_targets("api")? {
        let fill = |text: &str| {
            text.replace("${device}", "air-1")
                .replace("${signal}", "temperature")
                .replace("${__from}", &from)
                .replace("${__to}", &to)
        };
        let url = fill(target["url"].as_str().ok_or("a target without url")?);
        let (status, answer) = api.get(&url).await?;
        assert_eq!(status, 200, "{}: GET {url}: {answer}", path.display());
        let root_selector = fill(target["root_selector"].as_str().unwrap_or_default());
        let root = root_selector
            .split('.')
            .filter(|s| !s.is_empty())
            .fold(&answer, |value, key| &value[key]);
        let rows = match root {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            Value::Object(_) => vec![root],
            other => return Err(format!("GET {url}: {root_selector} is {other}").into()),
        };
        for row in rows {
            for column in target["columns"].as_array().ok_or("no columns")? {
                let selector = column["selector"].as_str().unwrap_or_default();
                assert!(
                    row.get(selector).is_some(),
                    "GET {url}: no {selector} in {row}"
                );
            }
            rows_checked += 1;
        }
    }
    assert!(
        rows_checked >= 5,
        "the API dashboards found almost nothing: {rows_checked} rows"
    );
    Ok(())
}

/// `infra/smoke` against this platform, its device publishing over MQTT with its token.
async fn the_post_deploy_smoke_test_passes(http: SocketAddr, broker: SocketAddr) -> TestResult {
    let options = iot_smoke::SmokeOptions {
        api: format!("http://{http}"),
        tenant: Some("acme".into()),
        username: "admin".into(),
        password: iot_tests::ADMIN_PASSWORD.into(),
        department: "smoke".into(),
        via: iot_smoke::Via::Mqtt {
            host: broker.ip().to_string(),
            port: broker.port(),
        },
        step_timeout: Duration::from_secs(20),
        run: "local".into(),
    };
    let steps = iot_smoke::run(&options).await?;
    assert_eq!(steps.len(), 4, "{steps:?}");
    let api = Api::new(http).await?;
    let (status, _) = api.get("/v1/devices/smoke-local").await?;
    assert_eq!(status, 404, "the run deletes what it made");
    Ok(())
}

/// Every metric the Grafana dashboards in `infra/grafana` name is one the core or iot-local
/// defines, or one this platform exported during the flow above; and what the core counts on every message is
/// among them.
async fn dashboards_name_what_the_platform_exports(api: &Api) -> TestResult {
    let exported = api.metrics().await?;
    let mut named = std::collections::BTreeSet::new();
    for (_, target) in dashboard_targets("prometheus")? {
        let expr = target["expr"].as_str().ok_or("a target without expr")?;
        named.extend(metric_names(expr));
    }
    assert!(!named.is_empty(), "no dashboard names a metric");
    for name in &named {
        let base = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            iot_core::counters::ALL.contains(&base)
                || iot_local::counters::ALL.contains(&base)
                || exported.lines().any(|l| l.starts_with(name.as_str())),
            "a dashboard names {name}, which nothing exports"
        );
    }
    for name in [
        "ingest_messages_parsed_total",
        "ingest_latency_seconds_bucket",
    ] {
        assert!(named.contains(name), "the dashboards show no {name}");
        assert!(
            exported.contains(name),
            "{name} is not exported: {exported}"
        );
    }
    Ok(())
}

/// Every panel target of the dashboards in `infra/grafana/{folder}`, with its file.
fn dashboard_targets(folder: &str) -> Result<Vec<(std::path::PathBuf, Value)>, Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/grafana")
        .join(folder);
    let mut targets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        for panel in dashboard["panels"].as_array().ok_or("no panels")? {
            let panel_targets = panel["targets"]
                .as_array()
                .ok_or("a panel without targets")?;
            targets.extend(panel_targets.iter().map(|t| (path.clone(), t.clone())));
        }
    }
    Ok(targets)
}

/// The metric names in a PromQL expression: the words ending in `_total`, `_bucket`,
/// `_seconds`, `_sum` or `_count`.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            ["_total", "_bucket", "_seconds", "_sum", "_count"]
                .iter()
                .any(|s| w.ends_with(s))
        })
        .map(str::to_owned)
        .collect()
}
