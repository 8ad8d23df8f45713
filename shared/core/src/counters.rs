//! What the platform counts, named once: the use cases count through the `metrics` facade, and
//! each binary exports it its own way (Prometheus at `/metrics` on one machine, CloudWatch EMF
//! on Lambda), so a dashboard reads the same names from both.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `ingest_messages_parsed_total` | counter | messages stored |
//! | `ingest_messages_failed_total` | counter | messages kept as dead letters |
//! | `ingest_errors_total` | counter | messages not committed (infrastructure), to be redelivered |
//! | `ingest_latency_seconds` | histogram | one message through ingest |
//! | `ingest_records_total`, `ingest_rejected_records_total`, `ingest_dropped_values_total` | counter | records and values |
//! | `ingest_dead_letters_total{kind}` | counter | dead letters by reason |
//! | `alarm_transitions_total{kind}`, `alarm_rule_failures_total` | counter | alarm evaluation |
//! | `alarm_latency_seconds` | histogram | one alarm request evaluated and published |
//! | `notifications_sent_total`, `notifications_failed_total`, `notify_unverified_total` | counter | deliveries |
//! | `notify_latency_seconds` | histogram | one alarm event notified |
//! | `stats_failures_total` | counter | statistics runs that failed |

use std::time::Duration;

pub const INGEST_MESSAGES_PARSED: &str = "ingest_messages_parsed_total";
pub const INGEST_MESSAGES_FAILED: &str = "ingest_messages_failed_total";
pub const INGEST_ERRORS: &str = "ingest_errors_total";
pub const INGEST_LATENCY: &str = "ingest_latency_seconds";
pub const INGEST_RECORDS: &str = "ingest_records_total";
pub const INGEST_REJECTED_RECORDS: &str = "ingest_rejected_records_total";
pub const INGEST_DROPPED_VALUES: &str = "ingest_dropped_values_total";
pub const INGEST_DEAD_LETTERS: &str = "ingest_dead_letters_total";
pub const ALARM_TRANSITIONS: &str = "alarm_transitions_total";
pub const ALARM_RULE_FAILURES: &str = "alarm_rule_failures_total";
pub const ALARM_LATENCY: &str = "alarm_latency_seconds";
pub const NOTIFICATIONS_SENT: &str = "notifications_sent_total";
pub const NOTIFICATIONS_FAILED: &str = "notifications_failed_total";
pub const NOTIFY_UNVERIFIED: &str = "notify_unverified_total";
pub const NOTIFY_LATENCY: &str = "notify_latency_seconds";
pub const STATS_FAILURES: &str = "stats_failures_total";

/// Every name above, for checks of what dashboards may name.
pub const ALL: &[&str] = &[
    INGEST_MESSAGES_PARSED,
    INGEST_MESSAGES_FAILED,
    INGEST_ERRORS,
    INGEST_LATENCY,
    INGEST_RECORDS,
    INGEST_REJECTED_RECORDS,
    INGEST_DROPPED_VALUES,
    INGEST_DEAD_LETTERS,
    ALARM_TRANSITIONS,
    ALARM_RULE_FAILURES,
    ALARM_LATENCY,
    NOTIFICATIONS_SENT,
    NOTIFICATIONS_FAILED,
    NOTIFY_UNVERIFIED,
    NOTIFY_LATENCY,
    STATS_FAILURES,
];

/// Records how long one unit of work took.
pub fn record_latency(name: &'static str, took: Duration) {
    metrics::histogram!(name).record(took.as_secs_f64());
}
