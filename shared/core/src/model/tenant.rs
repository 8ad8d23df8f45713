//! Tenants as the platform operator manages them: status, quotas and the uid namespace.

use serde::{Deserialize, Serialize};

use crate::time::{DAY, Millis};

/// A tenant's record, kept by the platform operator. Tenants without one (made before
/// tenants were managed, or the platform's own) are active and unlimited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
    )]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub status: TenantStatus,
    /// Why the tenant was suspended, told to its users and in its devices' dead letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub quotas: Quotas,
    /// Every device uid of the tenant begins with this (`{id}_`), so no tenant can name,
    /// or learn of, another tenant's devices. `None` for the platform's own tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub uid_prefix: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub created_at: Millis,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    #[default]
    Active,
    /// Its users cannot sign in and its devices' messages are dead-lettered, until resumed.
    Suspended,
    /// Its devices and users are gone; the id is never given out again.
    Deleted,
}

/// Limits per tenant; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Most devices the tenant may register.
    #[serde(default)]
    pub max_devices: Option<u32>,
    /// Most messages per second its devices may send, over a one-second bucket per ingest
    /// process; the rest are dead-lettered with the reason `quota`, and can be replayed.
    #[serde(default)]
    pub max_messages_per_second: Option<u32>,
    /// Days of telemetry and statistics the tenant may read back.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl Tenant {
    /// Whether the tenant's users and devices may act; `Err` says why not.
    pub fn check_active(&self) -> Result<(), TenantRefused> {
        match self.status {
            TenantStatus::Active => Ok(()),
            TenantStatus::Suspended => Err(TenantRefused::Suspended {
                tenant: self.id.clone(),
                reason: self
                    .reason
                    .clone()
                    .unwrap_or_else(|| "no reason given".into()),
            }),
            TenantStatus::Deleted => Err(TenantRefused::Deleted(self.id.clone())),
        }
    }

    /// The earliest time the tenant may read telemetry of, at `now`.
    pub fn readable_since(&self, now: Millis) -> Option<Millis> {
        self.quotas
            .retention_days
            .map(|days| now - i64::from(days) * DAY)
    }

    /// Whether `uid` lies in the tenant's uid namespace.
    pub fn owns_uid(&self, uid: &str) -> bool {
        self.uid_prefix
            .as_deref()
            .is_none_or(|prefix| uid.starts_with(prefix) && uid.len() > prefix.len())
    }
}

/// The uid prefix of a managed tenant. Tenant ids have no `_`, so no tenant's prefix begins
/// another's.
pub fn uid_prefix(tenant: &str) -> String {
    format!("{tenant}_")
}

/// Managed tenant ids are DNS-label-like: lowercase letters, digits and inner `-`, at most 32.
pub fn check_tenant_id(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    let ok = (1..=32).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a tenant id: use 1 to 32 lowercase letters, digits and inner '-'"
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenantRefused {
    #[error("tenant {tenant:?} is suspended: {reason}")]
    Suspended { tenant: String, reason: String },
    #[error("tenant {0:?} has been deleted")]
    Deleted(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(prefix: Option<&str>) -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            status: TenantStatus::Active,
            reason: None,
            quotas: Quotas::default(),
            uid_prefix: prefix.map(str::to_owned),
            created_at: 0,
        }
    }

    #[test]
    fn tenant_ids_cannot_hold_the_prefix_separator() {
        assert!(check_tenant_id("acme-2").is_ok());
        for bad in ["", "Acme", "a_b", "a.b", "-a", "a-", &"a".repeat(33)] {
            assert!(check_tenant_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_prefixed_tenant_owns_only_uids_under_its_prefix() {
        let t = tenant(Some("acme_"));
        assert!(t.owns_uid("acme_pump-1"));
        assert!(!t.owns_uid("acme_"));
        assert!(!t.owns_uid("acme-2_pump-1"));
        assert!(!t.owns_uid("pump-1"));
        assert!(tenant(None).owns_uid("pump-1"));
    }

    #[test]
    fn suspension_says_why() {
        let mut t = tenant(None);
        assert!(t.check_active().is_ok());
        t.status = TenantStatus::Suspended;
        t.reason = Some("invoice unpaid".into());
        let refused = t.check_active().unwrap_err().to_string();
        assert_eq!(refused, "tenant \"acme\" is suspended: invoice unpaid");
        t.status = TenantStatus::Deleted;
        assert!(t.check_active().is_err());
    }
}
