//! The sandbox every user script runs in: parser scripts, joint alarm rules and statistics.
//!
//! One [`Sandbox`] holds one rhai `Engine` with the platform's helper functions and hard limits
//! (operations, call depth, expression depth, string/array/map sizes, wall-clock time). Scripts are
//! compiled once and cached by the hash of their source.

mod convert;
mod error;
mod helpers;
mod limits;
mod sandbox;

pub use convert::{dynamic_to_value, value_to_dynamic};
pub use error::{Location, ScriptError, ScriptLimit};
pub use limits::Limits;
pub use sandbox::{CompiledScript, Sandbox};

pub use rhai::{Array, Dynamic, Map, Scope};
