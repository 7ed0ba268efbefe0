//! Snapshots: once per epoch the node stores the state as of the block that closed the
//! previous epoch, with a proof that consensus finalized it, and serves the newest to peers.
//!
//! * At restart a node loads its own newest snapshot and replays only the finalized blocks
//!   after it.
//! * A node that was away while epochs closed (the network's consensus messages are from a
//!   later epoch) starts from a peer's newer snapshot instead of replaying every block, then
//!   fetches the certified blocks after it.
//!
//! **The proof.** The state root after block `h` is in the header of block `h + 1`, so a
//! snapshot at `h` is bound by the proposals and headers of the finalized blocks `h + 1 ..= m`
//! and a finalization certificate of one of them, signed by the validators of the snapshot's
//! own epoch (the epoch the close at `h` opened).
//!
//! **What a node trusts in a peer's snapshot.** The entries must hash to the root in a
//! certified header, and the certificate must carry a quorum of the snapshot epoch's validator
//! set. That set is not taken from the snapshot on faith: for epoch 0 it must equal the
//! genesis set; for later epochs this node's own chain client must confirm the epoch's anchor
//! (block hash and metagraph) and the set must follow from that metagraph. The signers' BLS
//! keys come from the snapshot's bindings, so the signers whose keys match the bindings this
//! node already holds must by themselves reach a quorum; if they do not (the validator set
//! changed a lot while this node was away), the snapshot is refused and the node catches up
//! block by block, which checks every epoch's handover in order.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_consensus::{
    BlsScheme, Certificate, Proposal, Subject, Validators, VoteKind, certificate_is_valid,
};
use platform_crypto::BlsSignature;
use platform_primitives::{Hash, Height, NetUid, decode, encode};
use platform_state::{BlockHeader, EpochAnchor, Snapshot, State};
use platform_storage::{DataDir, Db, DbError, TableSpec};

/// The most blocks a proof spans (normally one: block `h + 1` with its own certificate).
pub const MAX_PROOF_BLOCKS: usize = 16;

/// The largest encoded proof.
pub const MAX_PROOF_BYTES: usize = 32 * 1024;

/// The largest snapshot stored, served or accepted.
pub const MAX_SNAPSHOT_BYTES: usize = 4 << 30;

/// The default size of the chunks a snapshot is stored and served in (`[retention]
/// snapshot_chunk_kib`).
pub const CHUNK_BYTES: usize = 8 << 20;

/// The largest chunk accepted (well under the network's blob limit).
pub const MAX_CHUNK_BYTES: usize = 8 << 20;

/// The smallest chunk size a node may be configured with (tests store smaller ones).
pub const MIN_CHUNK_BYTES: usize = 4 << 10;

/// The most chunks a manifest lists.
pub const MAX_CHUNKS: usize = 1 << 16;

/// The largest encoded manifest.
pub const MAX_MANIFEST_BYTES: usize = 16 + 4 + MAX_CHUNKS * 32;

/// A snapshot is stored and served as chunks, each a content-addressed blob, listed by a
/// manifest blob; a snapshot's `blob` (in its record, in `SnapshotInfo`) is the manifest's.
/// A peer fetches the manifest, then each chunk, checked against its hash as it arrives, so
/// a snapshot of any size moves in pieces no larger than [`MAX_CHUNK_BYTES`], and memory
/// grows with what arrives, not with what the manifest claims.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Manifest {
    /// The snapshot's length in bytes.
    pub len: u64,
    /// Its chunks, in order.
    pub chunks: Vec<Hash>,
}

impl Manifest {
    /// Strictly decodes a manifest and checks its bounds.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest =
            decode("snapshot manifest", bytes, MAX_MANIFEST_BYTES).map_err(|e| e.to_string())?;
        if m.len > MAX_SNAPSHOT_BYTES as u64 {
            return Err(format!(
                "the snapshot is {} bytes, above the {MAX_SNAPSHOT_BYTES}-byte limit",
                m.len
            ));
        }
        if m.chunks.len() > MAX_CHUNKS || (m.chunks.is_empty() != (m.len == 0)) {
            return Err(format!("{} chunks for {} bytes", m.chunks.len(), m.len));
        }
        Ok(m)
    }
}

/// Stores `bytes` as chunks of `chunk` bytes and their manifest; returns the manifest's blob.
pub fn put_chunked(
    blobs: &platform_storage::BlobStore,
    bytes: &[u8],
    chunk: usize,
) -> Result<Hash, StoreError> {
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(StoreError::TooLarge(bytes.len()));
    }
    let chunk = chunk.clamp(1, MAX_CHUNK_BYTES);
    let mut chunks = Vec::with_capacity(bytes.len().div_ceil(chunk));
    for piece in bytes.chunks(chunk) {
        chunks.push(blobs.put(piece)?);
    }
    let manifest = Manifest {
        len: bytes.len() as u64,
        chunks,
    };
    Ok(blobs.put(&encode(&manifest))?)
}

/// The manifest stored under `blob`, if held.
pub fn read_manifest(
    blobs: &platform_storage::BlobStore,
    blob: &Hash,
) -> Result<Option<Manifest>, StoreError> {
    let Some(bytes) = blobs.get(blob, MAX_MANIFEST_BYTES as u64)? else {
        return Ok(None);
    };
    Manifest::decode(&bytes)
        .map(Some)
        .map_err(|reason| StoreError::Manifest {
            blob: *blob,
            reason,
        })
}

/// The snapshot bytes whose manifest is `blob`, read chunk by chunk (`None`: the manifest or a
/// chunk is not held).
pub fn read_chunked(
    blobs: &platform_storage::BlobStore,
    blob: &Hash,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(manifest) = read_manifest(blobs, blob)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for c in &manifest.chunks {
        let Some(piece) = blobs.get(c, MAX_CHUNK_BYTES as u64)? else {
            return Ok(None);
        };
        out.extend_from_slice(&piece);
        if out.len() as u64 > manifest.len {
            break;
        }
    }
    if out.len() as u64 != manifest.len {
        return Err(StoreError::Manifest {
            blob: *blob,
            reason: format!("its chunks hold {} bytes, not {}", out.len(), manifest.len),
        });
    }
    Ok(Some(out))
}

/// A peer's snapshot, by its manifest's blob: the manifest, then each chunk (asked of `peer`
/// first, then of the other connected peers; each checked against its hash on arrival and
/// stored). Refused when the chunks add up to more or less than the manifest says.
pub async fn fetch_peer(
    net: &platform_network::Network,
    blob: Hash,
    peer: platform_network::libp2p::PeerId,
) -> Result<Vec<u8>, String> {
    let manifest = net
        .fetch_blob_from(blob, Some(peer))
        .await
        .map_err(|e| format!("its manifest: {e}"))?;
    let manifest = Manifest::decode(&manifest)?;
    let mut out = Vec::new();
    for (i, c) in manifest.chunks.iter().enumerate() {
        let piece = net
            .fetch_blob_from(*c, Some(peer))
            .await
            .map_err(|e| format!("chunk {i} of {}: {e}", manifest.chunks.len()))?;
        if piece.len() > MAX_CHUNK_BYTES {
            return Err(format!("chunk {i} is {} bytes", piece.len()));
        }
        out.extend_from_slice(&piece);
        if out.len() as u64 > manifest.len {
            return Err(format!(
                "its chunks exceed the {} bytes it claims",
                manifest.len
            ));
        }
    }
    if out.len() as u64 != manifest.len {
        return Err(format!(
            "its chunks hold {} bytes, not {}",
            out.len(),
            manifest.len
        ));
    }
    Ok(out)
}

/// Every blob a stored snapshot occupies: its manifest and its chunks.
fn snapshot_blobs(blobs: &platform_storage::BlobStore, blob: &Hash) -> Vec<Hash> {
    let mut all = vec![*blob];
    if let Ok(Some(m)) = read_manifest(blobs, blob) {
        all.extend(m.chunks);
    }
    all
}

/// Binds a snapshot to consensus (module docs).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SnapshotProof {
    /// The proposal of the snapshot's last block.
    pub anchor: Proposal,
    /// The finalized blocks after it, heights consecutive: proposal and header.
    pub chain: Vec<(Proposal, BlockHeader)>,
    /// A finalization of one of `chain`'s proposals.
    pub certificate: Certificate<BlsSignature>,
}

impl SnapshotProof {
    /// Strictly decodes a proof.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotProof, String> {
        decode("snapshot proof", bytes, MAX_PROOF_BYTES).map_err(|e| e.to_string())
    }

    /// The proposals the certificate finalizes: `chain` up to the certified one.
    pub fn finalized(&self) -> Vec<Proposal> {
        let head = match &self.certificate.subject {
            Subject::Proposal(p) => p.digest(),
            Subject::View(..) => return Vec::new(),
        };
        let mut out = Vec::new();
        for (p, _) in &self.chain {
            out.push(*p);
            if p.digest() == head {
                return out;
            }
        }
        Vec::new()
    }

    /// Everything that needs no validator set: the anchor is the snapshot's block, the first
    /// header after it commits to the snapshot's root, the chain links up, stays in one epoch,
    /// and the certificate is a finalization of one of its proposals.
    pub fn check_links(
        &self,
        block_hash: &Hash,
        height: Height,
        state_root: &Hash,
    ) -> Result<(), String> {
        if self.anchor.payload != *block_hash || self.anchor.height != height {
            return Err("the proof's anchor is not the snapshot's block".into());
        }
        let Some((first, first_header)) = self.chain.first() else {
            return Err("the proof holds no block after the snapshot".into());
        };
        if self.chain.len() > MAX_PROOF_BLOCKS {
            return Err(format!(
                "the proof spans {} blocks (at most {MAX_PROOF_BLOCKS})",
                self.chain.len()
            ));
        }
        if first_header.state_root != *state_root {
            return Err("the next block's header commits to another state root".into());
        }
        let (mut digest, mut hash, mut h) = (self.anchor.digest(), *block_hash, height.0);
        for (p, header) in &self.chain {
            let linked = p.parent == digest
                && header.parent == hash
                && header.hash() == p.payload
                && p.height.0 == h + 1
                && header.height == p.height
                && header.view == p.view
                && p.epoch == first.epoch;
            if !linked {
                return Err(format!("the proof's block {} does not link up", p.height.0));
            }
            (digest, hash, h) = (p.digest(), p.payload, p.height.0);
        }
        if self.certificate.kind != VoteKind::Finalize || self.finalized().is_empty() {
            return Err("the certificate does not finalize a block of the proof".into());
        }
        Ok(())
    }
}

/// A stored snapshot: the blob holding its bytes and its proof.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct SnapshotRecord {
    /// The blob (the encoded [`Snapshot`], its certificate field the encoded proof).
    pub blob: Hash,
    /// The proof.
    pub proof: SnapshotProof,
}

const SNAPSHOTS: TableSpec<u64, SnapshotRecord> =
    TableSpec::new("snapshots", MAX_PROOF_BYTES + 1024);

/// The stored snapshots, oldest first.
pub fn list(db: &Db) -> Result<Vec<(u64, SnapshotRecord)>, DbError> {
    db.range(&SNAPSHOTS, .., 1024)
}

/// The newest stored snapshot.
pub fn latest(db: &Db) -> Result<Option<(u64, SnapshotRecord)>, DbError> {
    Ok(list(db)?.pop())
}

/// Why a snapshot could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Blob store.
    #[error(transparent)]
    Blob(#[from] platform_storage::BlobError),
    /// Too large to serve.
    #[error("the snapshot is {0} bytes, above the {MAX_SNAPSHOT_BYTES}-byte limit")]
    TooLarge(usize),
    /// A manifest that does not decode or does not match its chunks.
    #[error("snapshot manifest {blob}: {reason}")]
    Manifest {
        /// The manifest's blob.
        blob: Hash,
        /// Why.
        reason: String,
    },
    /// The stored snapshot does not load.
    #[error("stored snapshot at height {height}: {reason}")]
    Corrupt {
        /// Its height.
        height: u64,
        /// Why.
        reason: String,
    },
}

/// The bytes of `state`'s snapshot with `proof` inside.
pub fn encode_snapshot(state: &mut State, proof: &SnapshotProof) -> Vec<u8> {
    state.export_snapshot(encode(proof)).to_bytes()
}

/// What [`save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// The snapshot's blob.
    pub blob: Hash,
    /// Finalized blocks deleted behind the oldest kept snapshot.
    pub blocks_pruned: usize,
}

/// Stores snapshot bytes with their proof, then drops all but the newest `retention.snapshots`
/// (rows first, then their blobs, so a crash leaves at worst an unreferenced blob), and,
/// unless `retention.archive`, the finalized blocks at or below the oldest kept one: a restart
/// starts from the newest snapshot and replays the blocks after it, which stay.
pub fn save(
    dir: &DataDir,
    bytes: &[u8],
    proof: SnapshotProof,
    retention: &crate::collect::Retention,
) -> Result<Saved, StoreError> {
    let blob = put_chunked(dir.blobs(), bytes, retention.snapshot_chunk_bytes)?;
    let height = proof.anchor.height.0;
    dir.db()
        .write(|tx| tx.put(&SNAPSHOTS, &height, &SnapshotRecord { blob, proof }))?;
    let all = list(dir.db())?;
    let old = &all[..all.len().saturating_sub(retention.snapshots.max(1))];
    if !old.is_empty() {
        dir.db().write(|tx| {
            for (h, _) in old {
                tx.delete(&SNAPSHOTS, h)?;
            }
            Ok::<_, DbError>(())
        })?;
        // Chunks are content-addressed, so two snapshots may share one: only blobs no kept
        // snapshot uses are deleted.
        let kept: std::collections::HashSet<Hash> = all[old.len()..]
            .iter()
            .flat_map(|(_, r)| snapshot_blobs(dir.blobs(), &r.blob))
            .collect();
        for (_, r) in old {
            for b in snapshot_blobs(dir.blobs(), &r.blob) {
                if !kept.contains(&b) {
                    let _ = dir.blobs().remove(&b);
                }
            }
        }
    }
    let mut blocks_pruned = 0;
    if !retention.archive && all.len() > old.len() {
        let (oldest_kept, _) = &all[old.len()];
        blocks_pruned = crate::store::prune_finalized(dir.db(), *oldest_kept)?;
    }
    Ok(Saved {
        blob,
        blocks_pruned,
    })
}

/// Loads this node's newest snapshot (its own data: the root and the proof's links are
/// checked, the certificate was checked when it was made or received).
pub fn load_latest(dir: &DataDir) -> Result<Option<(State, SnapshotProof)>, StoreError> {
    let Some((height, record)) = latest(dir.db())? else {
        return Ok(None);
    };
    load(dir, height, &record).map(Some)
}

/// Loads the stored snapshot `record` at `height` (root and proof links checked).
pub fn load(
    dir: &DataDir,
    height: u64,
    record: &SnapshotRecord,
) -> Result<(State, SnapshotProof), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { height, reason };
    let bytes = read_chunked(dir.blobs(), &record.blob)?
        .ok_or_else(|| corrupt(format!("a blob of snapshot {} is missing", record.blob)))?;
    let state = Snapshot::import(&bytes, MAX_SNAPSHOT_BYTES, |block, h, root, _| {
        record.proof.check_links(block, h, root)
    })
    .map_err(|e| corrupt(e.to_string()))?;
    Ok((state, record.proof.clone()))
}

/// Decodes a peer's snapshot and checks its root and proof links (not yet the validator set:
/// see [`verify_peer`]).
pub fn open_peer(bytes: &[u8]) -> Result<(State, SnapshotProof), String> {
    let mut proof = None;
    let state = Snapshot::import(bytes, MAX_SNAPSHOT_BYTES, |block, h, root, cert| {
        let p = SnapshotProof::decode(cert)?;
        p.check_links(block, h, root)?;
        proof = Some(p);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok((state, proof.expect("set by the accepted check")))
}

/// What a node trusts when it checks a peer's snapshot.
pub struct Trust<'a> {
    /// The subnet.
    pub netuid: NetUid,
    /// This node's own state (genesis or later): its genesis validator set and key bindings.
    pub own: &'a State,
    /// This node's chain client's view of an epoch anchor: `None` while it has not read the
    /// block yet.
    pub confirm: &'a dyn Fn(&EpochAnchor) -> Option<bool>,
}

/// The outcome of [`verify_peer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Consensus finalized this state.
    Valid,
    /// The chain client has not read the epoch's anchor yet; ask again later.
    Unconfirmed,
    /// Refused, with the reason.
    Invalid(String),
}

/// Checks the validator set and certificate of a peer's snapshot (module docs).
pub fn verify_peer(state: &State, proof: &SnapshotProof, trust: &Trust<'_>) -> Verdict {
    let bad = |s: &str| Verdict::Invalid(s.to_string());
    if state.meta().netuid != trust.netuid {
        return bad("the snapshot is of another subnet");
    }
    let record = state.current_epoch();
    if proof.chain[0].0.epoch != record.epoch {
        return bad("the proof's blocks are not in the snapshot's epoch");
    }
    if record.epoch.0 == 0 {
        let genesis = trust.own.epoch(record.epoch).map(|r| r.validators);
        if genesis.as_ref() != Some(&record.validators) {
            return bad("the snapshot's genesis validator set differs from ours");
        }
    } else {
        let anchor = EpochAnchor {
            epoch: record.epoch,
            chain_block: record.chain_block,
            chain_hash: record.chain_hash,
            metagraph: record.metagraph.clone(),
        };
        match (trust.confirm)(&anchor) {
            None => return Verdict::Unconfirmed,
            Some(false) => return bad("our chain client does not confirm the epoch's anchor"),
            Some(true) => {}
        }
        if state.validator_set_of(&record.metagraph).as_ref() != Ok(&record.validators) {
            return bad("the validator set does not follow from the anchored metagraph");
        }
    }
    // The engine's members: the epoch's validators with bound keys, in its index order.
    let members = match crate::driver::consensus_members(state) {
        Ok(m) => m,
        Err(e) => return Verdict::Invalid(e),
    };
    let known: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, (hotkey, _, key))| {
            trust
                .own
                .bound_keys(hotkey)
                .is_some_and(|k| k.bls_key == key.public())
        })
        .map(|(i, _)| i)
        .collect();
    let validators = Validators::new(members.iter().map(|(_, s, _)| *s).collect());
    let committee = members.into_iter().map(|(_, _, k)| k).collect();
    let scheme = BlsScheme::new(None, committee);
    if !certificate_is_valid(trust.netuid, &validators, &scheme, &proof.certificate) {
        return bad("the certificate is not a quorum of the epoch's validators");
    }
    let confirmed = proof
        .certificate
        .signers
        .members()
        .filter(|i| known.contains(i));
    if !validators.is_quorum(validators.stake_of(confirmed)) {
        return bad(
            "the signers whose keys this node already knows are not a quorum; catching up block by block instead",
        );
    }
    Verdict::Valid
}

/// Collects the proof for a snapshot of the state after an epoch's close, as the blocks after
/// it are finalized.
pub struct Pending {
    anchor: Proposal,
    state: State,
    chain: Vec<(Proposal, BlockHeader)>,
}

impl Pending {
    /// Starts with the close's proposal and the state after it.
    pub fn new(anchor: Proposal, state: State) -> Pending {
        Pending {
            anchor,
            state,
            chain: Vec::new(),
        }
    }

    /// The next finalized block and its certificate. `Some` with the snapshot's state and
    /// proof once the certificate finalizes a collected block; `None` while waiting. Call
    /// [`Pending::abandoned`] to see whether to give up.
    pub fn add(
        &mut self,
        proposal: Proposal,
        header: BlockHeader,
        certificate: &Certificate<BlsSignature>,
    ) -> Option<(State, SnapshotProof)> {
        self.chain.push((proposal, header));
        let Subject::Proposal(head) = &certificate.subject else {
            return None;
        };
        if certificate.kind != VoteKind::Finalize
            || !self.chain.iter().any(|(p, _)| p.digest() == head.digest())
        {
            return None;
        }
        let proof = SnapshotProof {
            anchor: self.anchor,
            chain: std::mem::take(&mut self.chain),
            certificate: certificate.clone(),
        };
        Some((self.state.fork(), proof))
    }

    /// Whether the proof grew too long (no certificate of a collected block came).
    pub fn abandoned(&self) -> bool {
        self.chain.len() >= MAX_PROOF_BLOCKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_consensus::types::signing_message;
    use platform_crypto::{BlsSignature, SignerBitmap, VrfProof, parse_suri};
    use platform_primitives::{Epoch, View};

    /// The dev genesis state, a proof for its snapshot (block 1's header commits to the
    /// genesis root) and the certificate signed by the named dev validators (//Alice, //Bob
    /// and //Charlie hold 9000 of the 10000 staked; //Dave 1000).
    fn genesis_and_proof(signers: &[&str]) -> (State, SnapshotProof, Vec<u8>) {
        proof_for(crate::genesis::dev(4, 0, 1000).unwrap(), signers)
    }

    fn proof_for(
        genesis: platform_state::Genesis,
        signers: &[&str],
    ) -> (State, SnapshotProof, Vec<u8>) {
        let mut state = State::genesis(&genesis).unwrap();
        let anchor = Proposal {
            epoch: Epoch(0),
            view: View(0),
            height: Height(0),
            parent: Hash::of(b"none"),
            payload: state.last_block(),
        };
        let header = BlockHeader {
            height: Height(1),
            view: View(1),
            parent: state.last_block(),
            state_root: state.root(),
            proposer: state.current_epoch().validators[0].0,
            timestamp_ms: 1,
            beacon: VrfProof {
                output: [0; 32],
                proof: [0; 64],
            },
            tx_root: Hash::of(b"no transactions"),
        };
        let p1 = Proposal {
            epoch: Epoch(0),
            view: View(1),
            height: Height(1),
            parent: anchor.digest(),
            payload: header.hash(),
        };
        let subject = Subject::Proposal(p1);
        let message = signing_message(genesis.netuid, VoteKind::Finalize, &subject);
        let members = crate::driver::consensus_members(&state).unwrap();
        let mut bitmap = SignerBitmap::new(members.len());
        let mut sigs = Vec::new();
        for uri in signers {
            let key = parse_suri(uri).unwrap();
            let i = members
                .iter()
                .position(|(h, _, _)| *h == key.hotkey())
                .unwrap();
            sigs.push(key.derive_bls_key().unwrap().sign(&message));
            bitmap.set(i);
        }
        let proof = SnapshotProof {
            anchor,
            chain: vec![(p1, header)],
            certificate: Certificate {
                kind: VoteKind::Finalize,
                subject,
                signers: bitmap,
                signature: BlsSignature::aggregate(&sigs).unwrap(),
            },
        };
        let bytes = encode_snapshot(&mut state, &proof);
        (state, proof, bytes)
    }

    fn verdict(bytes: &[u8], own: &State, netuid: NetUid) -> Verdict {
        let (state, proof) = open_peer(bytes).unwrap();
        let confirm = |_: &EpochAnchor| Some(true);
        verify_peer(
            &state,
            &proof,
            &Trust {
                netuid,
                own,
                confirm: &confirm,
            },
        )
    }

    #[test]
    fn a_quorum_certified_snapshot_is_valid_and_anything_less_is_refused() {
        let (own, _, bytes) = genesis_and_proof(&["//Alice", "//Bob", "//Charlie"]);
        let netuid = own.meta().netuid;
        assert_eq!(verdict(&bytes, &own, netuid), Verdict::Valid);
        // One signer is not a quorum.
        let (_, _, weak) = genesis_and_proof(&["//Dave"]);
        assert!(
            matches!(verdict(&weak, &own, netuid), Verdict::Invalid(r) if r.contains("quorum"))
        );
        // Another subnet's node refuses it.
        assert!(matches!(
            verdict(&bytes, &own, NetUid(netuid.0 + 1)),
            Verdict::Invalid(r) if r.contains("another subnet")
        ));
    }

    #[test]
    fn signers_whose_keys_this_node_does_not_know_do_not_count() {
        let (_, _, bytes) = genesis_and_proof(&["//Alice", "//Bob", "//Charlie"]);
        // This node's genesis binds another BLS key to //Alice: her signature in the snapshot
        // is made with a key it has never seen, so Bob and Charlie alone must be a quorum.
        let mut genesis = crate::genesis::dev(4, 0, 1000).unwrap();
        let alice = parse_suri("//Alice").unwrap();
        let other = parse_suri("//Alice//other")
            .unwrap()
            .derive_bls_key()
            .unwrap();
        let b = genesis
            .bindings
            .iter_mut()
            .find(|b| b.hotkey == alice.hotkey())
            .unwrap();
        b.bls_key = other.public();
        b.pop = other.prove_possession();
        b.signature = Some(alice.sign(
            platform_crypto::Domain::BindKeys,
            &platform_state::BindKeysTx::signing_bytes(
                genesis.netuid,
                &b.bls_key,
                &b.pop,
                &b.peer_id,
            ),
        ));
        let own = State::genesis(&genesis).unwrap();
        let netuid = own.meta().netuid;
        assert!(matches!(
            verdict(&bytes, &own, netuid),
            Verdict::Invalid(r) if r.contains("block by block")
        ));
    }

    #[test]
    fn validators_without_bound_keys_are_not_consensus_members() {
        // //Dave holds a permit but has not bound keys (he joined after genesis).
        let mut genesis = crate::genesis::dev(4, 0, 1000).unwrap();
        let dave = parse_suri("//Dave").unwrap().hotkey();
        genesis.bindings.retain(|b| b.hotkey != dave);
        let (own, _, bytes) = proof_for(genesis, &["//Alice", "//Bob", "//Charlie"]);
        assert!(
            own.current_epoch()
                .validators
                .iter()
                .any(|(h, _)| *h == dave)
        );
        let members = crate::driver::consensus_members(&own).unwrap();
        assert_eq!(members.len(), 3);
        assert!(members.iter().all(|(h, _, _)| *h != dave));
        assert_eq!(verdict(&bytes, &own, own.meta().netuid), Verdict::Valid);
    }

    #[test]
    fn broken_links_are_refused_before_any_signature_is_checked() {
        let (mut state, proof, _) = genesis_and_proof(&["//Alice", "//Bob", "//Charlie"]);
        let (block, root) = (state.last_block(), state.root());
        assert_eq!(proof.check_links(&block, Height(0), &root), Ok(()));
        let err = proof
            .check_links(&block, Height(0), &Hash::of(b"other root"))
            .unwrap_err();
        assert!(err.contains("another state root"), "{err}");
        let mut unlinked = proof.clone();
        unlinked.chain[0].0.parent = Hash::of(b"elsewhere");
        let err = unlinked.check_links(&block, Height(0), &root).unwrap_err();
        assert!(err.contains("does not link up"), "{err}");
        let mut notarized = proof.clone();
        notarized.certificate.kind = VoteKind::Notarize;
        let err = notarized.check_links(&block, Height(0), &root).unwrap_err();
        assert!(err.contains("does not finalize"), "{err}");
        // A snapshot whose proof does not bind its root does not open.
        let bytes = encode_snapshot(&mut state, &unlinked);
        let Err(err) = open_peer(&bytes) else {
            panic!("a snapshot with an unlinked proof opened");
        };
        assert!(err.contains("does not link up"), "{err}");
    }

    #[test]
    fn pending_completes_when_a_collected_block_is_certified() {
        let (state, proof, _) = genesis_and_proof(&["//Alice", "//Bob", "//Charlie"]);
        let (p1, header) = proof.chain[0].clone();
        let mut pending = Pending::new(proof.anchor, state.fork());
        // A certificate of some other block does not complete it.
        let mut other = proof.certificate.clone();
        other.subject = Subject::Proposal(Proposal {
            view: View(9),
            ..p1
        });
        assert!(pending.add(p1, header.clone(), &other).is_none());
        assert!(!pending.abandoned());
        let mut pending = Pending::new(proof.anchor, state.fork());
        let (_, made) = pending.add(p1, header, &proof.certificate).unwrap();
        assert_eq!(made, proof);
    }

    #[test]
    fn snapshots_are_stored_in_chunks_listed_by_a_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        // 100 KiB in chunks of 4 KiB: 25 chunks, read back whole.
        let bytes: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
        let blob = put_chunked(dir.blobs(), &bytes, MIN_CHUNK_BYTES).unwrap();
        let manifest = read_manifest(dir.blobs(), &blob).unwrap().unwrap();
        assert_eq!(manifest.len, bytes.len() as u64);
        assert_eq!(manifest.chunks.len(), 25);
        assert_eq!(read_chunked(dir.blobs(), &blob).unwrap().unwrap(), bytes);
        // A missing chunk: the snapshot is not held.
        dir.blobs().remove(&manifest.chunks[7]).unwrap();
        assert_eq!(read_chunked(dir.blobs(), &blob).unwrap(), None);
        // Manifests are decoded strictly and must be consistent.
        let mut trailing = encode(&manifest);
        trailing.push(0);
        assert!(Manifest::decode(&trailing).is_err());
        let empty_with_length = Manifest {
            len: 5,
            chunks: Vec::new(),
        };
        assert!(Manifest::decode(&encode(&empty_with_length)).is_err());
        let too_large = Manifest {
            len: MAX_SNAPSHOT_BYTES as u64 + 1,
            chunks: vec![Hash::of(b"x")],
        };
        assert!(Manifest::decode(&encode(&too_large)).is_err());
        // Chunks that add up to more or less than the manifest says are refused.
        let short = put_chunked(dir.blobs(), &bytes[..10_000], MIN_CHUNK_BYTES).unwrap();
        let mut lying = read_manifest(dir.blobs(), &short).unwrap().unwrap();
        lying.len += 1;
        let lying = dir.blobs().put(&encode(&lying)).unwrap();
        let err = read_chunked(dir.blobs(), &lying).unwrap_err();
        assert!(err.to_string().contains("not 10001"), "{err}");
    }

    /// Snapshots in small chunks load as whole ones do, and deleting an old snapshot keeps
    /// the chunks a kept one shares with it.
    #[test]
    fn chunked_snapshots_load_and_shared_chunks_survive_pruning() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let (mut state, proof, bytes) = genesis_and_proof(&["//Alice", "//Bob", "//Charlie"]);
        let retention = crate::collect::Retention {
            snapshots: 1,
            snapshot_chunk_bytes: 512,
            ..crate::collect::Retention::default()
        };
        let first = save(&dir, &bytes, proof.clone(), &retention).unwrap();
        let manifest = read_manifest(dir.blobs(), &first.blob).unwrap().unwrap();
        assert_eq!(manifest.chunks.len(), bytes.len().div_ceil(512));
        assert!(manifest.chunks.len() > 1, "{} bytes", bytes.len());
        let (mut loaded, _) = load_latest(&dir).unwrap().unwrap();
        assert_eq!(loaded.root(), state.root());
        // A newer snapshot with the same bytes (same chunks) replaces it: the manifest and
        // chunks it uses stay.
        let mut later = proof.clone();
        later.anchor.height = Height(5);
        let second = save(&dir, &bytes, later, &retention).unwrap();
        assert_eq!(list(dir.db()).unwrap().len(), 1);
        assert_eq!(second.blob, first.blob);
        for c in &manifest.chunks {
            assert!(dir.blobs().contains(c));
        }
    }

    #[test]
    fn the_store_keeps_the_newest_snapshots_and_restarts_from_the_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        assert!(load_latest(&dir).unwrap().is_none());
        let (mut state, proof, bytes) = genesis_and_proof(&["//Alice", "//Bob", "//Charlie"]);
        let retention = crate::collect::Retention::default();
        // Finalized blocks 1..=8 (one block standing in for each).
        for h in 1..=8u64 {
            let mut p = proof.chain[0].0;
            p.height = Height(h);
            let block = platform_state::Block {
                header: proof.chain[0].1.clone(),
                txs: Vec::new(),
            };
            let f = crate::store::FinalizedBlock {
                proposal: p,
                block,
                certificate: proof.certificate.clone(),
                seals: Vec::new(),
            };
            crate::store::save_finalized(dir.db(), &f, &[]).unwrap();
        }
        let stored = |dir: &DataDir| -> Vec<u64> {
            crate::store::finalized_range(dir.db(), 0, 100)
                .unwrap()
                .iter()
                .map(|f| f.proposal.height.0)
                .collect()
        };
        let saved = save(&dir, &bytes, proof.clone(), &retention).unwrap();
        assert_eq!(saved.blocks_pruned, 0);
        let (mut loaded, loaded_proof) = load_latest(&dir).unwrap().unwrap();
        assert_eq!(loaded_proof, proof);
        assert_eq!(loaded.root(), state.root());
        // Two newer rows (standing in for two later epochs) push the first one out; the blob
        // they share stays.
        let mut blob = Hash::of(b"");
        let mut pruned = Vec::new();
        for h in [5, 6] {
            let mut p = proof.clone();
            p.anchor.height = Height(h);
            let saved = save(&dir, &bytes, p, &retention).unwrap();
            blob = saved.blob;
            pruned.push(saved.blocks_pruned);
        }
        let heights: Vec<u64> = list(dir.db()).unwrap().iter().map(|(h, _)| *h).collect();
        assert_eq!(heights, vec![5, 6]);
        assert!(dir.blobs().contains(&blob));
        // With snapshots at 0 and 5 nothing is behind the oldest; with 5 and 6 kept, blocks
        // up to 5 go and those a restart from either snapshot replays stay.
        assert_eq!(pruned, vec![0, 5]);
        assert_eq!(stored(&dir), vec![6, 7, 8]);
        // Their proofs name height 6 for a state at height 0: loading refuses it.
        let Err(err) = load_latest(&dir) else {
            panic!("a snapshot whose proof names another height loaded");
        };
        assert!(err.to_string().contains("height 6"), "{err}");
        // An archive keeps every block.
        let archive = crate::collect::Retention {
            archive: true,
            ..retention
        };
        let mut p = proof.clone();
        p.anchor.height = Height(7);
        assert_eq!(save(&dir, &bytes, p, &archive).unwrap().blocks_pruned, 0);
        assert_eq!(stored(&dir), vec![6, 7, 8]);
    }
}

/// What [`restore`] stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    /// The snapshot's height.
    pub height: u64,
    /// Its epoch.
    pub epoch: u64,
    /// The state root it holds.
    pub state_root: String,
    /// The blob its bytes were stored as.
    pub blob: String,
}

/// Stores a snapshot file in a stopped validator's data directory after checking it as a
/// peer's snapshot is checked at catch-up ([`open_peer`], [`verify_peer`]): its root and proof
/// links, its validator set against this node's genesis (epoch 0) or against the chain's
/// anchor, read through `chain` (later epochs), and a quorum certificate of keys this node
/// knows. On its next start the validator begins from it. Refused, with the reason, when it
/// does not check out, is of another subnet, or is not newer than what the node already holds.
pub async fn restore(
    dir: &DataDir,
    genesis: &platform_state::Genesis,
    bytes: &[u8],
    chain: Option<&str>,
    retention: &crate::collect::Retention,
) -> anyhow::Result<Restored> {
    use anyhow::{Context, anyhow, bail};
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        bail!(
            "the snapshot is {} bytes, above the {MAX_SNAPSHOT_BYTES}-byte limit",
            bytes.len()
        );
    }
    let (mut state, proof) = open_peer(bytes).map_err(|e| anyhow!("the snapshot: {e}"))?;
    let own = State::genesis(genesis).map_err(|e| anyhow!("the genesis is invalid: {e}"))?;
    let epoch = state.current_epoch();
    // Epochs after the genesis one are anchored on the chain: confirm the anchor there.
    let watch = match (epoch.epoch.0, chain) {
        (0, _) => None,
        (_, None) => bail!(
            "the snapshot is of epoch {}, whose anchor only the chain can confirm: pass --chain \
             (the validator's config.toml names it)",
            epoch.epoch.0
        ),
        (_, Some(url)) => {
            let client = crate::chain_watch::connect(url)
                .await
                .with_context(|| format!("connecting to chain {url}"))?;
            let watch = crate::chain_watch::ChainWatch::new(genesis.netuid.0, client);
            let anchor = EpochAnchor {
                epoch: epoch.epoch,
                chain_block: epoch.chain_block,
                chain_hash: epoch.chain_hash,
                metagraph: epoch.metagraph.clone(),
            };
            let _ = watch.check(&anchor);
            watch.poll().await.context("reading the chain")?;
            Some((watch, anchor))
        }
    };
    let confirm = |a: &EpochAnchor| match &watch {
        Some((w, _)) => w.check(a),
        None => Some(false),
    };
    let trust = Trust {
        netuid: genesis.netuid,
        own: &own,
        confirm: &confirm,
    };
    match verify_peer(&state, &proof, &trust) {
        Verdict::Valid => {}
        Verdict::Unconfirmed => bail!(
            "the chain has not shown the snapshot's epoch anchor (block {}); try again",
            epoch.chain_block
        ),
        Verdict::Invalid(why) => bail!("the snapshot is refused: {why}"),
    }
    let height = proof.anchor.height.0;
    if let Some((newest, _)) = latest(dir.db())?
        && newest >= height
    {
        bail!(
            "this data directory already holds a snapshot at height {newest} (not older than {height})"
        );
    }
    if let Some(h) = crate::store::first_finalized_from(dir.db(), height)? {
        bail!(
            "this data directory already holds finalized block {h}, at or past the snapshot's \
             height {height}: restore into a fresh one"
        );
    }
    let state_root = state.root().to_hex();
    let saved = save(dir, bytes, proof, retention)?;
    Ok(Restored {
        height,
        epoch: epoch.epoch.0,
        state_root,
        blob: saved.blob.to_hex(),
    })
}
