//! `platform bench scale`: the network by size, in the consensus simulator and as real
//! validator processes on this machine, against the subnet-size targets (64 validators).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Parser;
use serde::Serialize;

use crate::node::{self, DevnetArgs, ScaleFigures};
use crate::output;

/// Measure the network at each size: one simulator seed (decisions/s on one core, messages and
/// signature checks per decision) and one `platform devnet --blocks B` of real processes
/// (blocks/s, finalization p50/p99, CPU, signature checks and RSS per validator).
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// Network sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,8,16,32,64")]
    validators: Vec<usize>,
    /// Finalized blocks per devnet.
    #[arg(long, default_value_t = 100)]
    blocks: u64,
    /// Milliseconds a leader waits after the last finalization before proposing, in the devnets.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Sizes above this are simulated only (each validator is a process on this machine).
    #[arg(long, default_value_t = 64)]
    max_processes: usize,
    /// Finalized blocks per simulator run.
    #[arg(long, default_value_t = 50)]
    sim_blocks: u64,
    /// Give up on one devnet after this many seconds; it is reported as not finished.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Simulated {
    decisions_per_sec: u64,
    messages_per_decision: f64,
    messages_per_n_squared: f64,
    signature_checks_per_decision: f64,
}

#[derive(Serialize)]
struct Row {
    validators: usize,
    simulated: Simulated,
    /// Real processes; `null` when not run (above `--max-processes`) or not finished.
    processes: Option<ScaleFigures>,
    /// Why the devnet did not finish, if it did not.
    processes_error: Option<String>,
    /// Whether every validator finalized the same blocks (and weights).
    identical: Option<bool>,
}

#[derive(Serialize)]
struct Target {
    name: String,
    figure: Option<f64>,
    target: &'static str,
    met: bool,
}

#[derive(Serialize)]
struct Figures {
    rows: Vec<Row>,
    targets: Vec<Target>,
}

#[derive(Parser)]
struct Devnet {
    #[command(flatten)]
    args: DevnetArgs,
}

pub fn run(a: ScaleArgs) -> Result<ExitCode> {
    if a.validators.is_empty() || a.validators.iter().any(|&n| !(1..=64).contains(&n)) {
        bail!("--validators takes sizes from 1 to 64, e.g. 4,8,16,32,64");
    }
    let mut rows = Vec::new();
    for &n in &a.validators {
        let sim = crate::sim::honest_figures(n, 0..1, a.sim_blocks);
        let simulated = Simulated {
            decisions_per_sec: sim.decisions_per_sec,
            messages_per_decision: sim.messages_per_decision,
            messages_per_n_squared: sim.messages_per_n_squared,
            signature_checks_per_decision: sim.signature_checks_per_decision,
        };
        let (processes, processes_error, identical) = if n <= a.max_processes {
            if !a.json {
                eprintln!("{n} validators: devnet of {} blocks …", a.blocks);
            }
            match devnet(&a, n) {
                Ok(s) => (Some(s.scale.clone()), None, Some(s.all_identical)),
                Err(e) => (None, Some(format!("{e:#}")), None),
            }
        } else {
            (None, None, None)
        };
        let row = Row {
            validators: n,
            simulated,
            processes,
            processes_error,
            identical,
        };
        if !a.json {
            print_row(&row);
        }
        rows.push(row);
    }
    let targets = targets(&rows);
    let ok = rows.iter().all(|r| r.identical != Some(false));
    if a.json {
        output::json(&Figures { rows, targets });
    } else {
        for t in &targets {
            println!(
                "{}: {} (target {}): {}",
                t.name,
                t.figure.map_or("not measured".into(), |f| f.to_string()),
                t.target,
                if t.met { "met" } else { "not met" }
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn devnet(a: &ScaleArgs, n: usize) -> Result<node::DevnetSummary> {
    let argv = [
        "devnet".to_string(),
        "--json".into(),
        "--validators".into(),
        n.to_string(),
        "--blocks".into(),
        a.blocks.to_string(),
        "--block-ms".into(),
        a.block_ms.to_string(),
        "--timeout-secs".into(),
        a.timeout_secs.to_string(),
    ];
    let args = Devnet::try_parse_from(argv)?.args;
    node::run_devnet(&args, None)
}

fn print_row(r: &Row) {
    let s = &r.simulated;
    print!(
        "{:>3} validators  simulated: {:>6} decisions/s, {:>8} messages/decision ({} n²), {} checks/decision",
        r.validators,
        s.decisions_per_sec,
        s.messages_per_decision,
        s.messages_per_n_squared,
        s.signature_checks_per_decision
    );
    match (&r.processes, &r.processes_error) {
        (Some(p), _) => println!(
            "\n               processes: {} blocks/s, p50 {} ms, p99 {} ms, {} ms CPU and {} checks per block per validator, RSS ≤ {} MiB{}",
            p.blocks_per_sec,
            p.finalization_ms_p50,
            p.finalization_ms_p99,
            p.cpu_ms_per_block,
            p.signature_checks_per_block,
            p.rss_mb_max,
            if r.identical == Some(false) {
                ", DISAGREE"
            } else {
                ""
            }
        ),
        (None, Some(e)) => println!("\n               processes: did not finish: {e}"),
        (None, None) => println!(),
    }
}

/// The targets of a full subnet: the simulator at 64 validators; processes at 16 and 32.
fn targets(rows: &[Row]) -> Vec<Target> {
    let row = |n: usize| rows.iter().find(|r| r.validators == n);
    let sim = |n: usize, f: &dyn Fn(&Simulated) -> f64| row(n).map(|r| f(&r.simulated));
    let procs = |n: usize, f: &dyn Fn(&ScaleFigures) -> f64| {
        row(n).and_then(|r| r.processes.as_ref()).map(f)
    };
    let at_most = |x: Option<f64>, t: f64| x.is_some_and(|x| x <= t);
    let at_least = |x: Option<f64>, t: f64| x.is_some_and(|x| x >= t);
    let m64 = sim(64, &|s| s.messages_per_n_squared);
    let d64 = sim(64, &|s| s.decisions_per_sec as f64);
    let c64 = sim(64, &|s| s.signature_checks_per_decision);
    let b16 = procs(16, &|p| p.blocks_per_sec);
    let p16 = procs(16, &|p| p.finalization_ms_p99 as f64);
    let b32 = procs(32, &|p| p.blocks_per_sec);
    vec![
        Target {
            name: "simulated messages per decision / n² at n = 64".into(),
            figure: m64,
            target: "<= 1.5",
            met: at_most(m64, 1.5),
        },
        Target {
            name: "simulated decisions/s on one core at n = 64".into(),
            figure: d64,
            target: ">= 500",
            met: at_least(d64, 500.0),
        },
        Target {
            name: "signature checks per finalized block per validator at n = 64".into(),
            figure: c64,
            target: "<= 8",
            met: at_most(c64, 8.0),
        },
        Target {
            name: "16 validator processes: blocks/s".into(),
            figure: b16,
            target: ">= 1",
            met: at_least(b16, 1.0),
        },
        Target {
            name: "16 validator processes: finalization p99 (ms)".into(),
            figure: p16,
            target: "<= 1000",
            met: at_most(p16, 1000.0),
        },
        Target {
            name: "32 validator processes: blocks/s".into(),
            figure: b32,
            target: ">= 0.5",
            met: at_least(b32, 0.5),
        },
    ]
}
