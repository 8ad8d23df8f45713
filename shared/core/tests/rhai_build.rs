//! The rhai this build links must keep floats, 64-bit integers and the sandbox limits. A
//! dependency that switches on `no_float`, `only_i32` or `unchecked` for rhai (the `casbin`
//! crate does) switches them on for every crate in the build; run in the workspace's test
//! command, this test fails if any member pulls such a dependency in.

use iot_core::script::{Dynamic, Limits, Sandbox, Scope, ScriptError};

fn eval(source: &str) -> Result<Dynamic, ScriptError> {
    let sandbox = Sandbox::new(Limits::default());
    let script = sandbox.compile(source)?;
    sandbox.run(&script, &mut Scope::new())
}

#[test]
fn floats_and_64_bit_integers_are_there() -> Result<(), ScriptError> {
    let half = eval("let x = 21.5; x * 2.0")?;
    assert_eq!(half.as_float().ok(), Some(43.0));
    let big = eval("4_000_000_000 * 2")?;
    assert_eq!(big.as_int().ok(), Some(8_000_000_000));
    Ok(())
}

#[test]
fn operation_and_size_limits_are_enforced() {
    let looped = eval("let n = 0; loop { n += 1; }");
    assert!(
        matches!(looped, Err(ScriptError::Limit { .. })),
        "an endless loop must hit the operations limit: {looped:?}"
    );
    let grown = eval("let s = \"x\"; loop { s += s; }");
    assert!(
        matches!(grown, Err(ScriptError::Limit { .. })),
        "a growing string must hit the size limit: {grown:?}"
    );
}
