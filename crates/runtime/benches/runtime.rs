//! Per-evaluation costs of the sandbox. Run: `cargo bench -p platform-runtime --bench runtime`
//! (build the example challenges first for the `example` and `compile` groups).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use platform_runtime::{Allocation, Entry, EvalInput, Policy, Runtime};

fn evaluations(c: &mut Criterion) {
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
    let trivial = rt
        .load(&wat::parse_str(platform_runtime::fixtures::TRIVIAL_WAT).unwrap())
        .unwrap();
    let full = rt
        .load(&wat::parse_str(platform_runtime::fixtures::FULL_ABI_WAT).unwrap())
        .unwrap();
    let empty = Arc::new(BTreeMap::new());
    let kv = Arc::new(BTreeMap::from([(b"counter".to_vec(), vec![0u8; 8])]));
    let small = EvalInput {
        seed: 0,
        payload: Vec::new(),
    };
    let input64 = platform_runtime::fixtures::input_64();
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
        let assets =
            Arc::new(platform_runtime::fixtures::challenge_assets(&dir.join(name)).unwrap());
        let m = rt.load(&wasm).unwrap();
        c.bench_function(&format!("example/{name}"), |b| {
            b.iter(|| rt.call(&m, Entry::Evaluate, &input, empty.clone(), assets.clone()))
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
