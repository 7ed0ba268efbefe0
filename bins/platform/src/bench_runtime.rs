//! `platform bench runtime`: the challenge sandbox against its targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use platform_runtime::{
    Allocation, ArtifactCache, Compiler, Entry, EvalInput, LoadedModule, Policy, Runtime,
};
use serde::Serialize;

#[derive(Serialize)]
pub struct RuntimeFigures {
    trivial_eval_p50_us: f64,
    full_eval_p50_us: f64,
    evals_per_sec_1t: u64,
    evals_per_sec_2t: u64,
    scaling_2t: f64,
    /// One runtime per thread (each with its own engine and pool).
    evals_per_sec_2t_sharded: u64,
    scaling_2t_sharded: f64,
    compile_ms: Option<f64>,
    cache_hit_load_ms: Option<f64>,
    fuel_overhead_pct: Option<f64>,
    examples: BTreeMap<String, ExampleFigures>,
    examples_dir: PathBuf,
}

#[derive(Serialize)]
struct ExampleFigures {
    eval_p50_us: f64,
    unmetered_eval_p50_us: f64,
    fuel_overhead_pct: f64,
    compile_ms: f64,
    cache_hit_load_ms: f64,
}

fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Median of `n` timed calls (after one warm-up).
fn p50(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[n / 2]
}

fn eval(
    rt: &Runtime,
    m: &LoadedModule,
    input: &EvalInput,
    state: &Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
    assets: &Arc<Vec<Vec<u8>>>,
) {
    std::hint::black_box(rt.call(m, Entry::Evaluate, input, state.clone(), assets.clone()));
}

/// Evaluations per second with one thread per `(runtime, module)` pair; the same runtime may
/// appear several times (shared) or each thread may own one (sharded, as an evaluator pool).
fn throughput(shards: &[(&Runtime, &LoadedModule)], per_thread: usize) -> u64 {
    let input = EvalInput {
        seed: 0,
        payload: Vec::new(),
    };
    let state = Arc::new(BTreeMap::new());
    let none = Arc::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for &(rt, m) in shards {
            let (input, state, none) = (&input, &state, &none);
            s.spawn(move || (0..per_thread).for_each(|_| eval(rt, m, input, state, none)));
        }
    });
    ((shards.len() * per_thread) as f64 / start.elapsed().as_secs_f64()) as u64
}

/// `n` runtimes, each with its own engine and pool, each loading `wasm`.
fn shards(wasm: &[u8], n: usize) -> Result<Vec<(Runtime, Arc<LoadedModule>)>> {
    (0..n)
        .map(|_| {
            let rt =
                Runtime::new(Policy::default(), Allocation::Pooling).map_err(anyhow::Error::msg)?;
            let m = rt.load(wasm)?;
            Ok((rt, m))
        })
        .collect()
}

pub fn run(quick: bool, examples_dir: &Path) -> Result<RuntimeFigures> {
    let n = if quick { 200 } else { 20_000 };
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).map_err(anyhow::Error::msg)?;
    let trivial = rt.load(&wat::parse_str(platform_runtime::fixtures::TRIVIAL_WAT)?)?;
    let full = rt.load(&wat::parse_str(platform_runtime::fixtures::FULL_ABI_WAT)?)?;
    let empty = Arc::new(BTreeMap::new());
    let small = EvalInput {
        seed: 0,
        payload: Vec::new(),
    };
    let none = Arc::new(Vec::new());
    let trivial_p50 = p50(n, || eval(&rt, &trivial, &small, &empty, &none));
    // 8-byte seed + 4-byte length + 52 bytes of payload = 64 bytes of input.
    let input64 = platform_runtime::fixtures::input_64();
    let kv = Arc::new(BTreeMap::from([(b"counter".to_vec(), vec![0u8; 8])]));
    let full_p50 = p50(n, || eval(&rt, &full, &input64, &kv, &none));
    let per_thread = if quick { 1_000 } else { 100_000 };
    let one = throughput(&[(&rt, &trivial)], per_thread);
    let two = throughput(&[(&rt, &trivial), (&rt, &trivial)], per_thread);
    let trivial_wasm = wat::parse_str(platform_runtime::fixtures::TRIVIAL_WAT)?;
    let own = shards(&trivial_wasm, 2)?;
    let one_sharded = throughput(&[(&own[0].0, &own[0].1)], per_thread);
    let two_sharded = throughput(
        &[(&own[0].0, &own[0].1), (&own[1].0, &own[1].1)],
        per_thread,
    );

    let mut examples = BTreeMap::new();
    let cache_dir =
        std::env::temp_dir().join(format!("platform-bench-artifacts-{}", std::process::id()));
    for name in ["tsp", "classifier"] {
        let path = examples_dir.join(format!("{name}.wasm"));
        let Ok(wasm) = std::fs::read(&path) else {
            continue;
        };
        let source = examples_dir.join("../../..").join(name);
        let payload = std::fs::read(source.join("samples/good1.bin")).unwrap_or_default();
        let assets = Arc::new(platform_runtime::fixtures::challenge_assets(&source)?);
        let input = EvalInput { seed: 0, payload };
        let runs = if quick { 5 } else { 2_000 };
        let fresh =
            Runtime::new(Policy::default(), Allocation::Pooling).map_err(anyhow::Error::msg)?;
        let cache = ArtifactCache::open(&cache_dir)?;
        let (m, compiled) = fresh.load_with(&wasm, &Compiler::InProcess, Some(&cache))?;
        let reload =
            Runtime::new(Policy::default(), Allocation::Pooling).map_err(anyhow::Error::msg)?;
        let (_, hit) = reload.load_with(&wasm, &Compiler::InProcess, Some(&cache))?;
        let unmetered_rt =
            Runtime::unmetered_for_measurement(Policy::default(), Allocation::Pooling)
                .map_err(anyhow::Error::msg)?;
        let um = unmetered_rt.load(&wasm)?;
        // Alternate metered and unmetered calls so that drift in machine speed hits both alike.
        let (mut with_fuel, mut without) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for _ in 0..runs {
            let t = Instant::now();
            eval(&fresh, &m, &input, &empty, &assets);
            with_fuel.push(t.elapsed());
            let t = Instant::now();
            eval(&unmetered_rt, &um, &input, &empty, &assets);
            without.push(t.elapsed());
        }
        with_fuel.sort();
        without.sort();
        let (metered, unmetered) = (with_fuel[runs / 2], without[runs / 2]);
        let overhead = (metered.as_secs_f64() / unmetered.as_secs_f64() - 1.0) * 100.0;
        examples.insert(
            name.to_owned(),
            ExampleFigures {
                eval_p50_us: us(metered),
                unmetered_eval_p50_us: us(unmetered),
                fuel_overhead_pct: (overhead * 10.0).round() / 10.0,
                compile_ms: ms(compiled.compile),
                cache_hit_load_ms: ms(hit.total),
            },
        );
    }
    let _ = std::fs::remove_dir_all(&cache_dir);
    let max = |f: fn(&ExampleFigures) -> f64| examples.values().map(f).reduce(f64::max);
    Ok(RuntimeFigures {
        trivial_eval_p50_us: us(trivial_p50),
        full_eval_p50_us: us(full_p50),
        evals_per_sec_1t: one,
        evals_per_sec_2t: two,
        scaling_2t: ((two as f64 / one as f64 / 2.0) * 100.0).round() / 100.0,
        evals_per_sec_2t_sharded: two_sharded,
        scaling_2t_sharded: ((two_sharded as f64 / one_sharded as f64 / 2.0) * 100.0).round()
            / 100.0,
        compile_ms: max(|e| e.compile_ms),
        cache_hit_load_ms: max(|e| e.cache_hit_load_ms),
        fuel_overhead_pct: max(|e| e.fuel_overhead_pct),
        examples,
        examples_dir: examples_dir.to_owned(),
    })
}

/// Prints the figures against the targets.
pub fn print(f: &RuntimeFigures) {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "trivial evaluation p50   {:>9} µs   target ≤ 5 µs: {}",
        f.trivial_eval_p50_us,
        met(f.trivial_eval_p50_us <= 5.0)
    );
    println!(
        "full ABI round trip p50  {:>9} µs   target ≤ 10 µs: {}",
        f.full_eval_p50_us,
        met(f.full_eval_p50_us <= 10.0)
    );
    println!(
        "evaluations/s, 1 thread  {:>9}      target ≥ 100,000: {}",
        f.evals_per_sec_1t,
        met(f.evals_per_sec_1t >= 100_000)
    );
    println!(
        "evaluations/s, 2 threads {:>9}      scaling {} (target ≥ 0.8): {}",
        f.evals_per_sec_2t,
        f.scaling_2t,
        met(f.scaling_2t >= 0.8)
    );
    println!(
        "evaluations/s, 2 threads, one runtime each {:>9}  scaling {} (target ≥ 0.8): {}",
        f.evals_per_sec_2t_sharded,
        f.scaling_2t_sharded,
        met(f.scaling_2t_sharded >= 0.8)
    );
    for (name, e) in &f.examples {
        println!(
            "{name:<11} eval p50 {} µs (unmetered {} µs, fuel overhead {}%), compile {} ms, cache-hit load {} ms",
            e.eval_p50_us,
            e.unmetered_eval_p50_us,
            e.fuel_overhead_pct,
            e.compile_ms,
            e.cache_hit_load_ms
        );
    }
    match (f.cache_hit_load_ms, f.fuel_overhead_pct) {
        (Some(load), Some(fuel)) => {
            println!(
                "cache-hit module load    {load:>9} ms   target ≤ 1 ms: {}",
                met(load <= 1.0)
            );
            println!(
                "fuel overhead (max)      {fuel:>9} %    target ≤ 10%: {}",
                met(fuel <= 10.0)
            );
        }
        _ => println!(
            "example challenges not found in {}: build them with `cargo build --release --manifest-path challenges/Cargo.toml`",
            f.examples_dir.display()
        ),
    }
}
