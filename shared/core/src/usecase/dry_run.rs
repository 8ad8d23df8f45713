//! Try a parser script on a sample payload before saving it.

use serde::Serialize;

use crate::model::{Device, Product, Record};
use crate::parse::{ParseError, ParseInput, ParseWarning, Parser, ScriptExecutor};
use crate::time::Millis;

/// What the script would produce.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DryRun {
    pub records: Vec<Record>,
    pub warnings: Vec<ParseWarning>,
}

/// Compiles the product's script and parses `payload` as if `device` (or a stand-in device of
/// the product) had sent it on `topic`. Nothing is stored.
pub fn dry_run<E: ScriptExecutor>(
    parser: &Parser<E>,
    product: &Product,
    device: Option<&Device>,
    topic: &str,
    payload: &[u8],
    now: Millis,
) -> Result<DryRun, ParseError> {
    let stand_in = Device {
        uid: "dry-run-device".into(),
        identification_code: "DRY-RUN".into(),
        tenant_id: product.tenant_id.clone(),
        product_id: product.id.clone(),
        department_id: String::new(),
        name: "dry run".into(),
        data_since: 0,
        gateway_uid: None,
    };
    let device = device.unwrap_or(&stand_in);
    let prepared = parser.prepare(product)?;
    let outcome = parser.parse(
        &prepared,
        &ParseInput {
            payload,
            topic,
            device,
            received_at: now,
        },
    )?;
    Ok(DryRun {
        records: outcome.records,
        warnings: outcome.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ParserScript, SignalDef};

    fn product(source: &str) -> Product {
        Product {
            id: "p".into(),
            tenant_id: "t".into(),
            name: "p".into(),
            script: Some(ParserScript {
                source: source.into(),
                version: 0,
            }),
            signals: vec![SignalDef::number("t").with_range(-50.0, 50.0)],
        }
    }

    #[test]
    fn dry_run_returns_records_and_warnings() -> Result<(), ParseError> {
        let parser: Parser = Parser::default();
        let result = dry_run(
            &parser,
            &product("#{ t: json.t, x: 1 }"),
            None,
            "things/x/up",
            br#"{"t": 99}"#,
            5,
        )?;
        assert_eq!(result.records.len(), 1);
        assert_eq!(result.records[0].device_uid, "dry-run-device");
        assert_eq!(result.records[0].time, 5);
        assert!(result.records[0].data.is_empty());
        let reasons: Vec<_> = result.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "dry-run-device: signal \"t\" dropped: 99 is outside the valid range [-50, 50]",
                "dry-run-device: signal \"x\" dropped: not defined on the product"
            ]
        );
        Ok(())
    }

    #[test]
    fn dry_run_returns_the_script_error() {
        let parser: Parser = Parser::default();
        let err = dry_run(&parser, &product("if {"), None, "t", b"", 0).unwrap_err();
        assert_eq!(err.kind(), "script_compile");
    }
}
