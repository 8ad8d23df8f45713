//! Parsing: a raw payload becomes uniform [`Record`]s.
//!
//! A product with a parser script runs it through a [`ScriptExecutor`] (rhai by default, see
//! [`RhaiExecutor`] and `docs/scripts.md`); a product without one gets the [`native`] mapping of flat
//! JSON fields. Either way the values are checked against the product's signal definitions.

mod error;
pub mod native;
mod output;
mod rhai_executor;
mod validate;

pub use error::{ParseError, ParseWarning};
pub use rhai_executor::{RhaiExecutor, RhaiScript};

use crate::model::{Device, Product, Record, SignalDef};
use crate::script::ScriptError;
use crate::time::Millis;

/// What a parser sees of one inbound message.
#[derive(Clone, Copy, Debug)]
pub struct ParseInput<'a> {
    pub payload: &'a [u8],
    pub topic: &'a str,
    /// The device the message came from (for a gateway, the gateway itself).
    pub device: &'a Device,
    /// When the platform received the message; the default record time.
    pub received_at: Millis,
}

/// Runs product parser scripts. Implementations compile once ([`ScriptExecutor::compile`]) and
/// execute many times.
pub trait ScriptExecutor: Send + Sync {
    type Compiled: Clone + Send + Sync + std::fmt::Debug;

    fn compile(&self, source: &str) -> Result<Self::Compiled, ScriptError>;

    /// Runs the script; returns the records before signal validation.
    fn execute(
        &self,
        script: &Self::Compiled,
        input: &ParseInput<'_>,
    ) -> Result<Vec<Record>, ParseError>;
}

/// A product ready to parse with: its compiled script (if any) and signal definitions.
#[derive(Clone, Debug)]
pub struct PreparedProduct<C> {
    pub product_id: String,
    script: Option<C>,
    signals: Vec<SignalDef>,
}

/// The records of one payload plus what was dropped from them and why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParseOutcome {
    pub records: Vec<Record>,
    pub warnings: Vec<ParseWarning>,
}

/// Parses payloads of any product with one script executor.
#[derive(Clone, Debug, Default)]
pub struct Parser<E = RhaiExecutor> {
    executor: E,
}

impl<E: ScriptExecutor> Parser<E> {
    pub fn new(executor: E) -> Self {
        Self { executor }
    }

    /// Compiles the product's script (cached by the executor) and keeps its signal definitions.
    pub fn prepare(&self, product: &Product) -> Result<PreparedProduct<E::Compiled>, ScriptError> {
        let script = product
            .script
            .as_ref()
            .filter(|s| !s.source.trim().is_empty())
            .map(|s| self.executor.compile(&s.source))
            .transpose()?;
        Ok(PreparedProduct {
            product_id: product.id.clone(),
            script,
            signals: product.signals.clone(),
        })
    }

    /// Parses one payload. Errors mean nothing usable came out; warnings mean some values were
    /// dropped (wrong type, out of range, undefined signal) while the rest were kept.
    pub fn parse(
        &self,
        product: &PreparedProduct<E::Compiled>,
        input: &ParseInput<'_>,
    ) -> Result<ParseOutcome, ParseError> {
        let records = match &product.script {
            Some(script) => self.executor.execute(script, input)?,
            None => native::map_flat_json(&product.signals, input)?,
        };
        Ok(validate::check_signals(&product.signals, records))
    }
}
