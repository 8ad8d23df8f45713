//! Application credentials of the embedded broker.
//!
//! | entity | pk | sk | index pk / sk |
//! |---|---|---|---|
//! | application credential | `APPCRED#{id}` | `APPCRED` | `TENANT#{t}#APPCREDS` / `{id}` |

use super::{Catalog, tenant_pk, to_json};
use crate::model::AppCredential;
use crate::ports::{Condition, Item, Key, Query, StoreError};

fn app_credential_key(id: &str) -> Key {
    Key::new(format!("APPCRED#{id}"), "APPCRED")
}

pub(super) fn app_credentials_index(tenant: &str) -> String {
    format!("{}#APPCREDS", tenant_pk(tenant))
}

impl Catalog {
    /// The credential of this id, whichever tenant holds it (a CONNECT names only the id).
    pub async fn app_credential(&self, id: &str) -> Result<Option<AppCredential>, StoreError> {
        self.get(app_credential_key(id)).await
    }

    /// Stores a new credential; refused if the id exists.
    pub async fn create_app_credential(
        &self,
        credential: &AppCredential,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(app_credential_key(&credential.id), to_json(credential)?);
        item.index = Some(Key::new(
            app_credentials_index(&credential.tenant_id),
            credential.id.clone(),
        ));
        self.store.put(item, Condition::NotExists).await
    }

    /// A page of the tenant's credentials by id, from `cursor` on.
    pub async fn app_credentials_page(
        &self,
        tenant: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AppCredential>, Option<String>), StoreError> {
        let mut query = Query::index(app_credentials_index(tenant));
        query.cursor = cursor;
        self.page_where(query, limit, |c: &AppCredential| c.tenant_id == tenant)
            .await
    }

    /// Deletes the tenant's credential; `Ok(false)` if the tenant has none of this id.
    pub async fn delete_app_credential(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        match self.app_credential(id).await? {
            Some(c) if c.tenant_id == tenant => {
                self.store
                    .delete(&app_credential_key(id), Condition::Exists)
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryMetaStore;
    use std::sync::Arc;

    fn credential(id: &str, tenant: &str) -> AppCredential {
        AppCredential {
            id: id.into(),
            tenant_id: tenant.into(),
            name: "dashboard".into(),
            digest: "d".into(),
            broker_hash: "h".into(),
            created_at: 1,
            created_by: "admin".into(),
        }
    }

    #[tokio::test]
    async fn credentials_are_listed_and_deleted_by_their_tenant_only() -> Result<(), StoreError> {
        let catalog = Catalog::new(Arc::new(MemoryMetaStore::default()));
        catalog
            .create_app_credential(&credential("k1", "acme"))
            .await?;
        catalog
            .create_app_credential(&credential("k2", "beta"))
            .await?;
        assert!(
            catalog
                .create_app_credential(&credential("k1", "beta"))
                .await
                .is_err()
        );
        let (acme, _) = catalog.app_credentials_page("acme", None, 10).await?;
        assert_eq!(acme, vec![credential("k1", "acme")]);
        assert!(!catalog.delete_app_credential("beta", "k1").await?);
        assert!(catalog.app_credential("k1").await?.is_some());
        assert!(catalog.delete_app_credential("acme", "k1").await?);
        assert_eq!(catalog.app_credential("k1").await?, None);
        Ok(())
    }
}
