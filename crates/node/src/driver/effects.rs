//! Performing the engine's effects: persist before voting, broadcast, build and verify
//! requests, finalizations, timers, penalties and evidence.

use super::*;

impl Driver {
    pub(super) async fn perform(&mut self, effects: Vec<Effect<BlsSignature>>) -> Result<()> {
        let mut queue: VecDeque<Effect<BlsSignature>> = effects.into();
        loop {
            while let Some(effect) = queue.pop_front() {
                self.perform_one(effect, &mut queue).await?;
            }
            // An epoch closed: the next engine starts, and blocks it finalizes may follow.
            let next = self.switch_epoch_if_closed().await?;
            if next.is_empty() {
                return Ok(());
            }
            queue.extend(next);
            self.apply_finalized().await?;
        }
    }

    /// The gossip round a consensus message belongs to: its view, or the current one.
    fn round_of(&self, message: &Message<BlsSignature>) -> u64 {
        message
            .view()
            .map_or(self.consensus.engine.view().0, |v| v.0)
    }

    pub(super) async fn perform_one(
        &mut self,
        effect: Effect<BlsSignature>,
        queue: &mut VecDeque<Effect<BlsSignature>>,
    ) -> Result<()> {
        let generation = self.generation;
        match effect {
            // Only consensus members publish: peers refuse (and penalize) consensus gossip
            // from anyone else.
            Effect::Broadcast(_) | Effect::Send { .. } if self.consensus.me.is_none() => {}
            // Asks for missing certificates go point-to-point (`view_sync`), never on gossip.
            Effect::Broadcast(message @ (Message::Fetch(_) | Message::FetchView(_))) => {
                self.ask_certificates(&message, None)
            }
            Effect::Send {
                to,
                message: message @ (Message::Fetch(_) | Message::FetchView(_)),
            } => self.ask_certificates(&message, Some(to)),
            // The engine's answers to a gossiped ask: asks are refused on gossip, and peers'
            // asks are answered from the certificate book by the network.
            Effect::Send {
                message: Message::Certificate(_),
                ..
            } => {}
            // A vote for one validator (a finalize vote to its view's collectors) goes to
            // that validator only; gossiped when it is not connected here.
            Effect::Send {
                to,
                message: message @ Message::Vote(_),
            } => {
                let round = self.round_of(&message);
                let payload = encode(&message);
                let direct = match self.consensus.validators.get(to as usize) {
                    Some(hotkey) => self.net.send_direct(*hotkey, round, payload.clone()).await,
                    None => Err(platform_network::NetError::NoPeers),
                };
                if direct.is_err()
                    && let Err(e) = self.net.publish(Topic::Consensus, round, payload).await
                {
                    tracing::debug!("vote to validator {to}: {e}");
                }
            }
            Effect::Broadcast(message) => {
                let round = self.round_of(&message);
                if let Err(e) = self
                    .net
                    .publish(Topic::Consensus, round, encode(&message))
                    .await
                {
                    tracing::debug!("broadcast: {e}");
                }
            }
            Effect::Persist { state, token } => {
                if self.times_out_after(&state) {
                    self.close_timeout = Some((token, state.view));
                }
                // One writer, in order; the vote leaves once `on_persisted` hears back.
                self.wal
                    .persist(generation, token, state)
                    .await
                    .map_err(|e| anyhow!(e))?;
            }
            Effect::Timeout { view, after_ms } => {
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    let _ = tx.send(Internal::Timeout(generation, view)).await;
                });
            }
            Effect::Propose {
                view,
                parent,
                height,
            } => {
                let wait = self.block_interval.saturating_sub(self.since_applied());
                let tx = self.internal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = tx
                        .send(Internal::Build {
                            generation,
                            view,
                            parent,
                            height,
                        })
                        .await;
                });
            }
            Effect::Verify(p) => match self.verify(&p) {
                Some(valid) => {
                    tracing::debug!(
                        view = p.view.0,
                        height = p.height.0,
                        seal = p.is_seal(),
                        valid,
                        "verified a proposal"
                    );
                    queue.extend(self.engine().handle(Input::Verified {
                        digest: p.digest(),
                        valid,
                    }));
                    // Our own build may have waited for this state.
                    queue.extend(self.retry_build().await?);
                }
                None => self.forks.wait(p),
            },
            Effect::Finalized {
                proposal,
                certificate,
            } => {
                // Seals are never applied. Those finalized with an epoch's close follow it in
                // this batch and are kept with it: they link it to the certificate.
                if proposal.is_seal() {
                    return Ok(());
                }
                let mut seals = Vec::new();
                while let Some(Effect::Finalized { proposal: seal, .. }) = queue.front()
                    && seal.is_seal()
                {
                    seals.push(*seal);
                    queue.pop_front();
                }
                self.finality.finalized(Finalized {
                    proposal,
                    certificate,
                    seals,
                });
                self.apply_finalized().await?;
                queue.extend(self.retry_waiting());
                queue.extend(self.retry_build().await?);
                self.sync_missing();
            }
            Effect::EnteredView(v) => {
                let index = self.consensus.engine.leader(v);
                let leader = self.consensus.validators[index as usize];
                tracing::debug!(epoch = self.epoch().0, view = v.0, %leader, "entered view");
                self.net.set_round(Topic::Consensus, v.0).await?;
                // A leader silent for two view timeouts while the others talk is unreachable
                // or down: nullify its view at once rather than wait the timeout out.
                if self.consensus.me.is_some_and(|me| me != index)
                    && self.heard.singled_out(
                        &leader,
                        &self.key.hotkey(),
                        &self.consensus.validators,
                        (2 * self.view_timeout, self.view_timeout),
                        Instant::now(),
                    )
                {
                    tracing::debug!(view = v.0, %leader, "the leader is silent; nullifying at once");
                    self.status
                        .lock()
                        .expect("status lock poisoned")
                        .leader_views_skipped += 1;
                    queue.extend(self.engine().handle(Input::Timeout(v)));
                }
            }
            Effect::Certified(c) => {
                self.certificates
                    .record(&c, || encode(&Message::Certificate(c.clone())));
                // A notarized block whose state is not here must be verified again.
                if self.forks.certified(&c, Height(self.finalized_height())) {
                    self.fetch_missing_bodies();
                    queue.extend(self.retry_waiting());
                }
                let kind = match c.kind {
                    platform_consensus::VoteKind::Notarize => "notarize",
                    platform_consensus::VoteKind::Nullify => "nullify",
                    platform_consensus::VoteKind::Finalize => "finalize",
                };
                crate::metrics::events()
                    .certificates
                    .get_or_create(&vec![("kind", kind.to_string())])
                    .inc();
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store::journal_certificate(dir.db(), &c) {
                        tracing::warn!("journaling a certificate: {e}");
                    }
                });
            }
            Effect::Penalize { peer, offence } => {
                let validator = self.consensus.validators[peer as usize];
                tracing::warn!(%validator, "consensus offence: {offence:?}");
                let reason = match offence {
                    Offence::BadSignature => "bad_signature",
                    Offence::NotAValidator => "not_validator",
                    Offence::InvalidCertificate => "invalid_certificate",
                    Offence::InvalidProposal => "invalid_proposal",
                    Offence::Equivocation => "equivocation",
                };
                if let Err(e) = self
                    .net
                    .report_validator(validator, "consensus", reason)
                    .await
                {
                    tracing::debug!("reporting {validator}: {e}");
                }
            }
            Effect::Evidence { first, second } => {
                crate::metrics::events().equivocations.inc();
                // Proof of equivocation goes on the replicated log, where the state checks
                // both signatures again and jails the validator.
                let validator = self.consensus.validators[first.signer as usize];
                let evaluator = self.evaluator.clone();
                let round = self.finalized_height();
                tokio::task::spawn_blocking(move || {
                    if evaluator.report(Evidence::Equivocation { first, second }, round) {
                        tracing::warn!(%validator, "equivocation observed; evidence submitted");
                    }
                });
            }
        }
        Ok(())
    }
}
