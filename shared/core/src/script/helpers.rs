//! Functions scripts can call: byte access and decoding for device payloads, JSON, time, and the
//! aggregation helpers of statistics scripts. Errors name what was wrong (offset, length, input).

use base64::Engine as _;
use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, FLOAT, INT};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

pub(super) fn register(engine: &mut Engine) {
    register_encoding(engine);
    register_byte_reads(engine);
    register_bit_fields(engine);
    register_json_and_time(engine);
    register_aggregates(engine);
}

fn register_encoding(engine: &mut Engine) {
    engine
        .register_fn("hex_decode", |text: &str| -> Fallible<Blob> {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            hex::decode(compact).map_err(|e| format!("hex_decode: {e}").into())
        })
        .register_fn("hex_encode", |bytes: &mut Blob| hex::encode(bytes))
        .register_fn("base64_decode", |text: &str| -> Fallible<Blob> {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("base64_decode: {e}").into())
        })
        .register_fn("base64_encode", |bytes: &mut Blob| {
            base64::engine::general_purpose::STANDARD.encode(bytes)
        })
        .register_fn("utf8", |bytes: &mut Blob| -> Fallible<String> {
            String::from_utf8(bytes.clone()).map_err(|e| format!("utf8: {e}").into())
        });
}

/// Reads `N` bytes at `offset`, or explains why it cannot.
fn take<const N: usize>(bytes: &[u8], offset: INT) -> Fallible<[u8; N]> {
    let start = usize::try_from(offset).map_err(|_| format!("offset {offset} is negative"))?;
    start
        .checked_add(N)
        .and_then(|end| bytes.get(start..end))
        .and_then(|slice| slice.try_into().ok())
        .ok_or_else(|| {
            format!(
                "cannot read {N} byte(s) at offset {offset}: the payload has {} byte(s)",
                bytes.len()
            )
            .into()
        })
}

macro_rules! register_reads {
    ($engine:ident, $( $name:literal => $ty:ty, $from:ident, $out:ty );* $(;)?) => {
        $(
            $engine.register_fn($name, |bytes: &mut Blob, offset: INT| -> Fallible<$out> {
                Ok(<$out>::from(<$ty>::$from(take(bytes, offset)?)))
            });
        )*
    };
}

fn register_byte_reads(engine: &mut Engine) {
    register_reads!(engine,
        "u8" => u8, from_be_bytes, INT;
        "i8" => i8, from_be_bytes, INT;
        "u16_be" => u16, from_be_bytes, INT;
        "u16_le" => u16, from_le_bytes, INT;
        "i16_be" => i16, from_be_bytes, INT;
        "i16_le" => i16, from_le_bytes, INT;
        "u32_be" => u32, from_be_bytes, INT;
        "u32_le" => u32, from_le_bytes, INT;
        "i32_be" => i32, from_be_bytes, INT;
        "i32_le" => i32, from_le_bytes, INT;
        "f32_be" => f32, from_be_bytes, FLOAT;
        "f32_le" => f32, from_le_bytes, FLOAT;
    );
    engine.register_fn("len_bytes", |bytes: &mut Blob| bytes.len() as INT);
}

fn register_bit_fields(engine: &mut Engine) {
    engine
        // `bits(value, start, count)`: `count` bits of `value` starting at bit `start` (bit 0 = LSB).
        .register_fn("bits", |value: INT, start: INT, count: INT| -> Fallible<INT> {
            if !(0..64).contains(&start) || !(1..=63).contains(&count) || start + count > 64 {
                return Err(format!(
                    "bits(value, {start}, {count}): start must be 0..63 and count 1..63 within 64 bits"
                )
                .into());
            }
            Ok((value >> start) & ((1_i64 << count) - 1))
        })
        // `bit(value, n)`: whether bit `n` (0 = LSB) is set.
        .register_fn("bit", |value: INT, n: INT| -> Fallible<bool> {
            if !(0..64).contains(&n) {
                return Err(format!("bit(value, {n}): n must be 0..63").into());
            }
            Ok(value >> n & 1 == 1)
        });
}

fn register_json_and_time(engine: &mut Engine) {
    engine
        .register_fn("json_decode", |text: &str| -> Fallible<Dynamic> {
            serde_json::from_str::<Dynamic>(text).map_err(|e| format!("json_decode: {e}").into())
        })
        .register_fn("json_encode", |value: Dynamic| -> Fallible<String> {
            serde_json::to_string(&value).map_err(|e| format!("json_encode: {e}").into())
        })
        // RFC 3339 text to milliseconds since the epoch.
        .register_fn("parse_time", |text: &str| -> Fallible<INT> {
            crate::time::parse_rfc3339(text)
                .ok_or_else(|| format!("parse_time: {text:?} is not an RFC 3339 time").into())
        });
}

/// The numeric elements of an array, skipping `()` and anything that is not a number.
fn numbers(values: &Array) -> impl Iterator<Item = f64> + '_ {
    values.iter().filter_map(|v| {
        v.as_float()
            .ok()
            .or_else(|| v.as_int().ok().map(|i| i as f64))
            .or_else(|| v.as_bool().ok().map(|b| f64::from(u8::from(b))))
    })
}

fn or_unit(value: Option<f64>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Dynamic::from_float)
}

/// Linear interpolation between closest ranks (numpy's default), `p` in 0..=100.
pub(crate) fn percentile_of(mut values: Vec<f64>, p: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (values.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(values[low] + (values[high] - values[low]) * (rank - low as f64))
}

fn percentile(values: &Array, p: f64) -> Fallible<Dynamic> {
    if !(0.0..=100.0).contains(&p) {
        return Err(format!("percentile(values, {p}): p must be within 0..100").into());
    }
    Ok(or_unit(percentile_of(numbers(values).collect(), p)))
}

fn register_aggregates(engine: &mut Engine) {
    engine
        .register_fn("min", |values: &mut Array| {
            or_unit(numbers(values).reduce(f64::min))
        })
        .register_fn("max", |values: &mut Array| {
            or_unit(numbers(values).reduce(f64::max))
        })
        .register_fn("sum", |values: &mut Array| numbers(values).sum::<f64>())
        .register_fn("count", |values: &mut Array| numbers(values).count() as INT)
        .register_fn("avg", |values: &mut Array| {
            let (sum, n) = numbers(values).fold((0.0, 0_usize), |(s, n), v| (s + v, n + 1));
            or_unit((n > 0).then(|| sum / n as f64))
        })
        .register_fn("first", |values: &mut Array| {
            or_unit(numbers(values).next())
        })
        .register_fn("last", |values: &mut Array| or_unit(numbers(values).last()))
        .register_fn("delta", |values: &mut Array| {
            let mut it = numbers(values);
            let first = it.next();
            or_unit(first.map(|f| it.last().unwrap_or(f) - f))
        })
        .register_fn("percentile", |values: &mut Array, p: FLOAT| {
            percentile(values, p)
        })
        .register_fn("percentile", |values: &mut Array, p: INT| {
            percentile(values, p as f64)
        });
}

#[cfg(test)]
mod tests {
    use crate::script::{Sandbox, ScriptError};
    use rhai::{Dynamic, Scope};

    fn eval(source: &str) -> Result<Dynamic, ScriptError> {
        let sandbox = Sandbox::default();
        let script = sandbox.compile(source)?;
        sandbox.run(&script, &mut Scope::new())
    }

    fn eval_int(source: &str) -> i64 {
        eval(source)
            .and_then(|d| d.as_int().map_err(ScriptError::output))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    fn eval_float(source: &str) -> f64 {
        eval(source)
            .and_then(|d| d.as_float().map_err(ScriptError::output))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn endian_reads() {
        assert_eq!(eval_int(r#"u16_be(hex_decode("0102"), 0)"#), 0x0102);
        assert_eq!(eval_int(r#"u16_le(hex_decode("0102"), 0)"#), 0x0201);
        assert_eq!(eval_int(r#"i16_be(hex_decode("ff38"), 0)"#), -200);
        assert_eq!(eval_int(r#"i16_le(hex_decode("38ff"), 0)"#), -200);
        assert_eq!(
            eval_int(r#"u32_be(hex_decode("00ffffffff"), 1)"#),
            0xffff_ffff
        );
        assert_eq!(eval_int(r#"i32_le(hex_decode("feffffff"), 0)"#), -2);
        assert_eq!(eval_int(r#"u8(hex_decode("00ff"), 1)"#), 255);
        assert_eq!(eval_int(r#"i8(hex_decode("00ff"), 1)"#), -1);
        assert_eq!(eval_float(r#"f32_be(hex_decode("41c80000"), 0)"#), 25.0);
        assert_eq!(eval_float(r#"f32_le(hex_decode("0000c841"), 0)"#), 25.0);
    }

    #[test]
    fn read_past_the_end_says_where() {
        let err = eval(r#"u16_be(hex_decode("01"), 0)"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read 2 byte(s) at offset 0: the payload has 1 byte(s)"),
            "{err}"
        );
        let err = eval(r#"u8(hex_decode("01"), -1)"#).unwrap_err().to_string();
        assert!(err.contains("offset -1 is negative"), "{err}");
    }

    #[test]
    fn bit_fields() {
        assert_eq!(eval_int("bits(0b1011_0100, 2, 3)"), 0b101);
        assert!(eval("bit(0b100, 2)").is_ok_and(|d| d.as_bool() == Ok(true)));
        assert!(eval("bits(1, 60, 8)").is_err());
    }

    #[test]
    fn encodings_round_trip() {
        assert_eq!(
            eval_int(r#"u8(base64_decode(base64_encode(hex_decode("2a"))), 0)"#),
            42
        );
        assert!(
            eval(r#"hex_encode(hex_decode("DE ad"))"#).is_ok_and(|d| d
                .into_string()
                .ok()
                .as_deref()
                == Some("dead"))
        );
        assert!(eval(r#"hex_decode("zz")"#).is_err());
        assert!(eval(r#"base64_decode("***")"#).is_err());
    }

    #[test]
    fn json_and_time_helpers() {
        assert_eq!(eval_int(r#"json_decode("{\"a\": [1, 2, 3]}").a[2]"#), 3);
        assert_eq!(
            eval_int(r#"parse_time("2026-01-01T00:00:01.5Z")"#),
            1_767_225_601_500
        );
        assert!(eval(r#"parse_time("noon")"#).is_err());
    }

    #[test]
    fn aggregates_over_arrays() {
        assert_eq!(eval_float("min([3, 1.5, 2])"), 1.5);
        assert_eq!(eval_float("max([3, 1.5, 2])"), 3.0);
        assert_eq!(eval_float("sum([1, 2, 3])"), 6.0);
        assert_eq!(eval_int("count([1, (), 3])"), 2);
        assert_eq!(eval_float("avg([1, 2, 3, 4])"), 2.5);
        assert_eq!(eval_float("first([5, 6, 7])"), 5.0);
        assert_eq!(eval_float("last([5, 6, 7])"), 7.0);
        assert_eq!(eval_float("delta([100, 104, 110])"), 10.0);
        assert_eq!(eval_float("percentile([1, 2, 3, 4, 5], 50)"), 3.0);
        assert_eq!(eval_float("percentile([1, 2, 3, 4], 25.0)"), 1.75);
        assert!(eval("avg([])").is_ok_and(|d| d.is_unit()));
        assert!(eval("percentile([1], 101)").is_err());
    }
}
