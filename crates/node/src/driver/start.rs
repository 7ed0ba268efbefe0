//! Starting a validator: the state rebuilt from its newest snapshot and the finalized blocks
//! after it, and the consensus engine of an epoch (its members, stakes, bound keys and beacon).

use super::*;

/// The consensus members of `state`'s current epoch, in the engine's index order, with stake
/// and verified key: the epoch's validators (hotkeys ascending) that had bound a BLS key when
/// the epoch began, as the state seated them. A validator that gained a permit on chain but
/// had not bound its keys by then (it sends `BindKeys` when it starts) cannot sign, so it joins
/// consensus at the first epoch after its binding. Read from the epoch's record, the members
/// are the same at every height of the epoch: a node restarting mid-epoch numbers signers as
/// the others do.
pub fn consensus_members(
    state: &State,
) -> Result<Vec<(Hotkey, u64, platform_crypto::VerifiedBlsKey)>, String> {
    let members = state.current_epoch().members;
    if members.is_empty() {
        return Err("no validator of the epoch had bound a BLS key when it began".into());
    }
    members
        .into_iter()
        .map(|m| {
            let key = m
                .bls_key
                .verify_possession(&m.pop)
                .map_err(|e| format!("validator {}'s BLS key: {e}", m.hotkey))?;
            Ok((m.hotkey, m.stake, key))
        })
        .collect()
}

/// Builds the engine of `state`'s current epoch, anchored on the last finalized block; its
/// signature checks are counted into `checks`.
pub(super) fn epoch_engine(
    key: &Keypair,
    state: &State,
    (anchor, anchor_height, anchor_view): (Hash, Height, View),
    view_timeout: Duration,
    checks: Arc<AtomicU64>,
) -> Result<EpochEngine> {
    let epoch = state.current_epoch();
    let netuid = state.meta().netuid;
    let members = consensus_members(state).map_err(|e| anyhow!(e))?;
    let validators: Vec<Hotkey> = members.iter().map(|(h, _, _)| *h).collect();
    let stakes: Vec<u64> = members.iter().map(|(_, s, _)| *s).collect();
    let committee: Vec<_> = members.into_iter().map(|(_, _, k)| k).collect();
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
    let collectors = platform_consensus::default_collectors(stakes.len());
    let engine = Engine::new(
        EngineConfig {
            netuid,
            epoch: epoch.epoch,
            validators: Validators::new(stakes),
            beacon: epoch_beacon(netuid, &epoch),
            anchor,
            anchor_height,
            anchor_view,
            me,
            timeout_ms: view_timeout.as_millis() as u64,
            max_backoff_exp: 4,
            future_views: 64,
            collectors,
        },
        Counted::with_counter(BlsScheme::new(secret, committee.clone()), checks),
    );
    Ok(EpochEngine {
        engine,
        validators,
        verifier: BlsScheme::new(None, committee),
        me,
    })
}

impl Driver {
    /// Rebuilds the state from genesis and the finalized blocks on disk, and prepares the
    /// engine for the current epoch.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: Keypair,
        genesis: &Genesis,
        dir: Arc<DataDir>,
        (net, certificates): (Network, Arc<CertificateBook>),
        (block_interval, view_timeout): (Duration, Duration),
        status: SharedStatus,
        mempool: Mempool,
        chain: Option<ChainLink>,
        fault: Option<Fault>,
        (loader, threads): (ModuleLoader, crate::eval_threads::EvalThreads),
    ) -> Result<Driver> {
        let mut host = weights_host(dir.clone(), loader.clone());
        if fault == Some(Fault::StallWeights) {
            host = host.with_stalls(crate::config::STALLED_WEIGHT_RUNS);
        }
        let host = Arc::new(host);
        let mut canonical =
            State::genesis(genesis).map_err(|e| anyhow!("the genesis is invalid: {e}"))?;
        let mut finalized_digest = genesis.hash();
        let mut finalized_height = 0;
        let mut finalized_view = View(0);
        // Start from our newest snapshot, if any, then replay the finalized blocks after it.
        let mut snapshot_height = None;
        if let Some((state, proof)) = snapshots::load_latest(&dir)? {
            if state.meta().netuid != genesis.netuid {
                return Err(anyhow!(
                    "the data directory's snapshot is of subnet {}, the genesis of {}",
                    state.meta().netuid.0,
                    genesis.netuid.0
                ));
            }
            tracing::info!(
                height = proof.anchor.height.0,
                "starting from this node's snapshot"
            );
            canonical = state;
            snapshot_height = Some(proof.anchor.height.0);
            finalized_digest = proof.anchor.digest();
            finalized_height = proof.anchor.height.0;
            finalized_view = proof.anchor.view;
        }
        // Replay finalized blocks, in batches, recording the evaluation inputs they order.
        // A block whose epoch close needs a module this data directory does not hold ends the
        // replay there: the driver catches up on the rest from peers, fetching the module.
        let mut replayed_inputs = crate::evaluator::Inputs::new();
        'replay: loop {
            let batch =
                store::finalized_range(dir.db(), finalized_height + 1, finalized_height + 256)?;
            if batch.is_empty() {
                break;
            }
            for f in batch {
                match canonical.apply_block(&f.block, &*host) {
                    Ok(_) => {}
                    Err(BlockError::ModuleUnavailable { challenge, module }) => {
                        tracing::warn!(
                            height = f.proposal.height.0,
                            %challenge,
                            %module,
                            "replay stops before this epoch close: its module is not here; \
                             catching up on the rest from peers"
                        );
                        crate::metrics::events().module_wait("replay");
                        break 'replay;
                    }
                    Err(e) => {
                        return Err(anyhow!(
                            "replaying finalized block {}: {e:?}",
                            f.proposal.height.0
                        ));
                    }
                }
                crate::evaluator::record_inputs(&mut replayed_inputs, &canonical, &f.block);
                finalized_digest = f.proposal.digest();
                finalized_height = f.proposal.height.0;
                finalized_view = f.proposal.view;
            }
        }
        let vote_checks = Arc::new(AtomicU64::new(0));
        let consensus = epoch_engine(
            &key,
            &canonical,
            (finalized_digest, Height(finalized_height), finalized_view),
            view_timeout,
            vote_checks.clone(),
        )?;
        let netuid = genesis.netuid;
        let epoch = canonical.current_epoch();
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let wal = WalWriter::spawn(dir.clone()).context("starting the consensus WAL writer")?;
        let pool = Arc::new(Pool::new(canonical, mempool));
        let evaluator = Arc::new(Evaluator::new(
            key.hotkey(),
            consensus.me.and_then(|_| key.derive_bls_key()),
            netuid,
            net.clone(),
            pool.clone(),
            threads,
            (fault, loader),
        ));
        let (root, last_block) = {
            let mut state = pool.state();
            (state.root(), state.last_block())
        };
        {
            let mut s = status.lock().expect("status lock poisoned");
            s.netuid = netuid.0;
            s.network_id = genesis.network_id().to_hex();
            s.hotkey = key.hotkey().to_ss58();
            s.validator = consensus.me.is_some();
            s.height = finalized_height;
            s.block_hash = last_block.to_hex();
            s.state_root = root.to_hex();
            s.epoch = epoch.epoch.0;
            s.epoch_chain_block = epoch.chain_block;
            s.weights_submitted_epoch = chain.as_ref().and_then(|c| c.submitter.last_submitted());
            s.snapshot_height = snapshot_height;
        }
        Ok(Driver {
            key: Arc::new(key),
            netuid,
            consensus,
            vote_checks,
            generation: 0,
            evaluator,
            pool,
            host,
            chain,
            finality: FinalityQueue::new(Tip {
                digest: finalized_digest,
                height: Height(finalized_height),
                view: finalized_view,
            }),
            replayed_inputs: Some(replayed_inputs),
            forks: Forks::default(),
            blocks: HashMap::new(),
            pending_build: None,
            block_asks: Asking::new(0),
            started: Instant::now(),
            refused_snapshots: HashSet::new(),
            snapshot_catch_up: true,
            retention: crate::collect::Retention::default(),
            collecting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            nullify_closes: fault == Some(Fault::NullifyCloses),
            close_timeout: None,
            poison_anchors: fault == Some(Fault::PoisonAnchors),
            flood_announces: fault == Some(Fault::FloodAnnounces),
            garbage_gossip: fault == Some(Fault::GarbageGossip),
            ignore_announces: fault == Some(Fault::IgnoreAnnouncements),
            flood_fetches: fault == Some(Fault::FloodFetches),
            fetch_flood_tick: 0,
            fetch_flood_reached_peer: false,
            announced: HashMap::new(),
            bind_sent: None,
            early: VecDeque::new(),
            certificates,
            asking: Default::default(),
            preparing: Arc::new(Mutex::new(HashSet::new())),
            pending_snapshot: None,
            heard: Heard::new(Instant::now()),
            latencies: VecDeque::new(),
            block_interval,
            view_timeout,
            net,
            dir,
            wal,
            internal_tx,
            internal_rx,
            status,
        })
    }

    /// How long blocks' and settled payloads' blobs are kept.
    pub fn with_retention(mut self, retention: crate::collect::Retention) -> Driver {
        self.retention = retention;
        self
    }

    /// Whether catch-up across epochs may start from a peer's snapshot (default on).
    pub fn with_snapshot_catch_up(mut self, on: bool) -> Driver {
        self.snapshot_catch_up = on;
        self
    }

    /// Starts the current engine from the WAL and the journaled certificates of its epoch. A
    /// WAL record of an earlier epoch is set aside by the safety rules: each epoch's views start
    /// after its anchor's.
    pub(super) async fn start_engine(&mut self) -> Result<Vec<Effect<BlsSignature>>> {
        let dir = self.dir.clone();
        let (safety, certificates) = tokio::task::spawn_blocking(move || {
            let safety = store::load_wal(dir.db())?;
            let certs = store::journaled_certificates(dir.db(), 0)?;
            Ok::<_, platform_storage::DbError>((safety, certs))
        })
        .await??;
        let epoch = self.epoch();
        let certificates: Vec<_> = certificates
            .into_iter()
            .filter(|c| c.subject.epoch() == epoch)
            .collect();
        // The blocks the journal shows notarized above the tip must be verified again: their
        // states went with the restart (`Forks::certified`).
        let tip = Height(self.finalized_height());
        for c in &certificates {
            self.forks.certified(c, tip);
        }
        self.fetch_missing_bodies();
        Ok(self.engine().handle(Input::Start {
            safety,
            certificates,
        }))
    }
}
