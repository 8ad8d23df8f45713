//! `iot-notify`: notifiers that need no AWS, shared by the notify Lambda and `iot-local`:
//! webhooks over HTTP, the console (for SNS channels on one machine), and a router that sends
//! each delivery through the notifier of its channel's kind.
//!
//! The last step of a message's flow: a transition's deliveries, by channel.

use async_trait::async_trait;
use iot_core::notify::{ChannelKind, Delivery};
use iot_core::outbound::OutboundPolicy;
use iot_core::ports::{DeliveryError, Notifier};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub mod outbound;

/// POSTs the delivery's webhook body as JSON. Server errors, timeouts and connection failures
/// are retryable; other 4xx answers are permanent (retrying would not change them). URLs must
/// reach public addresses only, unless the outbound policy allows their range.
pub struct WebhookNotifier {
    timeout: Duration,
    policy: Arc<OutboundPolicy>,
    /// Built at the first webhook: making it loads the system's trust store, which would
    /// otherwise cost every cold start of the notify function, webhooks or not.
    client: OnceLock<reqwest::Client>,
}

impl WebhookNotifier {
    pub fn new(timeout: Duration, policy: OutboundPolicy) -> Self {
        Self {
            timeout,
            policy: Arc::new(policy),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, DeliveryError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = outbound::guarded_client(self.policy.clone(), self.timeout)
            .map_err(|e| DeliveryError::Retryable(format!("the HTTPS client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let ChannelKind::Webhook { url, .. } = &delivery.channel.kind else {
            return Err(DeliveryError::Permanent(format!(
                "channel {:?} is not a webhook",
                delivery.channel.id
            )));
        };
        let body = match &delivery.webhook_body {
            Some(json) => json.to_string(),
            None => serde_json::json!({ "subject": delivery.subject, "text": delivery.body })
                .to_string(),
        };
        // An address in the URL never reaches the resolver: refused here, for good.
        self.policy
            .check_url(url)
            .map_err(|e| DeliveryError::Permanent(format!("{}: {e}", host_of(url))))?;
        let response = self
            .client()?
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", &delivery.key)
            .body(body)
            .send()
            .await
            // Log the host only: webhook URLs often carry tokens in the path or query.
            .map_err(|e| {
                let why = format!("{}: {}", host_of(url), causes(e.without_url()));
                if why.contains(outbound::NOT_PUBLIC) {
                    DeliveryError::Permanent(why)
                } else {
                    DeliveryError::Retryable(why)
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(DeliveryError::Retryable(format!(
                "{} answered {status}",
                host_of(url)
            )))
        } else {
            Err(DeliveryError::Permanent(format!(
                "{} answered {status}",
                host_of(url)
            )))
        }
    }
}

/// An error with its causes, which say what failed (a refused address, a timeout).
fn causes(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| "webhook".to_owned())
}

/// Writes e-mail, SMS and push deliveries to the log: there is no SNS on one machine.
#[derive(Clone, Default)]
pub struct ConsoleNotifier;

#[async_trait]
impl Notifier for ConsoleNotifier {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let to = match &delivery.channel.kind {
            ChannelKind::Email { topic_arn } => format!("e-mail topic {topic_arn}"),
            ChannelKind::Sms { phone_numbers } => format!("SMS {}", phone_numbers.join(", ")),
            ChannelKind::Push { endpoint_arns } => format!("push {}", endpoint_arns.join(", ")),
            ChannelKind::Webhook { .. } => "webhook".to_owned(),
            ChannelKind::InSystem { user_ids } => format!("inbox {}", user_ids.join(", ")),
        };
        tracing::info!(target: "notification", channel = %delivery.channel.id, %to, subject = %delivery.subject, body = %delivery.body, "notification");
        Ok(())
    }
}

/// Sends each delivery through the notifier of its channel's kind.
pub struct ChannelRouter {
    pub webhook: Arc<dyn Notifier>,
    pub in_system: Arc<dyn Notifier>,
    pub sns: Arc<dyn Notifier>,
}

#[async_trait]
impl Notifier for ChannelRouter {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let notifier = match delivery.channel.kind {
            ChannelKind::Webhook { .. } => &self.webhook,
            ChannelKind::InSystem { .. } => &self.in_system,
            ChannelKind::Email { .. } | ChannelKind::Sms { .. } | ChannelKind::Push { .. } => {
                &self.sns
            }
        };
        notifier.deliver(delivery).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_core::notify::{Channel, WebhookFlavor};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP server on 127.0.0.1 that answers `status` and returns the request.
    fn receiver(status: u16) -> Result<(String, std::thread::JoinHandle<String>), std::io::Error> {
        answering(status, "")
    }

    /// The same, with extra header lines in the answer.
    fn answering(
        status: u16,
        headers: &'static str,
    ) -> Result<(String, std::thread::JoinHandle<String>), std::io::Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/hook?token=secret", listener.local_addr()?);
        let handle = std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return String::new();
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read headers, then the body by content-length.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\n{headers}content-length: 0\r\nconnection: close\r\n\r\n"
            );
            String::from_utf8_lossy(&request).to_string()
        });
        Ok((url, handle))
    }

    /// The policy of tests whose receivers listen on loopback.
    fn local() -> OutboundPolicy {
        OutboundPolicy::allowing(&["127.0.0.1"]).expect("a range")
    }

    fn delivery(url: &str) -> Delivery {
        Delivery {
            channel: Channel {
                id: "hook".into(),
                tenant_id: "t".into(),
                name: "Hook".into(),
                kind: ChannelKind::Webhook {
                    flavor: WebhookFlavor::Slack,
                    url: url.into(),
                    secret_ref: None,
                },
            },
            subject: "s".into(),
            body: "b".into(),
            webhook_body: Some(serde_json::json!({"text": "too hot"})),
            key: "k-1".into(),
        }
    }

    #[tokio::test]
    async fn a_webhook_gets_the_json_body_and_an_idempotency_key()
    -> Result<(), Box<dyn std::error::Error>> {
        let (url, server) = receiver(200)?;
        WebhookNotifier::new(Duration::from_secs(5), local())
            .deliver(&delivery(&url))
            .await?;
        let request = server.join().map_err(|_| "server panicked")?;
        assert!(request.starts_with("POST /hook?token=secret"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("idempotency-key: k-1")
        );
        assert!(request.ends_with(r#"{"text":"too hot"}"#), "{request}");
        Ok(())
    }

    #[tokio::test]
    async fn server_errors_retry_client_errors_do_not_and_urls_stay_out_of_errors()
    -> Result<(), Box<dyn std::error::Error>> {
        let notifier = WebhookNotifier::new(Duration::from_secs(5), local());
        let (url, server) = receiver(503)?;
        let err = notifier.deliver(&delivery(&url)).await;
        server.join().map_err(|_| "server panicked")?;
        assert!(matches!(err, Err(DeliveryError::Retryable(_))), "{err:?}");
        let (url, server) = receiver(404)?;
        let err = notifier.deliver(&delivery(&url)).await;
        server.join().map_err(|_| "server panicked")?;
        match err {
            Err(DeliveryError::Permanent(why)) => assert!(!why.contains("secret"), "{why}"),
            other => panic!("expected a permanent error, got {other:?}"),
        }
        // Nobody listens: retryable, and the token in the URL is not in the message.
        let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let err = notifier
            .deliver(&delivery(&format!("http://{closed}/h?token=secret")))
            .await;
        match err {
            Err(DeliveryError::Retryable(why)) => assert!(!why.contains("secret"), "{why}"),
            other => panic!("expected a retryable error, got {other:?}"),
        }
        Ok(())
    }

    #[tokio::test]
    async fn webhooks_reach_internal_addresses_only_in_the_allowed_ranges()
    -> Result<(), Box<dyn std::error::Error>> {
        let strict = WebhookNotifier::new(Duration::from_secs(5), OutboundPolicy::default());
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        for url in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://localhost:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ] {
            let refused = strict.deliver(&delivery(&url)).await;
            assert!(
                matches!(&refused, Err(e) if e.to_string().contains("not a public address")),
                "{url}: {refused:?}"
            );
        }
        assert!(listener.accept().is_err(), "nothing reached the listener");

        // Allowed on loopback, a receiver that redirects to the metadata address is not followed.
        let (url, server) = answering(
            307,
            "location: http://169.254.169.254/latest/meta-data/\r\n",
        )?;
        let refused = WebhookNotifier::new(Duration::from_secs(5), local())
            .deliver(&delivery(&url))
            .await;
        server.join().map_err(|_| "server panicked")?;
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("redirect")),
            "{refused:?}"
        );
        Ok(())
    }
}
