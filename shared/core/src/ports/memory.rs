//! In-memory adapters of every port, for unit tests of the core and as a reference for what
//! each adapter must do. They keep state in a mutex and never hold it across an await.

use crate::ota::Rollout;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::*;
use crate::model::{Device, Record};
use crate::notify::Delivery;
use crate::time::Millis;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------- metadata

pub struct MemoryMetaStore {
    items: Mutex<BTreeMap<Key, Item>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryMetaStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryMetaStore {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            items: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.items).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(
        items: &BTreeMap<Key, Item>,
        key: &Key,
        condition: Condition,
        now: i64,
    ) -> Result<(), StoreError> {
        let live = items.get(key).filter(|i| !i.is_expired(now));
        let ok = condition.holds(live.map(|i| i.version));
        if ok {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed(key.clone()))
        }
    }
}

#[async_trait]
impl MetaStore for MemoryMetaStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now_ms();
        Ok(lock(&self.items)
            .get(key)
            .filter(|i| !i.is_expired(now))
            .cloned())
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        Self::check(&items, &item.key, condition, self.clock.now_ms())?;
        items.insert(item.key.clone(), item);
        Ok(())
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let mut items = lock(&self.items);
        Self::check(&items, key, condition, self.clock.now_ms())?;
        items.remove(key);
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let now = self.clock.now_ms();
        let items = lock(&self.items);
        // (sort key in the queried key space, primary key) orders and identifies results.
        let mut matches: Vec<((String, Key), &Item)> = items
            .values()
            .filter(|i| !i.is_expired(now))
            .filter_map(|i| {
                let key = if query.on_index {
                    i.index.as_ref()?
                } else {
                    &i.key
                };
                (key.pk == query.pk && query.sort.matches(&key.sk))
                    .then(|| ((key.sk.clone(), i.key.clone()), i))
            })
            .collect();
        matches.sort_by(|a, b| a.0.cmp(&b.0));
        if query.descending {
            matches.reverse();
        }
        let after: Option<(String, Key)> = match &query.cursor {
            Some(c) => Some(
                serde_json::from_str(c)
                    .map_err(|e| StoreError::Invalid(format!("bad cursor: {e}")))?,
            ),
            None => None,
        };
        let start = match &after {
            Some(a) => matches
                .iter()
                .position(|(k, _)| k == a)
                .map_or(matches.len(), |p| p + 1),
            None => 0,
        };
        let limit = query.limit.unwrap_or(usize::MAX);
        let page: Vec<_> = matches[start..].iter().take(limit).collect();
        let next = (start + page.len() < matches.len() && !page.is_empty())
            .then(|| {
                page.last()
                    .map(|(k, _)| serde_json::to_string(k).unwrap_or_default())
            })
            .flatten();
        Ok(Page {
            items: page.into_iter().map(|(_, i)| (*i).clone()).collect(),
            next,
        })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        let now = self.clock.now_ms();
        let mut items = lock(&self.items);
        for write in &writes {
            let (key, condition) = write.target();
            Self::check(&items, key, condition, now)
                .map_err(|e| StoreError::TransactionCancelled(e.to_string()))?;
        }
        for write in writes {
            match write {
                Write::Put { item, .. } => {
                    items.insert(item.key.clone(), item);
                }
                Write::Delete { key, .. } => {
                    items.remove(&key);
                }
                Write::Check { .. } => {}
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- telemetry

#[derive(Default)]
pub struct MemoryTelemetry {
    points: Mutex<Vec<Point>>,
    /// Records older than this are rejected, like Timestream's memory-store retention window.
    reject_before: Mutex<Option<i64>>,
    unavailable: Mutex<bool>,
}

impl MemoryTelemetry {
    pub fn reject_before(&self, time: Option<i64>) {
        *lock(&self.reject_before) = time;
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.unavailable) = unavailable;
    }

    pub fn points(&self) -> Vec<Point> {
        lock(&self.points).clone()
    }

    fn select(&self, device_uid: &str, signals: &[String]) -> Vec<Point> {
        let mut points: Vec<Point> = lock(&self.points)
            .iter()
            .filter(|p| {
                p.device_uid == device_uid && (signals.is_empty() || signals.contains(&p.signal))
            })
            .cloned()
            .collect();
        points.sort_by_key(|p| p.time);
        points
    }

    fn available(&self) -> Result<(), TelemetryError> {
        if *lock(&self.unavailable) {
            return Err(TelemetryError::Unavailable(
                "memory store switched off by the test".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl TelemetryStore for MemoryTelemetry {
    async fn write(&self, records: &[Record]) -> Result<WriteReport, TelemetryError> {
        self.available()?;
        let cutoff = *lock(&self.reject_before);
        let mut report = WriteReport::default();
        let mut points = lock(&self.points);
        for (index, record) in records.iter().enumerate() {
            if cutoff.is_some_and(|c| record.time < c) {
                report.rejected.push(Rejected {
                    index,
                    reason: "record time is outside the store's retention window".into(),
                });
                continue;
            }
            if record.device_uid.is_empty() {
                report.rejected.push(Rejected {
                    index,
                    reason: "the record names no device".into(),
                });
                continue;
            }
            for point in points_of(std::slice::from_ref(record)) {
                // Same device, signal and time: the newer write replaces the value.
                points.retain(|p| {
                    (p.time, &p.device_uid, &p.signal)
                        != (point.time, &point.device_uid, &point.signal)
                });
                points.push(point);
            }
            report.written += 1;
        }
        Ok(report)
    }

    async fn expire(
        &self,
        uid_prefix: &str,
        before: Millis,
        limit: usize,
    ) -> Result<Option<u64>, TelemetryError> {
        self.available()?;
        let mut points = lock(&self.points);
        let mut deleted = 0;
        points.retain(|p| {
            let expired =
                deleted < limit && p.device_uid.starts_with(uid_prefix) && p.time < before;
            deleted += usize::from(expired);
            !expired
        });
        Ok(Some(deleted as u64))
    }

    async fn range(&self, query: &RangeQuery) -> Result<Vec<Point>, TelemetryError> {
        self.available()?;
        query.check()?;
        let mut points: Vec<Point> = self
            .select(&query.device_uid, &query.signals)
            .into_iter()
            .filter(|p| query.window.contains(p.time))
            .collect();
        if query.descending {
            points.reverse();
        }
        points.truncate(query.limit.unwrap_or(usize::MAX));
        Ok(points)
    }

    async fn latest(
        &self,
        device_uid: &str,
        signals: &[String],
    ) -> Result<Vec<Point>, TelemetryError> {
        self.available()?;
        let mut latest: BTreeMap<String, Point> = BTreeMap::new();
        for p in self.select(device_uid, signals) {
            latest.insert(p.signal.clone(), p);
        }
        Ok(latest.into_values().collect())
    }
}

// ---------------------------------------------------------------- messaging

#[derive(Default)]
pub struct MemoryQueue {
    messages: Mutex<Vec<QueueMessage>>,
    unavailable: Mutex<bool>,
}

impl MemoryQueue {
    pub fn drain(&self) -> Vec<QueueMessage> {
        std::mem::take(&mut *lock(&self.messages))
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.unavailable) = unavailable;
    }
}

#[async_trait]
impl MessageQueue for MemoryQueue {
    async fn send(&self, messages: Vec<QueueMessage>) -> Result<(), QueueError> {
        if *lock(&self.unavailable) {
            return Err(QueueError::Unavailable(
                "memory queue switched off by the test".into(),
            ));
        }
        lock(&self.messages).extend(messages);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryEventBus {
    events: Mutex<Vec<BusEvent>>,
}

impl MemoryEventBus {
    pub fn drain(&self) -> Vec<BusEvent> {
        std::mem::take(&mut *lock(&self.events))
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn publish(&self, event: BusEvent) -> Result<(), QueueError> {
        lock(&self.events).push(event);
        Ok(())
    }
}

// ---------------------------------------------------------------- blobs

#[derive(Default)]
pub struct MemoryBlobs {
    blobs: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        check_key(key)?;
        lock(&self.blobs).insert(key.to_owned(), (bytes, content_type.to_owned()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        Ok(lock(&self.blobs).get(key).map(|(b, _)| b.clone()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        Ok(lock(&self.blobs)
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        lock(&self.blobs).remove(key);
        Ok(())
    }

    async fn download_url(&self, key: &str, expires_in_secs: u64) -> Result<String, BlobError> {
        Ok(format!("memory://{key}?expires_in={expires_in_secs}"))
    }
}

// ---------------------------------------------------------------- notifier

/// Records deliveries; can be told to fail.
#[derive(Default)]
pub struct RecordingNotifier {
    delivered: Mutex<Vec<Delivery>>,
    fail_with: Mutex<Option<DeliveryError>>,
}

impl RecordingNotifier {
    pub fn delivered(&self) -> Vec<Delivery> {
        lock(&self.delivered).clone()
    }

    pub fn fail_with(&self, error: Option<DeliveryError>) {
        *lock(&self.fail_with) = error;
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        if let Some(error) = lock(&self.fail_with).clone() {
            return Err(error);
        }
        lock(&self.delivered).push(delivery.clone());
        Ok(())
    }
}

// ---------------------------------------------------------------- device gateway

#[derive(Default)]
pub struct MemoryGateway {
    registered: Mutex<BTreeSet<String>>,
    commands: Mutex<Vec<(String, serde_json::Value)>>,
    shadows: Mutex<BTreeMap<String, serde_json::Value>>,
    jobs: Mutex<Vec<(String, Vec<String>)>>,
    canceled: Mutex<Vec<String>>,
    refused_tenants: Mutex<BTreeSet<String>>,
}

impl MemoryGateway {
    /// Whether the tenant's devices are refused at the device side (suspended).
    pub fn refuses_tenant(&self, tenant: &str) -> bool {
        lock(&self.refused_tenants).contains(tenant)
    }

    pub fn commands(&self) -> Vec<(String, serde_json::Value)> {
        lock(&self.commands).clone()
    }

    pub fn desired(&self, device_uid: &str) -> Option<serde_json::Value> {
        lock(&self.shadows)
            .get(device_uid)
            .map(|shadow| shadow["state"]["desired"].clone())
    }

    /// The rollouts started, with their devices.
    pub fn jobs(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.jobs).clone()
    }

    /// The rollouts cancelled.
    pub fn canceled(&self) -> Vec<String> {
        lock(&self.canceled).clone()
    }

    fn known(&self, uid: &str) -> Result<(), GatewayError> {
        if lock(&self.registered).contains(uid) {
            Ok(())
        } else {
            Err(GatewayError::UnknownDevice(uid.to_owned()))
        }
    }
}

#[async_trait]
impl DeviceGateway for MemoryGateway {
    async fn register(&self, device: &Device) -> Result<DeviceCredentials, GatewayError> {
        if !lock(&self.registered).insert(device.uid.clone()) {
            return Err(GatewayError::AlreadyRegistered(device.uid.clone()));
        }
        Ok(DeviceCredentials {
            certificate_id: format!("cert-{}", device.uid),
            certificate_pem: "-----BEGIN CERTIFICATE-----\n(memory)\n-----END CERTIFICATE-----\n"
                .into(),
            private_key_pem: "-----BEGIN PRIVATE KEY-----\n(memory)\n-----END PRIVATE KEY-----\n"
                .into(),
            endpoint: "mqtt://127.0.0.1:1883".into(),
        })
    }

    async fn deregister(&self, device_uid: &str) -> Result<(), GatewayError> {
        self.known(device_uid)?;
        lock(&self.registered).remove(device_uid);
        Ok(())
    }

    async fn set_tenant_access(&self, tenant: &str, allowed: bool) -> Result<(), GatewayError> {
        let mut refused = lock(&self.refused_tenants);
        if allowed {
            refused.remove(tenant);
        } else {
            refused.insert(tenant.to_owned());
        }
        Ok(())
    }

    async fn send_command(
        &self,
        device_uid: &str,
        command: &serde_json::Value,
    ) -> Result<(), GatewayError> {
        self.known(device_uid)?;
        lock(&self.commands).push((device_uid.to_owned(), command.clone()));
        Ok(())
    }

    async fn set_desired(
        &self,
        device_uid: &str,
        desired: &serde_json::Value,
    ) -> Result<serde_json::Value, GatewayError> {
        self.known(device_uid)?;
        let mut shadows = lock(&self.shadows);
        let shadow = shadows.entry(device_uid.to_owned()).or_default();
        crate::model::merge_shadow(shadow, crate::model::ShadowSection::Desired, desired)
            .ok_or_else(|| GatewayError::Unavailable("desired state is not an object".into()))?;
        Ok(shadow.clone())
    }

    async fn shadow(&self, device_uid: &str) -> Result<Option<serde_json::Value>, GatewayError> {
        self.known(device_uid)?;
        Ok(lock(&self.shadows).get(device_uid).cloned())
    }

    async fn start_rollout(&self, job: &RolloutJob<'_>) -> Result<(), GatewayError> {
        for uid in job.devices {
            self.known(uid)?;
        }
        lock(&self.jobs).push((job.rollout.id.clone(), job.devices.to_vec()));
        Ok(())
    }

    async fn cancel_rollout(&self, rollout: &Rollout, _force: bool) -> Result<(), GatewayError> {
        lock(&self.canceled).push(rollout.id.clone());
        Ok(())
    }
}

// ---------------------------------------------------------------- scheduler

#[derive(Default)]
pub struct MemoryScheduler {
    schedules: Mutex<BTreeMap<String, (String, ScheduleTarget)>>,
}

impl MemoryScheduler {
    pub fn schedules(&self) -> BTreeMap<String, (String, ScheduleTarget)> {
        lock(&self.schedules).clone()
    }
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn upsert(
        &self,
        name: &str,
        cron: &str,
        target: &ScheduleTarget,
    ) -> Result<(), SchedulerError> {
        crate::stats::Schedule::parse(cron).map_err(|e| SchedulerError::Invalid(e.to_string()))?;
        lock(&self.schedules).insert(name.to_owned(), (cron.to_owned(), target.clone()));
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), SchedulerError> {
        lock(&self.schedules).remove(name);
        Ok(())
    }
}

// The in-memory adapters are checked by the ports' contract suite (`shared/contract`), the same
// checks the SQLite and AWS adapters pass.
