//! Epochs on the chain's clock: the chain watcher that tells the proposer when the next epoch
//! starts (and lets every validator check an `EpochAnchor` against its own view of the chain),
//! and the weight submitter that writes each finalized epoch's weights with the validator's own
//! hotkey.
//!
//! Epoch `e + 1` is anchored on the first block of a chain epoch (subtensor's schedule: blocks
//! where `(block + netuid + 1) % (tempo + 1) == 0`) newer than epoch `e`'s anchor. The anchor
//! carries that block's hash and the subnet's metagraph at that block; a validator votes for a
//! block carrying an anchor only if its own chain client reports the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use borsh::{BorshDeserialize, BorshSerialize};
use platform_chain::local::sim::{epoch_index, epoch_start};
use platform_chain::submit::{
    PENDING_COMMITS_FILE, PendingStore, Retry, reveal_due, submit_weights,
};
use platform_chain::{AnyChain, Chain, ChainError, NeuronInfo};
use platform_crypto::Keypair;
use platform_primitives::{Epoch, Hash, Uid, Weights};
use platform_state::{EpochAnchor, Neuron};
use platform_storage::{DataDir, TableSpec};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

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

/// Whether `block` starts a chain epoch.
pub fn is_epoch_start(block: u64, netuid: u16, tempo: u16) -> bool {
    epoch_start(epoch_index(block, netuid, tempo), netuid, tempo) == block
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

/// One weight submission, as recorded in the node's database.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct WeightSubmission {
    /// The epoch whose weights these are.
    pub epoch: u64,
    /// Target UIDs.
    pub uids: Vec<u16>,
    /// Weights (sum 65535).
    pub weights: Vec<u16>,
    /// `set` or `commit`.
    pub mode: String,
    /// The chain block that included it.
    pub chain_block: u64,
}

const SUBMISSIONS: TableSpec<u64, WeightSubmission> = TableSpec::new("weight_submissions", 1 << 20);

/// The recorded submission of `epoch`'s weights.
pub fn submission(dir: &DataDir, epoch: u64) -> Result<Option<WeightSubmission>> {
    Ok(dir.db().get(&SUBMISSIONS, &epoch)?)
}

/// The newest recorded submission.
pub fn last_submission(dir: &DataDir) -> Result<Option<WeightSubmission>> {
    Ok(dir
        .db()
        .range(&SUBMISSIONS, .., usize::MAX)?
        .into_iter()
        .next_back()
        .map(|(_, s)| s))
}

/// Submits the newest finalized epoch's weights; older ones still queued are skipped (the
/// chain keeps one weight vector per validator).
pub struct WeightSubmitter {
    tx: watch::Sender<Option<(Epoch, Weights)>>,
    /// The newest epoch submitted (or recorded as having nothing to submit).
    done: Arc<Mutex<Option<u64>>>,
}

impl WeightSubmitter {
    /// Starts the submitter task.
    pub fn start(
        key: Arc<Keypair>,
        chain: Arc<ChainWatch>,
        dir: Arc<DataDir>,
        netuid: u16,
    ) -> Result<WeightSubmitter> {
        let pending = PendingStore::open(&dir.root().join(PENDING_COMMITS_FILE))?;
        let done = Arc::new(Mutex::new(last_submission(&dir)?.map(|s| s.epoch)));
        let (tx, rx) = watch::channel(None);
        tokio::spawn(submit_loop(
            key,
            chain,
            dir,
            netuid,
            pending,
            rx,
            done.clone(),
        ));
        Ok(WeightSubmitter { tx, done })
    }

    /// The newest epoch whose weights were submitted.
    pub fn last_submitted(&self) -> Option<u64> {
        *self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `epoch`'s weights (replacing any older ones not yet sent).
    pub fn submit(&self, epoch: Epoch, weights: Weights) {
        self.tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|(e, _)| *e >= epoch) {
                return false;
            }
            *cur = Some((epoch, weights));
            true
        });
    }
}

async fn submit_loop(
    key: Arc<Keypair>,
    chain: Arc<ChainWatch>,
    dir: Arc<DataDir>,
    netuid: u16,
    pending: PendingStore,
    mut rx: watch::Receiver<Option<(Epoch, Weights)>>,
    done: Arc<Mutex<Option<u64>>>,
) {
    let last = || *done.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        // Reveal CRv2 commits whose window opened, every few seconds while any is pending.
        let wait = tokio::time::sleep(Duration::from_secs(3));
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = wait => {
                let events = crate::metrics::events();
                if pending.all().is_ok_and(|p| !p.is_empty()) {
                    match reveal_due(chain.client(), &key, &pending, Retry::default()).await {
                        Ok(outcomes) => for o in outcomes {
                            tracing::info!("weights reveal: {o:?}");
                            events.weights("revealed");
                        },
                        Err(e) => {
                            tracing::warn!("revealing weights: {e}");
                            events.weights("reveal_failed");
                        }
                    }
                }
                events.pending_commits.set(pending.all().map_or(0, |p| p.len() as i64));
                continue;
            }
        }
        let Some((epoch, weights)) = rx.borrow_and_update().clone() else {
            continue;
        };
        if last().is_some_and(|d| d >= epoch.0) {
            continue;
        }
        match submit_one(&key, &chain, &dir, netuid, &pending, epoch, &weights, &rx).await {
            Ok(true) => {
                crate::metrics::events().weights("submitted");
                *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(epoch.0);
            }
            Ok(false) => crate::metrics::events().weights("superseded"),
            Err(e) => {
                crate::metrics::events().weights("failed");
                tracing::error!(epoch = epoch.0, "weights not submitted: {e:#}");
            }
        }
    }
}

/// Records a submission in the database and the audit log.
async fn record_submission(
    dir: &Arc<DataDir>,
    key: &Keypair,
    record: WeightSubmission,
) -> Result<()> {
    let d = dir.clone();
    let hotkey = key.hotkey().to_ss58();
    tokio::task::spawn_blocking(move || -> Result<()> {
        d.db()
            .write(|tx| tx.put(&SUBMISSIONS, &record.epoch, &record))?;
        d.audit().append(platform_storage::AuditEntry::with_fields(
            "weights.submit",
            &hotkey,
            &[
                ("epoch", &record.epoch.to_string()),
                ("mode", &record.mode),
                ("chain_block", &record.chain_block.to_string()),
                ("uids", &format!("{:?}", record.uids)),
                ("weights", &format!("{:?}", record.weights)),
            ],
        ))?;
        Ok(())
    })
    .await?
}

/// Submits one epoch's weights, waiting out the chain's rate limit. `Ok(false)`: a newer epoch
/// arrived first.
#[allow(clippy::too_many_arguments)]
async fn submit_one(
    key: &Keypair,
    chain: &ChainWatch,
    dir: &Arc<DataDir>,
    netuid: u16,
    pending: &PendingStore,
    epoch: Epoch,
    weights: &Weights,
    rx: &watch::Receiver<Option<(Epoch, Weights)>>,
) -> Result<bool> {
    let uids: Vec<u16> = weights.uids().iter().map(|u| u.0).collect();
    let values = weights.weights().to_vec();
    if uids.is_empty() {
        tracing::info!(
            epoch = epoch.0,
            "epoch closed with no weights; nothing to submit"
        );
        let record = WeightSubmission {
            epoch: epoch.0,
            uids,
            weights: values,
            mode: "none".into(),
            chain_block: 0,
        };
        record_submission(dir, key, record).await?;
        return Ok(true);
    }
    for _ in 0..20 {
        if rx.borrow().as_ref().is_some_and(|(e, _)| *e > epoch) {
            return Ok(false);
        }
        let client = chain.client();
        let version = Retry::default()
            .run(|| client.hyperparameters(netuid))
            .await?
            .weights_version_key;
        let result = submit_weights(
            client,
            key,
            netuid,
            &uids,
            &values,
            version,
            Some(pending),
            Retry::default(),
        )
        .await;
        match result {
            Ok(done) => {
                let (mode, block) = done.mode_and_block();
                let record = WeightSubmission {
                    epoch: epoch.0,
                    uids: uids.clone(),
                    weights: values.clone(),
                    mode: mode.into(),
                    chain_block: block,
                };
                record_submission(dir, key, record).await?;
                tracing::info!(
                    epoch = epoch.0,
                    mode,
                    chain_block = block,
                    "weights submitted"
                );
                return Ok(true);
            }
            Err(ChainError::RateLimited { next, .. }) => {
                tracing::info!(epoch = epoch.0, next, "weights rate-limited; waiting");
                // At most ten minutes; the chain may also be unreachable meanwhile.
                for _ in 0..2400 {
                    if client.head().await.is_ok_and(|h| h.number >= next) {
                        break;
                    }
                    if rx.borrow().as_ref().is_some_and(|(e, _)| *e > epoch) {
                        return Ok(false);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("gave up after 20 rate-limited attempts")
}
