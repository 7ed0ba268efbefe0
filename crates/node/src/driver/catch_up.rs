//! Catching up: asking peers for finalized blocks this node missed, applying them once
//! their certificates check, and starting from a peer's snapshot after missed epochs.

use super::*;

/// The block at `height` with header hash `header` from this node's own blob store, if it
/// stored it before it was final ([`store::note_unfinalized`]).
fn stored_block(dir: &DataDir, height: u64, header: Hash) -> Option<Block> {
    let blob = store::unfinalized_blob(dir.db(), height, &header).ok()??;
    let bytes = dir
        .blobs()
        .get(&blob, platform_state::MAX_BLOCK_BYTES as u64)
        .ok()??;
    Block::decode(&bytes)
        .ok()
        .filter(|b| b.header.hash() == header && b.header.height.0 == height)
}

impl Driver {
    /// The bodies of notarized blocks, not yet final, that this validator must verify to build
    /// on or vote after but lacks ([`Forks::missing_bodies`]: it restarted since it verified
    /// them, or missed their announcement): from its own store, else asked of the validators
    /// (the block's leader first), each as often as [`Asking::body`] allows.
    pub(super) fn fetch_missing_bodies(&mut self) {
        let missing = self.forks.missing_bodies(|h| self.blocks.contains_key(h));
        let now = self.clock_ms();
        for p in missing {
            if !self.block_asks.body(now, p.payload) {
                continue;
            }
            let leader = self.consensus.engine.leader(p.view) as usize;
            let leader = self.consensus.validators.get(leader).copied();
            let (net, tx, dir) = (self.net.clone(), self.internal_tx.clone(), self.dir.clone());
            let (height, header) = (p.height.0, p.payload);
            tokio::spawn(async move {
                let found = |source: &str| {
                    crate::metrics::events()
                        .notarized_bodies
                        .get_or_create(&vec![("source", source.to_string())])
                        .inc();
                };
                let d = dir.clone();
                let local = tokio::task::spawn_blocking(move || stored_block(&d, height, header))
                    .await
                    .ok()
                    .flatten();
                if let Some(block) = local {
                    found("store");
                    let _ = tx.send(Internal::Block(Box::new(block))).await;
                    return;
                }
                // The certified header commits to the transactions: a block with that header
                // and other transactions is the wrong block.
                let verify = |bytes: &[u8]| {
                    Block::decode(bytes).is_ok_and(|b| {
                        b.header.hash() == header
                            && b.header.height.0 == height
                            && b.header.tx_root == Block::tx_root(&b.txs)
                    })
                };
                let fetched = net.fetch_block(height, header, leader, verify).await;
                let Some((bytes, block)) = fetched
                    .inspect_err(|e| tracing::debug!("notarized block {height} {header}: {e}"))
                    .ok()
                    .and_then(|bytes| {
                        let block = Block::decode(&bytes).ok()?;
                        Some((bytes, block))
                    })
                else {
                    found("missing");
                    return;
                };
                found("peer");
                match net.store_blob(bytes).await {
                    Ok(blob) => super::blocks::remember_unfinalized(dir, height, header, blob),
                    Err(e) => tracing::warn!("storing block {header}: {e}"),
                }
                let _ = tx.send(Internal::Block(Box::new(block))).await;
            });
        }
    }

    /// A finalized block we do not hold (its announcement came while we were down or cut off):
    /// ask peers for it through `sync`. The engine has checked the finalization, so a block is
    /// genuine exactly when its header hashes to the finalized proposal's payload.
    pub(super) fn sync_missing(&mut self) {
        let Next::Fetch {
            height: Height(height),
            payload,
            through: Height(last),
        } = self.finality.next(|p| self.blocks.contains_key(p))
        else {
            return;
        };
        let now = self.clock_ms();
        if !self.block_asks.fetch(now, height) {
            return;
        }
        // Ask for everything finalized that we lack, up to the newest known finalized height.
        let wanted: HashMap<u64, Hash> = self
            .finality
            .waiting()
            .map(|f| (f.proposal.height.0, f.proposal.payload))
            .collect();
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        let dir = self.dir.clone();
        tokio::spawn(async move {
            // This node may have stored the block before it was final (and lost it from
            // memory in a restart): then no peer is needed.
            if payload != Hash::ZERO {
                let local =
                    tokio::task::spawn_blocking(move || stored_block(&dir, height, payload))
                        .await
                        .ok()
                        .flatten();
                if let Some(block) = local {
                    let _ = tx.send(Internal::Block(Box::new(block))).await;
                    return;
                }
            }
            let check = |from: u64, blocks: &[Vec<u8>]| -> Result<(), &'static str> {
                for (i, bytes) in blocks.iter().enumerate() {
                    let f = decode_finalized(bytes).ok_or("malformed_block")?;
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
                    for f in blocks.iter().filter_map(|b| decode_finalized(b)) {
                        let _ = tx.send(Internal::Block(Box::new(f.block))).await;
                    }
                }
                Err(e) => tracing::debug!("syncing blocks {height}..={last}: {e}"),
            }
        });
    }

    /// The network is in a later epoch than this node (it was down or cut off when the epoch
    /// closed): fetch finalized blocks from the last one we hold. Each is checked against the
    /// validator set of its own epoch before it is applied ([`Driver::apply_synced`]).
    pub(super) fn catch_up(&mut self) {
        let now = self.clock_ms();
        if !self.block_asks.catch_up(now) {
            return;
        }
        let from = self.finalized_height() + 1;
        let parent = self.finalized_digest();
        let net = self.net.clone();
        let tx = self.internal_tx.clone();
        let refused = self.refused_snapshots.clone();
        let snapshots = self.snapshot_catch_up;
        tokio::spawn(async move {
            // A peer's snapshot newer than our last block starts an epoch we missed: start
            // from it rather than replaying every block (checked by the driver).
            if snapshots
                && let Ok(Some((info, peer))) = net.latest_snapshot().await
                && info.height >= from
                && !refused.contains(&info.blob)
            {
                match snapshots::fetch_peer(&net, info.blob, peer).await {
                    Ok(bytes) => {
                        let _ = tx.send(Internal::Snapshot(bytes, info.blob, peer)).await;
                        return;
                    }
                    Err(e) => tracing::debug!("fetching snapshot {}: {e}", info.blob),
                }
            }
            // Linkage only here; certificates are checked by the driver, epoch by epoch.
            let check = |from: u64, blocks: &[Vec<u8>]| -> Result<(), &'static str> {
                let mut prev = parent;
                for (i, bytes) in blocks.iter().enumerate() {
                    let f = decode_finalized(bytes).ok_or("malformed_block")?;
                    if f.proposal.height.0 != from + i as u64
                        || f.proposal.parent != prev
                        || f.block.header.hash() != f.proposal.payload
                    {
                        return Err("wrong_block");
                    }
                    prev = f.proposal.digest();
                }
                Ok(())
            };
            let to = from + platform_network::wire::MAX_SYNC_BLOCKS - 1;
            match net.sync_blocks(from, to, check).await {
                Ok(blocks) => {
                    let blocks = blocks.iter().filter_map(|b| decode_finalized(b)).collect();
                    let _ = tx.send(Internal::Synced(blocks)).await;
                }
                Err(e) => tracing::debug!("catching up from block {from}: {e}"),
            }
        });
    }

    /// Applies finalized blocks fetched from a peer, in order, each after checking that it
    /// extends our chain and that a quorum of its epoch's validators finalized it (its own
    /// certificate, or a later block's in the same batch that descends from it). Crossing an
    /// epoch close switches to the next epoch's validator set before the next block is checked.
    pub(super) async fn apply_synced(
        &mut self,
        blocks: Vec<FinalizedBlock>,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        let mut effects = Vec::new();
        let batch: Vec<(&Proposal, &[Proposal])> =
            blocks.iter().map(|f| (&f.proposal, &f.seals[..])).collect();
        let before = self.finalized_height();
        let mut last_certificate = None;
        for (i, f) in blocks.iter().enumerate() {
            if f.proposal.height.0 <= self.finalized_height() {
                continue;
            }
            if f.proposal.height.0 != self.finalized_height() + 1
                || f.proposal.parent != self.finalized_digest()
                || f.block.header.hash() != f.proposal.payload
                || f.proposal.epoch != self.epoch()
            {
                break;
            }
            let head_ok = match &f.certificate.subject {
                Subject::Proposal(head) => {
                    f.certificate.kind == VoteKind::Finalize
                        && head.epoch == f.proposal.epoch
                        && crate::core::finality::proven_final(&batch, i, head)
                }
                Subject::View(..) => false,
            };
            let quorum = certificate_is_valid(
                self.netuid,
                &self.consensus.engine.config().validators,
                &self.consensus.verifier,
                &f.certificate,
            );
            if !head_ok || !quorum {
                tracing::warn!(
                    height = f.proposal.height.0,
                    "a peer's finalized block has no valid finalization; ignoring the rest"
                );
                break;
            }
            self.blocks.insert(f.proposal.payload, f.block.clone());
            self.finality.finalized(Finalized {
                proposal: f.proposal,
                certificate: f.certificate.clone(),
                seals: f.seals.clone(),
            });
            self.apply_finalized().await?;
            if self.finalized_height() != f.proposal.height.0 {
                break; // waiting for a module; the next catch-up resumes here
            }
            last_certificate = Some(f.certificate.clone());
            effects.extend(self.switch_epoch_if_closed().await?);
        }
        if self.finalized_height() > before {
            tracing::info!(
                from = before + 1,
                to = self.finalized_height(),
                "caught up on finalized blocks from a peer"
            );
            // The engine learns the newest finalization too (checked above), which moves it
            // to the view after it: a validator that caught up votes again at once instead
            // of waiting to hear certificates of views it missed. One of another epoch (the
            // blocks crossed a close) is ignored by the new engine.
            if let Some(cert) = last_certificate {
                let from = self.consensus.me.unwrap_or(0);
                effects.extend(self.engine().handle(Input::Message {
                    from,
                    message: Message::Certificate(cert),
                }));
            }
        }
        Ok(effects)
    }

    /// A peer's snapshot of an epoch this node missed: checked ([`snapshots::verify_peer`]),
    /// stored, and made canonical; the engine of its epoch takes over, and the certified
    /// blocks after it are fetched from peers. A refused snapshot is remembered, so catch-up
    /// continues block by block.
    pub(super) async fn install_snapshot(
        &mut self,
        bytes: Vec<u8>,
        blob: Hash,
        peer: platform_network::libp2p::PeerId,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        let opened = tokio::task::block_in_place(|| snapshots::open_peer(&bytes));
        let verdict = match &opened {
            Err(reason) => Verdict::Invalid(reason.clone()),
            Ok((state, proof)) => {
                if proof.anchor.height.0 <= self.finalized_height()
                    || state.meta().epoch <= self.epoch()
                {
                    return Ok(Vec::new());
                }
                let watch = self.chain.as_ref().map(|c| c.watch.clone());
                let confirm = |a: &EpochAnchor| match &watch {
                    Some(w) => w.check(a),
                    None => Some(false),
                };
                let own = self.pool.state();
                let trust = snapshots::Trust {
                    netuid: self.netuid,
                    own: &own,
                    confirm: &confirm,
                };
                tokio::task::block_in_place(|| snapshots::verify_peer(state, proof, &trust))
            }
        };
        match verdict {
            Verdict::Valid => {}
            Verdict::Unconfirmed => {
                tracing::debug!("a peer's snapshot waits for our chain client to read its anchor");
                return Ok(Vec::new());
            }
            Verdict::Invalid(reason) => {
                tracing::warn!(%blob, "refusing a peer's snapshot: {reason}");
                self.refused_snapshots.insert(blob);
                let _ = self.net.report(peer, "snapshot", "bad_snapshot").await;
                return Ok(Vec::new());
            }
        }
        let (state, proof): (State, SnapshotProof) = opened.expect("verified above");
        // Stored first: after a restart the node starts from it.
        let (dir, p, retention) = (self.dir.clone(), proof.clone(), self.retention);
        let saved =
            tokio::task::spawn_blocking(move || snapshots::save(&dir, &bytes, p, &retention))
                .await??;
        self.status
            .lock()
            .expect("status lock poisoned")
            .blocks_pruned += saved.blocks_pruned as u64;
        let from = self.finalized_height();
        let (block_hash, root) = {
            let mut canonical = self.pool.state();
            *canonical = state;
            (canonical.last_block(), canonical.root())
        };
        self.pool.publish();
        self.blocks.clear();
        let tip = Tip {
            digest: proof.anchor.digest(),
            height: proof.anchor.height,
            view: proof.anchor.view,
        };
        let after = proof.finalized().into_iter().map(|proposal| Finalized {
            proposal,
            certificate: proof.certificate.clone(),
            seals: Vec::new(),
        });
        self.finality.reset(tip, after);
        self.pending_snapshot = None;
        self.block_asks.reset();
        for topic in [Topic::Announce, Topic::Submissions, Topic::Attestations] {
            self.net.set_round(topic, self.finalized_height()).await?;
        }
        {
            let mut s = self.status.lock().expect("status lock poisoned");
            s.height = self.finalized_height();
            s.block_hash = block_hash.to_hex();
            s.state_root = root.to_hex();
            s.snapshot_height = Some(self.finalized_height());
        }
        tracing::info!(
            from,
            to = self.finalized_height(),
            %blob,
            "started from a peer's snapshot"
        );
        let effects = self.switch_epoch_if_closed().await?;
        self.sync_missing();
        Ok(effects)
    }
}
