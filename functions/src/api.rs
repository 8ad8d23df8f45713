//! The API function: API Gateway's HTTP API hands every request to the same axum router
//! `iot-local` serves.

use crate::ingest::RuleMessage;
use aws_config::SdkConfig;
use axum::Router;
use iot_api::ApiState;
use iot_api::audit::ClientAddr;
use iot_api::device_ingest::{DeviceIngest, IngestReceipt, SubmitError};
use iot_api::jwks::HttpJwks;
use iot_aws::error::describe;
use iot_aws::{EventBridgeScheduler, IotSettings, LazyClient, S3BlobStore};
use iot_core::alarm::AlarmEvaluator;
use iot_core::auth::token::key_ring;
use iot_core::auth::{AuthService, AuthSettings, TokenKeys};
use iot_core::notify::ChannelTargets;
use iot_core::outbound::OutboundPolicy;
use iot_core::parse::Parser;
use iot_core::ports::{Clock, DeviceGateway, SystemClock};
use iot_core::repo::Catalog;
use iot_core::stats::StatsEngine;
use iot_core::time::DAY;
use iot_core::usecase::InboundMessage;
use iot_core::usecase::{AlarmService, OtaService, StatsService};
use lambda_http::request::RequestContext;
use std::sync::Arc;

use crate::alarm::alarm_bus;
use crate::device_gateway::LazyIotGateway;
use crate::env::{self, EnvError};
use crate::start::StartError;
use crate::stores::{TelemetryBackend, meta_store};

/// The IAM actions this function uses (`template.yaml` grants exactly these; a test compares).
pub const IAM_ACTIONS: &[&str] = &[
    // every entity: read, list (table and index), write, delete (transactions are authorised
    // per item as put and delete)
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    // telemetry queries (Timestream backend)
    "timestream:Select",
    "timestream:DescribeEndpoints",
    // acknowledged and cleared alarms
    "sns:Publish",
    // statistics jobs as schedules, which run as the scheduler role (and rollouts' jobs,
    // which presign as the OTA role)
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "iam:PassRole",
    // HTTP device ingest hands messages to the ingest queue, as the IoT rule does
    "sqs:SendMessage",
    // telemetry exports: written, then downloaded through presigned URLs this role signs;
    // listed and deleted with their tenant; firmware images: uploaded through presigned URLs,
    // read back to check, deleted with their package
    "s3:PutObject",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    // the access-token signing key and the first administrator's password, read at start
    "secretsmanager:GetSecretValue",
    // devices: provisioning (a thing in its tenant's group, a certificate with the device
    // policy) and revocation, on first use the account's data endpoint
    "iot:DescribeEndpoint",
    "iot:CreateThing",
    "iot:DescribeThing",
    "iot:DeleteThing",
    "iot:CreateThingGroup",
    "iot:DescribeThingGroup",
    "iot:AddThingToThingGroup",
    "iot:CreateKeysAndCertificate",
    // the device policy on certificates; the deny-all policy on a suspended tenant's group
    "iot:AttachPolicy",
    "iot:DetachPolicy",
    "iot:AttachThingPrincipal",
    "iot:DetachThingPrincipal",
    "iot:ListThingPrincipals",
    "iot:UpdateCertificate",
    "iot:DeleteCertificate",
    // firmware rollouts as IoT jobs, whose document links IoT presigns with the OTA role
    "iot:CreateJob",
    "iot:CancelJob",
    // commands and desired configuration
    "iot:Publish",
    "iot:UpdateThingShadow",
    "iot:GetThingShadow",
];

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub meta_table: String,
    pub telemetry: TelemetryBackend,
    /// Acknowledging or clearing an alarm publishes the transition, as evaluation does.
    pub alarm_events_topic_arn: String,
    /// Statistics jobs become schedules in this group, invoking the stats function through
    /// the scheduler's role.
    pub schedule_group: String,
    pub stats_function_arn: String,
    pub scheduler_role_arn: String,
    pub default_tenant: String,
    /// A Secrets Manager secret: the keys that sign access tokens, each at least 32
    /// characters, separated by white space, the signing one first (the others still verify).
    pub signing_key_secret_arn: String,
    /// A Secrets Manager secret: the keys that seal TOTP seeds, as the signing keys are given.
    pub totp_key_secret_arn: String,
    /// A Secrets Manager secret: the first password of `admin` in the default tenant, used
    /// once, when the tenant has no policy yet.
    pub admin_password_secret_arn: String,
    pub audit_retention_days: i64,
    /// The queue the telemetry rule feeds; `POST /v1/ingest` sends there too.
    pub ingest_queue_url: String,
    /// Telemetry exports go to this bucket, under `exports/`.
    pub export_bucket: String,
    /// The IoT policy every device certificate gets.
    pub device_policy_name: String,
    /// Thing groups are `{prefix}{tenant}`.
    pub thing_group_prefix: String,
    /// The deny-all IoT policy a suspended tenant's thing group gets.
    pub suspended_policy_name: String,
    /// Firmware images are uploaded to this bucket, under `firmware/`.
    pub firmware_bucket: String,
    /// The role IoT Jobs assumes to presign firmware downloads.
    pub ota_presign_role_arn: String,
    /// The SNS topics and push endpoints channels may name (`SNS_ARN_PREFIX`,
    /// `RESOURCE_PREFIX`; see `iot_core::notify::ChannelTargets`).
    pub channel_targets: ChannelTargets,
    /// Where webhooks and identity providers may be besides public addresses.
    pub outbound: OutboundPolicy,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(Self {
            meta_table: env::required("META_TABLE")?,
            telemetry: TelemetryBackend::from_env()?,
            alarm_events_topic_arn: env::required("ALARM_EVENTS_TOPIC_ARN")?,
            schedule_group: env::required("SCHEDULE_GROUP")?,
            stats_function_arn: env::required("STATS_FUNCTION_ARN")?,
            scheduler_role_arn: env::required("SCHEDULER_ROLE_ARN")?,
            default_tenant: env::optional("DEFAULT_TENANT").unwrap_or_else(|| "default".into()),
            signing_key_secret_arn: env::required("SIGNING_KEY_SECRET_ARN")?,
            totp_key_secret_arn: env::required("TOTP_KEY_SECRET_ARN")?,
            admin_password_secret_arn: env::required("ADMIN_PASSWORD_SECRET_ARN")?,
            audit_retention_days: env::parsed("AUDIT_RETENTION_DAYS", 365)?,
            ingest_queue_url: env::required("INGEST_QUEUE_URL")?,
            export_bucket: env::required("EXPORT_BUCKET")?,
            device_policy_name: env::required("DEVICE_POLICY_NAME")?,
            thing_group_prefix: env::required("THING_GROUP_PREFIX")?,
            suspended_policy_name: env::required("SUSPENDED_POLICY_NAME")?,
            firmware_bucket: env::required("FIRMWARE_BUCKET")?,
            ota_presign_role_arn: env::required("OTA_PRESIGN_ROLE_ARN")?,
            channel_targets: ChannelTargets {
                sns_arn_prefix: env::required("SNS_ARN_PREFIX")?,
                name_prefix: env::required("RESOURCE_PREFIX")?,
            },
            outbound: env::outbound_policy()?,
        })
    }
}

/// The API's router on the AWS adapters.
pub async fn router(sdk: &SdkConfig, config: &ApiConfig) -> Result<Router, StartError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let catalog = Catalog::new(meta_store(&dynamodb, &config.meta_table));
    let telemetry = config.telemetry.build(sdk, &dynamodb).await?;
    let alarms = AlarmService::new(
        catalog.clone(),
        Arc::new(alarm_bus(sdk, &config.alarm_events_topic_arn)),
        clock.clone(),
        AlarmEvaluator::default(),
    );
    let stats = StatsService::new(
        catalog.clone(),
        telemetry.clone(),
        clock.clone(),
        StatsEngine::default(),
    );
    // Clients of routes few requests take are built by the request that takes them.
    let scheduler = EventBridgeScheduler::new(
        LazyClient::new(sdk, aws_sdk_scheduler::Client::new),
        &config.schedule_group,
        &config.stats_function_arn,
        &config.scheduler_role_arn,
    );
    let auth = Arc::new(build_auth(sdk, config, &catalog, clock.clone()).await?);
    let gateway: Arc<dyn DeviceGateway> = Arc::new(LazyIotGateway::new(
        sdk.clone(),
        IotSettings {
            policy_name: config.device_policy_name.clone(),
            thing_group_prefix: config.thing_group_prefix.clone(),
            suspended_policy_name: config.suspended_policy_name.clone(),
            firmware_bucket: config.firmware_bucket.clone(),
            job_presign_role_arn: config.ota_presign_role_arn.clone(),
        },
    ));
    let ota = OtaService::new(
        catalog.clone(),
        Arc::new(S3BlobStore::new(
            LazyClient::new(sdk, iot_aws::s3::client),
            &config.firmware_bucket,
        )),
        gateway.clone(),
        clock.clone(),
    );
    Ok(iot_api::app(Arc::new(ApiState {
        catalog,
        telemetry,
        alarms: Arc::new(alarms),
        stats: Arc::new(stats),
        scheduler: Arc::new(scheduler),
        parser: Parser::default(),
        clock,
        auth,
        exports: Arc::new(S3BlobStore::new(
            LazyClient::new(sdk, iot_aws::s3::client),
            &config.export_bucket,
        )),
        device_ingest: Arc::new(QueueDeviceIngest {
            sqs: LazyClient::new(sdk, aws_sdk_sqs::Client::new),
            queue_url: config.ingest_queue_url.clone(),
        }),
        gateway,
        ota: Arc::new(ota),
        default_tenant: config.default_tenant.clone(),
        audit_retention_ms: config.audit_retention_days.max(1) * DAY,
        channel_targets: config.channel_targets.clone(),
        outbound: config.outbound.clone(),
    }))
    .layer(axum::middleware::map_request(client_addr)))
}

/// `POST /v1/ingest` on AWS: the message goes to the ingest queue in the telemetry rule's
/// shape, so the ingest function parses it as it parses MQTT messages.
struct QueueDeviceIngest {
    sqs: LazyClient<aws_sdk_sqs::Client>,
    queue_url: String,
}

#[async_trait::async_trait]
impl DeviceIngest for QueueDeviceIngest {
    async fn submit(&self, message: InboundMessage) -> Result<IngestReceipt, SubmitError> {
        use base64::Engine;
        let body = RuleMessage {
            payload: base64::engine::general_purpose::STANDARD.encode(&message.payload),
            client_id: message
                .topic
                .split('/')
                .nth(1)
                .map(|uid| format!("http:{uid}")),
            topic: message.topic,
            received_at: Some(message.received_at),
            message_id: Some(message.message_id.clone()),
        };
        let body = serde_json::to_string(&body)?;
        self.sqs
            .get()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| SubmitError::Queue(describe(&e)))?;
        Ok(IngestReceipt::Queued {
            message_id: message.message_id,
        })
    }
}

/// The audit log's "from where": the source IP API Gateway saw.
async fn client_addr(mut request: axum::extract::Request) -> axum::extract::Request {
    use lambda_http::RequestExt;
    let source = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    if let Some(ip) = source {
        request.extensions_mut().insert(ClientAddr(ip));
    }
    request
}

async fn secret(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<String, StartError> {
    client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| StartError::Secret {
            arn: arn.to_owned(),
            reason: describe(&e),
        })?
        .secret_string
        .ok_or_else(|| StartError::EmptySecret(arn.to_owned()))
}

/// The token service on the signing and sealing keys from Secrets Manager; on the first start, the default
/// tenant's built-in roles and its `admin` with the generated password.
async fn build_auth(
    sdk: &SdkConfig,
    config: &ApiConfig,
    catalog: &Catalog,
    clock: Arc<dyn Clock>,
) -> Result<AuthService, StartError> {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    // Two services, two connections: asked at once, the cold start waits for one round trip.
    let policy = async { Ok(catalog.policy(&config.default_tenant).await?) };
    let (signing, sealing, policy) = tokio::try_join!(
        secret(&secrets, &config.signing_key_secret_arn),
        secret(&secrets, &config.totp_key_secret_arn),
        policy
    )?;
    let keys = TokenKeys::new(&key_ring(&signing), &key_ring(&sealing))?;
    let jwks = HttpJwks::new(std::time::Duration::from_secs(5), config.outbound.clone());
    let auth = AuthService::new(catalog.clone(), clock, keys, AuthSettings::default())
        .with_jwks(Arc::new(jwks));
    if policy.is_none() {
        let password = secret(&secrets, &config.admin_password_secret_arn).await?;
        auth.bootstrap_tenant(&config.default_tenant, "admin", &password)
            .await
            .map_err(StartError::Bootstrap)?;
    }
    Ok(auth)
}
