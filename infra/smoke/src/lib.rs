//! `iot-smoke`: after a deploy, checks a stack end to end as a user would, through its API:
//! a product with a script and an alarm rule, a device and its token, a message read back,
//! an alarm raised by a hot reading, acknowledged, and cleared when the reading returns.
//! Everything it made is deleted at the end, failed or not.
//!
//! The same run checks one machine (`iot-local up`, publishing over MQTT) and, in the suite,
//! the AWS functions on the emulator (publishing through `POST /v1/ingest`).

mod api;
mod publish;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use thiserror::Error;

pub use api::Api;
pub use publish::Via;

#[derive(Debug, Error)]
pub enum SmokeError {
    #[error("{0}")]
    Usage(String),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{call} answered {status}, not {want}: {body}")]
    Status {
        call: String,
        status: u16,
        want: u16,
        body: String,
    },
    #[error("{call}: {what}")]
    Unexpected { call: String, what: String },
    #[error("publishing: {0}")]
    Publish(String),
    #[error("waited {seconds} s for {what}")]
    Timeout { what: String, seconds: u64 },
}

/// Where and as whom the smoke test runs.
#[derive(Clone, Debug)]
pub struct SmokeOptions {
    /// The API's base URL (the stack's `ApiUrl` output, or `http://127.0.0.1:8080`).
    pub api: String,
    /// The tenant to sign in to; the platform's default tenant without one.
    pub tenant: Option<String>,
    pub username: String,
    pub password: String,
    /// The department the device is made in: one the user manages.
    pub department: String,
    pub via: Via,
    /// How long each step may take: on AWS a message crosses the rule, two queues and three
    /// functions.
    pub step_timeout: Duration,
    /// Names what the run creates (`smoke-<run>`), so runs side by side do not collide.
    pub run: String,
}

/// A step that passed, and how long it took.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    pub took: Duration,
}

/// The product's script: the reading's `temp` as `temperature`.
const SCRIPT: &str = r#"if type_of(json) != "map" { throw "payload is not JSON" }
#{ temperature: json.temp }"#;

/// Runs every step in order; the first failure ends the run (after the clean-up).
pub async fn run(options: &SmokeOptions) -> Result<Vec<Step>, SmokeError> {
    let api = Api::sign_in(
        &options.api,
        options.tenant.as_deref(),
        &options.username,
        &options.password,
    )
    .await?;
    let id = format!("smoke-{}", options.run);
    let result = steps(&api, options, &id).await;
    // Best effort: a failed run leaves nothing behind either.
    let _ = api.call("DELETE", &format!("/v1/devices/{id}"), None).await;
    let _ = api
        .call("DELETE", &format!("/v1/products/{id}"), None)
        .await;
    result
}

async fn steps(api: &Api, options: &SmokeOptions, id: &str) -> Result<Vec<Step>, SmokeError> {
    let mut done = Vec::new();
    let mut started = Instant::now();
    let mut passed = |name, started: &mut Instant| {
        done.push(Step {
            name,
            took: started.elapsed(),
        });
        *started = Instant::now();
    };

    let product = json!({ "id": id, "name": "Smoke test", "script": { "source": SCRIPT },
        "signals": [{ "name": "temperature", "kind": "number" }] });
    api.expect("POST", "/v1/products", Some(&product), 201)
        .await?;
    let rule = json!({ "id": "hot", "name": "Smoke: too hot", "enabled": true,
        "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
            "bands": [{ "level": "critical", "threshold": 50 }], "deadband": 1 },
        "debounce": { "samples": 1, "for_ms": 0 } });
    let rules = format!("/v1/products/{id}/rules");
    api.expect("POST", &rules, Some(&rule), 201).await?;
    let device = json!({ "uid": id, "identification_code": id, "product_id": id,
        "department_id": options.department, "name": "Smoke test" });
    api.expect("POST", "/v1/devices", Some(&device), 201)
        .await?;
    let token = api
        .expect("POST", &format!("/v1/devices/{id}/token"), None, 201)
        .await?;
    let token = token["device_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    passed("product, rule and device provisioned", &mut started);

    let sender = publish::Sender::new(options.via.clone(), id, &token).await;
    sender.send(api, r#"{"temp": 21.5}"#).await?;
    let latest = format!("/v1/devices/{id}/latest?signal=temperature");
    wait(options, "the reading read back", || async {
        let (status, body) = api.call("GET", &latest, None).await?;
        Ok((status == 200 && body.to_string().contains("21.5")).then_some(()))
    })
    .await?;
    passed("a message published and read back", &mut started);

    sender.send(api, r#"{"temp": 80}"#).await?;
    let open = format!("/v1/alarms?device={id}&status=open");
    let alarm = wait(options, "the alarm to be raised", || async {
        let (_, body) = api.call("GET", &open, None).await?;
        Ok(first_item(&body).and_then(|a| a["alarm_id"].as_str().map(str::to_owned)))
    })
    .await?;
    passed("a hot reading raised an alarm", &mut started);

    let acknowledge = format!("/v1/alarms/{alarm}/acknowledge");
    let note = json!({ "note": "smoke test" });
    api.expect("POST", &acknowledge, Some(&note), 200).await?;
    sender.send(api, r#"{"temp": 20}"#).await?;
    let one = format!("/v1/alarms/{alarm}");
    wait(options, "the alarm to clear", || async {
        let (_, body) = api.call("GET", &one, None).await?;
        Ok((body["status"] == "cleared").then_some(()))
    })
    .await?;
    passed(
        "acknowledged, and cleared when the reading returned",
        &mut started,
    );
    Ok(done)
}

fn first_item(page: &Value) -> Option<&Value> {
    page["items"].as_array().and_then(|items| items.first())
}

/// Polls `check` until it answers `Some`, for at most the step timeout.
async fn wait<T, F, Fut>(options: &SmokeOptions, what: &str, mut check: F) -> Result<T, SmokeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, SmokeError>>,
{
    let deadline = Instant::now() + options.step_timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(SmokeError::Timeout {
                what: what.to_owned(),
                seconds: options.step_timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
