use std::fmt;
use thiserror::Error;

use crate::script::ScriptError;

/// Why a payload produced no records.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ParseError {
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("payload rejected: {0}")]
    Payload(String),
}

impl ParseError {
    /// A short stable label for metrics and dead-letter reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Script(ScriptError::Compile { .. }) => "script_compile",
            ParseError::Script(ScriptError::Runtime { .. }) => "script_runtime",
            ParseError::Script(ScriptError::Limit { .. }) => "script_limit",
            ParseError::Script(ScriptError::Output(_)) => "script_output",
            ParseError::Payload(_) => "payload",
        }
    }
}

/// A value dropped from a record, and why; the raw payload stays in the record's `nc`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParseWarning {
    pub device_uid: String,
    pub signal: String,
    pub reason: String,
}

impl fmt::Display for ParseWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: signal {:?} dropped: {}",
            self.device_uid, self.signal, self.reason
        )
    }
}
