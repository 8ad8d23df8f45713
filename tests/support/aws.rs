//! The deployed shape on the AWS emulator: the stack's tables, queues, topic and buckets under
//! unique names; a stand-in for Lambda's SQS event source mapping (receive a batch, hand it to
//! a handler as the SQS event Lambda would, delete what the handler did not report failed); and
//! a stand-in for the IoT Core telemetry rule (subscribe on a real broker, apply the rule's
//! SELECT, send to the ingest queue). moto executes neither IoT topic rules nor event source
//! mappings, so these two are the only parts played by the test.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use base64::Engine as _;
use iot_aws::testing::{emulator_config, unique_name};
use iot_functions::alarm::AlarmConfig;
use iot_functions::api::ApiConfig;
use iot_functions::backup::BackupConfig;
use iot_functions::ingest::{IngestConfig, RuleMessage};
use iot_functions::notify::NotifyConfig;
use iot_functions::stats::StatsConfig;
use iot_functions::stores::TelemetryBackend;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

use crate::Error;

/// The topic filter and SELECT of the template's telemetry rule.
pub const TELEMETRY_RULE_FILTER: &str = "things/+/up/#";

pub struct Stack {
    pub sdk: SdkConfig,
    pub meta_table: String,
    pub meta_table_arn: String,
    pub telemetry_table: String,
    pub ingest_queue: Queue,
    pub alarm_queue: Queue,
    pub notify_queue: Queue,
    pub alarm_events_topic_arn: String,
    pub raw_bucket: String,
    pub export_bucket: String,
    pub firmware_bucket: String,
    pub schedule_group: String,
    pub signing_key_secret_arn: String,
    pub totp_key_secret_arn: String,
    pub admin_password_secret_arn: String,
    pub device_policy_name: String,
    pub suspended_policy_name: String,
}

/// The first administrator's password in the emulated stack's secret.
pub const STACK_ADMIN_PASSWORD: &str = "stack admin password";

#[derive(Clone, Debug)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

impl Stack {
    /// Creates every resource the functions use, as the template declares them.
    pub async fn create() -> Result<Self, Error> {
        let sdk = emulator_config().await?;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let meta_table = unique_name("meta");
        let telemetry_table = unique_name("telemetry");
        iot_aws::dynamo::provision::create_meta_table(&dynamo, &meta_table).await?;
        iot_aws::dynamo::provision::create_telemetry_table(&dynamo, &telemetry_table).await?;
        // As in the template: point-in-time recovery on, which exports need.
        dynamo
            .update_continuous_backups()
            .table_name(&meta_table)
            .point_in_time_recovery_specification(
                aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()?,
            )
            .send()
            .await?;
        let meta_table_arn = dynamo
            .describe_table()
            .table_name(&meta_table)
            .send()
            .await?
            .table()
            .and_then(|t| t.table_arn())
            .unwrap_or_default()
            .to_owned();
        let schedule_group = unique_name("schedules");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let ingest_queue = create_queue(&sqs, "ingest").await?;
        let alarm_queue = create_queue(&sqs, "alarm").await?;
        let notify_queue = create_queue(&sqs, "notify").await?;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let alarm_events_topic_arn = iot_aws::testing::create_topic(&sns, "alarm-events").await?;
        // As in the template: the notify queue subscribes to the topic, SNS's envelope kept.
        sns.subscribe()
            .topic_arn(&alarm_events_topic_arn)
            .protocol("sqs")
            .endpoint(&notify_queue.arn)
            .send()
            .await?;
        // Statistics jobs become schedules in the stack's group.
        aws_sdk_scheduler::Client::new(&sdk)
            .create_schedule_group()
            .name(&schedule_group)
            .send()
            .await?;
        let s3 = iot_aws::s3::client(&sdk);
        let raw_bucket = unique_name("raw");
        let export_bucket = unique_name("exports");
        let firmware_bucket = unique_name("firmware");
        for bucket in [&raw_bucket, &export_bucket, &firmware_bucket] {
            s3.create_bucket().bucket(bucket).send().await?;
        }
        // As in the template: the API's signing key and first admin password are secrets.
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let mut arns = Vec::new();
        for (name, value) in [
            ("signing-key", iot_core::auth::secret::random_token(48)),
            ("totp-key", iot_core::auth::secret::random_token(48)),
            ("admin-password", STACK_ADMIN_PASSWORD.to_owned()),
        ] {
            let created = secrets
                .create_secret()
                .name(unique_name(name))
                .secret_string(value)
                .send()
                .await?;
            arns.push(created.arn().unwrap_or_default().to_owned());
        }
        let [
            signing_key_secret_arn,
            totp_key_secret_arn,
            admin_password_secret_arn,
        ] = <[String; 3]>::try_from(arns).map_err(|_| "three secrets")?;
        // As in the template: the device policy certificates get.
        let device_policy_name = unique_name("device");
        aws_sdk_iot::Client::new(&sdk)
            .create_policy()
            .policy_name(&device_policy_name)
            .policy_document(
                serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}]})
                .to_string(),
            )
            .send()
            .await?;
        // As in the template: the deny-all policy of a suspended tenant's thing group.
        let suspended_policy_name = unique_name("tenant-suspended");
        aws_sdk_iot::Client::new(&sdk)
            .create_policy()
            .policy_name(&suspended_policy_name)
            .policy_document(
                serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
                    "Action": "iot:*", "Resource": "*"}]})
                .to_string(),
            )
            .send()
            .await?;
        Ok(Self {
            sdk,
            device_policy_name,
            suspended_policy_name,
            signing_key_secret_arn,
            totp_key_secret_arn,
            admin_password_secret_arn,
            meta_table,
            meta_table_arn,
            telemetry_table,
            ingest_queue,
            alarm_queue,
            notify_queue,
            alarm_events_topic_arn,
            raw_bucket,
            export_bucket,
            firmware_bucket,
            schedule_group,
        })
    }

    fn telemetry(&self) -> TelemetryBackend {
        TelemetryBackend::DynamoDb {
            table: self.telemetry_table.clone(),
            // No expiry: the event samples carry fixed dates.
            retention_days: 0,
        }
    }

    pub fn ingest_config(&self) -> IngestConfig {
        IngestConfig {
            meta_table: self.meta_table.clone(),
            telemetry: self.telemetry(),
            alarm_queue_url: self.alarm_queue.url.clone(),
            raw_bucket: self.raw_bucket.clone(),
        }
    }

    pub fn alarm_config(&self) -> AlarmConfig {
        AlarmConfig {
            meta_table: self.meta_table.clone(),
            alarm_events_topic_arn: self.alarm_events_topic_arn.clone(),
        }
    }

    pub fn notify_config(&self) -> NotifyConfig {
        NotifyConfig {
            meta_table: self.meta_table.clone(),
            webhook_timeout: Duration::from_secs(5),
            alarm_events_topic_arn: self.alarm_events_topic_arn.clone(),
            outbound: loopback(),
        }
    }

    pub fn stats_config(&self) -> StatsConfig {
        StatsConfig {
            meta_table: self.meta_table.clone(),
            telemetry: self.telemetry(),
        }
    }

    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            meta_table: self.meta_table.clone(),
            telemetry: self.telemetry(),
            alarm_events_topic_arn: self.alarm_events_topic_arn.clone(),
            schedule_group: self.schedule_group.clone(),
            stats_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:stats".into(),
            scheduler_role_arn: "arn:aws:iam::123456789012:role/scheduler".into(),
            default_tenant: "acme".into(),
            signing_key_secret_arn: self.signing_key_secret_arn.clone(),
            totp_key_secret_arn: self.totp_key_secret_arn.clone(),
            admin_password_secret_arn: self.admin_password_secret_arn.clone(),
            audit_retention_days: 30,
            ingest_queue_url: self.ingest_queue.url.clone(),
            export_bucket: self.export_bucket.clone(),
            device_policy_name: self.device_policy_name.clone(),
            thing_group_prefix: "tenant-".into(),
            suspended_policy_name: self.suspended_policy_name.clone(),
            firmware_bucket: self.firmware_bucket.clone(),
            ota_presign_role_arn: "arn:aws:iam::123456789012:role/ota-presign".into(),
            channel_targets: iot_core::notify::ChannelTargets {
                sns_arn_prefix: "arn:aws:sns:us-east-1:123456789012:".into(),
                name_prefix: "iot-test-".into(),
            },
            outbound: loopback(),
        }
    }

    pub fn backup_config(&self) -> BackupConfig {
        BackupConfig {
            table_arns: vec![self.meta_table_arn.clone()],
            bucket: self.export_bucket.clone(),
            prefix: "dynamodb/".into(),
        }
    }

    /// Up to 10 messages of `queue` as the SQS event Lambda's event source mapping delivers
    /// (the same JSON field names), or `None` when the queue is empty.
    pub async fn receive(&self, queue: &Queue) -> Result<Option<Value>, Error> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let output = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .visibility_timeout(30)
            .send()
            .await?;
        let records: Vec<Value> = output
            .messages()
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                let message_attributes: serde_json::Map<String, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    json!({
                                        "stringValue": v.string_value(),
                                        "stringListValues": [],
                                        "binaryListValues": [],
                                        "dataType": v.data_type(),
                                    }),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue.arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        Ok((!records.is_empty()).then(|| json!({ "Records": records })))
    }

    /// Deletes the messages of `event` that `response` (an `SqsBatchResponse`) does not list
    /// as failed, as the event source mapping does; returns the failed message ids.
    pub async fn settle(
        &self,
        queue: &Queue,
        event: &Value,
        response: &Value,
    ) -> Result<Vec<String>, Error> {
        let failed: Vec<String> = response["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        for record in event["Records"].as_array().into_iter().flatten() {
            let id = record["messageId"].as_str().unwrap_or_default();
            if !failed.iter().any(|f| f == id) {
                sqs.delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(record["receiptHandle"].as_str().unwrap_or_default())
                    .send()
                    .await?;
            }
        }
        Ok(failed)
    }

    /// The dead letters in the raw archive: (key, parsed JSON).
    pub async fn dead_letters(&self) -> Result<Vec<(String, Value)>, Error> {
        let s3 = iot_aws::s3::client(&self.sdk);
        let listed = s3
            .list_objects_v2()
            .bucket(&self.raw_bucket)
            .prefix("dead-letters/")
            .send()
            .await?;
        let mut letters = Vec::new();
        for object in listed.contents() {
            let key = object.key().unwrap_or_default().to_owned();
            let body = s3
                .get_object()
                .bucket(&self.raw_bucket)
                .key(&key)
                .send()
                .await?
                .body
                .collect()
                .await?
                .into_bytes();
            letters.push((key, serde_json::from_slice(&body)?));
        }
        Ok(letters)
    }
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> Result<Queue, Error> {
    let (url, arn) = iot_aws::testing::create_queue(sqs, prefix).await?;
    Ok(Queue { url, arn })
}

/// What the telemetry rule's SELECT makes of a message (see `template.yaml`).
pub fn rule_output(topic: &str, payload: &[u8], received_at: i64) -> RuleMessage {
    RuleMessage {
        payload: base64::engine::general_purpose::STANDARD.encode(payload),
        topic: topic.to_owned(),
        client_id: topic.split('/').nth(1).map(str::to_owned),
        received_at: Some(received_at),
        message_id: Some(format!("{received_at:x}-{:08x}", fastrand::u32(..))),
    }
}

/// The telemetry rule's stand-in: subscribes to [`TELEMETRY_RULE_FILTER`] on the broker at
/// `broker` and sends each message's rule output to the ingest queue (the rule's SQS action).
/// Runs until the task is dropped.
pub async fn start_rule_bridge(
    broker: SocketAddr,
    sdk: &SdkConfig,
    ingest_queue_url: &str,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let mut options = MqttOptions::new(
        unique_name("rule-bridge"),
        broker.ip().to_string(),
        broker.port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client
        .subscribe(TELEMETRY_RULE_FILTER, QoS::AtLeastOnce)
        .await?;
    // Wait for the subscription, so nothing published after this returns is missed.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "the rule bridge got no SUBACK within 10 s")??;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = ingest_queue_url.to_owned();
    Ok(tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    let output = rule_output(&publish.topic, &publish.payload, now);
                    let body = serde_json::to_string(&output).unwrap_or_default();
                    if let Err(e) = sqs
                        .send_message()
                        .queue_url(&url)
                        .message_body(body)
                        .send()
                        .await
                    {
                        tracing::error!(error = %e, "the rule bridge could not queue a message");
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }))
}

/// A proxy in front of the emulator that records which AWS API operations pass through it, so
/// a test can compare what a function really calls with the IAM actions it declares.
pub struct CallRecorder {
    pub endpoint: String,
    calls: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl CallRecorder {
    pub async fn start() -> Result<Self, Error> {
        use axum::extract::Request;
        let upstream = iot_aws::testing::endpoint()?;
        let calls: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>> =
            Default::default();
        let seen = calls.clone();
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: Request| {
            let (seen, http, upstream) = (seen.clone(), http.clone(), upstream.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                if let Some(action) = iam_action(&parts.method, &parts.uri, &parts.headers, &body) {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(action);
                }
                let url = format!(
                    "{upstream}{}",
                    parts.uri.path_and_query().map_or("/", |p| p.as_str())
                );
                let mut forward = http.request(parts.method.clone(), url).body(body);
                for (name, value) in &parts.headers {
                    if name != "host" {
                        forward = forward.header(name, value);
                    }
                }
                match forward.send().await {
                    Ok(answer) => {
                        let status = answer.status();
                        let headers = answer.headers().clone();
                        let bytes = answer.bytes().await.unwrap_or_default();
                        let mut response =
                            axum::response::Response::new(axum::body::Body::from(bytes));
                        *response.status_mut() = status;
                        for (name, value) in &headers {
                            if name != "transfer-encoding" && name != "content-length" {
                                response.headers_mut().insert(name, value.clone());
                            }
                        }
                        response
                    }
                    Err(e) => {
                        let mut response =
                            axum::response::Response::new(axum::body::Body::from(e.to_string()));
                        *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
                        response
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { endpoint, calls })
    }

    /// An SDK configuration whose calls go through this recorder.
    pub async fn config(&self) -> SdkConfig {
        iot_aws::config::load_for_endpoint(&iot_aws::config::CallPolicy::default(), &self.endpoint)
            .await
    }

    /// The IAM actions the calls so far needed, e.g. `dynamodb:GetItem`.
    pub fn actions(&self) -> std::collections::BTreeSet<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The IAM actions one AWS API request needs, read from its SigV4 scope (the service), its
/// `x-amz-target` or `Action` (the operation), or its method and path (S3, Scheduler).
fn iam_action(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<Vec<String>> {
    let authorization = headers.get("authorization")?.to_str().ok()?;
    // Credential=AKID/20261123/us-east-1/dynamodb/aws4_request
    let scope = authorization.split("Credential=").nth(1)?;
    let service = scope.split('/').nth(3)?;
    let target = headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_owned);
    let query_action = || {
        String::from_utf8_lossy(body)
            .split('&')
            .find_map(|p| p.strip_prefix("Action=").map(str::to_owned))
    };
    let path = uri.path();
    let operation = match service {
        "s3" => match *method {
            axum::http::Method::PUT => "PutObject".to_owned(),
            axum::http::Method::GET if uri.query().is_some_and(|q| q.contains("list-type")) => {
                "ListBucket".to_owned()
            }
            axum::http::Method::GET | axum::http::Method::HEAD => "GetObject".to_owned(),
            axum::http::Method::DELETE => "DeleteObject".to_owned(),
            _ => format!("{method}{path}"),
        },
        "scheduler" => match *method {
            axum::http::Method::POST => "CreateSchedule".to_owned(),
            axum::http::Method::PUT => "UpdateSchedule".to_owned(),
            axum::http::Method::DELETE => "DeleteSchedule".to_owned(),
            _ => "GetSchedule".to_owned(),
        },
        // An IoT call this table does not know shows as itself, so the IAM check fails on it.
        "iot" | "iotdata" => iot_operation(method, path)
            .map_or_else(|| format!("Unmapped {method} {path}"), str::to_owned),
        _ => target.or_else(query_action)?,
    };
    let prefix = match service {
        "iotdata" => "iot",
        other => other,
    };
    Some(match (service, operation.as_str()) {
        // Authorised per item, by what each item does.
        ("dynamodb", "TransactWriteItems") => {
            let text = String::from_utf8_lossy(body);
            let mut actions = Vec::new();
            for (key, action) in [
                ("\"Put\"", "PutItem"),
                ("\"Delete\"", "DeleteItem"),
                ("\"Update\"", "UpdateItem"),
                ("\"ConditionCheck\"", "ConditionCheckItem"),
            ] {
                if text.contains(key) {
                    actions.push(format!("dynamodb:{action}"));
                }
            }
            actions
        }
        ("sqs", "SendMessageBatch") => vec!["sqs:SendMessage".into()],
        _ => vec![format!("{prefix}:{operation}")],
    })
}

/// The operation of an AWS IoT (control or data plane) REST request, from its method and path.
fn iot_operation(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    use axum::http::Method;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method.clone(), parts.as_slice()) {
        (Method::GET, ["endpoint"]) => "DescribeEndpoint",
        (Method::POST, ["things", _]) => "CreateThing",
        (Method::GET, ["things", _]) => "DescribeThing",
        (Method::DELETE, ["things", _]) => "DeleteThing",
        (Method::PUT, ["things", _, "principals"]) => "AttachThingPrincipal",
        (Method::DELETE, ["things", _, "principals"]) => "DetachThingPrincipal",
        (Method::GET, ["things", _, "principals"]) => "ListThingPrincipals",
        (Method::POST, ["things", _, "shadow"]) => "UpdateThingShadow",
        (Method::GET, ["things", _, "shadow"]) => "GetThingShadow",
        (Method::POST, ["thing-groups", _]) => "CreateThingGroup",
        (Method::GET, ["thing-groups", _]) => "DescribeThingGroup",
        (Method::PUT, ["thing-groups", "addThingToThingGroup"]) => "AddThingToThingGroup",
        (Method::POST, ["keys-and-certificate"]) => "CreateKeysAndCertificate",
        (Method::PUT, ["target-policies", _]) => "AttachPolicy",
        (Method::POST, ["target-policies", _]) => "DetachPolicy",
        (Method::PUT, ["certificates", _]) => "UpdateCertificate",
        (Method::DELETE, ["certificates", _]) => "DeleteCertificate",
        (Method::POST, ["topics", ..]) => "Publish",
        _ => return None,
    })
}

/// The tests' webhook receivers listen on loopback, which deployed stacks refuse by default.
fn loopback() -> iot_core::outbound::OutboundPolicy {
    iot_core::outbound::OutboundPolicy::allowing(&["127.0.0.1"]).expect("a range")
}
