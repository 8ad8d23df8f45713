//! Tenants kept apart, and department data scopes within one.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reads_or_changes_another_tenants_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    acme.create("/v1/departments", &json!({ "id": "hq", "name": "HQ" }))
        .await?;
    air_product(&acme).await?;
    acme.create(
        "/v1/devices",
        &json!({ "uid": "air-1", "identification_code": "SN-1", "product_id": "air", "department_id": "hq" }),
    )
    .await?;
    acme.create(
        "/v1/stat-jobs",
        &json!({ "id": "avg", "name": "avg", "cron": "0 * * * *", "lead_ms": 3_600_000,
                 "signals": ["temperature"], "devices": { "type": "product", "product_id": "air" },
                 "script": "#{ n: count(series.temperature) }", "enabled": true }),
    )
    .await?;
    acme.create(
        "/v1/templates",
        &json!({ "id": "t", "name": "t", "subject": "", "body": "${alarm_id}" }),
    )
    .await?;
    user(&running, &acme, "alice", &["viewer"], Some("hq")).await?;

    let other = tenant_admin(&running, "other").await?;
    for path in [
        "/v1/devices/air-1",
        "/v1/devices/air-1/telemetry",
        "/v1/devices/air-1/latest",
        "/v1/products/air",
        "/v1/products/air/rules",
        "/v1/stat-jobs/avg",
        "/v1/stat-jobs/avg/results?device=air-1",
        "/v1/templates/t",
        "/v1/departments/hq",
        "/v1/users/alice",
    ] {
        let (status, body) = other.get(path).await?;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    for (path, body) in [
        (
            "/v1/devices/air-1",
            json!({ "identification_code": "X", "product_id": "air", "department_id": "hq" }),
        ),
        ("/v1/products/air", json!({ "name": "mine now" })),
        ("/v1/departments/hq", json!({ "name": "mine now" })),
        ("/v1/users/alice", json!({ "name": "mine now" })),
        (
            "/v1/users/alice/password",
            json!({ "password": "taken over now" }),
        ),
        (
            "/v1/templates/t",
            json!({ "name": "t", "subject": "", "body": "x" }),
        ),
    ] {
        let (status, answer) = other.put(path, &body).await?;
        assert_eq!(status, 404, "PUT {path}: {answer}");
    }
    for path in [
        "/v1/devices/air-1",
        "/v1/products/air",
        "/v1/stat-jobs/avg",
        "/v1/users/alice",
    ] {
        assert_eq!(other.delete(path).await?.0, 404, "DELETE {path}");
    }
    for path in [
        "/v1/devices",
        "/v1/products",
        "/v1/stat-jobs",
        "/v1/templates",
        "/v1/departments",
        "/v1/alarms",
        "/v1/audit",
    ] {
        let (status, list) = other.get(path).await?;
        assert_eq!(status, 200, "{path}: {list}");
        let ids: Vec<&Value> = list["items"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let leaked = ids.iter().any(|item| item.to_string().contains("acme"));
        assert!(!leaked, "{path} shows acme's data: {list}");
    }
    // Their own policy cannot reach into acme.
    let (status, problem) = other
        .put_text(
            "/v1/policy",
            "p, admin, other, /v1/*, *\ng, admin, admin, other\np, admin, acme, /v1/*, *\n",
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("line 3"),
        "{problem}"
    );
    // acme's user cannot log in to another tenant.
    let (status, _) = Api::anonymous(running.http_addr)
        .post(
            "/v1/auth/login",
            &json!({ "tenant": "other", "username": "alice", "password": PASSWORD }),
        )
        .await?;
    assert_eq!(status, 401);
    // And acme's data is untouched.
    assert_eq!(
        acme.get("/v1/devices/air-1").await?.1["department_id"],
        "hq"
    );
    assert_eq!(acme.get("/v1/users/alice").await?.1["name"], "alice");
    running.shutdown().await;
    Ok(())
}

/// `{"ts": ..., "temp": ...}` with a time of its own.
fn reading(temperature: f64, ts: i64) -> String {
    format!(r#"{{"ts": {ts}, "temp": {temperature}, "hum": 40, "co2": 600}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_the_data_of_their_department_subtree_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    for (id, parent) in [
        ("hq", None),
        ("north", Some("hq")),
        ("plant-1", Some("north")),
        ("south", Some("hq")),
    ] {
        admin
            .create(
                "/v1/departments",
                &json!({ "id": id, "name": id, "parent_id": parent }),
            )
            .await?;
    }
    // No loops in the tree.
    let (status, problem) = admin
        .put(
            "/v1/departments/north",
            &json!({ "name": "north", "parent_id": "plant-1" }),
        )
        .await?;
    assert_eq!(status, 422, "{problem}");
    air_product(&admin).await?;
    admin
        .create(
            "/v1/products/air/rules",
            &json!({ "id": "hot", "name": "Too hot", "enabled": true,
                "condition": { "type": "threshold", "signal": "temperature", "direction": "above",
                    "bands": [ { "level": "critical", "threshold": 40 } ], "deadband": 1 },
                "debounce": { "samples": 1, "for_ms": 0 } }),
        )
        .await?;
    for (uid, dept) in [("n-1", "plant-1"), ("s-1", "south")] {
        admin
            .create(
                "/v1/devices",
                &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": dept }),
            )
            .await?;
    }
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    for uid in ["n-1", "s-1"] {
        let mut device = Device::sign_in(broker, &admin, uid).await?;
        device.publish(reading(45.0, now)).await?;
    }
    eventually("both alarms", WAIT, || async {
        let (_, alarms) = admin.get("/v1/alarms").await?;
        Ok((alarms["items"].as_array().map(Vec::len) == Some(2)).then_some(()))
    })
    .await?;

    let nora = user(&running, &admin, "nora", &["operator"], Some("north")).await?;
    let (_, me) = nora.get("/v1/auth/me").await?;
    assert_eq!(me["data_scope"], json!(["north", "plant-1"]), "{me}");
    let (_, devices) = nora.get("/v1/devices").await?;
    let uids: Vec<&str> = devices["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["uid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(uids, ["n-1"], "{devices}");
    // Paging skips what the scope hides: one device per page, and it is hers.
    let paged: Vec<Value> = nora
        .all_pages("/v1/devices", 1)
        .await?
        .iter()
        .map(|d| d["uid"].clone())
        .collect();
    assert_eq!(paged, ["n-1"]);
    assert_eq!(nora.get("/v1/devices/n-1/latest").await?.0, 200);
    for path in [
        "/v1/devices/s-1",
        "/v1/devices/s-1/latest",
        "/v1/devices/s-1/telemetry",
    ] {
        assert_eq!(nora.get(path).await?.0, 404, "{path}");
    }
    let (_, alarms) = nora.get("/v1/alarms").await?;
    let seen: Vec<&str> = alarms["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["device_uid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(seen, ["n-1"], "{alarms}");
    // Alarms page with a cursor, as every list does.
    let (_, first) = admin.get("/v1/alarms?limit=1").await?;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1), "{first}");
    let cursor = first["next"].as_str().ok_or("no next cursor")?;
    let (_, second) = admin
        .get(&format!("/v1/alarms?limit=1&cursor={cursor}"))
        .await?;
    assert_eq!(
        second["items"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_ne!(
        first["items"][0]["alarm_id"],
        second["items"][0]["alarm_id"]
    );
    if let Some(cursor) = second["next"].as_str() {
        let (_, third) = admin
            .get(&format!("/v1/alarms?limit=1&cursor={cursor}"))
            .await?;
        assert_eq!(third["items"], json!([]), "{third}");
    }
    let (_, all) = admin.get("/v1/alarms?device=s-1").await?;
    let south_alarm = all["items"][0]["alarm_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = nora
        .post(&format!("/v1/alarms/{south_alarm}/acknowledge"), &json!({}))
        .await?;
    assert_eq!(
        status, 404,
        "an alarm outside the scope is not there for her"
    );
    // Nor can she put a device into a department she does not manage.
    let (status, problem) = nora
        .post(
            "/v1/devices",
            &json!({ "uid": "s-2", "identification_code": "s-2", "product_id": "air", "department_id": "south" }),
        )
        .await?;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = nora
        .put(
            "/v1/devices/n-1",
            &json!({ "identification_code": "n-1", "product_id": "air", "department_id": "south" }),
        )
        .await?;
    assert_eq!(status, 403, "{problem}");

    // A role can grant more: department:south, by the role API.
    let (status, role) = admin
        .put(
            "/v1/roles/south-reader",
            &json!({ "permissions": [ { "object": "department:south", "action": "GET" } ] }),
        )
        .await?;
    assert_eq!(status, 200, "{role}");
    admin
        .put(
            "/v1/users/nora",
            &json!({ "name": "Nora", "department_id": "north", "roles": ["operator", "south-reader"] }),
        )
        .await?;
    assert_eq!(nora.get("/v1/devices/s-1").await?.0, 200);
    running.shutdown().await;
    Ok(())
}
