//! What a parser script may return, and how bad scripts and bad payloads fail.

use iot_core::model::{Datum, Device, ParserScript, Product, Record, Value};
use iot_core::parse::{ParseError, ParseInput, Parser};
use iot_core::script::{ScriptError, ScriptLimit};
use proptest::prelude::*;

const RECEIVED_AT: i64 = 1_795_000_000_000;

fn device() -> Device {
    Device {
        uid: "gw-1".into(),
        identification_code: "GW0001".into(),
        tenant_id: "t1".into(),
        product_id: "p1".into(),
        department_id: "d1".into(),
        name: String::new(),
        data_since: 0,
        gateway_uid: None,
    }
}

fn product(source: Option<&str>) -> Product {
    Product {
        id: "p1".into(),
        tenant_id: "t1".into(),
        name: "p".into(),
        script: source.map(|s| ParserScript {
            source: s.into(),
            version: 1,
        }),
        signals: vec![],
    }
}

fn parse_with(source: Option<&str>, payload: &[u8]) -> Result<Vec<Record>, ParseError> {
    let parser: Parser = Parser::default();
    let prepared = parser.prepare(&product(source))?;
    let device = device();
    let input = ParseInput {
        payload,
        topic: "things/gw-1/up/data",
        device: &device,
        received_at: RECEIVED_AT,
    };
    parser.parse(&prepared, &input).map(|o| o.records)
}

fn parse(source: &str, payload: &[u8]) -> Result<Vec<Record>, ParseError> {
    parse_with(Some(source), payload)
}

#[test]
fn unit_means_nothing_to_record() -> Result<(), ParseError> {
    assert!(parse("()", b"ping")?.is_empty());
    Ok(())
}

#[test]
fn record_map_with_data_array_and_rfc3339_time() -> Result<(), ParseError> {
    let source = r#"#{ time: "2026-11-22T00:00:00Z", data: [#{ name: "t", value: 1.5 }, #{ name: "ok", value: true }] }"#;
    let records = parse(source, b"")?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].time, 1_795_305_600_000);
    assert_eq!(
        records[0].data,
        vec![Datum::new("t", 1.5), Datum::new("ok", true)]
    );
    Ok(())
}

#[test]
fn gateway_payload_yields_one_record_per_sub_device() -> Result<(), ParseError> {
    let source = r#"
        let out = [];
        for node in json.nodes {
            out.push(#{ device_uid: node.id, time: node.ts, data: #{ level: node.level } });
        }
        out
    "#;
    let payload = br#"{"nodes": [{"id": "tank-1", "ts": 1795000001000, "level": 0.5}, {"id": "tank-2", "ts": 1795000002000, "level": 0.75}]}"#;
    let records = parse(source, payload)?;
    let summary: Vec<(&str, i64, Option<&Value>)> = records
        .iter()
        .map(|r| (r.device_uid.as_str(), r.time, r.get("level")))
        .collect();
    assert_eq!(
        summary,
        [
            ("tank-1", 1_795_000_001_000, Some(&Value::Number(0.5))),
            ("tank-2", 1_795_000_002_000, Some(&Value::Number(0.75)))
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.nc == std::str::from_utf8(payload).unwrap_or_default())
    );
    Ok(())
}

#[test]
fn sub_device_named_by_identification_code_is_left_for_ingest_to_resolve() -> Result<(), ParseError>
{
    let records = parse(r#"#{ identification_code: "SN-77", data: #{ x: 1 } }"#, b"")?;
    assert_eq!(records[0].device_uid, "");
    assert_eq!(records[0].identification_code, "SN-77");
    let own = parse(
        r#"#{ identification_code: "GW0001", data: #{ x: 1 } }"#,
        b"",
    )?;
    assert_eq!(own[0].device_uid, "gw-1");
    Ok(())
}

#[test]
fn script_sees_topic_device_text_and_receive_time() -> Result<(), ParseError> {
    let source = r#"#{ topic: topic, uid: device.uid, code: device.identification_code, body: text, at: received_at }"#;
    let records = parse(source, b"hello")?;
    let record = &records[0];
    assert_eq!(
        record.get("topic"),
        Some(&Value::from("things/gw-1/up/data"))
    );
    assert_eq!(record.get("uid"), Some(&Value::from("gw-1")));
    assert_eq!(record.get("code"), Some(&Value::from("GW0001")));
    assert_eq!(record.get("body"), Some(&Value::from("hello")));
    assert_eq!(record.get("at"), Some(&Value::Number(RECEIVED_AT as f64)));
    Ok(())
}

#[test]
fn text_is_unit_for_binary_payloads() -> Result<(), ParseError> {
    let records = parse(r#"#{ is_text: text != () }"#, &[0xff, 0xfe])?;
    assert_eq!(records[0].get("is_text"), Some(&Value::Bool(false)));
    Ok(())
}

#[test]
fn unusable_outputs_are_explained() {
    let cases = [
        ("42", "not i64"),
        ("[1]", "element 0 of the returned array is not a map"),
        (r#"#{ data: 5 }"#, "`data` must be a map of signals"),
        (
            r#"#{ data: #{}, colour: "red" }"#,
            "unknown record field \"colour\"",
        ),
        (
            r#"#{ v: [1, 2] }"#,
            "signal \"v\": a signal value must be a number, bool or string",
        ),
        (
            r#"#{ time: true, v: 1 }"#,
            "`time` must be epoch milliseconds",
        ),
    ];
    for (source, expected) in cases {
        match parse(source, b"") {
            Err(ParseError::Script(ScriptError::Output(message))) => {
                assert!(message.contains(expected), "{source}: {message}")
            }
            other => panic!("{source}: expected an output error, got {other:?}"),
        }
    }
}

#[test]
fn script_that_loops_forever_is_stopped() {
    let err = parse("loop {}", b"").unwrap_err();
    assert!(matches!(
        err,
        ParseError::Script(ScriptError::Limit {
            limit: ScriptLimit::Operations,
            ..
        })
    ));
    assert_eq!(err.kind(), "script_limit");
}

#[test]
fn script_that_does_not_compile_names_the_place() {
    let err = parse("let x = ;", b"").unwrap_err();
    assert_eq!(err.kind(), "script_compile");
    assert!(err.to_string().contains("line 1, column 9"), "{err}");
}

#[test]
fn blank_script_falls_back_to_the_native_mapping() -> Result<(), ParseError> {
    let records = parse_with(Some("  \n"), br#"{"x": 2}"#)?;
    assert_eq!(records[0].data, vec![Datum::new("x", 2.0)]);
    Ok(())
}

const DECODER: &str = r#"
    if len_bytes(payload) < 4 { throw "short"; }
    #{ a: i16_be(payload, 0), b: u16_le(payload, 2), c: json?.x }
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the bytes, parsing returns records or an error; it never panics.
    #[test]
    fn parse_path_never_panics_on_arbitrary_bytes(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_with(None, &payload);
        let _ = parse(DECODER, &payload);
        let _ = parse("json", &payload);
        let _ = parse("#{ t: text }", &payload);
    }

    /// JSON-looking text with arbitrary values never panics the native mapping either.
    #[test]
    fn native_mapping_never_panics_on_json_like_text(key in "[a-z]{1,8}", value in "\\PC{0,16}") {
        let payload = format!("{{\"{key}\": {value}}}");
        let _ = parse_with(None, payload.as_bytes());
    }
}
