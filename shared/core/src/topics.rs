//! The MQTT topics of a device, and which of them a device may use: as the AWS IoT device
//! policy grants, a device publishes and subscribes only under its own `things/{uid}/...` and
//! `$aws/things/{uid}/...` (its shadow and its jobs). The embedded broker and the generated
//! Mosquitto ACL apply the same rule.

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
