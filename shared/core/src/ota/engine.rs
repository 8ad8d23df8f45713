//! The rules AWS IoT Jobs applies to a job's executions, for the platform that runs them
//! itself (one machine): who is told of the job now, who timed out, whether an abort rule
//! is broken, whether the rollout is over. Pure: the caller applies the [`Plan`].

use super::{Execution, ExecutionStatus, Rollout, RolloutCounts, RolloutStatus};
use crate::time::{MINUTE, Millis};

/// What to do to a rollout now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Its start time has come.
    pub start: bool,
    /// Devices to tell of the job now, within the rate.
    pub release: Vec<String>,
    /// Devices whose execution has been in progress for longer than the timeout.
    pub time_out: Vec<String>,
    /// An abort rule is broken (counting the timeouts above): cancel what has not started.
    pub abort: Option<String>,
    /// Every execution has ended.
    pub complete: bool,
}

pub fn plan(rollout: &Rollout, executions: &[Execution], now: Millis) -> Plan {
    let mut plan = Plan::default();
    if rollout.status.is_over() || rollout.start_at.is_some_and(|at| at > now) {
        return plan;
    }
    plan.start = rollout.status == RolloutStatus::Scheduled;
    if let Some(minutes) = rollout.in_progress_timeout_minutes {
        let limit = Millis::from(minutes) * MINUTE;
        plan.time_out = executions
            .iter()
            .filter(|e| e.status == ExecutionStatus::InProgress)
            .filter(|e| e.started_at.is_some_and(|at| at + limit <= now))
            .map(|e| e.device_uid.clone())
            .collect();
    }
    let statuses: Vec<ExecutionStatus> = executions
        .iter()
        .map(|e| {
            if plan.time_out.contains(&e.device_uid) {
                ExecutionStatus::TimedOut
            } else {
                e.status
            }
        })
        .collect();
    let counts = RolloutCounts::of(&statuses);
    plan.abort = rollout.broken_abort_rule(&counts);
    plan.complete = plan.abort.is_none() && statuses.iter().all(|s| s.is_terminal());
    if plan.abort.is_some() || plan.complete {
        return plan;
    }
    let told_this_minute = executions
        .iter()
        .filter(|e| e.released_at.is_some_and(|at| at > now - MINUTE))
        .count();
    let allowance =
        (rollout.rate_per_minute(counts.succeeded) as usize).saturating_sub(told_this_minute);
    plan.release = executions
        .iter()
        .filter(|e| e.status == ExecutionStatus::Queued && e.released_at.is_none())
        .take(allowance)
        .map(|e| e.device_uid.clone())
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ota::rollout::tests::rollout;
    use crate::ota::{AbortRule, FailureKind};
    use std::collections::BTreeMap;

    fn executions(n: usize) -> Vec<Execution> {
        (0..n)
            .map(|i| Execution::queued("r1", "acme", &format!("d{i:02}"), 0))
            .collect()
    }

    fn release(list: &mut [Execution], uids: &[String], at: Millis) {
        for e in list.iter_mut().filter(|e| uids.contains(&e.device_uid)) {
            e.released_at = Some(at);
        }
    }

    #[test]
    fn devices_are_told_at_the_rate_minute_by_minute() {
        let mut r = rollout();
        r.rate.max_per_minute = 5;
        let mut list = executions(12);
        let first = plan(&r, &list, 1_000);
        assert_eq!(first.release, ["d00", "d01", "d02", "d03", "d04"]);
        release(&mut list, &first.release, 1_000);
        assert_eq!(plan(&r, &list, 30_000).release, Vec::<String>::new());
        let second = plan(&r, &list, 61_000);
        assert_eq!(second.release, ["d05", "d06", "d07", "d08", "d09"]);
    }

    #[test]
    fn nothing_happens_before_the_start_time() {
        let mut r = rollout();
        r.status = RolloutStatus::Scheduled;
        r.start_at = Some(10 * MINUTE);
        assert_eq!(plan(&r, &executions(3), MINUTE), Plan::default());
        let due = plan(&r, &executions(3), 10 * MINUTE);
        assert!(due.start);
        assert_eq!(due.release.len(), 3);
    }

    #[test]
    fn a_stalled_execution_times_out_and_counts_toward_an_abort() {
        let mut r = rollout();
        r.in_progress_timeout_minutes = Some(2);
        r.abort.push(AbortRule {
            failure: FailureKind::TimedOut,
            threshold_percent: 50.0,
            min_executions: 2,
        });
        let mut list = executions(3);
        list[0].record(ExecutionStatus::InProgress, BTreeMap::new(), 0);
        list[1].record(ExecutionStatus::Succeeded, BTreeMap::new(), 0);
        let early = plan(&r, &list, MINUTE);
        assert_eq!((early.time_out.len(), early.abort.is_some()), (0, false));
        let late = plan(&r, &list, 2 * MINUTE);
        assert_eq!(late.time_out, ["d00"]);
        assert!(late.abort.is_some(), "1 of 2 finished timed out");
        assert!(
            late.release.is_empty(),
            "an aborted rollout tells no one more"
        );
    }

    #[test]
    fn a_rollout_completes_when_every_execution_has_ended() {
        let r = rollout();
        let mut list = executions(2);
        list[0].record(ExecutionStatus::Succeeded, BTreeMap::new(), 0);
        assert!(!plan(&r, &list, 0).complete);
        list[1].record(ExecutionStatus::Rejected, BTreeMap::new(), 0);
        assert!(plan(&r, &list, 0).complete);
    }
}
