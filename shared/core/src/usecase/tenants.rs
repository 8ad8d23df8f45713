//! The platform operator's work on tenants: create one with its first administrator, change
//! its quotas, suspend, resume and delete it.

use std::sync::Arc;
use thiserror::Error;

use super::retention::expire_all;
use crate::auth::{AuthError, AuthService};
use crate::model::{Quotas, Tenant, TenantStatus, check_tenant_id, uid_prefix};
use crate::ports::{
    BlobError, BlobStore, Clock, DeviceGateway, GatewayError, Scheduler, SchedulerError,
    StoreError, TelemetryError, TelemetryStore, schedule_name,
};
use crate::repo::Catalog;
use crate::time::Millis;

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
    #[error("the tenant's devices: {0}")]
    Gateway(#[from] GatewayError),
    #[error("deleting the tenant's telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    #[error("deleting the tenant's statistics schedules: {0}")]
    Scheduler(#[from] SchedulerError),
    #[error("deleting the tenant's exports: {0}")]
    Exports(#[from] BlobError),
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

/// Where a tenant's devices, telemetry and schedules live, besides the catalog.
#[derive(Clone)]
pub struct TenantPorts {
    pub gateway: Arc<dyn DeviceGateway>,
    pub telemetry: Arc<dyn TelemetryStore>,
    pub scheduler: Arc<dyn Scheduler>,
    /// Telemetry exports, under `exports/{tenant}/`.
    pub exports: Arc<dyn BlobStore>,
}

/// What deleting a tenant removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub devices: usize,
    /// Catalog items: users, configuration, alarms, results, credentials.
    pub items: usize,
    /// Telemetry points; `None` where the store's own expiry removes them.
    pub points: Option<u64>,
    /// Telemetry export files.
    pub exports: usize,
}

pub struct TenantService {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    ports: TenantPorts,
    /// The platform's own tenant, whose administrators operate the platform.
    platform: String,
}

impl TenantService {
    pub fn new(
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        ports: TenantPorts,
        platform: impl Into<String>,
    ) -> Self {
        Self {
            catalog,
            clock,
            ports,
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

    /// Its users are refused at their next request, its devices' connections are ended and
    /// refused at the device side, and messages that still arrive are dead-lettered, with
    /// `reason`. The record changes first, so a failure at the device side leaves the tenant
    /// refused everywhere else; suspending again retries it.
    pub async fn suspend(&self, id: &str, reason: String) -> Result<Tenant, TenantError> {
        let tenant = self
            .change(id, |t| {
                t.status = TenantStatus::Suspended;
                t.reason = Some(reason);
            })
            .await?;
        self.ports.gateway.set_tenant_access(id, false).await?;
        Ok(tenant)
    }

    /// Lets the device side accept the tenant's devices again, then the tenant's record.
    pub async fn resume(&self, id: &str) -> Result<Tenant, TenantError> {
        self.get(id).await?;
        self.ports.gateway.set_tenant_access(id, true).await?;
        self.change(id, |t| {
            t.status = TenantStatus::Active;
            t.reason = None;
        })
        .await
    }

    /// Marks the tenant deleted (everything it had is refused from then on), then removes its
    /// statistics schedules, its catalog items (see [`Catalog::purge_tenant`]), its exports,
    /// its telemetry where the store deletes points, and its devices from the device side and the catalog,
    /// so their credentials die with it. Safe to call again if it stopped halfway.
    pub async fn delete(&self, id: &str) -> Result<Purged, TenantError> {
        let tenant = match self
            .change(id, |t| {
                t.status = TenantStatus::Deleted;
                t.reason = None;
            })
            .await
        {
            Ok(tenant) => tenant,
            Err(TenantError::Deleted(_)) => self.get(id).await?,
            Err(e) => return Err(e),
        };
        let devices = self.catalog.devices(id, None).await?;
        for job in self.catalog.stat_jobs(id).await? {
            self.ports
                .scheduler
                .delete(&schedule_name(id, &job.id))
                .await?;
        }
        let uids: Vec<String> = devices.iter().map(|d| d.uid.clone()).collect();
        let items = self.catalog.purge_tenant(id, &uids).await?;
        let export_files = self.ports.exports.list(&format!("exports/{id}/")).await?;
        for key in &export_files {
            self.ports.exports.delete(key).await?;
        }
        let points = match &tenant.uid_prefix {
            Some(prefix) => expire_all(self.ports.telemetry.as_ref(), prefix, Millis::MAX).await?,
            None => None,
        };
        for device in &devices {
            match self.ports.gateway.deregister(&device.uid).await {
                Ok(()) | Err(GatewayError::UnknownDevice(_)) => {}
                Err(e) => return Err(e.into()),
            }
            self.catalog
                .delete_device(device, self.clock.now_ms())
                .await?;
        }
        Ok(Purged {
            devices: devices.len(),
            items,
            points,
            exports: export_files.len(),
        })
    }
}
