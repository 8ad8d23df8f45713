//! The API against its own OpenAPI document: schemathesis (from PyPI, installed by the test
//! command) generates requests from `/openapi.json`, valid and invalid, and sends them to the
//! running platform as its administrator, and as a department-scoped operator. It fails on any 5xx, on a response whose body or
//! content type the document does not describe, and on an undocumented status.

use iot_tests::{Api, Error, TestResult, start_platform, tenant_admin, tenant_user};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const JSON_SENSOR: &str = include_str!("../examples/products/json-sensor.rhai");

/// The schemathesis the test command installs, or `SCHEMATHESIS`.
fn schemathesis() -> Result<PathBuf, Error> {
    let path = std::env::var_os("SCHEMATHESIS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-api-fuzz/bin/schemathesis"),
        PathBuf::from,
    );
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: ./scripts/test installs schemathesis (or set SCHEMATHESIS)",
            path.display()
        )
        .into())
    }
}

/// Resources for the generated requests to find: schemathesis reuses ids it sees in responses.
async fn seed(admin: &Api) -> TestResult {
    admin
        .create(
            "/v1/departments",
            &json!({ "id": "plant", "name": "Plant" }),
        )
        .await?;
    admin
        .create(
            "/v1/products",
            &json!({ "id": "sensor", "name": "Sensor", "script": { "source": JSON_SENSOR } }),
        )
        .await?;
    admin
        .create(
            "/v1/devices",
            &json!({ "uid": "dev-1", "identification_code": "SN-1", "product_id": "sensor",
                     "department_id": "plant", "name": "first" }),
        )
        .await?;
    admin
        .create(
            "/v1/products/sensor/rules",
            &json!({ "id": "hot", "name": "Too hot", "enabled": true,
                     "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
                         "bands": [{ "level": "warning", "threshold": 30 }], "deadband": 1 },
                     "debounce": { "samples": 1, "for_ms": 0 } }),
        )
        .await?;
    admin
        .create(
            "/v1/stat-jobs",
            &json!({ "id": "hourly", "name": "Hourly mean", "cron": "0 0 1 1 *", "lead_ms": 3_600_000,
                     "signals": ["temperature"], "devices": { "type": "product", "product_id": "sensor" },
                     "script": "#{ avg: avg(series.temperature) }", "enabled": true }),
        )
        .await?;
    admin
        .create(
            "/v1/users",
            &json!({ "id": "olga", "name": "Olga", "password": "a user password", "roles": ["operator"] }),
        )
        .await?;
    Ok(())
}

/// Runs schemathesis against the API with `token`; `only` and `skip` pick operations by path.
fn fuzz(base: &str, token: &str, only: &[&str], skip: &[&str]) -> TestResult {
    let work = tempfile::tempdir()?;
    let seed = std::env::var("API_FUZZ_SEED").unwrap_or_else(|_| "20261124".into());
    let mut command = Command::new(schemathesis()?);
    command
        .current_dir(work.path())
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--workers", "2", "--seed", &seed])
        .args(["--generation-database", "none", "--no-color"]);
    for path in only {
        command.args(["--include-path", path]);
    }
    for path in skip {
        command.args(["--exclude-path", path]);
    }
    let output = command.output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        let summary: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("generated") || l.contains("Tested:"))
            .collect();
        println!("{}", summary.join("\n"));
        Ok(())
    } else {
        Err(format!(
            "schemathesis found problems (seed {seed}):\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// What changes what roles may do: fuzzed on their own, in a second tenant, since a generated
/// policy may well take the administrator's other rights away (and the first pass may have
/// changed the first administrator's password).
const ACCESS_CONTROL: &[&str] = &["/v1/roles/{name}", "/v1/policy"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_documented_answers_and_never_a_server_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let base = format!("http://{}", running.http_addr);
    let admin = Api::new(running.http_addr).await?;
    seed(&admin).await?;

    let document: Value = reqwest::get(format!("{base}/openapi.json"))
        .await?
        .json()
        .await?;
    assert_eq!(document["openapi"], "3.1.0");

    // Logging out would end the session the rest of the run uses.
    let mut skip = vec!["/v1/auth/logout"];
    skip.extend(ACCESS_CONTROL);
    let token = admin.token().ok_or("no token")?.to_owned();
    let base_for_run = base.clone();
    tokio::task::spawn_blocking(move || fuzz(&base_for_run, &token, &[], &skip)).await??;

    // A department-scoped operator, in a tenant the first pass did not touch: every route,
    // refused or not, answers as documented and never with a server error.
    let other = tenant_admin(&running, "beta").await?;
    seed(&other).await?;
    let operator = tenant_user(
        &running,
        &other,
        "beta",
        "otto",
        &["operator"],
        Some("plant"),
    )
    .await?;
    let token = operator.token().ok_or("no token")?.to_owned();
    let base_for_run = base.clone();
    tokio::task::spawn_blocking(move || fuzz(&base_for_run, &token, &[], &["/v1/auth/logout"]))
        .await??;

    let token = other.token().ok_or("no token")?.to_owned();
    tokio::task::spawn_blocking(move || fuzz(&base, &token, ACCESS_CONTROL, &[])).await??;
    Ok(())
}
