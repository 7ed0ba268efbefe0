//! `platform snapshot`: state snapshots.

use std::path::PathBuf;
use std::process::ExitCode;

use platform_state::Snapshot;

use crate::output;

/// Largest snapshot file read.
const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

/// Snapshot commands.
#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Verify a snapshot file's integrity — format, key order, the state root recomputed from
    /// every entry, the log position — and show what it holds. The consensus certificate is
    /// checked when a node imports the snapshot, against its validator set.
    Inspect {
        /// The snapshot file.
        file: PathBuf,
        /// Print JSON (`height`, `block_hash`, `state_root`, `entries`, `certificate_bytes`).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: SnapshotCommand) -> anyhow::Result<ExitCode> {
    let SnapshotCommand::Inspect { file, json } = cmd;
    let len = std::fs::metadata(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
        .len();
    if len > MAX_SNAPSHOT_BYTES {
        anyhow::bail!(
            "{} is {len} bytes; snapshots above 4 GiB are refused",
            file.display()
        );
    }
    let bytes =
        std::fs::read(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let info = Snapshot::inspect(&bytes, MAX_SNAPSHOT_BYTES as usize)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if json {
        output::json(&info);
    } else {
        println!("height:       {}", info.height);
        println!("block:        {}", info.block_hash);
        println!(
            "state root:   {} (recomputed from {} entries)",
            info.state_root, info.entries
        );
        println!("certificate:  {} bytes", info.certificate_bytes);
    }
    Ok(ExitCode::SUCCESS)
}
