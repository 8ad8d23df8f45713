//! Who reads what from the brokers: application credentials on the embedded broker, and the
//! password file and ACL `iot-local mosquitto-config` writes for Mosquitto.

use iot_e2e::mqtt::{connect_as, ended_without_puback, next_suback, received_topics};
use iot_e2e::{
    Api, Device, Error, TestResult, air_product, start_platform, tenant_admin, tenant_user,
};
use rumqttc::{ConnectReturnCode, QoS, SubscribeReasonCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

const READING: &str = r#"{"ts": 1795435200, "temp": 21.5, "hum": 40, "co2": 600}"#;

/// A department `ops`, the product `air` and the device `uid` in the tenant of `admin`.
async fn fleet(admin: &Api, uid: &str) -> TestResult {
    admin
        .create("/v1/departments", &json!({ "id": "ops", "name": "Ops" }))
        .await?;
    air_product(admin).await?;
    admin
        .create(
            "/v1/devices",
            &json!({ "uid": uid, "identification_code": uid, "product_id": "air", "department_id": "ops" }),
        )
        .await?;
    Ok(())
}

/// A new application credential of the caller's tenant: (user name, password).
async fn app_credential(api: &Api, name: &str) -> Result<(String, String), Error> {
    let issued: Value = api
        .create("/v1/app-credentials", &json!({ "name": name }))
        .await?;
    Ok((
        issued["username"].as_str().ok_or("no username")?.to_owned(),
        issued["password"].as_str().ok_or("no password")?.to_owned(),
    ))
}

/// Subscribes to `filter` and asserts the broker granted it.
async fn subscribed(
    broker: SocketAddr,
    client_id: &str,
    login: (&str, &str),
    filter: &str,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop), Error> {
    let (client, mut events) = connect_as(broker, client_id, Some(login))
        .await?
        .map_err(|code| format!("{client_id} refused: {code:?}"))?;
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    let codes = next_suback(&mut events)
        .await?
        .ok_or("the connection ended")?;
    assert!(
        matches!(codes.as_slice(), [SubscribeReasonCode::Success(_)]),
        "{filter}: {codes:?}"
    );
    Ok((client, events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_reads_its_own_tenants_devices_only_and_publishes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let broker = running.mqtt_addr.ok_or("no embedded broker")?;
    let acme = Api::new(running.http_addr).await?;
    let globex = tenant_admin(&running, "globex").await?;
    fleet(&acme, "a-1").await?;
    fleet(&globex, "g-1").await?;

    // Only a caller whose data reaches the whole tenant makes one: not a viewer, and not a
    // user whose role grants the route but whose data scope is one department.
    let viewer = tenant_user(&running, &acme, "acme", "vic", &["viewer"], None).await?;
    let (status, _) = viewer
        .post("/v1/app-credentials", &json!({ "name": "x" }))
        .await?;
    assert_eq!(status, 403);
    acme.put(
        "/v1/roles/integrator",
        &json!({ "permissions": [ { "object": "/v1/app-credentials*", "action": "*" } ] }),
    )
    .await?;
    let ida = tenant_user(&running, &acme, "acme", "ida", &["integrator"], Some("ops")).await?;
    let (status, problem) = ida
        .post("/v1/app-credentials", &json!({ "name": "x" }))
        .await?;
    assert_eq!(status, 403, "{problem}");

    let (user, password) = app_credential(&acme, "dashboard").await?;
    assert!(user.starts_with("app:"), "{user}");
    // Listed without its secret, to its own tenant only.
    let (_, listed) = acme.get("/v1/app-credentials").await?;
    assert_eq!(listed["items"][0]["username"], user.as_str(), "{listed}");
    assert!(!listed.to_string().contains(&password));
    let (_, theirs) = globex.get("/v1/app-credentials").await?;
    assert_eq!(theirs["items"], json!([]), "{theirs}");

    // A wrong password, or a client id that is not the application's, is refused.
    let wrong = connect_as(broker, &user, Some((&user, "wrong"))).await?;
    assert_eq!(wrong.err(), Some(ConnectReturnCode::BadUserNamePassword));
    let as_device = connect_as(broker, "a-1", Some((&user, &password))).await?;
    assert_eq!(as_device.err(), Some(ConnectReturnCode::BadClientId));

    // Wildcards are granted; only acme's device's messages arrive.
    let (_app, mut app_events) =
        subscribed(broker, &format!("{user}:worker-1"), (&user, &password), "#").await?;
    let (_app2, mut app2_events) =
        subscribed(broker, &user, (&user, &password), "things/+/up/#").await?;
    Device::sign_in(broker, &acme, "a-1")
        .await?
        .publish(READING)
        .await?;
    Device::sign_in(broker, &globex, "g-1")
        .await?
        .publish(READING)
        .await?;
    acme.post(
        "/v1/devices/a-1/commands",
        &json!({ "name": "reboot", "payload": {} }),
    )
    .await?;
    let (topics, _) = received_topics(&mut app_events, Duration::from_millis(700)).await;
    assert!(
        topics.contains(&"things/a-1/up/telemetry".to_owned()),
        "{topics:?}"
    );
    assert!(topics.iter().all(|t| !t.contains("g-1")), "{topics:?}");
    let (topics, _) = received_topics(&mut app2_events, Duration::from_millis(300)).await;
    assert_eq!(topics, ["things/a-1/up/telemetry"]);

    // It publishes nothing, not even to its tenant's device: the connection ends.
    let (client, mut events) = connect_as(broker, &user, Some((&user, &password)))
        .await?
        .map_err(|code| format!("refused: {code:?}"))?;
    client
        .publish(
            "things/a-1/up/telemetry",
            QoS::AtLeastOnce,
            false,
            READING.replace("21.5", "99.5"),
        )
        .await?;
    assert!(ended_without_puback(&mut events).await?);
    let (_, latest) = acme.get("/v1/devices/a-1/latest").await?;
    assert!(!latest.to_string().contains("99.5"), "{latest}");

    // Another tenant cannot delete it; its own administrator can, and it signs in no more.
    let id = listed["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        globex.delete(&format!("/v1/app-credentials/{id}")).await?.0,
        404
    );
    assert_eq!(
        acme.delete(&format!("/v1/app-credentials/{id}")).await?.0,
        204
    );
    let gone = connect_as(broker, &user, Some((&user, &password))).await?;
    assert_eq!(gone.err(), Some(ConnectReturnCode::BadUserNamePassword));
    running.shutdown().await;
    Ok(())
}
