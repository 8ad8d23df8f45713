//! SDK clients built at their first call.

use aws_config::SdkConfig;
use std::sync::{Arc, OnceLock};

/// An SDK client, built when first used. Building one costs a fraction of a millisecond of
/// cold start (it parses its endpoint rules and builds its connector and TLS settings), so
/// a client for a path few invocations take (exports, schedules, the raw archive, alarm
/// events, SNS channels) is built by the invocation that takes it. Clones share the client.
#[derive(Clone)]
pub struct LazyClient<C>(Arc<Inner<C>>);

/// A client's constructor, e.g. `aws_sdk_sns::Client::new`.
type Make<C> = fn(&SdkConfig) -> C;

struct Inner<C> {
    client: OnceLock<C>,
    /// How to build it; `None` when it was given built.
    make: Option<(SdkConfig, Make<C>)>,
}

impl<C> LazyClient<C> {
    /// A client `make(sdk)` builds at its first use, e.g. `LazyClient::new(sdk, Client::new)`.
    pub fn new(sdk: &SdkConfig, make: Make<C>) -> Self {
        Self(Arc::new(Inner {
            client: OnceLock::new(),
            make: Some((sdk.clone(), make)),
        }))
    }

    pub fn get(&self) -> &C {
        self.0.client.get_or_init(|| match &self.0.make {
            Some((sdk, make)) => make(sdk),
            None => unreachable!("a client given built is set from the start"),
        })
    }

    #[cfg(test)]
    fn is_built(&self) -> bool {
        self.0.client.get().is_some()
    }
}

/// A client already built.
impl<C> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self(Arc::new(Inner {
            client: OnceLock::from(client),
            make: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static BUILT: AtomicUsize = AtomicUsize::new(0);

    fn make(_: &SdkConfig) -> String {
        BUILT.fetch_add(1, Ordering::SeqCst);
        "client".to_owned()
    }

    #[test]
    fn a_client_is_built_once_at_its_first_use_and_shared_by_clones() {
        let lazy = LazyClient::new(&SdkConfig::builder().build(), make);
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(BUILT.load(Ordering::SeqCst), 0);
        assert_eq!(clone.get(), "client");
        assert_eq!(lazy.get(), "client");
        assert!(lazy.is_built());
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_client_given_built_is_used_as_is() {
        let ready = LazyClient::from("ready".to_owned());
        assert!(ready.is_built());
        assert_eq!(ready.get(), "ready");
    }
}
