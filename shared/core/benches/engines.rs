//! Engine throughput: `cargo bench -p iot-core --bench engines`.
//! Figures and how to read them: docs/benchmarks.md.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use iot_core::alarm::{
    AlarmEvaluator, AlarmRule, Band, Condition, Debounce, DeviceAlarmState, Direction, Level,
};
use iot_core::model::{Device, ParserScript, Product, SignalDef};
use iot_core::parse::{ParseInput, Parser};

const JSON_PAYLOAD: &[u8] = br#"{"ts": 1795000123, "temp": 21.5, "hum": 40.2, "co2": 612}"#;
const JSON_SCRIPT: &str = include_str!("../../../examples/products/json-sensor.rhai");
const BINARY_SCRIPT: &str = include_str!("../../../examples/products/env-sensor-binary.rhai");
const BINARY_PAYLOAD: [u8; 12] = [
    0x01, 0x08, 0x34, 0x2d, 0x0b, 0xb8, 0xa4, 0x00, 0x00, 0x00, 0x2a, 0x2d,
];

fn device() -> Device {
    Device {
        uid: "env-0001".into(),
        identification_code: "A84041000181".into(),
        tenant_id: "t1".into(),
        product_id: "p1".into(),
        department_id: "d1".into(),
        name: String::new(),
        data_since: 0,
        gateway_uid: None,
    }
}

fn product(script: Option<&str>, signals: Vec<SignalDef>) -> Product {
    Product {
        id: "p1".into(),
        tenant_id: "t1".into(),
        name: "bench".into(),
        script: script.map(|s| ParserScript {
            source: s.into(),
            version: 1,
        }),
        signals,
    }
}

fn three_signals() -> Vec<SignalDef> {
    vec![
        SignalDef::number("temperature").with_range(-40.0, 85.0),
        SignalDef::number("humidity").with_range(0.0, 100.0),
        SignalDef::number("co2").with_range(0.0, 10_000.0),
    ]
}

/// Ten threshold rules over the three signals, graded, as a product would have.
fn ten_rules() -> Vec<AlarmRule> {
    let rule = |i: usize, signal: &str, direction: Direction, thresholds: [f64; 3]| AlarmRule {
        id: format!("r{i}"),
        tenant_id: "t1".into(),
        product_id: "p1".into(),
        name: format!("rule {i}"),
        enabled: true,
        condition: Condition::Threshold {
            signal: signal.into(),
            direction,
            bands: vec![
                Band {
                    level: Level::Warning,
                    threshold: thresholds[0],
                },
                Band {
                    level: Level::Major,
                    threshold: thresholds[1],
                },
                Band {
                    level: Level::Critical,
                    threshold: thresholds[2],
                },
            ],
            deadband: 0.5,
        },
        debounce: Debounce {
            samples: 3,
            for_ms: 60_000,
        },
    };
    use Direction::*;
    vec![
        rule(0, "temperature", Above, [30.0, 35.0, 40.0]),
        rule(1, "temperature", Below, [5.0, 0.0, -10.0]),
        rule(2, "humidity", Above, [70.0, 80.0, 90.0]),
        rule(3, "humidity", Below, [20.0, 15.0, 10.0]),
        rule(4, "co2", Above, [1000.0, 1500.0, 2500.0]),
        rule(5, "co2", Below, [300.0, 250.0, 200.0]),
        rule(6, "temperature", Above, [25.0, 28.0, 32.0]),
        rule(7, "humidity", Above, [60.0, 65.0, 75.0]),
        rule(8, "co2", Above, [800.0, 900.0, 1200.0]),
        rule(9, "temperature", Below, [18.0, 15.0, 12.0]),
    ]
}

fn parsing(c: &mut Criterion) {
    let parser: Parser = Parser::default();
    let device = device();
    let input = |payload: &'static [u8]| ParseInput {
        payload,
        topic: "things/env-0001/up/telemetry",
        device: &device,
        received_at: 1_795_000_000_000,
    };
    let json_script = parser
        .prepare(&product(Some(JSON_SCRIPT), three_signals()))
        .expect("script compiles");
    let native = parser
        .prepare(&product(None, three_signals()))
        .expect("no script");
    let binary = parser
        .prepare(&product(Some(BINARY_SCRIPT), vec![]))
        .expect("script compiles");

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("serde_json_floor", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(JSON_PAYLOAD)))
    });
    group.bench_function("json_native_mapping", |b| {
        b.iter(|| parser.parse(&native, &input(black_box(JSON_PAYLOAD))))
    });
    group.bench_function("json_script", |b| {
        b.iter(|| parser.parse(&json_script, &input(black_box(JSON_PAYLOAD))))
    });
    group.bench_function("binary_12_bytes_script", |b| {
        b.iter(|| parser.parse(&binary, &input(black_box(&BINARY_PAYLOAD))))
    });
    group.finish();
}

fn alarms(c: &mut Criterion) {
    let parser: Parser = Parser::default();
    let device = device();
    let evaluator = AlarmEvaluator::default();
    let rules = evaluator.compile(&ten_rules()).expect("rules are valid");
    let json_script = parser
        .prepare(&product(Some(JSON_SCRIPT), three_signals()))
        .expect("script compiles");
    let native = parser
        .prepare(&product(None, three_signals()))
        .expect("no script");
    let record = parser
        .parse(
            &json_script,
            &ParseInput {
                payload: JSON_PAYLOAD,
                topic: "t",
                device: &device,
                received_at: 0,
            },
        )
        .expect("parses")
        .records
        .remove(0);

    let mut group = c.benchmark_group("alarm");
    group.throughput(Throughput::Elements(1));
    let mut state = DeviceAlarmState::new("env-0001");
    let mut time = record.time;
    group.bench_function("evaluate_10_rules", |b| {
        b.iter_batched_ref(
            || {
                time += 1_000;
                let mut r = record.clone();
                r.time = time;
                r
            },
            |r| evaluator.evaluate(&rules, &mut state, r),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("parse_and_alarm");
    group.throughput(Throughput::Elements(1));
    for (name, prepared) in [
        ("json_script_10_rules", &json_script),
        ("json_native_10_rules", &native),
    ] {
        let mut state = DeviceAlarmState::new("env-0001");
        let mut now = 1_795_000_000_000_i64;
        group.bench_function(name, |b| {
            b.iter(|| {
                now += 1_000;
                let input = ParseInput {
                    payload: black_box(JSON_PAYLOAD),
                    topic: "t",
                    device: &device,
                    received_at: now,
                };
                let mut outcome = parser.parse(prepared, &input).expect("parses");
                for record in &mut outcome.records {
                    record.time = now; // the payload's fixed ts would make every later record "old"
                    black_box(evaluator.evaluate(&rules, &mut state, record));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parsing, alarms);
criterion_main!(benches);
