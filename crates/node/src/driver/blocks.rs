//! Blocks: the state after a proposal's parent, building this leader's block, checking
//! others' proposals against the state, and epoch closes' modules.

use super::*;

/// Records, off the async workers, that the block at `height` with header hash `header` is
/// blob `blob` ([`store::note_unfinalized`]): found again after a restart if it is finalized
/// meanwhile. Best effort: a failure costs only that lookup.
pub(super) fn remember_unfinalized(dir: Arc<DataDir>, height: u64, header: Hash, blob: Hash) {
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store::note_unfinalized(dir.db(), height, header, blob) {
            tracing::warn!(height, "remembering block {header}: {e}");
        }
    });
}

impl Driver {
    /// A copy of the state after `digest`: the canonical state for the last finalized block,
    /// else a fork.
    pub(super) fn state_after(&self, digest: &Hash) -> Option<State> {
        self.forks
            .state_after(digest, &self.finality, || self.pool.state().fork())
    }

    /// Whether every module `state`'s epoch close runs is compiled. If not, fetches and
    /// compiles the missing ones off the async workers and answers with [`Internal::Retry`].
    pub(super) fn modules_ready(&self, state: &State) -> bool {
        let missing: Vec<ChallengeMeta> = module_challenges(state)
            .into_iter()
            .filter(|m| !self.host.is_loaded(m))
            .collect();
        if missing.is_empty() {
            return true;
        }
        for meta in missing {
            if !self
                .preparing
                .lock()
                .expect("preparing lock poisoned")
                .insert(meta.wasm_hash)
            {
                continue;
            }
            let (net, host, dir) = (self.net.clone(), self.host.clone(), self.dir.clone());
            let (tx, preparing) = (self.internal_tx.clone(), self.preparing.clone());
            tokio::spawn(async move {
                let hash = meta.wasm_hash;
                if !dir.blobs().contains(&hash) {
                    match net.fetch_blob(hash).await {
                        Ok(bytes) => {
                            let d = dir.clone();
                            let stored =
                                tokio::task::spawn_blocking(move || d.blobs().put(&bytes)).await;
                            if !matches!(stored, Ok(Ok(_))) {
                                tracing::warn!("storing module {hash} failed");
                            }
                        }
                        Err(e) => tracing::warn!("fetching module {hash} for the epoch close: {e}"),
                    }
                }
                let loaded = tokio::task::spawn_blocking(move || host.preload(&meta))
                    .await
                    .unwrap_or(false);
                if !loaded {
                    tracing::warn!("module {hash} cannot be loaded yet; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                preparing
                    .lock()
                    .expect("preparing lock poisoned")
                    .remove(&hash);
                let _ = tx.send(Internal::Retry).await;
            });
        }
        false
    }

    /// Asks for [`Internal::Retry`] in a second: for work that waits on something no event will
    /// announce (a module whose run hit the wall-clock backstop may run in time again).
    pub(super) fn retry_later(&self) {
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(Internal::Retry).await;
        });
    }

    /// Applies `block` to `state`; a block that closes an epoch runs modules' `weights`
    /// exports, so it runs as blocking work. Returns the submissions whose committee the block
    /// added this validator to as a replacement for members who did not attest in time.
    pub(super) fn apply(
        &self,
        state: &mut State,
        block: &Block,
    ) -> Result<Vec<SubmissionId>, platform_state::BlockError> {
        let (_, closes) = epoch_change(block);
        let applied = if closes {
            let host = self.host.clone();
            tokio::task::block_in_place(|| state.apply_block(block, &*host))?
        } else {
            state.apply_block(block, &*self.host)?
        };
        let me = self.key.hotkey();
        Ok(applied
            .events
            .into_iter()
            .filter_map(|e| match e {
                platform_state::Event::Replaced {
                    submission, added, ..
                } if added.contains(&me) => Some(submission),
                _ => None,
            })
            .collect())
    }

    /// The transactions that end the epoch on top of `fork`, if the chain has started a new
    /// epoch since it was anchored and every module the close runs is ready.
    pub(super) fn epoch_transactions(&self, fork: &State) -> Option<Vec<Tx>> {
        let link = self.chain.as_ref()?;
        let (chain_block, anchor) = link.watch.latest()?;
        let current = fork.current_epoch();
        if chain_block <= current.chain_block || !self.modules_ready(fork) {
            return None;
        }
        let host = self.host.clone();
        let weights = match tokio::task::block_in_place(|| fork.compute_weights(&*host)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(epoch = current.epoch.0, "cannot close the epoch yet: {e}");
                crate::metrics::events().module_wait("build");
                return None;
            }
        };
        Some(vec![
            Tx::EpochAnchor(EpochAnchor {
                epoch: Epoch(current.epoch.0 + 1),
                chain_block,
                chain_hash: anchor.hash,
                metagraph: anchor.metagraph,
            }),
            Tx::EpochClose(EpochClose {
                epoch: current.epoch,
                weights_digest: weights_digest(&weights),
            }),
        ])
    }

    /// Builds this leader's block for `view` now, or — when the parent's state is not here yet
    /// — keeps the request until it is ([`Driver::retry_build`]); the view's timeout still
    /// bounds the wait.
    pub(super) async fn build_now(
        &mut self,
        view: View,
        parent: Hash,
        height: Height,
    ) -> Result<Vec<Effect<BlsSignature>>> {
        if self.state_after(&parent).is_none() {
            tracing::debug!(
                view = view.0,
                "the parent's state is not here yet; building later"
            );
            self.pending_build = Some((self.generation, view, parent, height));
            return Ok(Vec::new());
        }
        self.pending_build = None;
        Ok(match self.build(view, parent, height).await? {
            Some(payload) => self.engine().handle(Input::ProposalReady { view, payload }),
            None => Vec::new(),
        })
    }

    /// Retries a build that waited for its parent's state, if this engine is still in its view.
    pub(super) async fn retry_build(&mut self) -> Result<Vec<Effect<BlsSignature>>> {
        match self.pending_build {
            Some((g, view, parent, height))
                if g == self.generation && self.consensus.engine.view() == view =>
            {
                if self.state_after(&parent).is_none() {
                    return Ok(Vec::new());
                }
                self.build_now(view, parent, height).await
            }
            Some(_) => {
                self.pending_build = None;
                Ok(Vec::new())
            }
            None => Ok(Vec::new()),
        }
    }

    pub(super) async fn build(
        &mut self,
        view: View,
        parent: Hash,
        height: Height,
    ) -> Result<Option<Hash>> {
        let Some(mut fork) = self.state_after(&parent) else {
            tracing::warn!(view = view.0, "cannot build: the parent's state is unknown");
            return Ok(None);
        };
        if Forks::<State>::builds_seal(&fork, self.epoch()) {
            // The parent closed this epoch (or seals its close): the next block belongs to the
            // next engine, so propose a seal, whose finalization finalizes the close.
            let seal = Proposal {
                epoch: self.epoch(),
                view,
                height,
                parent,
                payload: SEAL,
            };
            self.forks.insert(&seal, fork, Vec::new());
            tracing::info!(height = height.0, "proposed a seal after the epoch's close");
            return Ok(Some(SEAL));
        }
        // A block that ends the epoch carries only the anchor and the close.
        let ends_epoch = self.epoch_transactions(&fork);
        let closing = ends_epoch.is_some();
        let candidates = ends_epoch.unwrap_or_else(|| {
            // Attestations of committees running out of time first, then the mempool.
            let mut txs = self.evaluator.due_attests(&fork, height, MAX_BLOCK_TXS / 4);
            let sudo_next = fork.meta().sudo_nonce.map(|n| n.saturating_add(1));
            txs.extend(
                self.pool
                    .mempool()
                    .candidates(MAX_BLOCK_TXS - txs.len(), sudo_next),
            );
            txs
        });
        let host = self.host.clone();
        let (block, outcomes) = fork.build_block(&self.key, view, now_ms(), candidates, &*host);
        // Transactions the state refuses now (a nonce used meanwhile, a challenge retired)
        // leave the mempool with the reason. Built on a block not yet final, a refusal may
        // come from that block itself (it already carries the transaction): such a
        // transaction stays until its block is final, and is proposed again if that block is
        // abandoned — it leaves only if the finalized state refuses it too.
        let on_fork = parent != self.finalized_digest() || !self.finality.is_empty();
        let mut finalized = on_fork.then(|| self.pool.latest().fork());
        let refused: Vec<Hash> = outcomes
            .iter()
            .filter_map(|(tx, r)| {
                let reason = r.as_ref().err()?;
                if let Some(state) = finalized.as_mut()
                    && state.admit(tx, &platform_state::NoModules).is_ok()
                {
                    return None;
                }
                tracing::info!(kind = tx.kind(), "dropping a pending transaction: {reason}");
                crate::metrics::events().mempool_dropped(tx.kind(), reject_code(reason));
                Some(tx.hash())
            })
            .collect();
        if closing && !refused.is_empty() {
            return Err(anyhow!("our own epoch close was refused: {outcomes:?}"));
        }
        self.pool.mempool().remove(refused);
        if block.header.height != height {
            return Err(anyhow!(
                "consensus asked for height {} but the state is at {}",
                height.0,
                block.header.height.0
            ));
        }
        let added = self
            .apply(&mut fork, &block)
            .map_err(|e| anyhow!("our own block does not apply: {e:?}"))?;
        let header = block.header.hash();
        let proposal = Proposal {
            epoch: self.epoch(),
            view,
            height,
            parent,
            payload: header,
        };
        self.forks.insert(&proposal, fork, added);
        let blob = self.net.store_blob(encode(&block)).await?;
        remember_unfinalized(self.dir.clone(), height.0, header, blob);
        self.blocks.insert(header, block);
        if let Err(e) = self
            .net
            .publish(
                Topic::Announce,
                height.0,
                encode(&Announcement {
                    epoch: self.epoch(),
                    view,
                    header,
                    blob,
                }),
            )
            .await
        {
            tracing::warn!("announcing block {header}: {e}");
        }
        if closing {
            tracing::info!(height = height.0, "proposed the epoch's close");
        }
        Ok(Some(header))
    }

    /// Checks a proposal's block against the state after its parent. `None`: cannot tell yet.
    pub(super) fn verify(&mut self, p: &Proposal) -> Option<bool> {
        if p.is_seal() {
            // Valid exactly after a close or another seal: when the state after the parent
            // is already in the next epoch.
            let fork = self.state_after(&p.parent)?;
            return Some(self.forks.check_seal(p, fork, Vec::new()));
        }
        let block = self.blocks.get(&p.payload)?;
        let mut fork = self.state_after(&p.parent)?;
        let leader = self.consensus.validators[self.consensus.engine.leader(p.view) as usize];
        if block.header.height != p.height
            || block.header.view != p.view
            || block.header.proposer != leader
            || fork.meta().epoch != p.epoch
        {
            return Some(false);
        }
        if !timestamp_acceptable(block.header.timestamp_ms, now_ms()) {
            tracing::warn!(
                height = p.height.0,
                ahead_ms = block.header.timestamp_ms.saturating_sub(now_ms()),
                "refusing a proposal stamped too far ahead of this validator's clock"
            );
            return Some(false);
        }
        let (anchor, closes) = epoch_change(block);
        if let Some(a) = anchor {
            // An anchor must match what our own chain client says about that block.
            let Some(link) = &self.chain else {
                tracing::warn!("refusing an epoch anchor: this node has no chain configured");
                return Some(false);
            };
            match link.watch.check(a) {
                None => return None,
                Some(false) => {
                    tracing::warn!(
                        chain_block = a.chain_block,
                        "refusing an epoch anchor the chain does not confirm"
                    );
                    return Some(false);
                }
                Some(true) => {}
            }
        }
        if closes && !self.modules_ready(&fork) {
            return None;
        }
        match self.apply(&mut fork, block) {
            Ok(added) => {
                self.forks.insert(p, fork, added);
                Some(true)
            }
            Err(BlockError::ModuleUnavailable { challenge, module }) => {
                // Not a verdict on the block: this validator cannot tell yet.
                tracing::warn!(
                    height = p.height.0,
                    %challenge,
                    %module,
                    "cannot check the epoch close yet: its module did not run here; will retry"
                );
                crate::metrics::events().module_wait("verify");
                self.retry_later();
                None
            }
            Err(e) => {
                tracing::warn!(height = p.height.0, "refusing proposal: {e:?}");
                Some(false)
            }
        }
    }

    pub(super) fn retry_waiting(&mut self) -> Vec<Effect<BlsSignature>> {
        let mut effects = Vec::new();
        for p in self.forks.retry(self.epoch()) {
            match self.verify(&p) {
                Some(valid) => effects.extend(self.engine().handle(Input::Verified {
                    digest: p.digest(),
                    valid,
                })),
                None => self.forks.wait(p),
            }
        }
        effects
    }
}

/// The state's code for a refusal (`nonce_replayed`, …): its serialized `reason` tag.
fn reject_code(r: &platform_state::Reject) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
