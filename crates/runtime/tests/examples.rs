//! The example challenges (`challenges/`), built for wasm32 and run through the runtime with
//! their sample submissions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform_runtime::{
    Allocation, ArtifactCache, Compiler, EvalInput, OutcomeClass, Policy, Runtime,
};

fn challenges_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../challenges")
}

/// Builds the example challenges (cargo serializes concurrent builds) and returns a module.
fn module(name: &str) -> Vec<u8> {
    let dir = challenges_dir();
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the example challenges failed (is the wasm32-unknown-unknown target installed? scripts/setup installs it)"
    );
    std::fs::read(dir.join(format!("target/wasm32-unknown-unknown/release/{name}.wasm"))).unwrap()
}

fn samples(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> =
        std::fs::read_dir(challenges_dir().join(name).join("samples"))
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
    out.sort();
    out
}

/// A challenge's assets: the files of its `assets/` folder in name order (none for most).
fn assets(name: &str) -> Arc<Vec<Vec<u8>>> {
    Arc::new(platform_runtime::fixtures::challenge_assets(&challenges_dir().join(name)).unwrap())
}

fn check_samples(name: &str) {
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
    let m = rt.load(&module(name)).unwrap();
    assert!(m.info.has_validate);
    let list = samples(name);
    assert!(list.iter().filter(|(n, _)| n.starts_with("good")).count() >= 2);
    assert!(
        list.iter()
            .filter(|(n, _)| n.starts_with("invalid"))
            .count()
            >= 2
    );
    for (file, payload) in list {
        let input = EvalInput { seed: 0, payload };
        let (_, e, _) =
            rt.validate_and_evaluate(&m, &input, Arc::new(BTreeMap::new()), assets(name));
        if file.starts_with("good") {
            assert_eq!(e.outcome, OutcomeClass::Ok, "{name}/{file}: {:?}", e.error);
            assert!(e.score.unwrap() > 0, "{name}/{file} scores above zero");
        } else {
            assert!(
                e.outcome == OutcomeClass::Invalid || e.score == Some(0),
                "{name}/{file} is refused or scores zero: {:?}",
                e.outcome
            );
        }
    }
}

#[test]
fn tsp_samples() {
    check_samples("tsp");
}

#[test]
fn classifier_samples() {
    check_samples("classifier");
}

/// The classifier scores on its data set, asset 0: without it an evaluation traps (the
/// validator's problem, never a score of zero for the miner); the same data scores the same.
#[test]
fn the_classifier_reads_its_data_set_from_its_asset() {
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
    let m = rt.load(&module("classifier")).unwrap();
    let payload = samples("classifier")
        .into_iter()
        .find(|(f, _)| f == "good1.bin")
        .unwrap()
        .1;
    let input = EvalInput { seed: 0, payload };
    let run = |assets: Vec<Vec<u8>>| {
        rt.call(
            &m,
            platform_runtime::Entry::Evaluate,
            &input,
            Arc::new(BTreeMap::new()),
            Arc::new(assets),
        )
    };
    let data = assets("classifier");
    assert_eq!(data.len(), 1);
    let scored = run(data.to_vec());
    assert_eq!(scored.outcome, OutcomeClass::Ok, "{:?}", scored.error);
    // The trained sample's held-out accuracy on seed 0 (examples/make_samples.rs prints it).
    assert_eq!(scored.score, Some(745_000_000));
    let missing = run(Vec::new());
    assert_eq!(missing.outcome, OutcomeClass::Trap, "{:?}", missing.error);
    let mut truncated = data[0].clone();
    truncated.pop();
    assert_eq!(run(vec![truncated]).outcome, OutcomeClass::Trap);
}

#[test]
fn tsp_keeps_the_best_length_as_a_real_write_set() {
    let rt = Runtime::new(Policy::default(), Allocation::Pooling).unwrap();
    let m = rt.load(&module("tsp")).unwrap();
    let samples = samples("tsp");
    let good = |n: &str| samples.iter().find(|(f, _)| f == n).unwrap().1.clone();
    let first = rt.call(
        &m,
        platform_runtime::Entry::Evaluate,
        &EvalInput {
            seed: 0,
            payload: good("good2.bin"),
        },
        Arc::new(BTreeMap::new()),
        Arc::new(vec![]),
    );
    assert_eq!(first.write_set.len(), 1);
    let (key, value) = first.write_set[0].clone();
    assert_eq!(key, b"best_length");
    // Commit it: a worse tour afterwards writes nothing; a better one lowers the best.
    let state = Arc::new(BTreeMap::from([(key.clone(), value.clone().unwrap())]));
    let better = rt.call(
        &m,
        platform_runtime::Entry::Evaluate,
        &EvalInput {
            seed: 0,
            payload: good("good1.bin"),
        },
        state.clone(),
        Arc::new(vec![]),
    );
    assert_eq!(better.write_set.len(), 1);
    assert_ne!(better.write_set[0].1, Some(value.unwrap()));
    let committed = Arc::new(BTreeMap::from([(
        key,
        better.write_set[0].1.clone().unwrap(),
    )]));
    let worse = rt.call(
        &m,
        platform_runtime::Entry::Evaluate,
        &EvalInput {
            seed: 0,
            payload: good("good2.bin"),
        },
        committed,
        Arc::new(vec![]),
    );
    assert!(worse.write_set.is_empty());
}

#[test]
fn receipts_agree_across_allocators_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tsp", "classifier"] {
        let wasm = module(name);
        let payload = samples(name)
            .into_iter()
            .find(|(f, _)| f == "good1.bin")
            .unwrap()
            .1;
        let input = EvalInput { seed: 0, payload };
        let mut digests = Vec::new();
        for allocation in [Allocation::Pooling, Allocation::OnDemand] {
            for _ in 0..2 {
                let rt = Runtime::new(Policy::default(), allocation).unwrap();
                let cache = ArtifactCache::open(dir.path()).unwrap();
                let (m, _) = rt
                    .load_with(&wasm, &Compiler::InProcess, Some(&cache))
                    .unwrap();
                let e = rt.call(
                    &m,
                    platform_runtime::Entry::Evaluate,
                    &input,
                    Arc::new(BTreeMap::new()),
                    assets(name),
                );
                assert_eq!(e.outcome, OutcomeClass::Ok, "{name}: {:?}", e.error);
                digests.push(e.digest);
            }
        }
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "{name}: {digests:?}"
        );
    }
}
