//! One SDK configuration per process, built once at start (cold start) and shared by every client.

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
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
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https();
    ConnectorAtFirstCall(client).into_shared()
}

/// The SDK's HTTPS client, less the connector it builds and throws away as each service client
/// is made. The SDK does that so that a client reading the system trust store reads it at
/// start, not at its first request; ours has its roots compiled in, so on a cold start that
/// was only work thrown away: a rustls configuration and its parsed roots per client (for
/// ingest's two clients, 0.45 of the 3.07 million instructions before its first poll). The
/// connector that serves requests is still built once, at the first request, and cached.
#[derive(Debug)]
struct ConnectorAtFirstCall(SharedHttpClient);

impl HttpClient for ConnectorAtFirstCall {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
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
    // Likewise the region, which Lambda sets in `AWS_REGION`: the default chain would build an
    // instance-metadata client to fall back on.
    let loader = match std::env::var("AWS_REGION") {
        Ok(region) if !region.is_empty() => loader.region(Region::new(region)),
        _ => loader,
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::ConfigBag;
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An HTTP client that counts the SDK's eager validations, which is where the SDK's own
    /// client builds its throwaway connector; it is never asked for a connector here.
    #[derive(Debug, Default)]
    struct CountingClient(Arc<AtomicUsize>);

    impl HttpClient for CountingClient {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            unreachable!("no request is made")
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn client_over(http: SharedHttpClient) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(http)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    #[test]
    fn making_a_client_builds_no_connector() {
        let bare = CountingClient::default();
        let validations = bare.0.clone();
        client_over(bare.into_shared());
        assert_eq!(
            validations.load(Ordering::SeqCst),
            1,
            "the SDK validates the client it is given"
        );

        let wrapped = CountingClient::default();
        let validations = wrapped.0.clone();
        client_over(ConnectorAtFirstCall(wrapped.into_shared()).into_shared());
        assert_eq!(
            validations.load(Ordering::SeqCst),
            0,
            "the wrapper keeps the validation from the client"
        );
    }
}
