//! The consensus driver: feeds the engine what the network delivers and timers fire, and
//! performs the effects it returns — persist before voting, broadcast, build and check blocks
//! against the replicated state, apply finalized blocks.
//!
//! Blocks travel as blobs: the leader stores its block, announces `(header hash, blob hash)` on
//! the `announce` topic, and the consensus proposal carries the header hash. A validator asked
//! to verify a proposal whose block has not arrived yet waits for it.
//!
//! Leaders may build on a block that is notarized but not yet final, so every verified block's
//! resulting state is kept as a fork (`State::fork`) until finalization makes one canonical.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use platform_consensus::{
    BlsScheme, Certificate, Config as EngineConfig, Effect, Engine, Input, Message, Proposal,
    ValidatorIndex, Validators,
};
use platform_crypto::{BlsSignature, Keypair};
use platform_network::{Event as NetEvent, Membership, Network, PayloadCheck, Topic};
use platform_primitives::{Hash, Height, Hotkey, View, decode, encode};
use platform_state::{Block, Genesis, NoModules, State, Tx};
use platform_storage::DataDir;
use tokio::sync::mpsc;

use crate::evaluator::Evaluator;
use crate::mempool::{Mempool, Pool};
use crate::store::{self, FinalizedBlock};

/// What the node reports through the API.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Status {
    /// The validator's hotkey.
    pub hotkey: String,
    /// Whether it votes (holds a validator index in the current set).
    pub validator: bool,
    /// The last finalized height.
    pub height: u64,
    /// The last finalized block's header hash.
    pub block_hash: String,
    /// The state root after the last finalized block.
    pub state_root: String,
    /// The current epoch.
    pub epoch: u64,
    /// The current consensus view.
    pub view: u64,
    /// The hotkey of the view's leader.
    pub leader: String,
    /// Connected peers.
    pub peers: usize,
    /// Whether the partition alarm is raised.
    pub partitioned: bool,
    /// The subnet.
    pub netuid: u16,
    /// Transactions waiting in the mempool.
    pub pending_transactions: usize,
    /// Blocks finalized since this process started.
    pub finalized_since_start: u64,
    /// Median time from a block's proposal (its header timestamp, the leader's clock) to its
    /// finalization here, over the last 1000 blocks, in milliseconds.
    pub finalization_ms_p50: u64,
    /// 99th percentile of the same.
    pub finalization_ms_p99: u64,
}

/// Shared, briefly locked status (never held across an `.await`).
pub type SharedStatus = Arc<Mutex<Status>>;

enum Internal {
    Timeout(View),
    Persisted(u64),
    Build {
        view: View,
        parent: Hash,
        height: Height,
    },
    Block(Box<Block>),
}

/// The most transactions a block carries.
const MAX_BLOCK_TXS: usize = 512;

/// Largest announcement accepted: two hashes.
const ANNOUNCE_BYTES: usize = 64;

/// Payload checks the network runs before a message is accepted (strict decoding of each kind).
pub fn payload_checks() -> Vec<(Topic, PayloadCheck)> {
    vec![
        (
            Topic::Consensus,
            Arc::new(|e: &platform_network::Envelope| {
                decode::<Message<BlsSignature>>(
                    "consensus message",
                    &e.payload,
                    platform_consensus::types::MAX_MESSAGE_BYTES,
                )
                .map(|_| ())
                .map_err(|_| "bad_consensus_message")
            }),
        ),
        (
            Topic::Submissions,
            Arc::new(|e: &platform_network::Envelope| {
                Tx::decode(&e.payload)
                    .map(|_| ())
                    .map_err(|_| "bad_transaction")
            }),
        ),
        (
            Topic::Announce,
            Arc::new(|e: &platform_network::Envelope| {
                decode::<(Hash, Hash)>("block announcement", &e.payload, ANNOUNCE_BYTES)
                    .map(|_| ())
                    .map_err(|_| "bad_announcement")
            }),
        ),
    ]
}

/// One validator's consensus over the network.
pub struct Driver {
    key: Arc<Keypair>,
    engine: Engine<BlsScheme>,
    validators: Vec<Hotkey>,
    /// The state after the last finalized block, and the mempool.
    pool: Arc<Pool>,
    evaluator: Arc<Evaluator>,
    /// Proposal digest of the last finalized block (or the genesis hash).
    finalized_digest: Hash,
    finalized_height: u64,
    /// States after verified, not yet final blocks, by proposal digest.
    forks: HashMap<Hash, (u64, State)>,
    /// Blocks by header hash.
    blocks: HashMap<Hash, Block>,
    /// Proposals waiting for their block (or their parent's state).
    waiting: Vec<Proposal>,
    /// Finalized proposals waiting for their block.
    to_apply: VecDeque<(Proposal, Certificate<BlsSignature>)>,
    /// When we last asked peers for the block at the front of `to_apply`.
    sync_asked: Option<(u64, Instant)>,
    last_finalized_at: Instant,
    /// Proposal-to-finalization times of recent blocks, in milliseconds.
    latencies: VecDeque<u64>,
    block_interval: Duration,
    net: Network,
    dir: Arc<DataDir>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    status: SharedStatus,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Driver {
    /// Rebuilds the state from genesis and the finalized blocks on disk, and prepares the
    /// engine for the current epoch.
    pub fn new(
        key: Keypair,
        genesis: &Genesis,
        dir: Arc<DataDir>,
        net: Network,
        (block_interval, view_timeout): (Duration, Duration),
        status: SharedStatus,
        mempool: Mempool,
    ) -> Result<Driver> {
        let mut canonical =
            State::genesis(genesis).map_err(|e| anyhow!("the genesis is invalid: {e}"))?;
        let mut finalized_digest = genesis.hash();
        let mut finalized_height = 0;
        let mut finalized_view = View(0);
        // Replay finalized blocks, in batches.
        loop {
            let batch =
                store::finalized_range(dir.db(), finalized_height + 1, finalized_height + 256)?;
            if batch.is_empty() {
                break;
            }
            for f in batch {
                canonical.apply_block(&f.block, &NoModules).map_err(|e| {
                    anyhow!("replaying finalized block {}: {e:?}", f.proposal.height.0)
                })?;
                finalized_digest = f.proposal.digest();
                finalized_height = f.proposal.height.0;
                finalized_view = f.proposal.view;
            }
        }
        let epoch = canonical.current_epoch();
        let validators: Vec<Hotkey> = epoch.validators.iter().map(|(h, _)| *h).collect();
        let stakes: Vec<u64> = epoch.validators.iter().map(|(_, s)| *s).collect();
        let committee = epoch
            .validators
            .iter()
            .map(|(h, _)| {
                let keys = canonical
                    .bound_keys(h)
                    .ok_or_else(|| anyhow!("validator {h} has no bound BLS key"))?;
                keys.bls_key
                    .verify_possession(&keys.pop)
                    .map_err(|e| anyhow!("validator {h}'s BLS key: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let me = validators
            .iter()
            .position(|h| *h == key.hotkey())
            .map(|i| i as ValidatorIndex);
        let secret = match me {
            Some(_) => Some(
                key.derive_bls_key()
                    .context("the hotkey has no seed to derive its BLS key from")?,
            ),
            None => None,
        };
        let netuid = genesis.netuid;
        let engine = Engine::new(
            EngineConfig {
                netuid,
                epoch: epoch.epoch,
                validators: Validators::new(stakes),
                beacon: genesis.hash().0,
                anchor: finalized_digest,
                anchor_height: Height(finalized_height),
                anchor_view: finalized_view,
                me,
                timeout_ms: view_timeout.as_millis() as u64,
                max_backoff_exp: 4,
                future_views: 64,
            },
            BlsScheme::new(secret, committee),
        );
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let pool = Arc::new(Pool::new(canonical, mempool));
        let evaluator = Arc::new(Evaluator::new(
            key.hotkey(),
            me.and_then(|_| key.derive_bls_key()),
            netuid,
            net.clone(),
            pool.clone(),
            2,
        ));
        let (root, last_block) = {
            let mut state = pool.state();
            (state.root(), state.last_block())
        };
        {
            let mut s = status.lock().expect("status lock poisoned");
            s.netuid = netuid.0;
            s.hotkey = key.hotkey().to_ss58();
            s.validator = me.is_some();
            s.height = finalized_height;
            s.block_hash = last_block.to_hex();
            s.state_root = root.to_hex();
            s.epoch = epoch.epoch.0;
        }
        Ok(Driver {
            key: Arc::new(key),
            engine,
            validators,
            evaluator,
            pool,
            finalized_digest,
            finalized_height,
            forks: HashMap::new(),
            blocks: HashMap::new(),
            waiting: Vec::new(),
            to_apply: VecDeque::new(),
            sync_asked: None,
            last_finalized_at: Instant::now(),
            latencies: VecDeque::new(),
            block_interval,
            net,
            dir,
            internal_tx,
            internal_rx,
            status,
        })
    }

    /// The network membership of the current validator set.
    pub fn membership(&self) -> Membership {
        Membership {
            validators: self
                .pool
                .state()
                .current_epoch()
                .validators
                .into_iter()
                .collect(),
        }
    }

    /// The canonical state and mempool, for the API.
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// Runs until the network's event stream ends or `stop` resolves.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.net.set_membership(self.membership()).await?;
        for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
            self.net.set_round(topic, self.finalized_height).await?;
        }
        let dir = self.dir.clone();
        let (safety, certificates) = tokio::task::spawn_blocking(move || {
            let safety = store::load_wal(dir.db())?;
            let certs = store::journaled_certificates(dir.db(), 0)?;
            Ok::<_, platform_storage::DbError>((safety, certs))
        })
        .await??;
        let effects = self.engine.handle(Input::Start {
            safety,
            certificates,
        });
        self.perform(effects).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                ev = events.recv() => match ev {
                    Some(ev) => self.on_network(ev).await?,
                    None => return Ok(()),
                },
                Some(i) = self.internal_rx.recv() => self.on_internal(i).await?,
                _ = tick.tick() => {
                    self.refresh_status().await;
                    self.sync_missing();
                }
            }
        }
    }

    async fn refresh_status(&mut self) {
        let net = self.net.status().await.ok();
        let view = self.engine.view();
        let leader = self.validators[self.engine.leader(view) as usize].to_ss58();
        let mut s = self.status.lock().expect("status lock poisoned");
        s.view = view.0;
        s.leader = leader;
        if let Some(n) = net {
            s.peers = n.connected_peers;
            s.partitioned = n.partitioned;
        }
    }

    async fn on_network(&mut self, ev: NetEvent) -> Result<()> {
        let NetEvent::Gossip {
            topic,
            envelope,
            from,
        } = ev
        else {
            return Ok(());
        };
        match topic {
            Topic::Consensus => {
                let Some(from) = self.validators.iter().position(|h| *h == envelope.author) else {
                    return Ok(());
                };
                let message: Message<BlsSignature> = decode(
                    "consensus message",
                    &envelope.payload,
                    platform_consensus::types::MAX_MESSAGE_BYTES,
                )?;
                let effects = self.engine.handle(Input::Message {
                    from: from as ValidatorIndex,
                    message,
                });
                self.perform(effects).await
            }
            Topic::Announce => {
                let (header, blob): (Hash, Hash) =
                    decode("block announcement", &envelope.payload, ANNOUNCE_BYTES)?;
                if !self.blocks.contains_key(&header) {
                    let net = self.net.clone();
                    let tx = self.internal_tx.clone();
                    tokio::spawn(async move {
                        match net.fetch_blob_from(blob, Some(from)).await {
                            Ok(bytes) => match Block::decode(&bytes) {
                                Ok(block) if block.header.hash() == header => {
                                    let _ = tx.send(Internal::Block(Box::new(block))).await;
                                }
                                _ => tracing::warn!("announced block {header} did not match"),
                            },
                            Err(e) => tracing::warn!("fetching block {header}: {e}"),
                        }
                    });
                }
                Ok(())
            }
            Topic::Submissions => {
                let Ok(tx) = Tx::decode(&envelope.payload) else {
                    return Ok(());
                };
                let pool = self.pool.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = pool.admit(tx) {
                        tracing::debug!("gossiped transaction not admitted: {e}");
                    }
                });
                Ok(())
            }
            Topic::Attestations => {
                if let Some(a) = Evaluator::decode(&envelope.payload) {
                    let evaluator = self.evaluator.clone();
                    tokio::spawn(async move { evaluator.collect(a).await });
                }
                Ok(())
            }
        }
    }

    async fn on_internal(&mut self, i: Internal) -> Result<()> {
        let effects = match i {
            Internal::Timeout(v) => self.engine.handle(Input::Timeout(v)),
            Internal::Persisted(t) => self.engine.handle(Input::Persisted(t)),
            Internal::Build {
                view,
                parent,
                height,
            } => match self.build(view, parent, height).await? {
                Some(payload) => self.engine.handle(Input::ProposalReady { view, payload }),
                None => Vec::new(),
            },
            Internal::Block(block) => {
                self.blocks.insert(block.header.hash(), *block);
                self.apply_finalized().await?;
                self.retry_waiting()
            }
        };
        self.perform(effects).await
    }

    /// A copy of the state after `digest`: the canonical state for the last finalized block,
    /// else a fork.
    fn state_after(&self, digest: &Hash) -> Option<State> {
        if *digest == self.finalized_digest && self.to_apply.is_empty() {
            Some(self.pool.state().fork())
        } else {
            self.forks.get(digest).map(|(_, s)| s.fork())
        }
    }

    async fn build(&mut self, view: View, parent: Hash, height: Height) -> Result<Option<Hash>> {
        let Some(mut fork) = self.state_after(&parent) else {
            tracing::warn!(view = view.0, "cannot build: the parent's state is unknown");
            return Ok(None);
        };
        let candidates = self.pool.mempool().candidates(MAX_BLOCK_TXS);
        let (block, outcomes) = fork.build_block(&self.key, view, now_ms(), candidates, &NoModules);
        // Transactions the state refuses now (a nonce used meanwhile, a challenge retired)
        // leave the mempool with the reason.
        let refused: Vec<Hash> = outcomes
            .iter()
            .filter_map(|(tx, r)| {
                r.as_ref().err().map(|reason| {
                    tracing::info!(kind = tx.kind(), "dropping a pending transaction: {reason}");
                    tx.hash()
                })
            })
            .collect();
        self.pool.mempool().remove(refused);
        if block.header.height != height {
            return Err(anyhow!(
                "consensus asked for height {} but the state is at {}",
                height.0,
                block.header.height.0
            ));
        }
        fork.apply_block(&block, &NoModules)
            .map_err(|e| anyhow!("our own block does not apply: {e:?}"))?;
        let header = block.header.hash();
        let proposal = Proposal {
            epoch: self.engine.config().epoch,
            view,
            height,
            parent,
            payload: header,
        };
        self.forks.insert(proposal.digest(), (height.0, fork));
        let blob = self.net.put_blob(encode(&block)).await?;
        self.blocks.insert(header, block);
        if let Err(e) = self
            .net
            .publish(Topic::Announce, height.0, encode(&(header, blob)))
            .await
        {
            tracing::warn!("announcing block {header}: {e}");
        }
        Ok(Some(header))
    }

    /// Checks a proposal's block against the state after its parent. `None`: cannot tell yet.
    fn verify(&mut self, p: &Proposal) -> Option<bool> {
        let block = self.blocks.get(&p.payload)?;
        let mut fork = self.state_after(&p.parent)?;
        let leader = self.validators[self.engine.leader(p.view) as usize];
        if block.header.height != p.height
            || block.header.view != p.view
            || block.header.proposer != leader
        {
            return Some(false);
        }
        match fork.apply_block(block, &NoModules) {
            Ok(_) => {
                self.forks.insert(p.digest(), (p.height.0, fork));
                Some(true)
            }
            Err(e) => {
                tracing::warn!(height = p.height.0, "refusing proposal: {e:?}");
                Some(false)
            }
        }
    }

    fn retry_waiting(&mut self) -> Vec<Effect<BlsSignature>> {
        let mut effects = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        for p in waiting {
            match self.verify(&p) {
                Some(valid) => effects.extend(self.engine.handle(Input::Verified {
                    digest: p.digest(),
                    valid,
                })),
                None => self.waiting.push(p),
            }
        }
        effects
    }

    /// A finalized block we do not hold (its announcement came while we were down or cut off):
    /// ask peers for it through `sync`. The engine has checked the finalization, so a block is
    /// genuine exactly when its header hashes to the finalized proposal's payload.
    fn sync_missing(&mut self) {
        let Some((proposal, _)) = self.to_apply.front() else {
            return;
        };
        if self.blocks.contains_key(&proposal.payload) {
            return;
        }
        let height = proposal.height.0;
        if self
            .sync_asked
            .is_some_and(|(h, at)| h == height && at.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        self.sync_asked = Some((height, Instant::now()));
        // Ask for everything finalized that we lack, up to the newest known finalized height.
        let wanted: HashMap<u64, Hash> = self
            .to_apply
            .iter()
            .map(|(p, _)| (p.height.0, p.payload))
            .collect();
        let last = self.to_apply.back().map_or(height, |(p, _)| p.height.0);
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let check = |from: u64, blocks: &[Vec<u8>]| -> Result<(), &'static str> {
                for (i, bytes) in blocks.iter().enumerate() {
                    let f: FinalizedBlock = decode(
                        "finalized block",
                        bytes,
                        platform_state::MAX_BLOCK_BYTES + 65536,
                    )
                    .map_err(|_| "malformed_block")?;
                    let h = from + i as u64;
                    if f.proposal.height.0 != h
                        || wanted.get(&h).is_some_and(|p| *p != f.block.header.hash())
                    {
                        return Err("wrong_block");
                    }
                }
                Ok(())
            };
            match net.sync_blocks(height, last, check).await {
                Ok(blocks) => {
                    for bytes in blocks {
                        if let Ok(f) = decode::<FinalizedBlock>(
                            "finalized block",
                            &bytes,
                            platform_state::MAX_BLOCK_BYTES + 65536,
                        ) && wanted.contains_key(&f.proposal.height.0)
                        {
                            let _ = tx.send(Internal::Block(Box::new(f.block))).await;
                        }
                    }
                }
                Err(e) => tracing::debug!("syncing blocks {height}..={last}: {e}"),
            }
        });
    }

    /// Applies finalized blocks in order while their blocks are at hand.
    async fn apply_finalized(&mut self) -> Result<()> {
        while let Some((proposal, certificate)) = self.to_apply.front().cloned() {
            let Some(block) = self.blocks.get(&proposal.payload).cloned() else {
                break;
            };
            self.to_apply.pop_front();
            let digest = proposal.digest();
            let (block_hash, root) = {
                let mut canonical = self.pool.state();
                match self.forks.remove(&digest) {
                    Some((_, state)) => *canonical = state,
                    None => {
                        canonical.apply_block(&block, &NoModules).map_err(|e| {
                            anyhow!(
                                "finalized block {} does not apply: {e:?}",
                                proposal.height.0
                            )
                        })?;
                    }
                }
                (canonical.last_block(), canonical.root())
            };
            self.pool
                .mempool()
                .remove(block.txs.iter().map(|t| t.hash()));
            for tx in &block.txs {
                if let Tx::Submit(t) = tx {
                    self.evaluator.ordered(t.submission.id());
                }
            }
            if block.txs.iter().any(|t| matches!(t, Tx::Certify(_))) {
                self.evaluator.prune();
            }
            self.finalized_digest = digest;
            self.finalized_height = proposal.height.0;
            self.last_finalized_at = Instant::now();
            let height = self.finalized_height;
            self.forks.retain(|_, (h, _)| *h > height);
            self.blocks.retain(|_, b| b.header.height.0 > height);
            let latency = now_ms().saturating_sub(block.header.timestamp_ms);
            if self.latencies.len() == 1000 {
                self.latencies.pop_front();
            }
            self.latencies.push_back(latency);
            let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
            sorted.sort_unstable();
            let pct = |p: usize| sorted[(sorted.len() * p / 100).min(sorted.len() - 1)];
            let (p50, p99) = (pct(50), pct(99));
            let record = FinalizedBlock {
                proposal,
                block,
                certificate,
            };
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || store::save_finalized(dir.db(), &record)).await??;
            // Announcements, transactions and attestations carry a height as their round: keep
            // their replay windows on the finalized height.
            for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
                self.net.set_round(topic, height).await?;
            }
            let pending = self.pool.mempool().len();
            let mut s = self.status.lock().expect("status lock poisoned");
            s.height = height;
            s.pending_transactions = pending;
            s.block_hash = block_hash.to_hex();
            s.state_root = root.to_hex();
            s.finalized_since_start += 1;
            s.finalization_ms_p50 = p50;
            s.finalization_ms_p99 = p99;
            drop(s);
            tracing::info!(height, latency_ms = latency, "finalized");
        }
        Ok(())
    }

    async fn perform(&mut self, effects: Vec<Effect<BlsSignature>>) -> Result<()> {
        let mut queue: VecDeque<Effect<BlsSignature>> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Broadcast(message) | Effect::Send { message, .. } => {
                    let round = message.view().map_or(self.engine.view().0, |v| v.0);
                    if let Err(e) = self
                        .net
                        .publish(Topic::Consensus, round, encode(&message))
                        .await
                    {
                        tracing::debug!("broadcast: {e}");
                    }
                }
                Effect::Persist { state, token } => {
                    let dir = self.dir.clone();
                    let tx = self.internal_tx.clone();
                    tokio::spawn(async move {
                        let saved =
                            tokio::task::spawn_blocking(move || store::save_wal(dir.db(), &state))
                                .await;
                        match saved {
                            Ok(Ok(())) => {
                                let _ = tx.send(Internal::Persisted(token)).await;
                            }
                            // Without a durable WAL the vote is never released.
                            Ok(Err(e)) => tracing::error!("consensus WAL write failed: {e}"),
                            Err(e) => tracing::error!("consensus WAL write failed: {e}"),
                        }
                    });
                }
                Effect::Timeout { view, after_ms } => {
                    let tx = self.internal_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        let _ = tx.send(Internal::Timeout(view)).await;
                    });
                }
                Effect::Propose {
                    view,
                    parent,
                    height,
                } => {
                    let wait = self
                        .block_interval
                        .saturating_sub(self.last_finalized_at.elapsed());
                    let tx = self.internal_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = tx
                            .send(Internal::Build {
                                view,
                                parent,
                                height,
                            })
                            .await;
                    });
                }
                Effect::Verify(p) => match self.verify(&p) {
                    Some(valid) => queue.extend(self.engine.handle(Input::Verified {
                        digest: p.digest(),
                        valid,
                    })),
                    None => self.waiting.push(p),
                },
                Effect::Finalized {
                    proposal,
                    certificate,
                } => {
                    self.to_apply.push_back((proposal, certificate));
                    self.apply_finalized().await?;
                    queue.extend(self.retry_waiting());
                    self.sync_missing();
                }
                Effect::EnteredView(v) => {
                    self.net.set_round(Topic::Consensus, v.0).await?;
                }
                Effect::Certified(c) => {
                    let dir = self.dir.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = store::journal_certificate(dir.db(), &c) {
                            tracing::warn!("journaling a certificate: {e}");
                        }
                    });
                }
                Effect::Penalize { peer, offence } => {
                    tracing::warn!(
                        validator = %self.validators[peer as usize],
                        "consensus offence: {offence:?}"
                    );
                }
                Effect::Evidence { first, .. } => {
                    tracing::warn!(
                        validator = %self.validators[first.signer as usize],
                        "equivocation observed"
                    );
                }
            }
        }
        Ok(())
    }
}
