//! Products and their alarm rules.

use super::{Catalog, tenant_pk};
use crate::alarm::AlarmRule;
use crate::model::Product;
use crate::ports::{Key, Query, StoreError};

impl Catalog {
    pub async fn product(&self, tenant: &str, id: &str) -> Result<Option<Product>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("PRODUCT#{id}")))
            .await
    }

    pub async fn put_product(&self, product: &Product) -> Result<(), StoreError> {
        self.put(
            Key::new(
                tenant_pk(&product.tenant_id),
                format!("PRODUCT#{}", product.id),
            ),
            product,
        )
        .await
    }

    pub async fn rules(&self, tenant: &str, product: &str) -> Result<Vec<AlarmRule>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), format!("RULE#{product}#")))
            .await
    }

    pub async fn rule(
        &self,
        tenant: &str,
        product: &str,
        id: &str,
    ) -> Result<Option<AlarmRule>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("RULE#{product}#{id}")))
            .await
    }

    pub async fn put_rule(&self, rule: &AlarmRule) -> Result<(), StoreError> {
        let key = Key::new(
            tenant_pk(&rule.tenant_id),
            format!("RULE#{}#{}", rule.product_id, rule.id),
        );
        self.put(key, rule).await
    }

    pub async fn products(&self, tenant: &str) -> Result<Vec<Product>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "PRODUCT#"))
            .await
    }

    /// All alarm rules of a tenant, of every product.
    pub async fn all_rules(&self, tenant: &str) -> Result<Vec<AlarmRule>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "RULE#")).await
    }
}
