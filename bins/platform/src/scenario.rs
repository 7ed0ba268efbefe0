//! `platform scenario run`: a scenario file through the real state machine and runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use platform_state::scenario::{self, Report};

use crate::output;

/// Scenario commands.
#[derive(clap::Subcommand, Debug)]
pub enum ScenarioCommand {
    /// Run a scenario file (validators, miners, challenges, submissions, epochs) through the
    /// state machine and the wasm runtime in this process, and print each epoch's weights and
    /// every transaction's receipt. Consensus is an ordered log of blocks; everything else is
    /// the real code. Exits with 1 if the file's [expect] section does not hold.
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
    let (report, snap) = scenario::run_file_with_snapshot(&file, snapshot.is_some())?;
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

fn print_report(r: &Report) {
    println!("receipts:");
    for line in &r.receipts {
        let detail = match (&line.effect, &line.rejection) {
            (_, Some(why)) => why.clone(),
            (Some(e), None) => serde_json::to_string(e).unwrap_or_default(),
            _ => String::new(),
        };
        println!(
            "  #{:<4} {:<24} {:<12} {:<22} {}",
            line.height, line.label, line.kind, line.outcome, detail
        );
    }
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
