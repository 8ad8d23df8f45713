//! [`TelemetryStore`] on SQLite: one row per device, signal and time.

use async_trait::async_trait;
use iot_core::model::{Record, Value};
use iot_core::ports::{Point, RangeQuery, Rejected, TelemetryError, TelemetryStore, WriteReport};
use iot_core::time::Millis;
use rusqlite::params_from_iter;
use rusqlite::types::Value as Sql;

use super::Database;

pub struct SqliteTelemetry {
    db: Database,
}

impl SqliteTelemetry {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Runs a query selecting `POINT_COLUMNS`.
    async fn points(&self, sql: String, args: Vec<Sql>) -> Result<Vec<Point>, TelemetryError> {
        self.db
            .read(move |c| {
                c.prepare(&sql)?
                    .query_map(params_from_iter(args), read_point)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(unavailable)
    }
}

fn unavailable(e: rusqlite::Error) -> TelemetryError {
    TelemetryError::Unavailable(e.to_string())
}

fn columns(value: &Value) -> (Option<f64>, Option<bool>, Option<&str>) {
    match value {
        Value::Number(n) => (Some(*n), None, None),
        Value::Bool(b) => (None, Some(*b), None),
        Value::Text(t) => (None, None, Some(t.as_str())),
    }
}

fn read_point(row: &rusqlite::Row<'_>) -> Result<Point, rusqlite::Error> {
    let value = match (
        row.get::<_, Option<f64>>(3)?,
        row.get::<_, Option<bool>>(4)?,
        row.get::<_, Option<String>>(5)?,
    ) {
        (Some(n), _, _) => Value::Number(n),
        (_, Some(b), _) => Value::Bool(b),
        (_, _, Some(t)) => Value::Text(t),
        // NaN is stored as NULL by SQLite; it is the only way to get here.
        _ => Value::Number(f64::NAN),
    };
    Ok(Point {
        device_uid: row.get(0)?,
        signal: row.get(1)?,
        time: row.get(2)?,
        value,
    })
}

/// `text` matching only itself in a GLOB pattern (`*`, `?` and `[` each in brackets).
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

const POINT_COLUMNS: &str = "device_uid, signal, time, num, flag, txt";

/// `signal IN (?, ?, ...)` for a non-empty list, with the values to bind.
fn signal_filter(signals: &[String]) -> (String, Vec<Sql>) {
    if signals.is_empty() {
        return (String::new(), Vec::new());
    }
    let marks = vec!["?"; signals.len()].join(", ");
    (
        format!(" AND signal IN ({marks})"),
        signals.iter().map(|s| Sql::Text(s.clone())).collect(),
    )
}

#[async_trait]
impl TelemetryStore for SqliteTelemetry {
    /// One transaction per batch. A record without a device is refused; a second value for the
    /// same device, signal and time replaces the first (re-delivered messages are idempotent).
    async fn write(&self, records: &[Record]) -> Result<WriteReport, TelemetryError> {
        let records = records.to_vec();
        self.db
            .run(move |c| {
                let tx = c.savepoint()?;
                let mut report = WriteReport::default();
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT OR REPLACE INTO telemetry (device_uid, signal, time, num, flag, txt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for (index, record) in records.iter().enumerate() {
                        if record.device_uid.is_empty() {
                            report.rejected.push(Rejected {
                                index,
                                reason: "the record names no device".into(),
                            });
                            continue;
                        }
                        for datum in &record.data {
                            let (num, flag, txt) = columns(&datum.value);
                            insert.execute(rusqlite::params![record.device_uid, datum.name, record.time, num, flag, txt])?;
                        }
                        report.written += 1;
                    }
                }
                tx.commit()?;
                Ok(report)
            })
            .await
            .map_err(unavailable)
    }

    /// In one statement of at most `limit` rows, so a large expiry never holds the writer
    /// for long; the caller repeats until fewer come back.
    async fn expire(
        &self,
        uid_prefix: &str,
        before: Millis,
        limit: usize,
    ) -> Result<Option<u64>, TelemetryError> {
        let pattern = format!("{}*", glob_literal(uid_prefix));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .run(move |c| {
                c.execute(
                    "DELETE FROM telemetry WHERE (device_uid, signal, time) IN (
                        SELECT device_uid, signal, time FROM telemetry
                        WHERE device_uid GLOB ?1 AND time < ?2 LIMIT ?3)",
                    rusqlite::params![pattern, before, limit],
                )
            })
            .await
            .map(|deleted| Some(deleted as u64))
            .map_err(unavailable)
    }

    async fn range(&self, query: &RangeQuery) -> Result<Vec<Point>, TelemetryError> {
        query.check()?;
        let (filter, signal_args) = signal_filter(&query.signals);
        let order = if query.descending { "DESC" } else { "ASC" };
        let limit = query.limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64);
        let sql = format!(
            "SELECT {POINT_COLUMNS} FROM telemetry WHERE device_uid = ? AND time >= ? AND time <= ?{filter}
             ORDER BY time {order}, signal LIMIT {limit}"
        );
        let mut args = vec![
            Sql::Text(query.device_uid.clone()),
            Sql::Integer(query.window.start),
            Sql::Integer(query.window.end),
        ];
        args.extend(signal_args);
        self.points(sql, args).await
    }

    async fn latest(
        &self,
        device_uid: &str,
        signals: &[String],
    ) -> Result<Vec<Point>, TelemetryError> {
        let (filter, signal_args) = signal_filter(signals);
        // For each signal, the row with the greatest time (one index seek per signal).
        let sql = format!(
            "SELECT {POINT_COLUMNS} FROM telemetry t
             WHERE device_uid = ?{filter} AND time = (
                SELECT MAX(time) FROM telemetry m WHERE m.device_uid = t.device_uid AND m.signal = t.signal)
             ORDER BY signal"
        );
        let mut args = vec![Sql::Text(device_uid.to_owned())];
        args.extend(signal_args);
        self.points(sql, args).await
    }
}
