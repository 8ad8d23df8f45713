//! Trust boundaries held over HTTP against the running platform: what one tenant, department
//! or role can reach of what is not its own.

use iot_local::platform::Running;
use iot_tests::mqtt::{TlsSession, connect_as, ended_without_puback, next_suback, received_topics};
use iot_tests::{
    Api, Device, Error, TestResult, air_product, device_token, eventually, start_platform,
    tenant_admin, tenant_user,
};
use rumqttc::{ConnectReturnCode, QoS, SubscribeReasonCode};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Departments `north` and `south`, the product `air`, and one device in each department
/// (`n-1`, `s-1`) that has sent one reading of `temperature`.
async fn two_departments(running: &Running, admin: &Api) -> TestResult {
    for id in ["north", "south"] {
        admin
            .create("/v1/departments", &json!({ "id": id, "name": id }))
            .await?;
    }
    air_product(admin).await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    for (uid, dept) in [("n-1", "north"), ("s-1", "south")] {
        admin
            .create(
                "/v1/devices",
                &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": dept }),
            )
            .await?;
        let mut device = Device::sign_in(broker, admin, uid).await?;
        device
            .publish(r#"{"ts": 1795435200, "temp": 30.5, "hum": 40, "co2": 600}"#)
            .await?;
        eventually("the reading", WAIT, || async {
            let (_, latest) = admin.get(&format!("/v1/devices/{uid}/latest")).await?;
            Ok((latest.to_string().contains("30.5")).then_some(()))
        })
        .await?;
    }
    Ok(())
}

fn job(uids: &[&str]) -> Value {
    json!({ "id": "avg", "name": "avg", "cron": "0 * * * *", "lead_ms": 3_600_000,
            "signals": ["temperature"], "devices": { "type": "devices", "uids": uids },
            "script": "#{ n: count(series.temperature), avg: avg(series.temperature) }", "enabled": true })
}

/// The run time of the jobs below: an hour after the readings.
const RUN_AT: &str = "2026-11-23T12:30:00Z";

fn computed_for(run: &Value) -> Vec<String> {
    run["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["device_uid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_jobs_stay_within_their_tenant_and_the_callers_departments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    two_departments(&running, &acme).await?;
    let rival = tenant_admin(&running, "rival").await?;
    air_product(&rival).await?;

    // Naming another tenant's uid is refused as naming an absent one, at create and update.
    for uids in [&["n-1"][..], &["ghost"][..]] {
        let (status, problem) = rival.post("/v1/stat-jobs", &job(uids)).await?;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(
            problem["errors"][0]["pointer"], "/devices/uids",
            "{problem}"
        );
    }
    rival
        .create(
            "/v1/stat-jobs",
            &json!({ "id": "avg", "name": "avg", "cron": "0 * * * *", "lead_ms": 3_600_000,
                     "signals": ["temperature"], "devices": { "type": "product", "product_id": "air" },
                     "script": "#{ n: count(series.temperature) }", "enabled": true }),
        )
        .await?;
    let (status, problem) = rival.put("/v1/stat-jobs/avg", &job(&["s-1"])).await?;
    assert_eq!(status, 422, "{problem}");
    let (status, run) = rival
        .post("/v1/stat-jobs/avg/run", &json!({ "at": RUN_AT }))
        .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["results"], json!([]), "rival has no devices: {run}");

    // acme's job of the same id: its results are its own, and rival reads none of them.
    acme.create("/v1/stat-jobs", &job(&["n-1", "s-1"])).await?;
    let (status, run) = acme
        .post("/v1/stat-jobs/avg/run", &json!({ "at": RUN_AT }))
        .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(computed_for(&run), ["n-1", "s-1"], "{run}");
    let window = "from=2026-11-23T12:00:00Z&to=2026-11-23T13:00:00Z";
    let (status, _) = rival
        .get(&format!("/v1/stat-jobs/avg/results?device=n-1&{window}"))
        .await?;
    assert_eq!(status, 404);

    // A scoped operator runs the job for their department's devices, and reads only those.
    let nora = tenant_user(
        &running,
        &acme,
        "acme",
        "nora",
        &["operator"],
        Some("north"),
    )
    .await?;
    let (status, run) = nora
        .post("/v1/stat-jobs/avg/run", &json!({ "at": RUN_AT }))
        .await?;
    assert_eq!(status, 200, "{run}");
    assert_eq!(computed_for(&run), ["n-1"], "{run}");
    let (status, _) = nora
        .get(&format!("/v1/stat-jobs/avg/results?device=s-1&{window}"))
        .await?;
    assert_eq!(status, 404);
    // ... and cannot save a job naming a device she does not see.
    let (status, problem) = nora.put("/v1/stat-jobs/avg", &job(&["s-1"])).await?;
    assert_eq!(status, 422, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_grant_gives_only_its_action() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    two_departments(&running, &admin).await?;
    let (status, role) = admin
        .put(
            "/v1/roles/south-reader",
            &json!({ "permissions": [ { "object": "department:south", "action": "GET" } ] }),
        )
        .await?;
    assert_eq!(status, 200, "{role}");
    let nora = tenant_user(
        &running,
        &admin,
        "acme",
        "nora",
        &["operator", "south-reader"],
        Some("north"),
    )
    .await?;
    // She reads south's data ...
    for path in ["/v1/devices/s-1", "/v1/devices/s-1/latest"] {
        assert_eq!(nora.get(path).await?.0, 200, "{path}");
    }
    // ... and changes none of it: not the device, its commands, its shadow, its token.
    let writes = [
        (
            "PUT",
            "/v1/devices/s-1",
            json!({ "identification_code": "s-1", "product_id": "air", "department_id": "south", "name": "mine" }),
        ),
        (
            "POST",
            "/v1/devices/s-1/commands",
            json!({ "name": "reboot", "payload": {} }),
        ),
        (
            "PUT",
            "/v1/devices/s-1/shadow/desired",
            json!({ "interval_s": 1 }),
        ),
        ("POST", "/v1/devices/s-1/token", json!({})),
        ("DELETE", "/v1/devices/s-1", json!({})),
    ];
    for (method, path, body) in &writes {
        let (status, answer) = match *method {
            "PUT" => nora.put(path, body).await?,
            "DELETE" => nora.delete(path).await?,
            _ => nora.post(path, body).await?,
        };
        assert!(
            status == 403 || status == 404,
            "{method} {path}: {status} {answer}"
        );
    }
    let (_, device) = admin.get("/v1/devices/s-1").await?;
    assert_eq!(device["department_id"], "south", "{device}");
    assert_ne!(device["name"], "mine", "{device}");
    // Her own department she changes as her operator role allows.
    let (status, answer) = nora
        .put(
            "/v1/devices/n-1",
            &json!({ "identification_code": "n-1", "product_id": "air", "department_id": "north", "name": "mine" }),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_name_only_the_tenants_own_sns_destinations() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    let arn = "arn:aws:sns:local:000000000000:";
    let email = |id: &str, topic: String| json!({ "id": id, "name": id, "kind": { "type": "email", "topic_arn": topic } });
    for topic in [
        // The alarm-events topic: what is published there comes back as alarm events.
        format!("{arn}iot-local-alarm-events"),
        // Another tenant's topic, and one outside the platform's names.
        format!("{arn}iot-local-email-rival-ops"),
        "arn:aws:sns:us-east-1:123456789012:anything".to_owned(),
    ] {
        let (status, problem) = acme
            .post("/v1/channels", &email("mail", topic.clone()))
            .await?;
        assert_eq!(status, 422, "{topic}: {problem}");
        assert_eq!(
            problem["errors"][0]["pointer"], "/kind/topic_arn",
            "{problem}"
        );
    }
    let (status, push) = acme
        .post(
            "/v1/channels",
            &json!({ "id": "push", "name": "push", "kind": { "type": "push",
                "endpoint_arns": [format!("{arn}iot-local-alarm-events")] } }),
        )
        .await?;
    assert_eq!(status, 422, "{push}");
    acme.create(
        "/v1/channels",
        &email("mail", format!("{arn}iot-local-email-acme-ops")),
    )
    .await?;
    let (status, problem) = acme
        .put(
            "/v1/channels/mail",
            &email("mail", format!("{arn}iot-local-alarm-events")),
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_channels_point_at_public_addresses_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    let hook = |url: &str| {
        json!({ "id": "hook", "name": "hook",
                "kind": { "type": "webhook", "flavor": "generic", "url": url } })
    };
    // The tests allow 127.0.0.1 only; every other internal address is refused at save.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://10.0.0.1/hook",
        "http://0x7f000002/hook",
        "ftp://example.com/hook",
    ] {
        let (status, problem) = acme.post("/v1/channels", &hook(url)).await?;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/kind/url", "{problem}");
    }
    acme.create("/v1/channels", &hook("http://127.0.0.1:9/hook"))
        .await?;
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_signs_devices_in_and_keeps_them_to_their_own_topics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    two_departments(&running, &admin).await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    let north = device_token(&admin, "n-1").await?;
    let south = device_token(&admin, "s-1").await?;

    // No credential, a wrong one, another device's, or another device's client id: refused.
    let refusals = [
        ("n-1", None, ConnectReturnCode::NotAuthorized),
        (
            "n-1",
            Some(("n-1", "n-1.wrong")),
            ConnectReturnCode::BadUserNamePassword,
        ),
        (
            "n-1",
            Some(("n-1", south.as_str())),
            ConnectReturnCode::BadUserNamePassword,
        ),
        (
            "n-1",
            Some(("s-1", south.as_str())),
            ConnectReturnCode::BadClientId,
        ),
        (
            "ghost",
            Some(("ghost", "ghost.x")),
            ConnectReturnCode::BadUserNamePassword,
        ),
    ];
    for (client_id, login, expected) in refusals {
        let answer = connect_as(broker, client_id, login).await?;
        assert_eq!(answer.err(), Some(expected), "{client_id} {login:?}");
    }

    // Signed in, a device subscribes to its own topics only.
    let (client, mut events) = connect_as(broker, "n-1", Some(("n-1", &north)))
        .await?
        .map_err(|code| format!("refused: {code:?}"))?;
    for (filter, allowed) in [
        ("#", false),
        ("things/+/down/#", false),
        ("things/s-1/down/#", false),
        ("$aws/things/s-1/shadow/#", false),
        ("things/n-1/down/#", true),
    ] {
        client.subscribe(filter, QoS::AtLeastOnce).await?;
        let codes = next_suback(&mut events)
            .await?
            .ok_or("the connection ended")?;
        assert_eq!(
            codes,
            [if allowed {
                SubscribeReasonCode::Success(QoS::AtMostOnce)
            } else {
                SubscribeReasonCode::Failure
            }],
            "{filter}"
        );
    }
    // Publishing as another device ends the connection, and nothing is stored.
    client
        .publish(
            "things/s-1/up/telemetry",
            QoS::AtLeastOnce,
            false,
            r#"{"ts": 1795435300, "temp": 99.5, "hum": 40, "co2": 600}"#,
        )
        .await?;
    assert!(
        ended_without_puback(&mut events).await?,
        "the broker acknowledged a publish to another device's topic"
    );
    let (_, latest) = admin.get("/v1/devices/s-1/latest").await?;
    assert!(!latest.to_string().contains("99.5"), "{latest}");

    // A device's session is taken over only by the device itself.
    let (_first, mut first_events) = connect_as(broker, "s-1", Some(("s-1", &south)))
        .await?
        .map_err(|code| format!("refused: {code:?}"))?;
    let stolen = connect_as(broker, "s-1", Some(("s-1", &north))).await?;
    assert_eq!(stolen.err(), Some(ConnectReturnCode::BadUserNamePassword));
    let still_up = tokio::time::timeout(Duration::from_millis(300), first_events.poll()).await;
    assert!(
        still_up.is_err() || still_up.is_ok_and(|e| e.is_ok()),
        "the device's session survived the attempt"
    );

    // A token issued again ends the session of the one it replaces, which signs in no more.
    let renewed = device_token(&admin, "s-1").await?;
    let (_, ended) = received_topics(&mut first_events, Duration::from_secs(3)).await;
    assert!(ended, "the replaced token's session ended");
    let old = connect_as(broker, "s-1", Some(("s-1", &south))).await?;
    assert_eq!(old.err(), Some(ConnectReturnCode::BadUserNamePassword));
    let (_, mut renewed_events) = connect_as(broker, "s-1", Some(("s-1", &renewed)))
        .await?
        .map_err(|code| format!("refused: {code:?}"))?;
    // Deleting the token ends that session too.
    assert_eq!(admin.delete("/v1/devices/s-1/token").await?.0, 204);
    let (_, ended) = received_topics(&mut renewed_events, Duration::from_secs(3)).await;
    assert!(ended, "the deleted token's session ended");
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_with_dots_authenticates_over_http() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    air_product(&admin).await?;
    admin
        .create("/v1/departments", &json!({ "id": "hq", "name": "HQ" }))
        .await?;
    admin
        .create(
            "/v1/devices",
            &json!({ "uid": "plant.1.air", "identification_code": "P1", "product_id": "air", "department_id": "hq" }),
        )
        .await?;
    let token = device_token(&admin, "plant.1.air").await?;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/ingest", running.http_addr))
        .header("authorization", format!("Device {token}"))
        .body(r#"{"ts": 1795435200, "temp": 21.5, "hum": 40, "co2": 600}"#)
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 200, "{}", answer.text().await?);
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_queries_name_a_bounded_number_of_signals() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    two_departments(&running, &admin).await?;
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    for route in ["telemetry", "latest"] {
        let path = format!("/v1/devices/n-1/{route}?signals={}", many.join(","));
        let (status, problem) = admin.get(&path).await?;
        assert_eq!(status, 400, "{route}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/signals", "{problem}");
    }
    let (status, _) = admin
        .get(&format!(
            "/v1/devices/n-1/latest?signals={}",
            many[..100].join(",")
        ))
        .await?;
    assert_eq!(status, 200);
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_or_acts_on_rights_beyond_their_own() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    for id in ["north", "south"] {
        admin
            .create("/v1/departments", &json!({ "id": id, "name": id }))
            .await?;
    }
    let role = |grants: &[(&str, &str)]| json!({ "permissions": grants.iter().map(|(o, a)| json!({ "object": o, "action": a })).collect::<Vec<_>>() });
    for (name, grants) in [
        (
            "helpdesk",
            role(&[
                ("/v1/users*", "*"),
                ("/v1/roles*", "*"),
                ("/v1/devices*", "GET"),
            ]),
        ),
        ("device-reader", role(&[("/v1/devices*", "GET")])),
    ] {
        let (status, answer) = admin.put(&format!("/v1/roles/{name}"), &grants).await?;
        assert_eq!(status, 200, "{answer}");
    }
    let hal = tenant_user(
        &running,
        &admin,
        "acme",
        "hal",
        &["helpdesk"],
        Some("north"),
    )
    .await?;
    tenant_user(&running, &admin, "acme", "ada", &["admin"], None).await?;
    let new_user = |id: &str, roles: &[&str], department: &str| json!({ "id": id, "password": "a new user password", "roles": roles, "department_id": department });

    // Giving roles: only those whose every right hal holds, in departments hal manages.
    for (body, pointer) in [
        (new_user("u1", &["admin"], "north"), "/roles/0"),
        (new_user("u2", &["viewer"], "north"), "/roles/0"),
        (
            new_user("u3", &["device-reader"], "south"),
            "/department_id",
        ),
    ] {
        let (status, problem) = hal.post("/v1/users", &body).await?;
        assert_eq!(status, 403, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        let id = body["id"].as_str().unwrap_or_default();
        assert_eq!(
            admin.get(&format!("/v1/users/{id}")).await?.0,
            404,
            "{id} was not made"
        );
    }
    hal.create("/v1/users", &new_user("u4", &["device-reader"], "north"))
        .await?;
    // Nor to himself.
    let (status, problem) = hal
        .put(
            "/v1/users/hal",
            &json!({ "roles": ["admin"], "department_id": "north" }),
        )
        .await?;
    assert_eq!(status, 403, "{problem}");
    let (_, me) = admin.get("/v1/users/hal").await?;
    assert_eq!(me["roles"], json!(["helpdesk"]));

    // Acting on a user who holds more: roles, password, second factor, deletion.
    for (status, problem) in [
        hal.put("/v1/users/ada", &json!({ "roles": [] })).await?,
        hal.put(
            "/v1/users/ada/password",
            &json!({ "password": "taken over password" }),
        )
        .await?,
        hal.delete("/v1/users/ada/mfa").await?,
        hal.delete("/v1/users/ada").await?,
    ] {
        assert_eq!(status, 403, "{problem}");
    }
    Api::login(running.http_addr, "acme", "ada", iot_tests::USER_PASSWORD).await?;
    let (_, ada) = admin.get("/v1/users/ada").await?;
    assert_eq!(ada["roles"], json!(["admin"]));

    // A role's rights change its members: only one who holds them all may change it, and
    // only to rights they hold.
    for (name, grants) in [
        (
            "device-reader",
            role(&[("/v1/devices*", "GET"), ("/v1/alarms*", "GET")]),
        ),
        ("helpdesk", role(&[("/v1/*", "*")])),
        ("admin", role(&[("/v1/users*", "*")])),
    ] {
        let (status, problem) = hal.put(&format!("/v1/roles/{name}"), &grants).await?;
        assert_eq!(status, 403, "{name}: {problem}");
    }
    assert_eq!(hal.delete("/v1/roles/admin").await?.0, 403);
    let (status, answer) = hal
        .put(
            "/v1/roles/device-reader",
            &role(&[("/v1/devices/*/latest", "GET")]),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    let (_, admin_role) = admin.get("/v1/roles/admin").await?;
    assert_eq!(admin_role["permissions"].as_array().map(Vec::len), Some(2));
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_their_roles_are_saved_together_or_not_at_all() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    // A login named like a role would pass its roles to the role's members.
    let (status, problem) = admin
        .post(
            "/v1/users",
            &json!({ "id": "operator", "password": "a new user password", "roles": ["admin"] }),
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    // Taking away one's own admin role fails the policy check: the name stays as it was.
    let (status, problem) = admin
        .put(
            "/v1/users/admin",
            &json!({ "name": "Renamed", "roles": [] }),
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    let (_, me) = admin.get("/v1/users/admin").await?;
    assert_eq!(
        (&me["name"], &me["roles"]),
        (&json!("Administrator"), &json!(["admin"]))
    );
    running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_is_one_of_the_callers_own_devices() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    two_departments(&running, &admin).await?;
    let rival = tenant_admin(&running, "rival").await?;
    air_product(&rival).await?;
    rival
        .create("/v1/departments", &json!({ "id": "ops", "name": "ops" }))
        .await?;
    let sub = |gateway: &str| {
        json!({ "uid": "r-sub", "identification_code": "R", "product_id": "air",
                "department_id": "ops", "gateway_uid": gateway })
    };
    for gateway in ["n-1", "r-sub", "ghost"] {
        let (status, problem) = rival.post("/v1/devices", &sub(gateway)).await?;
        assert_eq!(status, 422, "{gateway}: {problem}");
        assert_eq!(problem["errors"][0]["pointer"], "/gateway_uid", "{problem}");
    }
    let south_operator = tenant_user(
        &running,
        &admin,
        "acme",
        "sam",
        &["operator"],
        Some("south"),
    )
    .await?;
    let (status, problem) = south_operator
        .post(
            "/v1/devices",
            &json!({ "uid": "s-sub", "identification_code": "S", "product_id": "air",
                     "department_id": "south", "gateway_uid": "n-1" }),
        )
        .await?;
    assert_eq!(
        status, 422,
        "a gateway outside the caller's departments: {problem}"
    );
    south_operator
        .create(
            "/v1/devices",
            &json!({ "uid": "s-sub", "identification_code": "S", "product_id": "air",
                     "department_id": "south", "gateway_uid": "s-1" }),
        )
        .await?;
    running.shutdown().await;
    Ok(())
}

/// What a TLS CONNECT as `client_id` is answered: accepted, or why not.
async fn connect_tls(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<(&str, &str)>,
    client_id: &str,
) -> Result<Result<(), String>, Error> {
    Ok(TlsSession::connect(addr, ca_pem, client, client_id)
        .await?
        .map(|_| ()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_signs_in_devices_by_their_certificate_of_the_device_ca() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    two_departments(&running, &admin).await?;
    let tls = running.mqtts_addr.ok_or("no TLS listener")?;
    let ca = std::fs::read_to_string(dir.path().join("device-ca.pem"))?;
    let issued = admin
        .create("/v1/devices/n-1/certificate", &json!({}))
        .await?;
    let (cert, key) = (
        issued["certificate_pem"].as_str().ok_or("no certificate")?,
        issued["private_key_pem"].as_str().ok_or("no key")?,
    );
    assert_eq!(issued["endpoint"], format!("mqtts://{tls}"));
    assert_eq!(
        connect_tls(tls, &ca, Some((cert, key)), "n-1").await?,
        Ok(())
    );
    // The certificate is n-1's only; none, or one of another CA, is refused.
    assert_eq!(
        connect_tls(tls, &ca, Some((cert, key)), "s-1").await?,
        Err("refused: BadUserNamePassword".to_owned())
    );
    assert!(connect_tls(tls, &ca, None, "n-1").await?.is_err());
    let rogue_key = rcgen::KeyPair::generate()?;
    let mut rogue_ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    rogue_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let rogue_issuer = rcgen::Issuer::new(rogue_ca, rogue_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "n-1");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let forged = leaf.signed_by(&leaf_key, &rogue_issuer)?;
    let answer = connect_tls(
        tls,
        &ca,
        Some((&forged.pem(), &leaf_key.serialize_pem())),
        "n-1",
    )
    .await?;
    assert!(answer.is_err(), "a certificate of another CA: {answer:?}");
    // A revoked certificate signs nobody in.
    assert_eq!(admin.delete("/v1/devices/n-1/certificate").await?.0, 204);
    assert_eq!(
        connect_tls(tls, &ca, Some((cert, key)), "n-1").await?,
        Err("refused: BadUserNamePassword".to_owned())
    );
    running.shutdown().await;
    Ok(())
}

/// A ready package `fw-2` of `air` in the admin's tenant.
async fn ready_package(admin: &Api) -> TestResult {
    let image = b"air firmware 2.0.0";
    admin
        .create(
            "/v1/firmware",
            &json!({ "id": "fw-2", "product_id": "air", "version": "2.0.0", "size": image.len(),
                     "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(image)) }),
        )
        .await?;
    let (status, ready) = admin.put_bytes("/v1/firmware/fw-2/content", image).await?;
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
    Ok(())
}

fn rollout(id: &str, target: Value) -> Value {
    json!({ "id": id, "package_id": "fw-2", "target": target, "rate": { "max_per_minute": 100 } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_and_rollouts_stay_within_their_tenant_and_the_callers_departments() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    two_departments(&running, &acme).await?;
    ready_package(&acme).await?;
    let rival = tenant_admin(&running, "rival").await?;
    air_product(&rival).await?;

    // Another tenant's package, rollouts and devices are not there for rival.
    for path in ["/v1/firmware/fw-2", "/v1/devices/n-1/firmware"] {
        assert_eq!(rival.get(path).await?.0, 404, "{path}");
    }
    let listed = rival.all_pages("/v1/firmware", 10).await?;
    assert!(listed.is_empty(), "{listed:?}");
    let (status, _) = rival
        .post("/v1/rollouts", &rollout("r", json!({ "type": "product" })))
        .await?;
    assert_eq!(status, 404, "acme's package is not rival's");
    ready_package(&rival).await?;
    let named = json!({ "type": "devices", "uids": ["n-1"] });
    let (status, problem) = rival.post("/v1/rollouts", &rollout("r", named)).await?;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (422, &json!("/target/uids")),
        "{problem}"
    );
    let (status, problem) = rival
        .post("/v1/rollouts", &rollout("r", json!({ "type": "product" })))
        .await?;
    assert_eq!(
        (status, &problem["errors"][0]["pointer"]),
        (422, &json!("/target")),
        "rival has no devices: {problem}"
    );

    // An operator of north reaches north's devices only.
    let north = tenant_user(
        &running,
        &acme,
        "acme",
        "nora",
        &["operator"],
        Some("north"),
    )
    .await?;
    for (target, pointer) in [
        (
            json!({ "type": "devices", "uids": ["s-1"] }),
            "/target/uids",
        ),
        (
            json!({ "type": "department", "department_id": "south" }),
            "/target/department_id",
        ),
    ] {
        let (status, problem) = north.post("/v1/rollouts", &rollout("r", target)).await?;
        assert_eq!(
            (status, problem["errors"][0]["pointer"].as_str()),
            (422, Some(pointer)),
            "{problem}"
        );
    }
    let mine = north
        .create(
            "/v1/rollouts",
            &rollout("north-only", json!({ "type": "product" })),
        )
        .await?;
    assert_eq!(mine["counts"]["queued"], 1, "n-1 only: {mine}");
    let everyone = acme
        .create(
            "/v1/rollouts",
            &rollout("all", json!({ "type": "product" })),
        )
        .await?;
    assert_eq!(everyone["counts"]["queued"], 2, "{everyone}");
    let seen = north.all_pages("/v1/rollouts/all/executions", 10).await?;
    let uids: Vec<&str> = seen
        .iter()
        .filter_map(|e| e["device_uid"].as_str())
        .collect();
    assert_eq!(uids, ["n-1"], "north sees its own devices' executions");
    let (status, problem) = north.post("/v1/rollouts/all/cancel", &json!({})).await?;
    assert_eq!(status, 403, "it reaches south too: {problem}");
    let (status, cancelled) = north
        .post("/v1/rollouts/north-only/cancel", &json!({}))
        .await?;
    assert_eq!(
        (status, &cancelled["status"]),
        (200, &json!("canceled")),
        "{cancelled}"
    );
    assert_eq!(rival.get("/v1/rollouts/all").await?.0, 404);
    running.shutdown().await;
    Ok(())
}
