//! What the node persists in the data directory's database: the consensus WAL (the safety
//! state, written before any vote leaves), the journal of certificates since the last
//! finalization, and finalized blocks with their certificates.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_consensus::{Certificate, Proposal, SafetyState};
use platform_crypto::BlsSignature;
use platform_primitives::Hash;
use platform_state::Block;
use platform_storage::{Db, DbError, TableSpec};

/// A finalized block as stored: the consensus proposal, the block and the certificate that
/// finalized it (or a descendant).
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct FinalizedBlock {
    /// The proposal consensus agreed on.
    pub proposal: Proposal,
    /// The block.
    pub block: Block,
    /// The finalization certificate.
    pub certificate: Certificate<BlsSignature>,
    /// For an epoch's close finalized through seals (`platform_consensus::SEAL`): the seals
    /// from the close up to the certificate's subject, which link the two
    /// (`platform_consensus::seals_link`). Otherwise empty.
    /// A seal is 88 bytes; the records' size limits leave room for hundreds.
    pub seals: Vec<Proposal>,
}

const WAL: TableSpec<u64, SafetyState> = TableSpec::new("consensus_wal", 1024);
const CERTIFIED: TableSpec<u64, Certificate<BlsSignature>> =
    TableSpec::new("consensus_certified", 64 * 1024);
const FINALIZED: TableSpec<u64, FinalizedBlock> = TableSpec::new(
    "finalized_blocks",
    platform_state::MAX_BLOCK_BYTES + 64 * 1024,
);

/// The height of each finalized block this node holds, by header hash (for lookups by hash).
const HEIGHTS: TableSpec<[u8; 32], u64> = TableSpec::new("finalized_heights", 64);

/// Blocks stored in the blob store before they were final (announced by their leader, or
/// built here), by height: each block's header hash and blob hash. After a restart the body
/// of a block finalized meanwhile is found here by its header hash; before, it was lost with
/// the driver's memory, and a block whose body only restarted validators held was never
/// applied. A height's entries go when its block is finalized.
const UNFINALIZED: TableSpec<u64, Vec<HeaderAndBlob>> =
    TableSpec::new("unfinalized_blocks", MAX_BLOCKS_PER_HEIGHT * 64 + 8);

/// A block's header hash and the hash of the blob that holds it.
type HeaderAndBlob = ([u8; 32], [u8; 32]);

/// Blocks of one height remembered in [`UNFINALIZED`] (one per view that proposed at that
/// height; more are not remembered).
const MAX_BLOCKS_PER_HEIGHT: usize = 64;

fn certificate_key(c: &Certificate<BlsSignature>) -> u64 {
    let kind = match c.kind {
        platform_consensus::VoteKind::Notarize => 0,
        platform_consensus::VoteKind::Nullify => 1,
        platform_consensus::VoteKind::Finalize => 2,
    };
    c.subject.view().0.saturating_mul(4) + kind
}

/// The safety state, or the default on first start.
pub fn load_wal(db: &Db) -> Result<SafetyState, DbError> {
    Ok(db.get(&WAL, &0)?.unwrap_or_default())
}

/// Makes the safety state durable (the commit syncs).
pub fn save_wal(db: &Db, state: &SafetyState) -> Result<(), DbError> {
    db.write(|tx| tx.put(&WAL, &0, state))
}

/// Journals a certificate.
pub fn journal_certificate(db: &Db, c: &Certificate<BlsSignature>) -> Result<(), DbError> {
    db.write(|tx| tx.put(&CERTIFIED, &certificate_key(c), c))
}

/// The journaled certificates above `view` (older ones are no longer needed).
pub fn journaled_certificates(
    db: &Db,
    above_view: u64,
) -> Result<Vec<Certificate<BlsSignature>>, DbError> {
    Ok(db
        .range(&CERTIFIED, (above_view + 1).saturating_mul(4).., 1 << 16)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// Deletes the journaled certificates of views at or below `through` (an ended epoch's: views
/// run on across epochs, each epoch's after its anchor's), in batches. Returns how many went.
/// Without this the journal kept two certificates per block forever.
pub fn prune_certificates(db: &Db, through: u64) -> Result<usize, DbError> {
    const BATCH: usize = 4096;
    let last_key = through.saturating_mul(4).saturating_add(3);
    let mut pruned = 0;
    loop {
        let keys: Vec<u64> = db
            .range(&CERTIFIED, ..=last_key, BATCH)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            return Ok(pruned);
        }
        db.write(|tx| {
            for k in &keys {
                tx.delete(&CERTIFIED, k)?;
            }
            Ok::<_, DbError>(())
        })?;
        pruned += keys.len();
    }
}

/// Remembers that the block at `height` whose header hashes to `header` is stored as blob
/// `blob`.
pub fn note_unfinalized(db: &Db, height: u64, header: Hash, blob: Hash) -> Result<(), DbError> {
    db.write(|tx| {
        let mut rows = tx.get(&UNFINALIZED, &height)?.unwrap_or_default();
        if rows.len() < MAX_BLOCKS_PER_HEIGHT && !rows.iter().any(|(h, _)| *h == header.0) {
            rows.push((header.0, blob.0));
            tx.put(&UNFINALIZED, &height, &rows)?;
        }
        Ok(())
    })
}

/// The blob holding the block at `height` whose header hashes to `header`, if this node
/// stored it before it was final.
pub fn unfinalized_blob(db: &Db, height: u64, header: &Hash) -> Result<Option<Hash>, DbError> {
    Ok(db
        .get(&UNFINALIZED, &height)?
        .and_then(|rows| rows.into_iter().find(|(h, _)| *h == header.0))
        .map(|(_, blob)| Hash(blob)))
}

/// Stores a finalized block and, in the same commit, the blobs it brought that are collected
/// later ([`crate::collect`]).
pub fn save_finalized(
    db: &Db,
    f: &FinalizedBlock,
    held: &[crate::collect::Row],
) -> Result<(), DbError> {
    let height = f.proposal.height.0;
    db.write(|tx| {
        tx.put(&FINALIZED, &height, f)?;
        tx.put(&HEIGHTS, &f.block.header.hash().0, &height)?;
        tx.delete(&UNFINALIZED, &height)?;
        for (i, row) in held.iter().enumerate() {
            tx.put(
                &crate::collect::HELD,
                &crate::collect::row_key(height, i),
                row,
            )?;
        }
        Ok(())
    })
}

/// Deletes the finalized blocks at or below `through`, in batches. Returns how many went.
pub fn prune_finalized(db: &Db, through: u64) -> Result<usize, DbError> {
    const BATCH: usize = 4096;
    let mut pruned = 0;
    loop {
        let heights: Vec<(u64, Hash)> = db
            .range(&FINALIZED, ..=through, BATCH)?
            .into_iter()
            .map(|(h, f)| (h, f.block.header.hash()))
            .collect();
        if heights.is_empty() {
            return Ok(pruned);
        }
        db.write(|tx| {
            for (h, hash) in &heights {
                tx.delete(&FINALIZED, h)?;
                tx.delete(&HEIGHTS, &hash.0)?;
            }
            Ok::<_, DbError>(())
        })?;
        pruned += heights.len();
    }
}

/// The height of the finalized block whose header hashes to `hash`, if this node holds it.
pub fn finalized_height_of(db: &Db, hash: &Hash) -> Result<Option<u64>, DbError> {
    db.get(&HEIGHTS, &hash.0)
}

/// The lowest height at or above `from` this node holds a finalized block of.
pub fn first_finalized_from(db: &Db, from: u64) -> Result<Option<u64>, DbError> {
    Ok(db
        .range(&FINALIZED, from.., 1)?
        .into_iter()
        .next()
        .map(|(h, _)| h))
}

/// Finalized blocks from `from` to `to` (inclusive), in height order.
pub fn finalized_range(db: &Db, from: u64, to: u64) -> Result<Vec<FinalizedBlock>, DbError> {
    Ok(db
        .range(&FINALIZED, from..=to, (to - from + 1) as usize)?
        .into_iter()
        .map(|(_, f)| f)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_consensus::{Subject, VoteKind};
    use platform_crypto::SignerBitmap;
    use platform_primitives::{Epoch, View};

    fn nullification(epoch: u64, view: u64) -> Certificate<BlsSignature> {
        Certificate {
            kind: VoteKind::Nullify,
            subject: Subject::View(Epoch(epoch), View(view)),
            signers: SignerBitmap::new(4),
            signature: BlsSignature([0; 96]),
        }
    }

    /// An ended epoch's certificates go at the switch; the new epoch's stay.
    #[test]
    fn pruning_certificates_keeps_only_views_above_the_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db.redb")).unwrap();
        for view in 1..=6 {
            journal_certificate(&db, &nullification(0, view)).unwrap();
        }
        for view in 7..=9 {
            journal_certificate(&db, &nullification(1, view)).unwrap();
        }
        assert_eq!(prune_certificates(&db, 6).unwrap(), 6);
        let left = journaled_certificates(&db, 0).unwrap();
        let views: Vec<u64> = left.iter().map(|c| c.subject.view().0).collect();
        assert_eq!(views, vec![7, 8, 9]);
        assert_eq!(prune_certificates(&db, 6).unwrap(), 0);
    }

    /// A block stored before it was final is found by height and header hash (each of a
    /// height's competing blocks), and forgotten when its height is finalized.
    #[test]
    fn unfinalized_blocks_are_found_by_header_until_their_height_is_final() {
        use platform_crypto::VrfProof;
        use platform_primitives::{Height, Hotkey};
        use platform_state::BlockHeader;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db.redb")).unwrap();
        let (a, b) = (Hash::of(b"header a"), Hash::of(b"header b"));
        note_unfinalized(&db, 3, a, Hash::of(b"blob a")).unwrap();
        note_unfinalized(&db, 3, b, Hash::of(b"blob b")).unwrap();
        note_unfinalized(&db, 3, b, Hash::of(b"blob b")).unwrap();
        assert_eq!(
            unfinalized_blob(&db, 3, &a).unwrap(),
            Some(Hash::of(b"blob a"))
        );
        assert_eq!(
            unfinalized_blob(&db, 3, &b).unwrap(),
            Some(Hash::of(b"blob b"))
        );
        assert_eq!(unfinalized_blob(&db, 4, &a).unwrap(), None);
        assert_eq!(unfinalized_blob(&db, 3, &Hash::of(b"other")).unwrap(), None);
        let header = BlockHeader {
            height: Height(3),
            view: View(3),
            parent: Hash::of(b"parent"),
            state_root: Hash::of(b"root"),
            proposer: Hotkey([1; 32]),
            timestamp_ms: 1,
            beacon: VrfProof {
                output: [0; 32],
                proof: [0; 64],
            },
            tx_root: Hash::of(b"no transactions"),
        };
        let proposal = Proposal {
            epoch: Epoch(0),
            view: View(3),
            height: Height(3),
            parent: Hash::of(b"parent proposal"),
            payload: header.hash(),
        };
        let f = FinalizedBlock {
            proposal,
            block: Block {
                header,
                txs: Vec::new(),
            },
            certificate: Certificate {
                kind: VoteKind::Finalize,
                subject: Subject::Proposal(proposal),
                signers: SignerBitmap::new(4),
                signature: BlsSignature([0; 96]),
            },
            seals: Vec::new(),
        };
        save_finalized(&db, &f, &[]).unwrap();
        assert_eq!(unfinalized_blob(&db, 3, &a).unwrap(), None);
        assert_eq!(unfinalized_blob(&db, 3, &b).unwrap(), None);
    }
}
