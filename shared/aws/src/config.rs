//! One SDK configuration per process, built once at start (cold start) and shared by every client.

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use std::time::Duration;

/// The roots every AWS endpoint's certificate chains to: Amazon Trust Services' Amazon Root
/// CA 1 to 4, and the Starfield root that cross-signs them. The SDK's default client trusts
/// the whole system store instead, which it reads and parses when each client is built: on
/// a Lambda cold start that was most of the init time, for roots no AWS endpoint uses.
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Retries and timeouts for every call: standard retry mode (exponential back-off with full
/// jitter, throttling errors included), and a bound on each attempt and on the whole call so a
/// stuck connection cannot eat a Lambda's time budget.
#[derive(Clone, Debug)]
pub struct CallPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
        }
    }
}

/// Loads the configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`
/// for an emulator) with the call policy applied.
pub async fn load(policy: &CallPolicy) -> SdkConfig {
    loader(policy).load().await
}

/// As [`load`], with calls going to `endpoint` (an emulator on 127.0.0.1 in tests). Tests name
/// the endpoint explicitly rather than relying on `AWS_ENDPOINT_URL`, so a test run can never
/// reach a real account by accident.
pub async fn load_for_endpoint(policy: &CallPolicy, endpoint: &str) -> SdkConfig {
    loader(policy).endpoint_url(endpoint).load().await
}

/// The SDK's own HTTPS client (hyper, rustls on aws-lc), trusting only Amazon's roots.
pub fn https_client() -> SharedHttpClient {
    let trust = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store with certificates is a valid TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

fn loader(policy: &CallPolicy) -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    // Lambda hands a function its role's credentials in the environment. The default chain
    // would find them there too, but building it also builds its other providers, among them
    // an STS client for web identity: a cold start cost for a provider never asked.
    let loader = if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(policy.max_attempts)
                .with_initial_backoff(policy.initial_backoff),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(policy.connect_timeout)
                .operation_attempt_timeout(policy.attempt_timeout)
                .operation_timeout(policy.operation_timeout)
                .build(),
        )
}

/// Whether calls go to a custom endpoint (an emulator) rather than AWS: some services then
/// need other settings (S3 path-style addressing, no Timestream endpoint discovery).
pub fn uses_custom_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}
