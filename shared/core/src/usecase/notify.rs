//! Notification: route an alarm transition, render its templates, deliver through channels.
//! Each delivery is marked done once sent, so a retried message does not notify twice.

use futures_util::future::try_join;
use std::sync::Arc;
use thiserror::Error;

use crate::alarm::AlarmTransition;
use crate::counters;
use crate::notify::render;
use crate::ports::{Clock, DeliveryError, Notifier, StoreError};
use crate::repo::Catalog;
use crate::time::DAY;

/// How long a delivery is remembered as done.
const DONE_FOR: i64 = 7 * DAY;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifyOutcome {
    pub delivered: usize,
    /// Deliveries sent by an earlier attempt of the same message.
    pub already_delivered: usize,
    /// Route id and why it could not be delivered, for good (bad template, missing channel,
    /// refused address).
    pub failed: Vec<(String, String)>,
}

#[derive(Debug, Error)]
pub enum NotifyServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event names no alarm of its tenant and device: forged, or of a device deleted since.
    #[error(
        "alarm event {alarm_id:?} of tenant {tenant:?} matches no alarm of that tenant's device; not delivered"
    )]
    Unverified { tenant: String, alarm_id: String },
    /// Some deliveries failed in a way worth retrying; the ones that succeeded are marked done.
    #[error("{} deliveries will be retried: {}", .0.len(), .0.join("; "))]
    Retry(Vec<String>),
}

pub struct NotifyService {
    catalog: Catalog,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
}

impl NotifyService {
    pub fn new(catalog: Catalog, notifier: Arc<dyn Notifier>, clock: Arc<dyn Clock>) -> Self {
        Self {
            catalog,
            notifier,
            clock,
        }
    }

    pub async fn notify(
        &self,
        transition: &AlarmTransition,
    ) -> Result<NotifyOutcome, NotifyServiceError> {
        let started = std::time::Instant::now();
        let outcome = self.notify_uncounted(transition).await;
        counters::record_latency(counters::NOTIFY_LATENCY, started.elapsed());
        outcome
    }

    async fn notify_uncounted(
        &self,
        transition: &AlarmTransition,
    ) -> Result<NotifyOutcome, NotifyServiceError> {
        let tenant = &transition.tenant_id;
        // The tenant in an event is a claim: routes run only for an alarm the store holds for
        // that tenant, on a device of that tenant.
        let (device, alarm) = try_join(
            self.catalog.device(&transition.device_uid),
            self.catalog.alarm(tenant, &transition.alarm_id),
        )
        .await?;
        let genuine = device.as_ref().is_some_and(|d| &d.tenant_id == tenant)
            && alarm.is_some_and(|a| {
                a.device_uid == transition.device_uid && a.rule_id == transition.rule_id
            });
        if !genuine {
            metrics::counter!(counters::NOTIFY_UNVERIFIED).increment(1);
            return Err(NotifyServiceError::Unverified {
                tenant: tenant.clone(),
                alarm_id: transition.alarm_id.clone(),
            });
        }
        let mut outcome = NotifyOutcome::default();
        let mut retry = Vec::new();
        for route in self
            .catalog
            .routes(tenant)
            .await?
            .iter()
            .filter(|r| r.matches(transition))
        {
            let template = self.catalog.template(tenant, &route.template_id).await?;
            let channel = self.catalog.channel(tenant, &route.channel_id).await?;
            let (Some(template), Some(channel)) = (template, channel) else {
                outcome.failed.push((
                    route.id.clone(),
                    "route names a missing template or channel".into(),
                ));
                continue;
            };
            let delivery = match render(route, &template, &channel, transition, device.as_ref()) {
                Ok(d) => d,
                Err(e) => {
                    outcome.failed.push((route.id.clone(), e.to_string()));
                    continue;
                }
            };
            if self.catalog.is_done(&delivery.key).await? {
                outcome.already_delivered += 1;
                continue;
            }
            match self.notifier.deliver(&delivery).await {
                Ok(()) => {
                    self.catalog
                        .mark_done(&delivery.key, self.clock.now_ms() + DONE_FOR)
                        .await?;
                    metrics::counter!(counters::NOTIFICATIONS_SENT).increment(1);
                    outcome.delivered += 1;
                }
                Err(DeliveryError::Retryable(why)) => {
                    retry.push(format!("route {}: {why}", route.id))
                }
                Err(DeliveryError::Permanent(why)) => outcome.failed.push((route.id.clone(), why)),
            }
        }
        for (route, why) in &outcome.failed {
            metrics::counter!(counters::NOTIFICATIONS_FAILED).increment(1);
            tracing::error!(alarm = %transition.alarm_id, route, why, "notification failed");
        }
        if retry.is_empty() {
            Ok(outcome)
        } else {
            Err(NotifyServiceError::Retry(retry))
        }
    }
}
