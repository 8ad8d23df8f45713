//! Identity providers' key sets over HTTPS, cached for an hour; a forced refresh (a token named
//! an unknown key) happens at most once a minute per provider, so made-up key ids cannot turn
//! the API into a request amplifier.

use async_trait::async_trait;
use iot_core::auth::oidc::{JwksError, JwksSource};
use iot_core::outbound::OutboundPolicy;
use iot_notify::outbound::{guarded_client, read_limited};
use jsonwebtoken::jwk::JwkSet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const FRESH_FOR: Duration = Duration::from_secs(3600);
const MIN_REFRESH: Duration = Duration::from_secs(60);

struct Cached {
    set: JwkSet,
    fetched_at: Instant,
    /// When a refresh was last forced (a token named a key not in the set).
    forced_at: Option<Instant>,
}

/// Largest key set read: a provider's has a few keys of a few hundred bytes each.
const MAX_BYTES: usize = 256 * 1024;

pub struct HttpJwks {
    timeout: Duration,
    policy: Arc<OutboundPolicy>,
    /// Built at the first fetch: making it loads the system's trust store, which would
    /// otherwise cost every cold start, SSO or not.
    client: OnceLock<reqwest::Client>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl HttpJwks {
    /// Key sets on addresses the policy permits only (public ones, by default).
    pub fn new(timeout: Duration, policy: OutboundPolicy) -> Self {
        Self {
            timeout,
            policy: Arc::new(policy),
            client: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, uri: &str) -> Result<&reqwest::Client, JwksError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = guarded_client(self.policy.clone(), self.timeout)
            .map_err(|e| JwksError::new(uri, format!("the HTTPS client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The cached set if it may be used: fresh, and not asked to refresh (or refreshed by
    /// force within the last minute already).
    fn cached(&self, uri: &str, refresh: bool) -> Option<JwkSet> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get_mut(uri)?;
        if refresh {
            if entry.forced_at.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
                return Some(entry.set.clone());
            }
            entry.forced_at = Some(Instant::now());
            return None;
        }
        (entry.fetched_at.elapsed() < FRESH_FOR).then(|| entry.set.clone())
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn jwks(&self, uri: &str, refresh: bool) -> Result<JwkSet, JwksError> {
        if let Some(set) = self.cached(uri, refresh) {
            return Ok(set);
        }
        // An address in the URL never reaches the guarded resolver: checked here.
        self.policy
            .check_url(uri)
            .map_err(|e| JwksError::new(uri, e))?;
        let response = self
            .client(uri)?
            .get(uri)
            .send()
            .await
            .map_err(|e| JwksError::new(uri, e))?;
        if !response.status().is_success() {
            return Err(JwksError::new(
                uri,
                format!("answered {}", response.status()),
            ));
        }
        let body = read_limited(response, MAX_BYTES)
            .await
            .map_err(|e| JwksError::new(uri, e))?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| JwksError::new(uri, format!("not a JWK set: {e}")))?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let forced_at = cache.get(uri).and_then(|c| c.forced_at);
        cache.insert(
            uri.to_owned(),
            Cached {
                set: set.clone(),
                fetched_at: Instant::now(),
                forced_at,
            },
        );
        Ok(set)
    }
}
