//! Deterministic simulation of the consensus engine.
//!
//! A scenario runs real [`Engine`]s on a simulated network in virtual time. Everything random
//! (latency, loss, duplication, partitions, crashes, Byzantine choices) comes from one seeded
//! generator, so a seed replays exactly: the run's event fingerprint is identical every time.
//!
//! Honest actors are checked by an [`oracle::Oracle`] written independently of the engine: no two
//! honest actors finalize different blocks at one height, each finalizes heights in order with
//! each block extending the previous, and every certificate an honest actor emits or finalizes
//! under has more than 2/3 of the stake and a valid aggregate signature. Liveness: after the last
//! partition heals and the last crashed actor restarts, every honest actor finalizes new blocks
//! up to the target within a bounded virtual time.

pub mod byzantine;
pub mod keys;
pub mod network;
pub mod oracle;
pub mod rng;

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use platform_primitives::{Epoch, Hash, Height, NetUid, View};

use crate::engine::{Config, Effect, Engine, Input};
use crate::safety::SafetyState;
use crate::scheme::{Counted, Scheme};
use crate::types::{Message, SEAL, Subject, ValidatorIndex, VoteKind};
use crate::validators::Validators;
use byzantine::{Behavior, Target};
use keys::SimKeys;
use network::{Links, NetworkConfig, Partition, Queue};
use oracle::Oracle;
use rng::Rng;

/// How partitions are chosen.
#[derive(Clone, Debug)]
pub enum Partitions {
    /// None.
    None,
    /// One or two random splits of random length early in the run.
    Random,
    /// Exactly these windows (groups are indexed by actor: validators, then twins).
    Fixed(Vec<Partition>),
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Stake of each validator.
    pub stakes: Vec<u64>,
    /// Byzantine validators and their behavior.
    pub byzantine: Vec<(ValidatorIndex, Behavior)>,
    /// Validators that run two honest-looking identities with one key (Twins).
    pub twins: Vec<ValidatorIndex>,
    /// Blocks every honest actor must finalize.
    pub blocks: u64,
    /// Latency, loss, duplication.
    pub network: NetworkConfig,
    /// Partitions.
    pub partitions: Partitions,
    /// Random crash and restart of honest actors (including right after persisting a vote).
    pub crashes: bool,
    /// Base view timeout, ms.
    pub timeout_ms: u64,
    /// Virtual time after the last heal or restart within which the target must be reached.
    pub liveness_bound_ms: u64,
    /// Record a human-readable trace.
    pub trace: bool,
    /// A block the application lets nothing follow, if any.
    pub terminal: Option<Terminal>,
    /// Collectors of each view's finalize votes ([`crate::Config::collectors`]; 0: broadcast).
    pub collectors: u16,
}

/// A terminal block at `height` (like an epoch's close) whose finalize votes are all lost, so
/// that only a later block can finalize it.
#[derive(Clone, Copy, Debug)]
pub struct Terminal {
    /// The terminal block's height.
    pub height: u64,
    /// Whether the application answers proposals after it with seals
    /// ([`crate::types::SEAL`]); without them nothing may follow it.
    pub seals: bool,
}

impl Scenario {
    /// `n` validators with equal stake, no faults, reaching `blocks`.
    pub fn honest(n: usize, blocks: u64) -> Scenario {
        Scenario {
            stakes: vec![100; n],
            byzantine: Vec::new(),
            twins: Vec::new(),
            blocks,
            network: NetworkConfig::default(),
            partitions: Partitions::None,
            crashes: false,
            timeout_ms: 1_000,
            liveness_bound_ms: 300_000,
            trace: false,
            terminal: None,
            collectors: 0,
        }
    }
}

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Blocks finalized by every honest actor.
    pub finalized_blocks: u64,
    /// Messages sent (one per recipient).
    pub messages: u64,
    /// The first safety violation, if any.
    pub safety_violation: Option<String>,
    /// Why liveness failed, if it did.
    pub liveness_failure: Option<String>,
    /// Certificates the oracle checked.
    pub certificates_checked: u64,
    /// Equivocation evidence produced by honest actors.
    pub evidence: u64,
    /// Penalties issued by honest actors.
    pub penalties: u64,
    /// Signature checks (single or aggregate verifications) made by honest actors.
    pub signature_checks: u64,
    /// Honest actors (the divisor for per-validator figures).
    pub honest: u64,
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// blake3 over every processed event: equal fingerprints mean identical runs.
    pub fingerprint: Hash,
    /// The trace, when requested.
    pub trace: Vec<String>,
}

enum Event<Sig> {
    Deliver {
        to: usize,
        from: ValidatorIndex,
        /// Shared by every copy of one send: an event stays small, and a broadcast is one
        /// message, not one per recipient, until it is delivered.
        message: Rc<Message<Sig>>,
    },
    Timer {
        actor: usize,
        incarnation: u64,
        view: View,
    },
    Crash(usize),
    Restart(usize),
}

struct Actor<S: Scheme> {
    validator: ValidatorIndex,
    behavior: Option<Behavior>,
    twin: bool,
    engine: Option<Engine<Counted<S>>>,
    /// Signature checks made by this actor's engines (all incarnations).
    checks: Arc<AtomicU64>,
    signer: S,
    wal: SafetyState,
    /// Certificates journaled since the last finalization (durable, like the WAL).
    journal: Vec<crate::types::Certificate<S::Signature>>,
    tip: (Height, Hash, View),
    incarnation: u64,
    history: Vec<Message<S::Signature>>,
}

impl<S: Scheme> Actor<S> {
    fn honest(&self) -> bool {
        self.behavior.is_none() && !self.twin
    }
}

const NETUID: NetUid = NetUid(1);
const MAX_EVENTS: u64 = 20_000_000;
const UNHASHED_BYTES: usize = 64 * 1024;

struct Sim<'a, K: SimKeys> {
    scenario: &'a Scenario,
    keys: &'a K,
    oracle_scheme: K::Scheme,
    rng: Rng,
    queue: Queue<Event<<K::Scheme as Scheme>::Signature>>,
    links: Links,
    actors: Vec<Actor<K::Scheme>>,
    oracle: Oracle,
    beacon: [u8; 32],
    persist_crashes_left: u32,
    /// Time after which the network is healed and every actor is up.
    stable_after: u64,
    out: Outcome,
    hasher: blake3::Hasher,
    /// Event bytes not yet hashed: hashing them in large pieces is several times cheaper than
    /// 21 bytes at a time, and the fingerprint is the same.
    unhashed: Vec<u8>,
    /// An honest actor finalized since liveness was last checked.
    finalized_since_check: bool,
    /// Buffers [`Sim::feed`] reuses, so that an input allocates nothing.
    inputs: VecDeque<Input<<K::Scheme as Scheme>::Signature>>,
    effects: Vec<Effect<<K::Scheme as Scheme>::Signature>>,
}

/// Runs one seed of a scenario.
pub fn run<K: SimKeys>(scenario: &Scenario, keys: &K, seed: u64) -> Outcome {
    let mut sim = Sim::new(scenario, keys, seed);
    sim.run();
    sim.hasher.update(&sim.unhashed);
    sim.out.fingerprint = Hash(*sim.hasher.finalize().as_bytes());
    sim.out
}

impl<'a, K: SimKeys> Sim<'a, K> {
    fn new(scenario: &'a Scenario, keys: &'a K, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let n = scenario.stakes.len();
        let mut actors: Vec<Actor<K::Scheme>> = (0..n)
            .map(|i| i as ValidatorIndex)
            .chain(scenario.twins.iter().copied())
            .map(|v| Actor {
                validator: v,
                behavior: scenario
                    .byzantine
                    .iter()
                    .find(|(b, _)| *b == v)
                    .map(|(_, k)| *k),
                twin: scenario.twins.contains(&v),
                engine: None,
                checks: Arc::default(),
                signer: keys.scheme(Some(v)),
                wal: SafetyState::default(),
                journal: Vec::new(),
                tip: (Height(0), Hash::ZERO, View(0)),
                incarnation: 0,
                history: Vec::new(),
            })
            .collect();
        let genesis = Hash::of(&seed.to_le_bytes());
        for a in &mut actors {
            a.tip = (Height(0), genesis, View(0));
        }
        let partitions = match &scenario.partitions {
            Partitions::None => Vec::new(),
            Partitions::Fixed(p) => p.clone(),
            Partitions::Random => {
                network::random_partitions(&mut rng, actors.len(), 6_000, (500, 8_000))
            }
        };
        let links = Links {
            config: scenario.network.clone(),
            partitions,
        };
        let stable_after = links.heal_time();
        let mut sim = Sim {
            oracle_scheme: keys.scheme(None),
            oracle: Oracle::new(scenario.stakes.clone(), NETUID, genesis, Height(0)),
            beacon: *blake3::hash(&[b"beacon".as_slice(), &seed.to_le_bytes()].concat()).as_bytes(),
            persist_crashes_left: if scenario.crashes { 2 } else { 0 },
            stable_after,
            out: Outcome {
                seed,
                finalized_blocks: 0,
                messages: 0,
                safety_violation: None,
                liveness_failure: None,
                certificates_checked: 0,
                evidence: 0,
                penalties: 0,
                signature_checks: 0,
                honest: 0,
                virtual_ms: 0,
                events: 0,
                fingerprint: Hash::ZERO,
                trace: Vec::new(),
            },
            hasher: blake3::Hasher::new(),
            unhashed: Vec::with_capacity(UNHASHED_BYTES),
            finalized_since_check: true,
            inputs: VecDeque::new(),
            effects: Vec::new(),
            scenario,
            keys,
            rng,
            queue: Queue::new(),
            links,
            actors,
        };
        if scenario.crashes {
            let honest: Vec<usize> = (0..sim.actors.len())
                .filter(|&a| sim.actors[a].honest())
                .collect();
            for _ in 0..sim.rng.range(1, 3) {
                let a = honest[sim.rng.below(honest.len() as u64) as usize];
                let at = sim.rng.range(200, 8_000);
                let down = sim.rng.range(200, 5_000);
                sim.queue.push(at, Event::Crash(a));
                sim.queue.push(at + down, Event::Restart(a));
                sim.stable_after = sim.stable_after.max(at + down);
            }
        }
        sim
    }

    fn config(&self, actor: &Actor<K::Scheme>) -> Config {
        Config {
            netuid: NETUID,
            epoch: Epoch(1),
            validators: Validators::new(self.scenario.stakes.clone()),
            beacon: self.beacon,
            anchor: actor.tip.1,
            anchor_height: actor.tip.0,
            anchor_view: actor.tip.2,
            me: Some(actor.validator),
            timeout_ms: self.scenario.timeout_ms,
            max_backoff_exp: 4,
            future_views: 1_000,
            collectors: self.scenario.collectors,
        }
    }

    fn start(&mut self, a: usize) {
        let cfg = self.config(&self.actors[a]);
        let scheme = Counted::with_counter(
            self.keys.scheme(Some(self.actors[a].validator)),
            self.actors[a].checks.clone(),
        );
        self.actors[a].engine = Some(Engine::new(cfg, scheme));
        let safety = self.actors[a].wal;
        let certificates = self.actors[a].journal.clone();
        self.feed(
            a,
            Input::Start {
                safety,
                certificates,
            },
        );
    }

    fn note(&mut self, a: usize, code: u8, view: u64, text: impl FnOnce() -> String) {
        self.unhashed.extend(self.queue.now.to_le_bytes());
        self.unhashed.extend((a as u32).to_le_bytes());
        self.unhashed.push(code);
        self.unhashed.extend(view.to_le_bytes());
        if self.unhashed.len() >= UNHASHED_BYTES {
            self.hasher.update(&self.unhashed);
            self.unhashed.clear();
        }
        if self.scenario.trace {
            self.out.trace.push(format!(
                "{:>8} ms  actor {a:>2}  {}",
                self.queue.now,
                text()
            ));
        }
    }

    fn run(&mut self) {
        for a in 0..self.actors.len() {
            self.start(a);
        }
        let mut heights_at_stable: Option<Vec<u64>> = None;
        while let Some(event) = self.queue.pop() {
            self.out.events += 1;
            match event {
                Event::Deliver { to, from, message } => {
                    if self.actors[to].engine.is_none() {
                        continue;
                    }
                    let view = message.view().map_or(0, |v| v.0);
                    self.note(to, 1, view, || format!("<- {from}: {}", describe(&message)));
                    if self.actors[to].behavior == Some(Behavior::Replay) {
                        let actor = &mut self.actors[to];
                        byzantine::remember(&mut actor.history, &message, &mut self.rng);
                    }
                    let message = Rc::unwrap_or_clone(message);
                    self.feed(to, Input::Message { from, message });
                }
                Event::Timer {
                    actor,
                    incarnation,
                    view,
                } => {
                    if self.actors[actor].incarnation != incarnation
                        || self.actors[actor].engine.is_none()
                    {
                        continue;
                    }
                    self.note(actor, 2, view.0, || format!("timeout in view {}", view.0));
                    self.feed(actor, Input::Timeout(view));
                }
                Event::Crash(a) => self.crash(a),
                Event::Restart(a) => {
                    if self.actors[a].engine.is_none() {
                        self.note(a, 4, 0, || "restart from WAL".into());
                        self.start(a);
                    }
                }
            }
            if self.oracle.violation.is_some() || self.out.events > MAX_EVENTS {
                break;
            }
            let now = self.queue.now;
            if now >= self.stable_after && heights_at_stable.is_none() {
                heights_at_stable = Some(self.heights());
                self.finalized_since_check = true;
            }
            if let Some(base) = &heights_at_stable {
                // Heights only move when an honest actor finalizes.
                let done = std::mem::take(&mut self.finalized_since_check)
                    && self
                        .honest()
                        .zip(base)
                        .all(|(a, &b)| self.oracle.height(a) >= self.scenario.blocks.max(b + 1));
                if done {
                    break;
                }
                if now > self.stable_after + self.scenario.liveness_bound_ms {
                    self.out.liveness_failure = Some(format!(
                        "{} ms after the network stabilized at {} ms, honest finalized heights are {:?} (target {})",
                        self.scenario.liveness_bound_ms,
                        self.stable_after,
                        self.heights(),
                        self.scenario.blocks
                    ));
                    break;
                }
            }
        }
        if self.out.events > MAX_EVENTS && self.out.liveness_failure.is_none() {
            self.out.liveness_failure = Some(format!("no conclusion after {MAX_EVENTS} events"));
        }
        self.out.safety_violation = self.oracle.violation.clone();
        self.out.certificates_checked = self.oracle.certificates_checked;
        self.out.finalized_blocks = self.heights().into_iter().min().unwrap_or(0);
        let honest: Vec<usize> = self.honest().collect();
        self.out.honest = honest.len() as u64;
        self.out.signature_checks = honest
            .iter()
            .map(|&a| self.actors[a].checks.load(Ordering::Relaxed))
            .sum();
        self.out.virtual_ms = self.queue.now;
    }

    fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.actors.len()).filter(|&a| self.actors[a].honest())
    }

    fn heights(&self) -> Vec<u64> {
        self.honest().map(|a| self.oracle.height(a)).collect()
    }

    fn crash(&mut self, a: usize) {
        if self.actors[a].engine.take().is_some() {
            self.actors[a].incarnation += 1;
            self.note(a, 3, 0, || "crash".into());
        }
    }

    /// Feeds an input to an actor and performs the resulting effects, including the follow-up
    /// inputs the application and storage answer with.
    fn feed(&mut self, a: usize, input: Input<<K::Scheme as Scheme>::Signature>) {
        let mut inputs = std::mem::take(&mut self.inputs);
        let mut effects = std::mem::take(&mut self.effects);
        inputs.clear();
        inputs.push_back(input);
        self.feed_all(a, &mut inputs, &mut effects);
        self.inputs = inputs;
        self.effects = effects;
    }

    fn feed_all(
        &mut self,
        a: usize,
        inputs: &mut VecDeque<Input<<K::Scheme as Scheme>::Signature>>,
        effects: &mut Vec<Effect<<K::Scheme as Scheme>::Signature>>,
    ) {
        while let Some(input) = inputs.pop_front() {
            let Some(engine) = self.actors[a].engine.as_mut() else {
                return;
            };
            engine.handle_into(input, effects);
            for effect in effects.drain(..) {
                match effect {
                    Effect::Broadcast(message) => self.send(a, None, message),
                    Effect::Send { to, message } => self.send(a, Some(to), message),
                    Effect::Persist { state, token } => {
                        self.actors[a].wal = state;
                        if self.actors[a].honest()
                            && self.persist_crashes_left > 0
                            && self.rng.chance(3)
                        {
                            // Crash after the vote is durable but before it is sent.
                            self.persist_crashes_left -= 1;
                            self.crash(a);
                            let down = self.rng.range(200, 3_000);
                            self.queue.push(down, Event::Restart(a));
                            self.stable_after = self.stable_after.max(self.queue.now + down);
                            return;
                        }
                        inputs.push_back(Input::Persisted(token));
                    }
                    Effect::Timeout { view, after_ms } => {
                        let incarnation = self.actors[a].incarnation;
                        self.queue.push(
                            after_ms,
                            Event::Timer {
                                actor: a,
                                incarnation,
                                view,
                            },
                        );
                    }
                    Effect::Propose {
                        view,
                        parent,
                        height,
                    } => {
                        if let Some(t) = self.scenario.terminal
                            && height.0 > t.height
                        {
                            if t.seals {
                                inputs.push_back(Input::ProposalReady {
                                    view,
                                    payload: SEAL,
                                });
                            }
                            continue;
                        }
                        let mut payload = *blake3::hash(
                            &[
                                &view.0.to_le_bytes()[..],
                                &parent.0,
                                &height.0.to_le_bytes(),
                            ]
                            .concat(),
                        )
                        .as_bytes();
                        // Honest payloads never start with 0xff; invalid ones always do.
                        payload[0] = if self.actors[a].behavior == Some(Behavior::Invalid) {
                            0xff
                        } else {
                            0
                        };
                        inputs.push_back(Input::ProposalReady {
                            view,
                            payload: Hash(payload),
                        });
                    }
                    Effect::Verify(p) => {
                        let after_terminal = self
                            .scenario
                            .terminal
                            .is_some_and(|t| p.height.0 > t.height);
                        let valid = self.actors[a].behavior == Some(Behavior::Invalid)
                            || (p.payload.0[0] != 0xff && p.is_seal() == after_terminal);
                        inputs.push_back(Input::Verified {
                            digest: p.digest(),
                            valid,
                        });
                    }
                    Effect::Finalized {
                        proposal,
                        certificate,
                    } => {
                        self.note(a, 5, proposal.view.0, || {
                            format!(
                                "finalized height {} ({})",
                                proposal.height.0,
                                proposal.digest()
                            )
                        });
                        self.actors[a].tip = (proposal.height, proposal.digest(), proposal.view);
                        self.actors[a]
                            .journal
                            .retain(|c| c.subject.view() > proposal.view);
                        if self.actors[a].honest() {
                            self.oracle
                                .finalized(&self.oracle_scheme, a, &proposal, &certificate);
                            self.finalized_since_check = true;
                        }
                    }
                    Effect::EnteredView(v) => {
                        self.note(a, 6, v.0, || format!("enter view {}", v.0))
                    }
                    Effect::Certified(cert) => self.actors[a].journal.push(cert),
                    Effect::Penalize { .. } => {
                        if self.actors[a].honest() {
                            self.out.penalties += 1;
                        }
                    }
                    Effect::Evidence { .. } => {
                        if self.actors[a].honest() {
                            self.out.evidence += 1;
                        }
                    }
                }
            }
        }
    }

    /// Finalize votes for the terminal block never arrive.
    fn lost_finalize_vote(&self, message: &Message<<K::Scheme as Scheme>::Signature>) -> bool {
        let Some(t) = self.scenario.terminal else {
            return false;
        };
        matches!(message, Message::Vote(v) if v.kind == VoteKind::Finalize
            && matches!(v.subject, Subject::Proposal(p) if p.height.0 == t.height))
    }

    /// Sends a message from actor `a` to every other actor (`to` = None) or to the actors of one
    /// validator, after the Byzantine distortion of `a`, if any.
    fn send(
        &mut self,
        a: usize,
        to: Option<ValidatorIndex>,
        message: Message<<K::Scheme as Scheme>::Signature>,
    ) {
        if self.actors[a].honest()
            && let Message::Certificate(cert) = &message
        {
            self.oracle
                .check_certificate(&self.oracle_scheme, cert, || {
                    format!("certificate sent by actor {a}")
                });
        }
        let sends = match self.actors[a].behavior {
            None => vec![(Target::All, message)],
            Some(behavior) => {
                let actor = &self.actors[a];
                let keys = self.keys;
                let forged = |noise| keys.forged(noise);
                let attacker = byzantine::Attacker {
                    behavior,
                    scheme: &actor.signer,
                    netuid: NETUID,
                    me: actor.validator,
                    n: self.scenario.stakes.len(),
                    forged: &forged,
                    history: &actor.history,
                };
                attacker.distort(message, &mut self.rng)
            }
        };
        let from = self.actors[a].validator;
        for (target, message) in sends {
            if self.lost_finalize_vote(&message) {
                continue;
            }
            let message = Rc::new(message);
            for b in 0..self.actors.len() {
                let wanted = match (&target, to) {
                    (_, Some(v)) => self.actors[b].validator == v,
                    (Target::All, None) => true,
                    (Target::Half(even), None) => (b % 2 == 0) == *even,
                };
                if b == a || !wanted {
                    continue;
                }
                self.out.messages += 1;
                self.links
                    .deliver(&mut self.rng, &mut self.queue, (a, b), || Event::Deliver {
                        to: b,
                        from,
                        message: message.clone(),
                    });
            }
        }
    }
}

fn describe<Sig>(m: &Message<Sig>) -> String {
    match m {
        Message::Vote(v) => format!(
            "{:?} by {} in view {}",
            v.kind,
            v.signer,
            v.subject.view().0
        ),
        Message::Certificate(c) => format!(
            "{:?} certificate for view {} ({} signers)",
            c.kind,
            c.subject.view().0,
            c.signers.count()
        ),
        Message::Fetch(d) => format!("fetch {d}"),
        Message::FetchView(v) => format!("fetch view {}", v.0),
    }
}
