//! The state machine: genesis, the three gates (mempool admission, proposal verification,
//! block application) over one transaction executor, and the reads the node needs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::vrf::{VrfRandomness, vrf_verify};
use platform_crypto::{Keypair, VerifiedBlsKey};
use platform_primitives::{
    ChallengeId, Epoch, Hash, Height, Hotkey, Score, SubmissionId, Uid, View, Weights, decode,
    encode,
};
use serde::Serialize;

use crate::exec::validator_set;
use crate::keys;
use crate::records::*;
use crate::reject::{BlockError, Reject};
use crate::store::Store;
use crate::types::*;
use crate::weights::{ChallengeScores, Scored, WeightsHost, epoch_weights};

/// Largest state value decoded (a metagraph of [`MAX_NEURONS`] fits with room to spare).
pub(crate) const MAX_VALUE_BYTES: usize = 4 << 20;

/// What an accepted transaction did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum TxOutcome {
    /// A submission was ordered and its committee drawn.
    Submitted {
        /// Its id.
        submission: SubmissionId,
        /// The committee, in draw order.
        committee: Vec<Hotkey>,
    },
    /// An attestation was recorded.
    Attested {
        /// The submission.
        submission: SubmissionId,
        /// Who attested.
        evaluator: Hotkey,
    },
    /// A result was certified.
    Certified {
        /// The submission.
        submission: SubmissionId,
        /// Its score, if the evaluation succeeded.
        score: Option<Score>,
        /// How many signed.
        signers: u32,
    },
    /// A challenge was published or updated.
    Published {
        /// The challenge.
        challenge: ChallengeId,
        /// Its version.
        version: u32,
    },
    /// A challenge changed lifecycle stage.
    Transitioned {
        /// The challenge.
        challenge: ChallengeId,
        /// The new stage.
        to: Lifecycle,
    },
    /// An emission share changed.
    EmissionSet {
        /// The challenge.
        challenge: ChallengeId,
        /// The new share.
        emission_bps: u16,
    },
    /// Parameters changed.
    ParamsSet,
    /// A validator confirmed it holds a challenge's assets.
    AssetsConfirmed {
        /// The challenge.
        challenge: ChallengeId,
        /// Its version.
        version: u32,
        /// The validator.
        validator: Hotkey,
    },
    /// A validator bound its keys.
    Bound {
        /// The validator.
        hotkey: Hotkey,
    },
    /// A validator was jailed.
    Jailed {
        /// The validator.
        hotkey: Hotkey,
        /// Jailed while the epoch is below this.
        until: Epoch,
    },
    /// The next epoch was anchored.
    Anchored {
        /// The epoch.
        epoch: Epoch,
        /// Validators in it.
        validators: u32,
    },
    /// An epoch closed with these weights.
    Closed {
        /// The epoch.
        epoch: Epoch,
        /// UIDs.
        uids: Vec<u16>,
        /// Weights, aligned with `uids`.
        weights: Vec<u16>,
        /// Records the close removed (see [`crate::Params::retain_epochs`]).
        pruned: u32,
    },
}

/// Something the block's timeouts did before its transactions ran.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// At the attestation deadline, with no certificate possible, members were replaced: those
    /// that attested nothing on chain and those outside the one largest group of agreeing
    /// attestations.
    Replaced {
        /// The submission.
        submission: SubmissionId,
        /// Who was dropped.
        dropped: Vec<Hotkey>,
        /// Who was drawn instead.
        added: Vec<Hotkey>,
    },
    /// The submission can no longer be certified.
    Expired {
        /// The submission.
        submission: SubmissionId,
    },
}

/// What applying a block did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Applied {
    /// Timeout events, before the transactions.
    pub events: Vec<Event>,
    /// One effect per transaction, in order.
    pub outcomes: Vec<TxOutcome>,
    /// The state root after the block.
    pub state_root: Hash,
}

/// The context a transaction executes in: the block that carries it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockCtx {
    pub(crate) height: Height,
    pub(crate) beacon: VrfRandomness,
}

/// The replicated state. All changes go through [`State::apply_block`]; the other gates run the
/// same code and roll back.
pub struct State {
    pub(crate) store: Store,
    /// Hash of the last applied block header (the genesis hash at first). Kept beside the
    /// state, not in it: headers chain by hash already, and the root then depends only on what
    /// the transactions did, not on the (randomized) signatures that carried them.
    pub(crate) last_block: Hash,
    /// BLS keys whose proof of possession was checked, by hotkey (a cache, not state).
    pub(crate) bls: Mutex<BTreeMap<Hotkey, VerifiedBlsKey>>,
}

pub(crate) fn get<T: BorshDeserialize>(store: &Store, key: &[u8]) -> Option<T> {
    store.get(key).map(|v| {
        decode("state value", v, MAX_VALUE_BYTES)
            .expect("state values are written by this crate and decode")
    })
}

pub(crate) fn put<T: BorshSerialize>(store: &mut Store, key: Vec<u8>, value: &T) {
    store.put(key, encode(value));
}

impl State {
    /// The state at genesis.
    pub fn genesis(g: &Genesis) -> Result<State, Reject> {
        let mut s = State {
            store: Store::default(),
            last_block: g.hash(),
            bls: Mutex::new(BTreeMap::new()),
        };
        let validators = validator_set(&g.metagraph, &g.params)?;
        put(
            &mut s.store,
            keys::meta(),
            &Meta {
                netuid: g.netuid,
                owner: g.owner,
                height: Height(0),
                last_timestamp_ms: g.timestamp_ms,
                epoch: Epoch(0),
                sudo_nonce: None,
                certified: 0,
                pruned: 0,
                network_id: g.network_id(),
            },
        );
        put(&mut s.store, keys::params(), &g.params);
        put(
            &mut s.store,
            keys::epoch(Epoch(0)),
            &EpochRecord {
                epoch: Epoch(0),
                chain_block: g.chain_block,
                chain_hash: g.chain_hash,
                metagraph: g.metagraph.clone(),
                validators,
                members: Vec::new(),
                weights: None,
            },
        );
        for b in &g.bindings {
            s.bind_keys(b)?;
        }
        s.seat_members(Epoch(0));
        s.store.commit();
        Ok(s)
    }

    /// Rebuilds a state from snapshot entries (see [`crate::snapshot`]).
    pub(crate) fn from_store(store: Store, last_block: Hash) -> State {
        State {
            store,
            last_block,
            bls: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// An independent copy, for executing blocks that are notarized but not yet final (a
    /// leader may build on such a block; if it is never finalized the copy is dropped).
    pub fn fork(&self) -> State {
        State {
            store: self.store.clone(),
            last_block: self.last_block,
            bls: Mutex::new(self.bls.lock().expect("bls cache lock poisoned").clone()),
        }
    }

    // ----- reads -----

    /// Hash of the last applied block header (the genesis hash before block 1).
    pub fn last_block(&self) -> Hash {
        self.last_block
    }

    /// The log position and owner.
    pub fn meta(&self) -> Meta {
        get(&self.store, &keys::meta()).expect("meta is written at genesis")
    }

    /// The meta record, if present and well-formed (for snapshots from outside).
    pub(crate) fn meta_checked(&self) -> Option<crate::records::Meta> {
        self.store
            .get(&keys::meta())
            .and_then(|v| decode("meta", v, MAX_VALUE_BYTES).ok())
    }

    /// Submissions of `miner` to `challenge` ordered in the current epoch (the per-epoch quota
    /// counts these).
    pub fn submissions_this_epoch(&self, challenge: &ChallengeId, miner: &Hotkey) -> u32 {
        get(
            &self.store,
            &keys::miner_count(self.meta().epoch, challenge, miner),
        )
        .unwrap_or(0)
    }

    /// Network parameters.
    pub fn params(&self) -> Params {
        get(&self.store, &keys::params()).expect("params are written at genesis")
    }

    /// The validator set `metagraph` yields under this state's parameters: what an
    /// `EpochAnchor` carrying it records (used to check a snapshot's validator set against the
    /// chain).
    pub fn validator_set_of(&self, metagraph: &[Neuron]) -> Result<Vec<(Hotkey, u64)>, Reject> {
        validator_set(metagraph, &self.params())
    }

    /// The state root (rehashes only what changed since the last call).
    pub fn root(&mut self) -> Hash {
        self.store.root()
    }

    /// How many entries the state holds (what retention keeps bounded).
    pub fn entry_count(&self) -> usize {
        self.store.entry_count()
    }

    /// A challenge.
    pub fn challenge(&self, id: &ChallengeId) -> Option<ChallengeRecord> {
        get(&self.store, &keys::challenge(id))
    }

    /// The validators that confirmed they hold the assets of the challenge's current version,
    /// hotkeys ascending (empty for a challenge without assets).
    pub fn assets_ready(&self, id: &ChallengeId) -> Vec<Hotkey> {
        let Some(c) = self.challenge(id) else {
            return Vec::new();
        };
        get::<AssetsReadyRecord>(&self.store, &keys::assets_ready(id))
            .filter(|r| r.version == c.meta.version)
            .map(|r| r.validators)
            .unwrap_or_default()
    }

    /// Every challenge, ids ascending.
    pub fn challenges(&self) -> Vec<ChallengeRecord> {
        self.store
            .scan(&[keys::CHALLENGE])
            .map(|(_, v)| decode("challenge", v, MAX_VALUE_BYTES).expect("written by us"))
            .collect()
    }

    /// A challenge's key-value state: the snapshot its evaluations read.
    pub fn challenge_kv(&self, id: &ChallengeId) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let prefix = keys::challenge_kv_prefix(id);
        self.store
            .scan(&prefix)
            .map(|(k, v)| (k[prefix.len()..].to_vec(), v.to_vec()))
            .collect()
    }

    /// A submission's record.
    pub fn submission(&self, id: &SubmissionId) -> Option<SubmissionRecord> {
        get(&self.store, &keys::submission(id))
    }

    /// An epoch's record.
    pub fn epoch(&self, e: Epoch) -> Option<EpochRecord> {
        get(&self.store, &keys::epoch(e))
    }

    /// The current epoch's record.
    pub fn current_epoch(&self) -> EpochRecord {
        self.epoch(self.meta().epoch)
            .expect("the current epoch is always anchored")
    }

    /// A validator's bound keys.
    pub fn bound_keys(&self, hotkey: &Hotkey) -> Option<BoundKeys> {
        get(&self.store, &keys::validator_keys(hotkey))
    }

    /// The epoch until which a validator is jailed, if it ever was.
    pub fn jailed_until(&self, hotkey: &Hotkey) -> Option<Epoch> {
        get(&self.store, &keys::jail(hotkey))
    }

    /// Certificates each validator signed in `epoch`.
    pub fn credits(&self, epoch: Epoch) -> BTreeMap<Hotkey, u64> {
        let mut prefix = vec![keys::CREDIT];
        prefix.extend(epoch.0.to_be_bytes());
        self.store
            .scan(&prefix)
            .map(|(k, v)| {
                let hk = Hotkey(k[prefix.len()..].try_into().expect("32-byte hotkey"));
                (hk, decode("credit", v, 8).expect("written by us"))
            })
            .collect()
    }

    /// Each miner's best certified score for a challenge. A payload can be submitted once, so
    /// a miner's best result keeps counting in later epochs for as long as it stays
    /// registered.
    pub fn scores(&self, challenge: &ChallengeId) -> BTreeMap<Hotkey, ScoreEntry> {
        let prefix = keys::score_prefix(challenge);
        self.store
            .scan(&prefix)
            .map(|(k, v)| {
                let hk = Hotkey(k[prefix.len()..].try_into().expect("32-byte hotkey"));
                (
                    hk,
                    decode("score", v, MAX_VALUE_BYTES).expect("written by us"),
                )
            })
            .collect()
    }

    /// Computes the weights the current epoch would close with; `Reject::ModuleUnavailable`
    /// when a module rule cannot be run here.
    pub fn compute_weights(&self, host: &dyn WeightsHost) -> Result<Weights, Reject> {
        let meta = self.meta();
        let record = self.current_epoch();
        let params = self.params();
        let challenges: Vec<ChallengeRecord> = self
            .challenges()
            .into_iter()
            .filter(|c| matches!(c.status, Lifecycle::Active | Lifecycle::Deprecated))
            .collect();
        let inputs: Vec<ChallengeScores<'_>> = challenges
            .iter()
            .map(|c| ChallengeScores {
                meta: &c.meta,
                scores: self
                    .scores(&c.meta.id)
                    .into_iter()
                    .map(|(hk, e)| {
                        (
                            hk,
                            Scored {
                                uid: Uid(0),
                                score: e.score.0,
                                seq: e.seq,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        epoch_weights(
            meta.epoch,
            &record.metagraph,
            &inputs,
            params.burn_uid,
            host,
        )
        .map_err(|c| Reject::ModuleUnavailable {
            challenge: c.id.clone(),
            module: c.wasm_hash,
        })
    }

    // ----- the three gates -----

    /// Mempool admission: would `tx` be accepted in the next block? Runs the block executor
    /// against the current state and rolls back.
    pub fn admit(&mut self, tx: &Tx, host: &dyn WeightsHost) -> Result<TxOutcome, Reject> {
        if tx.is_epoch_transaction() {
            return Err(Reject::EpochTransactionNotAdmitted { kind: tx.kind() });
        }
        let ctx = BlockCtx {
            height: Height(self.meta().height.0 + 1),
            beacon: VrfRandomness([0; 32]),
        };
        let cp = self.store.checkpoint();
        let r = self.apply_tx(&ctx, tx, host);
        self.store.rollback(cp);
        r
    }

    /// Proposal verification: applies `block` and rolls it back.
    pub fn verify_block(
        &mut self,
        block: &Block,
        host: &dyn WeightsHost,
    ) -> Result<Applied, BlockError> {
        let cp = self.store.checkpoint();
        let last = self.last_block;
        let r = self.apply_inner(block, host);
        self.store.rollback(cp);
        self.last_block = last;
        r
    }

    /// Applies a finalized block. On error nothing changes.
    pub fn apply_block(
        &mut self,
        block: &Block,
        host: &dyn WeightsHost,
    ) -> Result<Applied, BlockError> {
        let cp = self.store.checkpoint();
        match self.apply_inner(block, host) {
            Ok(a) => {
                self.store.commit();
                Ok(a)
            }
            Err(e) => {
                // `last_block` changes only on success, as the last step.
                self.store.rollback(cp);
                Err(e)
            }
        }
    }

    /// Builds the next block from `candidates`: each is executed in order on top of the ones
    /// accepted before it; the refused ones come back with their reasons. The state is
    /// unchanged; apply the block to commit it.
    #[allow(clippy::type_complexity)]
    pub fn build_block(
        &mut self,
        proposer: &Keypair,
        view: View,
        timestamp_ms: u64,
        candidates: Vec<Tx>,
        host: &dyn WeightsHost,
    ) -> (Block, Vec<(Tx, Result<TxOutcome, Reject>)>) {
        let meta = self.meta();
        let height = Height(meta.height.0 + 1);
        let (beacon, proof) =
            proposer.vrf_prove(&BlockHeader::beacon_input(meta.netuid, meta.epoch, height));
        let state_root = self.root();
        let ctx = BlockCtx { height, beacon };
        let cp = self.store.checkpoint();
        self.run_timeouts(height);
        let mut accepted = Vec::new();
        let mut outcomes = Vec::new();
        // An epoch block holds only epoch transactions; anywhere else they are refused.
        let epoch_block = candidates.iter().all(Tx::is_epoch_transaction);
        for tx in candidates {
            if tx.is_epoch_transaction() != epoch_block {
                let r = Err(Reject::EpochTransactionNotAdmitted { kind: tx.kind() });
                outcomes.push((tx, r));
                continue;
            }
            let tx_cp = self.store.checkpoint();
            let r = self.apply_tx(&ctx, &tx, host);
            if r.is_err() {
                self.store.rollback(tx_cp);
            } else {
                accepted.push(tx.clone());
            }
            outcomes.push((tx, r));
        }
        self.store.rollback(cp);
        let header = BlockHeader {
            height,
            view,
            parent: self.last_block,
            state_root,
            proposer: proposer.hotkey(),
            timestamp_ms: timestamp_ms.max(meta.last_timestamp_ms),
            beacon: proof,
            tx_root: Block::tx_root(&accepted),
        };
        (
            Block {
                header,
                txs: accepted,
            },
            outcomes,
        )
    }

    fn apply_inner(
        &mut self,
        block: &Block,
        host: &dyn WeightsHost,
    ) -> Result<Applied, BlockError> {
        let h = &block.header;
        let mut meta = self.meta();
        let expected = Height(meta.height.0 + 1);
        if h.height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: h.height,
            });
        }
        if h.parent != self.last_block {
            return Err(BlockError::WrongParent {
                expected: self.last_block,
                got: h.parent,
            });
        }
        let root = self.root();
        if h.state_root != root {
            return Err(BlockError::WrongStateRoot {
                expected: root,
                got: h.state_root,
            });
        }
        if h.tx_root != Block::tx_root(&block.txs) {
            return Err(BlockError::WrongTxRoot);
        }
        if h.timestamp_ms < meta.last_timestamp_ms {
            return Err(BlockError::TimestampBackwards {
                parent: meta.last_timestamp_ms,
                got: h.timestamp_ms,
            });
        }
        let epoch = self.current_epoch();
        if epoch
            .validators
            .binary_search_by(|v| v.0.cmp(&h.proposer))
            .is_err()
        {
            return Err(BlockError::NotValidator {
                proposer: h.proposer,
            });
        }
        if block.txs.iter().any(Tx::is_epoch_transaction)
            && let Some((index, tx)) = block
                .txs
                .iter()
                .enumerate()
                .find(|(_, t)| !t.is_epoch_transaction())
        {
            return Err(BlockError::MixedEpochBlock {
                index,
                kind: tx.kind(),
            });
        }
        let beacon = vrf_verify(
            &h.proposer,
            &BlockHeader::beacon_input(meta.netuid, meta.epoch, h.height),
            &h.beacon,
        )
        .map_err(|_| BlockError::BadBeacon)?;
        let ctx = BlockCtx {
            height: h.height,
            beacon,
        };
        let events = self.run_timeouts(h.height);
        let mut outcomes = Vec::with_capacity(block.txs.len());
        for (index, tx) in block.txs.iter().enumerate() {
            match self.apply_tx(&ctx, tx, host) {
                Ok(e) => outcomes.push(e),
                Err(Reject::ModuleUnavailable { challenge, module }) => {
                    return Err(BlockError::ModuleUnavailable { challenge, module });
                }
                Err(reject) => return Err(BlockError::Tx { index, reject }),
            }
        }
        // Re-read: transactions (an epoch close) may have changed it.
        meta = Meta {
            height: h.height,
            last_timestamp_ms: h.timestamp_ms,
            ..self.meta()
        };
        put(&mut self.store, keys::meta(), &meta);
        self.last_block = h.hash();
        Ok(Applied {
            events,
            outcomes,
            state_root: self.root(),
        })
    }
}
