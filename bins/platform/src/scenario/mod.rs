//! `platform scenario run`: a scenario file through the real state machine and runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use platform_state::TxOutcome;
mod runner;

use runner::Report;

use crate::output;

/// Scenario commands.
#[derive(clap::Subcommand, Debug)]
pub enum ScenarioCommand {
    /// Run a scenario file (validators, miners, challenges, submissions, epochs) through the
    /// state machine and the wasm runtime in this process, and print each epoch's weights and
    /// every transaction's receipt. Consensus is an ordered log of blocks; everything else is
    /// the real code. Exits with 1 if the file's [expect] section does not hold, 2 if the
    /// scenario cannot run.
    Run {
        /// The scenario (TOML; see docs/scenarios.md). Paths inside are relative to it.
        file: PathBuf,
        /// Print one JSON object (`epochs`, `receipts`, `state_root`, `expectations_met`, ...).
        #[arg(long)]
        json: bool,
        /// Also write a snapshot of the final state to this file.
        #[arg(long)]
        snapshot: Option<PathBuf>,
    },
}

pub fn run(cmd: ScenarioCommand) -> anyhow::Result<ExitCode> {
    let ScenarioCommand::Run {
        file,
        json,
        snapshot,
    } = cmd;
    let (report, snap) = match runner::run_file_with_snapshot(&file, snapshot.is_some()) {
        Ok(r) => r,
        Err(e) => {
            // Exit code 2: the scenario could not run (1 is kept for unmet expectations).
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let (Some(path), Some(bytes)) = (&snapshot, snap) {
        std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write snapshot {}: {e}", path.display()))?;
    }
    if json {
        output::json(&report);
    } else {
        print_report(&report);
    }
    Ok(if report.expectations_met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A one-line description of an effect for people.
fn describe(e: &TxOutcome) -> String {
    match e {
        TxOutcome::Submitted {
            submission,
            committee,
        } => format!(
            "submission {}… committee of {}",
            &submission.to_string()[..12],
            committee.len()
        ),
        TxOutcome::Certified {
            submission,
            score,
            signers,
        } => format!(
            "submission {}… score {} ({signers} signers)",
            &submission.to_string()[..12],
            score.map_or_else(|| "none".into(), |s| s.to_string())
        ),
        TxOutcome::Closed { epoch, uids, .. } => {
            format!("epoch {epoch} closed, {} uids", uids.len())
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn print_report(r: &Report) {
    println!("receipts (attestations that were accepted are counted, not listed):");
    let mut attests = 0;
    for line in &r.receipts {
        if line.kind == "attest" && line.outcome == "accepted" {
            attests += 1;
            continue;
        }
        let detail = match (&line.effect, &line.rejection) {
            (_, Some(why)) => why.clone(),
            (Some(e), None) => describe(e),
            _ => String::new(),
        };
        println!(
            "  block {:<3} {:<30} {:<12} {:<20} {}",
            line.height, line.label, line.kind, line.outcome, detail
        );
    }
    println!("  ({attests} attestations accepted)");
    println!("weights:");
    for e in &r.epochs {
        let pairs: Vec<String> = e
            .uids
            .iter()
            .zip(&e.weights)
            .map(|(u, w)| format!("{u}:{w}"))
            .collect();
        println!("  epoch {}: {}", e.epoch, pairs.join(" "));
    }
    println!(
        "blocks: {}   certified: {}   jailed: {}",
        r.blocks,
        r.certified,
        r.jailed.len()
    );
    println!("state root: {}", r.state_root);
    if r.failures.is_empty() {
        println!("expectations: met");
    } else {
        println!("expectations: NOT met");
        for f in &r.failures {
            println!("  - {f}");
        }
    }
}
