//! `iot-smoke`: the post-deploy check. Exit 0 when every step passed.

use clap::Parser;
use iot_smoke::{SmokeError, SmokeOptions, Via};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Checks a deployed stack end to end through its API")]
struct Cli {
    /// The API's base URL: the stack's ApiUrl output, or http://127.0.0.1:8080 for iot-local.
    #[arg(long, env = "IOT_SMOKE_API")]
    api: String,
    /// The tenant to sign in to (the platform's default tenant without one).
    #[arg(long, env = "IOT_SMOKE_TENANT")]
    tenant: Option<String>,
    #[arg(long, env = "IOT_SMOKE_USER", default_value = "admin")]
    username: String,
    /// The user's password; from the environment, so it stays out of shell history.
    #[arg(long, env = "IOT_SMOKE_PASSWORD", hide_env_values = true)]
    password: String,
    /// The department the smoke device is made in: one the user manages.
    #[arg(long, default_value = "smoke")]
    department: String,
    /// How the device publishes: iot-data (AWS IoT Core's data endpoint, see --iot-endpoint),
    /// http (POST /v1/ingest) or mqtt (see --mqtt-url).
    #[arg(long, default_value = "iot-data")]
    via: String,
    /// `aws iot describe-endpoint --endpoint-type iot:Data-ATS`, as https://...
    #[arg(long, env = "IOT_SMOKE_IOT_ENDPOINT")]
    iot_endpoint: Option<String>,
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    mqtt_url: String,
    /// Seconds each step may take.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

fn via(cli: &Cli) -> Result<Via, SmokeError> {
    match cli.via.as_str() {
        "http" => Ok(Via::Http),
        "iot-data" => match &cli.iot_endpoint {
            Some(endpoint) => Ok(Via::IotData {
                endpoint: endpoint.clone(),
            }),
            None => Err(SmokeError::Usage(
                "--via iot-data needs --iot-endpoint".into(),
            )),
        },
        "mqtt" => {
            let rest = cli.mqtt_url.trim_start_matches("mqtt://");
            let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
            let port = port.parse().map_err(|_| {
                SmokeError::Usage(format!("--mqtt-url {:?}: bad port", cli.mqtt_url))
            })?;
            Ok(Via::Mqtt {
                host: host.to_owned(),
                port,
            })
        }
        other => Err(SmokeError::Usage(format!(
            "--via {other:?}: use iot-data, http or mqtt"
        ))),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let via = match via(&cli) {
        Ok(via) => via,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let options = SmokeOptions {
        api: cli.api,
        tenant: cli.tenant,
        username: cli.username,
        password: cli.password,
        department: cli.department,
        via,
        step_timeout: Duration::from_secs(cli.timeout),
        run: run.to_string(),
    };
    match iot_smoke::run(&options).await {
        Ok(steps) => {
            for step in steps {
                println!("ok  {:>6} ms  {}", step.took.as_millis(), step.name);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
