//! `${var}` templates. Variables are checked when a template is saved, so a typo fails in the
//! editor, not at 3 a.m. when the alarm fires. `$${` writes a literal `${`.

use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown template variable(s) {unknown:?}; available: {available}")]
    UnknownVariables {
        unknown: Vec<String>,
        available: String,
    },
    #[error("unclosed `${{` at byte {at}: write `${{name}}`, or `$${{` for a literal `${{`")]
    Unclosed { at: usize },
    #[error("invalid variable name {name:?} at byte {at}: use letters, digits, `_` and `.`")]
    InvalidName { name: String, at: usize },
}

/// How variable values are escaped as they are inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// As is: e-mail, SMS, push, in-system messages, and text we wrap in JSON ourselves.
    Plain,
    /// As the inside of a JSON string: for templates that are JSON documents (generic webhooks).
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses a template and checks that it uses only `available` variables.
    pub fn compile(source: &str, available: &[&str]) -> Result<Self, TemplateError> {
        let template = Self::parse(source)?;
        let mut unknown: Vec<String> = template
            .variables()
            .filter(|v| !available.contains(v))
            .map(str::to_owned)
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            unknown.dedup();
            return Err(TemplateError::UnknownVariables {
                unknown,
                available: available.join(", "),
            });
        }
        Ok(template)
    }

    /// Parses the syntax only.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar..];
            let at = offset + dollar;
            if let Some(escaped) = after.strip_prefix("$${") {
                literal.push_str("${");
                let consumed = after.len() - escaped.len();
                rest = escaped;
                offset = at + consumed;
            } else if let Some(open) = after.strip_prefix("${") {
                let close = open.find('}').ok_or(TemplateError::Unclosed { at })?;
                let name = open[..close].trim();
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                {
                    return Err(TemplateError::InvalidName {
                        name: name.to_owned(),
                        at,
                    });
                }
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Variable(name.to_owned()));
                rest = &open[close + 1..];
                offset = at + 2 + close + 1;
            } else {
                literal.push('$');
                rest = &after[1..];
                offset = at + 1;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { segments })
    }

    /// The variables the template uses, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Variable(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Renders with `vars`; a variable without a value renders empty.
    pub fn render(&self, vars: &BTreeMap<String, String>, escaping: Escaping) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Variable(name) => {
                    let value = vars.get(name).map(String::as_str).unwrap_or_default();
                    match escaping {
                        Escaping::Plain => out.push_str(value),
                        Escaping::Json => push_json_escaped(&mut out, value),
                    }
                }
            }
        }
        out
    }
}

fn push_json_escaped(out: &mut String, value: &str) {
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_variables_and_keeps_other_dollars() -> Result<(), TemplateError> {
        let t = Template::compile(
            "${device} is at ${value} $ (cost $5) ${ device }",
            &["device", "value"],
        )?;
        let out = t.render(
            &vars(&[("device", "pump-1"), ("value", "42")]),
            Escaping::Plain,
        );
        assert_eq!(out, "pump-1 is at 42 $ (cost $5) pump-1");
        Ok(())
    }

    #[test]
    fn unknown_variables_are_rejected_at_save_time() {
        let err =
            Template::compile("${device} ${levle} ${x} ${x}", &["device", "level"]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownVariables {
                unknown: vec!["levle".into(), "x".into()],
                available: "device, level".into()
            }
        );
        assert!(err.to_string().contains("available: device, level"));
    }

    #[test]
    fn syntax_errors_say_where() {
        assert_eq!(
            Template::parse("abc ${oops").unwrap_err(),
            TemplateError::Unclosed { at: 4 }
        );
        assert!(matches!(
            Template::parse("${a b}").unwrap_err(),
            TemplateError::InvalidName { .. }
        ));
        assert!(matches!(
            Template::parse("${}").unwrap_err(),
            TemplateError::InvalidName { .. }
        ));
    }

    #[test]
    fn double_dollar_is_a_literal() -> Result<(), TemplateError> {
        let t = Template::compile("$${device} ${device}", &["device"])?;
        assert_eq!(
            t.render(&vars(&[("device", "d")]), Escaping::Plain),
            "${device} d"
        );
        assert_eq!(t.variables().collect::<Vec<_>>(), ["device"]);
        Ok(())
    }

    #[test]
    fn json_escaping_keeps_a_json_template_valid() -> Result<(), Box<dyn std::error::Error>> {
        let t = Template::compile(r#"{"text": "${name} says ${msg}"}"#, &["name", "msg"])?;
        let rendered = t.render(
            &vars(&[("name", "a\"b"), ("msg", "line1\nline2\\")]),
            Escaping::Json,
        );
        let parsed: serde_json::Value = serde_json::from_str(&rendered)?;
        assert_eq!(parsed["text"], "a\"b says line1\nline2\\");
        let plain = t.render(&vars(&[("name", "a\"b"), ("msg", "x")]), Escaping::Plain);
        assert!(serde_json::from_str::<serde_json::Value>(&plain).is_err());
        Ok(())
    }

    #[test]
    fn unicode_text_survives() -> Result<(), TemplateError> {
        let t = Template::compile("设备 ${d} 告警：${v}℃", &["d", "v"])?;
        assert_eq!(
            t.render(&vars(&[("d", "泵-1"), ("v", "41")]), Escaping::Plain),
            "设备 泵-1 告警：41℃"
        );
        Ok(())
    }
}
