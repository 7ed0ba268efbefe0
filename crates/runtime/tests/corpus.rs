//! Malicious and edge-case modules, compiled from WAT. Each must end in its own outcome class,
//! and the host must never panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use platform_runtime::{Allocation, EvalInput, OutcomeClass, Policy, Rejection, Runtime};

const IMPORTS: &str = r#"
  (import "challenge_v1" "input_read" (func $input_read (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "output_write" (func $output_write (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_get" (func $kv_get (param i32 i32) (result i32)))
  (import "challenge_v1" "register_read" (func $register_read (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "kv_put" (func $kv_put (param i32 i32 i32 i32) (result i32)))
  (import "challenge_v1" "kv_delete" (func $kv_delete (param i32 i32) (result i32)))
  (import "challenge_v1" "log" (func $log (param i32 i32) (result i32)))
  (import "challenge_v1" "abort" (func $abort (param i32 i32)))
  (import "challenge_v1" "asset_read" (func $asset_read (param i32 i32 i32 i32) (result i32)))
"#;

const ABI: &str = r#"(@custom "challenge_abi" "\01\00\00\00")"#;

/// Writes an `EvalOutput { score, details: [] }` at 4096 and returns its length (12).
const WRITE_SCORE: &str = r#"
  (func $score (param $s i64)
    (i64.store (i32.const 4096) (local.get $s))
    (i32.store (i32.const 4104) (i32.const 0))
    (drop (call $output_write (i32.const 4096) (i32.const 12))))
"#;

fn module(body: &str) -> Vec<u8> {
    let text =
        format!("(module {IMPORTS} (memory (export \"memory\") 1 16) {WRITE_SCORE} {body} {ABI})");
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn runtime() -> Runtime {
    Runtime::new(
        Policy {
            fuel: 50_000_000,
            deadline_ms: 5_000,
            ..Policy::default()
        },
        Allocation::Pooling,
    )
    .unwrap()
}

fn run(rt: &Runtime, wasm: &[u8]) -> platform_runtime::Evaluation {
    let m = rt.load(wasm).unwrap();
    let input = EvalInput {
        seed: 7,
        payload: b"payload".to_vec(),
    };
    rt.validate_and_evaluate(
        &m,
        &input,
        Arc::new(BTreeMap::new()),
        Arc::new(vec![b"asset zero".to_vec()]),
    )
    .1
}

fn outcome(rt: &Runtime, body: &str) -> platform_runtime::Evaluation {
    run(rt, &module(body))
}

#[test]
fn a_good_module_scores_and_writes() {
    let rt = runtime();
    let e = outcome(
        &rt,
        r#"
      (data (i32.const 0) "best")
      (func (export "evaluate") (param $len i32) (result i32)
        (drop (call $input_read (i32.const 1024) (i32.const 0) (local.get $len)))
        (drop (call $kv_put (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 8)))
        (drop (call $log (i32.const 0) (i32.const 4)))
        (call $score (i64.const 750000000))
        (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::Ok, "{:?}", e.error);
    assert_eq!(e.score, Some(750_000_000));
    assert_eq!(
        e.write_set,
        vec![(b"best".to_vec(), Some(7u64.to_le_bytes().to_vec()))]
    );
    assert_eq!(e.logs, vec!["best".to_string()]);
    assert!(e.fuel_used > 0);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let e = outcome(
        &runtime(),
        r#"(func (export "evaluate") (param i32) (result i32) (loop $l (br $l)) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::OutOfFuel);
}

#[test]
fn memory_grow_bomb_hits_the_memory_limit() {
    let e = outcome(
        &runtime(),
        r#"(func (export "evaluate") (param i32) (result i32)
        (loop $l (drop (memory.grow (i32.const 1))) (br $l)) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::MemoryLimit, "{:?}", e.error);
}

#[test]
fn table_grow_bomb_hits_the_limit() {
    let rt = runtime();
    let wasm = wat::parse_str(format!(r#"(module {IMPORTS} (memory (export "memory") 1 1) (table 1 100 funcref)
        (func (export "evaluate") (param i32) (result i32)
          (loop $l (drop (table.grow (ref.null func) (i32.const 10))) (br $l)) (i32.const 0)) {ABI})"#)).unwrap();
    assert_eq!(run(&rt, &wasm).outcome, OutcomeClass::MemoryLimit);
}

#[test]
fn deep_recursion_traps() {
    let e = outcome(
        &runtime(),
        r#"
      (func $down (param i64) (result i64) (call $down (i64.add (local.get 0) (i64.const 1))))
      (func (export "evaluate") (param i32) (result i32) (drop (call $down (i64.const 0))) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::Trap);
}

#[test]
fn huge_or_repeated_output_is_refused() {
    let rt = runtime();
    let e = outcome(
        &rt,
        r#"(func (export "evaluate") (param i32) (result i32)
        (drop (call $output_write (i32.const 0) (i32.const 65537))) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::OutputTooLarge);
    let e = outcome(
        &rt,
        r#"(func (export "evaluate") (param i32) (result i32)
        (call $score (i64.const 1)) (call $score (i64.const 2)) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::OutputTooLarge);
}

#[test]
fn missing_or_malformed_output_is_invalid_output() {
    let rt = runtime();
    let e = outcome(
        &rt,
        r#"(func (export "evaluate") (param i32) (result i32) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::InvalidOutput);
    let e = outcome(
        &rt,
        r#"(func (export "evaluate") (param i32) (result i32)
        (drop (call $output_write (i32.const 0) (i32.const 5))) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::InvalidOutput);
}

#[test]
fn log_flood_is_capped_not_fatal() {
    let e = outcome(
        &runtime(),
        r#"
      (data (i32.const 0) "flood")
      (func (export "evaluate") (param i32) (result i32) (local $i i32)
        (loop $l
          (drop (call $log (i32.const 0) (i32.const 5)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
        (call $score (i64.const 1)) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::Ok);
    assert_eq!(e.logs.len(), 100);
}

#[test]
fn out_of_bounds_pointers_trap_in_every_host_function() {
    let rt = runtime();
    let bad = "(i32.const 2147483647)";
    for call in [
        format!("(drop (call $input_read {bad} (i32.const 0) (i32.const 4)))"),
        format!("(drop (call $output_write {bad} (i32.const 12)))"),
        format!("(drop (call $kv_get {bad} (i32.const 4)))"),
        format!("(drop (call $kv_put (i32.const 0) (i32.const 4) {bad} (i32.const 4)))"),
        format!("(drop (call $kv_delete {bad} (i32.const 4)))"),
        format!("(drop (call $log {bad} (i32.const 4)))"),
        format!("(call $abort {bad} (i32.const 4))"),
        format!("(drop (call $asset_read (i32.const 0) {bad} (i32.const 0) (i32.const 4)))"),
        // register_read: fill the register first, then copy it out of bounds.
        format!(
            "(drop (call $kv_put (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4))) (drop (call $kv_get (i32.const 0) (i32.const 1))) (drop (call $register_read {bad} (i32.const 0) (i32.const 4)))"
        ),
        // A length that wraps around the address space.
        "(drop (call $log (i32.const 16) (i32.const -1)))".to_string(),
    ] {
        let e = outcome(
            &rt,
            &format!(r#"(func (export "evaluate") (param i32) (result i32) {call} (i32.const 0))"#),
        );
        assert_eq!(e.outcome, OutcomeClass::Trap, "{call}: {:?}", e.error);
    }
}

#[test]
fn kv_put_flood_is_stopped() {
    let e = outcome(
        &runtime(),
        r#"
      (func (export "evaluate") (param i32) (result i32) (local $i i32)
        (loop $l
          (i32.store (i32.const 0) (local.get $i))
          (drop (call $kv_put (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 4)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l))
        (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::Trap);
    assert!(e.error.unwrap().contains("KV"));
}

#[test]
fn abort_is_a_trap_with_a_message_outside_the_digest() {
    let rt = runtime();
    let a = outcome(
        &rt,
        r#"(data (i32.const 0) "boom") (func (export "evaluate") (param i32) (result i32) (call $abort (i32.const 0) (i32.const 4)) (i32.const 0))"#,
    );
    let b = outcome(
        &rt,
        r#"(data (i32.const 0) "bang") (func (export "evaluate") (param i32) (result i32) (call $abort (i32.const 0) (i32.const 4)) (i32.const 0))"#,
    );
    assert_eq!(a.outcome, OutcomeClass::Trap);
    assert!(a.error.as_deref().unwrap().contains("boom"));
    assert_eq!(a.digest, b.digest, "error strings never enter the digest");
}

#[test]
fn validate_export_refuses_payloads() {
    let e = outcome(
        &runtime(),
        r#"
      (func (export "validate") (param i32) (result i32) (i32.const 1))
      (func (export "evaluate") (param i32) (result i32) (call $score (i64.const 1)) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::Invalid);
}

#[test]
fn static_validation_rejects_with_specific_reasons() {
    let rt = runtime();
    let reject = |text: &str| match rt.load(&wat::parse_str(text).unwrap()) {
        Err(platform_runtime::LoadError::Rejected(r)) => r,
        Err(e) => panic!("expected a rejection, got {e}"),
        Ok(_) => panic!("expected a rejection"),
    };
    let eval = r#"(func (export "evaluate") (param i32) (result i32) (i32.const 0))"#;
    assert!(matches!(
        reject(&format!(
            r#"(module (import "wasi" "fd_write" (func)) (memory (export "memory") 1 1) {eval} {ABI})"#
        )),
        Rejection::ForbiddenImport { .. }
    ));
    assert!(matches!(
        reject(&format!(
            r#"(module (import "challenge_v1" "exec" (func)) (memory (export "memory") 1 1) {eval} {ABI})"#
        )),
        Rejection::ForbiddenImport { .. }
    ));
    assert!(matches!(
        reject(&format!(
            r#"(module (import "challenge_v1" "log" (func (param i64))) (memory (export "memory") 1 1) {eval} {ABI})"#
        )),
        Rejection::ForbiddenImport { .. }
    ));
    assert_eq!(
        reject(&format!(r#"(module (memory (export "memory") 1 1) {ABI})"#)),
        Rejection::MissingExport("evaluate")
    );
    assert_eq!(
        reject(&format!(r#"(module (memory 1 1) {eval} {ABI})"#)),
        Rejection::MissingExport("memory")
    );
    assert_eq!(
        reject(&format!(
            r#"(module (memory (export "memory") 1 1) {eval})"#
        )),
        Rejection::MissingAbiSection
    );
    assert!(matches!(
        reject(&format!(
            r#"(module (memory (export "memory") 1 1) {eval} (@custom "challenge_abi" "\02\00\00\00"))"#
        )),
        Rejection::UnsupportedAbi(_)
    ));
    assert!(matches!(
        reject(&format!(
            r#"(module (memory (export "memory") 1) {eval} {ABI})"#
        )),
        Rejection::Memory(_)
    ));
    assert!(matches!(
        reject(&format!(
            r#"(module (memory (export "memory") 1 1000) {eval} {ABI})"#
        )),
        Rejection::Memory(_)
    ));
    assert!(matches!(
        reject(&format!(
            r#"(module (memory (export "memory") 1 1) (table 1 20000 funcref) {eval} {ABI})"#
        )),
        Rejection::Table(_)
    ));
    assert!(matches!(
        reject(&format!(
            r#"(module (memory (export "memory") 1 1) (table 1 10 funcref) (table 1 10 funcref) {eval} {ABI})"#
        )),
        Rejection::Table(_)
    ));
    let many_locals = format!(
        r#"(module (memory (export "memory") 1 1) (func (local {})) {eval} {ABI})"#,
        "i32 ".repeat(3000)
    );
    assert!(matches!(
        reject(&many_locals),
        Rejection::TooMany {
            what: "locals in one function",
            ..
        }
    ));
    // Oversized: a module over the policy's 4 MiB.
    let big = format!(
        r#"(module (memory (export "memory") 1 1) (data (i32.const 0) "{}") {eval} {ABI})"#,
        "a".repeat(5 * 1024 * 1024)
    );
    assert!(matches!(reject(&big), Rejection::TooLarge { .. }));
    assert!(matches!(
        rt.load(b"\0asm garbage"),
        Err(platform_runtime::LoadError::Rejected(Rejection::Invalid(_)))
    ));
}

const NAN_MODULE: &str = r#"
  (func (export "evaluate") (param i32) (result i32)
    ;; 0/0 and sqrt(-1) produce NaNs whose bit patterns differ across CPUs unless canonicalized.
    (i64.store (i32.const 4096) (i64.reinterpret_f64 (f64.div (f64.const 0) (f64.const 0))))
    (i64.store (i32.const 4096)
      (i64.xor (i64.load (i32.const 4096))
               (i64.reinterpret_f64 (f64.sqrt (f64.const -1)))))
    (i32.store (i32.const 4104) (i32.const 8))
    (i64.store (i32.const 4108) (i64.reinterpret_f64 (f64.add (f64.const nan:0x1234) (f64.const 1))))
    (drop (call $output_write (i32.const 4096) (i32.const 20)))
    (i32.const 0))"#;

#[test]
fn nan_code_gives_identical_receipts_across_runs_and_allocators() {
    let wasm = module(NAN_MODULE);
    let pooled = runtime();
    let on_demand = Runtime::new(
        Policy {
            fuel: 50_000_000,
            deadline_ms: 5_000,
            ..Policy::default()
        },
        Allocation::OnDemand,
    )
    .unwrap();
    let a = run(&pooled, &wasm);
    let b = run(&pooled, &wasm);
    let c = run(&on_demand, &wasm);
    assert_eq!(a.outcome, OutcomeClass::Ok, "{:?}", a.error);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.output, c.output);
    assert_eq!(a.fuel_used, c.fuel_used);
    assert_eq!(a.digest, c.digest, "pooling and on-demand allocation agree");
}

/// The ABI's input and output encodings are frozen (the SDK mirrors them).
#[test]
fn golden_abi_encodings() {
    let input = platform_primitives::encode(&EvalInput {
        seed: 1,
        payload: vec![2, 3],
    });
    assert_eq!(hex::encode(input), "0100000000000000020000000203");
    let output = platform_primitives::encode(&platform_runtime::EvalOutput {
        score: 5,
        details: vec![9],
    });
    assert_eq!(hex::encode(output), "05000000000000000100000009");
}

/// With fuel to spare, the wall-clock backstop ends a runaway call as `deadline`: this validator
/// has no result (never a score).
#[test]
fn the_wall_clock_backstop_reports_deadline() {
    let rt = Runtime::new(
        Policy {
            fuel: u64::MAX / 2,
            deadline_ms: 50,
            ..Policy::default()
        },
        Allocation::Pooling,
    )
    .unwrap();
    let e = outcome(
        &rt,
        r#"(func (export "evaluate") (param i32) (result i32) (loop $l (br $l)) (i32.const 0))"#,
    );
    assert_eq!(e.outcome, OutcomeClass::Deadline);
    assert_eq!(e.score, None);
}

#[test]
fn query_and_weights_exports_are_callable() {
    let rt = runtime();
    let m = rt.load(&module(r#"
      (func (export "evaluate") (param i32) (result i32) (call $score (i64.const 1)) (i32.const 0))
      (func (export "query") (param i32) (result i32) (call $score (i64.const 2)) (i32.const 0))
      (func (export "weights") (param i32) (result i32) (call $score (i64.const 3)) (i32.const 0))"#)).unwrap();
    let input = EvalInput {
        seed: 0,
        payload: vec![],
    };
    for (entry, score) in [
        (platform_runtime::Entry::Evaluate, 1),
        (platform_runtime::Entry::Query, 2),
        (platform_runtime::Entry::Weights, 3),
    ] {
        let e = rt.call(
            &m,
            entry,
            &input,
            Arc::new(BTreeMap::new()),
            Arc::new(vec![]),
        );
        assert_eq!(e.score, Some(score), "{entry:?}");
    }
    // A module without the export gives a trap, not a panic.
    let plain = rt
        .load(&module(
            r#"(func (export "evaluate") (param i32) (result i32) (i32.const 0))"#,
        ))
        .unwrap();
    let e = rt.call(
        &plain,
        platform_runtime::Entry::Query,
        &input,
        Arc::new(BTreeMap::new()),
        Arc::new(vec![]),
    );
    assert_eq!(e.outcome, OutcomeClass::Trap);
}
