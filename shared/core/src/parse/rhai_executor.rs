//! The rhai implementation of [`ScriptExecutor`].

use rhai::{Blob, Dynamic, Map, Scope};
use std::sync::Arc;

use super::output::records_from_output;
use super::{ParseError, ParseInput, ScriptExecutor};
use crate::model::{Record, raw_payload_text};
use crate::script::{CompiledScript, Sandbox, ScriptError};

/// Runs parser scripts in a shared [`Sandbox`].
#[derive(Clone, Debug, Default)]
pub struct RhaiExecutor {
    sandbox: Arc<Sandbox>,
}

impl RhaiExecutor {
    pub fn new(sandbox: Arc<Sandbox>) -> Self {
        Self { sandbox }
    }
}

/// A compiled parser script and which inputs it reads, so unused ones are not prepared.
#[derive(Clone, Debug)]
pub struct RhaiScript {
    script: CompiledScript,
    uses: Inputs,
}

#[derive(Clone, Copy, Debug)]
struct Inputs {
    payload: bool,
    text: bool,
    json: bool,
    device: bool,
}

impl Inputs {
    /// A cheap over-approximation: a name mentioned anywhere (even in a comment) is provided.
    fn of(source: &str) -> Self {
        Self {
            payload: source.contains("payload"),
            text: source.contains("text"),
            json: source.contains("json"),
            device: source.contains("device"),
        }
    }
}

impl ScriptExecutor for RhaiExecutor {
    type Compiled = RhaiScript;

    fn compile(&self, source: &str) -> Result<RhaiScript, ScriptError> {
        Ok(RhaiScript {
            script: self.sandbox.compile(source)?,
            uses: Inputs::of(source),
        })
    }

    fn execute(
        &self,
        script: &RhaiScript,
        input: &ParseInput<'_>,
    ) -> Result<Vec<Record>, ParseError> {
        let mut scope = Scope::with_capacity(6);
        let uses = script.uses;
        if uses.payload {
            scope.push_constant("payload", Blob::from(input.payload));
        }
        if uses.text {
            let text = std::str::from_utf8(input.payload)
                .map_or(Dynamic::UNIT, |text| Dynamic::from(text.to_owned()));
            scope.push_constant_dynamic("text", text);
        }
        if uses.json {
            let json = serde_json::from_slice::<Dynamic>(input.payload).unwrap_or(Dynamic::UNIT);
            scope.push_constant_dynamic("json", json);
        }
        if uses.device {
            let mut device = Map::new();
            device.insert("uid".into(), input.device.uid.clone().into());
            device.insert(
                "identification_code".into(),
                input.device.identification_code.clone().into(),
            );
            device.insert("product_id".into(), input.device.product_id.clone().into());
            scope.push_constant("device", device);
        }
        scope.push_constant("topic", input.topic.to_owned());
        scope.push_constant("received_at", input.received_at);

        let output = self.sandbox.run(&script.script, &mut scope)?;
        let nc = raw_payload_text(input.payload);
        Ok(records_from_output(output, input, &nc)?)
    }
}
