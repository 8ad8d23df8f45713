//! Stored days per tenant: telemetry older than a tenant's `retention_days` quota is deleted
//! from stores that do not expire points themselves (SQLite on one machine). DynamoDB expires
//! them by the TTL written with each point; Timestream by its table's retention, with reads
//! bounded per tenant in the API.

use thiserror::Error;

use crate::model::TenantStatus;
use crate::ports::{StoreError, TelemetryError, TelemetryStore};
use crate::repo::Catalog;
use crate::time::{DAY, Millis};

#[derive(Debug, Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

/// Telemetry points deleted per call while purging or expiring.
pub const EXPIRY_BATCH: usize = 10_000;

/// Deletes the points before `before` under `uid_prefix`, batch by batch.
pub async fn expire_all(
    telemetry: &dyn TelemetryStore,
    uid_prefix: &str,
    before: Millis,
) -> Result<Option<u64>, TelemetryError> {
    let mut total = 0;
    loop {
        match telemetry.expire(uid_prefix, before, EXPIRY_BATCH).await? {
            None => return Ok(None),
            Some(n) => {
                total += n;
                if n < EXPIRY_BATCH as u64 {
                    return Ok(Some(total));
                }
            }
        }
    }
}

/// Deletes, for every live tenant with a retention quota, its points older than the quota
/// allows at `now`. Answers how many points went, `None` if the store expires them itself.
pub async fn expire_telemetry(
    catalog: &Catalog,
    telemetry: &dyn TelemetryStore,
    now: Millis,
) -> Result<Option<u64>, RetentionError> {
    let mut total = 0;
    for tenant in catalog.tenants().await? {
        let (Some(days), Some(prefix)) = (tenant.quotas.retention_days, &tenant.uid_prefix) else {
            continue;
        };
        if tenant.status == TenantStatus::Deleted {
            continue;
        }
        let before = now - i64::from(days) * DAY;
        let Some(n) = expire_all(telemetry, prefix, before).await? else {
            return Ok(None);
        };
        if n > 0 {
            tracing::info!(tenant = %tenant.id, points = n, days, "telemetry past the tenant's retention deleted");
        }
        total += n;
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Datum, Quotas, Record, Tenant};
    use crate::ports::memory::{MemoryMetaStore, MemoryTelemetry};
    use crate::ports::{RangeQuery, TelemetryStore};
    use crate::stats::Window;
    use std::sync::Arc;

    const NOW: Millis = 1_795_737_600_000;

    fn tenant(id: &str, retention_days: Option<u32>, status: TenantStatus) -> Tenant {
        Tenant {
            id: id.into(),
            name: id.into(),
            status,
            reason: None,
            quotas: Quotas {
                retention_days,
                ..Quotas::default()
            },
            uid_prefix: Some(format!("{id}_")),
            created_at: 0,
        }
    }

    async fn times(telemetry: &MemoryTelemetry, uid: &str) -> Vec<Millis> {
        let query = RangeQuery {
            device_uid: uid.into(),
            signals: Vec::new(),
            window: Window { start: 0, end: NOW },
            limit: None,
            descending: false,
        };
        let points = telemetry.range(&query).await.unwrap_or_default();
        points.into_iter().map(|p| p.time).collect()
    }

    #[tokio::test]
    async fn each_tenant_keeps_the_days_its_quota_allows() -> Result<(), RetentionError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        for t in [
            tenant("short", Some(7), TenantStatus::Active),
            tenant("paused", Some(7), TenantStatus::Suspended),
            tenant("forever", None, TenantStatus::Active),
        ] {
            catalog.put_tenant(&t, None).await?;
        }
        let telemetry = MemoryTelemetry::default();
        let mut records = Vec::new();
        for uid in ["short_p", "paused_p", "forever_p", "unmanaged_p"] {
            for age in [30, 8, 6, 0] {
                records.push(Record {
                    time: NOW - age * DAY,
                    device_uid: uid.into(),
                    identification_code: String::new(),
                    data: vec![Datum::new("t", 1.0)],
                    nc: String::new(),
                });
            }
        }
        telemetry.write(&records).await?;
        let deleted = expire_telemetry(&catalog, &telemetry, NOW).await?;
        assert_eq!(deleted, Some(4));
        let recent = vec![NOW - 6 * DAY, NOW];
        assert_eq!(times(&telemetry, "short_p").await, recent);
        assert_eq!(times(&telemetry, "paused_p").await, recent);
        assert_eq!(times(&telemetry, "forever_p").await.len(), 4);
        assert_eq!(times(&telemetry, "unmanaged_p").await.len(), 4);
        Ok(())
    }
}
