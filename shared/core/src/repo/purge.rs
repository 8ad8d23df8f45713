//! Removing what a deleted tenant kept in the catalog.
//!
//! Kept on purpose: the tenant's record (its id is never given out again), the retirement
//! marks of its device uids (`DEVICE#{uid}` / `RETIRED`, so a later device of the uid sees
//! none of the old one's data), and its audit log, which expires after the audit retention
//! like every tenant's.

use super::{Catalog, alarms_pk, inbox_pk, stat_results_pk, tenant_pk};
use crate::ports::{Condition, Key, Query, StoreError};

/// Items read per page while purging.
const PAGE: usize = 100;

impl Catalog {
    /// Deletes the tenant's configuration (users and their credentials, sessions and inboxes,
    /// roles and policy, settings, departments, products, rules, templates, channels, routes,
    /// statistics jobs, exports, firmware packages, rollouts and their executions), its alarms, the statistics results of `device_uids` and
    /// its application credentials. Answers how many items went; safe to run again.
    pub async fn purge_tenant(
        &self,
        tenant: &str,
        device_uids: &[String],
    ) -> Result<usize, StoreError> {
        let config = self.keys(Query::partition(tenant_pk(tenant))).await?;
        let mut partitions = vec![alarms_pk(tenant)];
        let mut indexes = vec![super::app_credentials::app_credentials_index(tenant)];
        let mut extra: Vec<Key> = Vec::new();
        for key in &config {
            if let Some(user) = key.sk.strip_prefix("USER#") {
                partitions.push(format!("{}#USER#{user}", tenant_pk(tenant)));
                partitions.push(inbox_pk(tenant, user));
                indexes.push(super::access::sessions_pk(tenant, user));
            } else if let Some(rollout) = key.sk.strip_prefix("ROLLOUT#") {
                // Its executions (in the devices' partitions) through its index, and the
                // pointer from its IoT job id.
                indexes.push(super::firmware::executions_pk(tenant, rollout));
                extra.push(super::firmware::job_key(&crate::ota::job_id(
                    tenant, rollout,
                )));
            } else if let Some(job) = key.sk.strip_prefix("STATJOB#") {
                partitions.extend(
                    device_uids
                        .iter()
                        .map(|uid| stat_results_pk(tenant, job, uid)),
                );
            }
        }
        let mut doomed: Vec<Key> = extra;
        for pk in partitions {
            doomed.extend(self.keys(Query::partition(pk)).await?);
        }
        for pk in indexes {
            doomed.extend(self.keys(Query::index(pk)).await?);
        }
        // The configuration last, so a purge that stopped halfway still finds its users and
        // jobs, and the tenant record not at all.
        doomed.extend(config.into_iter().filter(|key| key.sk != "TENANT"));
        for key in &doomed {
            self.store.delete(key, Condition::Always).await?;
        }
        Ok(doomed.len())
    }

    /// The primary keys of every item a query finds, page by page.
    async fn keys(&self, mut query: Query) -> Result<Vec<Key>, StoreError> {
        query.limit = Some(PAGE);
        let mut keys = Vec::new();
        loop {
            let page = self.store.query(&query).await?;
            keys.extend(page.items.into_iter().map(|item| item.key));
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }
}
