//! Garbage collection of blobs the validator no longer needs.
//!
//! Two kinds of blob would otherwise pile up for as long as the network runs:
//!
//! - **Block blobs**: each proposal's block, stored so peers can fetch it after its
//!   announcement. Once finalized the block lives in the database (and is served by `sync`
//!   until a snapshot passes it);
//!   the blob is only needed by peers still catching up on announcements, so it is collected
//!   [`Retention::block_depth`] heights after it was finalized.
//! - **Payload blobs**: miners' submissions. Once a submission is settled (certified or
//!   expired) nobody evaluates it again; its payload is collected after
//!   [`Retention::payload_epochs`] further epochs, its DHT announcement withdrawn — unless a
//!   submission not yet collectable names the same payload (two miners may submit the same
//!   bytes).
//!
//! What is held is recorded in the database in the same write as the finalized block that
//! brought it ([`crate::store::save_finalized`]), so a restart forgets nothing. A crash between
//! deleting a blob and deleting its row only repeats the deletion. Module blobs, snapshots
//! (the newest [`Retention::snapshots`] are kept by [`crate::snapshots`]) and blobs never ordered into a block are
//! not collected here; finalized blocks behind the oldest kept snapshot are deleted when a
//! snapshot is stored (unless [`Retention::archive`]).

use std::collections::{BTreeSet, HashSet};

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Hash, SubmissionId};
use platform_state::State;
use platform_state::records::SubmissionStatus;
use platform_storage::{Db, DbError, TableSpec};

/// How often (in finalized heights) a validator looks for blobs to collect.
pub const EVERY_HEIGHTS: u64 = 64;

/// How long blobs are kept (`[retention]` in config.toml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Epochs a settled submission's payload is kept after the epoch it was ordered in.
    pub payload_epochs: u64,
    /// Finalized heights a block's blob is kept.
    pub block_depth: u64,
    /// Finalized heights the payload of an admitted submission is kept while it is neither
    /// pending in the mempool nor ordered (evicted, refused by a block, or never gossiped on).
    pub unordered_depth: u64,
    /// Snapshots kept (at least 1); older ones are deleted ([`crate::snapshots::save`]).
    pub snapshots: usize,
    /// Keep every finalized block in the database. Otherwise the blocks at or below the
    /// oldest kept snapshot's height are deleted when a snapshot is stored: a restart starts
    /// from a snapshot, and a peer behind it catches up from a snapshot too.
    pub archive: bool,
    /// Size of the chunks snapshots are stored and served in
    /// ([`crate::snapshots::Manifest`]).
    pub snapshot_chunk_bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            payload_epochs: 2,
            block_depth: 256,
            unordered_depth: 256,
            snapshots: 2,
            archive: false,
            snapshot_chunk_bytes: crate::snapshots::CHUNK_BYTES,
        }
    }
}

/// A blob the validator holds, and why.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Held {
    /// The blob of the block finalized at `height`.
    Block { height: u64 },
    /// The payload of a submission ordered in `epoch`.
    Payload {
        submission: SubmissionId,
        epoch: u64,
    },
    /// The payload of a submission this validator's API admitted at finalized `height`, not
    /// (yet) ordered: in quarantine until it is ordered or given up.
    Admitted {
        submission: SubmissionId,
        height: u64,
    },
}

/// One row: what is held, and the blob.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Row {
    pub held: Held,
    pub blob: Hash,
}

pub(crate) const HELD: TableSpec<u64, Row> = TableSpec::new("held_blobs", 256);

/// Rows of one block are keyed `height << 20 | index`: unique, and in finalization order. A
/// block holds at most `MAX_BLOCK_BYTES` (8 MiB) of transactions of at least 8 bytes each, so
/// fewer than 2^20 rows.
pub(crate) fn row_key(height: u64, index: usize) -> u64 {
    (height << 20) | (index as u64 & ((1 << 20) - 1))
}

/// Rows of admitted payloads live above every block row: the top bit, then 63 bits of the
/// submission id (so one submission has one row, however often it is admitted).
pub fn admitted_key(submission: &SubmissionId) -> u64 {
    let low = u64::from_le_bytes(submission.0.0[..8].try_into().expect("8 bytes"));
    (1 << 63) | (low >> 1)
}

/// Records the payload of a submission the API admitted at finalized `height`.
pub fn hold_admitted(
    db: &Db,
    submission: SubmissionId,
    height: u64,
    payload: Hash,
) -> Result<(), DbError> {
    let row = Row {
        held: Held::Admitted { submission, height },
        blob: payload,
    };
    db.write(|tx| tx.put(&HELD, &admitted_key(&submission), &row))
}

/// The rows a finalized block adds: its own blob, and the payload of each submission it
/// orders.
pub fn rows_for(
    height: u64,
    epoch: u64,
    block_blob: Hash,
    block: &platform_state::Block,
) -> Vec<Row> {
    let mut rows = vec![Row {
        held: Held::Block { height },
        blob: block_blob,
    }];
    for tx in &block.txs {
        if let platform_state::Tx::Submit(t) = tx {
            rows.push(Row {
                held: Held::Payload {
                    submission: t.submission.id(),
                    epoch,
                },
                blob: t.submission.payload_hash,
            });
        }
    }
    rows
}

/// What may go now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Rows to delete.
    pub rows: Vec<u64>,
    /// Blobs to delete (no remaining row names them).
    pub blobs: Vec<Hash>,
    /// Of those, the payloads (their DHT announcements are withdrawn).
    pub payloads: Vec<Hash>,
}

/// Every row held. All of them are read (their number is bounded by the retention), so that
/// [`due`] never deletes a blob another row still needs.
pub fn held(db: &Db) -> Result<Vec<(u64, Row)>, DbError> {
    db.range(&HELD, .., usize::MAX)
}

/// The rows that may be collected at `height` in `epoch`, as `state` settles submissions and
/// with the submissions `pending` in the mempool.
pub fn due(
    rows: Vec<(u64, Row)>,
    state: &State,
    pending: &HashSet<SubmissionId>,
    height: u64,
    epoch: u64,
    retention: Retention,
) -> Due {
    let mut keep = BTreeSet::new();
    let mut gone = Vec::new();
    for (key, row) in rows {
        let collectable = match &row.held {
            Held::Block { height: h } => h.saturating_add(retention.block_depth) <= height,
            Held::Payload {
                submission,
                epoch: e,
            } => {
                e.saturating_add(retention.payload_epochs) <= epoch
                    && state
                        .submission(submission)
                        .is_none_or(|r| !matches!(r.status, SubmissionStatus::Pending))
            }
            // Ordered, its `Payload` row keeps the blob; never ordered, it goes.
            Held::Admitted {
                submission,
                height: h,
            } => {
                h.saturating_add(retention.unordered_depth) <= height
                    && !pending.contains(submission)
                    && state
                        .submission(submission)
                        .is_none_or(|r| !matches!(r.status, SubmissionStatus::Pending))
            }
        };
        if collectable {
            gone.push((key, row));
        } else {
            keep.insert(row.blob);
        }
    }
    let mut due = Due::default();
    let mut blobs = BTreeSet::new();
    for (key, row) in gone {
        due.rows.push(key);
        if !keep.contains(&row.blob) && blobs.insert(row.blob) {
            due.blobs.push(row.blob);
            if matches!(row.held, Held::Payload { .. } | Held::Admitted { .. }) {
                due.payloads.push(row.blob);
            }
        }
    }
    due
}

/// Deletes the blobs, then the rows. Returns how many blobs were deleted.
pub fn collect(dir: &platform_storage::DataDir, due: &Due) -> Result<usize, anyhow::Error> {
    let mut deleted = 0;
    for blob in &due.blobs {
        deleted += usize::from(dir.blobs().remove(blob)?);
    }
    dir.db().write(|tx| {
        for key in &due.rows {
            tx.delete(&HELD, key)?;
        }
        Ok::<_, DbError>(())
    })?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_storage::DataDir;

    fn hold(dir: &DataDir, height: u64, rows: &[Row]) {
        dir.db()
            .write(|tx| {
                for (i, row) in rows.iter().enumerate() {
                    tx.put(&HELD, &row_key(height, i), row)?;
                }
                Ok::<_, DbError>(())
            })
            .unwrap();
    }

    #[test]
    fn blocks_go_after_their_depth_and_shared_blobs_stay_while_needed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let state = State::genesis(&crate::genesis::dev(4, 0, 1000).unwrap()).unwrap();
        let retention = Retention {
            payload_epochs: 1,
            block_depth: 10,
            ..Retention::default()
        };
        let blob = |b: &[u8]| dir.blobs().put(b).unwrap();
        let (b1, b2, p) = (blob(b"block 1"), blob(b"block 2"), blob(b"payload"));
        hold(
            &dir,
            1,
            &[Row {
                held: Held::Block { height: 1 },
                blob: b1,
            }],
        );
        hold(
            &dir,
            2,
            &[Row {
                held: Held::Block { height: 2 },
                blob: b2,
            }],
        );
        // A payload ordered in epoch 0 whose submission the state does not hold (settled and
        // gone), and another row naming the same bytes that is not due yet.
        let gone = SubmissionId(Hash::of(b"gone"));
        let later = SubmissionId(Hash::of(b"later"));
        hold(
            &dir,
            3,
            &[Row {
                held: Held::Payload {
                    submission: gone,
                    epoch: 0,
                },
                blob: p,
            }],
        );
        hold(
            &dir,
            4,
            &[Row {
                held: Held::Payload {
                    submission: later,
                    epoch: 5,
                },
                blob: p,
            }],
        );

        // Height 11, epoch 1: block 1 is 10 deep, block 2 is not; the first payload row is due
        // but its bytes are still named by the second.
        let none = HashSet::new();
        let due = due(
            super::held(dir.db()).unwrap(),
            &state,
            &none,
            11,
            1,
            retention,
        );
        assert_eq!(due.rows, vec![row_key(1, 0), row_key(3, 0)]);
        assert_eq!(due.blobs, vec![b1]);
        assert!(due.payloads.is_empty());
        assert_eq!(collect(&dir, &due).unwrap(), 1);
        assert!(!dir.blobs().contains(&b1) && dir.blobs().contains(&b2));
        assert!(dir.blobs().contains(&p));

        // Later, everything is due: the payload goes, and its announcement with it.
        let due = due_all(&dir, &state, retention);
        assert_eq!(due.blobs.len(), 2);
        assert_eq!(due.payloads, vec![p]);
        assert_eq!(collect(&dir, &due).unwrap(), 2);
        assert!(!dir.blobs().contains(&p) && !dir.blobs().contains(&b2));
        assert!(dir.db().range(&HELD, .., 10).unwrap().is_empty());
        // Collecting again is harmless.
        assert_eq!(collect(&dir, &due).unwrap(), 0);
    }

    fn due_all(dir: &DataDir, state: &State, retention: Retention) -> Due {
        due(
            super::held(dir.db()).unwrap(),
            state,
            &HashSet::new(),
            1_000,
            100,
            retention,
        )
    }

    /// A payload the API admitted stays while its submission is pending in the mempool, and
    /// goes once it is neither pending nor ordered past the quarantine depth; admitting the
    /// same submission again keeps one row.
    #[test]
    fn admitted_payloads_never_ordered_are_collected_after_their_quarantine() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let state = State::genesis(&crate::genesis::dev(4, 0, 1000).unwrap()).unwrap();
        let retention = Retention {
            unordered_depth: 10,
            ..Retention::default()
        };
        let p = dir.blobs().put(b"parked payload").unwrap();
        let id = SubmissionId(Hash::of(b"parked"));
        hold_admitted(dir.db(), id, 5, p).unwrap();
        hold_admitted(dir.db(), id, 5, p).unwrap();
        assert_eq!(super::held(dir.db()).unwrap().len(), 1);
        let at = |height, pending: &HashSet<SubmissionId>| {
            due(
                super::held(dir.db()).unwrap(),
                &state,
                pending,
                height,
                0,
                retention,
            )
        };
        // Not deep enough yet; then deep enough but still pending in the mempool.
        assert!(at(14, &HashSet::new()).rows.is_empty());
        assert!(at(15, &HashSet::from([id])).rows.is_empty());
        // Neither pending nor ordered: it goes, announcement and all.
        let due = at(15, &HashSet::new());
        assert_eq!(due.rows, vec![admitted_key(&id)]);
        assert_eq!(due.payloads, vec![p]);
        assert_eq!(collect(&dir, &due).unwrap(), 1);
        assert!(!dir.blobs().contains(&p));
        assert!(admitted_key(&id) > row_key(u64::MAX >> 21, 0));
    }

    #[test]
    fn row_keys_are_unique_and_in_finalization_order() {
        assert_ne!(row_key(7, 0), row_key(7, 1));
        assert!(row_key(7, (1 << 20) - 1) < row_key(8, 0));
    }
}
