//! Telemetry storage: batched writes, and range, latest and bucketed-aggregate reads.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{Record, Value};
use crate::stats::Window;
use crate::time::Millis;

/// One value of one signal of one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    pub time: Millis,
    pub device_uid: String,
    pub signal: String,
    pub value: Value,
}

/// The points of records, in order.
pub fn points_of(records: &[Record]) -> impl Iterator<Item = Point> + '_ {
    records.iter().flat_map(|r| {
        r.data.iter().map(move |d| Point {
            time: r.time,
            device_uid: r.device_uid.clone(),
            signal: d.name.clone(),
            value: d.value.clone(),
        })
    })
}

/// What a batch write did: records the store refused are reported one by one, never dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteReport {
    pub written: usize,
    pub rejected: Vec<Rejected>,
}

impl WriteReport {
    /// The report of a batch of `total` records, of which those in `rejected` (index to
    /// reason) were refused.
    pub fn with_rejections(
        total: usize,
        rejected: std::collections::BTreeMap<usize, String>,
    ) -> Self {
        Self {
            written: total - rejected.len(),
            rejected: rejected
                .into_iter()
                .map(|(index, reason)| Rejected { index, reason })
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// Index into the batch that was written.
    pub index: usize,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeQuery {
    pub device_uid: String,
    /// Empty: every signal.
    pub signals: Vec<String>,
    pub window: Window,
    pub limit: Option<usize>,
    pub descending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateQuery {
    pub device_uid: String,
    pub signal: String,
    pub window: Window,
    /// Bucket width; buckets start at multiples of it since the epoch.
    pub bucket_ms: Millis,
}

/// Aggregates of the numeric values in `[start, start + width)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bucket {
    pub start: Millis,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub avg: f64,
    pub first: f64,
    pub last: f64,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum TelemetryError {
    #[error("invalid telemetry query: {0}")]
    Invalid(String),
    #[error("telemetry store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait TelemetryStore: Send + Sync {
    async fn write(&self, records: &[Record]) -> Result<WriteReport, TelemetryError>;
    /// Points in the window, by time.
    async fn range(&self, query: &RangeQuery) -> Result<Vec<Point>, TelemetryError>;
    /// The newest point of each signal (all signals when `signals` is empty).
    async fn latest(
        &self,
        device_uid: &str,
        signals: &[String],
    ) -> Result<Vec<Point>, TelemetryError>;
    /// Stores that bucket on the server (Timestream's `bin()`) override this; by default the
    /// range is read and bucketed with [`aggregate`].
    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<Bucket>, TelemetryError> {
        check_bucket(query.bucket_ms)?;
        let points = self.range(&query.range()).await?;
        if points.len() > MAX_AGGREGATED_POINTS {
            return Err(TelemetryError::Invalid(format!(
                "the window holds more than {MAX_AGGREGATED_POINTS} points of {:?}; aggregate a shorter window",
                query.signal
            )));
        }
        aggregate(&points, query.bucket_ms)
    }

    /// Writes records of a tenant that keeps its telemetry for `retention` (when shorter than
    /// the store's own). Stores that expire points as they write them (DynamoDB's TTL) honour
    /// it here; the others drop old points when [`TelemetryStore::expire`] runs.
    async fn write_retained(
        &self,
        records: &[Record],
        retention: Option<Millis>,
    ) -> Result<WriteReport, TelemetryError> {
        let _ = retention;
        self.write(records).await
    }

    /// Deletes up to `limit` points older than `before` of the devices whose uid begins with
    /// `uid_prefix` (a tenant's namespace), answering how many. `None`: this store does not
    /// delete points itself, its own expiry does (DynamoDB's TTL, Timestream's retention).
    async fn expire(
        &self,
        uid_prefix: &str,
        before: Millis,
        limit: usize,
    ) -> Result<Option<u64>, TelemetryError> {
        let _ = (uid_prefix, before, limit);
        Ok(None)
    }
}

impl RangeQuery {
    /// Refuses what every store refuses: a window that ends before it starts.
    pub fn check(&self) -> Result<(), TelemetryError> {
        if self.window.end < self.window.start {
            return Err(TelemetryError::Invalid(format!(
                "the window starts ({}) after it ends ({})",
                self.window.start, self.window.end
            )));
        }
        Ok(())
    }
}

/// Orders points by time (newest first when `descending`), then by signal, and keeps `limit`:
/// the order every store returns for a range.
pub fn order_points(points: &mut Vec<Point>, descending: bool, limit: Option<usize>) {
    points.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.signal.cmp(&b.signal)));
    if descending {
        points.reverse();
    }
    points.truncate(limit.unwrap_or(usize::MAX));
}

/// Most points a store that aggregates in memory reads for one aggregate: a bound on what
/// one request can make it hold, whatever the window.
pub const MAX_AGGREGATED_POINTS: usize = 1_000_000;

impl AggregateQuery {
    /// The range query that reads this aggregate's points, oldest first: one more than
    /// `MAX_AGGREGATED_POINTS`, so a window over the bound is told, not cut.
    pub fn range(&self) -> RangeQuery {
        RangeQuery {
            device_uid: self.device_uid.clone(),
            signals: vec![self.signal.clone()],
            window: self.window,
            limit: Some(MAX_AGGREGATED_POINTS + 1),
            descending: false,
        }
    }
}

fn check_bucket(bucket_ms: Millis) -> Result<(), TelemetryError> {
    if bucket_ms <= 0 {
        return Err(TelemetryError::Invalid(format!(
            "bucket_ms must be > 0, got {bucket_ms}"
        )));
    }
    Ok(())
}

/// Buckets points (sorted by time) of one signal; stores without server-side aggregation use it.
pub fn aggregate(points: &[Point], bucket_ms: Millis) -> Result<Vec<Bucket>, TelemetryError> {
    check_bucket(bucket_ms)?;
    let mut buckets: Vec<Bucket> = Vec::new();
    for point in points {
        let Some(v) = point.value.as_f64() else {
            continue;
        };
        let start = point.time.div_euclid(bucket_ms) * bucket_ms;
        match buckets.last_mut() {
            Some(b) if b.start == start => {
                b.count += 1;
                b.min = b.min.min(v);
                b.max = b.max.max(v);
                b.sum += v;
                b.avg = b.sum / b.count as f64;
                b.last = v;
            }
            _ => buckets.push(Bucket {
                start,
                count: 1,
                min: v,
                max: v,
                sum: v,
                avg: v,
                first: v,
                last: v,
            }),
        }
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with an endless history: every range read fills its limit. (A stand-in: the
    /// test is of the trait's own aggregate, over whatever store.)
    struct EndlessHistory(std::sync::Mutex<Vec<Option<usize>>>);

    #[async_trait]
    impl TelemetryStore for EndlessHistory {
        async fn write(&self, _: &[Record]) -> Result<WriteReport, TelemetryError> {
            Err(TelemetryError::Unavailable(
                "this stand-in only reads".into(),
            ))
        }
        async fn range(&self, query: &RangeQuery) -> Result<Vec<Point>, TelemetryError> {
            self.0.lock().expect("not poisoned").push(query.limit);
            let n = query
                .limit
                .unwrap_or(usize::MAX)
                .min(MAX_AGGREGATED_POINTS + 1);
            Ok((0..n).map(|i| point(i as Millis, 1.0)).collect())
        }
        async fn latest(&self, _: &str, _: &[String]) -> Result<Vec<Point>, TelemetryError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn an_aggregate_reads_a_bounded_history_and_says_so_when_there_is_more() {
        let store = EndlessHistory(std::sync::Mutex::new(Vec::new()));
        let query = AggregateQuery {
            device_uid: "d".into(),
            signal: "s".into(),
            window: Window {
                start: 0,
                end: 10 * crate::time::DAY * 365,
            },
            bucket_ms: crate::time::DAY,
        };
        let refused = store.aggregate(&query).await.unwrap_err();
        assert!(
            refused.to_string().contains("aggregate a shorter window"),
            "{refused}"
        );
        assert_eq!(
            *store.0.lock().expect("not poisoned"),
            [Some(MAX_AGGREGATED_POINTS + 1)]
        );
    }

    fn point(time: Millis, value: f64) -> Point {
        Point {
            time,
            device_uid: "d".into(),
            signal: "s".into(),
            value: Value::Number(value),
        }
    }

    #[test]
    fn buckets_aggregate_numeric_values() -> Result<(), TelemetryError> {
        let points = [
            point(0, 1.0),
            point(500, 3.0),
            point(1_000, 10.0),
            point(2_500, 4.0),
        ];
        let buckets = aggregate(&points, 1_000)?;
        assert_eq!(buckets.len(), 3);
        assert_eq!(
            (buckets[0].start, buckets[0].count, buckets[0].avg),
            (0, 2, 2.0)
        );
        assert_eq!(
            (
                buckets[0].first,
                buckets[0].last,
                buckets[0].min,
                buckets[0].max
            ),
            (1.0, 3.0, 1.0, 3.0)
        );
        assert_eq!((buckets[2].start, buckets[2].sum), (2_000, 4.0));
        assert!(aggregate(&points, 0).is_err());
        Ok(())
    }
}
