//! A deterministic node-level simulation: validators made of the real consensus engine and
//! the node's own [`FinalityQueue`], on a simulated network in virtual time.
//!
//! Where the consensus simulation (`platform_consensus::sim`) stops at finalized proposals,
//! this one goes on as a node does: a block's body travels apart from the votes on it (and is
//! lost like any message), a finalized block is applied only once its body is here and its
//! parent applied, a missing body is fetched from a peer, every `epoch_blocks`-th block
//! closes an epoch (proposals after it are seals) and the next epoch's engine starts from it,
//! a validator that falls an epoch or more behind catches up from a peer's finalized blocks
//! (each checked against its certificate), and a crash loses everything but what a node
//! stores: its WAL record, its journaled certificates and its applied blocks.
//!
//! Everything random comes from one seeded generator: a seed replays exactly. The checks:
//! every validator applies heights in order, each block extending the one before; no two
//! apply different blocks at one height; each enters epoch `e + 1` right after applying the
//! close at height `(e + 1) × epoch_blocks`; and after the last heal, restart and late start,
//! every validator applies the target height within a bounded virtual time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use platform_consensus::sim::keys::{MacKeys, SimKeys};
use platform_consensus::sim::network::{Links, NetworkConfig, Partition, Queue};
use platform_consensus::sim::rng::Rng;
use platform_consensus::{
    Config, Effect, Engine, Input, MacScheme, Message, Proposal, SEAL, SafetyState, Subject,
    ValidatorIndex, Validators, VoteKind, certificate_is_valid,
};
use platform_primitives::{Epoch, Hash, Height, NetUid, View, encode};

use super::finality::{FinalityQueue, Finalized, Next, Tip, proven_final};

type Sig = <MacScheme as platform_consensus::Scheme>::Signature;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct NodeScenario {
    /// Validators (equal stakes).
    pub validators: usize,
    /// The height every validator must apply.
    pub blocks: u64,
    /// Blocks per epoch: the block at every multiple of this height closes its epoch.
    pub epoch_blocks: u64,
    /// Latency, loss, duplication.
    pub network: NetworkConfig,
    /// One or two random partitions early in the run.
    pub partitions: bool,
    /// Random crashes and restarts, also between a vote's persist and its acknowledgement.
    pub crashes: bool,
    /// One validator starts this long after the others (0: none), ms.
    pub late_ms: u64,
    /// Whether a validator behind by an epoch or more catches up from a peer's finalized
    /// blocks (off only to show what it is for).
    pub catch_up: bool,
    /// Whether a block body a validator received or built survives its crash and is found
    /// again by the block's hash, as the node stores announced blocks (off only to show what
    /// it is for: a finalized block whose body only crashed validators held was never
    /// applied).
    pub durable_bodies: bool,
    /// Base view timeout, ms.
    pub timeout_ms: u64,
    /// Virtual time after the network is stable within which the target must be applied, ms.
    pub liveness_bound_ms: u64,
}

impl NodeScenario {
    /// `n` validators, no faults beyond the default network's loss, reaching `blocks`.
    pub fn honest(n: usize, blocks: u64, epoch_blocks: u64) -> NodeScenario {
        NodeScenario {
            validators: n,
            blocks,
            epoch_blocks,
            network: NetworkConfig::default(),
            partitions: false,
            crashes: false,
            late_ms: 0,
            catch_up: true,
            durable_bodies: true,
            timeout_ms: 1_000,
            liveness_bound_ms: 120_000,
        }
    }
}

/// The result of one seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeOutcome {
    /// The seed.
    pub seed: u64,
    /// The lowest height every validator applied.
    pub height: u64,
    /// The lowest epoch every validator entered.
    pub epoch: u64,
    /// Messages sent (one per recipient).
    pub messages: u64,
    /// Block bodies asked for after their block was final.
    pub body_fetches: u64,
    /// Catch-ups asked for by validators behind by an epoch.
    pub catch_ups: u64,
    /// Crashes (restarts follow).
    pub crashes: u64,
    /// Finalizations applied whose certificate the late validator signed (0 without one).
    pub late_signed: u64,
    /// The first safety violation, if any.
    pub safety_violation: Option<String>,
    /// Why liveness failed, if it did.
    pub liveness_failure: Option<String>,
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// blake3 over every processed event: equal fingerprints mean identical runs.
    pub fingerprint: String,
}

/// A block's body: what a proposal's payload is the hash of.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize)]
struct Body {
    height: u64,
    /// The proposal it extends.
    parent: Hash,
    view: u64,
    /// Whether it closes its epoch.
    closes: bool,
}

impl Body {
    fn payload(&self) -> Hash {
        Hash::of(&encode(self))
    }
}

enum Wire {
    Consensus(Epoch, Message<Sig>),
    Body(Body),
    /// Finalized blocks from `from`, as many as the peer has (at most [`SYNC_BATCH`]).
    Sync {
        from: u64,
    },
    Synced(Vec<(Body, Finalized<Sig>)>),
}

enum Event {
    Deliver {
        to: usize,
        from: usize,
        wire: Rc<Wire>,
    },
    Timer {
        node: usize,
        generation: u64,
        view: View,
    },
    Crash(usize),
    Start(usize),
}

/// What a validator keeps across a crash.
#[derive(Clone)]
struct Durable {
    wal: SafetyState,
    journal: Vec<platform_consensus::Certificate<Sig>>,
    /// Applied blocks by height, with their finalization.
    applied: BTreeMap<u64, (Body, Finalized<Sig>)>,
    /// Bodies received or built, by payload (with [`NodeScenario::durable_bodies`]).
    bodies: HashMap<Hash, Body>,
    tip: Tip,
    epoch: Epoch,
}

struct Node {
    engine: Option<Engine<MacScheme>>,
    /// Bumped with every engine; timers of an older one are dropped.
    generation: u64,
    queue: FinalityQueue<Sig>,
    bodies: HashMap<Hash, Body>,
    /// Proposals waiting for their body before they can be checked.
    unverified: Vec<Proposal>,
    /// Consensus messages of a later epoch, held until this node enters it.
    early: VecDeque<(Epoch, ValidatorIndex, Message<Sig>)>,
    /// Virtual time of the last body fetch or catch-up asked for.
    asked_at: Option<u64>,
    durable: Durable,
}

const NETUID: NetUid = NetUid(1);
const MAX_EVENTS: u64 = 5_000_000;
const SYNC_BATCH: u64 = 32;
const EARLY_LIMIT: usize = 4_096;
/// How long a node waits for an answer before asking again, ms.
const ASK_AGAIN_MS: u64 = 500;

/// Runs one seed of a scenario.
pub fn run(scenario: &NodeScenario, seed: u64) -> NodeOutcome {
    let mut sim = Sim::new(scenario, seed);
    sim.run();
    sim.out.fingerprint = sim.hasher.finalize().to_hex().to_string();
    sim.out
}

struct Sim<'a> {
    scenario: &'a NodeScenario,
    keys: MacKeys,
    rng: Rng,
    queue: Queue<Event>,
    links: Links,
    nodes: Vec<Node>,
    genesis: Tip,
    /// The proposal digest applied at each height (by the first node that applied it).
    canonical: BTreeMap<u64, Hash>,
    persist_crashes_left: u32,
    stable_after: u64,
    out: NodeOutcome,
    hasher: blake3::Hasher,
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a NodeScenario, seed: u64) -> Sim<'a> {
        let mut rng = Rng::new(seed);
        let n = scenario.validators;
        let genesis = Tip {
            digest: Hash::of(&seed.to_le_bytes()),
            height: Height(0),
            view: View(0),
        };
        let partitions = if scenario.partitions {
            (0..rng.range(1, 2))
                .map(|_| {
                    let from_ms = rng.range(0, 8_000);
                    let until_ms = from_ms + rng.range(1_000, 10_000);
                    let mut groups: Vec<u8> = (0..n).map(|_| rng.below(2) as u8).collect();
                    groups[0] = 0;
                    groups[n - 1] = 1;
                    Partition {
                        from_ms,
                        until_ms,
                        groups,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let links = Links {
            config: scenario.network.clone(),
            partitions,
        };
        let nodes = (0..n)
            .map(|_| Node {
                engine: None,
                generation: 0,
                queue: FinalityQueue::new(genesis),
                bodies: HashMap::new(),
                unverified: Vec::new(),
                early: VecDeque::new(),
                asked_at: None,
                durable: Durable {
                    wal: SafetyState::default(),
                    journal: Vec::new(),
                    applied: BTreeMap::new(),
                    bodies: HashMap::new(),
                    tip: genesis,
                    epoch: Epoch(0),
                },
            })
            .collect();
        let mut sim = Sim {
            scenario,
            keys: MacKeys::new(seed, n),
            stable_after: links.heal_time(),
            rng,
            queue: Queue::new(),
            links,
            nodes,
            genesis,
            canonical: BTreeMap::new(),
            persist_crashes_left: if scenario.crashes { 2 } else { 0 },
            out: NodeOutcome {
                seed,
                height: 0,
                epoch: 0,
                messages: 0,
                body_fetches: 0,
                catch_ups: 0,
                crashes: 0,
                late_signed: 0,
                safety_violation: None,
                liveness_failure: None,
                virtual_ms: 0,
                events: 0,
                fingerprint: String::new(),
            },
            hasher: blake3::Hasher::new(),
        };
        for a in 0..n {
            let late = scenario.late_ms > 0 && a == n - 1;
            let at = if late { scenario.late_ms } else { 0 };
            sim.queue.push(at, Event::Start(a));
            sim.stable_after = sim.stable_after.max(at);
        }
        if scenario.crashes {
            for _ in 0..sim.rng.range(1, 3) {
                let a = sim.rng.below(n as u64) as usize;
                let at = sim.rng.range(500, 15_000);
                let down = sim.rng.range(500, 8_000);
                sim.queue.push(at, Event::Crash(a));
                sim.queue.push(at + down, Event::Start(a));
                sim.stable_after = sim.stable_after.max(at + down);
            }
        }
        sim
    }

    fn note(&mut self, node: usize, code: u8, value: u64) {
        self.hasher.update(&self.queue.now.to_le_bytes());
        self.hasher.update(&(node as u32).to_le_bytes());
        self.hasher.update(&[code]);
        self.hasher.update(&value.to_le_bytes());
    }

    fn violation(&mut self, text: String) {
        if self.out.safety_violation.is_none() {
            self.out.safety_violation = Some(format!("at {} ms: {text}", self.queue.now));
        }
    }

    fn run(&mut self) {
        // Once the network is stable, every validator must apply the target height and go
        // more than an epoch beyond the highest height any validator had then: a validator
        // that was behind catches up and the network keeps going with it.
        let mut goal: Option<u64> = None;
        while let Some(event) = self.queue.pop() {
            self.out.events += 1;
            match event {
                Event::Start(a) => {
                    if self.nodes[a].engine.is_none() {
                        self.note(a, 1, 0);
                        self.start(a);
                    }
                }
                Event::Crash(a) => self.crash(a),
                Event::Timer {
                    node,
                    generation,
                    view,
                } => {
                    if self.nodes[node].generation == generation
                        && self.nodes[node].engine.is_some()
                    {
                        self.note(node, 2, view.0);
                        self.feed(node, Input::Timeout(view));
                        self.advance(node);
                    }
                }
                Event::Deliver { to, from, wire } => {
                    if self.nodes[to].engine.is_some() {
                        self.deliver(to, from, &wire);
                        self.advance(to);
                    }
                }
            }
            if self.out.safety_violation.is_some() || self.out.events > MAX_EVENTS {
                break;
            }
            let now = self.queue.now;
            if now >= self.stable_after && goal.is_none() {
                let highest = self.heights().into_iter().max().unwrap_or(0);
                goal = Some(
                    self.scenario
                        .blocks
                        .max(highest + self.scenario.epoch_blocks + 1),
                );
            }
            if let Some(goal) = goal {
                if self.nodes.iter().all(|n| n.durable.tip.height.0 >= goal) {
                    break;
                }
                if now > self.stable_after + self.scenario.liveness_bound_ms {
                    self.out.liveness_failure = Some(format!(
                        "{} ms after the network was stable at {} ms, applied heights are {:?} \
                         (goal {goal}); {}",
                        self.scenario.liveness_bound_ms,
                        self.stable_after,
                        self.heights(),
                        self.describe_nodes(),
                    ));
                    break;
                }
            }
        }
        if self.out.events > MAX_EVENTS && self.out.liveness_failure.is_none() {
            self.out.liveness_failure = Some(format!("no conclusion after {MAX_EVENTS} events"));
        }
        self.out.height = self.heights().into_iter().min().unwrap_or(0);
        self.out.epoch = self
            .nodes
            .iter()
            .map(|n| n.durable.epoch.0)
            .min()
            .unwrap_or(0);
        self.out.virtual_ms = self.queue.now;
    }

    /// Where each validator is: epoch, engine view, the finality queue's next step, proposals
    /// waiting for a body.
    fn describe_nodes(&self) -> String {
        let rows: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let next = match n.queue.next(|p| n.bodies.contains_key(p)) {
                    Next::Idle => "idle".to_string(),
                    Next::Apply(f) => format!("apply {}", f.proposal.height.0),
                    Next::Fetch { height, .. } => format!("fetch {}", height.0),
                    Next::SwitchEpoch => "switch".to_string(),
                };
                format!(
                    "node {i}: epoch {} view {} {next}, {} unverified",
                    n.durable.epoch.0,
                    n.engine.as_ref().map_or(0, |e| e.view().0),
                    n.unverified.len()
                )
            })
            .collect();
        rows.join("; ")
    }

    fn heights(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.durable.tip.height.0).collect()
    }

    /// Starts (or restarts) node `a` from what it stored.
    fn start(&mut self, a: usize) {
        let node = &mut self.nodes[a];
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
            future_views: 1_000,
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

    fn crash(&mut self, a: usize) {
        if self.nodes[a].engine.take().is_some() {
            self.out.crashes += 1;
            self.note(a, 3, 0);
        }
    }

    /// The height at which epoch `epoch` closes.
    fn close_height(&self, epoch: Epoch) -> u64 {
        (epoch.0 + 1) * self.scenario.epoch_blocks
    }

    fn deliver(&mut self, to: usize, from: usize, wire: &Wire) {
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
                    self.note(to, 5, message.view().map_or(0, |v| v.0));
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
    fn advance(&mut self, a: usize) {
        loop {
            if self.nodes[a].engine.is_none() {
                return;
            }
            let node = &self.nodes[a];
            let step = match node.queue.next(|p| node.bodies.contains_key(p)) {
                Next::Idle => return,
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

    /// Feeds an input to node `a`'s engine and performs the effects.
    fn feed(&mut self, a: usize, input: Input<Sig>) {
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
                    Effect::Persist { state, token } => {
                        self.nodes[a].durable.wal = state;
                        if self.persist_crashes_left > 0 && self.rng.chance(3) {
                            // Durable, but the vote never leaves: the restart must not sign
                            // anything that conflicts with it.
                            self.persist_crashes_left -= 1;
                            self.crash(a);
                            let down = self.rng.range(200, 3_000);
                            self.queue.push(down, Event::Start(a));
                            self.stable_after = self.stable_after.max(self.queue.now + down);
                            return;
                        }
                        inputs.push_back(Input::Persisted(token));
                    }
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
                    Effect::EnteredView(_) | Effect::Penalize { .. } | Effect::Evidence { .. } => {}
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
            for delay in self
                .links
                .delays(&mut self.rng, self.queue.now, a, b)
                .into_iter()
                .flatten()
            {
                self.queue.push(
                    delay,
                    Event::Deliver {
                        to: b,
                        from: a,
                        wire: wire.clone(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scenario: &NodeScenario, seeds: std::ops::Range<u64>) {
        for seed in seeds {
            let out = run(scenario, seed);
            assert_eq!(out.safety_violation, None, "seed {seed}: {out:?}");
            assert_eq!(out.liveness_failure, None, "seed {seed}: {out:?}");
            assert!(out.height >= scenario.blocks, "seed {seed}: {out:?}");
            assert!(
                out.epoch >= scenario.blocks / scenario.epoch_blocks,
                "seed {seed}: {out:?}"
            );
        }
    }

    /// Four validators apply 30 blocks over six epochs, identically, on a lossy network.
    #[test]
    fn validators_apply_the_same_blocks_through_epochs() {
        check(&NodeScenario::honest(4, 30, 5), 0..20);
    }

    /// Partitions and crashes (also between a vote's persist and its acknowledgement): every
    /// validator still applies every block, in order, and enters every epoch at its close.
    #[test]
    fn partitions_and_crashes_lose_nothing() {
        let mut s = NodeScenario::honest(4, 30, 5);
        s.partitions = true;
        s.crashes = true;
        check(&s, 0..200);
    }

    /// Message loss of 10 %: bodies go missing after their blocks are final and are fetched.
    #[test]
    fn lost_bodies_are_fetched() {
        let mut s = NodeScenario::honest(4, 30, 5);
        s.network.loss_per_mille = 100;
        let fetched: u64 = (0..10)
            .map(|seed| {
                let out = run(&s, seed);
                assert_eq!(out.safety_violation, None, "seed {seed}: {out:?}");
                assert_eq!(out.liveness_failure, None, "seed {seed}: {out:?}");
                out.body_fetches
            })
            .sum();
        assert!(fetched > 0, "no body was ever fetched");
    }

    /// A validator started 20 s late, many epochs behind, catches up from its peers, applies
    /// the same blocks and votes again. Without catch-up the same seeds fail: it stays in
    /// epoch 0.
    #[test]
    fn a_late_validator_catches_up_across_epochs() {
        let mut s = NodeScenario::honest(4, 60, 5);
        s.late_ms = 20_000;
        s.liveness_bound_ms = 60_000;
        check(&s, 0..10);
        for seed in 0..3 {
            let out = run(&s, seed);
            assert!(out.catch_ups > 0, "seed {seed}: {out:?}");
            // It votes again: certificates it signed are applied.
            assert!(out.late_signed > 0, "seed {seed}: {out:?}");
        }
        s.catch_up = false;
        for seed in 0..3 {
            let out = run(&s, seed);
            assert!(out.liveness_failure.is_some(), "seed {seed}: {out:?}");
            assert_eq!(out.epoch, 0, "seed {seed}: {out:?}");
        }
    }

    /// Seeds where every validator that held a finalized block's body crashed before
    /// applying it: with bodies kept only in memory nobody could ever apply that block and
    /// the network stalled for good; with bodies stored and found again by their hash (as the
    /// node now does) they finish.
    #[test]
    fn a_finalized_body_survives_the_crash_of_everyone_who_held_it() {
        let mut s = NodeScenario::honest(4, 30, 5);
        s.partitions = true;
        s.crashes = true;
        let seeds = [782, 991, 1351, 1894];
        check(&s, seeds[0]..seeds[0] + 1);
        for seed in seeds {
            assert_eq!(run(&s, seed).liveness_failure, None, "seed {seed}");
        }
        s.durable_bodies = false;
        for seed in seeds {
            let out = run(&s, seed);
            assert!(out.liveness_failure.is_some(), "seed {seed}: {out:?}");
        }
    }

    /// A seed replays exactly.
    #[test]
    fn a_seed_replays_exactly() {
        let mut s = NodeScenario::honest(4, 20, 5);
        s.partitions = true;
        s.crashes = true;
        let (a, b) = (run(&s, 7), run(&s, 7));
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.events, b.events);
    }
}
