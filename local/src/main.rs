//! `iot-local`: run the whole platform on this machine, simulate devices, print the config.

use clap::{Parser, Subcommand};
use iot_local::config::{Config, DEFAULT_CONFIG};
use iot_local::error::LocalError;
use iot_local::{bench, demo, platform, secrets, sim};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "iot-local",
    version,
    about = "The IoT platform on one machine, without AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Overrides {
    /// A TOML config file (see `iot-local print-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the data lives (default ./.iot-local).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Port of the HTTP API on 127.0.0.1.
    #[arg(long)]
    http_port: Option<u16>,
    /// Port of the embedded MQTT broker on 127.0.0.1.
    #[arg(long)]
    mqtt_port: Option<u16>,
    /// Use an external broker (mqtt://host:port) instead of the embedded one.
    #[arg(long)]
    mqtt_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the platform: MQTT, ingest, alarms, notifications, statistics, HTTP API.
    Up {
        #[command(flatten)]
        overrides: Overrides,
        /// Create demo products, devices, rules and a statistics job, and simulate devices.
        #[arg(long)]
        demo: bool,
        /// Simulated devices with --demo.
        #[arg(long, default_value_t = 8)]
        demo_devices: usize,
        /// Messages per second of all simulated devices together, with --demo.
        #[arg(long, default_value_t = 4.0)]
        demo_rate: f64,
        /// Also send demo notifications to this webhook URL.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Simulate devices publishing telemetry to a running platform.
    Sim {
        #[arg(long, default_value_t = 8)]
        devices: usize,
        /// Messages per second, all devices together.
        #[arg(long, default_value_t = 4.0)]
        rate: f64,
        /// The broker (default: the embedded broker at mqtt://127.0.0.1:1883).
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        mqtt_url: String,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
        /// The running platform's data directory, whose simulator key signs the devices in.
        #[arg(long, default_value = ".iot-local")]
        data_dir: PathBuf,
        /// The share of devices (0 to 1, the first by number) whose firmware installs fail.
        #[arg(long, default_value_t = 0.0)]
        ota_fail: f64,
    },
    /// Measure the platform under load (see docs/benchmarks.md).
    Bench {
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Messages per second offered, all devices together.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Benchmark against an external broker instead of the embedded one.
        #[arg(long)]
        mqtt_url: Option<String>,
    },
    /// Print the default configuration file, with comments.
    PrintConfig,
    /// Write a Mosquitto configuration, password file and ACL that hold devices and
    /// application credentials to their own topics, for `up --mqtt-url`; run again (and send
    /// Mosquitto SIGHUP) after devices, tokens or credentials change.
    MosquittoConfig {
        #[command(flatten)]
        overrides: Overrides,
        /// Where to write `mosquitto.conf`, `passwords` and `acl`.
        #[arg(long)]
        out: PathBuf,
        /// The address Mosquitto listens on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// The port Mosquitto listens on.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// Also a TLS listener on this port, for devices with a certificate of the device CA
        /// (writes the CA certificate, a server certificate and key, and the revocation list).
        #[arg(long)]
        tls_port: Option<u16>,
    },
    /// Put a new token-signing key and a new TOTP sealing key first in their rings, keeping
    /// the two before each, so nobody is signed out; takes effect at the next `up`.
    RotateKeys {
        /// The platform's data directory.
        #[arg(long, default_value = ".iot-local")]
        data_dir: PathBuf,
    },
}

fn load(overrides: &Overrides) -> Result<Config, LocalError> {
    let mut config = Config::load(overrides.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &overrides.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(port) = overrides.http_port {
        config.http.port = port;
    }
    if let Some(port) = overrides.mqtt_port {
        config.mqtt.port = port;
    }
    if let Some(url) = &overrides.mqtt_url {
        config.mqtt.url = url.clone();
    }
    Ok(config)
}

fn init_logging(level: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

fn split_url(url: &str) -> Result<(String, u16), LocalError> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| LocalError::Invalid(format!("{url:?}: use mqtt://host:port")))?;
    match rest.trim_end_matches('/').rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse()
                .map_err(|_| LocalError::Invalid(format!("{url:?}: bad port")))?,
        )),
        None => Ok((rest.to_owned(), 1883)),
    }
}

async fn up(
    overrides: Overrides,
    demo_on: bool,
    devices: usize,
    rate: f64,
    webhook: Option<String>,
) -> Result<(), LocalError> {
    let config = load(&overrides)?;
    init_logging(&config.log.level);
    let running = platform::start(&config).await?;
    let api = format!("http://{}", running.http_addr);
    println!(
        "iot-local is running (data in {})",
        config.data_dir.display()
    );
    match running.mqtt_addr {
        Some(addr) => println!(
            "  MQTT broker  mqtt://{addr}  (devices publish to things/<uid>/up/telemetry, QoS 1)"
        ),
        None => println!("  MQTT broker  {} (external)", config.mqtt.url),
    }
    println!("  HTTP API     {api}   metrics {api}/metrics");
    let password_hint = match &running.generated_admin_password {
        Some(password) => format!(
            "{password}   (generated now, shown once; also in {})",
            config.data_dir.join("admin-password").display()
        ),
        None if config.auth.admin_password.is_empty() => {
            format!("in {}", config.data_dir.join("admin-password").display())
        }
        None => "as configured (auth.admin_password)".to_owned(),
    };
    println!(
        "  Log in       user {:?} of tenant {:?}, password {password_hint}",
        running.admin_user, config.tenant
    );
    println!(
        "  TOKEN=$(curl -s {api}/v1/auth/login -H 'content-type: application/json' \\\n      -d '{{\"username\":\"{}\",\"password\":\"<password>\"}}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
        running.admin_user
    );
    if demo_on {
        let key = secrets::simulator_key(&config.data_dir)?;
        demo::install(
            &running.services,
            &config.tenant,
            devices,
            webhook.as_deref(),
            &key,
        )
        .await
        .map_err(LocalError::part("installing the demo"))?;
        let (host, port) = match running.mqtt_addr {
            Some(addr) => (addr.ip().to_string(), addr.port()),
            None => split_url(&config.mqtt.url)?,
        };
        tokio::spawn(async move {
            let options = sim::SimOptions {
                host,
                port,
                devices,
                rate,
                duration: None,
                key,
                ota_fail: 0.0,
            };
            if let Err(e) = sim::run(options).await {
                tracing::error!(error = %e, "the simulator stopped");
            }
        });
        println!();
        println!(
            "Demo: {devices} simulated devices at {rate} msg/s; sim-001 overheats every 90 s."
        );
        println!("Try (after the login above):");
        let auth = "-H \"authorization: Bearer $TOKEN\"";
        println!("  curl {auth} {api}/v1/devices");
        println!("  curl {auth} '{api}/v1/devices/sim-001/latest'");
        println!(
            "  curl {auth} '{api}/v1/devices/sim-001/telemetry?signal=temperature&order=desc&limit=5'"
        );
        println!("  curl {auth} '{api}/v1/alarms?status=open'");
        println!("  curl {auth} {api}/v1/users/admin/messages          # in-system notifications");
        println!("  curl {auth} '{api}/v1/stat-jobs/temperature-5min/results?device=sim-001'");
        println!(
            "  curl {auth} -X POST {api}/v1/products/env-sensor/dry-run -H 'content-type: application/json' -d '{{\"payload\":\"{{\\\"temp\\\":31}}\"}}'"
        );
        println!(
            "SMS notifications are printed here (there is no SNS on one machine). Ctrl-C stops."
        );
    }
    running.wait_for_signal().await;
    Ok(())
}

async fn mosquitto_config(
    overrides: &Overrides,
    out: &std::path::Path,
    listen: &iot_local::mosquitto::Listen,
) -> Result<(), LocalError> {
    let config = load(overrides)?;
    let files = iot_local::mosquitto::from_platform(&config, out, listen).await?;
    let (bind, port) = (&listen.bind, listen.port);
    let tls = listen.tls_port.map_or_else(String::new, |tls_port| {
        format!(
            ", and for TLS on port {tls_port} device-ca.pem, server.pem, server.key and crl.pem \
             ({} certificates held)",
            files.held.len()
        )
    });
    println!(
        "wrote {dir}/mosquitto.conf, passwords ({} devices, {} applications, the platform) and \
         acl{tls};\nstart Mosquitto with `mosquitto -c {dir}/mosquitto.conf` and the platform \
         with `iot-local up --mqtt-url mqtt://{bind}:{port}`",
        files.devices,
        files.applications,
        dir = out.display(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::PrintConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Command::MosquittoConfig {
            overrides,
            out,
            bind,
            port,
            tls_port,
        } => {
            let listen = iot_local::mosquitto::Listen {
                bind,
                port,
                tls_port,
            };
            mosquitto_config(&overrides, &out, &listen).await
        }
        Command::RotateKeys { data_dir } => secrets::rotate_keys(&data_dir).map(|[signing, sealing]| {
            println!(
                "new keys in {}: {signing} signing and {sealing} sealing keys kept; restart `iot-local up` to sign with the new one",
                data_dir.display()
            );
        }),
        Command::Up {
            overrides,
            demo,
            demo_devices,
            demo_rate,
            webhook,
        } => up(overrides, demo, demo_devices, demo_rate, webhook).await,
        Command::Bench {
            devices,
            rate,
            duration,
            mqtt_url,
        } => {
            init_logging("warn");
            bench::run(bench::BenchOptions {
                devices,
                rate,
                duration: Duration::from_secs(duration),
                mqtt_url,
            })
            .await
        }
        Command::Sim {
            devices,
            rate,
            mqtt_url,
            duration,
            data_dir,
            ota_fail,
        } => {
            init_logging("info");
            let key = secrets::existing_simulator_key(&data_dir);
            match key.and_then(|key| split_url(&mqtt_url).map(|address| (key, address))) {
                Ok((key, (host, port))) => {
                    let options = sim::SimOptions {
                        host,
                        port,
                        devices,
                        rate,
                        duration: duration.map(Duration::from_secs),
                        key,
                        ota_fail: ota_fail.clamp(0.0, 1.0),
                    };
                    println!(
                        "simulating {devices} devices at {rate} msg/s against {mqtt_url}; Ctrl-C stops"
                    );
                    tokio::select! {
                        result = sim::run(options) => result.map(|c| {
                            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                            println!(
                                "published {}, acknowledged {}; firmware installed {}, failed {}",
                                n(&c.published), n(&c.acknowledged), n(&c.ota.succeeded), n(&c.ota.failed)
                            );
                        }),
                        _ = tokio::signal::ctrl_c() => Ok(()),
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
