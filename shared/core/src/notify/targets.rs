//! Which SNS destinations a tenant's channels may name: only those the platform's naming rule
//! gives that tenant, so no channel can point at the alarm-events topic or another tenant's
//! topic, and the notify function's IAM grant covers exactly these names.
//!
//! - e-mail topics: `{arn}{prefix}email-{tenant}-{name}`, `name` of letters, digits and `_`;
//! - push endpoints: `{arn}endpoint/{platform}/{prefix}push-{tenant}-{name}/{id}`.
//!
//! `name` has no `-`, so a topic name splits at its last `-` into one tenant and one name:
//! tenant `a` cannot take tenant `a-b`'s topic `...email-a-b-ops`.

use thiserror::Error;

use super::ChannelKind;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelTargets {
    /// `arn:{partition}:sns:{region}:{account}:`
    pub sns_arn_prefix: String,
    /// The stack's resource name prefix, e.g. `iot-dev-`.
    pub name_prefix: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error(
        "must be an e-mail topic of this tenant: {expected}{{name}}, where name has letters, digits and _ only"
    )]
    EmailTopic { expected: String },
    #[error(
        "must be an endpoint of one of this tenant's push applications: {expected}{{name}}/{{id}}"
    )]
    PushEndpoint { expected: String },
    #[error("tenant {0:?} cannot have SNS channels: SNS names allow letters, digits, - and _ only")]
    TenantName(String),
}

impl TargetError {
    /// The JSON pointer of the refused field in a channel.
    pub fn pointer(&self) -> &'static str {
        match self {
            TargetError::EmailTopic { .. } | TargetError::TenantName(_) => "/kind/topic_arn",
            TargetError::PushEndpoint { .. } => "/kind/endpoint_arns",
        }
    }
}

fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ChannelTargets {
    /// What one machine uses: SNS is only printed there, but channels follow the same rule.
    pub fn local() -> Self {
        Self {
            sns_arn_prefix: "arn:aws:sns:local:000000000000:".into(),
            name_prefix: "iot-local-".into(),
        }
    }

    /// The start of every e-mail topic ARN of `tenant`.
    pub fn email_topic_prefix(&self, tenant: &str) -> String {
        format!("{}{}email-{tenant}-", self.sns_arn_prefix, self.name_prefix)
    }

    /// Refuses SNS destinations that are not the tenant's own.
    pub fn check(&self, tenant: &str, kind: &ChannelKind) -> Result<(), TargetError> {
        let sns_safe = |t: &str| {
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match kind {
            ChannelKind::Email { topic_arn } => {
                if !sns_safe(tenant) {
                    return Err(TargetError::TenantName(tenant.to_owned()));
                }
                let expected = self.email_topic_prefix(tenant);
                match topic_arn.strip_prefix(&expected) {
                    Some(name) if is_name(name) => Ok(()),
                    _ => Err(TargetError::EmailTopic { expected }),
                }
            }
            ChannelKind::Push { endpoint_arns } => {
                if !sns_safe(tenant) {
                    return Err(TargetError::TenantName(tenant.to_owned()));
                }
                let app_prefix = format!("{}push-{tenant}-", self.name_prefix);
                let expected = format!("{}endpoint/{{platform}}/{app_prefix}", self.sns_arn_prefix);
                let ours = |arn: &str| -> bool {
                    let Some(rest) = arn.strip_prefix(&self.sns_arn_prefix) else {
                        return false;
                    };
                    let parts: Vec<&str> = rest.split('/').collect();
                    matches!(parts.as_slice(), ["endpoint", platform, app, id]
                        if !platform.is_empty() && !id.is_empty()
                            && app.strip_prefix(&app_prefix).is_some_and(is_name))
                };
                if endpoint_arns.iter().all(|arn| ours(arn)) {
                    Ok(())
                } else {
                    Err(TargetError::PushEndpoint { expected })
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> ChannelTargets {
        ChannelTargets {
            sns_arn_prefix: "arn:aws:sns:eu-west-1:123456789012:".into(),
            name_prefix: "iot-dev-".into(),
        }
    }

    fn email(arn: &str) -> ChannelKind {
        ChannelKind::Email {
            topic_arn: arn.into(),
        }
    }

    #[test]
    fn an_email_channel_names_only_its_tenants_topics() {
        let t = targets();
        assert_eq!(
            t.check(
                "acme",
                &email("arn:aws:sns:eu-west-1:123456789012:iot-dev-email-acme-ops")
            ),
            Ok(())
        );
        for refused in [
            // The alarm-events topic: publishing there would forge alarm events.
            "arn:aws:sns:eu-west-1:123456789012:iot-dev-alarm-events",
            // Another tenant's, another account's, another stage's.
            "arn:aws:sns:eu-west-1:123456789012:iot-dev-email-rival-ops",
            "arn:aws:sns:eu-west-1:999999999999:iot-dev-email-acme-ops",
            "arn:aws:sns:eu-west-1:123456789012:iot-prod-email-acme-ops",
            "arn:aws:sns:eu-west-1:123456789012:iot-dev-email-acme-",
        ] {
            assert!(t.check("acme", &email(refused)).is_err(), "{refused}");
        }
        // Tenant `a` cannot take tenant `a-b`'s topic.
        let of_a_b = email("arn:aws:sns:eu-west-1:123456789012:iot-dev-email-a-b-ops");
        assert_eq!(t.check("a-b", &of_a_b), Ok(()));
        assert!(t.check("a", &of_a_b).is_err());
        assert!(matches!(
            t.check("a.b", &of_a_b),
            Err(TargetError::TenantName(_))
        ));
    }

    #[test]
    fn a_push_channel_names_only_endpoints_of_its_tenants_applications() {
        let t = targets();
        let push = |arns: &[&str]| ChannelKind::Push {
            endpoint_arns: arns.iter().map(|a| a.to_string()).collect(),
        };
        let ours = "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/iot-dev-push-acme-app/5e3e9847";
        assert_eq!(t.check("acme", &push(&[ours])), Ok(()));
        for refused in [
            "arn:aws:sns:eu-west-1:123456789012:iot-dev-alarm-events",
            "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/iot-dev-push-rival-app/5e3e9847",
            "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/other-app/5e3e9847",
            "arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/iot-dev-push-acme-app",
        ] {
            let refused_kind = push(&[ours, refused]);
            assert!(t.check("acme", &refused_kind).is_err(), "{refused}");
        }
    }
}
