//! LocalChain: an embedded, persisted **simulation** of the parts of subtensor Platform uses —
//! blocks on a timer, a genesis metagraph, miner registration, subtensor's weight rules and
//! rate limit, CRv2 commit-reveal with its reveal window and hash, and read-back of weights,
//! plus Yuma's consensus step (stake-weighted median) to show what agreement does. It is not
//! subtensor: no balances, emission, staking or registration costs.

pub mod client;
pub mod genesis;
pub mod server;
pub mod sim;

use std::path::Path;
use std::sync::Mutex;

use platform_crypto::Keypair;
use platform_storage::{Db, TableSpec};

pub use client::LocalChainClient;
use sim::{Call, ChainState, SignedCall};

use crate::timelock::{Beacon, EpochState, TimelockedCommit};
use crate::{
    BlockRef, Chain, ChainError, EpochSchedule, Hyperparameters, Included, NeuronInfo, Reveal,
    ValidatorWeights,
};

const STATE: TableSpec<u64, ChainState> = TableSpec::new("localchain_state", 64 << 20);

/// The chain, with its state behind a lock and, optionally, persisted after every change.
pub struct LocalChain {
    state: Mutex<ChainState>,
    db: Option<Db>,
}

impl LocalChain {
    /// A chain from `state`, persisted in `db_path` if given. An existing database with the
    /// same genesis resumes where it stopped; one with another genesis is refused.
    pub fn open(state: ChainState, db_path: Option<&Path>) -> Result<LocalChain, ChainError> {
        let db = db_path
            .map(Db::open)
            .transpose()
            .map_err(|e| ChainError::Storage(e.to_string()))?;
        let mut state = state;
        if let Some(db) = &db {
            let stored: Option<ChainState> = db
                .get(&STATE, &0)
                .map_err(|e| ChainError::Storage(e.to_string()))?;
            if let Some(stored) = stored {
                if stored.genesis_hash != state.genesis_hash {
                    return Err(ChainError::Storage(
                        "the data directory holds a chain with another genesis; use a new \
                         --data-dir or the same genesis"
                            .into(),
                    ));
                }
                state = stored;
            }
        }
        let chain = LocalChain {
            state: Mutex::new(state),
            db,
        };
        chain.persist(&chain.lock())?;
        Ok(chain)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChainState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, s: &ChainState) -> Result<(), ChainError> {
        if let Some(db) = &self.db {
            db.write(|tx| tx.put(&STATE, &0, s))
                .map_err(|e: platform_storage::DbError| ChainError::Storage(e.to_string()))?;
        }
        Ok(())
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&ChainState) -> T) -> T {
        f(&self.lock())
    }

    /// Produces one block (and persists).
    pub fn produce_block(&self) -> Result<u64, ChainError> {
        let mut s = self.lock();
        s.produce_block();
        self.persist(&s)?;
        Ok(s.block)
    }

    /// Applies a signed call in the current block (and persists). On error nothing changes.
    pub fn submit(&self, tx: &SignedCall) -> Result<Included, ChainError> {
        let mut s = self.lock();
        let mut next = s.clone();
        let block = next.apply(tx)?;
        self.persist(&next)?;
        *s = next;
        Ok(Included { block })
    }

    /// Signs `call` for `signer` with its next nonce.
    pub fn sign(&self, signer: &Keypair, call: Call) -> SignedCall {
        let (genesis, nonce) = self.read(|s| {
            (
                s.genesis_hash,
                s.nonces.get(&signer.hotkey()).copied().unwrap_or(0),
            )
        });
        sign_call(signer, &genesis, nonce, call)
    }
}

/// Signs a call.
pub fn sign_call(signer: &Keypair, genesis: &[u8; 32], nonce: u64, call: Call) -> SignedCall {
    let signature = signer.sign_substrate(&SignedCall::signing_bytes(genesis, nonce, &call));
    SignedCall {
        signer: signer.hotkey(),
        nonce,
        call,
        signature,
    }
}

impl Chain for LocalChain {
    async fn head(&self) -> Result<BlockRef, ChainError> {
        Ok(self.read(|s| BlockRef {
            number: s.block,
            hash: s.block_hash(s.block),
        }))
    }

    async fn block(&self, number: u64) -> Result<BlockRef, ChainError> {
        self.read(|s| s.block_ref(number))
    }

    async fn hyperparameters(&self, netuid: u16) -> Result<Hyperparameters, ChainError> {
        self.read(|s| s.subnet(netuid).map(|n| n.hyper.clone()))
    }

    async fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<NeuronInfo>, ChainError> {
        self.read(|s| s.metagraph(netuid, block))
    }

    async fn epoch_schedule(&self, netuid: u16) -> Result<EpochSchedule, ChainError> {
        self.read(|s| s.schedule(netuid))
    }

    async fn set_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Included, ChainError> {
        let tx = self.sign(
            signer,
            Call::SetWeights {
                netuid,
                uids: uids.to_vec(),
                weights: weights.to_vec(),
                version_key,
            },
        );
        self.submit(&tx)
    }

    async fn commit_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<Included, ChainError> {
        let tx = self.sign(signer, Call::CommitWeights { netuid, hash });
        self.submit(&tx)
    }

    async fn reveal_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        reveal: &Reveal,
    ) -> Result<Included, ChainError> {
        let tx = self.sign(
            signer,
            Call::RevealWeights {
                netuid,
                reveal: reveal.clone(),
            },
        );
        self.submit(&tx)
    }

    async fn weights(&self, netuid: u16) -> Result<Vec<ValidatorWeights>, ChainError> {
        self.read(|s| s.weights(netuid))
    }

    async fn beacon(&self) -> Result<Beacon, ChainError> {
        Ok(self.read(|s| s.beacon()))
    }

    /// LocalChain runs spec 393's modulo epochs: there is no stateful schedule.
    async fn epoch_state(&self, netuid: u16) -> Result<Option<EpochState>, ChainError> {
        self.read(|s| s.subnet(netuid).map(|_| None))
    }

    async fn commit_timelocked_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        commit: &TimelockedCommit,
        version: u16,
    ) -> Result<Included, ChainError> {
        let tx = self.sign(signer, timelocked_call(netuid, commit, version));
        self.submit(&tx)
    }
}

/// The LocalChain call for a timelocked commit.
pub(crate) fn timelocked_call(netuid: u16, commit: &TimelockedCommit, version: u16) -> Call {
    Call::CommitTimelocked {
        netuid,
        commit: commit.commit.clone(),
        reveal_round: commit.reveal_round,
        version,
    }
}
