//! The MQTT topics of a device, named once for every broker and adapter, and which of them a
//! device may use: as the AWS IoT device policy grants, a device publishes and subscribes only
//! under its own `things/{uid}/...` and `$aws/things/{uid}/...` (its shadow and its jobs). The
//! embedded broker and the generated Mosquitto ACL apply the same rule.
//!
//! | topic | who publishes | what |
//! |---|---|---|
//! | `things/{uid}/up/{channel}` | the device | telemetry (`channel` is usually `telemetry`) |
//! | `things/{uid}/down/command` | the platform | a command |
//! | `$aws/things/{uid}/shadow/update` | the device | its reported state |
//! | `$aws/things/{uid}/shadow/update/delta` | the platform (IoT Core) | desired state not yet reported |
//! | `$aws/things/{uid}/jobs/get`, `.../start-next`, `.../{jobId}/get`, `.../{jobId}/update` | the device | the AWS IoT Jobs MQTT API |
//! | the same with `/accepted` or `/rejected`, and `.../jobs/notify-next` | the platform (IoT Core) | its answers |

/// Every device's uplink: what ingest takes (the IoT Core rule selects the same).
pub const TELEMETRY_FILTER: &str = "things/+/up/#";

/// Where devices report their state, as on AWS IoT Core: `{"state": {"reported": {...}}}`.
pub const SHADOW_UPDATE_FILTER: &str = "$aws/things/+/shadow/update";

/// A device's uplink on `channel`.
pub fn uplink_topic(uid: &str, channel: &str) -> String {
    format!("things/{uid}/up/{channel}")
}

/// Where the platform sends a device its commands.
pub fn command_topic(uid: &str) -> String {
    format!("things/{uid}/down/command")
}

/// Where a device hears the desired state it has not reported yet.
pub fn shadow_delta_topic(uid: &str) -> String {
    format!("$aws/things/{uid}/shadow/update/delta")
}

/// The device uid in `things/{uid}/up/...`.
pub fn uplink_device(topic: &str) -> Option<&str> {
    let mut parts = topic.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("things"), Some(uid), Some("up")) if !uid.is_empty() => Some(uid),
        _ => None,
    }
}

/// The device of a shadow update topic.
pub fn shadow_update_device(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("$aws/things/")?
        .strip_suffix("/shadow/update")
        .filter(|uid| !uid.is_empty() && !uid.contains('/'))
}

/// The requests of the AWS IoT Jobs MQTT API, which the platform answers itself where it
/// runs jobs (one machine); on AWS, IoT Core answers them.
pub const JOBS_REQUEST_FILTERS: [&str; 4] = [
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
];

/// A device's request of the jobs API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobsRequest<'a> {
    /// `jobs/get`: its pending executions.
    Pending,
    /// `jobs/start-next`: start (or resume) the next pending execution.
    StartNext,
    /// `jobs/{jobId}/get` (`$next`: the next pending one).
    Describe(&'a str),
    /// `jobs/{jobId}/update`.
    Update(&'a str),
}

/// The device and request of a jobs API topic; `None` for any other topic, replies included.
pub fn jobs_request(topic: &str) -> Option<(&str, JobsRequest<'_>)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (uid, rest) = rest.split_once("/jobs/")?;
    if uid.is_empty() || uid.contains('/') {
        return None;
    }
    let request = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["get"] => JobsRequest::Pending,
        ["start-next"] => JobsRequest::StartNext,
        [job, "get"] if !job.is_empty() => JobsRequest::Describe(job),
        [job, "update"] if !job.is_empty() => JobsRequest::Update(job),
        _ => return None,
    };
    Some((uid, request))
}

/// Where the answer to a jobs request goes: the request topic with `/accepted` or
/// `/rejected`.
pub fn jobs_reply_topic(request_topic: &str, accepted: bool) -> String {
    let outcome = if accepted { "accepted" } else { "rejected" };
    format!("{request_topic}/{outcome}")
}

/// Where a device hears that its next pending job execution changed.
pub fn jobs_notify_next_topic(uid: &str) -> String {
    format!("$aws/things/{uid}/jobs/notify-next")
}

/// Whether `uid` may publish to `topic`.
pub fn device_may_publish(uid: &str, topic: &str) -> bool {
    owned_rest(uid, topic).is_some_and(|rest| !rest.contains(['+', '#']))
}

/// Whether `uid` may subscribe to `filter`: wildcards only below its own levels.
pub fn device_may_subscribe(uid: &str, filter: &str) -> bool {
    owned_rest(uid, filter).is_some()
}

/// What follows `things/{uid}/` or `$aws/things/{uid}/` (non-empty), when the levels up to
/// the uid name this device literally.
fn owned_rest<'a>(uid: &str, topic: &'a str) -> Option<&'a str> {
    let rest = topic
        .strip_prefix("things/")
        .or_else(|| topic.strip_prefix("$aws/things/"))?;
    let rest = rest.strip_prefix(uid)?.strip_prefix('/')?;
    (!rest.is_empty()).then_some(rest)
}

/// A device credential as the API issues it, `{uid}.{secret}`, split at the last `.`: secrets
/// have no `.`, uids may.
pub fn split_device_token(token: &str) -> Option<(&str, &str)> {
    token
        .trim()
        .rsplit_once('.')
        .filter(|(uid, secret)| !uid.is_empty() && !secret.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_uid_comes_from_the_topic() {
        assert_eq!(uplink_device("things/dev-1/up/telemetry"), Some("dev-1"));
        assert_eq!(uplink_device("things/dev-1/up"), Some("dev-1"));
        assert_eq!(uplink_device("things//up/x"), None);
        assert_eq!(uplink_device("things/dev-1/down/cmd"), None);
        assert_eq!(uplink_device("other"), None);
    }

    #[test]
    fn topics_are_made_as_they_are_read() {
        assert_eq!(
            uplink_device(&uplink_topic("dev-1", "telemetry")),
            Some("dev-1")
        );
        assert_eq!(uplink_device(&command_topic("dev-1")), None);
        assert_eq!(
            shadow_update_device("$aws/things/dev-1/shadow/update"),
            Some("dev-1")
        );
        assert_eq!(shadow_update_device(&shadow_delta_topic("dev-1")), None);
        assert_eq!(shadow_update_device("$aws/things/a/b/shadow/update"), None);
    }

    #[test]
    fn jobs_requests_are_told_from_their_replies() {
        use JobsRequest as R;
        for (topic, request) in [
            ("$aws/things/d-1/jobs/get", R::Pending),
            ("$aws/things/d-1/jobs/start-next", R::StartNext),
            ("$aws/things/d-1/jobs/j-7/get", R::Describe("j-7")),
            ("$aws/things/d-1/jobs/$next/get", R::Describe("$next")),
            ("$aws/things/d-1/jobs/j-7/update", R::Update("j-7")),
        ] {
            assert_eq!(jobs_request(topic), Some(("d-1", request)), "{topic}");
        }
        for topic in [
            "$aws/things/d-1/jobs/get/accepted",
            "$aws/things/d-1/jobs/j-7/update/rejected",
            "$aws/things/d-1/jobs/notify-next",
            "$aws/things/d-1/shadow/update",
            "$aws/things//jobs/get",
        ] {
            assert_eq!(jobs_request(topic), None, "{topic}");
        }
        assert_eq!(
            jobs_reply_topic("$aws/things/d-1/jobs/j-7/update", false),
            "$aws/things/d-1/jobs/j-7/update/rejected"
        );
    }

    #[test]
    fn a_device_uses_its_own_topics_only() {
        for topic in [
            "things/a-1/up/telemetry",
            "things/a-1/down/command",
            "$aws/things/a-1/shadow/update",
            "$aws/things/a-1/jobs/notify-next",
        ] {
            assert!(device_may_publish("a-1", topic), "{topic}");
            assert!(device_may_subscribe("a-1", topic), "{topic}");
        }
        for topic in [
            "things/a-2/up/telemetry",
            "things/a-1",
            "things/a-1/",
            "things/a-10/up/telemetry",
            "$aws/things/a-2/shadow/update",
            "other/a-1/up",
            "things/+/up/telemetry",
        ] {
            assert!(!device_may_publish("a-1", topic), "{topic}");
        }
        assert!(device_may_subscribe("a-1", "things/a-1/down/#"));
        assert!(device_may_subscribe(
            "a-1",
            "$aws/things/a-1/shadow/+/delta"
        ));
        for filter in [
            "#",
            "things/#",
            "things/+/down/#",
            "+/a-1/down/#",
            "$aws/things/+/shadow/#",
        ] {
            assert!(!device_may_subscribe("a-1", filter), "{filter}");
        }
        assert!(!device_may_publish("a-1", "things/a-1/up/#"));
    }

    #[test]
    fn tokens_split_at_the_last_dot_so_uids_may_have_dots() {
        assert_eq!(
            split_device_token("air.1.c2VjcmV0"),
            Some(("air.1", "c2VjcmV0"))
        );
        assert_eq!(split_device_token("air-1.s"), Some(("air-1", "s")));
        assert_eq!(split_device_token("no-dot"), None);
        assert_eq!(split_device_token(".s"), None);
        assert_eq!(split_device_token("u."), None);
    }
}
