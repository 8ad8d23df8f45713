//! [`TelemetryStore`] on a DynamoDB time-series table, for accounts that cannot use Timestream
//! for LiveAnalytics (closed to new customers since June 2025).
//!
//! Keys (`pk` S, `sk` S):
//! - a point: `P#{device}#{signal}#{yyyy-mm-dd}` / time in ms, 15 digits, so one device-signal-day
//!   range is one query and a partition stays far below DynamoDB's per-partition limits;
//! - the newest point of each signal: `L#{device}` / `{signal}`, written only if newer, so
//!   `latest` and "which signals does this device have" are one query.
//!
//! Values are `n` (number), `b` (bool) or `s` (text). Points carry `ttl` (epoch seconds) when a
//! retention is set, the table's or the tenant's, whichever is shorter. Aggregates are computed
//! from the range by the port's default.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Duration as Days, NaiveDate};
use futures_util::future::try_join_all;
use iot_core::model::{Record, Value};
use iot_core::ports::{
    Point, RangeQuery, TelemetryError, TelemetryStore, WriteReport, order_points,
};
use iot_core::time::Millis;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::value::{get_n, get_s, n, s};
use crate::error::{code, describe};

type Attrs = HashMap<String, AttributeValue>;

/// DynamoDB's limit of writes per BatchWriteItem.
const BATCH_WRITE_LIMIT: usize = 25;
/// Rounds of retrying unprocessed items (throttling) before the records are reported rejected.
const UNPROCESSED_ROUNDS: u32 = 6;
/// The widest window a range query may span; each day is one query per signal.
pub const MAX_RANGE_DAYS: i64 = 400;

#[derive(Clone)]
pub struct DynamoTelemetry {
    client: Client,
    table: String,
    retention: Option<Duration>,
}

impl DynamoTelemetry {
    pub fn new(client: Client, table: impl Into<String>, retention: Option<Duration>) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }
}

fn day_of(time: Millis) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(time).map(|t| t.date_naive())
}

fn point_pk(device: &str, signal: &str, day: NaiveDate) -> String {
    format!("P#{device}#{signal}#{}", day.format("%Y-%m-%d"))
}

fn time_sk(time: Millis) -> String {
    format!("{time:015}")
}

fn latest_pk(device: &str) -> String {
    format!("L#{device}")
}

fn value_attr(value: &Value) -> (&'static str, AttributeValue) {
    match value {
        Value::Number(x) => ("n", n(x)),
        Value::Bool(b) => ("b", AttributeValue::Bool(*b)),
        Value::Text(t) => ("s", s(t)),
    }
}

fn read_value(attrs: &Attrs) -> Option<Value> {
    if let Some(x) = get_n::<f64>(attrs, "n") {
        return Some(Value::Number(x));
    }
    if let Some(b) = attrs.get("b").and_then(|v| v.as_bool().ok()) {
        return Some(Value::Bool(*b));
    }
    get_s(attrs, "s").map(|t| Value::Text(t.to_owned()))
}

fn unavailable<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> TelemetryError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match code(error) {
        Some("ValidationException") => TelemetryError::Invalid(describe(error)),
        _ => TelemetryError::Unavailable(describe(error)),
    }
}

/// One point to write, and the record it came from.
struct Pending {
    record: usize,
    attrs: Attrs,
}

impl DynamoTelemetry {
    /// Why a point cannot be stored, if it cannot.
    fn refuse(record: &Record, value: &Value) -> Option<String> {
        let time = record.time;
        if record.device_uid.is_empty() {
            return Some("the record names no device".into());
        }
        if time < 0 {
            return Some(format!("time {time} is before 1970"));
        }
        match value {
            Value::Number(x) if !x.is_finite() => Some(format!("{x} is not a finite number")),
            _ => None,
        }
    }

    fn point_item(
        &self,
        record: &Record,
        signal: &str,
        value: &Value,
        retention: Option<Duration>,
    ) -> Option<Attrs> {
        let day = day_of(record.time)?;
        let (name, attr) = value_attr(value);
        let mut attrs = HashMap::from([
            (
                "pk".to_owned(),
                s(point_pk(&record.device_uid, signal, day)),
            ),
            ("sk".to_owned(), s(time_sk(record.time))),
            (name.to_owned(), attr),
        ]);
        if let Some(retention) = retention {
            let expires = record.time / 1000 + i64::try_from(retention.as_secs()).unwrap_or(0);
            attrs.insert("ttl".into(), n(expires));
        }
        Some(attrs)
    }

    /// Writes the pending points in batches of 25; what stays unprocessed after the retries is
    /// returned (by record index, with the reason).
    async fn write_points(
        &self,
        pending: Vec<Pending>,
    ) -> Result<BTreeMap<usize, String>, TelemetryError> {
        let mut failed = BTreeMap::new();
        for chunk in pending.chunks(BATCH_WRITE_LIMIT) {
            let mut requests: Vec<(usize, WriteRequest)> = Vec::new();
            for p in chunk {
                let put = PutRequest::builder()
                    .set_item(Some(p.attrs.clone()))
                    .build()
                    .map_err(|e| TelemetryError::Invalid(e.to_string()))?;
                requests.push((p.record, WriteRequest::builder().put_request(put).build()));
            }
            let mut round = 0;
            while !requests.is_empty() {
                if round == UNPROCESSED_ROUNDS {
                    for (record, _) in requests.drain(..) {
                        failed.insert(record, "throttled: not processed after retries".into());
                    }
                    break;
                }
                if round > 0 {
                    let backoff = 25u64 << round.min(6);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=backoff))).await;
                }
                round += 1;
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(
                        &self.table,
                        requests.iter().map(|(_, r)| r.clone()).collect(),
                    )
                    .send()
                    .await
                    .map_err(|e| unavailable(&e))?;
                let unprocessed: Vec<&Attrs> = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .map(|writes| {
                        writes
                            .iter()
                            .filter_map(|w| w.put_request().map(|p| p.item()))
                            .collect()
                    })
                    .unwrap_or_default();
                requests.retain(|(_, r)| {
                    r.put_request()
                        .is_some_and(|p| unprocessed.iter().any(|u| same_key(u, p.item())))
                });
            }
        }
        Ok(failed)
    }

    /// Moves each signal's newest point forward, never back (a late point loses).
    async fn update_latest(
        &self,
        newest: BTreeMap<(String, String), (Millis, Value)>,
    ) -> Result<(), TelemetryError> {
        let updates = newest.into_iter().map(|((device, signal), (time, value))| {
            let (name, attr) = value_attr(&value);
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(latest_pk(&device)))
                .item("sk", s(signal))
                .item("t", n(time))
                .item(name, attr)
                .condition_expression("attribute_not_exists(t) OR t <= :t")
                .expression_attribute_values(":t", n(time))
                .send()
        });
        for result in futures_util::future::join_all(updates).await {
            match result {
                Ok(_) => {}
                Err(e) if code(&e) == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(unavailable(&e)),
            }
        }
        Ok(())
    }

    /// The device's latest-point items (all signals, or the named ones).
    async fn latest_items(&self, device: &str) -> Result<Vec<Attrs>, TelemetryError> {
        let mut items = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(latest_pk(device)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(items),
            }
        }
    }

    /// Points of one signal on one day within `[from, to]`, up to `limit`.
    async fn day_points(
        &self,
        device: &str,
        signal: &str,
        day: NaiveDate,
        (from, to): (Millis, Millis),
        descending: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Point>, TelemetryError> {
        let mut points = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
                .expression_attribute_values(":pk", s(point_pk(device, signal, day)))
                .expression_attribute_values(":a", s(time_sk(from)))
                .expression_attribute_values(":b", s(time_sk(to)))
                .scan_index_forward(!descending)
                .set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                let left = limit.saturating_sub(points.len()).max(1);
                request = request.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            let output = request.send().await.map_err(|e| unavailable(&e))?;
            for item in output.items() {
                let (Some(time), Some(value)) = (
                    get_s(item, "sk").and_then(|t| t.parse::<Millis>().ok()),
                    read_value(item),
                ) else {
                    continue;
                };
                points.push(Point {
                    time,
                    device_uid: device.to_owned(),
                    signal: signal.to_owned(),
                    value,
                });
            }
            let full = limit.is_some_and(|l| points.len() >= l);
            match output.last_evaluated_key() {
                Some(key) if !full => start = Some(key.clone()),
                _ => return Ok(points),
            }
        }
    }

    /// One signal's points in the window, day by day in the asked order, stopping at `limit`.
    async fn signal_points(
        &self,
        query: &RangeQuery,
        signal: &str,
        days: &[NaiveDate],
    ) -> Result<Vec<Point>, TelemetryError> {
        let mut points = Vec::new();
        let mut ordered = days.to_vec();
        if query.descending {
            ordered.reverse();
        }
        for day in ordered {
            let left = query.limit.map(|l| l.saturating_sub(points.len()));
            if left == Some(0) {
                break;
            }
            points.extend(
                self.day_points(
                    &query.device_uid,
                    signal,
                    day,
                    (query.window.start, query.window.end),
                    query.descending,
                    left,
                )
                .await?,
            );
        }
        Ok(points)
    }
}

fn same_key(a: &Attrs, b: &Attrs) -> bool {
    a.get("pk") == b.get("pk") && a.get("sk") == b.get("sk")
}

#[async_trait]
impl TelemetryStore for DynamoTelemetry {
    async fn write(&self, records: &[Record]) -> Result<WriteReport, TelemetryError> {
        self.write_retained(records, None).await
    }

    /// Points expire (TTL) after the shorter of the table's and the tenant's retention.
    async fn write_retained(
        &self,
        records: &[Record],
        tenant_retention: Option<Millis>,
    ) -> Result<WriteReport, TelemetryError> {
        let tenant_retention = tenant_retention
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis);
        let retention = match (self.retention, tenant_retention) {
            (Some(table), Some(tenant)) => Some(table.min(tenant)),
            (table, tenant) => table.or(tenant),
        };
        let mut refused: BTreeMap<usize, String> = BTreeMap::new();
        // One write per key: BatchWriteItem refuses a key twice, and the last value wins anyway.
        let mut pending: BTreeMap<(String, String), Pending> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            let why = record
                .data
                .iter()
                .find_map(|d| Self::refuse(record, &d.value));
            if let Some(why) = why {
                refused.insert(index, why);
                continue;
            }
            for datum in &record.data {
                let Some(attrs) = self.point_item(record, &datum.name, &datum.value, retention)
                else {
                    refused.insert(index, format!("time {} is out of range", record.time));
                    continue;
                };
                let key = (
                    get_s(&attrs, "pk").unwrap_or_default().to_owned(),
                    get_s(&attrs, "sk").unwrap_or_default().to_owned(),
                );
                pending.insert(
                    key,
                    Pending {
                        record: index,
                        attrs,
                    },
                );
            }
        }
        let pending: Vec<Pending> = pending
            .into_values()
            .filter(|p| !refused.contains_key(&p.record))
            .collect();
        refused.extend(self.write_points(pending).await?);
        // The newest point of each signal among the records that were written.
        let mut newest: BTreeMap<(String, String), (Millis, Value)> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            if refused.contains_key(&index) {
                continue;
            }
            for datum in &record.data {
                let key = (record.device_uid.clone(), datum.name.clone());
                if newest.get(&key).is_none_or(|(t, _)| *t <= record.time) {
                    newest.insert(key, (record.time, datum.value.clone()));
                }
            }
        }
        self.update_latest(newest).await?;
        Ok(WriteReport::with_rejections(records.len(), refused))
    }

    async fn range(&self, query: &RangeQuery) -> Result<Vec<Point>, TelemetryError> {
        query.check()?;
        let window = query.window;
        let (Some(first), Some(last)) = (day_of(window.start.max(0)), day_of(window.end.max(0)))
        else {
            return Err(TelemetryError::Invalid("the window is out of range".into()));
        };
        let span = (last - first).num_days() + 1;
        if span > MAX_RANGE_DAYS {
            return Err(TelemetryError::Invalid(format!(
                "the window spans {span} days; at most {MAX_RANGE_DAYS} per query"
            )));
        }
        let days: Vec<NaiveDate> = (0..span).map(|d| first + Days::days(d)).collect();
        let signals = if query.signals.is_empty() {
            self.latest_items(&query.device_uid)
                .await?
                .iter()
                .filter_map(|i| get_s(i, "sk").map(str::to_owned))
                .collect()
        } else {
            query.signals.clone()
        };
        let per_signal =
            try_join_all(signals.iter().map(|s| self.signal_points(query, s, &days))).await?;
        let mut points: Vec<Point> = per_signal.into_iter().flatten().collect();
        order_points(&mut points, query.descending, query.limit);
        Ok(points)
    }

    async fn latest(
        &self,
        device_uid: &str,
        signals: &[String],
    ) -> Result<Vec<Point>, TelemetryError> {
        let mut points: Vec<Point> = self
            .latest_items(device_uid)
            .await?
            .iter()
            .filter_map(|item| {
                let signal = get_s(item, "sk")?;
                if !signals.is_empty() && !signals.iter().any(|s| s == signal) {
                    return None;
                }
                Some(Point {
                    time: get_n(item, "t")?,
                    device_uid: device_uid.to_owned(),
                    signal: signal.to_owned(),
                    value: read_value(item)?,
                })
            })
            .collect();
        points.sort_by(|a, b| a.signal.cmp(&b.signal));
        Ok(points)
    }
}
