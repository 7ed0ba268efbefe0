//! Finalization: applying finalized blocks in order, persisting them, collecting what is
//! no longer needed, taking snapshots, and switching to the next epoch's engine.

use super::*;

impl Driver {
    /// Applies finalized blocks in order while their blocks are at hand; stops after a block
    /// that closes the epoch (the next engine takes over from there).
    pub(super) async fn apply_finalized(&mut self) -> Result<()> {
        loop {
            if self.pool.state().meta().epoch != self.epoch() {
                break;
            }
            // The finality queue says what is next: only a block whose body is here, right
            // after the tip, and nothing after an epoch's close until the next engine runs.
            let Next::Apply(next) = self.finality.next(|p| self.blocks.contains_key(p)) else {
                break;
            };
            let Finalized {
                proposal,
                certificate,
                seals,
            } = next.clone();
            let block = self.blocks[&proposal.payload].clone();
            let digest = proposal.digest();
            let fork = self.forks.take(&digest);
            if fork.is_none() && epoch_change(&block).1 {
                let ready = {
                    let state = self.pool.state();
                    self.modules_ready(&state)
                };
                if !ready {
                    break;
                }
            }
            let (block_hash, root, added, entries, pruned) = {
                let mut canonical = self.pool.state();
                let added = match fork {
                    Some(Fork {
                        state,
                        extra: added,
                        ..
                    }) => {
                        *canonical = state;
                        added
                    }
                    None => match self.apply(&mut canonical, &block) {
                        Ok(added) => added,
                        Err(BlockError::ModuleUnavailable { challenge, module }) => {
                            // The state rolled back; the block stays first in line.
                            tracing::warn!(
                                height = proposal.height.0,
                                %challenge,
                                %module,
                                "cannot apply the finalized epoch close yet: its module did \
                                 not run here; will retry"
                            );
                            drop(canonical);
                            crate::metrics::events().module_wait("apply");
                            self.retry_later();
                            break;
                        }
                        Err(e) => {
                            return Err(anyhow!(
                                "finalized block {} does not apply: {e:?}",
                                proposal.height.0
                            ));
                        }
                    },
                };
                self.finality.applied(epoch_change(&block).1);
                self.evaluator.record_inputs(&canonical, &block);
                let entries = canonical.entry_count() as u64;
                let pruned = canonical.meta().pruned;
                (
                    canonical.last_block(),
                    canonical.root(),
                    added,
                    entries,
                    pruned,
                )
            };
            self.pool.publish();
            self.pool
                .mempool()
                .remove(block.txs.iter().map(|t| t.hash()));
            let ordered = block.txs.iter().filter_map(|tx| match tx {
                Tx::Submit(t) => Some(t.submission.id()),
                _ => None,
            });
            // New submissions, and those this validator was drawn to as a replacement.
            for id in ordered.chain(added) {
                self.evaluator.ordered(id);
            }
            if block.txs.iter().any(|t| matches!(t, Tx::Certify(_))) {
                self.evaluator.prune();
            }
            self.evaluator.confirm_assets();
            debug_assert_eq!(self.finalized_digest(), digest);
            let now = self.clock_ms();
            self.block_asks.applied(now);
            let height = self.finalized_height();
            self.forks.finalized(height);
            self.blocks.retain(|_, b| b.header.height.0 > height);
            let latency = now_ms().saturating_sub(block.header.timestamp_ms);
            if self.latencies.len() == 1000 {
                self.latencies.pop_front();
            }
            self.latencies.push_back(latency);
            crate::metrics::events()
                .finalization
                .observe(latency as f64 / 1000.0);
            let mut sorted: Vec<u64> = self.latencies.iter().copied().collect();
            sorted.sort_unstable();
            let pct = |p: usize| sorted[(sorted.len() * p / 100).min(sorted.len() - 1)];
            let (p50, p99) = (pct(50), pct(99));
            let closes = epoch_change(&block).1;
            if !seals.is_empty() {
                tracing::info!(
                    height = proposal.height.0,
                    seals = seals.len(),
                    "the epoch's close was finalized through seals"
                );
            }
            self.collect_snapshot(&proposal, &block.header, &certificate, closes);
            let record = FinalizedBlock {
                proposal,
                block,
                certificate,
                seals,
            };
            let dir = self.dir.clone();
            let held = crate::collect::rows_for(
                height,
                record.proposal.epoch.0,
                Hash::of(&encode(&record.block)),
                &record.block,
            );
            tokio::task::spawn_blocking(move || store::save_finalized(dir.db(), &record, &held))
                .await??;
            if height.is_multiple_of(crate::collect::EVERY_HEIGHTS) {
                self.collect_blobs(height);
            }
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
            s.state_entries = entries;
            s.state_pruned = pruned;
            s.finalized_since_start += 1;
            s.consensus_signature_checks = self.vote_checks.load(Ordering::Relaxed);
            (s.evaluations, s.evaluation_ms) = self.evaluator.evaluations();
            s.finalization_ms_p50 = p50;
            s.finalization_ms_p99 = p99;
            drop(s);
            tracing::info!(height, latency_ms = latency, "finalized");
            if closes {
                break;
            }
        }
        Ok(())
    }

    /// Deletes the blobs that are no longer needed ([`crate::collect`]) on a blocking thread,
    /// then withdraws the payloads' DHT announcements. One collection at a time.
    pub(super) fn collect_blobs(&self, height: u64) {
        use std::sync::atomic::Ordering;
        if self.collecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (dir, pool, net) = (self.dir.clone(), self.pool.clone(), self.net.clone());
        let (retention, collecting, status) =
            (self.retention, self.collecting.clone(), self.status.clone());
        tokio::spawn(async move {
            let done = tokio::task::spawn_blocking(move || {
                // The database is read before the state is locked: the lock is held only to
                // look up the submissions' statuses.
                let rows = crate::collect::held(dir.db())?;
                let pending = pool.mempool().pending_submissions();
                let due = {
                    let state = pool.latest();
                    let epoch = state.meta().epoch.0;
                    crate::collect::due(rows, &state, &pending, height, epoch, retention)
                };
                let deleted = crate::collect::collect(&dir, &due)?;
                Ok::<_, anyhow::Error>((due.payloads, deleted))
            })
            .await;
            match done {
                Ok(Ok((payloads, deleted))) => {
                    status.lock().expect("status lock poisoned").blobs_collected += deleted as u64;
                    for hash in payloads {
                        if net.unprovide(hash).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(height, "collecting blobs: {e:#}"),
                Err(e) => tracing::warn!(height, "collecting blobs: {e}"),
            }
            collecting.store(false, Ordering::Release);
        });
    }

    /// Snapshots: the state after an epoch's close waits for a certified block after it (whose
    /// header commits to the state's root), then is encoded and stored on a blocking thread.
    pub(super) fn collect_snapshot(
        &mut self,
        proposal: &Proposal,
        header: &BlockHeader,
        certificate: &Certificate<BlsSignature>,
        closes: bool,
    ) {
        if closes {
            let state = self.pool.state().fork();
            self.pending_snapshot = Some(snapshots::Pending::new(*proposal, state));
            return;
        }
        let Some(pending) = self.pending_snapshot.as_mut() else {
            return;
        };
        match pending.add(*proposal, header.clone(), certificate) {
            Some((mut state, proof)) => {
                self.pending_snapshot = None;
                let (dir, status) = (self.dir.clone(), self.status.clone());
                let retention = self.retention;
                tokio::task::spawn_blocking(move || {
                    let height = proof.anchor.height.0;
                    let bytes = snapshots::encode_snapshot(&mut state, &proof);
                    match snapshots::save(&dir, &bytes, proof, &retention) {
                        Ok(saved) => {
                            let mut s = status.lock().expect("status lock poisoned");
                            s.snapshot_height = Some(height);
                            s.blocks_pruned += saved.blocks_pruned as u64;
                            drop(s);
                            tracing::info!(
                                height,
                                bytes = bytes.len(),
                                blob = %saved.blob,
                                blocks_pruned = saved.blocks_pruned,
                                "snapshot stored"
                            )
                        }
                        Err(e) => tracing::warn!(height, "storing a snapshot: {e}"),
                    }
                });
            }
            None if pending.abandoned() => {
                tracing::warn!("no certificate for the blocks after the close: no snapshot");
                self.pending_snapshot = None;
            }
            None => {}
        }
    }

    /// Queues the newest closed epoch's weights for the chain.
    pub(super) fn submit_latest_weights(&self) {
        let Some(link) = &self.chain else {
            return;
        };
        let state = self.pool.state();
        let current = state.meta().epoch;
        let Some(closed) = current.0.checked_sub(1).map(Epoch) else {
            return;
        };
        if let Some(weights) = state.epoch(closed).and_then(|r| r.weights) {
            link.submitter.submit(closed, weights);
        }
    }

    /// After the block that closes an epoch is final: the next epoch's engine, anchored on
    /// that block, with the next validator set; the closed epoch's weights go to the chain.
    pub(super) async fn switch_epoch_if_closed(&mut self) -> Result<Vec<Effect<BlsSignature>>> {
        let (epoch, record) = {
            let state = self.pool.state();
            (state.meta().epoch, state.current_epoch())
        };
        if epoch == self.epoch() {
            return Ok(Vec::new());
        }
        let previous = self.epoch();
        self.consensus = {
            let state = self.pool.state();
            epoch_engine(
                &self.key,
                &state,
                (
                    self.finalized_digest(),
                    Height(self.finalized_height()),
                    self.finality.tip().view,
                ),
                self.view_timeout,
                self.vote_checks.clone(),
            )?
        };
        self.generation += 1;
        self.forks.clear();
        self.finality.switched();
        tracing::info!(
            closed = previous.0,
            epoch = epoch.0,
            chain_block = record.chain_block,
            validators = self.consensus.validators.len(),
            "entered a new epoch"
        );
        self.submit_latest_weights();
        self.bind_keys_if_needed();
        // The ended epoch's certificates are journaled at views up to the new anchor's; the new
        // engine starts above it and never reads them.
        let (dir, through) = (self.dir.clone(), self.finality.tip().view.0);
        match tokio::task::spawn_blocking(move || store::prune_certificates(dir.db(), through))
            .await?
        {
            Ok(n) => tracing::debug!(pruned = n, "pruned the ended epoch's certificates"),
            Err(e) => tracing::warn!("pruning the ended epoch's certificates: {e}"),
        }
        self.net.set_membership(self.membership()).await?;
        {
            let mut s = self.status.lock().expect("status lock poisoned");
            s.epoch = epoch.0;
            s.epoch_chain_block = record.chain_block;
            s.validator = self.consensus.me.is_some();
        }
        let mut effects = self.start_engine().await?;
        for (author, message) in std::mem::take(&mut self.early) {
            if message.epoch() != Some(epoch) {
                continue;
            }
            if let Some(from) = self.consensus.validators.iter().position(|h| *h == author) {
                effects.extend(self.engine().handle(Input::Message {
                    from: from as ValidatorIndex,
                    message,
                }));
            }
        }
        Ok(effects)
    }
}
