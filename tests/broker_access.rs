//! Who reads what from the brokers: application credentials on the embedded broker, and the
//! password file and ACL `iot-local mosquitto-config` writes for Mosquitto.

use iot_local::mosquitto::Listen;
use iot_tests::mqtt::{TlsSession, connect_as, ended_without_puback, next_suback, received_topics};
use iot_tests::{
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
    assert!(user.starts_with("app@"), "{user}");
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

    // Another tenant cannot delete it; its own administrator can: its live session ends, and
    // it signs in no more.
    let (_live, mut live_events) = subscribed(broker, &user, (&user, &password), "#").await?;
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
    let (_, ended) = received_topics(&mut live_events, Duration::from_secs(3)).await;
    assert!(ended, "the deleted credential's session ended");
    let gone = connect_as(broker, &user, Some((&user, &password))).await?;
    assert_eq!(gone.err(), Some(ConnectReturnCode::BadUserNamePassword));
    running.shutdown().await;
    Ok(())
}

/// A managed tenant made by the platform operator, and its administrator signed in.
async fn managed_tenant(
    running: &iot_local::platform::Running,
    operator: &Api,
    id: &str,
) -> Result<Api, Error> {
    let (status, answer) = operator
        .post(
            "/v1/platform/tenants",
            &json!({ "id": id, "name": id, "admin_user": "boss", "admin_password": iot_tests::USER_PASSWORD }),
        )
        .await?;
    if status != 201 {
        return Err(format!("creating {id}: {status} {answer}").into());
    }
    Api::login(running.http_addr, id, "boss", iot_tests::USER_PASSWORD).await
}

/// Publishes `payload` to `topic` at QoS 1 as a signed-in client.
async fn publish_as(
    broker: SocketAddr,
    uid: &str,
    token: &str,
    topic: &str,
    payload: &str,
) -> TestResult {
    let (client, mut events) = connect_as(broker, uid, Some((uid, token)))
        .await?
        .map_err(|code| format!("{uid} refused: {code:?}"))?;
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_owned())
        .await?;
    // Mosquitto acknowledges a publish its ACL denies too, and drops it.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await??;
    Ok(())
}

/// Publishes on a connected client and polls it until the PUBACK; answers the topics that
/// arrived meanwhile.
async fn publish_on(
    client: &rumqttc::AsyncClient,
    events: &mut rumqttc::EventLoop,
    topic: &str,
    payload: &str,
) -> Result<Vec<String>, Error> {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_owned())
        .await?;
    let mut topics = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await? {
                rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) => return Ok(()),
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => topics.push(p.topic),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| "no PUBACK")?
    .map_err(|e: rumqttc::ConnectionError| e.to_string())?;
    Ok(topics)
}

async fn latest_has(api: &Api, uid: &str, value: &str) -> Result<bool, Error> {
    let (_, latest) = api.get(&format!("/v1/devices/{uid}/latest")).await?;
    Ok(latest.to_string().contains(value))
}

fn plain(port: u16) -> Listen {
    Listen {
        bind: "127.0.0.1".into(),
        port,
        tls_port: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_mosquitto_files_hold_each_identity_to_its_own_topics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    fleet(&acme, "a-1").await?;
    acme.create(
        "/v1/devices",
        &json!({ "uid": "a-2", "identification_code": "a-2", "product_id": "air", "department_id": "ops" }),
    )
    .await?;
    let globex = managed_tenant(&running, &acme, "globex").await?;
    fleet(&globex, "globex_g-1").await?;
    let a1 = iot_tests::device_token(&acme, "a-1").await?;
    let a2 = iot_tests::device_token(&acme, "a-2").await?;
    let g1 = iot_tests::device_token(&globex, "globex_g-1").await?;
    let (app, app_password) = app_credential(&acme, "dashboard").await?;
    running.shutdown().await;

    // What an operator runs: the files, then Mosquitto on them, then the platform on it.
    let port = iot_tests::free_port()?;
    let out = dir.path().join("mosquitto");
    let config = iot_local::config::Config {
        data_dir: dir.path().to_path_buf(),
        tenant: "acme".into(),
        ..iot_local::config::Config::default()
    };
    let listen = plain(port);
    let files = iot_local::mosquitto::from_platform(&config, &out, &listen).await?;
    assert_eq!((files.devices, files.applications), (3, 1));
    let mosquitto = iot_tests::Mosquitto::with_config(&out.join("mosquitto.conf"), port).await?;
    let broker = mosquitto.addr();
    let running = start_platform(dir.path(), Some(&mosquitto.url())).await?;
    let acme = Api::new(running.http_addr).await?;

    // Nobody without a credential, or with a wrong one.
    assert_eq!(
        connect_as(broker, "a-1", None).await?.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // (Mosquitto answers "not authorized" to a wrong password too.)
    assert_eq!(
        connect_as(broker, "a-1", Some(("a-1", &a2))).await?.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );

    // a-1 and an application watch everything they may; a-1 is stored through the platform's
    // own sign-in.
    // (A second session of a-1 would take this one over, as MQTT says: a-1 publishes on it.)
    let (a1_client, mut a1_events) = subscribed(broker, "a-1", ("a-1", &a1), "#").await?;
    let (_app, mut app_events) = subscribed(broker, &app, (&app, &app_password), "#").await?;
    let mut a1_topics = publish_on(
        &a1_client,
        &mut a1_events,
        "things/a-1/up/telemetry",
        READING,
    )
    .await?;
    iot_tests::eventually("a-1's reading", Duration::from_secs(15), || async {
        Ok(latest_has(&acme, "a-1", "21.5").await?.then_some(()))
    })
    .await?;

    // a-2 forges a reading of a-1's, then sends its own: only its own arrives anywhere.
    let forged = READING.replace("21.5", "99.5");
    publish_as(broker, "a-2", &a2, "things/a-1/up/telemetry", &forged).await?;
    publish_as(
        broker,
        "a-2",
        &a2,
        "things/a-2/up/telemetry",
        &READING.replace("21.5", "22.5"),
    )
    .await?;
    publish_as(
        broker,
        "globex_g-1",
        &g1,
        "things/globex_g-1/up/telemetry",
        READING,
    )
    .await?;
    iot_tests::eventually("a-2's reading", Duration::from_secs(15), || async {
        Ok(latest_has(&acme, "a-2", "22.5").await?.then_some(()))
    })
    .await?;
    assert!(!latest_has(&acme, "a-1", "99.5").await?);
    assert!(!latest_has(&acme, "a-2", "99.5").await?);

    let (more, ended) = received_topics(&mut a1_events, Duration::from_millis(500)).await;
    assert!(!ended, "a-1's session survives");
    a1_topics.extend(more);
    assert_eq!(
        a1_topics,
        ["things/a-1/up/telemetry"],
        "a-1 sees its own topics only"
    );
    let (app_topics, _) = received_topics(&mut app_events, Duration::from_millis(300)).await;
    assert_eq!(
        app_topics,
        ["things/a-1/up/telemetry", "things/a-2/up/telemetry"],
        "the application sees its tenant's devices, and no forgery"
    );
    // The application's own forgery is dropped as well (this session, the same identity's,
    // takes over the watching one).
    publish_as(
        broker,
        &app,
        &app_password,
        "things/a-2/up/telemetry",
        &forged,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!latest_has(&acme, "a-2", "99.5").await?);

    // A client id is the user name: a-2 naming a-1's client id does not take a-1's session.
    let (_taker, _taker_events) = connect_as(broker, "a-1", Some(("a-2", &a2)))
        .await?
        .map_err(|code| format!("refused: {code:?}"))?;
    let mut a1_topics = publish_on(
        &a1_client,
        &mut a1_events,
        "things/a-1/up/telemetry",
        &READING.replace("21.5", "23.5"),
    )
    .await?;
    let (more, ended) = received_topics(&mut a1_events, Duration::from_millis(500)).await;
    a1_topics.extend(more);
    assert!(
        !ended && a1_topics == ["things/a-1/up/telemetry"],
        "{a1_topics:?} {ended}"
    );

    // A token issued later signs in once the files are written again and Mosquitto reloads.
    acme.create(
        "/v1/devices",
        &json!({ "uid": "a-3", "identification_code": "a-3", "product_id": "air", "department_id": "ops" }),
    )
    .await?;
    let a3 = iot_tests::device_token(&acme, "a-3").await?;
    assert_eq!(
        connect_as(broker, "a-3", Some(("a-3", &a3))).await?.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    iot_local::mosquitto::from_platform(&config, &out, &listen).await?;
    mosquitto.reload()?;
    iot_tests::eventually("a-3 to sign in", Duration::from_secs(10), || async {
        Ok(connect_as(broker, "a-3", Some(("a-3", &a3)))
            .await?
            .ok()
            .map(|_| ()))
    })
    .await?;
    running.shutdown().await;
    Ok(())
}

/// A device certificate issued by the platform: (certificate, key).
async fn certificate(api: &Api, uid: &str) -> Result<(String, String), Error> {
    let issued = api
        .create(&format!("/v1/devices/{uid}/certificate"), &json!({}))
        .await?;
    Ok((
        issued["certificate_pem"]
            .as_str()
            .ok_or("no certificate")?
            .to_owned(),
        issued["private_key_pem"]
            .as_str()
            .ok_or("no key")?
            .to_owned(),
    ))
}

/// Whether Mosquitto's TLS listener lets `cert` in and takes a reading on the device's own
/// topic (the client id is the certificate's, whatever the client names).
async fn tls_reading(
    tls: SocketAddr,
    ca: &str,
    (cert, key): &(String, String),
    uid: &str,
    temp: &str,
) -> Result<Result<(), String>, Error> {
    let mut session =
        match TlsSession::connect(tls, ca, Some((cert.as_str(), key.as_str())), "any-id").await? {
            Ok(session) => session,
            Err(why) => return Ok(Err(why)),
        };
    let reading = READING.replace("21.5", temp);
    if !session
        .publish(&format!("things/{uid}/up/telemetry"), &reading)
        .await?
    {
        return Ok(Err("no PUBACK".into()));
    }
    Ok(Ok(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquittos_tls_listener_admits_current_certificates_of_the_device_ca_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let running = start_platform(dir.path(), None).await?;
    let acme = Api::new(running.http_addr).await?;
    fleet(&acme, "a-1").await?;
    let globex = managed_tenant(&running, &acme, "globex").await?;
    fleet(&globex, "globex_g-1").await?;
    let first = certificate(&acme, "a-1").await?;
    let g1 = certificate(&globex, "globex_g-1").await?;
    running.shutdown().await;

    let (port, tls_port) = (iot_tests::free_port()?, iot_tests::free_port()?);
    let out = dir.path().join("mosquitto");
    let config = iot_local::config::Config {
        data_dir: dir.path().to_path_buf(),
        tenant: "acme".into(),
        ..iot_local::config::Config::default()
    };
    let listen = Listen {
        tls_port: Some(tls_port),
        ..plain(port)
    };
    let files = iot_local::mosquitto::from_platform(&config, &out, &listen).await?;
    assert_eq!(files.devices, 2, "each device by its certificate alone");
    let mosquitto = iot_tests::Mosquitto::with_config(&out.join("mosquitto.conf"), port).await?;
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let running = start_platform(dir.path(), Some(&mosquitto.url())).await?;
    let acme = Api::new(running.http_addr).await?;
    let ca = std::fs::read_to_string(dir.path().join("device-ca.pem"))?;

    // The certificate signs a-1 in, and what it sends on its own topic is stored; what it
    // sends for another tenant's device is dropped.
    let globex = Api::login(
        running.http_addr,
        "globex",
        "boss",
        iot_tests::USER_PASSWORD,
    )
    .await?;
    assert!(
        tls_reading(tls, &ca, &first, "globex_g-1", "66.5")
            .await?
            .is_ok()
    );
    assert_eq!(tls_reading(tls, &ca, &first, "a-1", "31.5").await?, Ok(()));
    iot_tests::eventually(
        "a-1's reading over TLS",
        Duration::from_secs(15),
        || async { Ok(latest_has(&acme, "a-1", "31.5").await?.then_some(())) },
    )
    .await?;
    assert!(!latest_has(&globex, "globex_g-1", "66.5").await?);
    // No certificate, or one of another CA naming a-1, is refused.
    assert!(TlsSession::connect(tls, &ca, None, "a-1").await?.is_err());
    let rogue_key = rcgen::KeyPair::generate()?;
    let mut rogue_ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    rogue_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let rogue = rcgen::Issuer::new(rogue_ca, rogue_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "a-1");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let forged = (
        leaf.signed_by(&leaf_key, &rogue)?.pem(),
        leaf_key.serialize_pem(),
    );
    let answer = tls_reading(tls, &ca, &forged, "a-1", "77.5").await?;
    assert!(answer.is_err(), "a certificate of another CA: {answer:?}");

    // Replaced, the first certificate is refused once the files are written again and
    // Mosquitto reloads; the new one is admitted; a suspended tenant's is held.
    assert_eq!(acme.delete("/v1/devices/a-1/certificate").await?.0, 204);
    let second = certificate(&acme, "a-1").await?;
    let reason = json!({ "reason": "unpaid invoice" });
    let (status, _) = acme
        .post("/v1/platform/tenants/globex/suspend", &reason)
        .await?;
    assert_eq!(status, 200);
    let files = iot_local::mosquitto::from_platform(&config, &out, &listen).await?;
    assert_eq!(files.held.len(), 1, "g-1's certificate is held");
    mosquitto.reload()?;
    iot_tests::eventually(
        "the first certificate to be refused",
        Duration::from_secs(10),
        || async {
            Ok(tls_reading(tls, &ca, &first, "a-1", "41.5")
                .await?
                .is_err()
                .then_some(()))
        },
    )
    .await?;
    assert_eq!(tls_reading(tls, &ca, &second, "a-1", "32.5").await?, Ok(()));
    iot_tests::eventually(
        "a-1's reading by its new certificate",
        Duration::from_secs(15),
        || async { Ok(latest_has(&acme, "a-1", "32.5").await?.then_some(())) },
    )
    .await?;
    assert!(!latest_has(&acme, "a-1", "41.5").await?);
    assert!(
        tls_reading(tls, &ca, &g1, "globex_g-1", "51.5")
            .await?
            .is_err()
    );
    running.shutdown().await;
    Ok(())
}
