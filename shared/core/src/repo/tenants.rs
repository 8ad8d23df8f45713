//! Tenant records, kept by the platform operator.
//!
//! | entity | pk | sk | index pk / sk |
//! |---|---|---|---|
//! | tenant (versioned) | `TENANT#{t}` | `TENANT` | `TENANTS` / `{t}` |

use super::{Catalog, Versioned, devices_query, tenant_pk, to_json};
use crate::model::Tenant;
use crate::ports::{Condition, Item, Key, Query, StoreError};

fn tenant_key(id: &str) -> Key {
    Key::new(tenant_pk(id), "TENANT")
}

impl Catalog {
    pub async fn tenant(&self, id: &str) -> Result<Option<Versioned<Tenant>>, StoreError> {
        self.get_versioned(tenant_key(id)).await
    }

    /// Saves a tenant record: a new one when `expected` is `None` (refused if the id was ever
    /// used), else only over that version.
    pub async fn put_tenant(
        &self,
        tenant: &Tenant,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(tenant_key(&tenant.id), to_json(tenant)?);
        item.version = expected.map_or(1, |v| v + 1);
        item.index = Some(Key::new("TENANTS", tenant.id.clone()));
        let condition = expected.map_or(Condition::NotExists, Condition::Version);
        self.store.put(item, condition).await
    }

    /// A page of tenant records by id, from `cursor` on.
    pub async fn tenants_page(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Tenant>, Option<String>), StoreError> {
        let mut query = Query::index("TENANTS");
        query.cursor = cursor;
        self.page_where(query, limit, |_: &Tenant| true).await
    }

    /// Every managed tenant, by id (a platform has few enough to read at once).
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.list(Query::index("TENANTS")).await
    }

    /// How many devices the tenant has, counting no further than `up_to`: enough to check a
    /// quota without reading a large fleet.
    pub async fn count_devices(&self, tenant: &str, up_to: usize) -> Result<usize, StoreError> {
        let mut query = devices_query(tenant, None);
        let mut count = 0;
        loop {
            query.limit = Some(up_to.saturating_sub(count).clamp(1, 1_000));
            let page = self.store.query(&query).await?;
            count += page.items.len();
            match page.next {
                Some(next) if count < up_to => query.cursor = Some(next),
                _ => return Ok(count),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Quotas, TenantStatus};
    use crate::ports::memory::MemoryMetaStore;
    use std::sync::Arc;

    fn acme() -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            status: TenantStatus::Active,
            reason: None,
            quotas: Quotas::default(),
            uid_prefix: Some("acme_".into()),
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn a_tenant_id_is_given_out_once_and_updated_by_version() -> Result<(), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        catalog.put_tenant(&acme(), None).await?;
        assert!(catalog.put_tenant(&acme(), None).await.is_err());
        let stored = catalog.tenant("acme").await?.expect("stored");
        let suspended = Tenant {
            status: TenantStatus::Suspended,
            ..stored.value
        };
        catalog.put_tenant(&suspended, Some(stored.version)).await?;
        assert!(
            catalog
                .put_tenant(&suspended, Some(stored.version))
                .await
                .is_err()
        );
        let (listed, next) = catalog.tenants_page(None, 10).await?;
        assert_eq!(listed, vec![suspended]);
        assert_eq!(next, None);
        Ok(())
    }
}
