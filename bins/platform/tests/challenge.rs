//! `platform challenge inspect|test` and bounded compilation through the real worker process.

use std::path::Path;
use std::time::Duration;

use platform_runtime::{Allocation, CompileLimits, Compiler, LoadError, Policy, Runtime};

mod common;

use common::{json, platform};

const GOOD: &str = r#"(module
  (import "challenge_v1" "input_read" (func $in (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 4)
  (data (i32.const 0) "k")
  (func (export "validate") (param $len i32) (result i32)
    ;; refuse payloads whose first byte is 'x' (input: 8-byte seed, 4-byte length, payload)
    (drop (call $in (i32.const 100) (i32.const 0) (local.get $len)))
    (i32.eq (i32.load8_u (i32.const 112)) (i32.const 120)))
  (func (export "evaluate") (param $len i32) (result i32)
    (drop (call $in (i32.const 100) (i32.const 0) (local.get $len)))
    (drop (call $put (i32.const 0) (i32.const 1) (i32.const 112) (i32.const 1)))
    ;; score = payload length * 1e9 / 10
    (i64.store (i32.const 200) (i64.mul (i64.extend_i32_u (i32.load (i32.const 108))) (i64.const 100000000)))
    (i32.store (i32.const 208) (i32.const 0))
    (drop (call $out (i32.const 200) (i32.const 12)))
    (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

fn write(dir: &Path, name: &str, contents: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p.display().to_string()
}

#[test]
fn inspect_and_test_a_wat_module() {
    let d = tempfile::tempdir().unwrap();
    let wat = write(d.path(), "good.wat", GOOD.as_bytes());
    let v = json(&platform(&["challenge", "inspect", &wat, "--json"]));
    assert_eq!(v["valid"], true);
    assert_eq!(v["abi_version"], 1);
    assert!(
        v["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "validate")
    );

    let payload = write(d.path(), "payload.bin", b"abcde");
    let out = platform(&[
        "challenge",
        "test",
        &wat,
        "--submission",
        &payload,
        "--seed",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["score"], "0.500000000");
    assert_eq!(v["write_set_entries"], 1);
    assert!(v["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(v["receipt"].as_str().unwrap().len(), 64);
    assert!(v["wall_us"].is_u64());

    // The same run gives the same receipt.
    let again = json(&platform(&[
        "challenge",
        "test",
        &wat,
        "--submission",
        &payload,
        "--seed",
        "3",
        "--json",
    ]));
    assert_eq!(again["receipt"], v["receipt"]);

    let refused = write(d.path(), "bad.bin", b"xyz");
    let v = json(&platform(&[
        "challenge",
        "test",
        &wat,
        "--submission",
        &refused,
        "--json",
    ]));
    assert_eq!(v["outcome"], "invalid");
    let v = json(&platform(&[
        "challenge",
        "test",
        &wat,
        "--submission",
        &payload,
        "--fuel",
        "300",
        "--json",
    ]));
    assert_eq!(v["outcome"], "out_of_fuel");
}

#[test]
fn a_rejected_module_exits_2_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let wat = write(d.path(), "bad.wat", br#"(module (import "env" "sneaky" (func)) (memory (export "memory") 1 1) (func (export "evaluate") (param i32) (result i32) (i32.const 0)) (@custom "challenge_abi" "\01\00\00\00"))"#);
    let payload = write(d.path(), "p.bin", b"x");
    let out = platform(&["challenge", "test", &wat, "--submission", &payload]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rejected") && text.contains("forbidden import env::sneaky"),
        "{text}"
    );
    let out = platform(&["challenge", "inspect", &wat, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["valid"], false);
    let out = platform(&[
        "challenge",
        "inspect",
        &write(d.path(), "junk.wat", b"(module (func"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

/// A large module (2.9 MB of code over 1,000 locals) compiled through the real worker process
/// under tight limits: the worker is stopped and the caller gets a clear error; the node is fine.
#[test]
fn compilation_is_bounded_in_time_and_memory() {
    let mut body = String::new();
    for i in 0..300_000u32 {
        let (a, b, c) = (i % 997, (i * 7) % 991, (i * 13) % 983);
        body.push_str(&format!(
            "(local.set {c} (i32.mul (local.get {a}) (local.get {b})))"
        ));
    }
    let text = format!(
        r#"(module (memory (export "memory") 1 1) (func (export "evaluate") (param i32) (result i32) (local {}) {body} (i32.const 0)) (@custom "challenge_abi" "\01\00\00\00"))"#,
        "i32 ".repeat(999)
    );
    let wasm = wat::parse_str(&text).unwrap();
    let rt = Runtime::new(Policy::default(), Allocation::OnDemand).unwrap();
    let worker = |limits| Compiler::Subprocess {
        program: env!("CARGO_BIN_EXE_platform").into(),
        args: vec!["runtime-compile-worker".into()],
        limits,
    };
    let wall = CompileLimits {
        wall: Duration::from_millis(50),
        ..CompileLimits::default()
    };
    match rt.load_with(&wasm, &worker(wall), None) {
        Err(LoadError::Compile(e)) => assert!(e.contains("wall-clock limit"), "{e}"),
        other => panic!("expected the wall-clock limit, got {:?}", other.map(|_| ())),
    }
    let memory = CompileLimits {
        memory_bytes: 64 << 20,
        ..CompileLimits::default()
    };
    match rt.load_with(&wasm, &worker(memory), None) {
        Err(LoadError::Compile(e)) => assert!(
            e.contains("limit") || e.contains("memory") || e.contains("signal"),
            "{e}"
        ),
        other => panic!("expected the memory limit, got {:?}", other.map(|_| ())),
    }
    // With the default limits the same module compiles in the worker and runs.
    let (m, stats) = rt
        .load_with(&wasm, &worker(CompileLimits::default()), None)
        .unwrap();
    assert!(!stats.cache_hit);
    assert_eq!(m.info.abi_version, 1);
}

/// `challenge new` scaffolds a crate that builds and tests as generated, outside this repository.
#[test]
fn a_new_challenge_builds_and_tests_as_generated() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("my-challenge");
    let p = path.display().to_string();
    let out = platform(&["challenge", "new", &p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = platform(&["challenge", "new", &p]);
    assert!(!out.status.success(), "refuses to overwrite");

    let out = platform(&["challenge", "build", &p, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = json(&out);
    let wasm = built["wasm"].as_str().unwrap().to_owned();
    assert!(wasm.ends_with("my_challenge.wasm"), "{wasm}");
    assert_eq!(built["hash"].as_str().unwrap().len(), 64);
    assert!(built["size"].as_u64().unwrap() > 0);

    let good = path.join("samples/good1.bin").display().to_string();
    let v = json(&platform(&[
        "challenge",
        "test",
        &wasm,
        "--submission",
        &good,
        "--json",
    ]));
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["score"], "0.750000000");
    let invalid = path.join("samples/invalid1.bin").display().to_string();
    let v = json(&platform(&[
        "challenge",
        "test",
        &wasm,
        "--submission",
        &invalid,
        "--json",
    ]));
    assert_eq!(v["outcome"], "invalid");
}

#[test]
fn query_and_weights_entries_run_from_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let wat = write(
        d.path(),
        "q.wat",
        br#"(module
      (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
      (memory (export "memory") 1 1)
      (func $emit (param i64) (i64.store (i32.const 0) (local.get 0)) (i32.store (i32.const 8) (i32.const 0))
        (drop (call $out (i32.const 0) (i32.const 12))))
      (func (export "evaluate") (param i32) (result i32) (call $emit (i64.const 1)) (i32.const 0))
      (func (export "query") (param i32) (result i32) (call $emit (i64.const 2000000000)) (i32.const 0))
      (func (export "weights") (param i32) (result i32) (call $emit (i64.const 3000000000)) (i32.const 0))
      (@custom "challenge_abi" "\01\00\00\00"))"#,
    );
    let payload = write(d.path(), "p.bin", b"x");
    for (entry, score) in [("query", "2.000000000"), ("weights", "3.000000000")] {
        let v = json(&platform(&[
            "challenge",
            "test",
            &wat,
            "--submission",
            &payload,
            "--entry",
            entry,
            "--json",
        ]));
        assert_eq!(v["score"], score, "{entry}");
    }
}
