//! The device simulator: N devices publishing at a total rate over MQTT (QoS 1), with drift,
//! noise, occasional out-of-range values, heat excursions that raise alarms, and every fourth
//! device sending 12-byte binary frames. Each device runs an OTA client too
//! (`ota_client.rs`): it takes firmware jobs, downloads and checks the image, and reports.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use crate::demo::{device_uid, is_binary};
use crate::error::LocalError;
use crate::ota_client::{OtaClient, OtaCounters};

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub host: String,
    pub port: u16,
    pub devices: usize,
    /// Messages per second, all devices together.
    pub rate: f64,
    /// Stop after this long (`None`: run until stopped).
    pub duration: Option<Duration>,
    /// The simulator key of the platform's data directory (the devices' credentials).
    pub key: String,
    /// The share of devices whose firmware installs fail (the first ones by number), to try
    /// a rollout's abort rules; the others succeed.
    pub ota_fail: f64,
}

#[derive(Debug, Default)]
pub struct SimCounters {
    pub published: AtomicU64,
    pub acknowledged: AtomicU64,
    pub ota: Arc<OtaCounters>,
}

/// One device's signals.
pub struct DeviceModel {
    n: usize,
    rng: fastrand::Rng,
    base: f64,
    counter: u32,
}

impl DeviceModel {
    pub fn new(n: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(n as u64);
        let base = 20.0 + rng.f64() * 4.0;
        Self {
            n,
            rng,
            base,
            counter: 0,
        }
    }

    /// The next reading at `t` seconds since the start: temperature, humidity, co2.
    pub fn reading(&mut self, t: f64) -> (f64, f64, f64) {
        self.counter = self.counter.wrapping_add(1);
        let drift = 1.5 * (t / 300.0 + self.n as f64).sin();
        // Device 1 heats up for 40 s of every 90 s: raise, escalate, then clear.
        let phase = t % 90.0;
        let excursion = if self.n == 1 && (10.0..50.0).contains(&phase) {
            16.0 * ((phase - 10.0) / 40.0 * std::f64::consts::PI).sin()
        } else {
            0.0
        };
        let mut temperature = self.base + drift + excursion + (self.rng.f64() - 0.5) * 0.4;
        let humidity =
            (45.0 + 10.0 * (t / 600.0).cos() + (self.rng.f64() - 0.5) * 2.0).clamp(0.0, 100.0);
        let co2 = 600.0 + 300.0 * (t / 900.0 + self.n as f64).sin().abs() + self.rng.f64() * 30.0;
        // About one reading in 500 is out of range (a glitching sensor).
        if self.rng.u32(0..500) == 0 {
            temperature = 150.0;
        }
        (temperature, humidity, co2)
    }

    pub fn payload(&mut self, t: f64, now_ms: i64) -> Vec<u8> {
        let (temperature, humidity, co2) = self.reading(t);
        if is_binary(self.n) {
            binary_frame(temperature, humidity, 3000 - (t as u16 % 600), self.counter)
        } else {
            format!(
                r#"{{"ts":{now_ms},"temp":{temperature:.2},"hum":{humidity:.1},"co2":{co2:.0},"fw":"2.1.0"}}"#
            )
            .into_bytes()
        }
    }
}

/// The 12-byte frame of `examples/products/env-sensor-binary.rhai`.
pub fn binary_frame(temperature: f64, humidity: f64, battery_mv: u16, counter: u32) -> Vec<u8> {
    let mut frame = Vec::with_capacity(12);
    frame.push(0x01);
    frame.extend_from_slice(&((temperature * 100.0).round() as i16).to_be_bytes());
    frame.push(humidity.round().clamp(0.0, 255.0) as u8);
    frame.extend_from_slice(&battery_mv.to_be_bytes());
    frame.push(0xA0); // signal quality 10, no flags
    frame.extend_from_slice(&counter.to_be_bytes());
    let checksum = frame.iter().fold(0u8, |a, b| a ^ b);
    frame.push(checksum);
    frame
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs the simulation; returns the counters when the duration is over.
pub async fn run(options: SimOptions) -> Result<Arc<SimCounters>, LocalError> {
    let counters = Arc::new(SimCounters::default());
    let per_device = options.rate / options.devices.max(1) as f64;
    if per_device <= 0.0 {
        return Err(LocalError::Invalid("the rate must be > 0".into()));
    }
    let period = Duration::from_secs_f64(1.0 / per_device);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 1..=options.devices {
        let options = options.clone();
        let counters = counters.clone();
        tasks.spawn(async move { device(n, options, period, started, counters).await });
    }
    while let Some(result) = tasks.join_next().await {
        if let Ok(Err(e)) = result {
            tasks.abort_all();
            return Err(e);
        }
    }
    Ok(counters)
}

async fn device(
    n: usize,
    options: SimOptions,
    period: Duration,
    started: Instant,
    counters: Arc<SimCounters>,
) -> Result<(), LocalError> {
    let uid = device_uid(n);
    let mut mqtt = MqttOptions::new(&uid, &options.host, options.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_inflight(50)
        .set_credentials(
            &uid,
            crate::secrets::simulated_device_secret(&options.key, &uid),
        );
    let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
    let fails = (n as f64) <= (options.devices as f64 * options.ota_fail).round();
    let ota = OtaClient::new(&uid, client.clone(), fails, counters.ota.clone());
    let topic = iot_core::topics::uplink_topic(&uid, "telemetry");
    let mut model = DeviceModel::new(n);
    // Spread the devices over one period so they do not publish in lockstep.
    let offset = period.mul_f64(n as f64 / options.devices.max(1) as f64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = options.duration.map(|d| started + d);
    let mut connected = false;
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = ticker.tick(), if connected => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let t = started.elapsed().as_secs_f64();
                let payload = model.payload(t, now_ms());
                if client.try_publish(&topic, QoS::AtLeastOnce, false, payload).is_ok() {
                    counters.published.fetch_add(1, Ordering::Relaxed);
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    failures = 0;
                    ota.on_connect();
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    ota.on_message(&publish.topic, &publish.payload);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    connected = false;
                    failures += 1;
                    if failures == 10 {
                        let part = format!("device {uid} cannot reach {}:{}", options.host, options.port);
                        return Err(LocalError::part(part)(e));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    // Let the last acknowledgements arrive.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            if counters.acknowledged.load(Ordering::Relaxed)
                >= counters.published.load(Ordering::Relaxed)
            {
                break;
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_frames_have_the_documented_layout() {
        let frame = binary_frame(21.0, 45.0, 3000, 42);
        assert_eq!(frame.len(), 12);
        assert_eq!(
            &frame[..11],
            &[0x01, 0x08, 0x34, 0x2d, 0x0b, 0xb8, 0xa0, 0, 0, 0, 0x2a]
        );
        assert_eq!(frame[11], frame[..11].iter().fold(0, |a, b| a ^ b));
    }

    #[test]
    fn device_one_heats_up_and_cools_down() {
        let mut model = DeviceModel::new(1);
        let peak = (0..90)
            .map(|t| model.reading(f64::from(t)).0)
            .fold(f64::MIN, f64::max);
        assert!(peak > 36.0, "peak {peak}");
        let mut calm = DeviceModel::new(2);
        let hottest = (0..90)
            .map(|t| calm.reading(f64::from(t)).0)
            .filter(|t| *t < 100.0)
            .fold(f64::MIN, f64::max);
        assert!(hottest < 28.0, "hottest {hottest}");
    }
}
