//! AWS IoT Core and IoT Data against moto, through a recording proxy: registration with a
//! certificate and the device policy, the tenant's thing group, desired state in the shadow,
//! commands (moto accepts a publish but delivers it nowhere, so the test checks the request on
//! the wire), firmware jobs, and deregistration that revokes the certificate.

mod support;

use iot_aws::config::load_for_endpoint;
use iot_aws::testing::{emulator_config, unique_name};
use iot_aws::{IotGateway, IotSettings};
use iot_core::model::Device;
use iot_core::ports::{DeviceGateway, GatewayError, RolloutJob};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test]
async fn devices_are_registered_commanded_updated_and_removed() -> TestResult {
    let direct = emulator_config().await?;
    let iot = aws_sdk_iot::Client::new(&direct);
    let policy = unique_name("iot-dev-device");
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}]})
            .to_string(),
        )
        .send()
        .await?;
    let (proxy_url, faults) = support::proxy::proxy().await?;
    let config = load_for_endpoint(&Default::default(), &proxy_url).await;
    let prefix = unique_name("iot-dev-");
    let gateway = IotGateway::connect(
        &config,
        IotSettings {
            policy_name: policy.clone(),
            thing_group_prefix: prefix.clone(),
            suspended_policy_name: unique_name("iot-dev-tenant-suspended"),
            firmware_bucket: "firmware-bucket".into(),
            job_presign_role_arn: "arn:aws:iam::123456789012:role/ota-presign".into(),
        },
    )
    .await?;

    let uid = unique_name("pump");
    let device = Device {
        uid: uid.clone(),
        identification_code: "SN-1".into(),
        tenant_id: "acme".into(),
        product_id: "pump".into(),
        department_id: "plant".into(),
        name: "Pump 1".into(),
        data_since: 0,
        gateway_uid: None,
    };
    let credentials = gateway.register(&device).await?;
    assert!(credentials.certificate_pem.contains("BEGIN CERTIFICATE"));
    assert!(credentials.private_key_pem.contains("PRIVATE KEY"));
    assert!(!credentials.endpoint.is_empty());
    assert!(matches!(
        gateway.register(&device).await,
        Err(GatewayError::AlreadyRegistered(_))
    ));

    let thing = iot.describe_thing().thing_name(&uid).send().await?;
    assert_eq!(
        thing
            .attributes()
            .and_then(|a| a.get("tenant_id"))
            .map(String::as_str),
        Some("acme")
    );
    let members = iot
        .list_things_in_thing_group()
        .thing_group_name(format!("{prefix}acme"))
        .send()
        .await?;
    assert_eq!(members.things(), std::slice::from_ref(&uid));
    let principals = iot.list_thing_principals().thing_name(&uid).send().await?;
    let certificate_arn = principals
        .principals()
        .first()
        .cloned()
        .ok_or("no certificate attached")?;
    assert!(certificate_arn.ends_with(&credentials.certificate_id));
    let policies = iot
        .list_attached_policies()
        .target(&certificate_arn)
        .send()
        .await?;
    assert_eq!(
        policies
            .policies()
            .iter()
            .filter_map(|p| p.policy_name())
            .collect::<Vec<_>>(),
        [policy.as_str()]
    );

    gateway
        .set_desired(&uid, &json!({"interval_s": 30}))
        .await?;
    let data = aws_sdk_iotdataplane::Client::new(&direct);
    let shadow = data.get_thing_shadow().thing_name(&uid).send().await?;
    let shadow: serde_json::Value =
        serde_json::from_slice(shadow.payload().map(|p| p.as_ref()).unwrap_or_default())?;
    assert_eq!(shadow["state"]["desired"]["interval_s"], 30);
    let read = gateway.shadow(&uid).await?.ok_or("no shadow")?;
    assert_eq!(read["state"]["desired"]["interval_s"], 30, "{read}");

    gateway.send_command(&uid, &json!({"reboot": true})).await?;
    let publish = faults
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(method, path, _)| method == "POST" && path.starts_with("/topics/"))
        .cloned()
        .ok_or("no publish request was sent")?;
    assert_eq!(
        publish.1,
        format!("/topics/things%2F{uid}%2Fdown%2Fcommand?qos=1")
    );
    assert_eq!(publish.2, br#"{"reboot":true}"#);
    assert!(matches!(
        gateway.send_command("nobody", &json!({})).await,
        Err(GatewayError::UnknownDevice(_))
    ));

    // A rollout as an IoT job: its rate, abort rules and timeout are the job's, and the
    // document's URL is the placeholder IoT Jobs presigns at each delivery. The emulator
    // stores the job; it runs no executions (the event tests feed those in).
    let rollout = rollout(&unique_name("r"));
    let package = package();
    let devices = [uid.clone()];
    gateway
        .start_rollout(&RolloutJob {
            rollout: &rollout,
            package: &package,
            devices: &devices,
        })
        .await?;
    let job_id = iot_core::ota::job_id("acme", &rollout.id);
    let described = iot.describe_job().job_id(&job_id).send().await?;
    let job = described.job().ok_or("no job")?;
    assert_eq!(
        job.targets(),
        [thing.thing_arn().unwrap_or_default().to_owned()]
    );
    let presigned = job
        .presigned_url_config()
        .ok_or("no presigned URL config")?;
    assert_eq!(
        (presigned.role_arn(), presigned.expires_in_sec()),
        (
            Some("arn:aws:iam::123456789012:role/ota-presign"),
            Some(3_600)
        )
    );
    let rate = job
        .job_executions_rollout_config()
        .ok_or("no rollout config")?;
    assert_eq!(rate.maximum_per_minute(), Some(5));
    let criteria = job
        .abort_config()
        .map(|a| a.criteria_list().to_vec())
        .unwrap_or_default();
    assert_eq!(criteria.len(), 1, "{criteria:?}");
    assert_eq!(criteria[0].threshold_percentage(), 30.0);
    assert_eq!(criteria[0].min_number_of_executed_things(), 10);
    assert_eq!(
        job.timeout_config()
            .and_then(|t| t.in_progress_timeout_in_minutes()),
        Some(15)
    );
    let document: serde_json::Value = serde_json::from_str(
        iot.get_job_document()
            .job_id(&job_id)
            .send()
            .await?
            .document()
            .unwrap_or_default(),
    )?;
    assert_eq!(document["version"], "2.0.0");
    assert_eq!(document["sha256"], "ab".repeat(32));
    assert_eq!(
        document["url"],
        "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware-bucket/firmware/acme/fw-2.bin}"
    );
    gateway.cancel_rollout(&rollout, false).await?;
    let status = iot.describe_job().job_id(&job_id).send().await?;
    assert_eq!(
        status.job().and_then(|j| j.status()).map(|s| s.as_str()),
        Some("CANCELED")
    );

    gateway.deregister(&uid).await?;
    assert!(
        iot.describe_thing().thing_name(&uid).send().await.is_err(),
        "thing deleted"
    );
    assert!(
        iot.describe_certificate()
            .certificate_id(&credentials.certificate_id)
            .send()
            .await
            .is_err(),
        "certificate revoked and deleted"
    );
    assert!(matches!(
        gateway.deregister(&uid).await,
        Err(GatewayError::UnknownDevice(_))
    ));
    Ok(())
}

/// Suspending a tenant attaches the deny-all policy to its thing group (every device of the
/// tenant at once); resuming detaches it, and resuming twice is no error.
#[tokio::test]
async fn a_suspended_tenants_thing_group_carries_the_deny_policy_until_resumed() -> TestResult {
    let config = emulator_config().await?;
    let iot = aws_sdk_iot::Client::new(&config);
    let suspended = unique_name("iot-dev-tenant-suspended");
    iot.create_policy()
        .policy_name(&suspended)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iot:*", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await?;
    let prefix = unique_name("iot-dev-");
    let gateway = IotGateway::connect(
        &config,
        IotSettings {
            policy_name: unique_name("iot-dev-device"),
            thing_group_prefix: prefix.clone(),
            suspended_policy_name: suspended.clone(),
            firmware_bucket: "firmware-bucket".into(),
            job_presign_role_arn: "arn:aws:iam::123456789012:role/ota-presign".into(),
        },
    )
    .await?;
    let attached = || {
        let (iot, group) = (iot.clone(), format!("{prefix}acme"));
        async move {
            let arn = iot
                .describe_thing_group()
                .thing_group_name(group)
                .send()
                .await?
                .thing_group_arn()
                .unwrap_or_default()
                .to_owned();
            let policies = iot.list_attached_policies().target(arn).send().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                policies
                    .policies()
                    .iter()
                    .filter_map(|p| p.policy_name().map(str::to_owned))
                    .collect::<Vec<_>>(),
            )
        }
    };
    gateway.set_tenant_access("acme", false).await?;
    assert_eq!(attached().await?, std::slice::from_ref(&suspended));
    gateway.set_tenant_access("acme", false).await?;
    assert_eq!(
        attached().await?,
        std::slice::from_ref(&suspended),
        "attached once"
    );
    gateway.set_tenant_access("acme", true).await?;
    assert!(attached().await?.is_empty());
    gateway.set_tenant_access("acme", true).await?;
    Ok(())
}

fn rollout(id: &str) -> iot_core::ota::Rollout {
    use iot_core::ota::*;
    Rollout {
        id: id.into(),
        tenant_id: "acme".into(),
        package_id: "fw-2".into(),
        version: "2.0.0".into(),
        target: RolloutTarget::Product,
        rate: RolloutRate {
            max_per_minute: 5,
            exponential: None,
        },
        abort: vec![AbortRule {
            failure: FailureKind::All,
            threshold_percent: 30.0,
            min_executions: 10,
        }],
        in_progress_timeout_minutes: Some(15),
        start_at: None,
        status: RolloutStatus::InProgress,
        reason: None,
        skipped: vec![],
        created_at: 0,
        created_by: "admin".into(),
        ended_at: None,
    }
}

fn package() -> iot_core::ota::FirmwarePackage {
    iot_core::ota::FirmwarePackage {
        id: "fw-2".into(),
        tenant_id: "acme".into(),
        product_id: "pump".into(),
        version: "2.0.0".into(),
        notes: String::new(),
        size: 3,
        sha256: "ab".repeat(32),
        signature: None,
        status: iot_core::ota::PackageStatus::Ready,
        rejection: None,
        created_at: 0,
        created_by: "admin".into(),
    }
}
