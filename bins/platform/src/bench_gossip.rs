//! `platform bench gossip`: what a Byzantine validator's gossip floods cost the others' finality.
//!
//! Five devnet runs of `--blocks` blocks each, one validator (Dave, a quarter of the stake)
//! misbehaving in each but the first: idle; flooding block announcements for views he does not
//! lead (`--flood-announces`); gossiping forged epoch anchors (`--poison-anchors`); gossiping
//! well-formed messages that mean nothing on every topic (`--garbage-gossip`); flooding
//! certificate requests point-to-point and `Fetch`/`FetchView` asks on gossip
//! (`--flood-fetches`). For each run: the
//! honest three's finalized blocks per second, their worst finalization p50 and p99, and how
//! much of Dave's traffic they refused at ingress and dropped in their handlers.
//!
//! The faults exist only in builds with the `test-faults` feature, so this needs
//! `cargo build --release --features platform/test-faults`.

use std::collections::BTreeMap;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::output;

/// `platform bench gossip`.
#[derive(clap::Args, Debug)]
pub struct GossipArgs {
    /// Blocks each run finalizes (counted on the honest validators).
    #[arg(long, default_value_t = 60)]
    blocks: u64,
    /// Milliseconds a leader waits after the last finalization before proposing.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// One run's figures, over the three honest validators.
#[derive(Debug, Serialize)]
struct Run {
    /// `idle`, or the devnet flag that made Dave misbehave.
    attack: &'static str,
    blocks_per_sec: f64,
    /// The largest of the honest validators' finalization p50 and p99, in milliseconds.
    finalization_ms_p50: u64,
    finalization_ms_p99: u64,
    /// Gossip the honest validators' ingress refused, by `channel/reason`, summed.
    refused: BTreeMap<String, u64>,
    /// Inputs their handlers dropped, by `input/reason`, summed.
    dropped: BTreeMap<String, u64>,
    /// Whether every validator that counted agreed on every block.
    identical: bool,
}

const ATTACKS: [(&str, Option<&str>); 5] = [
    ("idle", None),
    ("flood-announces", Some("--flood-announces")),
    ("poison-anchors", Some("--poison-anchors")),
    ("garbage-gossip", Some("--garbage-gossip")),
    ("flood-fetches", Some("--flood-fetches")),
];

pub fn run(a: GossipArgs) -> Result<ExitCode> {
    if !cfg!(feature = "test-faults") {
        bail!(
            "bench gossip runs validators with deliberate faults, which only builds with the \
             `test-faults` feature have: cargo build --release --features platform/test-faults"
        );
    }
    if a.blocks == 0 || a.block_ms == 0 {
        bail!("--blocks and --block-ms must be positive");
    }
    let mut runs = Vec::new();
    for (attack, flag) in ATTACKS {
        if !a.json {
            eprintln!("bench gossip: {attack} ({} blocks)…", a.blocks);
        }
        runs.push(one(&a, attack, flag)?);
    }
    if a.json {
        output::json(&runs);
    } else {
        print(&runs);
    }
    Ok(if runs.iter().all(|r| r.identical) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn one(a: &GossipArgs, attack: &'static str, flag: Option<&str>) -> Result<Run> {
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let exe = std::env::current_exe().context("locating the platform binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["devnet", "--json", "--data-dir"])
        .arg(dir.path().join("net"))
        .args(["--blocks", &a.blocks.to_string()])
        .args(["--block-ms", &a.block_ms.to_string()]);
    if let Some(flag) = flag {
        cmd.args([flag, "1"]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running the devnet")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the {attack} devnet printed no summary (exit {:?})",
            out.status.code()
        )
    })?;
    let honest = v["validators"]
        .as_array()
        .map(|vs| vs[..vs.len().min(3)].to_vec())
        .unwrap_or_default();
    if honest.len() < 3 {
        bail!("the {attack} devnet's summary lists fewer than three validators: {v}");
    }
    let worst = |key: &str| honest.iter().filter_map(|h| h[key].as_u64()).max();
    let sum = |key: &str| {
        let mut total = BTreeMap::new();
        for h in &honest {
            if let Some(m) = h[key].as_object() {
                for (k, n) in m {
                    *total.entry(k.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
                }
            }
        }
        total
    };
    Ok(Run {
        attack,
        blocks_per_sec: v["scale"]["blocks_per_sec"].as_f64().unwrap_or(0.0),
        finalization_ms_p50: worst("finalization_ms_p50").unwrap_or(0),
        finalization_ms_p99: worst("finalization_ms_p99").unwrap_or(0),
        refused: sum("refused"),
        dropped: sum("inputs_dropped"),
        identical: v["all_identical"] == true,
    })
}

fn print(runs: &[Run]) {
    println!("Gossip floods by one validator of four (the honest three's figures):");
    for r in runs {
        let refused: u64 = r.refused.values().sum();
        let dropped: u64 = r.dropped.values().sum();
        println!(
            "  {:16} {:.2} blocks/s, finalization p50 {} ms, p99 {} ms; refused {refused}, \
             dropped {dropped}{}",
            r.attack,
            r.blocks_per_sec,
            r.finalization_ms_p50,
            r.finalization_ms_p99,
            if r.identical { "" } else { "; DISAGREED" }
        );
    }
}
