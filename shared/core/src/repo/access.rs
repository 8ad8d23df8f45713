//! Users, credentials, sessions, the tenant's policy, departments and the audit log.
//!
//! | entity | pk | sk | index pk / sk |
//! |---|---|---|---|
//! | user | `TENANT#{t}` | `USER#{id}` | |
//! | credential (versioned) | `TENANT#{t}#USER#{id}` | `CREDENTIAL` | |
//! | session (with TTL) | `SESSION#{id}` | `SESSION` | `TENANT#{t}#USER#{u}#SESSIONS` / `{created_at, 20 digits}#{id}` |
//! | policy (versioned) | `TENANT#{t}` | `POLICY` | |
//! | tenant settings | `TENANT#{t}` | `SETTINGS` | |
//! | telemetry export (with TTL) | `TENANT#{t}` | `EXPORT#{id}` | |
//! | department | `TENANT#{t}` | `DEPT#{id}` | |
//! | audit entry (with TTL) | `TENANT#{t}#AUDIT` | `{at, 20 digits}#{id}` | |
//! | failed sign-ins of a name from a source (with TTL) | `TENANT#{t}#SIGNIN#{user}` | `{source}` | |

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Catalog, from_item, tenant_pk, to_json};
use crate::auth::{AuditEntry, Credential, Policy, Session, TenantSettings, User};
use crate::model::Department;
use crate::ports::{Condition, Item, Key, Query, SortKey, StoreError};
use crate::time::Millis;

fn user_key(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("USER#{id}"))
}

fn credential_key(tenant: &str, id: &str) -> Key {
    Key::new(format!("{}#USER#{id}", tenant_pk(tenant)), "CREDENTIAL")
}

fn session_key(id: &str) -> Key {
    Key::new(format!("SESSION#{id}"), "SESSION")
}

pub(super) fn sessions_pk(tenant: &str, user: &str) -> String {
    format!("{}#USER#{user}#SESSIONS", tenant_pk(tenant))
}

fn sign_in_key(tenant: &str, user: &str, source: &str) -> Key {
    Key::new(
        format!("{}#SIGNIN#{user}", tenant_pk(tenant)),
        source.to_owned(),
    )
}

fn policy_key(tenant: &str) -> Key {
    Key::new(tenant_pk(tenant), "POLICY")
}

fn settings_key(tenant: &str) -> Key {
    Key::new(tenant_pk(tenant), "SETTINGS")
}

fn department_key(tenant: &str, id: &str) -> Key {
    Key::new(tenant_pk(tenant), format!("DEPT#{id}"))
}

fn audit_pk(tenant: &str) -> String {
    format!("{}#AUDIT", tenant_pk(tenant))
}

/// A stored value and the version a conditional update must name.
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Which audit entries to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Entries whose path starts with this, e.g. `/v1/devices`.
    pub path_prefix: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Catalog {
    pub(super) async fn get_versioned<T: DeserializeOwned>(
        &self,
        key: Key,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(item) => {
                let version = item.version;
                Ok(Some(Versioned {
                    value: from_item(item)?,
                    version,
                }))
            }
        }
    }

    /// Writes `value` if the stored version is still `expected` (`None`: nothing stored yet).
    pub(super) async fn put_versioned<T: Serialize>(
        &self,
        key: Key,
        value: &T,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(key, to_json(value)?);
        item.version = expected.map_or(1, |v| v + 1);
        let condition = expected.map_or(Condition::NotExists, Condition::Version);
        self.store.put(item, condition).await
    }

    // ---- users

    pub async fn user(&self, tenant: &str, id: &str) -> Result<Option<User>, StoreError> {
        self.get(user_key(tenant, id)).await
    }

    pub async fn users(&self, tenant: &str) -> Result<Vec<User>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "USER#")).await
    }

    /// Creates a user; an existing id is a condition failure.
    pub async fn create_user(
        &self,
        user: &User,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        self.store
            .transact(vec![
                crate::ports::Write::Put {
                    item: Item::new(user_key(&user.tenant_id, &user.id), to_json(user)?),
                    condition: Condition::NotExists,
                },
                crate::ports::Write::Put {
                    item: Item::new(
                        credential_key(&user.tenant_id, &user.id),
                        to_json(credential)?,
                    ),
                    condition: Condition::Always,
                },
            ])
            .await
    }

    /// Saves a user and the tenant's policy in one transaction, both or neither: a new user
    /// (with `credential`, refused if the id exists) or an update of an existing one, and the
    /// policy over `policy_version` (`None`: the tenant has none yet).
    pub async fn save_user_with_policy(
        &self,
        user: &User,
        credential: Option<&Credential>,
        policy: &Policy,
        policy_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let user_key = user_key(&user.tenant_id, &user.id);
        let mut writes = vec![crate::ports::Write::Put {
            item: Item::new(user_key, to_json(user)?),
            condition: if credential.is_some() {
                Condition::NotExists
            } else {
                Condition::Exists
            },
        }];
        if let Some(credential) = credential {
            writes.push(crate::ports::Write::Put {
                item: Item::new(
                    credential_key(&user.tenant_id, &user.id),
                    to_json(credential)?,
                ),
                condition: Condition::Always,
            });
        }
        let mut item = Item::new(policy_key(&user.tenant_id), to_json(policy)?);
        item.version = policy_version.map_or(1, |v| v + 1);
        writes.push(crate::ports::Write::Put {
            item,
            condition: policy_version.map_or(Condition::NotExists, Condition::Version),
        });
        self.store.transact(writes).await
    }

    pub async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        self.store
            .put(
                Item::new(user_key(&user.tenant_id, &user.id), to_json(user)?),
                Condition::Exists,
            )
            .await
    }

    pub async fn delete_user(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.store
            .transact(vec![
                crate::ports::Write::Delete {
                    key: user_key(tenant, id),
                    condition: Condition::Exists,
                },
                crate::ports::Write::Delete {
                    key: credential_key(tenant, id),
                    condition: Condition::Always,
                },
            ])
            .await
    }

    pub async fn credential(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Option<Versioned<Credential>>, StoreError> {
        self.get_versioned(credential_key(tenant, user)).await
    }

    pub async fn put_credential(
        &self,
        tenant: &str,
        user: &str,
        credential: &Credential,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        self.put_versioned(credential_key(tenant, user), credential, expected)
            .await
    }

    // ---- failed sign-ins per source

    pub async fn sign_in_failures<T: DeserializeOwned>(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get(sign_in_key(tenant, user, source)).await
    }

    pub async fn put_sign_in_failures<T: Serialize>(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
        failures: &T,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(sign_in_key(tenant, user, source), to_json(failures)?);
        item.expires_at = Some(expires_at);
        self.store.put(item, Condition::Always).await
    }

    pub async fn clear_sign_in_failures(
        &self,
        tenant: &str,
        user: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        self.store
            .delete(&sign_in_key(tenant, user, source), Condition::Always)
            .await
    }

    // ---- sessions

    pub async fn session(&self, id: &str) -> Result<Option<Versioned<Session>>, StoreError> {
        self.get_versioned(session_key(id)).await
    }

    /// Creates (`expected` `None`) or rotates a session, conditionally on its version.
    pub async fn put_session(
        &self,
        session: &Session,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(session_key(&session.id), to_json(session)?);
        item.version = expected.map_or(1, |v| v + 1);
        item.expires_at = Some(session.expires_at);
        item.index = Some(Key::new(
            sessions_pk(&session.tenant_id, &session.user_id),
            format!("{:020}#{}", session.created_at, session.id),
        ));
        let condition = expected.map_or(Condition::NotExists, Condition::Version);
        self.store.put(item, condition).await
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete(&session_key(id), Condition::Always).await
    }

    pub async fn sessions_of(&self, tenant: &str, user: &str) -> Result<Vec<Session>, StoreError> {
        self.list(Query::index(sessions_pk(tenant, user))).await
    }

    // ---- policy

    /// The tenant's policy (only its own domain's lines) and its version.
    pub async fn policy(&self, tenant: &str) -> Result<Option<Versioned<Policy>>, StoreError> {
        self.get_versioned(policy_key(tenant)).await
    }

    pub async fn put_policy(
        &self,
        tenant: &str,
        policy: &Policy,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        self.put_versioned(policy_key(tenant), policy, expected)
            .await
    }

    /// Applies `change` to the tenant's policy and saves it, reading it again if another
    /// change won the race; `None` if it kept losing.
    pub async fn update_policy<E: From<StoreError>>(
        &self,
        tenant: &str,
        mut change: impl FnMut(&mut Policy) -> Result<(), E>,
    ) -> Result<Option<Policy>, E> {
        for _ in 0..3 {
            let stored = self.policy(tenant).await?;
            let version = stored.as_ref().map(|v| v.version);
            let mut policy = stored.map(|v| v.value).unwrap_or_default();
            change(&mut policy)?;
            policy.normalize();
            match self.put_policy(tenant, &policy, version).await {
                Ok(()) => return Ok(Some(policy)),
                Err(StoreError::ConditionFailed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    // ---- tenant settings

    pub async fn settings(&self, tenant: &str) -> Result<TenantSettings, StoreError> {
        Ok(self.get(settings_key(tenant)).await?.unwrap_or_default())
    }

    pub async fn put_settings(
        &self,
        tenant: &str,
        settings: &TenantSettings,
    ) -> Result<(), StoreError> {
        self.put(settings_key(tenant), settings).await
    }

    // ---- departments

    pub async fn department(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Department>, StoreError> {
        self.get(department_key(tenant, id)).await
    }

    pub async fn departments(&self, tenant: &str) -> Result<Vec<Department>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "DEPT#")).await
    }

    pub async fn put_department(&self, department: &Department) -> Result<(), StoreError> {
        self.put(
            department_key(&department.tenant_id, &department.id),
            department,
        )
        .await
    }

    pub async fn delete_department(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.store
            .delete(&department_key(tenant, id), Condition::Exists)
            .await
    }

    // ---- telemetry exports (the API's records of files in the blob store)

    pub async fn export<T: DeserializeOwned>(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("EXPORT#{id}")))
            .await
    }

    pub async fn put_export<T: Serialize>(
        &self,
        tenant: &str,
        id: &str,
        record: &T,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(
            Key::new(tenant_pk(tenant), format!("EXPORT#{id}")),
            to_json(record)?,
        );
        item.expires_at = Some(expires_at);
        self.store.put(item, Condition::Always).await
    }

    // ---- audit

    pub async fn put_audit(
        &self,
        entry: &AuditEntry,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        let mut item = Item::new(
            Key::new(
                audit_pk(&entry.tenant_id),
                format!("{:020}#{}", entry.at, entry.id),
            ),
            to_json(entry)?,
        );
        item.expires_at = Some(expires_at);
        self.store.put(item, Condition::Always).await
    }

    /// One page of audit entries, newest first, and the cursor of the next page.
    pub async fn audit(
        &self,
        tenant: &str,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        let from = filter.from.unwrap_or(0).max(0);
        let to = filter.to.unwrap_or(i64::MAX);
        let mut query = Query {
            sort: SortKey::Between(format!("{from:020}#"), format!("{to:020}#~")),
            descending: true,
            cursor: filter.cursor.clone(),
            ..Query::partition(audit_pk(tenant))
        };
        let mut out = Vec::new();
        loop {
            query.limit = Some(filter.limit.saturating_sub(out.len()).max(1));
            let page = self.store.query(&query).await?;
            for item in page.items {
                let entry: AuditEntry = from_item(item)?;
                let actor_ok = filter.actor.as_ref().is_none_or(|a| &entry.actor == a);
                let path_ok = filter
                    .path_prefix
                    .as_ref()
                    .is_none_or(|p| entry.path.starts_with(p.as_str()));
                if actor_ok && path_ok {
                    out.push(entry);
                }
            }
            match page.next {
                Some(next) if out.len() < filter.limit => query.cursor = Some(next),
                next => return Ok((out, next)),
            }
        }
    }
}
