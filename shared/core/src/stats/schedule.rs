//! CRON schedules, in UTC.
//!
//! Two spellings are accepted:
//! - the classic five fields `minute hour day-of-month month day-of-week` (`0 * * * *`, Sunday = 0),
//!   which is what `iot-local` runs and what most people know;
//! - the EventBridge form `cron(minute hour day-of-month month day-of-week year)`
//!   (`cron(0 8 ? * MON-FRI *)`, Sunday = 1), as written in AWS consoles and templates.
//!
//! [`Schedule::to_eventbridge`] turns either into the EventBridge form the AWS scheduler needs.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use thiserror::Error;

use crate::time::Millis;

#[derive(Clone, Debug, Error, PartialEq)]
pub enum ScheduleError {
    #[error("invalid CRON expression {expression:?}: {reason}")]
    Invalid { expression: String, reason: String },
}

#[derive(Clone, Debug)]
pub struct Schedule {
    expression: String,
    eventbridge: bool,
    cron: Cron,
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let invalid = |reason: String| ScheduleError::Invalid {
            expression: expression.to_owned(),
            reason,
        };
        let trimmed = expression.trim();
        let (fields, eventbridge) = match trimmed
            .strip_prefix("cron(")
            .and_then(|s| s.strip_suffix(')'))
        {
            Some(inner) => (inner.trim(), true),
            None => (trimmed, false),
        };
        let count = fields.split_whitespace().count();
        let expected = if eventbridge { 6 } else { 5 };
        if count != expected {
            return Err(invalid(if eventbridge {
                format!(
                    "cron(...) takes 6 fields (minute hour day-of-month month day-of-week year), got {count}"
                )
            } else {
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), got {count}"
                )
            }));
        }
        let parsed = if eventbridge {
            // croner reads the EventBridge form as seconds + six fields, with Sunday = 1.
            CronParser::builder()
                .seconds(Seconds::Required)
                .year(Year::Required)
                .alternative_weekdays(true)
                .build()
                .parse(&format!("0 {fields}"))
        } else {
            CronParser::builder()
                .seconds(Seconds::Disallowed)
                .year(Year::Disallowed)
                .build()
                .parse(fields)
        };
        let cron = parsed.map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            expression: trimmed.to_owned(),
            eventbridge,
            cron,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first fire time strictly after `after`, or `None` if the schedule never fires again.
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let after: DateTime<Utc> = crate::time::to_datetime(after)?;
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The next `count` fire times after `after`.
    pub fn upcoming(&self, after: Millis, count: usize) -> Vec<Millis> {
        let mut times = Vec::with_capacity(count);
        let mut cursor = after;
        while times.len() < count {
            match self.next_after(cursor) {
                Some(next) => {
                    times.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        times
    }

    /// The expression for EventBridge Scheduler: `cron(m h dom month dow year)`, with `?` in
    /// one of the day fields and Sunday = 1.
    pub fn to_eventbridge(&self) -> Result<String, ScheduleError> {
        if self.eventbridge {
            return Ok(self.expression.clone());
        }
        let invalid = |reason: &str| ScheduleError::Invalid {
            expression: self.expression.clone(),
            reason: reason.to_owned(),
        };
        let f: Vec<&str> = self.expression.split_whitespace().collect();
        let (dom, dow) = match (f[2], f[4]) {
            (dom, "*" | "?") => (dom.to_owned(), "?".to_owned()),
            ("*" | "?", dow) => ("?".to_owned(), shift_weekdays(dow).ok_or_else(|| {
                invalid("EventBridge cannot take a stepped numeric day-of-week; use names (MON-FRI)")
            })?),
            _ => {
                return Err(invalid(
                    "EventBridge cannot combine a day-of-month and a day-of-week; set one of them to *",
                ));
            }
        };
        Ok(format!(
            "cron({} {} {} {} {} *)",
            f[0], f[1], dom, f[3], dow
        ))
    }
}

/// POSIX weekday numbers (Sunday = 0 or 7) to EventBridge ones (Sunday = 1); names pass through.
fn shift_weekdays(field: &str) -> Option<String> {
    if field.contains('/') {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            let n: u32 = digits.parse().unwrap_or(0);
            out.push_str(&((n % 7) + 1).to_string());
            digits.clear();
        }
    };
    for c in field.chars() {
        if c.is_ascii_digit() && !out.ends_with('#') {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR, MINUTE, parse_rfc3339};

    fn at(text: &str) -> Millis {
        parse_rfc3339(text).unwrap_or_default()
    }

    #[test]
    fn next_fire_times_of_a_five_field_expression() -> Result<(), ScheduleError> {
        let every_quarter = Schedule::parse("*/15 * * * *")?;
        let start = at("2026-11-22T10:07:30Z");
        assert_eq!(
            every_quarter.next_after(start),
            Some(at("2026-11-22T10:15:00Z"))
        );
        assert_eq!(
            every_quarter.upcoming(start, 3),
            [
                at("2026-11-22T10:15:00Z"),
                at("2026-11-22T10:30:00Z"),
                at("2026-11-22T10:45:00Z")
            ]
        );
        // Strictly after: a fire time is not repeated.
        assert_eq!(
            every_quarter.next_after(at("2026-11-22T10:15:00Z")),
            Some(at("2026-11-22T10:30:00Z"))
        );
        Ok(())
    }

    #[test]
    fn weekday_schedules_in_both_spellings_agree() -> Result<(), ScheduleError> {
        // 2026-11-22 is a Sunday.
        let posix = Schedule::parse("0 8 * * 1-5")?;
        let aws = Schedule::parse("cron(0 8 ? * 2-6 *)")?;
        let named = Schedule::parse("cron(0 8 ? * MON-FRI *)")?;
        let sunday = at("2026-11-22T12:00:00Z");
        let monday_8 = at("2026-11-23T08:00:00Z");
        assert_eq!(posix.next_after(sunday), Some(monday_8));
        assert_eq!(aws.next_after(sunday), Some(monday_8));
        assert_eq!(named.next_after(sunday), Some(monday_8));
        assert_eq!(
            posix.upcoming(sunday, 5).last().copied(),
            Some(monday_8 + 4 * 24 * HOUR)
        );
        Ok(())
    }

    #[test]
    fn converts_to_eventbridge() -> Result<(), ScheduleError> {
        assert_eq!(
            Schedule::parse("*/5 * * * *")?.to_eventbridge()?,
            "cron(*/5 * * * ? *)"
        );
        assert_eq!(
            Schedule::parse("0 8 * * 1-5")?.to_eventbridge()?,
            "cron(0 8 ? * 2-6 *)"
        );
        assert_eq!(
            Schedule::parse("0 0 * * 0,6")?.to_eventbridge()?,
            "cron(0 0 ? * 1,7 *)"
        );
        assert_eq!(
            Schedule::parse("30 2 1 * *")?.to_eventbridge()?,
            "cron(30 2 1 * ? *)"
        );
        assert_eq!(
            Schedule::parse("cron(0 8 ? * MON *)")?.to_eventbridge()?,
            "cron(0 8 ? * MON *)"
        );
        assert!(Schedule::parse("0 0 1 * 1")?.to_eventbridge().is_err());
        Ok(())
    }

    #[test]
    fn invalid_expressions_say_what_is_wrong() {
        for (expression, expected) in [
            ("", "expected 5 fields"),
            ("* * * *", "expected 5 fields"),
            ("61 * * * *", "invalid CRON expression \"61 * * * *\""),
            ("* * * * * *", "expected 5 fields"),
            ("cron(0 8 * * *)", "cron(...) takes 6 fields"),
            ("every day", "expected 5 fields"),
            ("a b c d e", "invalid CRON expression"),
        ] {
            let err = Schedule::parse(expression).unwrap_err().to_string();
            assert!(err.contains(expected), "{expression}: {err}");
        }
    }

    #[test]
    fn every_minute_is_sixty_seconds_apart() -> Result<(), ScheduleError> {
        let times = Schedule::parse("* * * * *")?.upcoming(at("2026-01-01T00:00:00Z"), 3);
        assert_eq!(times[1] - times[0], MINUTE);
        Ok(())
    }
}
