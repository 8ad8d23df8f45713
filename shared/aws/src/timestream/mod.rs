//! [`TelemetryStore`] on Amazon Timestream for LiveAnalytics: multi-measure records written in
//! batches of 100 (the WriteRecords limit), rejected records reported one by one with
//! Timestream's reason, and reads as generated SQL ([`sql`]) with paginated results.
//!
//! Timestream needs endpoint discovery on AWS; an emulator answers DescribeEndpoints with the
//! real AWS host, so with a custom endpoint the clients call it directly ([`clients`]).

pub mod sql;

use async_trait::async_trait;
use aws_sdk_timestreamquery::types::{ColumnInfo, Row, ScalarType};
use aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError;
use aws_sdk_timestreamwrite::types::{
    Dimension, MeasureValue, MeasureValueType, Record as TsRecord, TimeUnit,
};
use chrono::NaiveDateTime;
use iot_core::model::{Record, Value};
use iot_core::ports::{
    AggregateQuery, Bucket, Point, RangeQuery, TelemetryError, TelemetryStore, WriteReport,
    order_points,
};
use iot_core::time::Millis;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::OnceCell;

use crate::error::describe;
use sql::{MEASURE_NAME, RESERVED_COLUMNS, TableRef};

pub type WriteClient = aws_sdk_timestreamwrite::Client;
pub type QueryClient = aws_sdk_timestreamquery::Client;

/// The WriteRecords limit.
pub const MAX_RECORDS_PER_WRITE: usize = 100;

/// Timestream's endpoint discovery failed (the account or region may lack Timestream).
#[derive(Debug, thiserror::Error)]
#[error("Timestream {side} endpoint discovery: {reason}")]
pub struct DiscoveryError {
    pub side: &'static str,
    pub reason: String,
}

/// Builds both clients. On AWS, endpoint discovery is enabled and its reload tasks run for as
/// long as the clients live.
pub async fn clients(
    config: &aws_config::SdkConfig,
) -> Result<(WriteClient, QueryClient), DiscoveryError> {
    let write = WriteClient::new(config);
    let query = QueryClient::new(config);
    if crate::config::uses_custom_endpoint(config) {
        return Ok((write, query));
    }
    let (write, reload_write) =
        write
            .with_endpoint_discovery_enabled()
            .await
            .map_err(|e| DiscoveryError {
                side: "write",
                reason: e.to_string(),
            })?;
    let (query, reload_query) =
        query
            .with_endpoint_discovery_enabled()
            .await
            .map_err(|e| DiscoveryError {
                side: "query",
                reason: e.to_string(),
            })?;
    tokio::spawn(reload_write.reload_task());
    tokio::spawn(reload_query.reload_task());
    Ok((write, query))
}

#[derive(Clone)]
pub struct TimestreamTelemetry {
    write: WriteClient,
    query: QueryClient,
    table: TableRef,
    /// How far back `latest` looks (Timestream scans by time).
    pub latest_lookback_days: u32,
    /// The table's signal columns, read once (DESCRIBE) when `latest` needs all of them.
    columns: Arc<OnceCell<Vec<String>>>,
}

impl TimestreamTelemetry {
    pub fn new(
        write: WriteClient,
        query: QueryClient,
        database: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            write,
            query,
            table: TableRef {
                database: database.into(),
                table: table.into(),
            },
            latest_lookback_days: 30,
            columns: Arc::new(OnceCell::new()),
        }
    }

    /// A Timestream record of a reading, or why it cannot be one.
    fn record(record: &Record, version: i64) -> Result<Option<TsRecord>, String> {
        if record.device_uid.is_empty() {
            return Err("the record names no device".into());
        }
        if record.data.is_empty() {
            return Ok(None);
        }
        let mut measures = Vec::with_capacity(record.data.len());
        for datum in &record.data {
            if RESERVED_COLUMNS.contains(&datum.name.as_str()) {
                return Err(format!("signal name {:?} is reserved", datum.name));
            }
            let (text, kind) = match &datum.value {
                Value::Number(x) if !x.is_finite() => {
                    return Err(format!("{}: {x} is not a finite number", datum.name));
                }
                Value::Number(x) => (x.to_string(), MeasureValueType::Double),
                Value::Bool(b) => (b.to_string(), MeasureValueType::Boolean),
                Value::Text(t) => (t.clone(), MeasureValueType::Varchar),
            };
            measures.push(
                MeasureValue::builder()
                    .name(&datum.name)
                    .value(text)
                    .r#type(kind)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let mut dimensions = vec![dimension("device_uid", &record.device_uid)?];
        if !record.identification_code.is_empty() {
            dimensions.push(dimension(
                "identification_code",
                &record.identification_code,
            )?);
        }
        Ok(Some(
            TsRecord::builder()
                .set_dimensions(Some(dimensions))
                .measure_name(MEASURE_NAME)
                .measure_value_type(MeasureValueType::Multi)
                .set_measure_values(Some(measures))
                .time(record.time.to_string())
                .time_unit(TimeUnit::Milliseconds)
                // A higher version replaces an earlier write of the same reading.
                .version(version)
                .build(),
        ))
    }

    /// Runs a query and returns every page's rows with the columns.
    async fn run(&self, sql: String) -> Result<(Vec<ColumnInfo>, Vec<Row>), TelemetryError> {
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .query
                .query()
                .query_string(&sql)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    use aws_sdk_timestreamquery::error::ProvideErrorMetadata;
                    match e.as_service_error().and_then(|s| s.code()) {
                        Some("ValidationException") => TelemetryError::Invalid(describe(&e)),
                        _ => TelemetryError::Unavailable(describe(&e)),
                    }
                })?;
            if columns.is_empty() {
                columns = page.column_info().to_vec();
            }
            rows.extend(page.rows().iter().cloned());
            match page.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok((columns, rows)),
            }
        }
    }

    async fn signal_columns(&self) -> Result<Vec<String>, TelemetryError> {
        self.columns
            .get_or_try_init(|| async {
                let (_, rows) = self.run(sql::describe(&self.table)).await?;
                Ok(rows
                    .iter()
                    .filter_map(|row| {
                        let cell = |i: usize| row.data().get(i).and_then(|d| d.scalar_value());
                        let name = cell(0)?;
                        let kind = cell(2).unwrap_or_default();
                        (!RESERVED_COLUMNS.contains(&name) && kind != "DIMENSION")
                            .then(|| name.to_owned())
                    })
                    .collect())
            })
            .await
            .cloned()
    }
}

fn dimension(name: &str, value: &str) -> Result<Dimension, String> {
    Dimension::builder()
        .name(name)
        .value(value)
        .build()
        .map_err(|e| e.to_string())
}

/// Timestream's timestamp text (`2026-11-26 23:59:57.000000000`) in epoch ms.
pub fn parse_time(text: &str) -> Option<Millis> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// A cell as a value of the column's type; `None` for NULL.
fn cell_value(row: &Row, index: usize, column: &ColumnInfo) -> Option<Value> {
    let datum = row.data().get(index)?;
    if datum.null_value() == Some(true) {
        return None;
    }
    let text = datum.scalar_value()?;
    let kind = column.r#type().and_then(|t| t.scalar_type());
    Some(match kind {
        Some(ScalarType::Boolean) => Value::Bool(text == "true"),
        Some(ScalarType::Double | ScalarType::Bigint | ScalarType::Integer) => {
            Value::Number(text.parse().ok()?)
        }
        _ => Value::Text(text.to_owned()),
    })
}

fn cell_f64(row: &Row, index: usize) -> Option<f64> {
    row.data().get(index)?.scalar_value()?.parse().ok()
}

fn column_index(columns: &[ColumnInfo], name: &str) -> Option<usize> {
    columns.iter().position(|c| c.name() == Some(name))
}

/// Range rows to points: every non-null signal cell of every row.
pub fn points_of_rows(device_uid: &str, columns: &[ColumnInfo], rows: &[Row]) -> Vec<Point> {
    let Some(time_at) = column_index(columns, "time") else {
        return Vec::new();
    };
    let mut points = Vec::new();
    for row in rows {
        let Some(time) = row
            .data()
            .get(time_at)
            .and_then(|d| d.scalar_value())
            .and_then(parse_time)
        else {
            continue;
        };
        for (i, column) in columns.iter().enumerate() {
            let name = column.name().unwrap_or_default();
            if RESERVED_COLUMNS.contains(&name) {
                continue;
            }
            if let Some(value) = cell_value(row, i, column) {
                points.push(Point {
                    time,
                    device_uid: device_uid.to_owned(),
                    signal: name.to_owned(),
                    value,
                });
            }
        }
    }
    points
}

#[async_trait]
impl TelemetryStore for TimestreamTelemetry {
    async fn write(&self, records: &[Record]) -> Result<WriteReport, TelemetryError> {
        let version = chrono::Utc::now().timestamp_millis();
        let mut rejected: BTreeMap<usize, String> = BTreeMap::new();
        // (index into `records`, Timestream record)
        let mut batch: Vec<(usize, TsRecord)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match Self::record(record, version) {
                Ok(Some(r)) => batch.push((index, r)),
                Ok(None) => {}
                Err(why) => {
                    rejected.insert(index, why);
                }
            }
        }
        for chunk in batch.chunks(MAX_RECORDS_PER_WRITE) {
            let result = self
                .write
                .write_records()
                .database_name(&self.table.database)
                .table_name(&self.table.table)
                .set_records(Some(chunk.iter().map(|(_, r)| r.clone()).collect()))
                .send()
                .await;
            match result {
                Ok(_) => {}
                // The records not listed were written.
                Err(e) => match e.as_service_error() {
                    Some(WriteRecordsError::RejectedRecordsException(r)) => {
                        for rejection in r.rejected_records() {
                            let at = usize::try_from(rejection.record_index()).ok();
                            if let Some((index, _)) = at.and_then(|i| chunk.get(i)) {
                                let why = rejection.reason().unwrap_or("rejected by Timestream");
                                tracing::warn!(
                                    record = index,
                                    reason = why,
                                    "Timestream rejected a record"
                                );
                                rejected.insert(*index, why.to_owned());
                            }
                        }
                    }
                    Some(WriteRecordsError::ValidationException(_)) => {
                        // The whole batch is malformed: report every record, keep going.
                        let why = describe(&e);
                        for (index, _) in chunk {
                            rejected.insert(*index, why.clone());
                        }
                    }
                    _ => return Err(TelemetryError::Unavailable(describe(&e))),
                },
            }
        }
        Ok(WriteReport::with_rejections(records.len(), rejected))
    }

    async fn range(&self, query: &RangeQuery) -> Result<Vec<Point>, TelemetryError> {
        query.check()?;
        let (columns, rows) = self.run(sql::range(&self.table, query)).await?;
        let mut points = points_of_rows(&query.device_uid, &columns, &rows);
        order_points(&mut points, query.descending, query.limit);
        Ok(points)
    }

    async fn latest(
        &self,
        device_uid: &str,
        signals: &[String],
    ) -> Result<Vec<Point>, TelemetryError> {
        let signals = if signals.is_empty() {
            self.signal_columns().await?
        } else {
            signals.to_vec()
        };
        if signals.is_empty() {
            return Ok(Vec::new());
        }
        let (columns, rows) = self
            .run(sql::latest(
                &self.table,
                device_uid,
                &signals,
                self.latest_lookback_days,
            ))
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Vec::new());
        };
        let mut points: Vec<Point> = signals
            .iter()
            .enumerate()
            .filter_map(|(i, signal)| {
                let v = column_index(&columns, &format!("v{i}"))?;
                let t = column_index(&columns, &format!("t{i}"))?;
                let time = row.data().get(t)?.scalar_value().and_then(parse_time)?;
                Some(Point {
                    time,
                    device_uid: device_uid.to_owned(),
                    signal: signal.clone(),
                    value: cell_value(row, v, &columns[v])?,
                })
            })
            .collect();
        points.sort_by(|a, b| a.signal.cmp(&b.signal));
        Ok(points)
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<Bucket>, TelemetryError> {
        if query.bucket_ms <= 0 {
            return Err(TelemetryError::Invalid(format!(
                "bucket_ms must be > 0, got {}",
                query.bucket_ms
            )));
        }
        let (columns, rows) = self.run(sql::aggregate(&self.table, query)).await?;
        let at = |name: &str| column_index(&columns, name);
        let (
            Some(bucket),
            Some(n),
            Some(lo),
            Some(hi),
            Some(total),
            Some(mean),
            Some(first),
            Some(last),
        ) = (
            at("bucket"),
            at("n"),
            at("lo"),
            at("hi"),
            at("total"),
            at("mean"),
            at("first"),
            at("last"),
        )
        else {
            return Ok(Vec::new());
        };
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(Bucket {
                    start: row
                        .data()
                        .get(bucket)?
                        .scalar_value()
                        .and_then(parse_time)?,
                    count: cell_f64(row, n)? as u64,
                    min: cell_f64(row, lo)?,
                    max: cell_f64(row, hi)?,
                    sum: cell_f64(row, total)?,
                    avg: cell_f64(row, mean)?,
                    first: cell_f64(row, first)?,
                    last: cell_f64(row, last)?,
                })
            })
            .collect())
    }
}
