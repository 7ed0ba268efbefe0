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
        node.asks = Asking::new(now);
        node.queue = FinalityQueue::new(node.durable.tip);
        node.bodies = node
            .durable
            .applied
            .values()
            .map(|(b, _)| (b.payload(), b.clone()))
            .chain(node.durable.bodies.clone())
            .collect();
        node.forks.clear();
        node.pending_build = None;
        node.early.clear();
        node.book = CertificateBook::default();
        node.wal_busy = false;
        node.wal_queued = None;
        node.certificate_asks.clear();
        self.new_engine(a);
        self.verify_waiting(a);
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
        // The blocks the journal shows notarized must be verified again: their states went
        // with the crash.
        for c in &certificates {
            node.forks.certified(c, tip.height);
        }
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
            Wire::CertificateAsk(ask) => {
                let answer = self.nodes[to].book.answer(*ask);
                self.send(to, Some(from), Wire::Certificates(*ask, answer));
            }
            Wire::Certificates(ask, certificates) => {
                self.nodes[to].certificate_asks.done(ask);
                if !certificates.is_empty() {
                    self.out.certificate_answers += 1;
                }
                for c in certificates {
                    self.feed(
                        to,
                        Input::Message {
                            from: from as ValidatorIndex,
                            message: Message::Certificate(c.clone()),
                        },
                    );
                }
            }
            Wire::BodyAsk { height, payload } => {
                let found = self.nodes[to].bodies.get(payload).cloned();
                if let Some(body) = found.filter(|b| b.height == *height) {
                    self.send(to, Some(from), Wire::Body(body));
                }
            }
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

    /// Asks a peer (`to`, or a random one) for finalized blocks after the tip, as often as
    /// the node's [`Asking`] lets it.
    fn ask(&mut self, a: usize, to: Option<usize>, catching_up: bool) {
        let now = self.queue.now;
        let from = self.nodes[a].queue.tip().height.0 + 1;
        let asks = &mut self.nodes[a].asks;
        let may = if catching_up {
            asks.catch_up(now)
        } else {
            asks.fetch(now, from)
        };
        if !may {
            return;
        }
        if catching_up {
            self.out.catch_ups += 1;
        } else {
            self.out.body_fetches += 1;
        }
        let peer = match to {
            Some(peer) => peer,
            None => self.random_peer(a),
        };
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
                    // Nothing applied for a while: peers may hold finalized blocks this
                    // validator's engine has not heard of (as the node asks).
                    if self.scenario.catch_up
                        && node.asks.idle(self.queue.now, self.scenario.timeout_ms)
                    {
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
                Some(Some((body, f))) => {
                    self.apply(a, body, f);
                    self.verify_waiting(a);
                }
                Some(None) => self.switch_epoch(a),
            }
        }
    }

    fn apply(&mut self, a: usize, body: Body, f: Finalized<Sig>) {
        let now = self.queue.now;
        self.nodes[a].asks.applied(now);
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
        // The state after the block: its fork's, when it was verified here.
        let after = match node.forks.take(&digest) {
            Some(fork) => fork.state,
            None => node.durable.state.after(&body),
        };
        node.forks.finalized(height);
        node.durable.state = after;
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
        node.forks.clear();
        node.pending_build = None;
        node.certificate_asks.clear();
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

    /// Checks again the proposals that waited (as the node does when a block arrives or one
    /// is applied), then this leader's build that waited.
    fn verify_waiting(&mut self, a: usize) {
        let epoch = self.nodes[a].durable.epoch;
        for p in self.nodes[a].forks.retry(epoch) {
            self.verify(a, p);
        }
        self.retry_build(a);
        self.ask_bodies(a);
    }

    /// Asks a random peer for the bodies of notarized blocks this validator lacks, as often
    /// as the node's [`Asking`] lets it.
    fn ask_bodies(&mut self, a: usize) {
        if !self.scenario.fetch_bodies || self.nodes[a].engine.is_none() {
            return;
        }
        let node = &self.nodes[a];
        let missing = node.forks.missing_bodies(|h| node.bodies.contains_key(h));
        for p in missing {
            let now = self.queue.now;
            if !self.nodes[a].asks.body(now, p.payload) {
                continue;
            }
            self.out.body_asks += 1;
            let peer = self.random_peer(a);
            let ask = Wire::BodyAsk {
                height: p.height.0,
                payload: p.payload,
            };
            self.send(a, Some(peer), ask);
        }
    }

    /// Sends the ask an engine's `Fetch` or `FetchView` becomes to `first` (or a random
    /// peer), as the node's [`Asks`] allow; it is in flight until answered or expired.
    fn ask_certificates(
        &mut self,
        a: usize,
        message: &Message<Sig>,
        epoch: Epoch,
        first: Option<usize>,
    ) {
        let Some(ask) = ask_for(message, epoch) else {
            return;
        };
        if !self.nodes[a].certificate_asks.start(ask) {
            return;
        }
        let peer = match first {
            Some(peer) if peer != a => peer,
            _ => self.random_peer(a),
        };
        self.out.certificate_asks += 1;
        let lives = self.nodes[a].lives;
        self.queue.push(
            ASK_EXPIRES_MS,
            Event::AskExpired {
                node: a,
                lives,
                ask,
            },
        );
        self.send(a, Some(peer), Wire::CertificateAsk(ask));
    }

    /// A validator other than `a`, at random.
    fn random_peer(&mut self, a: usize) -> usize {
        let n = self.scenario.validators as u64;
        let p = self.rng.below(n - 1) as usize;
        if p >= a { p + 1 } else { p }
    }

    /// Checks a proposal against the state after its parent, as the node does: a seal is
    /// valid exactly when that state is in the next epoch; a block when its body is here,
    /// matches the proposal, and closes the epoch exactly at the close height (the chain's
    /// word, here). A proposal whose parent's state or body is missing waits.
    fn verify(&mut self, a: usize, p: Proposal) {
        let close = self.close_height(p.epoch);
        let node = &mut self.nodes[a];
        let Some(state) = node.state_after(&p.parent) else {
            node.forks.wait(p);
            return;
        };
        let valid = if p.is_seal() {
            node.forks.check_seal(&p, state, ())
        } else {
            let Some(body) = node.bodies.get(&p.payload) else {
                node.forks.wait(p);
                return;
            };
            let valid = state.epoch == p.epoch
                && body.height == p.height.0
                && body.parent == p.parent
                && body.closes == (p.height.0 == close);
            if valid {
                let after = state.after(body);
                node.forks.insert(&p, after, ());
            }
            valid
        };
        self.feed(
            a,
            Input::Verified {
                digest: p.digest(),
                valid,
            },
        );
        self.retry_build(a);
    }

    /// This leader's block for `view` on `parent`: a seal when the state after the parent is
    /// in the next epoch, else a body (closing the epoch at the close height), announced to
    /// all. `None`: the parent's state is not here yet.
    fn build(&mut self, a: usize, view: View, parent: Hash, height: Height) -> Option<Hash> {
        let epoch = self.nodes[a].durable.epoch;
        let close = self.close_height(epoch);
        let node = &mut self.nodes[a];
        let state = node.state_after(&parent)?;
        let proposal = |payload| Proposal {
            epoch,
            view,
            height,
            parent,
            payload,
        };
        if Forks::<SimState>::builds_seal(&state, epoch) {
            node.forks.insert(&proposal(SEAL), state, ());
            return Some(SEAL);
        }
        let body = Body {
            height: height.0,
            parent,
            view: view.0,
            closes: height.0 == close,
        };
        let payload = body.payload();
        node.forks
            .insert(&proposal(payload), state.after(&body), ());
        self.keep_body(a, &body);
        self.send(a, None, Wire::Body(body));
        Some(payload)
    }

    /// Builds the block that waited for its parent's state, if the engine is still in its
    /// view.
    fn retry_build(&mut self, a: usize) {
        let node = &mut self.nodes[a];
        let Some((generation, view, parent, height)) = node.pending_build else {
            return;
        };
        let current = node.engine.as_ref().map(|e| e.view());
        if node.generation != generation || current != Some(view) {
            node.pending_build = None;
            return;
        }
        if let Some(payload) = self.build(a, view, parent, height) {
            self.nodes[a].pending_build = None;
            self.feed(a, Input::ProposalReady { view, payload });
        }
    }

    /// Queues a WAL write: with [`NodeScenario::wal_in_order`] it lands after every write
    /// queued before it, as the node's one writer does; without, each lands on its own time.
    fn queue_write(&mut self, a: usize, token: u64, state: SafetyState) {
        let node = &mut self.nodes[a];
        let generation = node.generation;
        if self.scenario.wal_in_order && node.wal_busy {
            node.wal_queued = Some((generation, token, state));
            return;
        }
        self.start_write(a, generation, token, state);
    }

    /// The WAL's writer starts writing a record; it lands a few milliseconds later.
    fn start_write(&mut self, a: usize, generation: u64, token: u64, state: SafetyState) {
        let took = self.rng.range(1, 10) + self.slowness(a);
        let node = &mut self.nodes[a];
        node.wal_busy = self.scenario.wal_in_order;
        let event = Event::Written {
            node: a,
            lives: node.lives,
            generation,
            token,
            state: Box::new(state),
        };
        self.queue.push(took, event);
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
        // The writer goes on with the newest record queued while this one was written.
        self.nodes[a].wal_busy = false;
        if let Some((g, t, s)) = self.nodes[a].wal_queued.take() {
            self.start_write(a, g, t, s);
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
                    // Asks for certificates go point-to-point, never on gossip, as the node
                    // sends them.
                    Effect::Broadcast(message @ (Message::Fetch(_) | Message::FetchView(_))) => {
                        self.ask_certificates(a, &message, epoch, None)
                    }
                    Effect::Send {
                        to,
                        message: message @ (Message::Fetch(_) | Message::FetchView(_)),
                    } => self.ask_certificates(a, &message, epoch, Some(to as usize)),
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
                    } => match self.build(a, view, parent, height) {
                        Some(payload) => inputs.push_back(Input::ProposalReady { view, payload }),
                        None => {
                            let generation = self.nodes[a].generation;
                            self.nodes[a].pending_build = Some((generation, view, parent, height));
                        }
                    },
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
                    Effect::Certified(c) => {
                        let node = &mut self.nodes[a];
                        node.book.record(&c, || c.clone());
                        let waits = node.forks.certified(&c, node.queue.tip().height);
                        node.durable.journal.push(c);
                        if waits {
                            self.verify_waiting(a);
                        }
                    }
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
        let slow = self.slowness(a);
        for b in 0..self.nodes.len() {
            if b == a || to.is_some_and(|t| t != b) {
                continue;
            }
            self.out.messages += 1;
            self.links
                .deliver_after(&mut self.rng, &mut self.queue, (a, b), slow, || {
                    Event::Deliver {
                        to: b,
                        from: a,
                        wire: wire.clone(),
                    }
                });
        }
    }

    /// The extra time node `a` takes for everything it does ([`NodeScenario::slow_ms`]), ms.
    fn slowness(&self, a: usize) -> u64 {
        if a == SLOW.min(self.nodes.len() - 1) {
            self.scenario.slow_ms
        } else {
            0
        }
    }
}
