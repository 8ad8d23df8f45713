//! The use cases wired to the in-memory ports: ingest -> alarm -> notify, and statistics.

use std::sync::Arc;

use iot_core::alarm::{
    AlarmEvaluator, AlarmRule, AlarmTransition, Band, Condition, Debounce, Direction, Level,
    TransitionKind,
};
use iot_core::model::{Device, ParserScript, Product, SignalDef, Value};
use iot_core::notify::{Channel, ChannelKind, NotificationRoute, NotificationTemplate};
use iot_core::parse::Parser;
use iot_core::ports::memory::{
    MemoryBlobs, MemoryEventBus, MemoryMetaStore, MemoryQueue, MemoryTelemetry, RecordingNotifier,
};
use iot_core::ports::{BlobStore, Clock, DeliveryError, ManualClock, TelemetryStore};
use iot_core::repo::Catalog;
use iot_core::stats::{DeviceScope, StatJob, StatsEngine};
use iot_core::time::{HOUR, MINUTE};
use iot_core::usecase::{
    AlarmRequest, AlarmService, InboundMessage, Ingest, IngestOutcome, NotifyService,
    NotifyServiceError, StatsService, StatsServiceError,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const T0: i64 = 1_795_000_000_000;
const JSON_SENSOR: &str = include_str!("../../../examples/products/json-sensor.rhai");

struct Platform {
    clock: Arc<ManualClock>,
    catalog: Catalog,
    telemetry: Arc<MemoryTelemetry>,
    alarm_queue: Arc<MemoryQueue>,
    bus: Arc<MemoryEventBus>,
    blobs: Arc<MemoryBlobs>,
    notifier: Arc<RecordingNotifier>,
    ingest: Ingest,
    alarms: AlarmService,
    notify: NotifyService,
    stats: StatsService,
}

fn device(uid: &str, code: &str, tenant: &str) -> Device {
    Device {
        uid: uid.into(),
        identification_code: code.into(),
        tenant_id: tenant.into(),
        product_id: "air".into(),
        department_id: "ops".into(),
        name: format!("Sensor {uid}"),
        data_since: 0,
        gateway_uid: None,
    }
}

impl Platform {
    async fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let clock = Arc::new(ManualClock::new(T0));
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::with_clock(clock.clone())));
        let telemetry = Arc::new(MemoryTelemetry::default());
        let alarm_queue = Arc::new(MemoryQueue::default());
        let bus = Arc::new(MemoryEventBus::default());
        let blobs = Arc::new(MemoryBlobs::default());
        let notifier = Arc::new(RecordingNotifier::default());

        catalog
            .put_product(&Product {
                id: "air".into(),
                tenant_id: "acme".into(),
                name: "Indoor air".into(),
                script: Some(ParserScript {
                    source: JSON_SENSOR.into(),
                    version: 1,
                }),
                signals: vec![
                    SignalDef::number("temperature")
                        .with_unit("°C")
                        .with_range(-40.0, 85.0),
                    SignalDef::number("humidity")
                        .with_unit("%")
                        .with_range(0.0, 100.0),
                    SignalDef::number("co2").with_unit("ppm"),
                ],
            })
            .await?;
        catalog.put_device(&device("air-1", "SN-1", "acme")).await?;
        catalog
            .put_rule(&AlarmRule {
                id: "hot".into(),
                tenant_id: "acme".into(),
                product_id: "air".into(),
                name: "Too hot".into(),
                enabled: true,
                condition: Condition::Threshold {
                    signal: "temperature".into(),
                    direction: Direction::Above,
                    bands: vec![
                        Band {
                            level: Level::Warning,
                            threshold: 30.0,
                        },
                        Band {
                            level: Level::Critical,
                            threshold: 40.0,
                        },
                    ],
                    deadband: 1.0,
                },
                debounce: Debounce::default(),
            })
            .await?;
        catalog
            .put_template(&NotificationTemplate {
                id: "sms".into(),
                tenant_id: "acme".into(),
                name: "SMS".into(),
                subject: String::new(),
                body: "${device_name}: ${rule_name} ${event} (${level}) ${signal}=${value}".into(),
            })
            .await?;
        catalog
            .put_channel(&Channel {
                id: "oncall".into(),
                tenant_id: "acme".into(),
                name: "On call".into(),
                kind: ChannelKind::Sms {
                    phone_numbers: vec!["+15550100".into()],
                },
            })
            .await?;
        catalog
            .put_route(&NotificationRoute {
                id: "r1".into(),
                tenant_id: "acme".into(),
                rule_ids: vec![],
                min_level: Level::Warning,
                events: vec![],
                template_id: "sms".into(),
                channel_id: "oncall".into(),
            })
            .await?;

        let ingest = Ingest::new(
            catalog.clone(),
            telemetry.clone(),
            alarm_queue.clone(),
            blobs.clone(),
            clock.clone(),
            Parser::default(),
        );
        let alarms = AlarmService::new(
            catalog.clone(),
            bus.clone(),
            clock.clone(),
            AlarmEvaluator::default(),
        );
        let notify = NotifyService::new(catalog.clone(), notifier.clone(), clock.clone());
        let stats = StatsService::new(
            catalog.clone(),
            telemetry.clone(),
            clock.clone(),
            StatsEngine::default(),
        );
        Ok(Self {
            clock,
            catalog,
            telemetry,
            alarm_queue,
            bus,
            blobs,
            notifier,
            ingest,
            alarms,
            notify,
            stats,
        })
    }

    fn message(&self, id: &str, topic: &str, payload: &[u8]) -> InboundMessage {
        InboundMessage {
            message_id: id.into(),
            topic: topic.into(),
            payload: payload.to_vec(),
            received_at: self.clock.now_ms(),
        }
    }

    /// Publishes a temperature reading and runs it through every stage; returns the
    /// transitions that came out of the alarm stage.
    async fn reading(
        &self,
        id: &str,
        temperature: f64,
    ) -> Result<Vec<AlarmTransition>, Box<dyn std::error::Error>> {
        self.clock.advance(MINUTE);
        let payload = format!(r#"{{"temp": {temperature}, "hum": 40, "co2": 500}}"#);
        let outcome = self
            .ingest
            .ingest(&self.message(id, "things/air-1/up/telemetry", payload.as_bytes()))
            .await?;
        assert!(
            matches!(outcome, IngestOutcome::Stored { records: 1, .. }),
            "{outcome:?}"
        );
        let mut transitions = Vec::new();
        for message in self.alarm_queue.drain() {
            let request: AlarmRequest = serde_json::from_str(&message.body)?;
            transitions.extend(self.alarms.evaluate(&request).await?.transitions);
        }
        for event in self.bus.drain() {
            let transition: AlarmTransition = serde_json::from_str(&event.body)?;
            self.notify.notify(&transition).await?;
        }
        Ok(transitions)
    }
}

#[tokio::test]
async fn a_reading_flows_from_payload_to_sms() -> TestResult {
    let p = Platform::new().await?;
    assert!(p.reading("m1", 22.0).await?.is_empty());
    let raised = p.reading("m2", 31.5).await?;
    assert_eq!(raised.len(), 1);
    assert_eq!(
        (raised[0].kind, raised[0].level),
        (TransitionKind::Raised, Some(Level::Warning))
    );

    // Stored: both readings, three signals each.
    assert_eq!(p.telemetry.points().len(), 6);
    let latest = p.telemetry.latest("air-1", &["temperature".into()]).await?;
    assert_eq!(latest[0].value, Value::Number(31.5));

    // Still hot: no repeat. Hotter: one escalation. Back to normal: one clear.
    assert!(p.reading("m3", 32.0).await?.is_empty());
    assert_eq!(
        p.reading("m4", 41.0).await?[0].kind,
        TransitionKind::Escalated
    );
    assert_eq!(
        p.reading("m5", 20.0).await?[0].kind,
        TransitionKind::Cleared
    );

    let texts: Vec<String> = p.notifier.delivered().into_iter().map(|d| d.body).collect();
    assert_eq!(
        texts,
        [
            "Sensor air-1: Too hot raised (warning) temperature=31.5",
            "Sensor air-1: Too hot escalated (critical) temperature=41",
            "Sensor air-1: Too hot cleared () temperature=20",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn acknowledging_publishes_once_and_persists() -> TestResult {
    let p = Platform::new().await?;
    p.reading("m1", 35.0).await?;
    let ack = p
        .alarms
        .acknowledge("acme", "air-1", "hot", "alice")
        .await?;
    assert_eq!(ack.kind, TransitionKind::Acknowledged);
    let events = p.bus.drain();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].attributes.get("event").map(String::as_str),
        Some("acknowledged")
    );
    let state = p.catalog.alarm_state("air-1").await?;
    assert!(state.outbox.is_empty(), "published events leave the outbox");
    assert_eq!(
        state
            .active("hot")
            .and_then(|a| a.acknowledged.as_ref())
            .map(|a| a.by.as_str()),
        Some("alice")
    );
    assert!(
        p.alarms
            .acknowledge("acme", "air-1", "hot", "bob")
            .await
            .is_err()
    );
    assert!(
        p.alarms
            .acknowledge("other-tenant", "air-1", "hot", "eve")
            .await
            .is_err()
    );
    Ok(())
}

async fn dead_letter(
    p: &Platform,
    key: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let bytes = p.blobs.get(key).await?.ok_or("dead letter missing")?;
    Ok(serde_json::from_slice(&bytes)?)
}

#[tokio::test]
async fn bad_payloads_are_archived_with_the_reason_not_lost() -> TestResult {
    let p = Platform::new().await?;
    let cases = [
        (
            "bad-json",
            "things/air-1/up/telemetry",
            &b"\x00\x01garbage"[..],
            "script_runtime",
            "payload is not JSON",
        ),
        (
            "ghost",
            "things/ghost/up/telemetry",
            &b"{}"[..],
            "unknown_device",
            "device \"ghost\" is not registered",
        ),
        (
            "topic",
            "devices/air-1",
            &b"{}"[..],
            "topic",
            "is not things/{device}/up/...",
        ),
    ];
    for (id, topic, payload, kind, reason) in cases {
        let outcome = p.ingest.ingest(&p.message(id, topic, payload)).await?;
        let IngestOutcome::DeadLettered { key, reason: why } = outcome else {
            panic!("{id}: expected a dead letter, got {outcome:?}");
        };
        assert!(why.contains(reason), "{id}: {why}");
        let letter = dead_letter(&p, &key).await?;
        assert_eq!(letter["kind"], kind);
        assert_eq!(letter["topic"], topic);
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(letter["payload_base64"].as_str().unwrap_or_default())?;
        assert_eq!(raw, payload, "{id}: the raw payload is kept byte for byte");
    }
    assert_eq!(p.blobs.list("dead-letters/").await?.len(), 3);
    assert!(p.telemetry.points().is_empty());
    assert!(p.alarm_queue.drain().is_empty());
    Ok(())
}

#[tokio::test]
async fn records_the_store_refuses_are_archived_and_the_rest_kept() -> TestResult {
    let p = Platform::new().await?;
    p.telemetry.reject_before(Some(T0 - HOUR));
    let old = T0 / 1000 - 2 * 3600; // epoch seconds, two hours ago
    let payload = format!(r#"{{"ts": {old}, "temp": 20, "hum": 40, "co2": 400}}"#);
    let outcome = p
        .ingest
        .ingest(&p.message("late", "things/air-1/up/telemetry", payload.as_bytes()))
        .await?;
    let IngestOutcome::Stored {
        records: 0,
        partial_dead_letter: Some(key),
        ..
    } = outcome
    else {
        panic!("expected the record to be refused, got {outcome:?}");
    };
    let letter = dead_letter(&p, &key).await?;
    assert!(
        letter["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("retention window")
    );
    assert_eq!(letter["records"][0]["device_uid"], "air-1");
    assert!(
        p.alarm_queue.drain().is_empty(),
        "refused records are not evaluated"
    );
    Ok(())
}

#[tokio::test]
async fn gateways_report_for_their_tenants_devices_only() -> TestResult {
    let p = Platform::new().await?;
    let attached = |d: Device| Device {
        gateway_uid: Some("air-1".into()),
        ..d
    };
    p.catalog
        .put_device(&attached(device("air-2", "SN-2", "acme")))
        .await?;
    p.catalog
        .put_device(&attached(device("rival-1", "SN-9", "rival")))
        .await?;
    // A device of the tenant that the gateway does not report for.
    p.catalog
        .put_device(&device("air-3", "SN-3", "acme"))
        .await?;
    p.catalog
        .put_product(&Product {
            id: "air".into(),
            tenant_id: "acme".into(),
            name: "gateway".into(),
            script: Some(ParserScript {
                source:
                    r#"json.map(|n| #{ identification_code: n.sn, data: #{ temperature: n.t } })"#
                        .into(),
                version: 2,
            }),
            signals: vec![],
        })
        .await?;
    // A fresh ingest, so the product cache does not hold the old script.
    let ingest = Ingest::new(
        p.catalog.clone(),
        p.telemetry.clone(),
        p.alarm_queue.clone(),
        p.blobs.clone(),
        p.clock.clone(),
        Parser::default(),
    );
    let payload = br#"[{"sn": "SN-1", "t": 20}, {"sn": "SN-2", "t": 21}, {"sn": "SN-9", "t": 99}, {"sn": "SN-404", "t": 0}, {"sn": "SN-3", "t": 50}]"#;
    let outcome = ingest
        .ingest(&p.message("gw", "things/air-1/up/batch", payload))
        .await?;
    let IngestOutcome::Stored {
        records: 2,
        partial_dead_letter: Some(key),
        ..
    } = outcome
    else {
        panic!("expected two stored records, got {outcome:?}");
    };
    let devices: Vec<String> = p
        .telemetry
        .points()
        .into_iter()
        .map(|pt| pt.device_uid)
        .collect();
    assert_eq!(devices, ["air-1", "air-2"]);
    let reason = dead_letter(&p, &key).await?["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("\"SN-9\" is not a device of tenant \"acme\""),
        "{reason}"
    );
    assert!(
        reason.contains("\"SN-3\""),
        "not attached to the gateway: {reason}"
    );
    assert!(reason.contains("\"SN-404\""), "{reason}");
    let requests: Vec<String> = p.alarm_queue.drain().into_iter().map(|m| m.id).collect();
    assert_eq!(requests, ["gw:air-1", "gw:air-2"]);
    Ok(())
}

#[tokio::test]
async fn infrastructure_failures_are_errors_so_the_message_is_retried() -> TestResult {
    let p = Platform::new().await?;
    p.telemetry.set_unavailable(true);
    let result = p
        .ingest
        .ingest(&p.message("m", "things/air-1/up/t", br#"{"temp": 1}"#))
        .await;
    assert!(result.is_err());
    assert!(
        p.blobs.list("").await?.is_empty(),
        "an outage is not a bad payload"
    );
    Ok(())
}

#[tokio::test]
async fn a_forged_alarm_event_drives_no_route() -> TestResult {
    let p = Platform::new().await?;
    p.catalog
        .put_device(&device("rival-1", "SN-9", "rival"))
        .await?;
    p.reading("m0", 45.0).await?;
    let sent = p.notifier.delivered().len();
    assert!(sent > 0, "the genuine alarm notified");
    let genuine: AlarmTransition = serde_json::from_value(serde_json::json!({
        "alarm_id": "air-1:hot:1", "kind": "raised", "tenant_id": "acme", "device_uid": "air-1",
        "rule_id": "hot", "rule_name": "Too hot", "level": "critical", "previous_level": null,
        "time": 1, "signal": "temperature", "value": 99.0, "by": null
    }))?;
    let forgeries = [
        // acme's routes driven by an alarm that never was.
        genuine.clone(),
        // ... by another tenant's device.
        AlarmTransition {
            device_uid: "rival-1".into(),
            alarm_id: "rival-1:hot:1".into(),
            ..genuine.clone()
        },
    ];
    for forged in forgeries {
        let refused = p.notify.notify(&forged).await;
        assert!(
            matches!(refused, Err(NotifyServiceError::Unverified { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(p.notifier.delivered().len(), sent, "nothing more was sent");
    Ok(())
}

#[tokio::test]
async fn a_retried_notification_is_not_sent_twice() -> TestResult {
    let p = Platform::new().await?;
    p.notifier
        .fail_with(Some(DeliveryError::Retryable("SNS throttled".into())));
    p.clock.advance(MINUTE);
    p.ingest
        .ingest(&p.message(
            "m1",
            "things/air-1/up/t",
            br#"{"temp": 35, "hum": 1, "co2": 1}"#,
        ))
        .await?;
    for message in p.alarm_queue.drain() {
        p.alarms
            .evaluate(&serde_json::from_str(&message.body)?)
            .await?;
    }
    let event = p.bus.drain().remove(0);
    let transition: AlarmTransition = serde_json::from_str(&event.body)?;

    let first = p.notify.notify(&transition).await;
    assert!(first.is_err_and(|e| e.to_string().contains("SNS throttled")));
    p.notifier.fail_with(None);
    assert_eq!(p.notify.notify(&transition).await?.delivered, 1);
    let again = p.notify.notify(&transition).await?;
    assert_eq!((again.delivered, again.already_delivered), (0, 1));
    assert_eq!(p.notifier.delivered().len(), 1);
    Ok(())
}

#[tokio::test]
async fn statistics_run_over_the_window_and_are_queryable() -> TestResult {
    let p = Platform::new().await?;
    for (i, t) in [20.0, 22.0, 24.0, 26.0].into_iter().enumerate() {
        p.reading(&format!("m{i}"), t).await?;
    }
    // Readings at T0 + 1..4 minutes. A window ending at T0 + 3 min holds the first three.
    p.catalog
        .put_stat_job(&StatJob {
            id: "hourly".into(),
            tenant_id: "acme".into(),
            name: "Hourly temperature".into(),
            cron: "0 * * * *".into(),
            lead_ms: 3 * MINUTE,
            signals: vec!["temperature".into()],
            devices: DeviceScope::Product { product_id: "air".into() },
            script: "#{ mean: avg(series.temperature), n: count(series.temperature), rise: delta(series.temperature) }".into(),
            enabled: true,
        })
        .await?;
    let run = p.stats.run("acme", "hourly", T0 + 3 * MINUTE).await?;
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    let values = &run.results[0].values;
    assert_eq!(values.get("mean"), Some(&Value::Number(22.0)));
    assert_eq!(values.get("n"), Some(&Value::Number(3.0)));
    assert_eq!(values.get("rise"), Some(&Value::Number(4.0)));

    let stored = p
        .catalog
        .stat_results("acme", "hourly", "air-1", T0, T0 + HOUR)
        .await?;
    assert_eq!(stored, run.results);
    assert!(p.stats.run("acme", "nope", T0).await.is_err());
    Ok(())
}

fn job_over(tenant: &str, uids: &[&str]) -> StatJob {
    StatJob {
        id: "hourly".into(),
        tenant_id: tenant.into(),
        name: "Hourly temperature".into(),
        cron: "0 * * * *".into(),
        lead_ms: 3 * MINUTE,
        signals: vec!["temperature".into()],
        devices: DeviceScope::Devices {
            uids: uids.iter().map(|u| u.to_string()).collect(),
        },
        script: "#{ n: count(series.temperature) }".into(),
        enabled: true,
    }
}

#[tokio::test]
async fn a_statistics_job_never_reads_another_tenants_device() -> TestResult {
    let p = Platform::new().await?;
    p.catalog
        .put_device(&device("rival-1", "SN-9", "rival"))
        .await?;
    p.reading("m0", 20.0).await?;

    // Refused at save: the uid exists, but is not acme's; the answer is as for an absent one.
    for uid in ["rival-1", "ghost"] {
        let refused = p.stats.check(&job_over("acme", &["air-1", uid])).await;
        assert!(
            matches!(&refused, Err(StatsServiceError::UnknownDevice(u)) if u == uid),
            "{refused:?}"
        );
    }
    p.stats.check(&job_over("acme", &["air-1"])).await?;

    // Saved past the check (as by an older build): every run checks again.
    p.catalog
        .put_stat_job(&job_over("acme", &["air-1", "rival-1"]))
        .await?;
    let run = p.stats.run("acme", "hourly", T0 + 3 * MINUTE).await?;
    let computed: Vec<&str> = run.results.iter().map(|r| r.device_uid.as_str()).collect();
    assert_eq!(computed, ["air-1"]);
    assert_eq!(run.failures.len(), 1, "{:?}", run.failures);
    assert_eq!(run.failures[0].0, "rival-1");
    Ok(())
}

#[tokio::test]
async fn statistics_results_of_same_named_jobs_stay_with_their_tenant() -> TestResult {
    let p = Platform::new().await?;
    p.reading("m0", 20.0).await?;
    p.catalog
        .put_stat_job(&job_over("acme", &["air-1"]))
        .await?;
    // Another tenant's job of the same id, over a device of its own.
    p.catalog
        .put_device(&device("rival-1", "SN-9", "rival"))
        .await?;
    p.catalog
        .put_stat_job(&job_over("rival", &["rival-1"]))
        .await?;
    p.stats.run("acme", "hourly", T0 + 3 * MINUTE).await?;
    p.stats.run("rival", "hourly", T0 + 3 * MINUTE).await?;
    let acme = p
        .catalog
        .stat_results("acme", "hourly", "air-1", T0, T0 + HOUR)
        .await?;
    assert_eq!(acme.len(), 1);
    assert!(
        p.catalog
            .stat_results("rival", "hourly", "air-1", T0, T0 + HOUR)
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn a_scoped_statistics_run_computes_only_the_visible_devices() -> TestResult {
    let p = Platform::new().await?;
    p.reading("m0", 20.0).await?;
    p.catalog
        .put_device(&Device {
            department_id: "south".into(),
            ..device("air-2", "SN-2", "acme")
        })
        .await?;
    p.catalog
        .put_stat_job(&job_over("acme", &["air-1", "air-2"]))
        .await?;
    let run = p
        .stats
        .run_where("acme", "hourly", T0 + 3 * MINUTE, |d| {
            d.department_id == "south"
        })
        .await?;
    let computed: Vec<&str> = run.results.iter().map(|r| r.device_uid.as_str()).collect();
    assert_eq!(computed, ["air-2"]);
    assert!(
        p.catalog
            .stat_results("acme", "hourly", "air-1", T0, T0 + HOUR)
            .await?
            .is_empty()
    );
    Ok(())
}

/// Lambda handlers and the local server run use cases on tokio's multi-threaded runtime.
#[allow(dead_code)]
fn use_case_futures_are_send(
    p: &Platform,
    m: &InboundMessage,
    r: &AlarmRequest,
    t: &AlarmTransition,
) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(p.ingest.ingest(m));
    assert_send(p.alarms.evaluate(r));
    assert_send(p.alarms.acknowledge("", "", "", ""));
    assert_send(p.notify.notify(t));
    assert_send(p.stats.run("", "", 0));
}

#[tokio::test]
async fn a_gateways_sub_device_is_evaluated_with_its_own_product() -> TestResult {
    let p = Platform::new().await?;
    p.catalog
        .put_device(&Device {
            product_id: "meter".into(),
            gateway_uid: Some("air-1".into()),
            ..device("meter-1", "M-1", "acme")
        })
        .await?;
    let payload = br#"{"data": {"temp": 21}, "device_uid": "meter-1"}"#;
    p.catalog
        .put_product(&Product {
            id: "air".into(),
            tenant_id: "acme".into(),
            name: "gateway".into(),
            script: Some(ParserScript {
                source: "json".into(),
                version: 2,
            }),
            signals: vec![],
        })
        .await?;
    let ingest = Ingest::new(
        p.catalog.clone(),
        p.telemetry.clone(),
        p.alarm_queue.clone(),
        p.blobs.clone(),
        p.clock.clone(),
        Parser::default(),
    );
    ingest
        .ingest(&p.message("gw", "things/air-1/up/batch", payload))
        .await?;
    let requests: Vec<AlarmRequest> = p
        .alarm_queue
        .drain()
        .iter()
        .map(|m| serde_json::from_str(&m.body))
        .collect::<Result<_, _>>()?;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (
            requests[0].device_uid.as_str(),
            requests[0].product_id.as_str()
        ),
        ("meter-1", "meter")
    );
    Ok(())
}

#[tokio::test]
async fn alarm_records_follow_transitions_and_can_be_cleared_by_hand() -> TestResult {
    use iot_core::alarm::AlarmStatus;
    use iot_core::repo::AlarmFilter;
    let p = Platform::new().await?;
    p.reading("m1", 35.0).await?;
    let open = AlarmFilter {
        open_only: true,
        ..AlarmFilter::default()
    };
    let alarms = p.catalog.alarms("acme", &open).await?;
    assert_eq!(alarms.len(), 1);
    let id = alarms[0].alarm_id.clone();
    assert_eq!(
        (alarms[0].status, alarms[0].level),
        (AlarmStatus::Active, Level::Warning)
    );

    p.alarms
        .acknowledge("acme", "air-1", "hot", "alice")
        .await?;
    p.reading("m2", 45.0).await?;
    let record = p
        .catalog
        .alarm("acme", &id)
        .await?
        .ok_or("record missing")?;
    assert_eq!(
        record.status,
        AlarmStatus::Active,
        "an escalation needs a new ack"
    );
    assert_eq!(record.peak_level, Level::Critical);

    let cleared = p.alarms.clear("acme", "air-1", "hot", "bob").await?;
    assert_eq!(
        (cleared.kind, cleared.by.as_deref()),
        (TransitionKind::Cleared, Some("bob"))
    );
    let record = p
        .catalog
        .alarm("acme", &id)
        .await?
        .ok_or("record missing")?;
    assert_eq!(
        (record.status, record.cleared_by.as_deref()),
        (AlarmStatus::Cleared, Some("bob"))
    );
    assert!(p.catalog.alarms("acme", &open).await?.is_empty());
    assert!(
        p.catalog.alarm("other", &id).await?.is_none(),
        "tenants are separate"
    );
    assert!(
        p.alarms.clear("acme", "air-1", "hot", "bob").await.is_err(),
        "nothing to clear"
    );

    // Still hot: the rule raises a new alarm, with a new id.
    p.reading("m3", 45.0).await?;
    let all = p.catalog.alarms("acme", &AlarmFilter::default()).await?;
    assert_eq!(all.len(), 2);
    assert_ne!(all[0].alarm_id, id, "newest first");
    let by_device = AlarmFilter {
        device_uid: Some("air-1".into()),
        ..AlarmFilter::default()
    };
    assert_eq!(p.catalog.alarms("acme", &by_device).await?.len(), 2);

    // A page at a time: the cursor continues after the last alarm returned, and what
    // `visible` drops is skipped without shortening the page below what exists.
    p.alarms.clear("acme", "air-1", "hot", "bob").await?;
    p.reading("m4", 46.0).await?;
    let (first, next) = p
        .catalog
        .alarms_page("acme", &AlarmFilter::default(), None, 2, |_| true)
        .await?;
    assert_eq!(first.len(), 2);
    let (rest, last) = p
        .catalog
        .alarms_page("acme", &AlarmFilter::default(), next, 2, |_| true)
        .await?;
    assert_eq!(rest.len(), 1);
    let seen: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|a| a.alarm_id.as_str())
        .collect();
    let everything = p.catalog.alarms("acme", &AlarmFilter::default()).await?;
    assert_eq!(
        seen,
        everything
            .iter()
            .map(|a| a.alarm_id.as_str())
            .collect::<Vec<_>>()
    );
    if let Some(cursor) = last {
        let (after, _) = p
            .catalog
            .alarms_page("acme", &AlarmFilter::default(), Some(cursor), 2, |_| true)
            .await?;
        assert!(after.is_empty());
    }
    let newest = everything[0].alarm_id.clone();
    let (hidden, _) = p
        .catalog
        .alarms_page("acme", &AlarmFilter::default(), None, 2, |a| {
            a.alarm_id != newest
        })
        .await?;
    assert_eq!(hidden.len(), 2);
    assert!(hidden.iter().all(|a| a.alarm_id != newest));
    Ok(())
}

#[tokio::test]
async fn in_system_messages_land_in_each_users_inbox_once() -> TestResult {
    use iot_core::notify::Delivery;
    use iot_core::ports::Notifier;
    use iot_core::usecase::InboxNotifier;
    let p = Platform::new().await?;
    let inbox = InboxNotifier::new(p.catalog.clone(), p.clock.clone());
    let delivery = Delivery {
        channel: Channel {
            id: "ops-inbox".into(),
            tenant_id: "acme".into(),
            name: "Ops".into(),
            kind: ChannelKind::InSystem {
                user_ids: vec!["alice".into(), "bob".into()],
            },
        },
        subject: "Too hot".into(),
        body: "air-1 is at 41".into(),
        webhook_body: None,
        key: "k1".into(),
    };
    inbox.deliver(&delivery).await?;
    inbox.deliver(&delivery).await?; // a retry overwrites
    let alice = p.catalog.messages("acme", "alice", true).await?;
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].body, "air-1 is at 41");
    assert_eq!(p.catalog.messages("acme", "bob", false).await?.len(), 1);
    assert!(
        p.catalog
            .messages("other", "alice", false)
            .await?
            .is_empty()
    );

    let sms = Delivery {
        channel: Channel {
            kind: ChannelKind::Sms {
                phone_numbers: vec![],
            },
            ..delivery.channel.clone()
        },
        ..delivery
    };
    assert!(matches!(
        inbox.deliver(&sms).await,
        Err(DeliveryError::Permanent(_))
    ));
    Ok(())
}

#[tokio::test]
async fn a_tenant_over_its_rate_or_suspended_has_its_messages_kept_not_stored() -> TestResult {
    use iot_core::model::{Quotas, Tenant, TenantStatus};
    let p = Platform::new().await?;
    let mut acme = Tenant {
        id: "acme".into(),
        name: "Acme".into(),
        status: TenantStatus::Active,
        reason: None,
        quotas: Quotas {
            max_messages_per_second: Some(2),
            ..Quotas::default()
        },
        uid_prefix: None,
        created_at: T0,
    };
    p.catalog.put_tenant(&acme, None).await?;
    let payload = br#"{"temp": 20, "hum": 40, "co2": 500}"#;
    let send = |id: &str| p.message(id, "things/air-1/up/telemetry", payload);
    let mut kinds = Vec::new();
    for id in ["q1", "q2", "q3"] {
        kinds.push(match p.ingest.ingest(&send(id)).await? {
            IngestOutcome::Stored { .. } => "stored".to_owned(),
            IngestOutcome::DeadLettered { key, .. } => {
                dead_letter(&p, &key).await?["kind"].to_string()
            }
        });
    }
    assert_eq!(kinds, ["stored", "stored", "\"quota\""]);
    p.clock.advance(1_000);
    assert!(matches!(
        p.ingest.ingest(&send("q4")).await?,
        IngestOutcome::Stored { .. }
    ));

    let stored = p.telemetry.points().len();
    let version = p.catalog.tenant("acme").await?.ok_or("no tenant")?.version;
    acme.status = TenantStatus::Suspended;
    acme.reason = Some("invoice unpaid".into());
    p.catalog.put_tenant(&acme, Some(version)).await?;
    // Ingest reads the tenant again within its cache time.
    p.clock.advance(MINUTE);
    let IngestOutcome::DeadLettered { key, reason } = p.ingest.ingest(&send("s1")).await? else {
        panic!("a suspended tenant's message was stored");
    };
    assert!(reason.contains("invoice unpaid"), "{reason}");
    assert_eq!(dead_letter(&p, &key).await?["kind"], "tenant_refused");
    assert_eq!(p.telemetry.points().len(), stored);
    Ok(())
}
