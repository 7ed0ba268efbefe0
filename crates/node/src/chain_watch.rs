//! The chain watcher: epochs on the chain's clock. It tells the proposer when the next epoch
//! starts and lets every validator check an `EpochAnchor` against its own view of the chain.
//! It only reads the chain; writing weights is [`crate::weights_submitter`]'s job.
//!
//! Epoch `e + 1` is anchored on the first block of a chain epoch (subtensor's schedule: blocks
//! where `(block + netuid + 1) % (tempo + 1) == 0`) newer than epoch `e`'s anchor. The anchor
//! carries that block's hash and the subnet's metagraph at that block; a validator votes for a
//! block carrying an anchor only if its own chain client reports the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use platform_chain::rules::{epoch_index, epoch_start, is_epoch_start};
use platform_chain::{AnyChain, Chain, ChainError, NeuronInfo};
use platform_primitives::{Hash, Uid};
use platform_state::{EpochAnchor, Neuron};
use serde::Serialize;
use tokio::sync::mpsc;

/// The node's chain client: a LocalChain (`http://…`) or a subtensor node (`ws://…`,
/// `wss://…`).
pub async fn connect(url: &str) -> Result<AnyChain> {
    Ok(AnyChain::connect(url).await?)
}

/// What the chain says about one epoch-start block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainAnchor {
    /// The block's hash.
    pub hash: Hash,
    /// The subnet's metagraph at that block, UIDs ascending.
    pub metagraph: Vec<Neuron>,
}

/// The chain's neurons as the state records them.
pub fn to_neurons(infos: &[NeuronInfo]) -> Vec<Neuron> {
    let mut out: Vec<Neuron> = infos
        .iter()
        .map(|n| Neuron {
            uid: Uid(n.uid),
            hotkey: n.hotkey,
            coldkey: n.coldkey.0,
            stake: n.stake,
            validator_permit: n.validator_permit,
        })
        .collect();
    out.sort_by_key(|n| n.uid);
    out
}

/// Watches the chain: the latest epoch-start block, and the anchors asked about.
pub struct ChainWatch {
    netuid: u16,
    client: AnyChain,
    inner: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    tempo: Option<u16>,
    head: u64,
    /// Epoch-start blocks read from the chain.
    known: BTreeMap<u64, ChainAnchor>,
    /// Blocks a proposal asked about that are not read yet.
    wanted: BTreeSet<u64>,
    /// The newest epoch-start block at or below the head.
    latest: Option<u64>,
}

/// What the chain watcher reports for the status page.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct ChainStatus {
    /// The chain's head when last read.
    pub head: u64,
    /// Blocks per chain epoch.
    pub tempo: u16,
    /// The newest epoch-start block.
    pub latest_epoch_start: Option<u64>,
}

/// Most epoch-start blocks remembered.
const KNOWN_CAP: usize = 64;

impl ChainWatch {
    /// A watcher of `netuid` through `client`.
    pub fn new(netuid: u16, client: AnyChain) -> ChainWatch {
        ChainWatch {
            netuid,
            client,
            inner: Mutex::new(WatchState::default()),
        }
    }

    /// The chain client.
    pub fn client(&self) -> &AnyChain {
        &self.client
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest epoch start and what the chain says about it, if read.
    pub fn latest(&self) -> Option<(u64, ChainAnchor)> {
        let s = self.lock();
        let b = s.latest?;
        s.known.get(&b).map(|a| (b, a.clone()))
    }

    /// For the status page.
    pub fn status(&self) -> ChainStatus {
        let s = self.lock();
        ChainStatus {
            head: s.head,
            tempo: s.tempo.unwrap_or(0),
            latest_epoch_start: s.latest,
        }
    }

    /// Does the chain agree with `a`? `None`: not known yet (the watcher will read it).
    pub fn check(&self, a: &EpochAnchor) -> Option<bool> {
        let mut s = self.lock();
        let tempo = s.tempo?;
        if !is_epoch_start(a.chain_block, self.netuid, tempo) {
            return Some(false);
        }
        match s.known.get(&a.chain_block) {
            Some(known) => Some(known.hash == a.chain_hash && known.metagraph == a.metagraph),
            None => {
                s.wanted.insert(a.chain_block);
                None
            }
        }
    }

    async fn read_anchor(&self, block: u64) -> Result<ChainAnchor, ChainError> {
        let b = self.client.block(block).await?;
        let metagraph = self.client.metagraph(self.netuid, Some(block)).await?;
        Ok(ChainAnchor {
            hash: Hash(b.hash),
            metagraph: to_neurons(&metagraph),
        })
    }

    /// One round: reads the schedule (head and tempo) and any epoch-start block not read yet. `true` if something
    /// new was learned.
    pub async fn poll(&self) -> Result<bool, ChainError> {
        let schedule = self.client.epoch_schedule(self.netuid).await?;
        let (head, tempo) = (schedule.current_block, schedule.tempo);
        let latest = epoch_start(epoch_index(head, self.netuid, tempo), self.netuid, tempo);
        let wanted: Vec<u64> = {
            let mut s = self.lock();
            s.head = head;
            s.tempo = Some(tempo);
            s.latest = Some(latest);
            let mut w: BTreeSet<u64> = s.wanted.iter().copied().filter(|b| *b <= head).collect();
            if !s.known.contains_key(&latest) {
                w.insert(latest);
            }
            w.into_iter().filter(|b| !s.known.contains_key(b)).collect()
        };
        let mut learned = false;
        for block in wanted {
            let anchor = self.read_anchor(block).await?;
            let mut s = self.lock();
            s.wanted.remove(&block);
            s.known.insert(block, anchor);
            while s.known.len() > KNOWN_CAP {
                s.known.pop_first();
            }
            learned = true;
        }
        Ok(learned)
    }

    /// Polls every `every` until `notify` closes; sends `()` when something new was learned.
    pub async fn run(self: Arc<Self>, every: Duration, notify: mpsc::Sender<()>) {
        let mut failing = false;
        loop {
            match self.poll().await {
                Ok(learned) => {
                    if failing {
                        tracing::info!("chain reachable again");
                        failing = false;
                    }
                    if learned && notify.send(()).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("reading the chain: {e}");
                        failing = true;
                    }
                }
            }
            if notify.is_closed() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    }
}
