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
}
