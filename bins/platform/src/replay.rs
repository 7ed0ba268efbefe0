//! `platform replay`: re-execute a validator's stored history and compare every state root.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use platform_node::replay;
use platform_runtime::ModuleLoader;

use crate::output;

/// `platform replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The validator's data directory (stop the validator first).
    #[arg(long = "data-dir")]
    data_dir: PathBuf,
    /// The network's genesis (default: genesis.bin in the data directory).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Print JSON: `from` (`genesis` or `snapshot`), `start_height`, `last_height`, `blocks`,
    /// `roots_checked`, `final_root`, `divergence` (`height`, `reason`, or null).
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let genesis_path = args
        .genesis
        .unwrap_or_else(|| args.data_dir.join("genesis.bin"));
    let genesis = platform_node::genesis::load(&genesis_path)?;
    let dir = replay::open(&args.data_dir)?;
    // Challenge modules are replayed through the same bounded compile worker as a validator's.
    let loader = ModuleLoader::new(crate::challenge::worker_compiler()?, None);
    let quiet = args.json;
    let report = replay::replay(dir, &genesis, loader, |height| {
        if !quiet {
            eprintln!("replayed through height {height}");
        }
    })?;
    if args.json {
        output::json(&report);
    } else {
        println!(
            "replayed {} blocks from {} (height {}) to height {}: {} state roots checked",
            report.blocks,
            report.from,
            report.start_height,
            report.last_height,
            report.roots_checked
        );
        println!(
            "state root after height {}: {}",
            report.last_height, report.final_root
        );
        match &report.divergence {
            None => println!("identical: every root matches its certified header"),
            Some(d) => println!("DIVERGES at height {}: {}", d.height, d.reason),
        }
    }
    Ok(if report.divergence.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
