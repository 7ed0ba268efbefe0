//! Snapshots: the whole state at a finalized height, with the certificate that finalized it.
//!
//! Import rebuilds the trie from the entries and refuses the snapshot unless the recomputed
//! root equals the root it claims, its log position matches its header, and the caller's
//! certificate check accepts the block hash. Entries must be in strictly ascending key order,
//! so one state has exactly one snapshot encoding.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Hash, Height, decode, encode};

use crate::machine::State;
use crate::store::Store;

/// A snapshot file.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Snapshot {
    /// Format version (1).
    pub version: u16,
    /// Height of the last block applied.
    pub height: Height,
    /// Hash of that block's header.
    pub block_hash: Hash,
    /// The state root after it.
    pub state_root: Hash,
    /// The consensus certificate finalizing `block_hash` (format owned by the consensus layer).
    pub certificate: Vec<u8>,
    /// Every state entry, keys strictly ascending.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot.
    #[error(transparent)]
    Codec(#[from] platform_primitives::CodecError),
    /// A format this build does not read.
    #[error("snapshot format {0} is not supported (this build reads format 1)")]
    Version(u16),
    /// Keys out of order or repeated.
    #[error("snapshot entries are not in strictly ascending key order")]
    Unordered,
    /// The entries do not hash to the claimed root.
    #[error("snapshot entries hash to {computed}, but the snapshot claims {claimed}")]
    RootMismatch {
        /// Recomputed.
        computed: Hash,
        /// Claimed.
        claimed: Hash,
    },
    /// The state inside is not at the claimed height and block.
    #[error("the state inside is at height {inner} (block {inner_hash}), not the claimed {claimed}")]
    PositionMismatch {
        /// Height recorded in the state.
        inner: Height,
        /// Its last block hash.
        inner_hash: Hash,
        /// Claimed height.
        claimed: Height,
    },
    /// The certificate does not finalize the block.
    #[error("the certificate does not finalize block {block}: {reason}")]
    Certificate {
        /// The block.
        block: Hash,
        /// Why (from the consensus layer).
        reason: String,
    },
}

impl State {
    /// Exports the state with the certificate that finalized its last block.
    pub fn export_snapshot(&mut self, certificate: Vec<u8>) -> Snapshot {
        let meta = self.meta();
        Snapshot {
            version: 1,
            height: meta.height,
            block_hash: meta.last_block,
            state_root: self.root(),
            certificate,
            entries: self
                .store()
                .entries()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        }
    }
}

impl Snapshot {
    /// The encoded snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and verifies a snapshot. `check_certificate(block_hash, height, state_root,
    /// certificate)` is the consensus layer's check that the certificate finalizes the block
    /// *and* commits to the state root (the root after block h appears in the header of block
    /// h + 1, so a certificate is that header with its quorum certificate). Entries are only
    /// read after it passes.
    pub fn import(
        bytes: &[u8],
        limit: usize,
        check_certificate: impl FnOnce(&Hash, Height, &Hash, &[u8]) -> Result<(), String>,
    ) -> Result<State, SnapshotError> {
        let snap: Snapshot = decode("snapshot", bytes, limit)?;
        if snap.version != 1 {
            return Err(SnapshotError::Version(snap.version));
        }
        if snap.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(SnapshotError::Unordered);
        }
        let mut store = Store::default();
        for (k, v) in snap.entries {
            store.put(k, v);
        }
        store.commit();
        let computed = store.root();
        if computed != snap.state_root {
            return Err(SnapshotError::RootMismatch {
                computed,
                claimed: snap.state_root,
            });
        }
        check_certificate(
            &snap.block_hash,
            snap.height,
            &snap.state_root,
            &snap.certificate,
        )
        .map_err(|reason| SnapshotError::Certificate {
            block: snap.block_hash,
            reason,
        })?;
        let state = State::from_store(store);
        let meta = state.meta_checked().ok_or(SnapshotError::PositionMismatch {
            inner: Height(0),
            inner_hash: Hash::ZERO,
            claimed: snap.height,
        })?;
        if meta.height != snap.height || meta.last_block != snap.block_hash {
            return Err(SnapshotError::PositionMismatch {
                inner: meta.height,
                inner_hash: meta.last_block,
                claimed: snap.height,
            });
        }
        Ok(state)
    }
}
