//! Failed sign-ins counted per account and source address: five from one address lock that
//! address out of that account for a while, so a stranger cannot lock a known account for
//! everyone with five requests. Counted for unknown names too, so a lock tells nothing about
//! whether an account exists.

use serde::{Deserialize, Serialize};

use crate::ports::StoreError;
use crate::repo::Catalog;
use crate::time::Millis;

/// How many more failures, from any sources, lock the account itself: a guess spread over
/// many addresses is slowed too, at a cost a single stranger cannot pay.
pub const ACCOUNT_FACTOR: u32 = 10;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Failures {
    count: u32,
    #[serde(default)]
    locked_until: Option<Millis>,
}

pub struct SourceThrottle<'a> {
    pub catalog: &'a Catalog,
    pub max_failures: u32,
    pub lockout_ms: Millis,
}

impl SourceThrottle<'_> {
    /// Until when this source is locked out of the account, if it is.
    pub async fn locked(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let stored: Option<Failures> = self.catalog.sign_in_failures(tenant, user, source).await?;
        Ok(stored.and_then(|f| f.locked_until).filter(|&t| t > now))
    }

    /// Counts a failure; returns the end of the lock if this one started it.
    pub async fn failed(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        let mut failures: Failures = self
            .catalog
            .sign_in_failures(tenant, user, source)
            .await?
            .unwrap_or_default();
        if failures.locked_until.is_some_and(|t| t <= now) {
            failures = Failures::default();
        }
        failures.count += 1;
        let locked = (failures.count >= self.max_failures).then_some(now + self.lockout_ms);
        if locked.is_some() {
            failures.locked_until = locked;
            tracing::warn!(
                tenant,
                user,
                source,
                "sign-in locked for this source after failures"
            );
        }
        // Forgotten a lockout after the last failure, like the lock itself.
        self.catalog
            .put_sign_in_failures(tenant, user, source, &failures, now + self.lockout_ms)
            .await?;
        Ok(locked)
    }

    /// A success from this source forgets its failures.
    pub async fn succeeded(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        self.catalog
            .clear_sign_in_failures(tenant, user, source)
            .await
    }
}
