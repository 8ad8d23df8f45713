//! Time on the platform is an `i64` count of **milliseconds since the Unix epoch, UTC**.
//!
//! Milliseconds keep samples of a 10 Hz sensor apart, fit Timestream's and DynamoDB's number types
//! without loss, and are what JavaScript clients use natively.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// Formats a timestamp as RFC 3339 with millisecond precision, e.g. `2026-11-22T08:00:00.000Z`.
/// Out-of-range values fall back to the raw number so formatting never fails.
pub fn to_rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Parses an RFC 3339 timestamp into milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Converts milliseconds into a chrono UTC time, if representable.
pub fn to_datetime(ms: Millis) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_milliseconds() {
        let ms = 1_795_000_000_123;
        let text = to_rfc3339(ms);
        assert_eq!(text, "2026-11-18T11:06:40.123Z");
        assert_eq!(parse_rfc3339(&text), Some(ms));
    }

    #[test]
    fn unparsable_time_is_none() {
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
