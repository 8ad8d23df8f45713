//! Ingest: payload -> records -> telemetry store -> alarm evaluation requests.
//!
//! Bad input never stops the pipeline and is never lost: an unknown device, a payload the script
//! rejects, records the store refuses are archived raw with the reason (the dead-letter archive)
//! and counted. Only infrastructure failures return an error, so the message is retried.

use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

use super::{AlarmRequest, TenantGate, TtlCache};
use crate::counters;
use crate::model::{Device, Record};
use crate::parse::{ParseWarning, Parser, PreparedProduct, RhaiExecutor, RhaiScript};
use crate::ports::{
    BlobError, BlobStore, Clock, MessageQueue, QueueError, QueueMessage, StoreError,
    TelemetryError, TelemetryStore,
};
use crate::repo::Catalog;
use crate::time::{MINUTE, Millis, to_rfc3339};
use crate::topics::uplink_device;

/// One message as the broker delivered it.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundMessage {
    /// Unique per message (the SQS message id, or one the local broker assigns).
    pub message_id: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub received_at: Millis,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IngestOutcome {
    Stored {
        records: usize,
        warnings: Vec<ParseWarning>,
        /// Dead-letter key of records the store or the directory refused, if any.
        partial_dead_letter: Option<String>,
    },
    /// Nothing stored; the raw message is archived under `key`.
    DeadLettered { reason: String, key: String },
}

/// Infrastructure failures: retry the message.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("dead-letter archive: {0}")]
    Blob(#[from] BlobError),
}

/// Records whose devices are known, the refused ones with the reason, and the product of each
/// sub-device (the sender's own product applies to the rest).
struct Resolved {
    records: Vec<Record>,
    refused: Vec<(Record, String)>,
    products: BTreeMap<String, String>,
}

pub struct Ingest {
    catalog: Catalog,
    telemetry: Arc<dyn TelemetryStore>,
    alarm_queue: Arc<dyn MessageQueue>,
    dead_letters: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    parser: Parser<RhaiExecutor>,
    products: TtlCache<Result<Arc<PreparedProduct<RhaiScript>>, String>>,
    tenants: TenantGate,
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    message_id: &'a str,
    topic: &'a str,
    received_at: String,
    kind: &'a str,
    reason: &'a str,
    payload_base64: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    records: Vec<&'a Record>,
}

impl Ingest {
    pub fn new(
        catalog: Catalog,
        telemetry: Arc<dyn TelemetryStore>,
        alarm_queue: Arc<dyn MessageQueue>,
        dead_letters: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        parser: Parser<RhaiExecutor>,
    ) -> Self {
        Self {
            tenants: TenantGate::new(catalog.clone(), clock.clone(), MINUTE),
            catalog,
            telemetry,
            alarm_queue,
            dead_letters,
            clock,
            parser,
            products: TtlCache::new(MINUTE),
        }
    }

    /// How long a product (and its compiled script) is reused before it is read again: a
    /// minute by default; shorter where an edit should show at once (one machine).
    pub fn with_cache_ttl(mut self, ttl: crate::time::Millis) -> Self {
        self.products = TtlCache::new(ttl);
        self.tenants = TenantGate::new(self.catalog.clone(), self.clock.clone(), ttl);
        self
    }

    /// Parses and stores one message, or keeps it as a dead letter; counts the outcome.
    /// `Err` is an infrastructure failure: nothing is committed and the message must be
    /// delivered again.
    pub async fn ingest(&self, message: &InboundMessage) -> Result<IngestOutcome, IngestError> {
        let started = std::time::Instant::now();
        let outcome = self.process(message).await;
        metrics::counter!(match &outcome {
            Ok(IngestOutcome::Stored { .. }) => counters::INGEST_MESSAGES_PARSED,
            Ok(IngestOutcome::DeadLettered { .. }) => counters::INGEST_MESSAGES_FAILED,
            Err(_) => counters::INGEST_ERRORS,
        })
        .increment(1);
        counters::record_latency(counters::INGEST_LATENCY, started.elapsed());
        outcome
    }

    async fn process(&self, message: &InboundMessage) -> Result<IngestOutcome, IngestError> {
        let Some(uid) = uplink_device(&message.topic) else {
            let reason = format!("topic {:?} is not things/{{device}}/up/...", message.topic);
            return self.dead_letter(message, "topic", &reason).await;
        };
        let Some(device) = self.catalog.device(uid).await? else {
            return self
                .dead_letter(
                    message,
                    "unknown_device",
                    &format!("device {uid:?} is not registered"),
                )
                .await;
        };
        // A suspended tenant's or an over-rate message is kept, to replay once allowed.
        let tenant = match self.tenants.admit(&device.tenant_id).await? {
            Ok(tenant) => tenant,
            Err(refused) => {
                return self
                    .dead_letter(message, refused.kind(), &refused.to_string())
                    .await;
            }
        };
        let product = match self.product(&device).await? {
            Ok(product) => product,
            Err(reason) => return self.dead_letter(message, "product", &reason).await,
        };
        let input = crate::parse::ParseInput {
            payload: &message.payload,
            topic: &message.topic,
            device: &device,
            received_at: message.received_at,
        };
        let outcome = match self.parser.parse(&product, &input) {
            Ok(outcome) => outcome,
            Err(e) => return self.dead_letter(message, e.kind(), &e.to_string()).await,
        };
        if !outcome.warnings.is_empty() {
            metrics::counter!(counters::INGEST_DROPPED_VALUES)
                .increment(outcome.warnings.len() as u64);
            tracing::warn!(message_id = %message.message_id, warnings = ?outcome.warnings, "values dropped");
        }

        let Resolved {
            records,
            refused: unresolved,
            products,
        } = self.resolve_devices(&device, outcome.records).await?;
        // A tenant's retention quota: stores that expire points as they write them need it now.
        let retention = tenant
            .and_then(|t| t.quotas.retention_days)
            .map(|days| i64::from(days) * crate::time::DAY);
        let report = self.telemetry.write_retained(&records, retention).await?;
        let mut refused: Vec<(&Record, String)> =
            unresolved.iter().map(|(r, why)| (r, why.clone())).collect();
        refused.extend(
            report
                .rejected
                .iter()
                .filter_map(|r| records.get(r.index).map(|rec| (rec, r.reason.clone()))),
        );
        let partial_dead_letter = if refused.is_empty() {
            None
        } else {
            metrics::counter!(counters::INGEST_REJECTED_RECORDS).increment(refused.len() as u64);
            let reason = refused
                .iter()
                .map(|(r, why)| format!("{}@{}: {why}", r.device_uid, r.time))
                .collect::<Vec<_>>()
                .join("; ");
            let kept: Vec<&Record> = refused.iter().map(|(r, _)| *r).collect();
            Some(
                self.archive(message, "records_refused", &reason, kept)
                    .await?,
            )
        };

        let stored: Vec<Record> = {
            let rejected: std::collections::BTreeSet<usize> =
                report.rejected.iter().map(|r| r.index).collect();
            records
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !rejected.contains(i))
                .map(|(_, r)| r)
                .collect()
        };
        let stored_count = stored.len();
        self.request_alarm_evaluation(message, &device, &products, stored)
            .await?;
        metrics::counter!(counters::INGEST_RECORDS).increment(stored_count as u64);
        Ok(IngestOutcome::Stored {
            records: stored_count,
            warnings: outcome.warnings,
            partial_dead_letter,
        })
    }

    /// The prepared product of a device, or why it cannot be had (missing, script broken).
    async fn product(
        &self,
        device: &Device,
    ) -> Result<Result<Arc<PreparedProduct<RhaiScript>>, String>, StoreError> {
        let key = format!("{}/{}", device.tenant_id, device.product_id);
        let now = self.clock.now_ms();
        if let Some(cached) = self.products.get(&key, now) {
            return Ok(cached);
        }
        let prepared = match self
            .catalog
            .product(&device.tenant_id, &device.product_id)
            .await?
        {
            None => Err(format!(
                "product {:?} of device {:?} does not exist",
                device.product_id, device.uid
            )),
            Some(product) => self
                .parser
                .prepare(&product)
                .map(Arc::new)
                .map_err(|e| format!("parser script of product {:?}: {e}", product.id)),
        };
        self.products.insert(key, prepared.clone(), now);
        Ok(prepared)
    }

    /// Fills in sub-device uids (gateways name them by identification code) and refuses
    /// records for devices that do not exist, belong to another tenant or are not attached to
    /// the sending gateway.
    async fn resolve_devices(
        &self,
        sender: &Device,
        records: Vec<Record>,
    ) -> Result<Resolved, StoreError> {
        let mut known: BTreeMap<String, Option<Device>> = BTreeMap::new();
        let mut resolved = Resolved {
            records: Vec::with_capacity(records.len()),
            refused: Vec::new(),
            products: BTreeMap::new(),
        };
        for mut record in records {
            if record.device_uid == sender.uid {
                resolved.records.push(record);
                continue;
            }
            let lookup = if record.device_uid.is_empty() {
                format!("code:{}", record.identification_code)
            } else {
                format!("uid:{}", record.device_uid)
            };
            if !known.contains_key(&lookup) {
                let found = if record.device_uid.is_empty() {
                    self.catalog
                        .device_by_code(&sender.tenant_id, &record.identification_code)
                        .await?
                } else {
                    self.catalog.device(&record.device_uid).await?
                };
                known.insert(lookup.clone(), found);
            }
            match known.get(&lookup) {
                Some(Some(d))
                    if d.tenant_id == sender.tenant_id
                        && d.gateway_uid.as_deref() == Some(sender.uid.as_str()) =>
                {
                    record.device_uid.clone_from(&d.uid);
                    record
                        .identification_code
                        .clone_from(&d.identification_code);
                    resolved
                        .products
                        .insert(d.uid.clone(), d.product_id.clone());
                    resolved.records.push(record);
                }
                _ => {
                    let who = if record.device_uid.is_empty() {
                        &record.identification_code
                    } else {
                        &record.device_uid
                    };
                    let why = format!(
                        "sub-device {who:?} is not a device of tenant {:?} attached to gateway {:?} (its gateway_uid)",
                        sender.tenant_id, sender.uid
                    );
                    resolved.refused.push((record, why));
                }
            }
        }
        Ok(resolved)
    }

    async fn request_alarm_evaluation(
        &self,
        message: &InboundMessage,
        sender: &Device,
        products: &BTreeMap<String, String>,
        records: Vec<Record>,
    ) -> Result<(), IngestError> {
        let mut by_device: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for record in records {
            by_device
                .entry(record.device_uid.clone())
                .or_default()
                .push(record);
        }
        let messages: Vec<QueueMessage> = by_device
            .into_iter()
            .map(|(uid, records)| {
                let request = AlarmRequest {
                    tenant_id: sender.tenant_id.clone(),
                    // A gateway's sub-device is evaluated with its own product's rules.
                    product_id: products.get(&uid).unwrap_or(&sender.product_id).clone(),
                    device_uid: uid.clone(),
                    records,
                };
                QueueMessage {
                    id: format!("{}:{uid}", message.message_id),
                    body: serde_json::to_string(&request).unwrap_or_default(),
                }
            })
            .collect();
        if !messages.is_empty() {
            self.alarm_queue.send(messages).await?;
        }
        Ok(())
    }

    /// Keeps a message that cannot be ingested (undecodable on the way in, say) in the
    /// dead-letter archive with the reason, and counts it.
    pub async fn dead_letter(
        &self,
        message: &InboundMessage,
        kind: &str,
        reason: &str,
    ) -> Result<IngestOutcome, IngestError> {
        let key = self.archive(message, kind, reason, Vec::new()).await?;
        Ok(IngestOutcome::DeadLettered {
            reason: reason.to_owned(),
            key,
        })
    }

    /// Archives the raw message with the reason; returns the blob key.
    async fn archive(
        &self,
        message: &InboundMessage,
        kind: &str,
        reason: &str,
        records: Vec<&Record>,
    ) -> Result<String, IngestError> {
        metrics::counter!(counters::INGEST_DEAD_LETTERS, "kind" => kind.to_owned()).increment(1);
        tracing::warn!(message_id = %message.message_id, topic = %message.topic, kind, reason, "message dead-lettered");
        let day = to_rfc3339(message.received_at)
            .get(..10)
            .unwrap_or("unknown")
            .to_owned();
        let safe_id: String = message
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let key = format!("dead-letters/{day}/{safe_id}-{kind}.json");
        let letter = DeadLetter {
            message_id: &message.message_id,
            topic: &message.topic,
            received_at: to_rfc3339(message.received_at),
            kind,
            reason,
            payload_base64: base64::engine::general_purpose::STANDARD.encode(&message.payload),
            records,
        };
        let body = serde_json::to_vec_pretty(&letter).unwrap_or_default();
        self.dead_letters
            .put(&key, body, "application/json")
            .await?;
        Ok(key)
    }
}
