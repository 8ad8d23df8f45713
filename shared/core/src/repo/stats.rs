//! Statistics jobs and their results, keyed by tenant, job and device.

use super::{Catalog, stat_results_pk, tenant_pk};
use crate::ports::{Key, Query, SortKey, StoreError};
use crate::stats::{StatJob, StatResult};
use crate::time::Millis;

impl Catalog {
    pub async fn stat_job(&self, tenant: &str, id: &str) -> Result<Option<StatJob>, StoreError> {
        self.get(Key::new(tenant_pk(tenant), format!("STATJOB#{id}")))
            .await
    }

    pub async fn put_stat_job(&self, job: &StatJob) -> Result<(), StoreError> {
        self.put(
            Key::new(tenant_pk(&job.tenant_id), format!("STATJOB#{}", job.id)),
            job,
        )
        .await
    }

    pub async fn put_stat_result(&self, result: &StatResult) -> Result<(), StoreError> {
        let key = Key::new(
            stat_results_pk(&result.tenant_id, &result.job_id, &result.device_uid),
            format!("{:020}", result.window.end),
        );
        self.put(key, result).await
    }

    /// Results of a tenant's job for a device whose window ends in `[from, to]`, oldest first.
    pub async fn stat_results(
        &self,
        tenant: &str,
        job: &str,
        device: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<StatResult>, StoreError> {
        let (results, _) = self
            .stat_results_page(tenant, job, device, (from, to), None, usize::MAX, |_| true)
            .await?;
        Ok(results)
    }

    /// A page of [`Self::stat_results`] that `keep` accepts, from `cursor` on, and the next
    /// page's cursor.
    #[allow(clippy::too_many_arguments)]
    pub async fn stat_results_page(
        &self,
        tenant: &str,
        job: &str,
        device: &str,
        (from, to): (Millis, Millis),
        cursor: Option<String>,
        limit: usize,
        keep: impl Fn(&StatResult) -> bool,
    ) -> Result<(Vec<StatResult>, Option<String>), StoreError> {
        let mut query = Query::partition(stat_results_pk(tenant, job, device));
        query.sort = SortKey::Between(format!("{:020}", from.max(0)), format!("{:020}", to.max(0)));
        query.cursor = cursor;
        self.page_where(query, limit, keep).await
    }

    pub async fn stat_jobs(&self, tenant: &str) -> Result<Vec<StatJob>, StoreError> {
        self.list(Query::prefix(tenant_pk(tenant), "STATJOB#"))
            .await
    }
}
