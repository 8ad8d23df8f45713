use rhai::{EvalAltResult, ParseError, ParseErrorType, Position};
use std::fmt;
use thiserror::Error;

/// Where in a script something happened (1-based line and column), when rhai knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl From<Position> for Location {
    fn from(pos: Position) -> Self {
        Self {
            line: pos.line(),
            column: pos.position(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}"),
            (Some(line), None) => write!(f, "line {line}"),
            _ => f.write_str("unknown position"),
        }
    }
}

/// Which sandbox limit a script hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptLimit {
    Operations,
    CallDepth,
    ExpressionDepth,
    StringSize,
    ArraySize,
    MapSize,
    SourceSize,
    Time,
    Variables,
}

impl fmt::Display for ScriptLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScriptLimit::Operations => "operations",
            ScriptLimit::CallDepth => "call depth",
            ScriptLimit::ExpressionDepth => "expression depth",
            ScriptLimit::StringSize => "string size",
            ScriptLimit::ArraySize => "array size",
            ScriptLimit::MapSize => "map size",
            ScriptLimit::SourceSize => "source size",
            ScriptLimit::Time => "time",
            ScriptLimit::Variables => "variables",
        })
    }
}

/// Why a script could not produce a result. Every variant says where, so a user can fix it.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ScriptError {
    #[error("script does not compile: {message} ({at})")]
    Compile { message: String, at: Location },
    #[error("script failed: {message} ({at})")]
    Runtime { message: String, at: Location },
    #[error("script stopped: it exceeded the {limit} limit ({at})")]
    Limit { limit: ScriptLimit, at: Location },
    #[error("script returned an unusable result: {0}")]
    Output(String),
}

impl ScriptError {
    pub fn output(message: impl Into<String>) -> Self {
        ScriptError::Output(message.into())
    }

    pub(crate) fn from_parse(err: ParseError) -> Self {
        let at = Location::from(err.position());
        match *err.0 {
            ParseErrorType::ExprTooDeep => ScriptError::Limit {
                limit: ScriptLimit::ExpressionDepth,
                at,
            },
            ParseErrorType::LiteralTooLarge(..) => ScriptError::Limit {
                limit: ScriptLimit::StringSize,
                at,
            },
            other => ScriptError::Compile {
                message: other.to_string(),
                at,
            },
        }
    }

    // rhai hands errors over boxed; taking the box keeps `map_err(ScriptError::from_eval)` simple.
    #[allow(clippy::boxed_local)]
    pub(crate) fn from_eval(err: Box<EvalAltResult>) -> Self {
        let inner = innermost(*err);
        let at = Location::from(inner.position());
        let limit = |limit| ScriptError::Limit { limit, at };
        match inner {
            EvalAltResult::ErrorTooManyOperations(_) => limit(ScriptLimit::Operations),
            EvalAltResult::ErrorStackOverflow(_) => limit(ScriptLimit::CallDepth),
            EvalAltResult::ErrorTooManyVariables(_) => limit(ScriptLimit::Variables),
            EvalAltResult::ErrorTerminated(..) => limit(ScriptLimit::Time),
            EvalAltResult::ErrorDataTooLarge(what, _) => limit(if what.contains("array") {
                ScriptLimit::ArraySize
            } else if what.contains("map") {
                ScriptLimit::MapSize
            } else {
                ScriptLimit::StringSize
            }),
            EvalAltResult::ErrorParsing(ParseErrorType::ExprTooDeep, _) => {
                limit(ScriptLimit::ExpressionDepth)
            }
            EvalAltResult::ErrorRuntime(thrown, _) => ScriptError::Runtime {
                message: thrown.to_string(),
                at,
            },
            mut other => {
                other.clear_position();
                ScriptError::Runtime {
                    message: other.to_string(),
                    at,
                }
            }
        }
    }
}

/// Errors raised inside script-defined functions arrive wrapped; the innermost one is the cause
/// and carries the position inside the function.
fn innermost(err: EvalAltResult) -> EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(*inner),
        other => other,
    }
}
