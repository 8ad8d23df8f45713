//! Timestream against moto. moto stores writes but runs no SQL: a query returns the result
//! pages queued for its exact text (`/moto-api/static/timestream/query-results`). So these
//! tests queue recorded pages, in the real response shape, for the SQL the adapter must send:
//! a wrong query gets no rows and the test fails; pages are followed by `NextToken`. The SQL
//! text itself is tested in `timestream::sql`.

mod support;

use iot_aws::testing::{emulator_config, endpoint, unique_name};
use iot_aws::timestream::{TimestreamTelemetry, clients, sql};
use iot_core::model::{Datum, Record, Value};
use iot_core::ports::{AggregateQuery, RangeQuery, TelemetryStore};
use iot_core::stats::Window;
use serde_json::{Value as Json, json};
use std::sync::atomic::Ordering;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const T0: i64 = 1_795_737_597_000; // 2026-11-26 23:59:57 UTC

/// A new database with a `telemetry` table; returns the database name.
async fn create_table(
    write: &iot_aws::timestream::WriteClient,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let database = unique_name("iot");
    write
        .create_database()
        .database_name(&database)
        .send()
        .await?;
    write
        .create_table()
        .database_name(&database)
        .table_name("telemetry")
        .send()
        .await?;
    Ok(database)
}

async fn store()
-> Result<(TimestreamTelemetry, sql::TableRef), Box<dyn std::error::Error + Send + Sync>> {
    let config = emulator_config().await?;
    let (write, query) = clients(&config).await?;
    let database = create_table(&write).await?;
    let table = sql::TableRef {
        database: database.clone(),
        table: "telemetry".into(),
    };
    Ok((
        TimestreamTelemetry::new(write, query, database, "telemetry"),
        table,
    ))
}

/// Queues result pages for a query text.
async fn queue_pages(query: &str, pages: Vec<Json>) -> TestResult {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/timestream/query-results",
            endpoint()?
        ))
        .header("content-type", "application/json")
        .body(json!({ "results": { query: pages } }).to_string())
        .send()
        .await?;
    assert!(response.status().is_success(), "{}", response.status());
    Ok(())
}

fn column(name: &str, kind: &str) -> Json {
    json!({ "Name": name, "Type": { "ScalarType": kind } })
}

fn cell(value: Option<&str>) -> Json {
    match value {
        Some(v) => json!({ "ScalarValue": v }),
        None => json!({ "NullValue": true }),
    }
}

#[tokio::test]
async fn writes_report_rejected_records_and_keep_the_rest() -> TestResult {
    let (store, _) = store().await?;
    let record = |device: &str, signal: &str| Record {
        time: T0,
        device_uid: device.into(),
        identification_code: "SN-1".into(),
        data: vec![
            Datum::new(signal, 21.5),
            Datum::new("door", true),
            Datum::new("mode", "eco"),
        ],
        nc: String::new(),
    };
    let mut records: Vec<Record> = (0..150).map(|_| record("d1", "t")).collect();
    records[3] = record("", "t");
    records[120] = record("d1", "time");
    let report = store.write(&records).await?;
    assert_eq!(
        report.written, 148,
        "two batches of up to 100, all but the two refused"
    );
    let rejected: Vec<usize> = report.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, [3, 120]);
    assert!(
        report.rejected[1].reason.contains("reserved"),
        "{:?}",
        report.rejected
    );
    Ok(())
}

#[tokio::test]
async fn range_follows_result_pages_and_reads_typed_cells() -> TestResult {
    let (store, table) = store().await?;
    let query = RangeQuery {
        device_uid: "d1".into(),
        signals: vec!["t".into(), "door".into()],
        window: Window {
            start: T0,
            end: T0 + 10_000,
        },
        limit: None,
        descending: false,
    };
    let columns = json!([
        column("time", "TIMESTAMP"),
        column("t", "DOUBLE"),
        column("door", "BOOLEAN")
    ]);
    queue_pages(
        &sql::range(&table, &query),
        vec![
            json!({
                "QueryId": "q1", "NextToken": "page-2", "ColumnInfo": columns,
                "Rows": [
                    { "Data": [cell(Some("2026-11-26 23:59:57.000000000")), cell(Some("1.5")), cell(Some("true"))] },
                    { "Data": [cell(Some("2026-11-26 23:59:58.000000000")), cell(None), cell(Some("false"))] }
                ]
            }),
            json!({
                "QueryId": "q1", "ColumnInfo": columns,
                "Rows": [
                    { "Data": [cell(Some("2026-11-27 00:00:01.250000000")), cell(Some("3")), cell(None)] }
                ]
            }),
        ],
    )
    .await?;
    let points: Vec<(i64, String, Value)> = store
        .range(&query)
        .await?
        .into_iter()
        .map(|p| (p.time, p.signal, p.value))
        .collect();
    assert_eq!(
        points,
        [
            (T0, "door".to_owned(), Value::Bool(true)),
            (T0, "t".to_owned(), Value::Number(1.5)),
            (T0 + 1_000, "door".to_owned(), Value::Bool(false)),
            (T0 + 4_250, "t".to_owned(), Value::Number(3.0)),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn latest_of_all_signals_reads_the_columns_first() -> TestResult {
    let (store, table) = store().await?;
    queue_pages(
        &sql::describe(&table),
        vec![json!({
            "QueryId": "d", "ColumnInfo": [column("Column", "VARCHAR"), column("Type", "VARCHAR"), column("Timestream attribute type", "VARCHAR")],
            "Rows": [
                { "Data": [cell(Some("device_uid")), cell(Some("varchar")), cell(Some("DIMENSION"))] },
                { "Data": [cell(Some("measure_name")), cell(Some("varchar")), cell(Some("MEASURE_NAME"))] },
                { "Data": [cell(Some("time")), cell(Some("timestamp")), cell(Some("TIMESTAMP"))] },
                { "Data": [cell(Some("t")), cell(Some("double")), cell(Some("MULTI"))] },
                { "Data": [cell(Some("mode")), cell(Some("varchar")), cell(Some("MULTI"))] }
            ]
        })],
    )
    .await?;
    queue_pages(
        &sql::latest(&table, "d1", &["t".into(), "mode".into()], 30),
        vec![json!({
            "QueryId": "l",
            "ColumnInfo": [column("v0", "DOUBLE"), column("t0", "TIMESTAMP"), column("v1", "VARCHAR"), column("t1", "TIMESTAMP")],
            "Rows": [{ "Data": [
                cell(Some("22.5")), cell(Some("2026-11-27 00:00:02.000000000")),
                cell(Some("eco")), cell(Some("2026-11-26 23:59:57.000000000"))
            ] }]
        })],
    )
    .await?;
    let latest: Vec<(String, i64, Value)> = store
        .latest("d1", &[])
        .await?
        .into_iter()
        .map(|p| (p.signal, p.time, p.value))
        .collect();
    assert_eq!(
        latest,
        [
            ("mode".to_owned(), T0, Value::from("eco")),
            ("t".to_owned(), T0 + 5_000, Value::Number(22.5)),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn aggregates_come_from_server_side_bins() -> TestResult {
    let (store, table) = store().await?;
    let query = AggregateQuery {
        device_uid: "d1".into(),
        signal: "t".into(),
        window: Window {
            start: T0,
            end: T0 + 5_000,
        },
        bucket_ms: 2_000,
    };
    let columns = ["bucket", "n", "lo", "hi", "total", "mean", "first", "last"];
    let kinds = [
        "TIMESTAMP",
        "BIGINT",
        "DOUBLE",
        "DOUBLE",
        "DOUBLE",
        "DOUBLE",
        "DOUBLE",
        "DOUBLE",
    ];
    let row = |values: [&str; 8]| json!({ "Data": values.iter().map(|v| cell(Some(v))).collect::<Vec<_>>() });
    queue_pages(
        &sql::aggregate(&table, &query),
        vec![json!({
            "QueryId": "a",
            "ColumnInfo": columns.iter().zip(kinds).map(|(c, k)| column(c, k)).collect::<Vec<_>>(),
            "Rows": [
                row(["2026-11-26 23:59:56.000000000", "1", "0", "0", "0", "0", "0", "0"]),
                row(["2026-11-26 23:59:58.000000000", "2", "1", "2", "3", "1.5", "1", "2"]),
            ]
        })],
    )
    .await?;
    let buckets = store.aggregate(&query).await?;
    let summary: Vec<(i64, u64, f64, f64)> = buckets
        .iter()
        .map(|b| (b.start, b.count, b.avg, b.last))
        .collect();
    assert_eq!(
        summary,
        [(T0 - 1_000, 1, 0.0, 0.0), (T0 + 1_000, 2, 1.5, 2.0)]
    );
    Ok(())
}

#[tokio::test]
async fn records_timestream_rejects_are_reported_by_their_index_in_the_whole_write() -> TestResult {
    // moto accepts every record, so the rejection comes from the proxy, in the wire shape of
    // Timestream's RejectedRecordsException, for the second WriteRecords call (the second batch of 100).
    let (proxy_url, faults) = support::proxy::proxy().await?;
    let config = iot_aws::config::load_for_endpoint(&Default::default(), &proxy_url).await;
    let (write, query) = clients(&config).await?;
    let database = create_table(&write).await?;
    let store = TimestreamTelemetry::new(write, query, database, "telemetry");
    let records: Vec<Record> = (0..150)
        .map(|i| Record {
            time: T0 + i,
            device_uid: "d1".into(),
            identification_code: String::new(),
            data: vec![Datum::new("t", i as f64)],
            nc: String::new(),
        })
        .collect();

    // The first WriteRecords call (records 0..100) goes through; the second is answered.
    faults.pass_before_answer.store(1, Ordering::SeqCst);
    *faults.answer_once.lock().unwrap_or_else(|p| p.into_inner()) = Some((
        "WriteRecords".into(),
        419,
        json!({
            "__type": "RejectedRecordsException",
            "message": "One or more records have been rejected. See RejectedRecords for details.",
            "RejectedRecords": [
                { "RecordIndex": 2, "Reason": "The record timestamp is outside the time range of the data ingestion window." },
                { "RecordIndex": 40, "Reason": "A record with the same time and dimensions has a higher version." }
            ]
        })
        .to_string(),
    ));
    let report = store.write(&records).await?;
    assert_eq!(report.written, 148);
    let rejected: Vec<(usize, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (
                102,
                "The record timestamp is outside the time range of the data ingestion window."
            ),
            (
                140,
                "A record with the same time and dimensions has a higher version."
            ),
        ]
    );
    Ok(())
}
