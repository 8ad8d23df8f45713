//! [`TelemetryStore`]: batched writes with per-record rejections, range, latest and aggregates.

use iot_core::model::{Datum, Record, Value};
use iot_core::ports::{AggregateQuery, RangeQuery, TelemetryStore};
use iot_core::stats::Window;
use iot_core::time::Millis;

use crate::{Outcome, ensure, same};

/// 2026-11-26T23:59:57Z: the six readings below cross midnight, so stores that partition by
/// day must join two days.
pub const T0: Millis = 1_795_737_597_000;

fn record(device: &str, time: Millis, data: Vec<Datum>) -> Record {
    Record {
        time,
        device_uid: device.into(),
        identification_code: String::new(),
        data,
        nc: String::new(),
    }
}

fn range(
    signals: &[&str],
    start: Millis,
    end: Millis,
    limit: Option<usize>,
    descending: bool,
) -> RangeQuery {
    RangeQuery {
        device_uid: "d1".into(),
        signals: signals.iter().map(|s| (*s).to_owned()).collect(),
        window: Window { start, end },
        limit,
        descending,
    }
}

pub async fn range_latest_and_aggregates(store: &dyn TelemetryStore) -> Outcome {
    let records: Vec<Record> = (0..6)
        .map(|i| {
            record(
                "d1",
                T0 + i * 1_000,
                vec![
                    Datum::new("t", i as f64),
                    Datum::new("door", i % 2 == 0),
                    Datum::new("mode", "eco"),
                ],
            )
        })
        .chain([
            record("d2", T0, vec![Datum::new("t", 99.0)]),
            record("", T0, vec![Datum::new("t", 1.0)]),
        ])
        .collect();
    let report = store.write(&records).await?;
    same(report.written, 7, "written")?;
    same(
        report.rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![7],
        "a record without a device is rejected, by index",
    )?;
    ensure(
        !report.rejected[0].reason.is_empty(),
        "a rejection says why",
    )?;

    let t: Vec<(Millis, Value)> = store
        .range(&range(&["t"], T0 + 1_000, T0 + 3_000, None, false))
        .await?
        .into_iter()
        .map(|p| (p.time, p.value))
        .collect();
    same(
        t,
        vec![
            (T0 + 1_000, Value::Number(1.0)),
            (T0 + 2_000, Value::Number(2.0)),
            (T0 + 3_000, Value::Number(3.0)),
        ],
        "one signal over a window that crosses midnight",
    )?;
    let newest = store
        .range(&range(&[], T0, T0 + 10_000, Some(3), true))
        .await?;
    same(newest.len(), 3, "limit")?;
    ensure(
        newest.iter().all(|p| p.time == T0 + 5_000),
        format!("every signal of the newest record first: {newest:?}"),
    )?;
    let oldest = store
        .range(&range(&["t"], T0, T0 + 10_000, Some(2), false))
        .await?;
    same(
        oldest.iter().map(|p| p.time).collect::<Vec<_>>(),
        vec![T0, T0 + 1_000],
        "limit keeps the oldest when ascending",
    )?;
    ensure(
        store
            .range(&range(&[], T0 + 5, T0 + 1, None, false))
            .await
            .is_err(),
        "a window that ends before it starts is refused",
    )?;
    ensure(
        store
            .range(&range(&["nothing"], T0, T0 + 10_000, None, false))
            .await?
            .is_empty(),
        "an unknown signal has no points",
    )?;

    let latest: Vec<(String, Millis, Value)> = store
        .latest("d1", &[])
        .await?
        .into_iter()
        .map(|p| (p.signal, p.time, p.value))
        .collect();
    same(
        latest,
        vec![
            ("door".into(), T0 + 5_000, Value::Bool(false)),
            ("mode".into(), T0 + 5_000, Value::from("eco")),
            ("t".into(), T0 + 5_000, Value::Number(5.0)),
        ],
        "latest of every signal, by name",
    )?;
    same(
        store.latest("d1", &["t".into()]).await?.len(),
        1,
        "latest of one signal",
    )?;

    let buckets = store
        .aggregate(&AggregateQuery {
            device_uid: "d1".into(),
            signal: "t".into(),
            window: Window {
                start: T0,
                end: T0 + 5_000,
            },
            bucket_ms: 2_000,
        })
        .await?;
    let summary: Vec<(Millis, u64, f64, f64)> = buckets
        .iter()
        .map(|b| (b.start, b.count, b.avg, b.last))
        .collect();
    // T0 is odd seconds past a 2 s boundary: buckets start at even seconds.
    same(
        summary,
        vec![
            (T0 - 1_000, 1, 0.0, 0.0),
            (T0 + 1_000, 2, 1.5, 2.0),
            (T0 + 3_000, 2, 3.5, 4.0),
            (T0 + 5_000, 1, 5.0, 5.0),
        ],
        "aggregates",
    )
}

pub async fn rewriting_a_point_replaces_it(store: &dyn TelemetryStore) -> Outcome {
    store
        .write(&[record("d1", T0, vec![Datum::new("t", 1.0)])])
        .await?;
    store
        .write(&[record("d1", T0, vec![Datum::new("t", 2.0)])])
        .await?;
    let points = store.range(&range(&["t"], T0, T0, None, false)).await?;
    same(
        points.into_iter().map(|p| p.value).collect::<Vec<_>>(),
        vec![Value::Number(2.0)],
        "a redelivered reading replaces, not duplicates",
    )?;
    // A late reading does not move `latest` back.
    store
        .write(&[record("d1", T0 - 60_000, vec![Datum::new("t", 0.5)])])
        .await?;
    let latest = store.latest("d1", &["t".into()]).await?;
    same(
        latest
            .into_iter()
            .map(|p| (p.time, p.value))
            .collect::<Vec<_>>(),
        vec![(T0, Value::Number(2.0))],
        "latest stays on the newest time",
    )
}

/// A tenant's retention and a deleted tenant's purge: points older than the cut-off of the
/// uids under one prefix go, up to the limit; newer points and other prefixes stay. Stores
/// whose own expiry drops points (`None`) pass without deleting anything.
pub async fn expiry_deletes_old_points_under_one_prefix(store: &dyn TelemetryStore) -> Outcome {
    const DAY: Millis = 86_400_000;
    let old = T0 - 2 * DAY;
    store
        .write(&[
            record(
                "acme_p1",
                old,
                vec![Datum::new("t", 1.0), Datum::new("h", 2.0)],
            ),
            record("acme_p1", T0, vec![Datum::new("t", 3.0)]),
            record("acme-2_p1", old, vec![Datum::new("t", 4.0)]),
        ])
        .await?;
    let times = |uid: &'static str| async move {
        let query = RangeQuery {
            device_uid: uid.into(),
            signals: Vec::new(),
            window: iot_core::stats::Window {
                start: old - DAY,
                end: T0 + DAY,
            },
            limit: None,
            descending: false,
        };
        let points = store.range(&query).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            points.into_iter().map(|p| p.time).collect::<Vec<_>>(),
        )
    };
    let Some(first) = store.expire("acme_", T0 - DAY, 1).await? else {
        return same(
            times("acme_p1").await?,
            vec![old, old, T0],
            "nothing deleted",
        );
    };
    same(first, 1, "the limit bounds one call")?;
    let rest = store.expire("acme_", T0 - DAY, 100).await?;
    same(rest, Some(1), "the second old point")?;
    same(times("acme_p1").await?, vec![T0], "the newer point stays")?;
    same(
        times("acme-2_p1").await?,
        vec![old],
        "another tenant's points stay",
    )
}
