//! Re-executing a validator's history: every stored finalized block, in order, on a fresh state
//! built from the genesis (or, when the oldest blocks were pruned, from the node's oldest kept
//! snapshot), checking each block header's state root against the root the replay computed.
//! Identical roots at every height are the proof that the history is deterministic; the first
//! difference is reported with its height.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use platform_runtime::ModuleLoader;
use platform_state::{BlockError, Genesis, State};
use platform_storage::DataDir;
use serde::Serialize;

use crate::{snapshots, store};

/// Blocks read from the database at a time.
const BATCH: u64 = 256;

/// What a replay found.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// `genesis`, or `snapshot` when the blocks before the newest snapshot were pruned.
    pub from: &'static str,
    /// The height the replay started after (0 for genesis).
    pub start_height: u64,
    /// The last height replayed.
    pub last_height: u64,
    /// Blocks re-executed.
    pub blocks: u64,
    /// State roots compared with a certified header: one per block, whose header commits to
    /// the root after its parent (the genesis root, for block 1).
    pub roots_checked: u64,
    /// The state root after the last block (no stored header commits to it yet).
    pub final_root: String,
    /// The first height whose block did not apply to the replayed state, if any.
    pub divergence: Option<Divergence>,
}

/// Where a replay and the stored history part.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// The block that did not apply.
    pub height: u64,
    /// Why, e.g. a state root other than the header's.
    pub reason: String,
}

/// Replays the finalized blocks of `dir`. `progress` is called after each batch with the last
/// height replayed.
pub fn replay(
    dir: Arc<DataDir>,
    genesis: &Genesis,
    loader: ModuleLoader,
    mut progress: impl FnMut(u64),
) -> Result<ReplayReport> {
    let host = crate::weights_host::weights_host(dir.clone(), loader);
    let first = store::finalized_range(dir.db(), 1, 1)?;
    let (mut state, from, start_height) = if first.is_empty() {
        match snapshots::list(dir.db())?.into_iter().next() {
            Some((height, record)) => {
                let (state, proof) = snapshots::load(&dir, height, &record)?;
                (state, "snapshot", proof.anchor.height.0)
            }
            None => (genesis_state(genesis)?, "genesis", 0),
        }
    } else {
        (genesis_state(genesis)?, "genesis", 0)
    };
    if state.meta().netuid != genesis.netuid {
        return Err(anyhow!(
            "the data directory is of subnet {}, the genesis of {}",
            state.meta().netuid.0,
            genesis.netuid.0
        ));
    }
    let mut report = ReplayReport {
        from,
        start_height,
        last_height: start_height,
        blocks: 0,
        roots_checked: 0,
        final_root: state.root().to_hex(),
        divergence: None,
    };
    'batches: loop {
        let next = report.last_height + 1;
        let batch = store::finalized_range(dir.db(), next, next + BATCH - 1)?;
        if batch.is_empty() {
            break;
        }
        for f in batch {
            let height = f.proposal.height.0;
            if height != report.last_height + 1 {
                report.divergence = Some(Divergence {
                    height: report.last_height + 1,
                    reason: format!(
                        "the database holds no block {} (the next is {height})",
                        report.last_height + 1
                    ),
                });
                break 'batches;
            }
            // `apply_block` checks the header against the replayed state: its parent, and the
            // state root after the parent, among the rest.
            if let Err(e) = state.apply_block(&f.block, &host) {
                report.divergence = Some(Divergence {
                    height,
                    reason: describe(&e),
                });
                break 'batches;
            }
            report.roots_checked += 1;
            report.blocks += 1;
            report.last_height = height;
        }
        progress(report.last_height);
    }
    report.final_root = state.root().to_hex();
    Ok(report)
}

fn genesis_state(genesis: &Genesis) -> Result<State> {
    State::genesis(genesis).map_err(|e| anyhow!("the genesis is invalid: {e}"))
}

fn describe(e: &BlockError) -> String {
    match e {
        BlockError::WrongStateRoot { expected, got } => format!(
            "the header says the state root after the parent is {got}, the replay computed \
             {expected}"
        ),
        other => format!("{other:?}"),
    }
}

/// Opens `data_dir` for a replay (it must not be in use by a running node).
pub fn open(data_dir: &std::path::Path) -> Result<Arc<DataDir>> {
    Ok(Arc::new(DataDir::open(data_dir).with_context(|| {
        format!(
            "opening {} (a running validator holds it: stop it first)",
            data_dir.display()
        )
    })?))
}
