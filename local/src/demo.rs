//! `up --demo`: a tenant with two products (JSON and binary), devices, alarm rules, a
//! statistics job and notification routes, so data, alarms and notifications show at once.

use iot_core::alarm::{AlarmRule, Band, Condition, Debounce, Direction, Level};
use iot_core::model::{Device, ParserScript, Product, SignalDef, SignalKind};
use iot_core::notify::{
    Channel, ChannelKind, NotificationRoute, NotificationTemplate, WebhookFlavor,
};
use iot_core::ports::{ScheduleTarget, Scheduler, StoreError};
use iot_core::stats::{DeviceScope, StatJob};
use iot_core::time::MINUTE;

use crate::pipeline::Services;

pub const JSON_PRODUCT: &str = "env-sensor";
pub const BINARY_PRODUCT: &str = "env-sensor-bin";
const JSON_SCRIPT: &str = include_str!("../../examples/products/json-sensor.rhai");
const BINARY_SCRIPT: &str = include_str!("../../examples/products/env-sensor-binary.rhai");

/// The uid of the `n`-th simulated device (from 1); every fourth one sends binary frames.
pub fn device_uid(n: usize) -> String {
    format!("sim-{n:03}")
}

pub fn is_binary(n: usize) -> bool {
    n.is_multiple_of(4)
}

fn signals() -> Vec<SignalDef> {
    vec![
        SignalDef::number("temperature")
            .with_unit("°C")
            .with_range(-40.0, 85.0),
        SignalDef::number("humidity")
            .with_unit("%")
            .with_range(0.0, 100.0),
        SignalDef::number("co2")
            .with_unit("ppm")
            .with_range(0.0, 10_000.0),
    ]
}

/// The binary frame also reports the battery, status flags and a frame counter.
fn binary_signals() -> Vec<SignalDef> {
    let flag = |name: &str| SignalDef {
        name: name.into(),
        kind: SignalKind::Bool,
        unit: None,
        range: None,
    };
    let mut signals = signals();
    signals.retain(|s| s.name != "co2");
    signals.extend([
        SignalDef::number("battery_mv")
            .with_unit("mV")
            .with_range(0.0, 5_000.0),
        SignalDef::number("signal_quality").with_range(0.0, 15.0),
        SignalDef::number("frame_counter"),
        flag("low_battery"),
        flag("sensor_fault"),
        flag("tamper"),
    ]);
    signals
}

fn hot_rule(tenant: &str, product: &str) -> AlarmRule {
    AlarmRule {
        id: "too-hot".into(),
        tenant_id: tenant.into(),
        product_id: product.into(),
        name: "Too hot".into(),
        enabled: true,
        condition: Condition::Threshold {
            signal: "temperature".into(),
            direction: Direction::Above,
            bands: vec![
                Band {
                    level: Level::Warning,
                    threshold: 28.0,
                },
                Band {
                    level: Level::Major,
                    threshold: 32.0,
                },
                Band {
                    level: Level::Critical,
                    threshold: 36.0,
                },
            ],
            deadband: 0.5,
        },
        debounce: Debounce {
            samples: 2,
            for_ms: 0,
        },
    }
}

/// Creates (or refreshes) the demo data for `devices` simulated devices. `webhook`, if
/// given, also receives every alarm notification.
pub async fn install(
    services: &Services,
    tenant: &str,
    devices: usize,
    webhook: Option<&str>,
    simulator_key: &str,
) -> Result<(), StoreError> {
    let catalog = &services.catalog;
    for (id, name, script, signals) in [
        (
            JSON_PRODUCT,
            "Indoor air sensor (JSON)",
            JSON_SCRIPT,
            signals(),
        ),
        (
            BINARY_PRODUCT,
            "Indoor air sensor (12-byte frame)",
            BINARY_SCRIPT,
            binary_signals(),
        ),
    ] {
        catalog
            .put_product(&Product {
                id: id.into(),
                tenant_id: tenant.into(),
                name: name.into(),
                script: Some(ParserScript {
                    source: script.into(),
                    version: 1,
                }),
                signals,
            })
            .await?;
        catalog.put_rule(&hot_rule(tenant, id)).await?;
    }
    catalog
        .put_rule(&AlarmRule {
            id: "stuffy".into(),
            tenant_id: tenant.into(),
            product_id: JSON_PRODUCT.into(),
            name: "Stuffy and humid".into(),
            enabled: true,
            condition: Condition::Joint {
                signals: vec!["co2".into(), "humidity".into()],
                window: 5,
                script: "avg(window.co2) > 1400 && latest.humidity > 65".into(),
                level: Level::Minor,
            },
            debounce: Debounce::default(),
        })
        .await?;
    for n in 1..=devices {
        let uid = device_uid(n);
        let previous = catalog.device(&uid).await?;
        if previous.as_ref().is_some_and(|d| d.tenant_id != tenant) {
            continue;
        }
        // The simulator signs in with a token derived from its key.
        let secret = crate::secrets::simulated_device_secret(simulator_key, &uid);
        catalog
            .put_device_token(
                &uid,
                &iot_core::auth::secret::digest(&secret),
                &iot_core::auth::secret::broker_password_hash(&secret),
            )
            .await?;
        if previous.is_some() {
            continue;
        }
        catalog
            .put_device(&Device {
                uid: uid.clone(),
                identification_code: format!("SN-{n:05}"),
                tenant_id: tenant.into(),
                product_id: if is_binary(n) {
                    BINARY_PRODUCT
                } else {
                    JSON_PRODUCT
                }
                .into(),
                department_id: "default".into(),
                name: format!("Room {n}"),
                data_since: 0,
                gateway_uid: None,
            })
            .await?;
    }
    catalog
        .put_template(&NotificationTemplate {
            id: "alarm-text".into(),
            tenant_id: tenant.into(),
            name: "Alarm text".into(),
            subject: "[${level}] ${rule_name} ${event} on ${device_name}".into(),
            body: "${device_name} (${device_uid}): ${rule_name} ${event} at level ${level}, ${signal} = ${value}, ${time}".into(),
        })
        .await?;
    let mut channels = vec![
        Channel {
            id: "ops-inbox".into(),
            tenant_id: tenant.into(),
            name: "Operators' inbox".into(),
            kind: ChannelKind::InSystem {
                user_ids: vec!["admin".into()],
            },
        },
        Channel {
            id: "on-call-sms".into(),
            tenant_id: tenant.into(),
            name: "On-call SMS (printed locally)".into(),
            kind: ChannelKind::Sms {
                phone_numbers: vec!["+15550100".into()],
            },
        },
    ];
    if let Some(url) = webhook {
        channels.push(Channel {
            id: "webhook".into(),
            tenant_id: tenant.into(),
            name: "Webhook".into(),
            kind: ChannelKind::Webhook {
                flavor: WebhookFlavor::Slack,
                url: url.into(),
                secret_ref: None,
            },
        });
    }
    for channel in &channels {
        catalog.put_channel(channel).await?;
        catalog
            .put_route(&NotificationRoute {
                id: format!("alarms-to-{}", channel.id),
                tenant_id: tenant.into(),
                rule_ids: vec![],
                min_level: if channel.id == "on-call-sms" {
                    Level::Major
                } else {
                    Level::Warning
                },
                events: vec![],
                template_id: "alarm-text".into(),
                channel_id: channel.id.clone(),
            })
            .await?;
    }
    let job = StatJob {
        id: "temperature-5min".into(),
        tenant_id: tenant.into(),
        name: "Temperature over the last 5 minutes".into(),
        cron: "* * * * *".into(),
        lead_ms: 5 * MINUTE,
        signals: vec!["temperature".into()],
        devices: DeviceScope::Product { product_id: JSON_PRODUCT.into() },
        script: "#{ avg: avg(series.temperature), max: max(series.temperature), samples: count(series.temperature) }".into(),
        enabled: true,
    };
    catalog.put_stat_job(&job).await?;
    services
        .scheduler
        .upsert(
            &format!("stats.{tenant}.{}", job.id),
            &job.cron,
            &ScheduleTarget {
                tenant_id: tenant.into(),
                job_id: job.id.clone(),
            },
        )
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(())
}
