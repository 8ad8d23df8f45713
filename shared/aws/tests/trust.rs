//! The SDK's HTTPS client trusts Amazon Trust Services' roots only. A TLS server on 127.0.0.1
//! with a certificate from a CA made here is refused by it; the same client with that CA
//! added to its trust store gets through, so the refusal is the trust decision and not a
//! broken server, and the SDK's default client, which trusts the system store, gets through
//! once the CA is in that store. (A positive check against a real AWS endpoint cannot run
//! here.)

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::SdkError;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A CA's certificate (PEM) and a TLS server on 127.0.0.1 whose certificate it signed. The
/// server answers every request as SQS answers an empty `ListQueues`.
async fn server_with_own_ca() -> Result<(String, String), Box<dyn std::error::Error + Send + Sync>>
{
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let certificate =
        CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &issuer)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![certificate.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = tls.read(&mut buffer).await {
                    request.extend_from_slice(&buffer[..n]);
                    if request.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = r#"{"QueueUrls":[]}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok((ca_pem, url))
}

fn sqs(http_client: aws_sdk_sqs::config::SharedHttpClient, url: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::for_tests())
        .endpoint_url(url)
        .http_client(http_client)
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[tokio::test]
async fn the_sdk_refuses_a_server_whose_certificate_is_not_from_amazon() -> TestResult {
    let (ca_pem, url) = server_with_own_ca().await?;

    // The control: trusting the server's CA, the same kind of client gets its answer.
    let trusting = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(ca_pem.as_bytes()))
                .build()?,
        )
        .build_https();
    let answer = sqs(trusting, &url).list_queues().send().await?;
    assert!(answer.queue_urls().is_empty());

    // Made part of the system store (rustls-native-certs reads `SSL_CERT_FILE`), the CA is
    // trusted by the SDK's default client, which trusts the system store.
    let system_store = std::env::temp_dir().join(format!("trust-test-{}.pem", std::process::id()));
    std::fs::write(&system_store, &ca_pem)?;
    // SAFETY: no other thread of this test process reads or writes the environment now
    // (nextest runs each test in its own process; the other test here reads no variable).
    unsafe { std::env::set_var("SSL_CERT_FILE", &system_store) };
    let default_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    let answer = sqs(default_client, &url).list_queues().send().await;
    std::fs::remove_file(&system_store)?;
    assert!(answer.is_ok(), "{answer:?}");

    // The platform's client refuses the handshake: the request never leaves.
    let refused = sqs(iot_aws::config::https_client(), &url)
        .list_queues()
        .send()
        .await;
    match refused {
        Err(SdkError::DispatchFailure(failure)) => {
            let message = format!("{:?}", failure.as_connector_error());
            assert!(message.contains("UnknownIssuer"), "{message}");
        }
        other => panic!("expected a refused TLS handshake, got {other:?}"),
    }
    Ok(())
}

#[test]
fn the_trust_store_is_amazon_trust_services_roots() {
    let bundle = std::str::from_utf8(iot_aws::config::AMAZON_TRUST_SERVICES_ROOTS).unwrap();
    let subjects: Vec<&str> = bundle
        .lines()
        .filter_map(|line| line.strip_prefix("# subject="))
        .collect();
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----").count(), 5);
    assert_eq!(subjects.len(), 5);
    assert!(
        subjects[..4]
            .iter()
            .all(|s| s.contains("O = Amazon, CN = Amazon Root CA"))
    );
    assert!(subjects[4].contains("CN = Starfield Services Root Certificate Authority - G2"));
    // Every certificate parses (the SDK would refuse to build a client otherwise).
    let certificates: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(bundle.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(certificates.len(), 5);
}
