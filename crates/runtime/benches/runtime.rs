//! Per-evaluation costs of the sandbox. Run: `cargo bench -p platform-runtime --bench runtime`
//! (build the example challenges first for the `example` and `compile` groups).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use platform_runtime::{Allocation, Entry, EvalInput, Policy, Runtime};

const TRIVIAL: &str = r#"(module (memory (export "memory") 1 1)
  (func (export "evaluate") (param i32) (result i32) (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

const FULL: &str = r#"(module
  (import "challenge_v1" "input_read" (func $in (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_get" (func $get (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "counter")
  (func (export "evaluate") (param $len i32) (result i32)
    (drop (call $in (i32.const 64) (i32.const 0) (local.get $len)))
    (drop (call $get (i32.const 0) (i32.const 7)))
    (drop (call $put (i32.const 0) (i32.const 7) (i32.const 64) (i32.const 8)))
    (i64.store (i32.const 256) (i64.const 1))
    (i32.store (i32.const 264) (i32.const 0))
    (drop (call $out (i32.const 256) (i32.const 12)))
    (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

fn evaluations(c: &mut Criterion) {
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
    let trivial = rt.load(&wat::parse_str(TRIVIAL).unwrap()).unwrap();
    let full = rt.load(&wat::parse_str(FULL).unwrap()).unwrap();
    let empty = Arc::new(BTreeMap::new());
    let kv = Arc::new(BTreeMap::from([(b"counter".to_vec(), vec![0u8; 8])]));
    let small = EvalInput {
        seed: 0,
        payload: Vec::new(),
    };
    let input64 = EvalInput {
        seed: 7,
        payload: vec![1; 52],
    };
    c.bench_function("eval/trivial", |b| {
        b.iter(|| {
            rt.call(
                &trivial,
                Entry::Evaluate,
                &small,
                empty.clone(),
                Arc::new(Vec::new()),
            )
        })
    });
    c.bench_function("eval/full_abi_64b", |b| {
        b.iter(|| {
            rt.call(
                &full,
                Entry::Evaluate,
                &input64,
                kv.clone(),
                Arc::new(Vec::new()),
            )
        })
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../challenges");
    for name in ["tsp", "classifier"] {
        let Ok(wasm) =
            std::fs::read(dir.join(format!("target/wasm32-unknown-unknown/release/{name}.wasm")))
        else {
            continue;
        };
        let payload = std::fs::read(dir.join(name).join("samples/good1.bin")).unwrap();
        let input = EvalInput { seed: 0, payload };
        let m = rt.load(&wasm).unwrap();
        c.bench_function(&format!("example/{name}"), |b| {
            b.iter(|| {
                rt.call(
                    &m,
                    Entry::Evaluate,
                    &input,
                    empty.clone(),
                    Arc::new(Vec::new()),
                )
            })
        });
        c.bench_function(&format!("compile/{name}"), |b| {
            b.iter(|| rt.engine().precompile_module(&wasm).unwrap())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).sample_size(30);
    targets = evaluations
}
criterion_main!(benches);
