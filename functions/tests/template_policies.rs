//! Least privilege, checked on `template.yaml`: each function's policy grants exactly the IAM
//! actions its code uses (the `IAM_ACTIONS` beside each handler), no action has a wildcard,
//! and `Resource: "*"` appears only where AWS has no narrower resource for the action.

use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};

type Error = Box<dyn std::error::Error>;

/// Actions AWS authorises only on `*`: Timestream's endpoint discovery, and an SNS publish to
/// a phone number (an SMS has no ARN).
const STAR_RESOURCE_ALLOWED: &[(&str, &str)] = &[
    ("ingest", "timestream:DescribeEndpoints"),
    ("stats", "timestream:DescribeEndpoints"),
    ("api", "timestream:DescribeEndpoints"),
    ("notify", "sns:Publish"),
    // Certificates are created, and the endpoint looked up, with no resource to name.
    ("api", "iot:CreateKeysAndCertificate"),
    ("api", "iot:DescribeEndpoint"),
];

fn used_actions(binary: &str) -> Option<&'static [&'static str]> {
    Some(match binary {
        "ingest" => iot_functions::ingest::IAM_ACTIONS,
        "alarm" => iot_functions::alarm::IAM_ACTIONS,
        "notify" => iot_functions::notify::IAM_ACTIONS,
        "stats" => iot_functions::stats::IAM_ACTIONS,
        "api" => iot_functions::api::IAM_ACTIONS,
        "backup" => iot_functions::backup::IAM_ACTIONS,
        _ => return None,
    })
}

fn template() -> Result<Value, Error> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    Ok(serde_norway::from_str(&std::fs::read_to_string(path)?)?)
}

/// One statement of a policy as it may be deployed: both branches of an `!If` count, and
/// `!Ref AWS::NoValue` is no statement.
fn statements(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!If" => {
            if let Value::Sequence(parts) = &tagged.value {
                for branch in parts.iter().skip(1) {
                    statements(branch, out);
                }
            }
        }
        Value::Tagged(tagged) if tagged.tag == "!Ref" => {}
        Value::Sequence(items) => items.iter().for_each(|i| statements(i, out)),
        other => out.push(other.clone()),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        // An intrinsic (!GetAtt, !Sub, !Ref) names a resource of the stack: keep its text.
        Value::Tagged(tagged) => match &tagged.value {
            Value::String(s) => vec![format!("{} {s}", tagged.tag)],
            other => strings(other)
                .into_iter()
                .map(|s| format!("{} {s}", tagged.tag))
                .collect(),
        },
        _ => Vec::new(),
    }
}

/// Each function's binary and the statements of its policies.
fn function_policies(template: &Value) -> Result<BTreeMap<String, Vec<Value>>, Error> {
    let resources = template["Resources"].as_mapping().ok_or("no Resources")?;
    let mut functions = BTreeMap::new();
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap_or_default();
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .ok_or_else(|| format!("{name} names no binary"))?;
        let mut all = Vec::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            // Managed policies and SAM policy templates cannot be checked action by action.
            let statement = policy
                .get("Statement")
                .ok_or_else(|| format!("{name}: a policy without inline statements: {policy:?}"))?;
            statements(statement, &mut all);
        }
        functions.insert(binary.to_owned(), all);
    }
    Ok(functions)
}

/// What is wrong with the functions' policies, one line per problem.
fn problems(functions: &BTreeMap<String, Vec<Value>>) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    for (binary, statements) in functions {
        let used: BTreeSet<&str> = used_actions(binary)
            .ok_or_else(|| format!("no IAM_ACTIONS for {binary}"))?
            .iter()
            .copied()
            .collect();
        let mut granted = BTreeSet::new();
        for statement in statements {
            // A Deny only narrows what the Allows grant.
            if statement["Effect"].as_str() == Some("Deny") {
                continue;
            }
            if statement["Effect"].as_str() != Some("Allow") {
                problems.push(format!(
                    "{binary}: a statement that is not Allow: {statement:?}"
                ));
            }
            let actions = strings(&statement["Action"]);
            let resources = strings(&statement["Resource"]);
            if resources.is_empty() {
                problems.push(format!(
                    "{binary}: a statement without resources: {statement:?}"
                ));
            }
            for action in &actions {
                if action.contains('*') {
                    problems.push(format!("{binary}: wildcard action {action}"));
                }
                if !used.contains(action.as_str()) {
                    problems.push(format!(
                        "{binary}: granted {action}, which its code does not use"
                    ));
                }
                if resources.iter().any(|r| r == "*")
                    && !STAR_RESOURCE_ALLOWED.contains(&(binary.as_str(), action.as_str()))
                {
                    problems.push(format!("{binary}: {action} on Resource \"*\""));
                }
                granted.insert(action.clone());
            }
        }
        for action in used {
            if !granted.contains(action) {
                problems.push(format!(
                    "{binary}: uses {action}, which its policy does not grant"
                ));
            }
        }
    }
    Ok(problems)
}

#[test]
fn every_function_is_granted_exactly_the_actions_its_code_uses() -> Result<(), Error> {
    let functions = function_policies(&template()?)?;
    let binaries: BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    assert_eq!(
        binaries,
        BTreeSet::from(["alarm", "api", "backup", "ingest", "notify", "stats"]),
        "the template's functions"
    );
    let problems = problems(&functions)?;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The checker itself: a policy that grants too much is caught.
#[test]
fn an_overbroad_policy_is_caught() -> Result<(), Error> {
    let template: Value = serde_norway::from_str(
        r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: alarm } }
    Properties:
      Policies:
        - Statement:
            - !If
              - C
              - { Effect: Allow, Action: ["dynamodb:*"], Resource: "*" }
              - !Ref AWS::NoValue
"#,
    )?;
    let policies = function_policies(&template)?;
    assert_eq!(
        policies["alarm"].len(),
        1,
        "the NoValue branch is no statement"
    );
    let found = problems(&policies)?.join("\n");
    for expected in [
        "alarm: wildcard action dynamodb:*",
        "alarm: granted dynamodb:*, which its code does not use",
        "alarm: dynamodb:* on Resource \"*\"",
        "alarm: uses sns:Publish, which its policy does not grant",
    ] {
        assert!(found.contains(expected), "{expected:?} not in:\n{found}");
    }
    Ok(())
}

/// The notify function may publish an SMS (Resource "*"), but never to the alarm-events
/// topic: what it published there would come back to it as an alarm event.
#[test]
fn the_notify_function_cannot_publish_alarm_events() -> Result<(), Error> {
    let functions = function_policies(&template()?)?;
    let denied = functions["notify"].iter().any(|s| {
        s["Effect"].as_str() == Some("Deny")
            && strings(&s["Action"]).iter().any(|a| a == "sns:Publish")
            && strings(&s["Resource"]) == ["!Ref AlarmEventsTopic"]
    });
    assert!(denied, "{:?}", functions["notify"]);
    Ok(())
}

#[test]
fn the_device_policy_scopes_every_topic_to_the_thing() -> Result<(), Error> {
    let template = template()?;
    let statements =
        template["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .ok_or("no device policy")?;
    for statement in statements {
        for resource in strings(&statement["Resource"]) {
            assert!(
                resource.contains("${!iot:Connection.Thing.ThingName}"),
                "{resource} is not scoped to the connected thing"
            );
        }
    }
    Ok(())
}

/// The topic rules select what the core names: telemetry and shadow reports of every device.
#[test]
fn the_telemetry_rule_selects_the_cores_telemetry_filter() -> Result<(), Error> {
    let template = template()?;
    let sql = template["Resources"]["TelemetryRule"]["Properties"]["TopicRulePayload"]["Sql"]
        .as_str()
        .ok_or("TelemetryRule has no SQL")?
        .to_owned();
    let from = format!("FROM '{}'", iot_core::topics::TELEMETRY_FILTER);
    assert!(sql.contains(&from), "{sql} does not select {from}");
    Ok(())
}
