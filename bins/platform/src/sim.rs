//! `platform sim`: runs the consensus engine in the deterministic simulator.

use std::io::IsTerminal;
use std::ops::Range;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use platform_consensus::sim::byzantine::Behavior;
use platform_consensus::sim::keys::{BlsKeys, MacKeys};
use platform_consensus::sim::network::{NetworkConfig, Partition};
use platform_consensus::sim::{Outcome, Partitions, Scenario, run};
use platform_consensus::{Certificate, Proposal, Subject, VoteKind};
use platform_crypto::BlsSignature;
use platform_crypto::bls::SignerBitmap;
use platform_primitives::{Epoch, Hash, Height, View, encode};
use serde::Serialize;

use crate::output;

/// Simulate validators under Byzantine faults, partitions and crashes; check safety and
/// liveness with oracles independent of the engine.
///
/// Every seed is deterministic: a failing seed replays exactly with `--seed S --trace`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Stake of each validator, comma-separated (default: equal stakes).
    #[arg(long, value_delimiter = ',')]
    stakes: Vec<u64>,
    /// Byzantine validators as KIND:COUNT[,KIND:COUNT]; kinds: equivocate, withhold, invalid,
    /// forge, replay, nullify-spam, and twins (a validator running two identities with one
    /// key, placed on opposite sides of a 10 s partition that splits the honest validators
    /// too: with more than 1/3 of the stake in twins, both sides can finalize). They take the
    /// highest indices.
    #[arg(long, value_delimiter = ',')]
    byzantine: Vec<String>,
    /// Seeds to run, as A..B (B excluded).
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Run one seed (with --trace, print its event trace).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Finalized blocks every honest validator must reach, per seed.
    #[arg(long, default_value_t = 10)]
    blocks: u64,
    /// Random timed partitions early in each run.
    #[arg(long)]
    partitions: bool,
    /// Random crashes and restarts from the WAL (including right after persisting a vote).
    #[arg(long)]
    crashes: bool,
    /// Messages lost, per mille.
    #[arg(long, default_value_t = 10)]
    loss: u64,
    /// Collectors of each view's finalize votes (the next leaders, who form the finalization
    /// and broadcast it); 0 broadcasts finalize votes to everyone. Default: as a node runs,
    /// 3 from 10 validators up, else 0.
    #[arg(long)]
    collectors: Option<u16>,
    /// Use real BLS12-381 signatures instead of the fast simulation MACs.
    #[arg(long)]
    bls: bool,
    /// Print the event trace of the seed (with --seed).
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Simulate whole validator nodes instead of consensus engines alone: the engine plus the
    /// node's finality queue, with block bodies that travel apart from the votes (and are
    /// fetched when lost), epochs that close every --epoch-blocks blocks and switch engines,
    /// and catch-up from peers' finalized blocks. Checks that every validator applies the
    /// same blocks in order and enters each epoch at its close.
    #[arg(long, conflicts_with_all = ["byzantine", "stakes", "bls", "trace", "collectors"])]
    node: bool,
    /// With --node: blocks per epoch (every multiple of this height closes an epoch).
    #[arg(long, default_value_t = 5, requires = "node")]
    epoch_blocks: u64,
    /// With --node: the last validator starts this many simulated seconds after the others,
    /// epochs behind, and must catch up.
    #[arg(long, default_value_t = 0, requires = "node")]
    late_secs: u64,
    /// With --node: the second validator is slow (an overloaded machine): everything it sends
    /// leaves this many milliseconds late, and each of its WAL writes takes as much longer.
    #[arg(long, default_value_t = 0, requires = "node")]
    slow_ms: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Failure {
    seed: u64,
    kind: &'static str,
    reason: String,
}

/// A figure against its target.
#[derive(Serialize)]
struct Target {
    name: &'static str,
    figure: f64,
    target: &'static str,
    met: bool,
}

/// The scale targets: messages per decision ≤ 1.5·n², ≥ 500 simulated decisions/s on one core
/// (set for n = 64), ≤ 8 signature checks per finalized block per validator.
fn targets(messages_per_n_squared: f64, decisions_per_sec: u64, checks: f64) -> Vec<Target> {
    vec![
        Target {
            name: "messages per decision / n²",
            figure: messages_per_n_squared,
            target: "<= 1.5",
            met: messages_per_n_squared <= 1.5,
        },
        Target {
            name: "simulated decisions/s on one core (set for n = 64)",
            figure: decisions_per_sec as f64,
            target: ">= 500",
            met: decisions_per_sec >= 500,
        },
        Target {
            name: "signature checks per finalized block per validator",
            figure: checks,
            target: "<= 8",
            met: checks <= 8.0,
        },
    ]
}

#[derive(Serialize)]
pub(crate) struct Report {
    validators: usize,
    seeds_run: u64,
    pub(crate) safety_violations: u64,
    pub(crate) liveness_failures: u64,
    finalized_blocks: u64,
    pub(crate) decisions_per_sec: u64,
    pub(crate) messages_per_decision: f64,
    /// Messages per decision divided by n².
    pub(crate) messages_per_n_squared: f64,
    /// Signature checks (single or aggregate) per honest validator per finalized block.
    pub(crate) signature_checks_per_decision: f64,
    /// The figures against the targets set for a subnet-size network (n = 64).
    targets: Vec<Target>,
    /// The quorum certificate proper with BLS: signer bitmap plus one aggregate signature.
    certificate_bytes: usize,
    /// A finalization message: the certificate with the proposal it covers.
    certificate_message_bytes: usize,
    virtual_seconds: u64,
    wall_ms: u64,
    /// Failing seeds (the first 20), each replayable with --seed S --trace.
    failures: Vec<Failure>,
}

fn parse_range(s: &str) -> Result<Range<u64>> {
    let (a, b) = s
        .split_once("..")
        .context("--seeds takes A..B, e.g. 0..1000")?;
    let (a, b): (u64, u64) = (
        a.trim().parse().context("--seeds start")?,
        b.trim().parse().context("--seeds end")?,
    );
    if a >= b {
        bail!(
            "--seeds {a}..{b} is empty: the end is excluded, so write e.g. {a}..{}",
            a + 1
        );
    }
    Ok(a..b)
}

fn scenario(args: &SimArgs) -> Result<Scenario> {
    let n = args.validators;
    if !(1..=1024).contains(&n) {
        bail!("--validators must be between 1 and 1024, not {n}");
    }
    let stakes = if args.stakes.is_empty() {
        vec![100; n]
    } else {
        args.stakes.clone()
    };
    if stakes.len() != n {
        bail!("--stakes lists {} stakes for {n} validators", stakes.len());
    }
    if stakes.iter().all(|&s| s == 0) {
        bail!("--stakes are all zero: a validator set needs stake");
    }
    let mut byzantine = Vec::new();
    let mut next = n;
    let mut twins: Vec<u16> = Vec::new();
    for spec in &args.byzantine {
        let (kind, count) = spec.split_once(':').unwrap_or((spec, "1"));
        let behavior: Option<Behavior> = match kind {
            "twins" => None,
            _ => Some(kind.parse().map_err(|e: String| {
                anyhow::anyhow!("{e}, or twins (two identities with one key)")
            })?),
        };
        let count: usize = count
            .parse()
            .with_context(|| format!("count in --byzantine {spec}"))?;
        for _ in 0..count {
            if next == 0 {
                bail!("--byzantine names more validators than the {n} there are");
            }
            next -= 1;
            match behavior {
                Some(b) => byzantine.push((next as u16, b)),
                None => twins.push(next as u16),
            }
        }
    }
    let total: u128 = stakes.iter().map(|&s| u128::from(s)).sum();
    let bad: u128 = byzantine
        .iter()
        .map(|(i, _)| *i)
        .chain(twins.iter().copied())
        .map(|i| u128::from(stakes[i as usize]))
        .sum();
    if 3 * bad >= total {
        eprintln!(
            "warning: Byzantine validators hold {bad} of {total} stake (at least 1/3): safety is not guaranteed"
        );
    }
    let mut s = Scenario::honest(n, args.blocks);
    s.stakes = stakes;
    s.byzantine = byzantine;
    s.collectors = args
        .collectors
        .unwrap_or_else(|| platform_consensus::default_collectors(n));
    s.network = NetworkConfig {
        loss_per_mille: args.loss.min(1000),
        ..NetworkConfig::default()
    };
    s.partitions = if !twins.is_empty() {
        twins_split(n, &twins)
    } else if args.partitions {
        Partitions::Random
    } else {
        Partitions::None
    };
    s.twins = twins;
    s.crashes = args.crashes;
    s.trace = args.trace;
    Ok(s)
}

/// The partition Twins are tested under: for the first 10 simulated seconds each twinned
/// validator's two identities sit on opposite sides, and the honest validators alternate
/// between the sides. With twins above 1/3 of the stake both sides can reach a quorum and
/// finalize different blocks; below it at most one side can, and after the heal the other
/// catches up. (Actors are the validators, then the twins' second identities in order.)
fn twins_split(n: usize, twins: &[u16]) -> Partitions {
    let mut groups: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    for &t in twins {
        groups[t as usize] = 0;
    }
    groups.extend(twins.iter().map(|_| 1u8));
    Partitions::Fixed(vec![Partition {
        from_ms: 0,
        until_ms: 10_000,
        groups,
    }])
}

/// Encoded sizes of a BLS finalization certificate for `n` validators.
fn certificate_sizes(n: usize) -> (usize, usize) {
    let signers = SignerBitmap::new(n);
    let quorum = encode(&signers).len() + encode(&BlsSignature([0; 96])).len();
    let proposal = Proposal {
        epoch: Epoch(0),
        view: View(0),
        height: Height(0),
        parent: Hash::ZERO,
        payload: Hash::ZERO,
    };
    let cert = Certificate {
        kind: VoteKind::Finalize,
        subject: Subject::Proposal(proposal),
        signers,
        signature: BlsSignature([0; 96]),
    };
    (quorum, encode(&cert).len())
}

pub fn run_sim(args: SimArgs) -> Result<ExitCode> {
    let seeds = match args.seed {
        Some(seed) => seed..seed + 1,
        None => parse_range(&args.seeds)?,
    };
    if args.node {
        return run_node_sim(&args, seeds);
    }
    let s = scenario(&args)?;
    let n = s.stakes.len();
    if args.bls {
        let keys = BlsKeys::new(n);
        drive(&args, &s, seeds, |seed| run(&s, &keys, seed))
    } else {
        drive(&args, &s, seeds, |seed| {
            run(&s, &MacKeys::new(seed, n), seed)
        })
    }
}

fn drive(
    args: &SimArgs,
    s: &Scenario,
    seeds: Range<u64>,
    one: impl FnMut(u64) -> Outcome,
) -> Result<ExitCode> {
    let report = collect(s, seeds, args.trace, one);
    print_report(args, &report);
    Ok(
        if report.safety_violations + report.liveness_failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Honest validators with equal stakes, no partitions or crashes, the simulation MACs: the
/// figures of the "Scale" benchmark (`platform bench scale`).
pub(crate) fn honest_figures(n: usize, seeds: Range<u64>, blocks: u64) -> Report {
    let mut s = Scenario::honest(n, blocks);
    s.collectors = platform_consensus::default_collectors(n);
    collect(&s, seeds, false, |seed| {
        run(&s, &MacKeys::new(seed, n), seed)
    })
}

/// Runs `seeds` through `one` and sums up the outcomes.
fn collect(
    s: &Scenario,
    seeds: Range<u64>,
    trace: bool,
    mut one: impl FnMut(u64) -> Outcome,
) -> Report {
    let total = seeds.end - seeds.start;
    let progress = std::io::stderr().is_terminal() && total > 1;
    let started = Instant::now();
    let (mut safety, mut liveness, mut blocks, mut messages, mut virtual_ms) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut checks_per_validator = 0f64;
    let mut failures = Vec::new();
    for (i, seed) in seeds.enumerate() {
        let o = one(seed);
        if trace {
            for line in &o.trace {
                println!("{line}");
            }
        }
        blocks += o.finalized_blocks;
        messages += o.messages;
        checks_per_validator += o.signature_checks as f64 / o.honest.max(1) as f64;
        virtual_ms += o.virtual_ms;
        if let Some(reason) = o.safety_violation {
            safety += 1;
            failures.push(Failure {
                seed,
                kind: "safety",
                reason,
            });
        }
        if let Some(reason) = o.liveness_failure {
            liveness += 1;
            failures.push(Failure {
                seed,
                kind: "liveness",
                reason,
            });
        }
        if progress && (i as u64 + 1).is_multiple_of(50) {
            eprint!(
                "\r{} / {total} seeds, {safety} safety violations, {liveness} liveness failures",
                i + 1
            );
        }
    }
    if progress {
        eprintln!();
    }
    let wall = started.elapsed();
    let (certificate_bytes, certificate_message_bytes) = certificate_sizes(s.stakes.len());
    failures.truncate(20);
    let n = s.stakes.len() as f64;
    let per_decision = |x: f64| if blocks == 0 { 0.0 } else { x / blocks as f64 };
    let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    let decisions_per_sec = (blocks as f64 / wall.as_secs_f64().max(1e-9)) as u64;
    let messages_per_n_squared = round(per_decision(messages as f64) / (n * n), 2);
    let signature_checks_per_decision = round(per_decision(checks_per_validator), 1);
    Report {
        validators: s.stakes.len(),
        seeds_run: total,
        safety_violations: safety,
        liveness_failures: liveness,
        finalized_blocks: blocks,
        decisions_per_sec,
        messages_per_decision: round(per_decision(messages as f64), 1),
        messages_per_n_squared,
        signature_checks_per_decision,
        targets: targets(
            messages_per_n_squared,
            decisions_per_sec,
            signature_checks_per_decision,
        ),
        certificate_bytes,
        certificate_message_bytes,
        virtual_seconds: virtual_ms / 1000,
        wall_ms: wall.as_millis() as u64,
        failures,
    }
}

fn print_report(args: &SimArgs, report: &Report) {
    if args.json {
        output::json(&report);
    } else {
        println!(
            "{} seeds, {} validators: {} safety violations, {} liveness failures",
            report.seeds_run, report.validators, report.safety_violations, report.liveness_failures
        );
        println!(
            "{} blocks finalized, {} decisions/s, {} messages per decision, {} simulated seconds in {} ms",
            report.finalized_blocks,
            report.decisions_per_sec,
            report.messages_per_decision,
            report.virtual_seconds,
            report.wall_ms
        );
        println!(
            "{} messages per decision per n², {} signature checks per block per validator",
            report.messages_per_n_squared, report.signature_checks_per_decision
        );
        for t in &report.targets {
            println!(
                "  {}: {} (target {}): {}",
                t.name,
                t.figure,
                t.target,
                if t.met { "met" } else { "not met" }
            );
        }
        println!(
            "BLS certificate: {} bytes (signer bitmap + aggregate signature), {} bytes with its proposal",
            report.certificate_bytes, report.certificate_message_bytes
        );
        for f in &report.failures {
            println!(
                "seed {} {}: {} (replay: platform sim … --seed {} --trace)",
                f.seed, f.kind, f.reason, f.seed
            );
        }
    }
}

/// The summary of `platform sim --node`.
#[derive(Serialize)]
struct NodeReport {
    validators: usize,
    epoch_blocks: u64,
    seeds_run: u64,
    safety_violations: u64,
    liveness_failures: u64,
    /// The lowest height every validator applied, summed over the seeds.
    applied_blocks: u64,
    /// The lowest epoch every validator entered, summed over the seeds.
    epochs: u64,
    /// Bodies of finalized blocks asked for because they were lost.
    body_fetches: u64,
    /// Bodies of notarized blocks, not yet final, asked for because they were lost.
    body_asks: u64,
    /// Certificate asks sent point-to-point (view synchronization), and those answered.
    certificate_asks: u64,
    certificate_answers: u64,
    /// Catch-ups across epochs.
    catch_ups: u64,
    crashes: u64,
    messages_per_block: f64,
    virtual_seconds: u64,
    wall_ms: u64,
    /// Failing seeds (the first 20), each replayable with --seed S.
    failures: Vec<Failure>,
}

/// `platform sim --node`: whole validator nodes ([`platform_node::core::sim`]).
fn run_node_sim(args: &SimArgs, seeds: Range<u64>) -> Result<ExitCode> {
    use platform_node::core::sim::{NodeScenario, run};
    let n = args.validators;
    if !(1..=64).contains(&n) {
        bail!("--node simulates 1 to 64 validators, not {n}");
    }
    if args.epoch_blocks == 0 {
        bail!("--epoch-blocks must be at least 1");
    }
    if args.slow_ms > 60_000 {
        bail!(
            "--slow-ms is at most 60000 (a minute), not {}",
            args.slow_ms
        );
    }
    if args.loss > 500 {
        bail!(
            "--loss is per mille and at most 500 (half the messages), not {}",
            args.loss
        );
    }
    let mut s = NodeScenario::honest(n, args.blocks, args.epoch_blocks);
    s.network.loss_per_mille = args.loss;
    s.partitions = args.partitions;
    s.crashes = args.crashes;
    s.late_ms = args.late_secs * 1000;
    s.slow_ms = args.slow_ms;
    let total = seeds.end - seeds.start;
    let progress = std::io::stderr().is_terminal() && total > 1;
    let started = Instant::now();
    let mut r = NodeReport {
        validators: n,
        epoch_blocks: args.epoch_blocks,
        seeds_run: total,
        safety_violations: 0,
        liveness_failures: 0,
        applied_blocks: 0,
        epochs: 0,
        body_fetches: 0,
        body_asks: 0,
        certificate_asks: 0,
        certificate_answers: 0,
        catch_ups: 0,
        crashes: 0,
        messages_per_block: 0.0,
        virtual_seconds: 0,
        wall_ms: 0,
        failures: Vec::new(),
    };
    let (mut messages, mut virtual_ms) = (0u64, 0u64);
    for (i, seed) in seeds.enumerate() {
        let o = run(&s, seed);
        r.applied_blocks += o.height;
        r.epochs += o.epoch;
        r.body_fetches += o.body_fetches;
        r.body_asks += o.body_asks;
        r.certificate_asks += o.certificate_asks;
        r.certificate_answers += o.certificate_answers;
        r.catch_ups += o.catch_ups;
        r.crashes += o.crashes;
        messages += o.messages;
        virtual_ms += o.virtual_ms;
        for (kind, reason) in [
            ("safety", o.safety_violation),
            ("liveness", o.liveness_failure),
        ] {
            if let Some(reason) = reason {
                if kind == "safety" {
                    r.safety_violations += 1;
                } else {
                    r.liveness_failures += 1;
                }
                r.failures.push(Failure { seed, kind, reason });
            }
        }
        if progress && (i as u64 + 1).is_multiple_of(10) {
            eprint!(
                "\r{} / {total} seeds, {} safety violations, {} liveness failures",
                i + 1,
                r.safety_violations,
                r.liveness_failures
            );
        }
    }
    if progress {
        eprintln!();
    }
    r.failures.truncate(20);
    r.messages_per_block = if r.applied_blocks == 0 {
        0.0
    } else {
        (messages as f64 / r.applied_blocks as f64 * 10.0).round() / 10.0
    };
    r.virtual_seconds = virtual_ms / 1000;
    r.wall_ms = started.elapsed().as_millis() as u64;
    if args.json {
        output::json(&r);
    } else {
        println!(
            "{} seeds, {} validators, {} blocks per epoch: {} safety violations, {} liveness failures",
            r.seeds_run, r.validators, r.epoch_blocks, r.safety_violations, r.liveness_failures
        );
        println!(
            "{} blocks applied by every validator over {} epochs; {} final and {} notarized bodies fetched, {} catch-ups, {} crashes",
            r.applied_blocks, r.epochs, r.body_fetches, r.body_asks, r.catch_ups, r.crashes
        );
        println!(
            "{} messages per block, {} simulated seconds in {} ms",
            r.messages_per_block, r.virtual_seconds, r.wall_ms
        );
        for f in &r.failures {
            println!(
                "seed {} {}: {} (replay: platform sim --node … --seed {})",
                f.seed, f.kind, f.reason, f.seed
            );
        }
    }
    Ok(if r.safety_violations + r.liveness_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
