//! `platform snapshot`: state snapshots.

use std::path::PathBuf;
use std::process::ExitCode;

use platform_node::snapshots;
use platform_state::Snapshot;

use crate::output;

/// Largest snapshot file read.
const MAX_SNAPSHOT_BYTES: u64 = snapshots::MAX_SNAPSHOT_BYTES as u64;

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
    /// List the snapshots a stopped validator holds (it takes one after each epoch close and
    /// keeps `[retention] snapshots` of them).
    List {
        /// The validator's data directory.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
        /// Print JSON: one object per snapshot (`height`, `epoch`, `block_hash`, `blob`,
        /// `bytes`), oldest first.
        #[arg(long)]
        json: bool,
    },
    /// Write one of a stopped validator's snapshots to a file (the newest, or the one at
    /// --height), after checking it loads: a backup, or a start for another node
    /// (`platform snapshot restore`).
    Create {
        /// The validator's data directory.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// The snapshot's height (default: the newest).
        #[arg(long)]
        height: Option<u64>,
        /// Print JSON (`height`, `bytes`, `file`).
        #[arg(long)]
        json: bool,
    },
    /// Give a stopped validator a snapshot file to start from. It is checked as a peer's
    /// snapshot is at catch-up: root and proof, the validator set against this node's genesis
    /// or the chain's epoch anchor, and a quorum certificate of keys this node knows. The data
    /// directory must not hold blocks at or past the snapshot's height (use a fresh one).
    Restore {
        /// The validator's data directory (created by `platform init`).
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
        /// The snapshot file.
        file: PathBuf,
        /// The chain that confirms the snapshot's epoch anchor (default: the data directory's
        /// config.toml `chain`).
        #[arg(long)]
        chain: Option<String>,
        /// Print JSON (`height`, `epoch`, `state_root`, `blob`).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: SnapshotCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SnapshotCommand::Inspect { file, json } => inspect(file, json),
        SnapshotCommand::List { data_dir, json } => list(&data_dir, json),
        SnapshotCommand::Create {
            data_dir,
            out,
            height,
            json,
        } => create(&data_dir, &out, height, json),
        SnapshotCommand::Restore {
            data_dir,
            file,
            chain,
            json,
        } => restore(&data_dir, &file, chain, json),
    }
}

/// One stored snapshot, as `list` shows it.
#[derive(serde::Serialize)]
struct Stored {
    height: u64,
    epoch: u64,
    block_hash: String,
    /// The manifest's blob.
    blob: String,
    /// The snapshot's size, from its manifest (`None`: the manifest is missing or unreadable).
    bytes: Option<u64>,
    /// The chunks it is stored and served in.
    chunks: Option<usize>,
}

fn stored(
    data_dir: &std::path::Path,
) -> anyhow::Result<(Vec<Stored>, std::sync::Arc<platform_storage::DataDir>)> {
    let dir = platform_node::replay::open(data_dir)?;
    let list = snapshots::list(dir.db())?
        .into_iter()
        .map(|(height, r)| {
            let manifest = snapshots::read_manifest(dir.blobs(), &r.blob)
                .ok()
                .flatten();
            Stored {
                height,
                epoch: r.proof.anchor.epoch.0,
                block_hash: r.proof.anchor.payload.to_hex(),
                bytes: manifest.as_ref().map(|m| m.len),
                chunks: manifest.as_ref().map(|m| m.chunks.len()),
                blob: r.blob.to_hex(),
            }
        })
        .collect();
    Ok((list, dir))
}

fn list(data_dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let (list, _) = stored(data_dir)?;
    if json {
        output::json(&list);
    } else if list.is_empty() {
        println!("no snapshots (one is taken after each epoch close)");
    } else {
        for s in &list {
            println!(
                "height {:>8}  epoch {:>5}  block {}  {} bytes in {} chunks",
                s.height,
                s.epoch,
                s.block_hash,
                s.bytes.map_or("?".to_string(), |b| b.to_string()),
                s.chunks.map_or("?".to_string(), |c| c.to_string())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create(
    data_dir: &std::path::Path,
    out: &std::path::Path,
    height: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = platform_node::replay::open(data_dir)?;
    let all = snapshots::list(dir.db())?;
    let chosen = match height {
        Some(h) => all.into_iter().find(|(at, _)| *at == h),
        None => all.into_iter().last(),
    };
    let Some((at, record)) = chosen else {
        anyhow::bail!(
            "{} holds no snapshot{} (`platform snapshot list` shows what it holds)",
            data_dir.display(),
            height.map_or(String::new(), |h| format!(" at height {h}"))
        );
    };
    // Loads as the node would load it (root and proof links checked) before it is written.
    snapshots::load(&dir, at, &record)?;
    let bytes = snapshots::read_chunked(dir.blobs(), &record.blob)?.ok_or_else(|| {
        anyhow::anyhow!(
            "a blob of the snapshot (manifest {}) is missing",
            record.blob
        )
    })?;
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    if json {
        output::json(&serde_json::json!({
            "height": at,
            "bytes": bytes.len(),
            "file": out.display().to_string(),
        }));
    } else {
        println!(
            "wrote the snapshot at height {at} ({} bytes) to {}",
            bytes.len(),
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(
    data_dir: &std::path::Path,
    file: &std::path::Path,
    chain: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = platform_node::config::NodeConfig::load(&data_dir.join("config.toml"))?;
    let genesis = platform_node::genesis::load(&data_dir.join("genesis.bin"))?;
    let len = std::fs::metadata(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
        .len();
    if len > snapshots::MAX_SNAPSHOT_BYTES as u64 {
        anyhow::bail!(
            "{} is {len} bytes, above the snapshot limit",
            file.display()
        );
    }
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let dir = platform_node::replay::open(data_dir)?;
    let chain = chain.or(config.chain.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let restored = rt.block_on(snapshots::restore(
        &dir,
        &genesis,
        &bytes,
        chain.as_deref(),
        &config.retention.get(),
    ))?;
    if json {
        output::json(&restored);
    } else {
        println!(
            "restored the snapshot at height {} (epoch {}, state root {}); the validator starts \
             from it",
            restored.height, restored.epoch, restored.state_root
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
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
