//! The artifact cache: hits load the same module, results do not depend on the path taken, and
//! artifacts this node did not compile are never deserialized.

use std::collections::BTreeMap;
use std::sync::Arc;

use platform_runtime::{
    Allocation, ArtifactCache, Compiler, EvalInput, OutcomeClass, Policy, Runtime,
};

fn module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
          (memory (export "memory") 1 1)
          (func (export "evaluate") (param i32) (result i32)
            (i64.store (i32.const 0) (i64.reinterpret_f64 (f64.div (f64.const 0) (f64.const 0))))
            (i32.store (i32.const 8) (i32.const 0))
            (drop (call $out (i32.const 0) (i32.const 12)))
            (i32.const 0))
          (@custom "challenge_abi" "\01\00\00\00"))"#,
    )
    .unwrap()
}

fn eval(rt: &Runtime, m: &platform_runtime::LoadedModule) -> platform_runtime::Evaluation {
    rt.call(
        m,
        platform_runtime::Entry::Evaluate,
        &EvalInput {
            seed: 1,
            payload: vec![],
        },
        Arc::new(BTreeMap::new()),
        Arc::new(vec![]),
    )
}

#[test]
fn cached_and_fresh_artifacts_give_the_same_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = module();
    let fresh = {
        let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let (m, stats) = rt
            .load_with(&wasm, &Compiler::InProcess, Some(&cache))
            .unwrap();
        assert!(!stats.cache_hit);
        eval(&rt, &m)
    };
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
    let cache = ArtifactCache::open(dir.path()).unwrap();
    let (m, stats) = rt
        .load_with(&wasm, &Compiler::InProcess, Some(&cache))
        .unwrap();
    assert!(
        stats.cache_hit,
        "a second runtime loads the artifact from disk"
    );
    let cached = eval(&rt, &m);
    assert_eq!(cached.outcome, OutcomeClass::Ok);
    assert_eq!(cached.digest, fresh.digest);
}

#[test]
fn an_artifact_without_this_nodes_mac_is_never_deserialized() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = module();
    {
        let rt = Runtime::new(Policy::default(), Allocation::OnDemand).unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        rt.load_with(&wasm, &Compiler::InProcess, Some(&cache))
            .unwrap();
    }
    // Replace the node's key: every cached artifact now looks foreign.
    std::fs::write(dir.path().join("mac.key"), [9u8; 32]).unwrap();
    let rt = Runtime::new(Policy::default(), Allocation::OnDemand).unwrap();
    let cache = ArtifactCache::open(dir.path()).unwrap();
    let (_, stats) = rt
        .load_with(&wasm, &Compiler::InProcess, Some(&cache))
        .unwrap();
    assert!(!stats.cache_hit, "recompiled instead of trusting the file");
    // Corrupting the artifact itself is caught the same way.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&p).unwrap();
            let n = bytes.len() / 2;
            bytes[n] ^= 0xff;
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let rt = Runtime::new(Policy::default(), Allocation::OnDemand).unwrap();
    let (_, stats) = rt
        .load_with(
            &wasm,
            &Compiler::InProcess,
            Some(&ArtifactCache::open(dir.path()).unwrap()),
        )
        .unwrap();
    assert!(!stats.cache_hit);
}

/// Loads of one module at once, from one runtime and from several sharing the cache folder (as
/// a node's per-challenge runtimes do), all succeed: each cache write has its own temporary
/// file, and a runtime compiles a module once however many evaluations ask for it together.
#[test]
fn concurrent_loads_of_one_module_all_succeed_and_one_runtime_compiles_once() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = Arc::new(module());
    let cache = Arc::new(ArtifactCache::open(dir.path()).unwrap());
    let shared = Arc::new(Runtime::new(Policy::default(), Allocation::OnDemand).unwrap());
    let loads: Vec<_> = (0..8)
        .map(|i| {
            let (wasm, cache) = (wasm.clone(), cache.clone());
            // Even threads share one runtime; odd ones each have their own.
            let rt = if i % 2 == 0 {
                shared.clone()
            } else {
                Arc::new(Runtime::new(Policy::default(), Allocation::OnDemand).unwrap())
            };
            std::thread::spawn(move || {
                let (m, stats) = rt
                    .load_with(&wasm, &Compiler::InProcess, Some(&cache))
                    .unwrap();
                (i, eval(&rt, &m).digest, stats.cache_hit)
            })
        })
        .collect();
    let results: Vec<_> = loads.into_iter().map(|t| t.join().unwrap()).collect();
    let digests: std::collections::BTreeSet<_> = results.iter().map(|r| r.1).collect();
    assert_eq!(digests.len(), 1, "{results:?}");
    let shared_compiles = results
        .iter()
        .filter(|(i, _, hit)| i % 2 == 0 && !hit)
        .count();
    assert!(shared_compiles <= 1, "{results:?}");
    // No temporary file is left behind, and what is cached verifies: a new runtime loads it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
    let rt = Runtime::new(Policy::default(), Allocation::OnDemand).unwrap();
    let (_, stats) = rt
        .load_with(&wasm, &Compiler::InProcess, Some(&cache))
        .unwrap();
    assert!(stats.cache_hit);
}
