//! The SQL the Timestream adapter sends. Pure functions, so the exact text is tested here and
//! the emulator tests can register recorded result pages for exactly these queries.
//!
//! Table shape: one multi-measure record per reading, dimensions `device_uid` (and
//! `identification_code` when set), measure name `reading`, one measure column per signal.

use iot_core::ports::{AggregateQuery, RangeQuery};
use iot_core::time::Millis;

/// Columns that are not signals.
pub const RESERVED_COLUMNS: [&str; 4] =
    ["time", "measure_name", "device_uid", "identification_code"];
pub const MEASURE_NAME: &str = "reading";

/// A string literal: quotes doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A quoted identifier: double quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Clone, Debug)]
pub struct TableRef {
    pub database: String,
    pub table: String,
}

impl TableRef {
    fn sql(&self) -> String {
        format!("{}.{}", ident(&self.database), ident(&self.table))
    }
}

fn window(start: Millis, end: Millis) -> String {
    format!("time BETWEEN from_milliseconds({start}) AND from_milliseconds({end})")
}

/// Rows in the window, by time; with signals named, only rows that carry one of them.
pub fn range(table: &TableRef, query: &RangeQuery) -> String {
    let columns = if query.signals.is_empty() {
        "*".to_owned()
    } else {
        let mut columns = vec!["time".to_owned()];
        columns.extend(query.signals.iter().map(|s| ident(s)));
        columns.join(", ")
    };
    let mut sql = format!(
        "SELECT {columns} FROM {} WHERE device_uid = {} AND {}",
        table.sql(),
        literal(&query.device_uid),
        window(query.window.start, query.window.end)
    );
    if !query.signals.is_empty() {
        let any: Vec<String> = query
            .signals
            .iter()
            .map(|s| format!("{} IS NOT NULL", ident(s)))
            .collect();
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    sql.push_str(if query.descending {
        " ORDER BY time DESC"
    } else {
        " ORDER BY time ASC"
    });
    if let Some(limit) = query.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    sql
}

/// One row: for signal `i`, its newest value `v{i}` and that value's time `t{i}`, within the
/// lookback (Timestream scans by time, so an unbounded latest would read the whole table).
pub fn latest(
    table: &TableRef,
    device_uid: &str,
    signals: &[String],
    lookback_days: u32,
) -> String {
    let columns: Vec<String> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = ident(s);
            let when = format!("CASE WHEN {s} IS NOT NULL THEN time END");
            format!("max_by({s}, {when}) AS v{i}, max({when}) AS t{i}")
        })
        .collect();
    format!(
        "SELECT {} FROM {} WHERE device_uid = {} AND time >= ago({lookback_days}d)",
        columns.join(", "),
        table.sql(),
        literal(device_uid)
    )
}

/// The table's columns (to find the signals when none are named).
pub fn describe(table: &TableRef) -> String {
    format!("DESCRIBE {}", table.sql())
}

/// Buckets aligned on multiples of the width since the epoch (`bin()`), numeric view of the
/// signal (booleans as 0 and 1, text that is not a number skipped), as the port defines.
pub fn aggregate(table: &TableRef, query: &AggregateQuery) -> String {
    let bucket = format!("bin(time, {}ms)", query.bucket_ms);
    format!(
        "SELECT {bucket} AS bucket, count(*) AS n, min(v) AS lo, max(v) AS hi, sum(v) AS total, \
         avg(v) AS mean, min_by(v, time) AS first, max_by(v, time) AS last \
         FROM (SELECT time, try_cast({} AS DOUBLE) AS v FROM {} WHERE device_uid = {} AND {}) \
         WHERE v IS NOT NULL GROUP BY {bucket} ORDER BY bucket ASC",
        ident(&query.signal),
        table.sql(),
        literal(&query.device_uid),
        window(query.window.start, query.window.end)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_core::stats::Window;

    fn table() -> TableRef {
        TableRef {
            database: "iot-dev".into(),
            table: "telemetry".into(),
        }
    }

    #[test]
    fn user_text_cannot_leave_its_literal_or_identifier() {
        assert_eq!(literal("d1' OR '1'='1"), "'d1'' OR ''1''=''1'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn range_queries_name_the_signals_and_bound_the_time() {
        let query = RangeQuery {
            device_uid: "d'1".into(),
            signals: vec!["t".into(), "door".into()],
            window: Window {
                start: 1_000,
                end: 5_000,
            },
            limit: Some(3),
            descending: true,
        };
        assert_eq!(
            range(&table(), &query),
            "SELECT time, \"t\", \"door\" FROM \"iot-dev\".\"telemetry\" WHERE device_uid = 'd''1' \
             AND time BETWEEN from_milliseconds(1000) AND from_milliseconds(5000) \
             AND (\"t\" IS NOT NULL OR \"door\" IS NOT NULL) ORDER BY time DESC LIMIT 3"
        );
        let all = RangeQuery {
            signals: vec![],
            limit: None,
            descending: false,
            ..query
        };
        assert_eq!(
            range(&table(), &all),
            "SELECT * FROM \"iot-dev\".\"telemetry\" WHERE device_uid = 'd''1' \
             AND time BETWEEN from_milliseconds(1000) AND from_milliseconds(5000) ORDER BY time ASC"
        );
    }

    #[test]
    fn latest_takes_each_signals_own_newest_value() {
        assert_eq!(
            latest(&table(), "d1", &["t".into()], 30),
            "SELECT max_by(\"t\", CASE WHEN \"t\" IS NOT NULL THEN time END) AS v0, \
             max(CASE WHEN \"t\" IS NOT NULL THEN time END) AS t0 \
             FROM \"iot-dev\".\"telemetry\" WHERE device_uid = 'd1' AND time >= ago(30d)"
        );
    }

    #[test]
    fn aggregates_bin_on_the_server() {
        let query = AggregateQuery {
            device_uid: "d1".into(),
            signal: "t".into(),
            window: Window {
                start: 0,
                end: 10_000,
            },
            bucket_ms: 2_000,
        };
        let sql = aggregate(&table(), &query);
        assert!(
            sql.starts_with("SELECT bin(time, 2000ms) AS bucket, count(*) AS n"),
            "{sql}"
        );
        assert!(sql.contains("try_cast(\"t\" AS DOUBLE)"), "{sql}");
        assert!(
            sql.ends_with("GROUP BY bin(time, 2000ms) ORDER BY bucket ASC"),
            "{sql}"
        );
    }

    /// The Grafana dashboards in `infra/grafana/timestream` query this table's shape: the
    /// reading measure, the dimensions it has, signals only as quoted columns, and a time filter
    /// so no panel scans the whole table.
    #[test]
    fn the_timestream_dashboards_query_the_tables_shape() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/grafana/timestream"
        );
        let mut queries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let dashboard: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(entry?.path())?)?;
            let variables = dashboard["templating"]["list"]
                .as_array()
                .ok_or("no templating")?;
            let panels = dashboard["panels"].as_array().ok_or("no panels")?;
            queries.extend(
                variables
                    .iter()
                    .filter_map(|v| v["query"].as_str())
                    .filter(|q| q.starts_with("SELECT"))
                    .map(str::to_owned),
            );
            for panel in panels {
                for target in panel["targets"]
                    .as_array()
                    .ok_or("a panel without targets")?
                {
                    queries.push(
                        target["rawQuery"]
                            .as_str()
                            .ok_or("a target without rawQuery")?
                            .to_owned(),
                    );
                }
            }
        }
        assert!(queries.len() >= 8, "{queries:?}");
        let measure = format!("measure_name = {}", literal(MEASURE_NAME));
        for sql in &queries {
            assert!(sql.contains("FROM \"$__database\".\"$__table\""), "{sql}");
            assert!(sql.contains(&measure), "{sql}");
            assert!(
                sql.contains("$__timeFilter") || sql.contains("ago("),
                "no time filter: {sql}"
            );
            // Quoted identifiers: the table's macros or the signal variable.
            for (n, quoted) in sql.split('"').enumerate() {
                if n % 2 == 1 {
                    assert!(
                        ["$__database", "$__table", "${signal}"].contains(&quoted),
                        "{quoted} in {sql}"
                    );
                }
            }
            // Compared columns: dimensions only.
            for (at, _) in sql.match_indices(" = ") {
                let column = sql[..at].rsplit(' ').next().unwrap_or_default();
                assert!(
                    RESERVED_COLUMNS.contains(&column),
                    "{column} compared in {sql}"
                );
            }
        }
        Ok(())
    }
}
