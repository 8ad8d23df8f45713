//! Devices through the API: HTTP ingest with their own token, provisioning, desired
//! configuration and commands.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_without_mqtt_post_over_http_with_their_own_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let admin = Api::new(running.http_addr).await?;
    air_product(&admin).await?;
    for uid in ["air-1", "air-2"] {
        admin
            .create(
                "/v1/devices",
                &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": "hq" }),
            )
            .await?;
    }
    let (status, issued) = admin.post("/v1/devices/air-1/token", &json!({})).await?;
    assert_eq!(status, 201, "{issued}");
    let token = issued["device_token"]
        .as_str()
        .ok_or("no token")?
        .to_owned();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/ingest", running.http_addr);
    let post = |auth: String, body: String| {
        client
            .post(&url)
            .header("authorization", auth)
            .body(body)
            .send()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let good = format!(r#"{{"ts": {now}, "temp": 22.5, "hum": 40, "co2": 600}}"#);

    let response = post(format!("Device {token}"), good.clone()).await?;
    assert_eq!(response.status().as_u16(), 200);
    let receipt: Value = response.json().await?;
    assert_eq!(receipt, json!({ "status": "stored", "records": 1 }));
    let (_, latest) = admin.get("/v1/devices/air-1/latest").await?;
    assert_eq!(latest["signals"]["temperature"]["value"], 22.5, "{latest}");

    // What the script refuses is kept with the reason, as over MQTT.
    let response = post(format!("Device {token}"), "not json".into()).await?;
    assert_eq!(response.status().as_u16(), 422);
    let receipt: Value = response.json().await?;
    assert_eq!(receipt["status"], "rejected", "{receipt}");

    // A wrong secret, another device's name with this secret, a user's token: refused.
    let (_, secret) = token.split_once('.').ok_or("token shape")?;
    for auth in [
        format!("Device air-1.{}x", secret),
        format!("Device air-2.{secret}"),
        format!("Bearer {}", admin.token().unwrap_or_default()),
        String::new(),
    ] {
        let response = post(auth.clone(), good.clone()).await?;
        assert_eq!(response.status().as_u16(), 401, "{auth}");
    }
    // More devices at once from CSV: each row on its own, refusals by line.
    let (status, imported) = admin
        .put_text_as(
            "POST",
            "/v1/devices/import",
            "uid,identification_code,product_id,department_id,name\n\
             air-3,SN-3,air,hq,Lab 3\n\
             air-4,SN-4,nope,hq,Lab 4\n\
             air-1,SN-9,air,hq,again\n\
             bad uid,SN-5,air,hq,x\n",
        )
        .await?;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["created"], json!(["air-3"]), "{imported}");
    let lines: Vec<u64> = imported["refused"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["line"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(lines, [3, 4, 5], "{imported}");
    assert_eq!(admin.get("/v1/devices/air-3").await?.1["name"], "Lab 3");

    // Lists come a page at a time: `limit`, and `next` as the following page's `cursor`.
    let uids: Vec<Value> = admin
        .all_pages("/v1/devices", 2)
        .await?
        .iter()
        .map(|d| d["uid"].clone())
        .collect();
    assert_eq!(uids, ["air-1", "air-2", "air-3"]);
    assert_eq!(admin.get("/v1/devices?limit=0").await?.0, 400);
    assert_eq!(admin.get("/v1/devices?cursor=not-ours").await?.0, 400);

    // The data exported as CSV and JSON files, downloaded through the API.
    admin
        .create("/v1/departments", &json!({ "id": "hq", "name": "HQ" }))
        .await?;
    let viewer = user(&running, &admin, "vic", &["viewer"], Some("hq")).await?;
    let (status, csv_export) = viewer
        .post(
            "/v1/devices/air-1/export",
            &json!({ "format": "csv", "signals": ["temperature"] }),
        )
        .await?;
    assert_eq!(status, 201, "{csv_export}");
    assert_eq!(csv_export["points"], 1, "{csv_export}");
    let (status, csv) = viewer
        .get_text(csv_export["download_url"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,time_ms,signal,value");
    assert!(lines[1].ends_with(",temperature,22.5"), "{csv}");
    let (_, json_export) = viewer
        .post("/v1/devices/air-1/export", &json!({ "format": "json" }))
        .await?;
    let (_, rows) = viewer
        .get(json_export["download_url"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");
    // Nobody else's.
    let id = csv_export["id"].as_str().unwrap_or_default();
    let other = tenant_admin(&running, "other").await?;
    assert_eq!(
        other.get(&format!("/v1/exports/{id}/download")).await?.0,
        404
    );
    assert_eq!(
        Api::anonymous(running.http_addr)
            .get(&format!("/v1/exports/{id}/download"))
            .await?
            .0,
        401
    );
    let (status, problem) = viewer
        .post("/v1/devices/air-1/export", &json!({ "format": "xml" }))
        .await?;
    assert_eq!(status, 422, "{problem}");

    // Revoked, it stops working.
    assert_eq!(admin.delete("/v1/devices/air-1/token").await?.0, 204);
    assert_eq!(
        post(format!("Device {token}"), good)
            .await?
            .status()
            .as_u16(),
        401
    );
    running.shutdown().await;
    Ok(())
}

/// An MQTT client that collects what it receives on `filters`.
async fn listen(
    addr: std::net::SocketAddr,
    client_id: &str,
    token: &str,
    filters: &[&str],
) -> Result<
    (
        rumqttc::AsyncClient,
        tokio::sync::mpsc::Receiver<(String, Value)>,
    ),
    Error,
> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_credentials(client_id, token);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let (subscribed_tx, mut subscribed) = tokio::sync::mpsc::channel(1);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // The connection lives as long as its event loop task, which keeps the client.
    let keep = client.clone();
    tokio::spawn(async move {
        let _client = keep;
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = subscribed_tx.send(()).await;
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic, body)).await.is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    for filter in filters {
        client.subscribe(*filter, QoS::AtLeastOnce).await?;
        tokio::time::timeout(WAIT, subscribed.recv())
            .await
            .map_err(|_| "no SUBACK")?;
    }
    Ok((client, rx))
}

async fn next(
    rx: &mut tokio::sync::mpsc::Receiver<(String, Value)>,
) -> Result<(String, Value), Error> {
    Ok(tokio::time::timeout(WAIT, rx.recv())
        .await
        .map_err(|_| "nothing arrived")?
        .ok_or("the subscriber ended")?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_provisioned_configured_and_commanded_through_the_api() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let mqtt = running.mqtt_addr.ok_or("no embedded broker")?;
    let mqtts = running.mqtts_addr.ok_or("no embedded TLS listener")?;
    let admin = Api::new(running.http_addr).await?;
    air_product(&admin).await?;

    // Created with provisioning: the certificate and key come back once.
    let device = json!({ "uid": "air-1", "identification_code": "SN-1", "product_id": "air", "department_id": "hq" });
    let (status, created) = admin.post("/v1/devices?provision=true", &device).await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["uid"], "air-1");
    let credentials = &created["credentials"];
    assert!(
        credentials["certificate_pem"]
            .as_str()
            .unwrap_or_default()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        "{created}"
    );
    assert!(
        credentials["private_key_pem"]
            .as_str()
            .unwrap_or_default()
            .starts_with("-----BEGIN PRIVATE KEY-----"),
        "{created}"
    );
    assert_eq!(credentials["endpoint"], format!("mqtts://{mqtts}"));
    assert!(dir.path().join("device-ca.pem").exists());
    let (_, read) = admin.get("/v1/devices/air-1").await?;
    assert!(read.get("credentials").is_none(), "{read}");
    let (status, problem) = admin
        .post("/v1/devices/air-1/certificate", &json!({}))
        .await?;
    assert_eq!(status, 409, "{problem}");

    // Desired configuration: merged into the shadow, and the delta published to the device.
    let token = device_token(&admin, "air-1").await?;
    let (device_client, mut heard) = listen(
        mqtt,
        "air-1",
        &token,
        &[
            "things/air-1/down/#",
            "$aws/things/air-1/shadow/update/delta",
        ],
    )
    .await?;
    let (status, shadow) = admin
        .put(
            "/v1/devices/air-1/shadow/desired",
            &json!({ "interval_s": 30, "mode": "eco" }),
        )
        .await?;
    assert_eq!(status, 200, "{shadow}");
    assert_eq!(
        shadow["state"]["desired"],
        json!({ "interval_s": 30, "mode": "eco" })
    );
    let (topic, delta) = next(&mut heard).await?;
    assert_eq!(topic, "$aws/things/air-1/shadow/update/delta");
    assert_eq!(
        delta["state"],
        json!({ "interval_s": 30, "mode": "eco" }),
        "{delta}"
    );
    let (_, shadow) = admin
        .put(
            "/v1/devices/air-1/shadow/desired",
            &json!({ "interval_s": null }),
        )
        .await?;
    assert_eq!(
        shadow["state"]["desired"],
        json!({ "mode": "eco" }),
        "{shadow}"
    );
    assert_eq!(shadow["version"], 2, "{shadow}");
    next(&mut heard).await?;
    let (_, read) = admin.get("/v1/devices/air-1/shadow").await?;
    assert_eq!(read, shadow);
    let (status, _) = admin
        .put("/v1/devices/air-1/shadow/desired", &json!([1]))
        .await?;
    assert_eq!(status, 400);

    // The device reports its state as on AWS; the delta is then only what it lacks.
    device_client
        .publish(
            "$aws/things/air-1/shadow/update",
            rumqttc::QoS::AtLeastOnce,
            false,
            json!({ "state": { "reported": { "mode": "eco", "fw": "1.2" } } }).to_string(),
        )
        .await?;
    eventually("the reported state", WAIT, || async {
        let (_, shadow) = admin.get("/v1/devices/air-1/shadow").await?;
        Ok((shadow["state"]["reported"] == json!({ "mode": "eco", "fw": "1.2" })).then_some(()))
    })
    .await?;
    admin
        .put(
            "/v1/devices/air-1/shadow/desired",
            &json!({ "mode": "eco", "interval_s": 60 }),
        )
        .await?;
    let (_, delta) = next(&mut heard).await?;
    assert_eq!(delta["state"], json!({ "interval_s": 60 }), "{delta}");
    // A report that is not a shadow document is counted and dropped; the state stays.
    device_client
        .publish(
            "$aws/things/air-1/shadow/update",
            rumqttc::QoS::AtLeastOnce,
            false,
            "not json",
        )
        .await?;
    eventually("the rejected report counted", WAIT, || async {
        let metrics = admin.metrics().await?;
        Ok((iot_tests::counter(&metrics, "shadow_updates_rejected_total") >= 1.0).then_some(()))
    })
    .await?;
    let (_, shadow) = admin.get("/v1/devices/air-1/shadow").await?;
    assert_eq!(shadow["state"]["reported"]["fw"], "1.2", "{shadow}");

    // A command reaches the device with its id.
    let (status, sent) = admin
        .post(
            "/v1/devices/air-1/commands",
            &json!({ "name": "reboot", "delay_s": 5 }),
        )
        .await?;
    assert_eq!(status, 202, "{sent}");
    let (topic, command) = next(&mut heard).await?;
    assert_eq!(topic, "things/air-1/down/command");
    assert_eq!(command["name"], "reboot");
    assert_eq!(command["command_id"], sent["command_id"]);
    let viewer = user(&running, &admin, "vic", &["viewer"], None).await?;
    let (status, _) = viewer
        .post("/v1/devices/air-1/commands", &json!({ "name": "reboot" }))
        .await?;
    assert_eq!(status, 403);

    // Revoked, then provisioned again with a new certificate; deleting the device revokes too.
    assert_eq!(admin.delete("/v1/devices/air-1/certificate").await?.0, 204);
    // Without a certificate, as on AWS without a thing, nothing can be sent to it.
    let (status, problem) = admin
        .post("/v1/devices/air-1/commands", &json!({ "name": "reboot" }))
        .await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(admin.delete("/v1/devices/air-1/certificate").await?.0, 404);
    let (status, again) = admin
        .post("/v1/devices/air-1/certificate", &json!({}))
        .await?;
    assert_eq!(status, 201, "{again}");
    assert_ne!(again["certificate_id"], credentials["certificate_id"]);
    assert_eq!(admin.delete("/v1/devices/air-1").await?.0, 204);
    admin.create("/v1/devices", &device).await?;
    let (status, _) = admin
        .post("/v1/devices/air-1/certificate", &json!({}))
        .await?;
    assert_eq!(status, 201);
    running.shutdown().await;
    Ok(())
}
