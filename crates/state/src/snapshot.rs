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

/// What a verified snapshot holds.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct SnapshotContents {
    /// Height of the last block applied.
    pub height: Height,
    /// Its header hash.
    pub block_hash: Hash,
    /// The recomputed (and matching) state root.
    pub state_root: Hash,
    /// Number of entries.
    pub entries: usize,
    /// Size of the certificate.
    pub certificate_bytes: usize,
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
    #[error("the state inside is at height {inner}, not the claimed {claimed}")]
    PositionMismatch {
        /// Height recorded in the state.
        inner: Height,
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
            block_hash: self.last_block(),
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

    /// Decodes a snapshot and checks everything that needs no consensus: the format, the key
    /// order, the root recomputed from the entries, and the log position inside. The
    /// certificate is not checked; use [`Snapshot::import`] to load a state.
    pub fn inspect(bytes: &[u8], limit: usize) -> Result<SnapshotContents, SnapshotError> {
        Self::open(bytes, limit).map(|(info, _, _)| info)
    }

    fn open(
        bytes: &[u8],
        limit: usize,
    ) -> Result<(SnapshotContents, Vec<u8>, State), SnapshotError> {
        let snap: Snapshot = decode("snapshot", bytes, limit)?;
        if snap.version != 1 {
            return Err(SnapshotError::Version(snap.version));
        }
        if snap.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(SnapshotError::Unordered);
        }
        let entries = snap.entries.len();
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
        let state = State::from_store(store, snap.block_hash);
        let inner = state.meta_checked().map_or(Height(0), |m| m.height);
        if inner != snap.height {
            return Err(SnapshotError::PositionMismatch {
                inner,
                claimed: snap.height,
            });
        }
        let info = SnapshotContents {
            height: snap.height,
            block_hash: snap.block_hash,
            state_root: snap.state_root,
            entries,
            certificate_bytes: snap.certificate.len(),
        };
        Ok((info, snap.certificate, state))
    }

    /// Decodes and verifies a snapshot and returns its state. Besides the checks of
    /// [`Snapshot::inspect`], `check_certificate(block_hash, height, state_root, certificate)`
    /// — the consensus layer's check — must accept: the certificate must finalize the block
    /// *and* commit to the state root (the root after block h is in the header of block
    /// h + 1, so the certificate is that header with its quorum certificate).
    pub fn import(
        bytes: &[u8],
        limit: usize,
        check_certificate: impl FnOnce(&Hash, Height, &Hash, &[u8]) -> Result<(), String>,
    ) -> Result<State, SnapshotError> {
        let (info, certificate, state) = Self::open(bytes, limit)?;
        check_certificate(
            &info.block_hash,
            info.height,
            &info.state_root,
            &certificate,
        )
        .map_err(|reason| SnapshotError::Certificate {
            block: info.block_hash,
            reason,
        })?;
        Ok(state)
    }
}
