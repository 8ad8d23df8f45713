//! The platform operator's work on tenants: create one with its first administrator, change
//! its quotas, suspend, resume and delete it.

use std::sync::Arc;
use thiserror::Error;

use crate::auth::{AuthError, AuthService};
use crate::model::{Quotas, Tenant, TenantStatus, check_tenant_id, uid_prefix};
use crate::ports::{Clock, DeviceGateway, GatewayError, StoreError};
use crate::repo::Catalog;

#[derive(Debug, Error)]
pub enum TenantError {
    #[error("{0}")]
    InvalidId(String),
    #[error("tenant {0:?} exists or existed; tenant ids are never given out twice")]
    Taken(String),
    #[error("no tenant {0:?}")]
    Unknown(String),
    #[error("{0:?} is the platform's own tenant; it cannot be suspended or deleted")]
    Platform(String),
    #[error("tenant {0:?} has been deleted")]
    Deleted(String),
    #[error("tenant {0:?} changed meanwhile; read it again and retry")]
    Contended(String),
    #[error("the first administrator: {0}")]
    Admin(AuthError),
    #[error("deleting the tenant's devices: {0}")]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A tenant to create, with its first administrator.
pub struct NewTenant {
    pub id: String,
    pub name: String,
    pub quotas: Quotas,
    pub admin_user: String,
    pub admin_password: String,
}

pub struct TenantService {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    /// The platform's own tenant, whose administrators operate the platform.
    platform: String,
}

impl TenantService {
    pub fn new(catalog: Catalog, clock: Arc<dyn Clock>, platform: impl Into<String>) -> Self {
        Self {
            catalog,
            clock,
            platform: platform.into(),
        }
    }

    /// Creates the tenant's record, then its roles and first administrator. Refused for an id
    /// any tenant has had, managed or not.
    pub async fn create(&self, auth: &AuthService, new: NewTenant) -> Result<Tenant, TenantError> {
        check_tenant_id(&new.id).map_err(TenantError::InvalidId)?;
        crate::auth::password::check_strength(&new.admin_password)
            .map_err(|e| TenantError::Admin(AuthError::WeakPassword(e)))?;
        if new.id == self.platform || self.catalog.policy(&new.id).await?.is_some() {
            return Err(TenantError::Taken(new.id));
        }
        let tenant = Tenant {
            uid_prefix: Some(uid_prefix(&new.id)),
            id: new.id,
            name: new.name,
            status: TenantStatus::Active,
            reason: None,
            quotas: new.quotas,
            created_at: self.clock.now_ms(),
        };
        match self.catalog.put_tenant(&tenant, None).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed(_)) => return Err(TenantError::Taken(tenant.id)),
            Err(e) => return Err(e.into()),
        }
        auth.bootstrap_tenant(&tenant.id, &new.admin_user, &new.admin_password)
            .await
            .map_err(TenantError::Admin)?;
        Ok(tenant)
    }

    pub async fn get(&self, id: &str) -> Result<Tenant, TenantError> {
        Ok(self
            .catalog
            .tenant(id)
            .await?
            .ok_or_else(|| TenantError::Unknown(id.to_owned()))?
            .value)
    }

    /// Changes a live tenant's record with `change`, over the version read.
    async fn change(
        &self,
        id: &str,
        change: impl FnOnce(&mut Tenant),
    ) -> Result<Tenant, TenantError> {
        if id == self.platform {
            return Err(TenantError::Platform(id.to_owned()));
        }
        let stored = self
            .catalog
            .tenant(id)
            .await?
            .ok_or_else(|| TenantError::Unknown(id.to_owned()))?;
        let mut tenant = stored.value;
        if tenant.status == TenantStatus::Deleted {
            return Err(TenantError::Deleted(id.to_owned()));
        }
        change(&mut tenant);
        match self.catalog.put_tenant(&tenant, Some(stored.version)).await {
            Ok(()) => Ok(tenant),
            Err(StoreError::ConditionFailed(_)) => Err(TenantError::Contended(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update(
        &self,
        id: &str,
        name: Option<String>,
        quotas: Quotas,
    ) -> Result<Tenant, TenantError> {
        self.change(id, |t| {
            if let Some(name) = name {
                t.name = name;
            }
            t.quotas = quotas;
        })
        .await
    }

    /// Its users are refused at their next request and its devices' messages dead-lettered,
    /// with `reason`.
    pub async fn suspend(&self, id: &str, reason: String) -> Result<Tenant, TenantError> {
        self.change(id, |t| {
            t.status = TenantStatus::Suspended;
            t.reason = Some(reason);
        })
        .await
    }

    pub async fn resume(&self, id: &str) -> Result<Tenant, TenantError> {
        self.change(id, |t| {
            t.status = TenantStatus::Active;
            t.reason = None;
        })
        .await
    }

    /// Marks the tenant deleted (everything it had is refused from then on), then removes its
    /// devices from the device side and the catalog, so their credentials die with it. Safe to
    /// call again if it stopped halfway.
    pub async fn delete(
        &self,
        id: &str,
        gateway: &dyn DeviceGateway,
    ) -> Result<usize, TenantError> {
        match self
            .change(id, |t| {
                t.status = TenantStatus::Deleted;
                t.reason = None;
            })
            .await
        {
            Ok(_) | Err(TenantError::Deleted(_)) => {}
            Err(e) => return Err(e),
        }
        let devices = self.catalog.devices(id, None).await?;
        for device in &devices {
            match gateway.deregister(&device.uid).await {
                Ok(()) | Err(GatewayError::UnknownDevice(_)) => {}
                Err(e) => return Err(e.into()),
            }
            self.catalog
                .delete_device(device, self.clock.now_ms())
                .await?;
        }
        Ok(devices.len())
    }
}
