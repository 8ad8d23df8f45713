//! An HTTP client whose requests reach only what the [`OutboundPolicy`] permits: every address a
//! name resolves to is checked when the connection is made (so a name that re-resolves to an
//! internal address later is caught too), every redirect's URL is checked, and proxies from
//! the environment are not used (they would resolve names where we cannot see them).

use iot_core::outbound::OutboundPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a refusal of an internal address says.
pub const NOT_PUBLIC: &str = "not a public address";

/// Most redirects followed.
const MAX_REDIRECTS: usize = 5;

struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // One internal address refuses the name: a client may try them in any order.
            if let Some(internal) = found.iter().find(|a| !policy.permits(a.ip())) {
                return Err(format!("{host} resolves to {}, {NOT_PUBLIC}", internal.ip()).into());
            }
            if found.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// A client for requests to URLs that users enter (webhooks, identity providers).
pub fn guarded_client(
    policy: Arc<OutboundPolicy>,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let for_redirects = policy.clone();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("iot-platform/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            // Addresses in the URL never reach the resolver: check them here.
            match for_redirects.check_url(attempt.url().as_str()) {
                Ok(_) => attempt.follow(),
                Err(e) => attempt.error(format!("a redirect: {e}")),
            }
        }))
        .build()
}

/// Reads at most `limit` bytes of a response body; more is an error, not a truncated body.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the response is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
