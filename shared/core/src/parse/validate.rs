//! Checks parsed values against a product's signal definitions.

use super::{ParseOutcome, ParseWarning};
use crate::model::{Record, SignalDef};

/// Keeps the values that match their definitions (coercing where unambiguous) and reports the
/// rest. A product without definitions accepts every signal as parsed.
pub(super) fn check_signals(signals: &[SignalDef], records: Vec<Record>) -> ParseOutcome {
    if signals.is_empty() {
        return ParseOutcome {
            records,
            warnings: Vec::new(),
        };
    }
    let mut warnings = Vec::new();
    let records = records
        .into_iter()
        .map(|mut record| {
            let data = std::mem::take(&mut record.data);
            record.data = data
                .into_iter()
                .filter_map(|mut datum| {
                    let reason = match signals.iter().find(|s| s.name == datum.name) {
                        None => "not defined on the product".to_owned(),
                        Some(def) => match def.check(datum.value) {
                            Ok(value) => {
                                datum.value = value;
                                return Some(datum);
                            }
                            Err(reason) => reason,
                        },
                    };
                    warnings.push(ParseWarning {
                        device_uid: record.device_uid.clone(),
                        signal: datum.name,
                        reason,
                    });
                    None
                })
                .collect();
            record
        })
        .collect();
    ParseOutcome { records, warnings }
}
