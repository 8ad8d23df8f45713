//! Notification channels, routes from alarms to channels, and message rendering.
//!
//! An alarm transition is matched against the tenant's routes; each matching route renders its
//! template with the transition's variables and hands a [`Delivery`] to the notifier port.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

use crate::alarm::{AlarmTransition, Level, TransitionKind};
use crate::model::Device;
use crate::template::{Escaping, Template, TemplateError};
use crate::time::to_rfc3339;

mod targets;

pub use targets::{ChannelTargets, TargetError};

/// Variables an alarm template may use.
pub const ALARM_VARIABLES: &[&str] = &[
    "alarm_id",
    "event",
    "level",
    "previous_level",
    "tenant_id",
    "device_uid",
    "device_name",
    "identification_code",
    "rule_id",
    "rule_name",
    "signal",
    "value",
    "time",
    "time_ms",
    "by",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub name: String,
    pub kind: ChannelKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelKind {
    /// SNS e-mail: published to a topic the addresses subscribe to.
    Email { topic_arn: String },
    /// SNS SMS, sent to each number.
    Sms { phone_numbers: Vec<String> },
    /// SNS mobile push, published to each platform endpoint.
    Push { endpoint_arns: Vec<String> },
    Webhook {
        flavor: WebhookFlavor,
        url: String,
        /// Name of the secret holding the signing key (DingTalk, Feishu), never the key itself.
        #[serde(default)]
        secret_ref: Option<String>,
    },
    /// Messages kept in the platform for these users to read in the apps.
    InSystem { user_ids: Vec<String> },
}

impl ChannelKind {
    /// Generic webhooks take a JSON template, so values are JSON-escaped; everything else is
    /// plain text (webhook flavors wrap it in JSON themselves).
    pub fn escaping(&self) -> Escaping {
        match self {
            ChannelKind::Webhook {
                flavor: WebhookFlavor::Generic,
                ..
            } => Escaping::Json,
            _ => Escaping::Plain,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookFlavor {
    Feishu,
    DingTalk,
    WeCom,
    Slack,
    /// The body is the rendered template, which must be JSON.
    Generic,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationTemplate {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub name: String,
    #[serde(default)]
    pub subject: String,
    pub body: String,
}

/// Sends alarm transitions of some rules, at or above a level, through a channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationRoute {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$"))]
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    /// Empty: every rule of the tenant.
    #[serde(default)]
    pub rule_ids: Vec<String>,
    #[serde(default = "lowest")]
    pub min_level: Level,
    /// Empty: raised, escalated and cleared (the ones people act on).
    #[serde(default)]
    pub events: Vec<TransitionKind>,
    pub template_id: String,
    pub channel_id: String,
}

fn lowest() -> Level {
    Level::Info
}

impl NotificationRoute {
    pub fn matches(&self, transition: &AlarmTransition) -> bool {
        let rule = self.rule_ids.is_empty() || self.rule_ids.contains(&transition.rule_id);
        let event = if self.events.is_empty() {
            matches!(
                transition.kind,
                TransitionKind::Raised | TransitionKind::Escalated | TransitionKind::Cleared
            )
        } else {
            self.events.contains(&transition.kind)
        };
        // A clear is judged by the level that was active.
        let level = transition
            .level
            .or(transition.previous_level)
            .unwrap_or(Level::Info);
        rule && event && level >= self.min_level
    }
}

/// A rendered message for one channel: what the notifier port sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub channel: Channel,
    pub subject: String,
    pub body: String,
    /// For webhooks, the exact JSON to POST.
    #[serde(default)]
    pub webhook_body: Option<serde_json::Value>,
    /// Idempotency key: the same transition through the same route is the same delivery.
    pub key: String,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum NotifyError {
    #[error("template {template:?}: {source}")]
    Template {
        template: String,
        #[source]
        source: TemplateError,
    },
    #[error("template {template:?} for a generic webhook does not render to JSON: {reason}")]
    NotJson { template: String, reason: String },
}

/// Checks a template when it is saved: known variables only, and, for a generic webhook,
/// JSON output whatever the values.
pub fn validate_template(
    template: &NotificationTemplate,
    channel: Option<&ChannelKind>,
) -> Result<(), NotifyError> {
    let err = |source| NotifyError::Template {
        template: template.id.clone(),
        source,
    };
    Template::compile(&template.subject, ALARM_VARIABLES).map_err(err)?;
    let body = Template::compile(&template.body, ALARM_VARIABLES).map_err(err)?;
    if let Some(
        kind @ ChannelKind::Webhook {
            flavor: WebhookFlavor::Generic,
            ..
        },
    ) = channel
    {
        let awkward: BTreeMap<String, String> = ALARM_VARIABLES
            .iter()
            .map(|v| ((*v).to_owned(), "\"quoted\"\n\\".to_owned()))
            .collect();
        serde_json::from_str::<serde_json::Value>(&body.render(&awkward, kind.escaping()))
            .map_err(|e| NotifyError::NotJson {
                template: template.id.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// The template variables of a transition.
pub fn alarm_variables(
    transition: &AlarmTransition,
    device: Option<&Device>,
) -> BTreeMap<String, String> {
    let level = |l: Option<Level>| l.map(|l| l.to_string()).unwrap_or_default();
    let mut vars = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_owned(), v);
    };
    set("alarm_id", transition.alarm_id.clone());
    set("event", transition.kind.as_str().to_owned());
    set("level", level(transition.level));
    set("previous_level", level(transition.previous_level));
    set("tenant_id", transition.tenant_id.clone());
    set("device_uid", transition.device_uid.clone());
    set(
        "device_name",
        device.map(|d| d.name.clone()).unwrap_or_default(),
    );
    set(
        "identification_code",
        device
            .map(|d| d.identification_code.clone())
            .unwrap_or_default(),
    );
    set("rule_id", transition.rule_id.clone());
    set("rule_name", transition.rule_name.clone());
    set("signal", transition.signal.clone().unwrap_or_default());
    set(
        "value",
        transition
            .value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
    );
    set("time", to_rfc3339(transition.time));
    set("time_ms", transition.time.to_string());
    set("by", transition.by.clone().unwrap_or_default());
    vars
}

/// Renders a transition through a route's template for its channel.
pub fn render(
    route: &NotificationRoute,
    template: &NotificationTemplate,
    channel: &Channel,
    transition: &AlarmTransition,
    device: Option<&Device>,
) -> Result<Delivery, NotifyError> {
    let err = |source| NotifyError::Template {
        template: template.id.clone(),
        source,
    };
    let vars = alarm_variables(transition, device);
    let subject = Template::compile(&template.subject, ALARM_VARIABLES)
        .map_err(err)?
        .render(&vars, Escaping::Plain);
    let body = Template::compile(&template.body, ALARM_VARIABLES)
        .map_err(err)?
        .render(&vars, channel.kind.escaping());
    let webhook_body = match &channel.kind {
        ChannelKind::Webhook { flavor, .. } => Some(
            webhook_body(*flavor, &subject, &body).map_err(|e| NotifyError::NotJson {
                template: template.id.clone(),
                reason: e.to_string(),
            })?,
        ),
        _ => None,
    };
    Ok(Delivery {
        channel: channel.clone(),
        subject,
        body,
        webhook_body,
        key: format!(
            "{}:{}:{}:{}",
            transition.alarm_id,
            transition.kind.as_str(),
            transition.time,
            route.id
        ),
    })
}

/// The JSON each webhook flavor expects for a text message.
pub fn webhook_body(
    flavor: WebhookFlavor,
    subject: &str,
    body: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    use serde_json::json;
    let text = if subject.is_empty() {
        body.to_owned()
    } else {
        format!("{subject}\n{body}")
    };
    Ok(match flavor {
        WebhookFlavor::Feishu => json!({ "msg_type": "text", "content": { "text": text } }),
        WebhookFlavor::DingTalk | WebhookFlavor::WeCom => {
            json!({ "msgtype": "text", "text": { "content": text } })
        }
        WebhookFlavor::Slack => json!({ "text": text }),
        WebhookFlavor::Generic => serde_json::from_str(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    fn transition(
        kind: TransitionKind,
        level: Option<Level>,
        previous: Option<Level>,
    ) -> AlarmTransition {
        AlarmTransition {
            alarm_id: "dev-1:hot:1795000000000".into(),
            kind,
            tenant_id: "t1".into(),
            device_uid: "dev-1".into(),
            rule_id: "hot".into(),
            rule_name: "Too \"hot\"".into(),
            level,
            previous_level: previous,
            time: 1_795_000_000_000,
            signal: Some("temperature".into()),
            value: Some(Value::Number(41.5)),
            by: None,
        }
    }

    fn route(min_level: Level) -> NotificationRoute {
        NotificationRoute {
            id: "r1".into(),
            tenant_id: "t1".into(),
            rule_ids: vec![],
            min_level,
            events: vec![],
            template_id: "tpl".into(),
            channel_id: "ch".into(),
        }
    }

    fn template(body: &str) -> NotificationTemplate {
        NotificationTemplate {
            id: "tpl".into(),
            tenant_id: "t1".into(),
            name: "alarm".into(),
            subject: "[${level}] ${rule_name}".into(),
            body: body.into(),
        }
    }

    fn channel(kind: ChannelKind) -> Channel {
        Channel {
            id: "ch".into(),
            tenant_id: "t1".into(),
            name: "ops".into(),
            kind,
        }
    }

    fn webhook(flavor: WebhookFlavor) -> ChannelKind {
        ChannelKind::Webhook {
            flavor,
            url: "http://127.0.0.1:9/hook".into(),
            secret_ref: None,
        }
    }

    #[test]
    fn routes_match_by_rule_event_and_level() {
        let raised_major = transition(TransitionKind::Raised, Some(Level::Major), None);
        assert!(route(Level::Warning).matches(&raised_major));
        assert!(!route(Level::Critical).matches(&raised_major));
        let cleared = transition(TransitionKind::Cleared, None, Some(Level::Major));
        assert!(
            route(Level::Major).matches(&cleared),
            "a clear carries the level it clears"
        );
        let ack = transition(
            TransitionKind::Acknowledged,
            Some(Level::Major),
            Some(Level::Major),
        );
        assert!(
            !route(Level::Info).matches(&ack),
            "acks are not routed unless asked for"
        );
        let asked = NotificationRoute {
            events: vec![TransitionKind::Acknowledged],
            ..route(Level::Info)
        };
        assert!(asked.matches(&ack));
        let other_rule = NotificationRoute {
            rule_ids: vec!["cold".into()],
            ..route(Level::Info)
        };
        assert!(!other_rule.matches(&raised_major));
    }

    #[test]
    fn renders_plain_text_for_sms() -> Result<(), NotifyError> {
        let t = template("${device_name} (${device_uid}) ${signal}=${value} at ${time}");
        let device = Device {
            uid: "dev-1".into(),
            identification_code: "SN1".into(),
            tenant_id: "t1".into(),
            product_id: "p1".into(),
            department_id: "d1".into(),
            name: "Boiler".into(),
            data_since: 0,
            gateway_uid: None,
        };
        let sms = channel(ChannelKind::Sms {
            phone_numbers: vec!["+15550100".into()],
        });
        let tr = transition(TransitionKind::Raised, Some(Level::Critical), None);
        let d = render(&route(Level::Info), &t, &sms, &tr, Some(&device))?;
        assert_eq!(d.subject, "[critical] Too \"hot\"");
        assert_eq!(
            d.body,
            "Boiler (dev-1) temperature=41.5 at 2026-11-18T11:06:40.000Z"
        );
        assert_eq!(d.webhook_body, None);
        assert_eq!(d.key, "dev-1:hot:1795000000000:raised:1795000000000:r1");
        Ok(())
    }

    #[test]
    fn each_webhook_flavor_gets_its_own_json() -> Result<(), NotifyError> {
        let tr = transition(TransitionKind::Raised, Some(Level::Major), None);
        let t = template("${device_uid}: ${value}");
        let body = |flavor| -> Result<serde_json::Value, NotifyError> {
            Ok(render(
                &route(Level::Info),
                &t,
                &channel(webhook(flavor)),
                &tr,
                None,
            )?
            .webhook_body
            .unwrap_or_default())
        };
        let text = "[major] Too \"hot\"\ndev-1: 41.5";
        assert_eq!(
            body(WebhookFlavor::Feishu)?,
            serde_json::json!({"msg_type": "text", "content": {"text": text}})
        );
        assert_eq!(
            body(WebhookFlavor::DingTalk)?,
            serde_json::json!({"msgtype": "text", "text": {"content": text}})
        );
        assert_eq!(
            body(WebhookFlavor::WeCom)?,
            serde_json::json!({"msgtype": "text", "text": {"content": text}})
        );
        assert_eq!(
            body(WebhookFlavor::Slack)?,
            serde_json::json!({"text": text})
        );
        Ok(())
    }

    #[test]
    fn generic_webhook_template_is_json_with_escaped_values() -> Result<(), NotifyError> {
        let t = template(r#"{"alarm": "${rule_name}", "level": "${level}", "value": ${value}}"#);
        validate_template(&t, Some(&webhook(WebhookFlavor::Generic)))
            .expect_err("an unquoted ${value} breaks JSON when the value is text");
        let t = template(r#"{"alarm": "${rule_name}", "level": "${level}", "value": "${value}"}"#);
        validate_template(&t, Some(&webhook(WebhookFlavor::Generic)))?;
        let tr = transition(TransitionKind::Raised, Some(Level::Major), None);
        let d = render(
            &route(Level::Info),
            &t,
            &channel(webhook(WebhookFlavor::Generic)),
            &tr,
            None,
        )?;
        assert_eq!(
            d.webhook_body,
            Some(serde_json::json!({"alarm": "Too \"hot\"", "level": "major", "value": "41.5"}))
        );
        Ok(())
    }

    #[test]
    fn unknown_variables_fail_validation() {
        let err = validate_template(&template("${device_nmae}"), None).unwrap_err();
        assert!(err.to_string().contains("device_nmae"), "{err}");
    }
}

/// An in-system message in a user's inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxMessage {
    pub id: String,
    /// Set by the server from the caller's token.
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub tenant_id: String,
    pub user_id: String,
    pub subject: String,
    pub body: String,
    pub created_at: crate::time::Millis,
    #[serde(default)]
    pub read_at: Option<crate::time::Millis>,
}
