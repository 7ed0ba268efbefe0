//! `platform scenario run` and `platform snapshot inspect` through the binary: the shipped
//! scenarios (the example challenges must be built: `scripts/test` does it), expectations that
//! fail, snapshots and bad input.

use std::path::{Path, PathBuf};

mod common;

use common::{json, platform};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario(name: &str) -> String {
    repo().join("scenarios").join(name).display().to_string()
}

/// Runs a shipped scenario and checks that it succeeded and met its expectations.
fn run_shipped(name: &str) -> serde_json::Value {
    let out = platform(&["scenario", "run", &scenario(name), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["expectations_met"], true, "{}", v["failures"]);
    v
}

#[test]
fn the_shipped_scenario_meets_its_expectations_and_is_deterministic() {
    let v = run_shipped("two-challenges.toml");
    let epochs = v["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for e in epochs {
        let sum: u64 = e["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_u64().unwrap())
            .sum();
        assert_eq!(sum, 65_535, "weights are exactly normalized");
    }
    // Every rejection the scenario exercises is reported with its reason.
    let outcomes: Vec<&str> = v["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    for reason in [
        "unsigned",
        "bad_signature",
        "unknown_miner",
        "challenge_not_active",
        "payload_too_large",
        "duplicate_payload",
        "nonce_replayed",
        "not_owner",
        "illegal_transition",
        "emission_overflow",
    ] {
        assert!(outcomes.contains(&reason), "no {reason} receipt");
    }
    assert_eq!(v["certified"], 12);
    let root = v["state_root"].as_str().unwrap();
    assert_eq!(root.len(), 64);
    // A second process computes the same state root.
    let again = json(&platform(&[
        "scenario",
        "run",
        &scenario("two-challenges.toml"),
        "--json",
    ]));
    assert_eq!(again["state_root"], v["state_root"]);
    assert_eq!(again["epochs"], v["epochs"]);
}

#[test]
fn a_byzantine_validator_is_jailed_and_the_weights_stay_correct() {
    let v = run_shipped("byzantine.toml");
    let jailed = v["jailed"].as_array().unwrap();
    assert_eq!(jailed.len(), 1);
    // After jailing, the Byzantine validator is on no committee.
    let after = v["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "after jailing")
        .unwrap();
    let committee = after["effect"]["committee"].as_array().unwrap();
    assert_eq!(committee.len(), 3);
    assert!(!committee.contains(&jailed[0]));
}

const WAT: &str = r#"(module
  (import "challenge_v1" "input_read" (func $in (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "evaluate") (param $len i32) (result i32)
    (drop (call $in (i32.const 0) (i32.const 0) (local.get $len)))
    (i64.store (i32.const 256) (i64.load (i32.const 12)))
    (i32.store (i32.const 264) (i32.const 0))
    (drop (call $out (i32.const 256) (i32.const 12)))
    (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

fn small_scenario(dir: &Path, expect: &str) -> String {
    std::fs::write(dir.join("score.wat"), WAT).unwrap();
    let text = format!(
        r#"
owner = "//Alice"
[[validators]]
key = "//Alice"
stake = 10
[[miners]]
key = "//Miner1"
[[miners]]
key = "//Miner2"
[[challenges]]
id = "score"
module = "score.wat"
emission_bps = 10000
scoring = {{ rule = "proportional", baseline = 0 }}
[[steps]]
do = "submit"
miner = "//Miner1"
challenge = "score"
payload_hex = "0300000000000000"
[[steps]]
do = "submit"
miner = "//Miner2"
challenge = "score"
payload_hex = "0100000000000000"
[[steps]]
do = "close_epoch"
{expect}
"#
    );
    let path = dir.join("s.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn expectations_that_do_not_hold_fail_the_run() {
    let d = tempfile::tempdir().unwrap();
    // Scores 3 and 1 of 4: 49151.25 and 16383.75 → 49151 and 16384 (largest remainder).
    let good = small_scenario(
        d.path(),
        "[expect]\nweights = [{ epoch = 0, uids = [1, 2], weights = [49151, 16384] }]",
    );
    let v = json(&platform(&["scenario", "run", &good, "--json"]));
    assert_eq!(v["expectations_met"], true, "{}", v["failures"]);
    let root = v["state_root"].as_str().unwrap().to_string();

    // The same run with its state root pinned passes; a wrong root or weights fail with exit 1.
    let pinned = small_scenario(d.path(), &format!("[expect]\nstate_root = \"{root}\""));
    assert!(platform(&["scenario", "run", &pinned]).status.success());
    let wrong = small_scenario(
        d.path(),
        "[expect]\nweights = [{ epoch = 0, uids = [1, 2], weights = [1, 65534] }]\nstate_root = \"00\"",
    );
    let out = platform(&["scenario", "run", &wrong, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["expectations_met"], false);
    assert_eq!(v["failures"].as_array().unwrap().len(), 2);
}

#[test]
fn snapshots_of_a_run_verify_and_tampering_is_caught() {
    let d = tempfile::tempdir().unwrap();
    let s = small_scenario(d.path(), "");
    let snap = d.path().join("state.snap");
    let snap_s = snap.display().to_string();
    let v = json(&platform(&[
        "scenario",
        "run",
        &s,
        "--json",
        "--snapshot",
        &snap_s,
    ]));
    let info = json(&platform(&["snapshot", "inspect", &snap_s, "--json"]));
    assert_eq!(info["state_root"], v["state_root"]);
    assert!(info["entries"].as_u64().unwrap() > 5);

    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    let out = platform(&["snapshot", "inspect", &snap_s]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hash to"), "{err}");
}

#[test]
fn bad_scenarios_get_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "owner = \"//Alice\"\nvalidators = []\nminers = []\nchallenges = []\n",
            "at least one validator",
        ),
        ("owner = 5\n", "owner"),
        ("owner = \"//Alice\"\nunknown = 1\n", "unknown field"),
    ];
    for (text, expected) in cases {
        let p = d.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let out = platform(&["scenario", "run", &p.display().to_string()]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{text}: {err}");
    }
    let out = platform(&["scenario", "run", "/nonexistent/scenario.toml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read scenario"));
}
