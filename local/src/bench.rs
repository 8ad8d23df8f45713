//! `iot-local bench`: the platform under load. Starts it in-process on a scratch data dir
//! (embedded broker, or an external one with `--mqtt-url`), connects N devices that publish at
//! a total rate over QoS 1, and reports the sustained rate, publish-to-PUBACK latency, and
//! publish-to-notification latency (one message in ten changes an alarm, which is notified to
//! a webhook receiver in this process).

use axum::Router;
use axum::routing::post;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::error::LocalError;
use crate::platform;

pub struct BenchOptions {
    pub devices: usize,
    pub rate: f64,
    pub duration: Duration,
    pub mqtt_url: Option<String>,
}

#[derive(Default)]
struct Samples {
    puback_ms: Vec<f64>,
    notify_ms: Vec<f64>,
    published: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(name: &str, samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{name}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        percentile(samples, 50.0),
        percentile(samples, 99.0),
        samples.last().copied().unwrap_or(f64::NAN)
    )
}

pub async fn run(options: BenchOptions) -> Result<(), LocalError> {
    let dir = std::env::temp_dir().join(format!("iot-local-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config {
        data_dir: dir.clone(),
        tenant: "bench".into(),
        ..Config::default()
    };
    config.http.port = 0;
    config.mqtt.port = 0;
    config.mqtt.tls_port = 0;
    // The bench's webhook receiver listens on loopback, which webhooks may not reach unless
    // allowed.
    config.pipeline.outbound_allow = "127.0.0.1".into();
    if let Some(url) = &options.mqtt_url {
        config.mqtt.url = url.clone();
        config.mqtt.client_id = format!("iot-local-bench-{}", std::process::id());
    }
    let running = platform::start(&config).await?;

    // The webhook receiver: latency = arrival - the reading's own time (set at publish).
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sink = samples.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let sink = sink.clone();
            async move {
                let arrived = now_ms();
                if let Some(sent) = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["t"].as_str().and_then(|t| t.parse::<i64>().ok()))
                {
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    s.notify_ms.push((arrived - sent) as f64);
                }
                "ok"
            }
        }),
    );
    let receiver = LocalError::part("the bench's webhook receiver");
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .and_then(|listener| Ok((listener.local_addr()?, listener)));
    let (addr, listener) = listener.map_err(receiver)?;
    let hook = format!("http://{addr}/hook");
    tokio::spawn(async move { axum::serve(listener, app).await });
    provision(&running.services, options.devices, &hook).await?;

    let (host, port) = match (running.mqtt_addr, &options.mqtt_url) {
        (Some(addr), _) => (addr.ip().to_string(), addr.port()),
        (None, Some(url)) => {
            let rest = url
                .trim_start_matches("mqtt://")
                .trim_start_matches("tcp://");
            let bad = || LocalError::Invalid(format!("--mqtt-url {url:?}: use mqtt://host:port"));
            let (h, p) = rest.rsplit_once(':').ok_or_else(bad)?;
            (h.to_owned(), p.parse().map_err(|_| bad())?)
        }
        _ => return Err(LocalError::Invalid("no broker: give --mqtt-url".into())),
    };
    println!(
        "bench: {} devices, {} msg/s offered for {} s, broker {}",
        options.devices,
        options.rate,
        options.duration.as_secs(),
        options.mqtt_url.as_deref().unwrap_or("embedded")
    );
    let period = Duration::from_secs_f64(options.devices as f64 / options.rate);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..options.devices {
        let (host, samples) = (host.clone(), samples.clone());
        let duration = options.duration;
        let offset = period.mul_f64(n as f64 / options.devices as f64);
        tasks.spawn(async move { device(n, host, port, period, offset, duration, samples).await });
    }
    while let Some(result) = tasks.join_next().await {
        if let Ok(Err(e)) = result {
            return Err(e);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last notifications arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = platform::prometheus().render();
    let stored = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ingest_messages_parsed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let mut s = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let acked = s.puback_ms.len();
    println!(
        "published {} in {elapsed:.1} s ({:.0} msg/s); acknowledged {acked} ({:.0} msg/s); stored {stored}",
        s.published,
        s.published as f64 / elapsed,
        acked as f64 / elapsed
    );
    println!("{}", summary("publish -> PUBACK", &mut s.puback_ms));
    println!("{}", summary("publish -> notification", &mut s.notify_ms));
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn provision(
    services: &crate::pipeline::Services,
    devices: usize,
    hook: &str,
) -> Result<(), LocalError> {
    use iot_core::alarm::{AlarmRule, Band, Condition, Debounce, Direction, Level};
    use iot_core::model::{Device, ParserScript, Product, SignalDef};
    use iot_core::notify::{
        Channel, ChannelKind, NotificationRoute, NotificationTemplate, WebhookFlavor,
    };
    let catalog = &services.catalog;
    let tenant = "bench";
    catalog
        .put_product(&Product {
            id: "sensor".into(),
            tenant_id: tenant.into(),
            name: "Bench sensor".into(),
            script: Some(ParserScript {
                source: include_str!("../../examples/products/json-sensor.rhai").into(),
                version: 1,
            }),
            signals: vec![
                SignalDef::number("temperature").with_range(-40.0, 85.0),
                SignalDef::number("humidity").with_range(0.0, 100.0),
                SignalDef::number("co2"),
            ],
        })
        .await?;
    catalog
        .put_rule(&AlarmRule {
            id: "hot".into(),
            tenant_id: tenant.into(),
            product_id: "sensor".into(),
            name: "Hot".into(),
            enabled: true,
            condition: Condition::Threshold {
                signal: "temperature".into(),
                direction: Direction::Above,
                bands: vec![Band {
                    level: Level::Warning,
                    threshold: 30.0,
                }],
                deadband: 1.0,
            },
            debounce: Debounce {
                samples: 1,
                for_ms: 0,
            },
        })
        .await?;
    catalog
        .put_template(&NotificationTemplate {
            id: "t".into(),
            tenant_id: tenant.into(),
            name: "t".into(),
            subject: String::new(),
            body: r#"{"t": "${time_ms}", "e": "${event}"}"#.into(),
        })
        .await?;
    catalog
        .put_channel(&Channel {
            id: "hook".into(),
            tenant_id: tenant.into(),
            name: "hook".into(),
            kind: ChannelKind::Webhook {
                flavor: WebhookFlavor::Generic,
                url: hook.into(),
                secret_ref: None,
            },
        })
        .await?;
    catalog
        .put_route(&NotificationRoute {
            id: "r".into(),
            tenant_id: tenant.into(),
            rule_ids: vec![],
            min_level: Level::Warning,
            events: vec![],
            template_id: "t".into(),
            channel_id: "hook".into(),
        })
        .await?;
    for n in 0..devices {
        let uid = format!("bench-{n:04}");
        catalog
            .put_device_token(
                &uid,
                &iot_core::auth::secret::digest(&bench_secret(&uid)),
                &iot_core::auth::secret::broker_password_hash(&bench_secret(&uid)),
            )
            .await?;
        catalog
            .put_device(&Device {
                uid: format!("bench-{n:04}"),
                identification_code: format!("B{n:04}"),
                tenant_id: tenant.into(),
                product_id: "sensor".into(),
                department_id: "bench".into(),
                name: format!("Bench {n}"),
                data_since: 0,
                gateway_uid: None,
            })
            .await?;
    }
    Ok(())
}

/// The bench's devices live in its own throwaway data directory: a fixed token will do.
fn bench_secret(uid: &str) -> String {
    format!("bench token of {uid}")
}

async fn device(
    n: usize,
    host: String,
    port: u16,
    period: Duration,
    offset: Duration,
    duration: Duration,
    samples: Arc<Mutex<Samples>>,
) -> Result<(), LocalError> {
    let uid = format!("bench-{n:04}");
    let mut options = MqttOptions::new(&uid, host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(100)
        .set_credentials(&uid, bench_secret(&uid));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let topic = format!("things/{uid}/up/telemetry");
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + offset + duration;
    let mut k: u64 = 0;
    let mut last_ts = 0i64;
    let mut local = Samples::default();
    let mut connected = false;
    let mut done_check = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = ticker.tick(), if connected && Instant::now() < end => {
                // Every tenth message flips the temperature: a raise or a clear to notify.
                let temperature = if (k / 10) % 2 == 1 { 35.0 } else { 20.0 };
                k += 1;
                last_ts = now_ms().max(last_ts + 1);
                let payload = format!(r#"{{"ts":{last_ts},"temp":{temperature},"hum":40,"co2":600}}"#);
                if client.try_publish(&topic, QoS::AtLeastOnce, false, payload).is_ok() {
                    local.published += 1;
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => connected = true,
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => { sent.insert(pkid, Instant::now()); }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(at) = sent.remove(&ack.pkid) {
                        local.puback_ms.push(at.elapsed().as_secs_f64() * 1e3);
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(LocalError::part(format!("device {uid}"))(e)),
            },
            // Done once the offered load is sent and every message acknowledged.
            _ = done_check.tick(), if Instant::now() >= end => {
                let unacknowledged = local.published as usize - local.puback_ms.len();
                if unacknowledged == 0 || Instant::now() >= end + Duration::from_secs(10) {
                    break;
                }
            }
        }
    }
    let _ = client.try_disconnect();
    let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
    s.published += local.published;
    s.puback_ms.extend(local.puback_ms);
    Ok(())
}
