//! One simulated validator's work: starting and restarting from what it stored, its
//! engine's effects, block bodies, the finality queue's steps, epoch switches and catch-up.

use super::*;

use platform_network::ingress::CONSENSUS_ROUNDS_AHEAD;

/// How many views behind this node's a consensus message may be (the node's ingress).
const ROUNDS_BACK: u64 = 64;

impl Sim<'_> {
    /// Starts (or restarts) node `a` from what it stored.
    pub(super) fn start(&mut self, a: usize) {
        let now = self.queue.now;
        let node = &mut self.nodes[a];
        node.applied_at = now;
        node.queue = FinalityQueue::new(node.durable.tip);
        node.bodies = node
            .durable
            .applied
            .values()
            .map(|(b, _)| (b.payload(), b.clone()))
            .chain(node.durable.bodies.clone())
            .collect();
        node.unverified.clear();
        node.early.clear();
        node.asked_at = None;
        self.new_engine(a);
    }

    /// The engine of the node's stored epoch, anchored on its last applied block, restarted
    /// from its WAL record and journal.
    fn new_engine(&mut self, a: usize) {
        let epoch = self.nodes[a].durable.epoch;
        let tip = self.nodes[a].durable.tip;
        let cfg = Config {
            netuid: NETUID,
            epoch,
            validators: Validators::new(vec![100; self.scenario.validators]),
            beacon: Hash::of(&encode(&(self.genesis.digest, epoch.0))).0,
            anchor: tip.digest,
            anchor_height: tip.height,
            anchor_view: tip.view,
            me: Some(a as ValidatorIndex),
            timeout_ms: self.scenario.timeout_ms,
            max_backoff_exp: 4,
            future_views: 64,
            collectors: 0,
        };
        let node = &mut self.nodes[a];
        node.engine = Some(Engine::new(
            cfg,
            self.keys.scheme(Some(a as ValidatorIndex)),
        ));
        node.generation += 1;
        let safety = node.durable.wal;
        let certificates = node.durable.journal.clone();
        self.feed(
            a,
            Input::Start {
                safety,
                certificates,
            },
        );
    }

    pub(super) fn crash(&mut self, a: usize) {
        if self.nodes[a].engine.take().is_some() {
            self.nodes[a].lives += 1;
            self.out.crashes += 1;
            self.note(a, 3, 0);
        }
    }

    /// The height at which epoch `epoch` closes.
    fn close_height(&self, epoch: Epoch) -> u64 {
        (epoch.0 + 1) * self.scenario.epoch_blocks
    }

    pub(super) fn deliver(&mut self, to: usize, from: usize, wire: &Wire) {
        match wire {
            Wire::Consensus(epoch, message) => {
                let mine = self.nodes[to].durable.epoch;
                if *epoch > mine {
                    self.note(to, 4, epoch.0);
                    let early = &mut self.nodes[to].early;
                    if early.len() < EARLY_LIMIT {
                        early.push_back((*epoch, from as ValidatorIndex, message.clone()));
                    }
                    if self.scenario.catch_up {
                        self.ask(to, Some(from), true);
                    }
                } else if *epoch == mine {
                    // The network's round window for consensus gossip, around this engine's
                    // view (as the node's ingress checks it).
                    let view = self.nodes[to].engine.as_ref().map_or(0, |e| e.view().0);
                    let round = message.view().map_or(view, |v| v.0);
                    if round > view + CONSENSUS_ROUNDS_AHEAD || round + ROUNDS_BACK < view {
                        return;
                    }
                    self.note(to, 5, round);
                    self.feed(
                        to,
                        Input::Message {
                            from: from as ValidatorIndex,
                            message: message.clone(),
                        },
                    );
                }
            }
            Wire::Body(body) => {
                self.note(to, 6, body.height);
                self.keep_body(to, body);
                self.verify_waiting(to);
            }
            Wire::Sync { from: height } => {
                let node = &self.nodes[to];
                let blocks: Vec<(Body, Finalized<Sig>)> = node
                    .durable
                    .applied
                    .range(*height..height + SYNC_BATCH)
                    .map(|(_, r)| r.clone())
                    .collect();
                if !blocks.is_empty() {
                    self.send(to, Some(from), Wire::Synced(blocks));
                }
            }
            Wire::Synced(blocks) => self.apply_synced(to, blocks),
        }
    }

    /// A peer's finalized blocks: each is taken when its body matches its proposal and its
    /// certificate is a valid finalization of it (directly, through a later block of the
    /// batch, or through seals after a close), in this node's current epoch. The first that
    /// fails ends the batch.
    fn apply_synced(&mut self, a: usize, blocks: &[(Body, Finalized<Sig>)]) {
        let batch: Vec<(&Proposal, &[Proposal])> = blocks
            .iter()
            .map(|(_, f)| (&f.proposal, &f.seals[..]))
            .collect();
        for (i, (body, f)) in blocks.iter().enumerate() {
            let tip = self.nodes[a].queue.tip();
            if f.proposal.height.0 <= tip.height.0 {
                continue;
            }
            let Some(engine) = self.nodes[a].engine.as_ref() else {
                return;
            };
            let linked = match &f.certificate.subject {
                Subject::Proposal(head) => {
                    f.certificate.kind == VoteKind::Finalize && proven_final(&batch, i, head)
                }
                Subject::View(..) => false,
            };
            let valid = f.proposal.height.0 == tip.height.0 + 1
                && f.proposal.parent == tip.digest
                && f.proposal.payload == body.payload()
                && f.proposal.epoch == engine.config().epoch
                && linked
                && certificate_is_valid(
                    NETUID,
                    &engine.config().validators,
                    &self.keys.scheme(None),
                    &f.certificate,
                );
            if !valid {
                return;
            }
            self.note(a, 7, f.proposal.height.0);
            self.nodes[a].bodies.insert(body.payload(), body.clone());
            self.nodes[a].queue.finalized(f.clone());
            self.advance(a);
        }
    }

    /// Asks a peer (`to`, or a random one) for finalized blocks after the tip, at most once
    /// per [`ASK_AGAIN_MS`].
    fn ask(&mut self, a: usize, to: Option<usize>, catching_up: bool) {
        let now = self.queue.now;
        if self.nodes[a]
            .asked_at
            .is_some_and(|t| now < t + ASK_AGAIN_MS)
        {
            return;
        }
        self.nodes[a].asked_at = Some(now);
        if catching_up {
            self.out.catch_ups += 1;
        } else {
            self.out.body_fetches += 1;
        }
        let n = self.scenario.validators as u64;
        let peer = to.unwrap_or_else(|| {
            let mut p = self.rng.below(n - 1) as usize;
            if p >= a {
                p += 1;
            }
            p
        });
        let from = self.nodes[a].queue.tip().height.0 + 1;
        self.send(a, Some(peer), Wire::Sync { from });
    }

    /// Carries out the finality queue's steps until it has none.
    pub(super) fn advance(&mut self, a: usize) {
        loop {
            if self.nodes[a].engine.is_none() {
                return;
            }
            let node = &self.nodes[a];
            let step = match node.queue.next(|p| node.bodies.contains_key(p)) {
                Next::Idle => {
                    // Nothing applied for three view timeouts: peers may hold finalized
                    // blocks this validator's engine has not heard of (as the node asks).
                    let idle = self.queue.now.saturating_sub(node.applied_at);
                    if self.scenario.catch_up && idle > 3 * self.scenario.timeout_ms {
                        self.ask(a, None, true);
                    }
                    return;
                }
                Next::Fetch { .. } => None,
                Next::Apply(f) => Some(Some((node.bodies[&f.proposal.payload].clone(), f.clone()))),
                Next::SwitchEpoch => Some(None),
            };
            match step {
                None => {
                    self.ask(a, None, false);
                    return;
                }
                Some(Some((body, f))) => self.apply(a, body, f),
                Some(None) => self.switch_epoch(a),
            }
        }
    }

    fn apply(&mut self, a: usize, body: Body, f: Finalized<Sig>) {
        self.nodes[a].applied_at = self.queue.now;
        let height = f.proposal.height.0;
        let tip = self.nodes[a].queue.tip();
        if f.proposal.parent != tip.digest || body.height != height {
            self.violation(format!(
                "node {a} was handed height {height}, which does not extend its tip at {}",
                tip.height.0
            ));
            return;
        }
        let digest = f.proposal.digest();
        match self.canonical.get(&height) {
            Some(d) if *d != digest => {
                let d = *d;
                self.violation(format!(
                    "node {a} applied {digest} at height {height}, another node {d}"
                ));
                return;
            }
            Some(_) => {}
            None => {
                self.canonical.insert(height, digest);
            }
        }
        self.note(a, 8, height);
        let late = self.scenario.validators - 1;
        if self.scenario.late_ms > 0 && f.certificate.signers.members().any(|i| i == late) {
            self.out.late_signed += 1;
        }
        let node = &mut self.nodes[a];
        node.queue.applied(body.closes);
        node.durable.tip = node.queue.tip();
        node.durable
            .journal
            .retain(|c| c.subject.view() > f.proposal.view);
        node.durable.bodies.retain(|_, b| b.height > height);
        node.durable.applied.insert(height, (body, f));
    }

    /// The close was applied: the next epoch's engine, anchored on it.
    fn switch_epoch(&mut self, a: usize) {
        let tip = self.nodes[a].queue.tip();
        let epoch = self.nodes[a].durable.epoch;
        let next = Epoch(epoch.0 + 1);
        let expected = self.close_height(epoch);
        if tip.height.0 != expected {
            self.violation(format!(
                "node {a} entered epoch {} after height {}, not after the close at {expected}",
                next.0, tip.height.0
            ));
            return;
        }
        self.note(a, 9, next.0);
        let node = &mut self.nodes[a];
        node.durable.epoch = next;
        node.durable.wal = SafetyState::default();
        node.durable.journal.clear();
        node.queue.switched();
        node.unverified.clear();
        self.new_engine(a);
        // Messages of this epoch go to its engine; those of later ones wait on.
        let early = std::mem::take(&mut self.nodes[a].early);
        for (epoch, from, message) in early {
            if epoch == next {
                self.feed(a, Input::Message { from, message });
            } else if epoch > next {
                self.nodes[a].early.push_back((epoch, from, message));
            }
        }
    }

    /// A body received or built: in memory, and stored when bodies are durable.
    fn keep_body(&mut self, a: usize, body: &Body) {
        let node = &mut self.nodes[a];
        node.bodies.insert(body.payload(), body.clone());
        if self.scenario.durable_bodies && body.height > node.durable.tip.height.0 {
            node.durable.bodies.insert(body.payload(), body.clone());
        }
    }

    /// Checks the proposals that waited for their body.
    fn verify_waiting(&mut self, a: usize) {
        let waiting = std::mem::take(&mut self.nodes[a].unverified);
        for p in waiting {
            self.verify(a, p);
        }
    }

    /// A proposal is valid when its body is here and matches it; a seal exactly when it
    /// follows the epoch's close.
    fn verify(&mut self, a: usize, p: Proposal) {
        let close = self.close_height(p.epoch);
        let valid = if p.is_seal() {
            p.height.0 > close
        } else {
            let Some(body) = self.nodes[a].bodies.get(&p.payload) else {
                self.nodes[a].unverified.push(p);
                return;
            };
            p.height.0 <= close
                && body.height == p.height.0
                && body.parent == p.parent
                && body.closes == (p.height.0 == close)
        };
        self.feed(
            a,
            Input::Verified {
                digest: p.digest(),
                valid,
            },
        );
    }

    /// Queues a WAL write: with [`NodeScenario::wal_in_order`] it lands after every write
    /// queued before it, as the node's one writer does; without, each lands on its own time.
    fn queue_write(&mut self, a: usize, token: u64, state: SafetyState) {
        let now = self.queue.now;
        let took = self.rng.range(1, 10);
        let lands = if self.scenario.wal_in_order {
            let at = self.nodes[a].wal_free_at.max(now) + took;
            self.nodes[a].wal_free_at = at;
            at
        } else {
            now + took
        };
        let node = &self.nodes[a];
        let event = Event::Written {
            node: a,
            lives: node.lives,
            generation: node.generation,
            token,
            state: Box::new(state),
        };
        self.queue.push(lands - now, event);
    }

    /// A WAL write landed: the record is durable and, if the engine that asked is still
    /// running, its votes up to `token` may leave. Sometimes the process dies right here,
    /// durable but not acknowledged.
    pub(super) fn written(
        &mut self,
        a: usize,
        lives: u64,
        generation: u64,
        token: u64,
        state: SafetyState,
    ) {
        if self.nodes[a].lives != lives {
            return;
        }
        let backwards = !crate::wal::advances(&self.nodes[a].durable.wal, &state);
        if backwards && self.scenario.wal_in_order {
            self.violation(format!(
                "node {a}'s WAL writer was handed a record behind the stored one (token {token})"
            ));
            return;
        }
        if backwards {
            self.out.wal_regressions += 1;
        }
        self.nodes[a].durable.wal = state;
        self.note(a, 10, token);
        if self.nodes[a].generation != generation || self.nodes[a].engine.is_none() {
            return;
        }
        // Crashes come at random landings, and always at one that moved the record back (only
        // unordered writes can): the worst moment, a vote out but no longer on record.
        if self.persist_crashes_left > 0 && (backwards || self.rng.chance(3)) {
            self.persist_crashes_left -= 1;
            self.crash(a);
            let down = self.rng.range(200, 3_000);
            self.queue.push(down, Event::Start(a));
            self.stable_after = self.stable_after.max(self.queue.now + down);
            return;
        }
        self.feed(a, Input::Persisted(token));
        self.advance(a);
    }

    /// Feeds an input to node `a`'s engine and performs the effects.
    pub(super) fn feed(&mut self, a: usize, input: Input<Sig>) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let Some(engine) = self.nodes[a].engine.as_mut() else {
                return;
            };
            let epoch = engine.config().epoch;
            let effects = engine.handle(input);
            let mut effects = VecDeque::from(effects);
            while let Some(effect) = effects.pop_front() {
                match effect {
                    Effect::Broadcast(message) => {
                        self.send(a, None, Wire::Consensus(epoch, message))
                    }
                    Effect::Send { to, message } => {
                        self.send(a, Some(to as usize), Wire::Consensus(epoch, message))
                    }
                    Effect::Persist { state, token } => self.queue_write(a, token, state),
                    Effect::Timeout { view, after_ms } => {
                        let generation = self.nodes[a].generation;
                        self.queue.push(
                            after_ms,
                            Event::Timer {
                                node: a,
                                generation,
                                view,
                            },
                        );
                    }
                    Effect::Propose {
                        view,
                        parent,
                        height,
                    } => {
                        let close = self.close_height(epoch);
                        let payload = if height.0 > close {
                            SEAL
                        } else {
                            let body = Body {
                                height: height.0,
                                parent,
                                view: view.0,
                                closes: height.0 == close,
                            };
                            let payload = body.payload();
                            self.keep_body(a, &body);
                            self.send(a, None, Wire::Body(body));
                            payload
                        };
                        inputs.push_back(Input::ProposalReady { view, payload });
                    }
                    Effect::Verify(p) => self.verify(a, p),
                    Effect::Finalized {
                        proposal,
                        certificate,
                    } => {
                        // Seals finalized with a close follow it and are kept with it.
                        let mut seals = Vec::new();
                        while let Some(Effect::Finalized { proposal: seal, .. }) = effects.front()
                            && seal.is_seal()
                        {
                            seals.push(*seal);
                            effects.pop_front();
                        }
                        self.nodes[a].queue.finalized(Finalized {
                            proposal,
                            certificate,
                            seals,
                        });
                    }
                    Effect::Certified(c) => self.nodes[a].durable.journal.push(c),
                    Effect::Evidence { first, .. } => {
                        // Every simulated validator is honest: one caught signing two
                        // conflicting votes signed what its WAL should have prevented.
                        self.violation(format!(
                            "node {a} holds evidence that validator {} equivocated in view {}",
                            first.signer,
                            first.subject.view().0
                        ));
                    }
                    Effect::EnteredView(_) | Effect::Penalize { .. } => {}
                }
            }
        }
    }

    fn send(&mut self, a: usize, to: Option<usize>, wire: Wire) {
        let wire = Rc::new(wire);
        for b in 0..self.nodes.len() {
            if b == a || to.is_some_and(|t| t != b) {
                continue;
            }
            self.out.messages += 1;
            self.links
                .deliver(&mut self.rng, &mut self.queue, (a, b), || Event::Deliver {
                    to: b,
                    from: a,
                    wire: wire.clone(),
                });
        }
    }
}
