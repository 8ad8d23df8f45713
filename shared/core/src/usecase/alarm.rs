//! Alarm evaluation and acknowledgement, with the device's state written conditionally and the
//! resulting transitions published through a transactional outbox.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

use super::TtlCache;
use crate::alarm::{
    AlarmError, AlarmEvaluator, AlarmRecord, AlarmRule, AlarmTransition, CompiledRules,
    DeviceAlarmState, RuleError, RuleFailure, TransitionKind,
};
use crate::counters;
use crate::model::Record;
use crate::ports::{BusEvent, Clock, EventBus, QueueError, StoreError};
use crate::repo::Catalog;
use crate::time::MINUTE;

/// What a person may do to an open alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorAction {
    Acknowledge,
    Clear,
}

/// The topic alarm transitions are published on (the SNS topic on AWS).
pub const ALARM_EVENTS_TOPIC: &str = "alarm-events";

/// The queue of records to evaluate, ingest to the alarm service (the SQS alarm queue on AWS).
pub const ALARM_REQUESTS_QUEUE: &str = "alarm-requests";

/// How often a conflicting concurrent write is retried before giving up (and retrying the message).
const MAX_ATTEMPTS: usize = 5;

/// The records of one device to evaluate: the body of an alarm-queue message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmRequest {
    pub tenant_id: String,
    pub product_id: String,
    pub device_uid: String,
    pub records: Vec<Record>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlarmOutcome {
    pub transitions: Vec<AlarmTransition>,
    pub failures: Vec<RuleFailure>,
}

#[derive(Debug, Error)]
pub enum AlarmServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing alarm events: {0}")]
    Publish(#[from] QueueError),
    /// A stored rule no longer validates or compiles.
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Alarm(#[from] AlarmError),
    #[error("rule {rule_id:?} of product {product_id:?} does not exist")]
    UnknownRule { product_id: String, rule_id: String },
    #[error("device {0:?} does not exist")]
    UnknownDevice(String),
    #[error("the alarm state of device {0:?} kept changing under us; retry")]
    Contended(String),
}

pub struct AlarmService {
    catalog: Catalog,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    evaluator: AlarmEvaluator,
    rules: TtlCache<Arc<CompiledRules>>,
}

impl AlarmService {
    pub fn new(
        catalog: Catalog,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        evaluator: AlarmEvaluator,
    ) -> Self {
        Self {
            catalog,
            bus,
            clock,
            evaluator,
            rules: TtlCache::new(MINUTE),
        }
    }

    /// How long a product's compiled rules are reused before they are read again.
    pub fn with_cache_ttl(mut self, ttl: crate::time::Millis) -> Self {
        self.rules = TtlCache::new(ttl);
        self
    }

    async fn compiled_rules(
        &self,
        tenant: &str,
        product: &str,
    ) -> Result<Arc<CompiledRules>, AlarmServiceError> {
        let key = format!("{tenant}/{product}");
        let now = self.clock.now_ms();
        if let Some(rules) = self.rules.get(&key, now) {
            return Ok(rules);
        }
        let rules = Arc::new(
            self.evaluator
                .compile(&self.catalog.rules(tenant, product).await?)?,
        );
        self.rules.insert(key, rules.clone(), now);
        Ok(rules)
    }

    /// Evaluates the records (in time order) and publishes the transitions.
    pub async fn evaluate(
        &self,
        request: &AlarmRequest,
    ) -> Result<AlarmOutcome, AlarmServiceError> {
        let started = std::time::Instant::now();
        let outcome = self.evaluate_uncounted(request).await;
        counters::record_latency(counters::ALARM_LATENCY, started.elapsed());
        outcome
    }

    async fn evaluate_uncounted(
        &self,
        request: &AlarmRequest,
    ) -> Result<AlarmOutcome, AlarmServiceError> {
        let rules = self
            .compiled_rules(&request.tenant_id, &request.product_id)
            .await?;
        if rules.is_empty() {
            // Nothing to evaluate: skip the state read and write.
            return Ok(AlarmOutcome::default());
        }
        let mut records: Vec<&Record> = request.records.iter().collect();
        records.sort_by_key(|r| r.time);
        let mut failures = Vec::new();
        let transitions = self
            .update_state(&request.device_uid, |state| {
                failures.clear();
                let mut transitions = Vec::new();
                for record in &records {
                    let evaluation = self.evaluator.evaluate(&rules, state, record);
                    transitions.extend(evaluation.transitions);
                    failures.extend(evaluation.failures);
                }
                Ok(transitions)
            })
            .await?;
        for failure in &failures {
            metrics::counter!(counters::ALARM_RULE_FAILURES).increment(1);
            tracing::warn!(device = %request.device_uid, rule = %failure.rule_id, error = %failure.error, "rule failed");
        }
        Ok(AlarmOutcome {
            transitions,
            failures,
        })
    }

    /// Acknowledges the active alarm of `rule_id` on a device: notifications stop, and it
    /// stays open until cleared.
    pub async fn acknowledge(
        &self,
        tenant: &str,
        device_uid: &str,
        rule_id: &str,
        by: &str,
    ) -> Result<AlarmTransition, AlarmServiceError> {
        self.act(OperatorAction::Acknowledge, tenant, device_uid, rule_id, by)
            .await
    }

    /// Clears the active alarm of `rule_id` on a device by hand.
    pub async fn clear(
        &self,
        tenant: &str,
        device_uid: &str,
        rule_id: &str,
        by: &str,
    ) -> Result<AlarmTransition, AlarmServiceError> {
        self.act(OperatorAction::Clear, tenant, device_uid, rule_id, by)
            .await
    }

    /// What a person does to an open alarm, as one transition of the device's state.
    pub async fn act(
        &self,
        action: OperatorAction,
        tenant: &str,
        device_uid: &str,
        rule_id: &str,
        by: &str,
    ) -> Result<AlarmTransition, AlarmServiceError> {
        let rule = self.rule_of_device(tenant, device_uid, rule_id).await?;
        let now = self.clock.now_ms();
        let mut transitions = self
            .update_state(device_uid, |state| {
                Ok(vec![match action {
                    OperatorAction::Acknowledge => state.acknowledge(tenant, &rule, by, now)?,
                    OperatorAction::Clear => state.clear(tenant, &rule, by, now)?,
                }])
            })
            .await?;
        Ok(transitions.remove(0))
    }

    async fn rule_of_device(
        &self,
        tenant: &str,
        device_uid: &str,
        rule_id: &str,
    ) -> Result<AlarmRule, AlarmServiceError> {
        let device = self
            .catalog
            .device(device_uid)
            .await?
            .filter(|d| d.tenant_id == tenant)
            .ok_or_else(|| AlarmServiceError::UnknownDevice(device_uid.to_owned()))?;
        self.catalog
            .rule(tenant, &device.product_id, rule_id)
            .await?
            .ok_or_else(|| AlarmServiceError::UnknownRule {
                product_id: device.product_id.clone(),
                rule_id: rule_id.to_owned(),
            })
    }

    /// Read-modify-write of a device's state with optimistic concurrency. New transitions go to
    /// the outbox in the same write; then the outbox is published and emptied. A crash between
    /// the two leaves them in the outbox, published by the next update (at least once; the
    /// notifier deduplicates by alarm id, event and time).
    async fn update_state<F>(
        &self,
        device_uid: &str,
        mut change: F,
    ) -> Result<Vec<AlarmTransition>, AlarmServiceError>
    where
        F: FnMut(&mut DeviceAlarmState) -> Result<Vec<AlarmTransition>, AlarmServiceError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let mut state = self.catalog.alarm_state(device_uid).await?;
            let transitions = change(&mut state)?;
            let records = self.records_after(&transitions).await?;
            state.outbox.extend(transitions.iter().cloned());
            match self
                .catalog
                .save_alarm_state_with(&mut state, &records)
                .await
            {
                Ok(()) => {}
                // With alarm records the save is a transaction, whose only condition is the
                // state's version: a cancelled transaction is the same lost race.
                Err(StoreError::ConditionFailed(_) | StoreError::TransactionCancelled(_)) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if !state.outbox.is_empty() {
                self.publish(&state.outbox).await?;
                state.outbox.clear();
                // Losing this race only means the next update publishes the same events again.
                match self.catalog.save_alarm_state(&mut state).await {
                    Ok(()) | Err(StoreError::ConditionFailed(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(transitions);
        }
        Err(AlarmServiceError::Contended(device_uid.to_owned()))
    }

    /// The alarm records as they are after `transitions`, to write with the state.
    async fn records_after(
        &self,
        transitions: &[AlarmTransition],
    ) -> Result<Vec<AlarmRecord>, AlarmServiceError> {
        let mut records: Vec<AlarmRecord> = Vec::new();
        for t in transitions {
            if let Some(record) = records.iter_mut().find(|r| r.alarm_id == t.alarm_id) {
                record.apply(t);
            } else if t.kind == TransitionKind::Raised {
                records.push(AlarmRecord::raised(t));
            } else if let Some(mut record) = self.catalog.alarm(&t.tenant_id, &t.alarm_id).await? {
                record.apply(t);
                records.push(record);
            } else {
                // Raised before records existed: start one from what the transition knows.
                let mut record = AlarmRecord::raised(t);
                record.apply(t);
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn publish(&self, transitions: &[AlarmTransition]) -> Result<(), QueueError> {
        for t in transitions {
            metrics::counter!(counters::ALARM_TRANSITIONS, "kind" => t.kind.as_str()).increment(1);
            let mut attributes = BTreeMap::new();
            attributes.insert("tenant_id".to_owned(), t.tenant_id.clone());
            attributes.insert("event".to_owned(), t.kind.as_str().to_owned());
            if let Some(level) = t.level.or(t.previous_level) {
                attributes.insert("level".to_owned(), level.to_string());
            }
            self.bus
                .publish(BusEvent {
                    topic: ALARM_EVENTS_TOPIC.to_owned(),
                    body: serde_json::to_string(t).unwrap_or_default(),
                    attributes,
                })
                .await?;
        }
        Ok(())
    }
}
