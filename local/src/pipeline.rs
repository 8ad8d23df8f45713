//! The pipeline on one machine: adapters built once, the message handler the broker (or the
//! external-broker subscriber) calls, and the workers behind the durable queues.

use iot_api::device_ingest::{DeviceIngest, IngestReceipt, SubmitError};
use iot_core::alarm::{AlarmEvaluator, AlarmTransition};
use iot_core::model::ShadowSection;
use iot_core::outbound::OutboundPolicy;
use iot_core::parse::Parser;
use iot_core::ports::{BusEvent, Clock, StoreError, SystemClock};
use iot_core::repo::Catalog;
use iot_core::stats::{Schedule, StatsEngine};
use iot_core::usecase::{
    ALARM_EVENTS_TOPIC, ALARM_REQUESTS_QUEUE, AlarmRequest, AlarmService, InboundMessage,
    InboxNotifier, Ingest, IngestError, IngestOutcome, NotifyService, StatsService,
};
use iot_embedded::blobs::FsBlobStore;
use iot_embedded::sqlite::{
    Database, QueueBus, SqliteMetaStore, SqliteQueue, SqliteScheduler, SqliteTelemetry,
};
use iot_notify::{ChannelRouter, ConsoleNotifier, WebhookNotifier};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

use crate::config::Config;
use crate::drain::drain_queue;
use crate::error::LocalError;

pub struct Services {
    pub db: Database,
    pub catalog: Catalog,
    pub telemetry: Arc<SqliteTelemetry>,
    pub ingest: Arc<Ingest>,
    pub alarms: Arc<AlarmService>,
    pub notify: Arc<NotifyService>,
    pub stats: Arc<StatsService>,
    pub scheduler: Arc<SqliteScheduler>,
    pub alarm_queue: SqliteQueue,
    pub event_queue: SqliteQueue,
    pub dead_letters: Arc<FsBlobStore>,
    pub clock: Arc<dyn Clock>,
    /// Where webhooks and identity providers may be (`pipeline.outbound_allow`), parsed once.
    pub outbound: OutboundPolicy,
    /// The jobs API, set once the device link exists (the platform starts it after these).
    pub jobs: std::sync::OnceLock<Arc<crate::ota_jobs::LocalJobs>>,
    next_message: AtomicU64,
}

impl Services {
    pub fn build(config: &Config, data_dir: &Path) -> Result<Self, LocalError> {
        let db = Database::open(&data_dir.join("iot.db"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ttl = config.pipeline.cache_ttl_ms.max(0);
        let catalog = Catalog::new(Arc::new(SqliteMetaStore::new(db.clone())));
        let telemetry = Arc::new(SqliteTelemetry::new(db.clone()));
        let alarm_queue = SqliteQueue::new(db.clone(), ALARM_REQUESTS_QUEUE, clock.clone());
        let event_queue = SqliteQueue::new(db.clone(), ALARM_EVENTS_TOPIC, clock.clone());
        let bus = QueueBus::default().subscribe(ALARM_EVENTS_TOPIC, event_queue.clone());
        let blobs = data_dir.join("blobs");
        let dead_letters = Arc::new(FsBlobStore::new(&blobs).map_err(LocalError::file(&blobs))?);
        let ingest = Ingest::new(
            catalog.clone(),
            telemetry.clone(),
            Arc::new(alarm_queue.clone()),
            dead_letters.clone(),
            clock.clone(),
            Parser::default(),
        )
        .with_cache_ttl(ttl);
        let alarms = AlarmService::new(
            catalog.clone(),
            Arc::new(bus),
            clock.clone(),
            AlarmEvaluator::default(),
        )
        .with_cache_ttl(ttl);
        let outbound = config
            .pipeline
            .outbound_policy()
            .map_err(|e| LocalError::Invalid(format!("pipeline.outbound_allow: {e}")))?;
        let webhook = WebhookNotifier::new(
            Duration::from_millis(config.pipeline.webhook_timeout_ms),
            outbound.clone(),
        );
        let notifier = ChannelRouter {
            webhook: Arc::new(webhook),
            in_system: Arc::new(InboxNotifier::new(catalog.clone(), clock.clone())),
            sns: Arc::new(ConsoleNotifier),
        };
        let notify = NotifyService::new(catalog.clone(), Arc::new(notifier), clock.clone());
        let stats = StatsService::new(
            catalog.clone(),
            telemetry.clone(),
            clock.clone(),
            StatsEngine::default(),
        );
        Ok(Self {
            scheduler: Arc::new(SqliteScheduler::new(db.clone())),
            db,
            catalog,
            telemetry,
            ingest: Arc::new(ingest),
            alarms: Arc::new(alarms),
            notify: Arc::new(notify),
            stats: Arc::new(stats),
            alarm_queue,
            event_queue,
            dead_letters,
            clock,
            outbound,
            jobs: std::sync::OnceLock::new(),
            next_message: AtomicU64::new(0),
        })
    }

    /// Ingests one MQTT message. `Ok` once it is committed (stored, or kept as a dead letter);
    /// `Err` when the platform could not commit it and the message must be delivered again.
    pub async fn handle(&self, topic: String, payload: bytes::Bytes) -> Result<(), HandleError> {
        if let Some(uid) = iot_core::topics::shadow_update_device(&topic) {
            return self.record_reported(uid, &payload).await;
        }
        if let Some((uid, request)) = iot_core::topics::jobs_request(&topic) {
            return self.answer_jobs(&topic, uid, request, &payload).await;
        }
        metrics::counter!(crate::counters::MQTT_MESSAGES_RECEIVED).increment(1);
        let received_at = self.clock.now_ms();
        let n = self.next_message.fetch_add(1, Ordering::Relaxed);
        let message = InboundMessage {
            message_id: format!("{received_at}-{n}"),
            topic,
            payload: payload.to_vec(),
            received_at,
        };
        Ok(self.ingest_message(message).await.map(|_| ())?)
    }

    /// A device's jobs API request, answered on its reply topic. Store failures are errors,
    /// so the broker does not acknowledge and the device asks again.
    async fn answer_jobs(
        &self,
        topic: &str,
        uid: &str,
        request: iot_core::topics::JobsRequest<'_>,
        payload: &[u8],
    ) -> Result<(), HandleError> {
        let Some(jobs) = self.jobs.get() else {
            tracing::warn!(device = %uid, "a jobs request before the jobs API started; dropped");
            return Ok(());
        };
        jobs.answer(topic, uid, request, payload)
            .await
            .map_err(HandleError::Jobs)
    }

    /// A device's report of its state, merged into its shadow's `reported`. A report that is
    /// not `{"state": {"reported": {...}}}`, or from an unknown device, is dropped, logged and
    /// counted (as IoT Core answers it on `.../update/rejected`); storage failures are errors,
    /// so the broker does not acknowledge and the device resends.
    async fn record_reported(&self, uid: &str, payload: &[u8]) -> Result<(), HandleError> {
        let rejected = |reason: &str| {
            metrics::counter!(crate::counters::SHADOW_UPDATES_REJECTED).increment(1);
            tracing::warn!(device = %uid, %reason, "shadow update rejected");
            Ok(())
        };
        let Ok(document) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return rejected("not JSON");
        };
        let reported = &document["state"]["reported"];
        if !reported.is_object() {
            return rejected("no state.reported object");
        }
        match self.catalog.device(uid).await {
            Ok(Some(_)) => {}
            Ok(None) => return rejected("unknown device"),
            Err(e) => return Err(HandleError::Shadow(e)),
        }
        self.catalog
            .update_device_shadow(uid, ShadowSection::Reported, reported)
            .await
            .map_err(HandleError::Shadow)?;
        metrics::counter!(crate::counters::SHADOW_UPDATES).increment(1);
        Ok(())
    }

    /// Parses and stores one message, counting the outcome.
    pub async fn ingest_message(
        &self,
        message: InboundMessage,
    ) -> Result<IngestOutcome, IngestError> {
        // The core counts the outcome and its latency (the same on Lambda).
        let outcome = self.ingest.ingest(&message).await?;
        if let IngestOutcome::DeadLettered { reason, key } = &outcome {
            tracing::warn!(topic = %message.topic, %reason, dead_letter = %key, "message kept as a dead letter");
        }
        Ok(outcome)
    }
}

/// Why a device message was not committed: the device sends it again.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("storing a shadow report: {0}")]
    Shadow(StoreError),
    #[error("answering a jobs request: {0}")]
    Jobs(iot_core::usecase::OtaError),
}

/// `POST /v1/ingest` on one machine: the message goes through the pipeline at once, and the
/// answer says what became of it.
pub struct LocalDeviceIngest(pub Arc<Services>);

#[async_trait::async_trait]
impl DeviceIngest for LocalDeviceIngest {
    async fn submit(&self, message: InboundMessage) -> Result<IngestReceipt, SubmitError> {
        metrics::counter!(crate::counters::HTTP_MESSAGES_RECEIVED).increment(1);
        Ok(match self.0.ingest_message(message).await? {
            IngestOutcome::Stored { records, .. } => IngestReceipt::Stored { records },
            IngestOutcome::DeadLettered { reason, .. } => IngestReceipt::Rejected { reason },
        })
    }
}

/// Why a queued alarm request or transition was not handled: it is tried again after a
/// back-off, and after the queue's receive limit it is a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("unreadable {what}: {source}")]
    Unreadable {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Alarm(#[from] iot_core::usecase::AlarmServiceError),
    #[error(transparent)]
    Notify(#[from] iot_core::usecase::NotifyServiceError),
}

impl WorkError {
    fn unreadable(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Unreadable { what, source }
    }
}

/// Evaluates alarm requests, each device's in order; transitions go to the event queue.
pub async fn alarm_worker(services: Arc<Services>, shutdown: watch::Receiver<bool>) {
    let queue = services.alarm_queue.clone();
    let decode = |body: &str| {
        serde_json::from_str::<AlarmRequest>(body).map_err(WorkError::unreadable("alarm request"))
    };
    drain_queue(
        queue,
        shutdown,
        decode,
        |request| request.device_uid.as_str(),
        |request| {
            let services = services.clone();
            async move {
                services.alarms.evaluate(&request).await?;
                Ok(())
            }
        },
    )
    .await;
}

/// Notifies alarm transitions through the matching routes.
pub async fn notify_worker(services: Arc<Services>, shutdown: watch::Receiver<bool>) {
    let queue = services.event_queue.clone();
    let decode = |body: &str| {
        let event: BusEvent = serde_json::from_str(body).map_err(WorkError::unreadable("event"))?;
        serde_json::from_str::<AlarmTransition>(&event.body)
            .map_err(WorkError::unreadable("alarm transition"))
    };
    drain_queue(
        queue,
        shutdown,
        decode,
        |transition| transition.device_uid.as_str(),
        |transition| {
            let services = services.clone();
            async move {
                services.notify.notify(&transition).await?;
                Ok(())
            }
        },
    )
    .await;
}

/// Runs statistics jobs on their CRON schedules (UTC). Schedules are re-read every few
/// seconds, so jobs saved through the API start without a restart. A run missed while the
/// platform was down is not made up, as with EventBridge Scheduler.
pub async fn stats_timer(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut next: HashMap<String, (String, i64)> = HashMap::new();
    while !*shutdown.borrow() {
        let now = services.clock.now_ms();
        match services.scheduler.schedules().await {
            Ok(schedules) => {
                next.retain(|name, _| schedules.iter().any(|s| &s.name == name));
                for schedule in schedules {
                    let entry = next.get(&schedule.name);
                    let stale = entry.is_none_or(|(cron, _)| cron != &schedule.cron);
                    if stale {
                        match Schedule::parse(&schedule.cron).map(|s| s.next_after(now)) {
                            Ok(Some(at)) => {
                                next.insert(schedule.name.clone(), (schedule.cron.clone(), at));
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(schedule = %schedule.name, error = %e, "bad schedule")
                            }
                        }
                        continue;
                    }
                    let Some((cron, due)) = entry.cloned() else {
                        continue;
                    };
                    if due > now {
                        continue;
                    }
                    let target = &schedule.target;
                    match services
                        .stats
                        .run(&target.tenant_id, &target.job_id, due)
                        .await
                    {
                        Ok(run) => {
                            tracing::info!(job = %target.job_id, results = run.results.len(), failures = run.failures.len(), "statistics job ran")
                        }
                        Err(e) => {
                            tracing::warn!(job = %target.job_id, error = %e, "statistics job failed")
                        }
                    }
                    let following = Schedule::parse(&cron)
                        .ok()
                        .and_then(|s| s.next_after(due.max(now)));
                    match following {
                        Some(at) => next.insert(schedule.name.clone(), (cron, at)),
                        None => next.remove(&schedule.name),
                    };
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read schedules"),
        }
        let sleep_ms = next
            .values()
            .map(|(_, at)| at - services.clock.now_ms())
            .min()
            .unwrap_or(1_000)
            .clamp(10, 1_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Deletes telemetry past each tenant's retention quota: a minute after the start, then every
/// `every`.
pub async fn retention_timer(
    services: Arc<Services>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = every.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let now = services.clock.now_ms();
        match iot_core::usecase::expire_telemetry(
            &services.catalog,
            services.telemetry.as_ref(),
            now,
        )
        .await
        {
            Ok(deleted) => tracing::debug!(?deleted, "retention sweep done"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; trying again later"),
        }
        wait = every;
    }
}
