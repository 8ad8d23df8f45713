//! The Lambda functions as deployed, on the AWS emulator: every sample in `events/` fed to its
//! real handler, and a device message followed from a real Mosquitto through the telemetry
//! rule's stand-in, ingest, the alarm queue, alarm, the SNS topic, the notify queue and notify,
//! to a webhook receiver. What the emulator cannot run (IoT topic rules, Lambda's SQS polling)
//! is played by `support/aws.rs`, in the shapes AWS uses.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use iot_core::repo::Catalog;
use iot_functions::alarm::AlarmFunction;
use iot_functions::backup::BackupFunction;
use iot_functions::ingest::IngestFunction;
use iot_functions::notify::NotifyFunction;
use iot_functions::stats::StatsFunction;
use iot_tests::aws::{CallRecorder, Queue, Stack, start_rule_bridge};
use iot_tests::{Device, Error, Mosquitto, TestResult, WebhookReceiver, eventually};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tower::ServiceExt as _;

const JSON_SENSOR: &str = include_str!("../examples/products/json-sensor.rhai");

fn sample(path: &str) -> Result<Value, Error> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Calls the API router as API Gateway's HTTP API would reach it through `lambda_http`.
async fn api_event(router: &Router, path: &str) -> Result<(u16, Value), Error> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    let request = lambda_http::request::from_str(&std::fs::read_to_string(file)?)?;
    let (parts, body) = request.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Body::empty(),
        lambda_http::Body::Text(text) => Body::from(text),
        lambda_http::Body::Binary(bytes) => Body::from(bytes),
        _ => Body::empty(),
    };
    call(router, Request::from_parts(parts, body)).await
}

/// What the API samples carry instead of an access token, which expires too soon to be kept in
/// a file.
const TOKEN_PLACEHOLDER: &str = "Bearer ${ACCESS_TOKEN}";

/// The API router with the samples' token placeholder replaced by a real access token, got by
/// logging in with the login sample (the stack's first administrator).
async fn signed_in(router: Router) -> Result<Router, Error> {
    let (status, tokens) = api_event(&router, "api/login.json").await?;
    assert_eq!(status, 200, "{tokens}");
    let bearer = format!(
        "Bearer {}",
        tokens["access_token"].as_str().unwrap_or_default()
    );
    let bearer = axum::http::HeaderValue::from_str(&bearer)?;
    Ok(router.layer(axum::middleware::map_request(
        move |mut request: Request<Body>| {
            let bearer = bearer.clone();
            async move {
                let headers = request.headers_mut();
                if headers
                    .get("authorization")
                    .is_some_and(|v| v == TOKEN_PLACEHOLDER)
                {
                    headers.insert("authorization", bearer);
                }
                request
            }
        },
    )))
}

async fn call(router: &Router, request: Request<Body>) -> Result<(u16, Value), Error> {
    let response = router.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn api(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), Error> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", TOKEN_PLACEHOLDER)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
    call(router, request).await
}

async fn create(router: &Router, path: &str, body: Value) -> TestResult {
    let (status, answer) = api(router, "POST", path, Some(&body)).await?;
    if status != 201 && status != 200 {
        return Err(format!("POST {path}: {status} {answer}").into());
    }
    Ok(())
}

/// The fixtures the samples name: product `air`, device `air-1`, rule `hot`, a webhook route,
/// and the statistics job `avg-temp`; created through the API function's router.
async fn provision(router: &Router, webhook: &str) -> TestResult {
    create(
        router,
        "/v1/products",
        json!({
            "id": "air", "name": "Indoor air", "script": { "source": JSON_SENSOR },
            "signals": [
                { "name": "temperature", "kind": "number", "range": { "min": -40, "max": 85 } },
                { "name": "humidity", "kind": "number" }, { "name": "co2", "kind": "number" }
            ]
        }),
    )
    .await?;
    create(router, "/v1/devices", json!({
        "uid": "air-1", "identification_code": "SN-1", "product_id": "air", "department_id": "hq", "name": "Lab"
    })).await?;
    create(router, "/v1/products/air/rules", json!({
        "id": "hot", "name": "Too hot", "enabled": true,
        "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
            "bands": [ { "level": "warning", "threshold": 30 }, { "level": "critical", "threshold": 40 } ],
            "deadband": 1 },
        "debounce": { "samples": 1, "for_ms": 0 }
    })).await?;
    create(router, "/v1/templates", json!({
        "id": "hook-json", "name": "JSON", "subject": "",
        "body": r#"{"alarm": "${alarm_id}", "event": "${event}", "level": "${level}", "value": "${value}"}"#
    })).await?;
    create(router, "/v1/channels", json!({
        "id": "hook", "name": "Hook", "kind": { "type": "webhook", "flavor": "generic", "url": webhook }
    })).await?;
    create(
        router,
        "/v1/notification-routes",
        json!({
            "id": "to-hook", "rule_ids": [], "min_level": "warning", "events": [],
            "template_id": "hook-json", "channel_id": "hook"
        }),
    )
    .await?;
    create(router, "/v1/stat-jobs", json!({
        "id": "avg-temp", "name": "Average temperature", "cron": "0 * * * *", "lead_ms": 3_600_000,
        "signals": ["temperature"], "devices": { "type": "product", "product_id": "air" },
        "script": "#{ avg: avg(series.temperature), n: count(series.temperature) }", "enabled": true
    })).await?;
    Ok(())
}

/// The next batch on `queue`, waiting for it a little.
async fn eventually_received(stack: &Stack, queue: &Queue) -> Result<Value, Error> {
    for _ in 0..20 {
        if let Some(batch) = stack.receive(queue).await? {
            return Ok(batch);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err("nothing arrived on the queue".into())
}

fn failures(response: &Value) -> usize {
    response["batchItemFailures"]
        .as_array()
        .map_or(usize::MAX, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_sample_runs_through_its_real_handler() -> TestResult {
    let metrics = iot_functions::Metrics::init("ingest");
    let stack = Stack::create().await?;
    let webhook = WebhookReceiver::start().await?;
    // Each function's calls go through its own recorder, to compare with its IAM actions.
    let mut calls = Vec::new();
    let mut configs = std::collections::HashMap::new();
    for name in ["ingest", "alarm", "notify", "stats", "api", "backup"] {
        let recorder = CallRecorder::start().await?;
        configs.insert(name, recorder.config().await);
        calls.push((name, recorder));
    }
    let sdk = |name: &str| {
        configs
            .get(name)
            .cloned()
            .ok_or_else(|| Error::from(format!("no recorder for {name}")))
    };
    let router =
        signed_in(iot_functions::api::router(&sdk("api")?, &stack.api_config()).await?).await?;
    provision(&router, &webhook.url).await?;
    let catalog = Catalog::new(iot_functions::stores::meta_store(
        &aws_sdk_dynamodb::Client::new(&stack.sdk),
        &stack.meta_table,
    ));

    // Ingest, invoked directly by the rule: stored once, a redelivery is recognised.
    let ingest = IngestFunction::new(&sdk("ingest")?, &stack.ingest_config()).await?;
    let direct = sample("ingest/rule-direct.json")?;
    assert_eq!(ingest.handle(direct.clone()).await?["stored"], 1);
    let again = ingest.handle(direct).await?;
    assert!(again["duplicate"].is_string(), "{again}");
    // What the functions count goes out as CloudWatch Embedded Metric Format.
    let mut emf = Vec::new();
    metrics.flush_to(&mut emf);
    let emf = String::from_utf8(emf)?;
    let document: Value = serde_json::from_str(emf.lines().next().unwrap_or_default())?;
    assert_eq!(
        document["_aws"]["CloudWatchMetrics"][0]["Namespace"], "IotPlatform",
        "{emf}"
    );
    assert_eq!(document["function"], "ingest", "{emf}");
    assert_eq!(document["ingest_records_total"], 1, "{emf}");
    // The parse counters and the latency are the core's, so Lambda reports them as well.
    assert_eq!(document["ingest_messages_parsed_total"], 1, "{emf}");
    assert!(
        document["ingest_latency_seconds"].is_array()
            || document["ingest_latency_seconds"].is_number(),
        "{emf}"
    );

    // Ingest from the rule's queue: the good message is stored, the poison one archived raw
    // with its reason, and neither is retried.
    let batch = ingest.handle(sample("ingest/sqs-from-rule.json")?).await?;
    assert_eq!(failures(&batch), 0, "{batch}");
    let letters = stack.dead_letters().await?;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (key, letter) = &letters[0];
    assert!(key.starts_with("dead-letters/2026-11-23/"), "{key}");
    assert_eq!(letter["message_id"], "6f1c1c2e-5d0b-4a53-9d43-0c1a8f0e7a03");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not JSON"),
        "{letter}"
    );

    // Presence: a late "connected" does not undo the later "disconnected".
    let disconnected = ingest
        .handle(sample("ingest/presence-disconnected.json")?)
        .await?;
    assert_eq!(disconnected["recorded"], true, "{disconnected}");
    let connected = ingest
        .handle(sample("ingest/presence-connected.json")?)
        .await?;
    assert_eq!(connected["recorded"], false, "{connected}");
    let presence = catalog
        .presence("air-1")
        .await?
        .ok_or("no presence recorded")?;
    assert!(!presence.online);
    assert_eq!(presence.reason.as_deref(), Some("CONNECTION_LOST"));
    let (status, shown) = api(&router, "GET", "/v1/devices/air-1/presence", None).await?;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["online"], false, "{shown}");
    assert_eq!(shown["since"], 1_795_435_320_000_i64, "{shown}");

    // Alarm: the request raises `hot` at critical and publishes it to the topic, which fans
    // out to the notify queue in SNS's envelope.
    let alarm = AlarmFunction::new(&sdk("alarm")?, &stack.alarm_config());
    let event: iot_functions::SqsEvent =
        serde_json::from_value(sample("alarm/sqs-alarm-requests.json")?)?;
    let response = serde_json::to_value(alarm.handle(event).await?)?;
    assert_eq!(failures(&response), 0, "{response}");
    let fanned_out = eventually(
        "the alarm event on the notify queue",
        Duration::from_secs(10),
        || {
            let stack = &stack;
            async move { stack.receive(&stack.notify_queue).await }
        },
    )
    .await?;
    let body: Value = serde_json::from_str(
        fanned_out["Records"][0]["body"]
            .as_str()
            .unwrap_or_default(),
    )?;
    assert_eq!(body["Type"], "Notification");
    let raised: Value = serde_json::from_str(body["Message"].as_str().unwrap_or_default())?;
    assert_eq!(
        (raised["kind"].as_str(), raised["level"].as_str()),
        (Some("raised"), Some("critical"))
    );
    let (status, alarms) = api(&router, "GET", "/v1/alarms?device=air-1", None).await?;
    assert_eq!(status, 200, "{alarms}");
    assert!(alarms.to_string().contains("\"hot\""), "{alarms}");

    // Notify: the sample's envelope becomes the webhook's JSON body.
    let notify = NotifyFunction::new(&sdk("notify")?, &stack.notify_config());
    // Alarm events are taken from the stack's topic only: the sample's envelope names the
    // deployed stack's, so it is given this stack's.
    let mut enveloped = sample("notify/sqs-sns-envelope.json")?;
    for record in enveloped["Records"].as_array_mut().ok_or("no records")? {
        let mut body: Value = serde_json::from_str(record["body"].as_str().ok_or("no body")?)?;
        body["TopicArn"] = json!(stack.alarm_events_topic_arn);
        record["body"] = json!(body.to_string());
    }
    let event: iot_functions::SqsEvent = serde_json::from_value(enveloped)?;
    let response = serde_json::to_value(notify.handle(event).await?)?;
    assert_eq!(failures(&response), 0, "{response}");
    let received = webhook.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["alarm"], "air-1:hot:1795435200000");
    assert_eq!(received[0]["level"], "critical");

    // Stats: the window is [12:05 - 1 h, 12:05] of the scheduled time: readings 45.5 and 21.
    let stats = StatsFunction::new(&sdk("stats")?, &stack.stats_config()).await?;
    let run = stats
        .handle(serde_json::from_value(sample(
            "stats/scheduler-input.json",
        )?)?)
        .await?;
    assert_eq!(run["results"], 1, "{run}");
    let (_, results) = api(
        &router,
        "GET",
        // The sample's window is fixed in time: name it, so the test does not age.
        "/v1/stat-jobs/avg-temp/results?device=air-1&from=2026-11-23T12:00:00Z&to=2026-11-23T13:00:00Z",
        None,
    )
    .await?;
    assert!(results.to_string().contains("33.25"), "{results}");

    // API Gateway HTTP API requests through lambda_http's conversion.
    assert_eq!(api_event(&router, "api/health.json").await?.0, 200);
    let (status, problem) = api_event(&router, "api/unauthenticated.json").await?;
    assert_eq!(status, 401, "{problem}");
    let (status, latest) = api_event(&router, "api/latest.json").await?;
    assert_eq!(status, 200, "{latest}");
    assert!(latest.to_string().contains("21"), "{latest}");
    let (status, dry_run) = api_event(&router, "api/dry-run.json").await?;
    assert_eq!(status, 200, "{dry_run}");
    assert!(dry_run.to_string().contains("22.5"), "{dry_run}");
    let (status, problem) = api_event(&router, "api/bad-request.json").await?;
    assert_eq!(status, 400, "{problem}");
    assert!(problem.to_string().contains("uid"), "{problem}");

    // HTTP ingest: the API queues the message in the telemetry rule's shape, and the ingest
    // function stores it as it stores MQTT messages.
    let (status, issued) = api(&router, "POST", "/v1/devices/air-1/token", None).await?;
    assert_eq!(status, 201, "{issued}");
    let device_token = issued["device_token"].as_str().unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let request = Request::builder()
        .method("POST")
        .uri("/v1/ingest")
        .header("authorization", format!("Device {device_token}"))
        .body(Body::from(format!(
            r#"{{"ts": {now}, "temp": 23.75, "hum": 40, "co2": 600}}"#
        )))?;
    let (status, receipt) = call(&router, request).await?;
    assert_eq!(
        (status, receipt["status"].as_str()),
        (202, Some("queued")),
        "{receipt}"
    );
    let batch = eventually_received(&stack, &stack.ingest_queue).await?;
    assert_eq!(failures(&ingest.handle(batch).await?), 0);
    let (_, latest) = api(&router, "GET", "/v1/devices/air-1/latest", None).await?;
    assert_eq!(latest["signals"]["temperature"]["value"], 23.75, "{latest}");

    // Telemetry export: a CSV file in the exports bucket, downloaded by a presigned URL.
    let (status, export) = api(
        &router,
        "POST",
        "/v1/devices/air-1/export",
        Some(&json!({ "format": "csv", "signals": ["temperature"] })),
    )
    .await?;
    assert_eq!(status, 201, "{export}");
    let request = Request::builder()
        .uri(export["download_url"].as_str().unwrap_or_default())
        .header("authorization", TOKEN_PLACEHOLDER)
        .body(Body::empty())?;
    let response = router.clone().oneshot(request).await?;
    assert_eq!(response.status().as_u16(), 307);
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let csv = reqwest::get(&location).await?.text().await?;
    assert!(csv.starts_with("time,time_ms,signal,value\n"), "{csv}");
    assert!(csv.contains(",temperature,23.75\n"), "{csv}");

    // Devices on AWS IoT Core: provisioning makes the thing and returns its certificate and
    // key once; desired configuration lands in the thing's shadow; a command is published;
    // revoking deletes the certificate and the thing.
    let (status, credentials) = api(&router, "POST", "/v1/devices/air-1/certificate", None).await?;
    assert_eq!(status, 201, "{credentials}");
    assert!(
        credentials["certificate_pem"]
            .as_str()
            .unwrap_or_default()
            .contains("BEGIN CERTIFICATE"),
        "{credentials}"
    );
    assert!(
        credentials["private_key_pem"]
            .as_str()
            .unwrap_or_default()
            .contains("PRIVATE KEY"),
        "{credentials}"
    );
    let (status, _) = api(&router, "POST", "/v1/devices/air-1/certificate", None).await?;
    assert_eq!(status, 409);
    let iot = aws_sdk_iot::Client::new(&stack.sdk);
    let principals = iot
        .list_thing_principals()
        .thing_name("air-1")
        .send()
        .await?;
    assert_eq!(principals.principals().len(), 1);
    let (status, shadow) = api(
        &router,
        "PUT",
        "/v1/devices/air-1/shadow/desired",
        Some(&json!({ "interval_s": 30 })),
    )
    .await?;
    assert_eq!(status, 200, "{shadow}");
    assert_eq!(shadow["state"]["desired"]["interval_s"], 30, "{shadow}");
    let (status, sent) = api(
        &router,
        "POST",
        "/v1/devices/air-1/commands",
        Some(&json!({ "name": "reboot" })),
    )
    .await?;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["topic"], "things/air-1/down/command");
    let (status, _) = api(&router, "DELETE", "/v1/devices/air-1/certificate", None).await?;
    assert_eq!(status, 204);
    assert!(
        iot.describe_thing()
            .thing_name("air-1")
            .send()
            .await
            .is_err()
    );

    // Tenants on AWS: the platform operator (the stack's first administrator) creates one;
    // suspending it attaches the stack's deny-all policy to its thing group, so its devices'
    // certificates stop working at IoT Core; resuming detaches it; deleting purges it.
    let tenant = format!("globex{}", std::process::id());
    let (status, created) = api(
        &router,
        "POST",
        "/v1/platform/tenants",
        Some(
            &json!({ "id": tenant, "name": "Globex", "admin_user": "gina",
                      "admin_password": "globex admin password" }),
        ),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let group_policies = || async {
        let arn = iot
            .describe_thing_group()
            .thing_group_name(format!("tenant-{tenant}"))
            .send()
            .await?
            .thing_group_arn()
            .unwrap_or_default()
            .to_owned();
        let attached = iot.list_attached_policies().target(arn).send().await?;
        Ok::<_, Error>(
            attached
                .policies()
                .iter()
                .filter_map(|p| p.policy_name().map(str::to_owned))
                .collect::<Vec<_>>(),
        )
    };
    let path = format!("/v1/platform/tenants/{tenant}");
    let (status, suspended) = api(
        &router,
        "POST",
        &format!("{path}/suspend"),
        Some(&json!({ "reason": "unpaid invoice" })),
    )
    .await?;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(suspended["status"], "suspended", "{suspended}");
    assert_eq!(
        group_policies().await?,
        std::slice::from_ref(&stack.suspended_policy_name)
    );
    let (status, resumed) =
        api(&router, "POST", &format!("{path}/resume"), Some(&json!({}))).await?;
    assert_eq!(status, 200, "{resumed}");
    assert!(group_policies().await?.is_empty());
    let (status, purged) = api(&router, "DELETE", &path, None).await?;
    assert_eq!(status, 200, "{purged}");
    assert!(purged["items_deleted"].as_u64() > Some(0), "{purged}");
    // DynamoDB telemetry of a deleted tenant leaves by its TTL, so no count is claimed.
    assert!(purged.get("points_deleted").is_none(), "{purged}");

    // Backup: an export of the metadata table is started into the export bucket.
    let backup = BackupFunction::new(&sdk("backup")?, stack.backup_config());
    let exported = backup.handle(sample("backup/schedule.json")?).await?;
    let export = &exported["exports"][0];
    assert!(
        export["export_arn"]
            .as_str()
            .unwrap_or_default()
            .starts_with("arn:aws:dynamodb:"),
        "{exported}"
    );
    assert!(
        export["prefix"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("dynamodb/{}/", stack.meta_table))
    );

    // Every call each function made is among the IAM actions it declares, which the template
    // test holds its policy to: so the deployed policy lets it do what it just did.
    for (name, recorder) in &calls {
        let declared: &[&str] = match *name {
            "ingest" => iot_functions::ingest::IAM_ACTIONS,
            "alarm" => iot_functions::alarm::IAM_ACTIONS,
            "notify" => iot_functions::notify::IAM_ACTIONS,
            "stats" => iot_functions::stats::IAM_ACTIONS,
            "api" => iot_functions::api::IAM_ACTIONS,
            _ => iot_functions::backup::IAM_ACTIONS,
        };
        let used = recorder.actions();
        assert!(
            !used.is_empty(),
            "{name} made no AWS call through its recorder"
        );
        let undeclared: Vec<&String> = used
            .iter()
            .filter(|a| !declared.contains(&a.as_str()))
            .collect();
        assert!(
            undeclared.is_empty(),
            "{name} called {undeclared:?}, which its IAM_ACTIONS do not list"
        );
    }
    Ok(())
}

/// Takes one batch from `queue` and runs `handle` on it as Lambda would; returns how many
/// messages it took.
macro_rules! pump {
    ($stack:expr, $queue:expr, $handle:expr) => {{
        match $stack.receive(&$queue).await? {
            None => 0,
            Some(event) => {
                let count = event["Records"].as_array().map_or(0, Vec::len);
                let response = $handle(event.clone()).await?;
                let failed = $stack.settle(&$queue, &event, &response).await?;
                assert!(failed.is_empty(), "failed: {failed:?} in {response}");
                count
            }
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_message_reaches_a_webhook_through_the_deployed_functions() -> TestResult {
    let stack = Stack::create().await?;
    let webhook = WebhookReceiver::start().await?;
    let mosquitto = Mosquitto::start().await?;
    let router =
        signed_in(iot_functions::api::router(&stack.sdk, &stack.api_config()).await?).await?;
    provision(&router, &webhook.url).await?;
    let _bridge = start_rule_bridge(mosquitto.addr(), &stack.sdk, &stack.ingest_queue.url).await?;

    let ingest = IngestFunction::new(&stack.sdk, &stack.ingest_config()).await?;
    let alarm = AlarmFunction::new(&stack.sdk, &stack.alarm_config());
    let notify = NotifyFunction::new(&stack.sdk, &stack.notify_config());

    let mut device = Device::connect(mosquitto.addr(), "air-1").await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    device
        .publish(format!(
            r#"{{"ts": {now}, "temp": 41.5, "hum": 40, "co2": 600}}"#
        ))
        .await?;
    device.publish("garbage, not JSON").await?;

    let (mut ingested, mut evaluated, mut notified) = (0, 0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while webhook.received().is_empty() || ingested < 2 {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "the flow did not finish within 30 s (ingested {ingested}, evaluated {evaluated}, notified {notified})"
            )
            .into());
        }
        ingested += pump!(stack, stack.ingest_queue, |e| ingest.handle(e));
        evaluated += pump!(stack, stack.alarm_queue, |e: Value| async {
            let event: iot_functions::SqsEvent = serde_json::from_value(e)?;
            Ok::<_, Error>(serde_json::to_value(alarm.handle(event).await?)?)
        });
        notified += pump!(stack, stack.notify_queue, |e: Value| async {
            let event: iot_functions::SqsEvent = serde_json::from_value(e)?;
            Ok::<_, Error>(serde_json::to_value(notify.handle(event).await?)?)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both device messages went through ingest; only the good one asked for evaluation.
    assert_eq!((ingested, evaluated, notified), (2, 1, 1));
    let hook = &webhook.received()[0];
    assert_eq!(
        (hook["event"].as_str(), hook["level"].as_str()),
        (Some("raised"), Some("critical")),
        "{hook}"
    );
    assert!(
        hook["alarm"]
            .as_str()
            .unwrap_or_default()
            .starts_with("air-1:hot:"),
        "{hook}"
    );

    let (_, latest) = api(
        &router,
        "GET",
        "/v1/devices/air-1/latest?signal=temperature",
        None,
    )
    .await?;
    assert!(latest.to_string().contains("41.5"), "{latest}");
    let (_, alarms) = api(&router, "GET", "/v1/alarms?status=open", None).await?;
    assert!(alarms.to_string().contains("air-1:hot:"), "{alarms}");
    let letters = stack.dead_letters().await?;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["topic"], "things/air-1/up/telemetry");
    assert!(
        letters[0].1["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not JSON"),
        "{letters:?}"
    );
    mosquitto.stop().await;
    Ok(())
}

/// The API's signing-key secret, rotated as docs/access.md says: a new key put first, the old
/// one kept. A fresh container (a cold start) signs with the new key and still accepts tokens
/// of the old one; once the old key is dropped, its tokens are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_secret_keeps_tokens_of_the_previous_key() -> TestResult {
    let stack = Stack::create().await?;
    let before = iot_functions::api::router(&stack.sdk, &stack.api_config()).await?;
    let (status, tokens) = api_event(&before, "api/login.json").await?;
    assert_eq!(status, 200, "{tokens}");
    let old_token = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let devices = |router: &Router, token: &str| {
        let request = Request::builder()
            .uri("/v1/devices")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty());
        let router = router.clone();
        async move { call(&router, request?).await }
    };

    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let old_key = secrets
        .get_secret_value()
        .secret_id(&stack.signing_key_secret_arn)
        .send()
        .await?
        .secret_string
        .ok_or("no signing key")?;
    let new_key = iot_core::auth::secret::random_token(48);
    let put = |value: String| {
        secrets
            .put_secret_value()
            .secret_id(&stack.signing_key_secret_arn)
            .secret_string(value)
            .send()
    };
    put(format!("{new_key}\n{old_key}")).await?;
    let after = iot_functions::api::router(&stack.sdk, &stack.api_config()).await?;
    assert_eq!(devices(&after, &old_token).await?.0, 200);
    let (_, tokens) = api_event(&after, "api/login.json").await?;
    let new_token = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let kid = |token: &str| jsonwebtoken::decode_header(token).map(|h| h.kid);
    assert_ne!(kid(&new_token)?, kid(&old_token)?);
    assert_eq!(devices(&after, &new_token).await?.0, 200);

    put(new_key).await?;
    let dropped = iot_functions::api::router(&stack.sdk, &stack.api_config()).await?;
    assert_eq!(devices(&dropped, &old_token).await?.0, 401);
    assert_eq!(devices(&dropped, &new_token).await?.0, 200);
    Ok(())
}

/// `infra/smoke`, the post-deploy check, against the functions on the emulator: the API
/// function's router served over HTTP as API Gateway would, the ingest, alarm and notify
/// functions fed by their queues as the event source mappings would. The device publishes
/// through `POST /v1/ingest`, since the emulator has no IoT rules engine to carry a message
/// from the IoT data endpoint (`--via iot-data` on a real stack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_deploy_smoke_test_passes_against_the_functions() -> TestResult {
    let stack = Stack::create().await?;
    let router = iot_functions::api::router(&stack.sdk, &stack.api_config()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let ingest = IngestFunction::new(&stack.sdk, &stack.ingest_config()).await?;
    let alarm = AlarmFunction::new(&stack.sdk, &stack.alarm_config());
    let notify = NotifyFunction::new(&stack.sdk, &stack.notify_config());
    let functions = async {
        let failed: Result<(), Error> = async {
            loop {
                pump!(stack, stack.ingest_queue, |e| ingest.handle(e));
                pump!(stack, stack.alarm_queue, |e: Value| async {
                    let event: iot_functions::SqsEvent = serde_json::from_value(e)?;
                    Ok::<_, Error>(serde_json::to_value(alarm.handle(event).await?)?)
                });
                pump!(stack, stack.notify_queue, |e: Value| async {
                    let event: iot_functions::SqsEvent = serde_json::from_value(e)?;
                    Ok::<_, Error>(serde_json::to_value(notify.handle(event).await?)?)
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        .await;
        failed
    };
    let options = iot_smoke::SmokeOptions {
        api,
        tenant: Some("acme".into()),
        username: "admin".into(),
        password: iot_tests::aws::STACK_ADMIN_PASSWORD.into(),
        department: "smoke".into(),
        via: iot_smoke::Via::Http,
        step_timeout: Duration::from_secs(30),
        run: "emulator".into(),
    };
    let steps = tokio::select! {
        steps = iot_smoke::run(&options) => steps?,
        failed = functions => return Err(format!("a function failed: {failed:?}").into()),
    };
    let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names[3].contains("cleared"), "{names:?}");
    // The run deleted what it made.
    let catalog = Catalog::new(iot_functions::stores::meta_store(
        &aws_sdk_dynamodb::Client::new(&stack.sdk),
        &stack.meta_table,
    ));
    assert!(catalog.device("smoke-emulator").await?.is_none());
    Ok(())
}

/// Firmware on AWS, as far as the emulator runs it: an image uploaded to its presigned S3
/// URL and checked, a rollout created as an IoT job, and the IoT Jobs events (fed in the shape
/// IoT Core publishes them; the emulator runs no executions and publishes no events) recording
/// a device's success and a rollout cancelled by its abort rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_rollouts_run_as_iot_jobs_and_their_events_are_recorded() -> TestResult {
    use sha2::Digest;
    let stack = Stack::create().await?;
    let router =
        signed_in(iot_functions::api::router(&stack.sdk, &stack.api_config()).await?).await?;
    provision(&router, "http://127.0.0.1:9/unused").await?;
    // Things are the emulator's, shared by the tests: this one's device has a name of its own.
    let uid = format!("pump-{}", fastrand::u32(..));
    create(
        &router,
        "/v1/devices",
        json!({ "uid": uid, "identification_code": uid,
                                            "product_id": "air", "department_id": "hq" }),
    )
    .await?;
    let (status, _) = api(
        &router,
        "POST",
        &format!("/v1/devices/{uid}/certificate"),
        None,
    )
    .await?;
    assert_eq!(status, 201, "{uid} gets its thing");
    let of_device = |mut event: Value| {
        event["thingArn"] = json!(format!("arn:aws:iot:us-east-1:123456789012:thing/{uid}"));
        event
    };

    let image = b"air firmware 2.0.0".repeat(100);
    for (id, version) in [("fw-2", "2.0.0"), ("fw-3", "3.0.0")] {
        let declared = json!({ "id": id, "product_id": "air", "version": version,
                               "size": image.len(), "sha256": hex::encode(sha2::Sha256::digest(&image)) });
        let (status, created) = api(&router, "POST", "/v1/firmware", Some(&declared)).await?;
        assert_eq!(status, 201, "{created}");
        let url = created["upload"]["url"].as_str().ok_or("no upload url")?;
        assert!(url.contains("X-Amz-Signature"), "a presigned S3 PUT: {url}");
        let put = reqwest::Client::new()
            .put(url)
            .header("content-type", "application/octet-stream")
            .body(image.clone())
            .send()
            .await?;
        assert!(put.status().is_success(), "{}", put.status());
        let (status, ready) =
            api(&router, "POST", &format!("/v1/firmware/{id}/check"), None).await?;
        assert_eq!(
            (status, &ready["status"]),
            (200, &json!("ready")),
            "{ready}"
        );
    }

    let rollout = |id: &str, package: &str| {
        json!({ "id": id, "package_id": package, "target": { "type": "devices", "uids": [uid.clone()] },
                "rate": { "max_per_minute": 10 }, "in_progress_timeout_minutes": 30,
                "abort": [{ "failure": "ALL", "threshold_percent": 50, "min_executions": 1 }] })
    };
    let (status, started) = api(
        &router,
        "POST",
        "/v1/rollouts",
        Some(&rollout("spring", "fw-2")),
    )
    .await?;
    assert_eq!(status, 201, "{started}");
    let iot = aws_sdk_iot::Client::new(&stack.sdk);
    let job = iot
        .describe_job()
        .job_id(iot_core::ota::job_id("acme", "spring"))
        .send()
        .await?;
    let config = job.job().and_then(|j| j.job_executions_rollout_config());
    assert_eq!(config.and_then(|c| c.maximum_per_minute()), Some(10));

    let ingest = IngestFunction::new(&stack.sdk, &stack.ingest_config()).await?;
    let succeeded = of_device(sample("ingest/job-execution-succeeded.json")?);
    let recorded = ingest.handle(succeeded.clone()).await?;
    assert_eq!(recorded["status"], "SUCCEEDED", "{recorded}");
    let (_, firmware) = api(&router, "GET", &format!("/v1/devices/{uid}/firmware"), None).await?;
    assert_eq!(firmware["installed"]["version"], "2.0.0", "{firmware}");
    assert_eq!(
        firmware["executions"][0]["status_details"]["reason"], "installed",
        "{firmware}"
    );
    // Through the queue, as the rule delivers it, a repeat changes nothing.
    let batch = json!({ "Records": [{ "messageId": "m-1", "body": succeeded.to_string(),
                                      "eventSource": "aws:sqs" }] });
    let answer = ingest.handle(batch).await?;
    assert_eq!(failures(&answer), 0, "{answer}");
    let (_, executions) = api(&router, "GET", "/v1/rollouts/spring/executions", None).await?;
    let history = executions["items"][0]["history"].as_array().map(Vec::len);
    assert_eq!(history, Some(2), "queued, succeeded: {executions}");

    // A rollout IoT Jobs cancels by its abort rules ends as aborted.
    let (status, _) = api(
        &router,
        "POST",
        "/v1/rollouts",
        Some(&rollout("risky", "fw-3")),
    )
    .await?;
    assert_eq!(status, 201);
    let ended = ingest.handle(sample("ingest/job-canceled.json")?).await?;
    assert_eq!(ended["status"], "aborted", "{ended}");
    let (_, risky) = api(&router, "GET", "/v1/rollouts/risky", None).await?;
    assert_eq!(risky["status"], "aborted", "{risky}");
    // An event of a job that is no rollout is ignored, not retried.
    let mut stray = sample("ingest/job-canceled.json")?;
    stray["jobId"] = json!("someone-elses-job");
    assert!(ingest.handle(stray).await?["ignored"].is_string());
    Ok(())
}
