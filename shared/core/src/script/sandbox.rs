use rhai::module_resolvers::DummyModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, Engine, OptimizationLevel, Scope, Shared};
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Instant;

use super::{Limits, ScriptError, ScriptLimit, helpers};

/// How many distinct scripts stay compiled; past this the cache starts over (scripts are few per
/// tenant, so this bound only matters against abuse).
const CACHE_CAPACITY: usize = 4096;
/// The wall clock is read once every this many operations: cheap, and still prompt.
const CLOCK_CHECK_EVERY: u64 = 256;

thread_local! {
    /// Deadline of the script running on this thread. rhai's progress callback is engine-wide,
    /// so the per-run deadline lives here.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// rhai's standard library, built once per process and shared by every engine: building it
/// registers some hundreds of functions, most of a new engine's cost.
static STANDARD_PACKAGE: LazyLock<Shared<rhai::Module>> =
    LazyLock::new(|| StandardPackage::new().as_shared_module());

/// A compiled script, cheap to clone and share between threads.
#[derive(Clone, Debug)]
pub struct CompiledScript {
    ast: Arc<AST>,
}

/// A rhai engine with the platform's helpers and limits, plus a compile cache. The engine is
/// made at the first compile: many processes never run a script (most API requests, an alarm
/// function with threshold rules only), and a Lambda cold start should not pay for it.
pub struct Sandbox {
    engine: OnceLock<Engine>,
    limits: Limits,
    cache: RwLock<HashMap<u64, (Arc<str>, CompiledScript)>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Sandbox {
    pub fn new(limits: Limits) -> Self {
        Self {
            engine: OnceLock::new(),
            limits,
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn build_engine(limits: &Limits) -> Engine {
        let mut engine = Engine::new_raw();
        engine.register_global_module(STANDARD_PACKAGE.clone());
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(
                limits.max_expression_depth,
                limits.max_function_expression_depth,
            )
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_variables(1_000)
            .set_optimization_level(OptimizationLevel::Full)
            // No file system: scripts cannot `import` modules or `eval` strings.
            .set_module_resolver(DummyModuleResolver::new())
            .disable_symbol("eval")
            .on_print(|text| tracing::debug!(target: "script", "{text}"))
            .on_debug(|text, _, pos| tracing::debug!(target: "script", %pos, "{text}"))
            .on_progress(|operations| {
                if operations % CLOCK_CHECK_EVERY == 0
                    && DEADLINE
                        .get()
                        .is_some_and(|deadline| Instant::now() > deadline)
                {
                    return Some(Dynamic::from("time limit"));
                }
                None
            });
        helpers::register(&mut engine);
        engine
    }

    fn engine(&self) -> &Engine {
        self.engine.get_or_init(|| Self::build_engine(&self.limits))
    }

    /// Compiles a script, or returns the cached compilation of the same source.
    pub fn compile(&self, source: &str) -> Result<CompiledScript, ScriptError> {
        if source.len() > self.limits.max_source_size {
            return Err(ScriptError::Limit {
                limit: ScriptLimit::SourceSize,
                at: Default::default(),
            });
        }
        let hash = source_hash(source);
        if let Some((cached_source, compiled)) = self.read_cache().get(&hash)
            && **cached_source == *source
        {
            return Ok(compiled.clone());
        }
        let ast = self
            .engine()
            .compile(source)
            .map_err(ScriptError::from_parse)?;
        let compiled = CompiledScript { ast: Arc::new(ast) };
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(hash, (Arc::from(source), compiled.clone()));
        Ok(compiled)
    }

    /// Runs a compiled script with the given scope, within the time limit.
    pub fn run(&self, script: &CompiledScript, scope: &mut Scope) -> Result<Dynamic, ScriptError> {
        let _deadline = DeadlineGuard::start(self.limits.max_time);
        self.engine()
            .eval_ast_with_scope::<Dynamic>(scope, &script.ast)
            .map_err(ScriptError::from_eval)
    }

    fn read_cache(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<u64, (Arc<str>, CompiledScript)>> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn source_hash(source: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    hasher.finish()
}

/// Sets this thread's deadline for one run and clears it afterwards, so a run that ended
/// early (by error or panic) leaves no deadline behind.
struct DeadlineGuard;

impl DeadlineGuard {
    fn start(budget: std::time::Duration) -> Self {
        DEADLINE.set(Some(Instant::now() + budget));
        Self
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(sandbox: &Sandbox, source: &str) -> Result<Dynamic, ScriptError> {
        let script = sandbox.compile(source)?;
        sandbox.run(&script, &mut Scope::new())
    }

    fn limit_of(result: Result<Dynamic, ScriptError>) -> Option<ScriptLimit> {
        match result {
            Err(ScriptError::Limit { limit, .. }) => Some(limit),
            _ => None,
        }
    }

    #[test]
    fn compile_is_cached_by_source() -> Result<(), ScriptError> {
        let sandbox = Sandbox::default();
        let a = sandbox.compile("1 + 1")?;
        let b = sandbox.compile("1 + 1")?;
        assert!(Arc::ptr_eq(&a.ast, &b.ast));
        let c = sandbox.compile("1 + 2")?;
        assert!(!Arc::ptr_eq(&a.ast, &c.ast));
        Ok(())
    }

    #[test]
    fn compile_error_names_line_and_column() {
        let err = Sandbox::default()
            .compile("let x = 1;\nlet y = ;")
            .unwrap_err();
        match &err {
            ScriptError::Compile { at, .. } => assert_eq!((at.line, at.column), (Some(2), Some(9))),
            other => panic!("expected a compile error, got {other:?}"),
        }
        assert!(err.to_string().contains("line 2, column 9"), "{err}");
    }

    #[test]
    fn infinite_loop_hits_the_operations_limit() {
        let sandbox = Sandbox::default();
        assert_eq!(
            limit_of(run(&sandbox, "loop { }")),
            Some(ScriptLimit::Operations)
        );
    }

    #[test]
    fn slow_script_hits_the_time_limit() {
        let sandbox = Sandbox::new(Limits {
            max_operations: 0, // unlimited, so only the clock can stop it
            max_time: Duration::from_millis(20),
            ..Limits::default()
        });
        assert_eq!(limit_of(run(&sandbox, "loop { }")), Some(ScriptLimit::Time));
    }

    #[test]
    fn unbounded_recursion_hits_the_call_depth_limit() {
        let sandbox = Sandbox::default();
        let result = run(&sandbox, "fn f(n) { f(n + 1) } f(0)");
        assert_eq!(limit_of(result), Some(ScriptLimit::CallDepth));
    }

    #[test]
    fn huge_string_hits_the_string_size_limit() {
        let sandbox = Sandbox::default();
        let result = run(&sandbox, r#"let s = "x"; loop { s += s; }"#);
        assert_eq!(limit_of(result), Some(ScriptLimit::StringSize));
    }

    #[test]
    fn huge_array_and_map_hit_their_limits() {
        // rhai re-measures a growing container after each change, so small limits keep this quick.
        let sandbox = Sandbox::new(Limits {
            max_array_size: 1_000,
            max_map_size: 1_000,
            max_operations: 0,
            max_time: Duration::from_secs(60), // only the size limits may stop these
            ..Limits::default()
        });
        let array = run(&sandbox, "let a = []; loop { a.push(1); }");
        assert_eq!(limit_of(array), Some(ScriptLimit::ArraySize));
        let map = run(
            &sandbox,
            "let m = #{}; let i = 0; loop { m.set(`k${i}`, i); i += 1; }",
        );
        assert_eq!(limit_of(map), Some(ScriptLimit::MapSize));
    }

    #[test]
    fn deeply_nested_expression_is_refused() {
        let source = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        let result = Sandbox::default().compile(&source).map(|_| Dynamic::UNIT);
        assert_eq!(limit_of(result), Some(ScriptLimit::ExpressionDepth));
    }

    #[test]
    fn oversized_source_is_refused() {
        let source = "1;".repeat(40_000);
        let result = Sandbox::default().compile(&source).map(|_| Dynamic::UNIT);
        assert_eq!(limit_of(result), Some(ScriptLimit::SourceSize));
    }

    #[test]
    fn thrown_error_keeps_message_and_position() {
        let err = run(&Sandbox::default(), "let a = 1;\n  throw \"bad frame\";").unwrap_err();
        match err {
            ScriptError::Runtime { message, at } => {
                assert_eq!(message, "bad frame");
                assert_eq!(at.line, Some(2));
            }
            other => panic!("expected a runtime error, got {other:?}"),
        }
    }

    #[test]
    fn eval_and_import_are_unavailable() {
        let sandbox = Sandbox::default();
        assert!(run(&sandbox, r#"eval("1")"#).is_err());
        assert!(run(&sandbox, r#"import "os" as os; 1"#).is_err());
    }
}
