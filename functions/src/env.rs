//! Settings from the environment the SAM template gives each function, with errors that name
//! the variable.

use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("environment variable {0} is not set (the SAM template sets it for this function)")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

pub fn required(name: &'static str) -> Result<String, EnvError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(EnvError::Missing(name)),
    }
}

pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A parsed variable, or `default` when unset.
pub fn parsed<T>(name: &'static str, default: T) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|e: T::Err| EnvError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
    }
}

/// `OUTBOUND_ALLOW`: comma-separated ranges that webhooks and identity providers may be in
/// besides public addresses (none by default).
pub fn outbound_policy() -> Result<iot_core::outbound::OutboundPolicy, EnvError> {
    const NAME: &str = "OUTBOUND_ALLOW";
    let value = optional(NAME).unwrap_or_default();
    iot_core::outbound::OutboundPolicy::from_list(&value).map_err(|e| EnvError::Invalid {
        name: NAME,
        reason: e.to_string(),
        value: value.clone(),
    })
}
