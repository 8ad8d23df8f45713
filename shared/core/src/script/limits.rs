use std::time::Duration;

/// Hard limits of one script run. The defaults fit device decoders and rules with room to spare,
/// while an infinite loop or a runaway allocation stops within milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// rhai "operations" (roughly one expression node each) per run.
    pub max_operations: u64,
    /// Nested calls of script-defined functions.
    pub max_call_depth: usize,
    /// Nesting of expressions at the top level and inside functions.
    pub max_expression_depth: usize,
    pub max_function_expression_depth: usize,
    /// Bytes of any string the script builds.
    pub max_string_size: usize,
    /// Elements of any array or blob the script builds.
    pub max_array_size: usize,
    /// Entries of any object map the script builds.
    pub max_map_size: usize,
    /// Size of the script source itself.
    pub max_source_size: usize,
    /// Wall-clock time per run, checked every few hundred operations: a backstop for slow host
    /// calls. The operations limit is the one that normally stops a script (in well under this).
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 200_000,
            max_call_depth: 32,
            max_expression_depth: 64,
            max_function_expression_depth: 32,
            max_string_size: 256 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_source_size: 64 * 1024,
            max_time: Duration::from_secs(1),
        }
    }
}
