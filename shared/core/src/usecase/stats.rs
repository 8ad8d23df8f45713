//! A statistics run: for each device in the job's scope, read the window, run the script,
//! store the result.

use std::sync::Arc;
use thiserror::Error;

use crate::counters;
use crate::model::Device;
use crate::ports::{Clock, RangeQuery, StoreError, TelemetryError, TelemetryStore};
use crate::repo::Catalog;
use crate::stats::{DeviceScope, Series, StatJob, StatResult, StatsEngine, StatsError, Window};
use crate::time::Millis;

/// Most points read per device and run; a job over more should aggregate in the store first.
const MAX_POINTS: usize = 1_000_000;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsRun {
    pub window: Option<Window>,
    pub results: Vec<StatResult>,
    /// Device uid and why its result could not be computed.
    pub failures: Vec<(String, String)>,
}

#[derive(Debug, Error)]
pub enum StatsServiceError {
    #[error("statistics job {0:?} does not exist")]
    UnknownJob(String),
    #[error(transparent)]
    Job(#[from] StatsError),
    /// A job named a uid that is not a device of its tenant (absent, or another tenant's:
    /// the two are told alike).
    #[error("{0:?} is not a device of this tenant")]
    UnknownDevice(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

pub struct StatsService {
    catalog: Catalog,
    telemetry: Arc<dyn TelemetryStore>,
    clock: Arc<dyn Clock>,
    engine: StatsEngine,
}

impl StatsService {
    pub fn new(
        catalog: Catalog,
        telemetry: Arc<dyn TelemetryStore>,
        clock: Arc<dyn Clock>,
        engine: StatsEngine,
    ) -> Self {
        Self {
            catalog,
            telemetry,
            clock,
            engine,
        }
    }

    /// Checks a job before it is saved: its CRON, lead time, signals and script, and that every
    /// uid it names is a device of its tenant.
    pub async fn check(&self, job: &StatJob) -> Result<(), StatsServiceError> {
        self.check_where(job, |_| true).await
    }

    /// [`Self::check`], with every named device also one that `visible` accepts (a caller's
    /// departments); a device it refuses is told as an absent one.
    pub async fn check_where(
        &self,
        job: &StatJob,
        visible: impl Fn(&Device) -> bool,
    ) -> Result<(), StatsServiceError> {
        self.engine.compile(job)?;
        if let DeviceScope::Devices { uids } = &job.devices {
            for uid in uids {
                let owned = self.catalog.device(uid).await?;
                if owned.is_none_or(|d| d.tenant_id != job.tenant_id || !visible(&d)) {
                    return Err(StatsServiceError::UnknownDevice(uid.clone()));
                }
            }
        }
        Ok(())
    }

    /// Runs a job for the time it was scheduled at (not the time it happens to run), over
    /// every device of its scope.
    pub async fn run(
        &self,
        tenant: &str,
        job_id: &str,
        scheduled_at: Millis,
    ) -> Result<StatsRun, StatsServiceError> {
        self.run_where(tenant, job_id, scheduled_at, |_| true).await
    }

    /// Runs a job over the devices of its scope that `visible` accepts (a caller's departments).
    /// Uids are checked against the tenant again at every run: a device may have been deleted,
    /// and its uid taken by another tenant, since the job was saved.
    pub async fn run_where(
        &self,
        tenant: &str,
        job_id: &str,
        scheduled_at: Millis,
        visible: impl Fn(&Device) -> bool,
    ) -> Result<StatsRun, StatsServiceError> {
        let job = self
            .catalog
            .stat_job(tenant, job_id)
            .await?
            .ok_or_else(|| StatsServiceError::UnknownJob(job_id.to_owned()))?;
        if !job.enabled {
            return Ok(StatsRun::default());
        }
        let compiled = self.engine.compile(&job)?;
        let window = Window::ending_at(scheduled_at, job.lead_ms);
        let mut devices = Vec::new();
        let mut foreign = Vec::new();
        match &job.devices {
            DeviceScope::Product { product_id } => {
                devices = self.catalog.devices(tenant, Some(product_id)).await?;
            }
            DeviceScope::Devices { uids } => {
                for uid in uids {
                    match self.catalog.device(uid).await? {
                        Some(d) if d.tenant_id == tenant => devices.push(d),
                        _ => foreign.push(uid.clone()),
                    }
                }
            }
        }
        let devices: Vec<String> = devices
            .into_iter()
            .filter(|d| visible(d))
            .map(|d| d.uid)
            .collect();
        let mut run = StatsRun {
            window: Some(window),
            ..StatsRun::default()
        };
        for uid in foreign {
            tracing::warn!(job = %job.id, device = %uid, "statistics job names a device of no tenant's own");
            run.failures
                .push((uid, "not a device of this tenant".to_owned()));
        }
        for uid in devices {
            let points = self
                .telemetry
                .range(&RangeQuery {
                    device_uid: uid.clone(),
                    signals: job.signals.clone(),
                    window,
                    limit: Some(MAX_POINTS),
                    descending: false,
                })
                .await?;
            let mut series = Series::new();
            for p in points {
                series.entry(p.signal).or_default().push((p.time, p.value));
            }
            match self.engine.run(&compiled, &uid, window, &series) {
                Ok(values) => {
                    let result = StatResult {
                        job_id: job.id.clone(),
                        tenant_id: tenant.to_owned(),
                        device_uid: uid,
                        window,
                        values,
                        computed_at: self.clock.now_ms(),
                    };
                    self.catalog.put_stat_result(&result).await?;
                    run.results.push(result);
                }
                Err(e) => {
                    metrics::counter!(counters::STATS_FAILURES).increment(1);
                    tracing::warn!(job = %job.id, device = %uid, error = %e, "statistics failed for a device");
                    run.failures.push((uid, e.to_string()));
                }
            }
        }
        Ok(run)
    }
}
