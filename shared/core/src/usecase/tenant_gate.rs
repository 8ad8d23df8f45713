//! What a device's message must pass before it is parsed: its tenant is active, and within
//! its message rate. Read through a short cache, so the check costs no read per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::cache::TtlCache;
use crate::model::{Tenant, TenantRefused};
use crate::ports::{Clock, StoreError};
use crate::repo::Catalog;
use crate::time::{Millis, SECOND};

/// Why a tenant's device may not send now.
#[derive(Debug, thiserror::Error)]
pub enum GateRefused {
    #[error(transparent)]
    Tenant(#[from] TenantRefused),
    #[error("tenant {tenant:?} is over its quota of {limit} messages per second")]
    OverRate { tenant: String, limit: u32 },
}

impl GateRefused {
    /// The dead-letter kind of a refused message.
    pub fn kind(&self) -> &'static str {
        match self {
            GateRefused::Tenant(_) => "tenant_refused",
            GateRefused::OverRate { .. } => "quota",
        }
    }
}

pub struct TenantGate {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    tenants: TtlCache<Option<Arc<Tenant>>>,
    /// Per tenant: the second being counted and the messages in it.
    rates: Mutex<HashMap<String, (Millis, u32)>>,
}

impl TenantGate {
    pub fn new(catalog: Catalog, clock: Arc<dyn Clock>, ttl: Millis) -> Self {
        Self {
            catalog,
            clock,
            tenants: TtlCache::new(ttl),
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's record, if it has one (unmanaged tenants have none and pass).
    pub async fn tenant(&self, id: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        let now = self.clock.now_ms();
        if let Some(cached) = self.tenants.get(id, now) {
            return Ok(cached);
        }
        let record = self.catalog.tenant(id).await?.map(|v| Arc::new(v.value));
        self.tenants.insert(id.to_owned(), record.clone(), now);
        Ok(record)
    }

    /// Whether the tenant's devices may connect: active, or unmanaged.
    pub async fn check_active(&self, id: &str) -> Result<Result<(), TenantRefused>, StoreError> {
        Ok(match self.tenant(id).await? {
            Some(tenant) => tenant.check_active(),
            None => Ok(()),
        })
    }

    /// Admits one message of the tenant's devices, answering the tenant's record (none for an
    /// unmanaged tenant), or says why not.
    pub async fn admit(
        &self,
        id: &str,
    ) -> Result<Result<Option<Arc<Tenant>>, GateRefused>, StoreError> {
        let Some(tenant) = self.tenant(id).await? else {
            return Ok(Ok(None));
        };
        if let Err(refused) = tenant.check_active() {
            return Ok(Err(refused.into()));
        }
        let Some(limit) = tenant.quotas.max_messages_per_second else {
            return Ok(Ok(Some(tenant)));
        };
        let second = self.clock.now_ms() / SECOND;
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let (counted, count) = rates.entry(id.to_owned()).or_insert((second, 0));
        if *counted != second {
            (*counted, *count) = (second, 0);
        }
        if *count >= limit {
            return Ok(Err(GateRefused::OverRate {
                tenant: id.to_owned(),
                limit,
            }));
        }
        *count += 1;
        Ok(Ok(Some(tenant)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Quotas, TenantStatus};
    use crate::ports::ManualClock;
    use crate::ports::memory::MemoryMetaStore;

    fn tenant(status: TenantStatus, per_second: Option<u32>) -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            status,
            reason: Some("unpaid".into()),
            quotas: Quotas {
                max_messages_per_second: per_second,
                ..Quotas::default()
            },
            uid_prefix: Some("acme_".into()),
            created_at: 0,
        }
    }

    async fn gate(record: Option<Tenant>) -> Result<(TenantGate, Arc<ManualClock>), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        if let Some(record) = record {
            catalog.put_tenant(&record, None).await?;
        }
        let clock = Arc::new(ManualClock::new(10 * SECOND));
        Ok((TenantGate::new(catalog, clock.clone(), 0), clock))
    }

    #[tokio::test]
    async fn an_unmanaged_tenant_passes() -> Result<(), StoreError> {
        let (gate, _) = gate(None).await?;
        assert!(gate.admit("acme").await?.is_ok());
        Ok(())
    }

    #[tokio::test]
    async fn a_suspended_tenant_is_refused_with_its_reason() -> Result<(), StoreError> {
        let (gate, _) = gate(Some(tenant(TenantStatus::Suspended, None))).await?;
        let refused = gate.admit("acme").await?.unwrap_err();
        assert_eq!(refused.kind(), "tenant_refused");
        assert!(refused.to_string().contains("unpaid"), "{refused}");
        assert!(gate.check_active("acme").await?.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn the_rate_quota_admits_its_limit_per_second() -> Result<(), StoreError> {
        let (gate, clock) = gate(Some(tenant(TenantStatus::Active, Some(3)))).await?;
        for _ in 0..3 {
            assert!(gate.admit("acme").await?.is_ok());
        }
        let refused = gate.admit("acme").await?.unwrap_err();
        assert_eq!(refused.kind(), "quota");
        clock.advance(SECOND);
        assert!(gate.admit("acme").await?.is_ok());
        Ok(())
    }
}
