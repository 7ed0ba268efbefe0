//! The consensus engine: a pure state machine, `handle(input) -> effects`.
//!
//! The engine owns no sockets, clocks, threads or storage. The driver (the node, or the
//! simulator) feeds it [`Input`]s and performs the [`Effect`]s it returns, in order.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;

use platform_primitives::{Epoch, Hash, Height, NetUid, View};

use crate::safety::{SafetyRules, SafetyState};
use crate::scheme::Scheme;
use crate::types::{
    Certificate, Message, Proposal, Subject, ValidatorIndex, Vote, VoteKind, certificate_verifies,
    kind_fits, signing_message,
};
use crate::validators::Validators;
use crate::votes::Bucket;

mod certificates;
mod intake;
mod proposals;

/// The fixed parameters of one epoch's consensus instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// The subnet (part of every signed message's domain).
    pub netuid: NetUid,
    /// The epoch.
    pub epoch: Epoch,
    /// Validators and stakes.
    pub validators: Validators,
    /// The epoch's beacon: VRF output of the anchoring block; seeds leader election.
    pub beacon: [u8; 32],
    /// The finalized block the epoch builds on (treated as notarized in view 0).
    pub anchor: Hash,
    /// Height of the anchor block.
    pub anchor_height: Height,
    /// The view the anchor was finalized in (0 for the epoch's first block). A node restarting
    /// mid-epoch anchors on its last finalized block.
    pub anchor_view: View,
    /// This node's index, or `None` for an observer that follows without voting.
    pub me: Option<ValidatorIndex>,
    /// Base view timeout in milliseconds.
    pub timeout_ms: u64,
    /// Cap on the timeout doubling over consecutive nullified views (timeout × 2^cap).
    pub max_backoff_exp: u32,
    /// How many views ahead of the current one votes are buffered.
    pub future_views: u64,
    /// Finalize votes go to this many *collectors* per view (the leaders of the next views,
    /// distinct), which form the finalization and broadcast it, instead of to everyone: about
    /// n² fewer messages per view for one more hop to finality. 0 broadcasts them. Timeouts
    /// and restarts still broadcast every vote, so lost collectors cost latency, never safety.
    pub collectors: u16,
}

/// Validator sets at least this large send finalize votes to [`COLLECTORS`] collectors
/// instead of to everyone ([`Config::collectors`]); in smaller ones a broadcast costs little
/// and saves the collectors' extra hop.
pub const COLLECTORS_FROM: usize = 10;

/// Collectors of each view's finalize votes in a large validator set: enough that one or two
/// being slow or down rarely leaves a view without its finalization.
pub const COLLECTORS: u16 = 3;

/// The collectors setting for a set of `n` validators: [`COLLECTORS`] from
/// [`COLLECTORS_FROM`] validators, else 0 (broadcast).
pub fn default_collectors(n: usize) -> u16 {
    if n >= COLLECTORS_FROM { COLLECTORS } else { 0 }
}

/// Something that happened, for the engine to react to.
#[derive(Clone, Debug)]
pub enum Input<S> {
    /// Start (or restart) from the persisted safety state (the default state on first start)
    /// and the certificates journaled through [`Effect::Certified`] since the last finalization.
    Start {
        /// The WAL record.
        safety: SafetyState,
        /// Journaled certificates, in any order.
        certificates: Vec<Certificate<S>>,
    },
    /// A message from another validator (already size-checked and decoded by the network).
    Message {
        /// The sending peer.
        from: ValidatorIndex,
        /// The message.
        message: Message<S>,
    },
    /// A timer set by [`Effect::Timeout`] fired.
    Timeout(View),
    /// The application built the payload asked for by [`Effect::Propose`].
    ProposalReady {
        /// The view it was asked for.
        view: View,
        /// Digest of the block contents.
        payload: Hash,
    },
    /// The application checked a proposal asked for by [`Effect::Verify`].
    Verified {
        /// The proposal's digest.
        digest: Hash,
        /// Whether the block is valid.
        valid: bool,
    },
    /// The safety state of [`Effect::Persist`] with this token is durable.
    Persisted(u64),
    /// A validator (re)connected: repeat this validator's votes of its current view and the
    /// certificates that lead to it, as a timeout does, but sign nothing new and set no timer.
    /// After a partition heals, the view moves on within a round trip of the reconnection,
    /// not at the next (possibly backed-off) timeout.
    Resend,
}

/// Why a peer is penalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Offence {
    /// A signature that does not verify.
    BadSignature,
    /// A signer index outside the validator set, or without stake.
    NotAValidator,
    /// A certificate without a quorum or with a bad aggregate.
    InvalidCertificate,
    /// A proposal that does not extend the chain correctly, or that the application refused.
    InvalidProposal,
    /// Two conflicting signed votes in one view.
    Equivocation,
}

/// Something the driver must do.
#[derive(Clone, Debug)]
pub enum Effect<S> {
    /// Send to every validator.
    Broadcast(Message<S>),
    /// Send to one validator.
    Send {
        /// The recipient.
        to: ValidatorIndex,
        /// The message.
        message: Message<S>,
    },
    /// Make this safety state durable, then answer [`Input::Persisted`] with the token. The vote
    /// it records is released only after that answer.
    Persist {
        /// The state to write.
        state: SafetyState,
        /// The token to acknowledge.
        token: u64,
    },
    /// Answer [`Input::Timeout`] for this view after the delay.
    Timeout {
        /// The view.
        view: View,
        /// Delay in milliseconds.
        after_ms: u64,
    },
    /// Build a block for `view` on top of `parent` and answer [`Input::ProposalReady`].
    Propose {
        /// The view to propose in.
        view: View,
        /// The parent's digest.
        parent: Hash,
        /// The new block's height.
        height: Height,
    },
    /// Check the block behind this proposal and answer [`Input::Verified`].
    Verify(Proposal),
    /// A block is final. Emitted in height order, exactly once per height.
    Finalized {
        /// The finalized proposal.
        proposal: Proposal,
        /// The finalization certificate of this block or of a descendant.
        certificate: Certificate<S>,
    },
    /// The engine entered a new view (for metrics and traces).
    EnteredView(View),
    /// A new certificate: journal it and hand it back in [`Input::Start`] after a restart (it
    /// may be needed to move peers on, and the peers that sent it may be gone). Certificates of
    /// views at or below the last finalized one can be dropped.
    Certified(Certificate<S>),
    /// A peer misbehaved.
    Penalize {
        /// The peer.
        peer: ValidatorIndex,
        /// What it did.
        offence: Offence,
    },
    /// Two conflicting votes signed by one validator: proof of equivocation.
    Evidence {
        /// The first vote seen.
        first: Vote<S>,
        /// The conflicting vote.
        second: Vote<S>,
    },
}

#[derive(Debug)]
struct ViewState<Sig> {
    /// The leader's proposal (its verified notarize vote), once seen.
    proposal: Option<Proposal>,
    verify_asked: bool,
    valid: Option<bool>,
    proposing: Option<(Hash, Height)>,
    fetch_asked: bool,
    notarize: BTreeMap<Hash, Bucket<Sig>>,
    nullify: Bucket<Sig>,
    finalize: BTreeMap<Hash, Bucket<Sig>>,
    /// The first vote of each kind of each signer, to catch equivocation (two notarize or two
    /// finalize votes on different proposals, or a nullify and a finalize).
    first_votes: FirstVotes<Sig>,
    notarization: Option<Certificate<Sig>>,
    nullification: Option<Certificate<Sig>>,
    finalization: Option<Certificate<Sig>>,
}

impl<Sig> Default for ViewState<Sig> {
    fn default() -> Self {
        ViewState {
            proposal: None,
            verify_asked: false,
            valid: None,
            proposing: None,
            fetch_asked: false,
            notarize: BTreeMap::new(),
            nullify: Bucket::default(),
            finalize: BTreeMap::new(),
            first_votes: FirstVotes::default(),
            notarization: None,
            nullification: None,
            finalization: None,
        }
    }
}

/// The first vote of each kind of each signer in one view, by kind and then signer index: a
/// lookup for every vote received. The table holds pointers, so that the lookup, which mostly
/// finds nothing, touches little memory; the votes themselves are needed only as evidence.
#[derive(Debug)]
struct FirstVotes<Sig>([Vec<Option<Box<Vote<Sig>>>>; 3]);

impl<Sig> Default for FirstVotes<Sig> {
    fn default() -> Self {
        FirstVotes([Vec::new(), Vec::new(), Vec::new()])
    }
}

/// [`signing_message`] from `cache` ([`Engine::signing_message`]; a function of the fields it
/// needs, so that it can be called while the engine's view state is borrowed).
fn remembered_signing_message(
    cache: &RefCell<Vec<Option<SigningEntry>>>,
    netuid: NetUid,
    kind: VoteKind,
    subject: &Subject,
) -> Arc<[u8]> {
    let slot =
        kind_index(kind) * SIGNING_CACHE + (subject.view().0 % SIGNING_CACHE as u64) as usize;
    let mut cache = cache.borrow_mut();
    if let Some((k, s, m)) = &cache[slot]
        && *k == kind
        && s == subject
    {
        return m.clone();
    }
    let m: Arc<[u8]> = signing_message(netuid, kind, subject).into();
    cache[slot] = Some((kind, *subject, m.clone()));
    m
}

/// A vote kind's place (0–2) in tables kept per kind.
fn kind_index(kind: VoteKind) -> usize {
    match kind {
        VoteKind::Notarize => 0,
        VoteKind::Nullify => 1,
        VoteKind::Finalize => 2,
    }
}

impl<Sig: Clone> FirstVotes<Sig> {
    fn get(&self, kind: VoteKind, signer: ValidatorIndex) -> Option<&Vote<Sig>> {
        self.0[kind_index(kind)]
            .get(usize::from(signer))
            .and_then(Option::as_deref)
    }

    fn remove(&mut self, kind: VoteKind, signer: ValidatorIndex) {
        if let Some(v) = self.0[kind_index(kind)].get_mut(usize::from(signer)) {
            *v = None;
        }
    }

    /// The place of `signer`'s vote of `kind`, the table sized for all `n` validators at once
    /// (growing it signer by signer would copy it again and again).
    fn entry(
        &mut self,
        kind: VoteKind,
        signer: ValidatorIndex,
        n: usize,
    ) -> &mut Option<Box<Vote<Sig>>> {
        let table = &mut self.0[kind_index(kind)];
        let i = usize::from(signer);
        if table.len() <= i {
            table.resize_with(n.max(i + 1), || None);
        }
        &mut table[i]
    }

    /// Keeps `vote` unless its signer already has a vote of its kind here.
    fn keep_first(&mut self, vote: &Vote<Sig>, n: usize) {
        self.entry(vote.kind, vote.signer, n)
            .get_or_insert_with(|| Box::new(vote.clone()));
    }

    /// Keeps `vote` in place of any vote of its kind by its signer.
    fn replace(&mut self, vote: &Vote<Sig>, n: usize) {
        *self.entry(vote.kind, vote.signer, n) = Some(Box::new(vote.clone()));
    }
}

enum Ancestry {
    Valid,
    Invalid,
    MissingParent,
    MissingNullification,
}

impl<Sig> ViewState<Sig> {
    /// The bucket collecting votes of `kind` on the subject with `digest` (`None` for a view;
    /// created on first use). Callers hash the subject once per vote: hashing is most of a
    /// vote's cost in the simulator.
    fn bucket(&mut self, kind: VoteKind, digest: Option<Hash>) -> Option<&mut Bucket<Sig>> {
        match (kind, digest) {
            (VoteKind::Nullify, _) => Some(&mut self.nullify),
            (VoteKind::Notarize, Some(d)) => Some(self.notarize.entry(d).or_default()),
            (VoteKind::Finalize, Some(d)) => Some(self.finalize.entry(d).or_default()),
            _ => None,
        }
    }
}

/// The last finalized block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finalized {
    /// Its digest.
    pub digest: Hash,
    /// Its height.
    pub height: Height,
    /// The view it was proposed in (0 for the anchor).
    pub view: View,
}

/// One validator's (or observer's) consensus state for one epoch.
pub struct Engine<S: Scheme> {
    cfg: Config,
    scheme: S,
    safety: Option<SafetyRules>,
    view: View,
    views: BTreeMap<View, ViewState<S::Signature>>,
    /// Notarized proposals by digest, with their notarization (for ancestry and fetches).
    notarized: BTreeMap<Hash, (Proposal, Certificate<S::Signature>)>,
    finalized: Finalized,
    latest_finalization: Option<Certificate<S::Signature>>,
    /// A finalization waiting for ancestors to be fetched.
    awaiting: Option<(Proposal, Certificate<S::Signature>)>,
    unreleased: BTreeMap<u64, Vote<S::Signature>>,
    next_token: u64,
    nullified_streak: u32,
    /// The view we last asked a peer about, so we ask once per view.
    asked_view: Option<View>,
    /// Recent views' leaders, by view modulo the length: every vote asks whether its signer
    /// leads its view, and each draw is a keyed hash.
    leaders: [Cell<Option<(View, ValidatorIndex)>>; LEADER_CACHE],
    /// The signing messages of recent subjects, by kind and view modulo [`SIGNING_CACHE`]:
    /// every vote needs its own, and each is a proposal digest (an encoding and a hash) behind
    /// a domain tag.
    signing: RefCell<Vec<Option<SigningEntry>>>,
    /// Recent proposals' digests, by view modulo the length: every notarize and finalize vote
    /// names its proposal, and a digest is an encoding and a hash.
    digests: [Cell<Option<(Proposal, Hash)>>; DIGEST_CACHE],
    out: Vec<Effect<S::Signature>>,
}

/// A remembered signing message, with the kind and subject it is for.
type SigningEntry = (VoteKind, Subject, Arc<[u8]>);

/// Views whose signing messages [`Engine::signing_message`] remembers (one per vote kind).
const SIGNING_CACHE: usize = 16;

/// Views whose leaders [`Engine::leader`] remembers.
const LEADER_CACHE: usize = 16;

/// Views whose proposal digests [`Engine::proposal_digest`] remembers.
const DIGEST_CACHE: usize = 16;

impl<S: Scheme> Engine<S> {
    /// An engine for `cfg`, verifying (and, for a validator, signing) with `scheme`.
    pub fn new(cfg: Config, scheme: S) -> Engine<S> {
        let finalized = Finalized {
            digest: cfg.anchor,
            height: cfg.anchor_height,
            view: cfg.anchor_view,
        };
        Engine {
            safety: None,
            view: View(0),
            views: BTreeMap::new(),
            notarized: BTreeMap::new(),
            finalized,
            latest_finalization: None,
            awaiting: None,
            unreleased: BTreeMap::new(),
            next_token: 0,
            nullified_streak: 0,
            asked_view: None,
            leaders: std::array::from_fn(|_| Cell::new(None)),
            signing: RefCell::new(vec![None; 3 * SIGNING_CACHE]),
            digests: std::array::from_fn(|_| Cell::new(None)),
            out: Vec::new(),
            scheme,
            cfg,
        }
    }

    /// The current view.
    pub fn view(&self) -> View {
        self.view
    }

    /// The last finalized block.
    pub fn finalized(&self) -> Finalized {
        self.finalized
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The leader of `view`.
    pub fn leader(&self, view: View) -> ValidatorIndex {
        let slot = &self.leaders[(view.0 % LEADER_CACHE as u64) as usize];
        match slot.get() {
            Some((v, leader)) if v == view => leader,
            _ => {
                let leader = self.cfg.validators.leader(&self.cfg.beacon, view);
                slot.set(Some((view, leader)));
                leader
            }
        }
    }

    /// [`Subject::digest`], from [`Engine::proposal_digest`].
    fn subject_digest(&self, subject: &Subject) -> Option<Hash> {
        match subject {
            Subject::Proposal(p) => Some(self.proposal_digest(p)),
            Subject::View(..) => None,
        }
    }

    /// [`Proposal::digest`], remembering the last proposal of each of the recent views.
    fn proposal_digest(&self, p: &Proposal) -> Hash {
        let slot = &self.digests[(p.view.0 % DIGEST_CACHE as u64) as usize];
        match slot.get() {
            Some((q, digest)) if q == *p => digest,
            _ => {
                let digest = p.digest();
                slot.set(Some((*p, digest)));
                digest
            }
        }
    }

    /// [`signing_message`] for `kind` and `subject`, remembering the last of each kind in each
    /// of the recent views.
    fn signing_message(&self, kind: VoteKind, subject: &Subject) -> Arc<[u8]> {
        remembered_signing_message(&self.signing, self.cfg.netuid, kind, subject)
    }

    /// The collectors of `view`'s finalize votes ([`Config::collectors`]): the leaders of the
    /// views after it, without repeats (stake-weighted, so a few draws may be needed; bounded),
    /// in draw order. Empty when finalize votes are broadcast.
    pub fn collectors(&self, view: View) -> Vec<ValidatorIndex> {
        let want = usize::from(self.cfg.collectors).min(self.cfg.validators.len());
        let mut out: Vec<ValidatorIndex> = Vec::with_capacity(want);
        let mut next = view.0;
        for _ in 0..want * 16 {
            if out.len() == want {
                break;
            }
            next += 1;
            let leader = self.leader(View(next));
            if !out.contains(&leader) {
                out.push(leader);
            }
        }
        out
    }

    /// Whether this validator collects `view`'s finalize votes.
    fn collects(&self, view: View) -> bool {
        self.cfg.collectors > 0
            && self
                .cfg
                .me
                .is_some_and(|me| self.collectors(view).contains(&me))
    }

    /// Reacts to one input; returns what the driver must do, in order.
    pub fn handle(&mut self, input: Input<S::Signature>) -> Vec<Effect<S::Signature>> {
        let mut effects = Vec::new();
        self.handle_into(input, &mut effects);
        effects
    }

    /// [`Engine::handle`], with the effects in `effects` (cleared first): a driver that keeps
    /// one buffer for every input allocates nothing for them.
    pub fn handle_into(
        &mut self,
        input: Input<S::Signature>,
        effects: &mut Vec<Effect<S::Signature>>,
    ) {
        match input {
            Input::Start {
                safety,
                certificates,
            } => self.start(safety, certificates),
            Input::Message { from, message } => self.on_message(from, message),
            Input::Timeout(view) => self.on_timeout(view),
            Input::ProposalReady { view, payload } => self.on_proposal_ready(view, payload),
            Input::Verified { digest, valid } => self.on_verified(digest, valid),
            Input::Persisted(token) => self.on_persisted(token),
            Input::Resend => self.on_resend(),
        }
        effects.clear();
        std::mem::swap(&mut self.out, effects);
    }

    fn start(&mut self, state: SafetyState, mut certificates: Vec<Certificate<S::Signature>>) {
        // Our own journal: verified before it was written.
        certificates.sort_by_key(|c| c.subject.view());
        for cert in certificates {
            self.apply_certificate(cert, false);
        }
        // Views start afresh in each epoch: a state of another epoch says nothing here.
        let mut view = if state.epoch == self.cfg.epoch {
            state.view
        } else {
            View(0)
        };
        if let Some(me) = self.cfg.me {
            let rules = SafetyRules::new(self.cfg.netuid, self.cfg.epoch, me, state);
            let state = rules.state();
            view = state.view;
            // The proposal we notarized before the crash stays this view's proposal.
            if let Some(p) = state.notarized {
                let view_state = self.state(p.view);
                view_state.proposal = Some(p);
                view_state.valid = Some(true);
            }
            // Votes recorded before a crash may never have left: send them again, unchanged.
            for vote in rules.resend(&self.scheme) {
                self.add_own_vote(&vote);
                self.out.push(Effect::Broadcast(Message::Vote(vote)));
            }
            self.safety = Some(rules);
        }
        self.enter_view(View(view.0.max(self.finalized.view.0 + 1)));
    }

    fn timeout_ms(&self) -> u64 {
        self.cfg.timeout_ms << self.nullified_streak.min(self.cfg.max_backoff_exp)
    }

    fn state(&mut self, view: View) -> &mut ViewState<S::Signature> {
        self.views.entry(view).or_default()
    }

    fn enter_view(&mut self, view: View) {
        if view <= self.view {
            return;
        }
        self.view = view;
        self.out.push(Effect::EnteredView(view));
        self.out.push(Effect::Timeout {
            view,
            after_ms: self.timeout_ms(),
        });
        if self.cfg.me == Some(self.leader(view)) {
            self.try_propose(view);
        }
        self.try_vote_on_proposal(view);
    }

    fn on_timeout(&mut self, view: View) {
        if view != self.view {
            return;
        }
        // Already nullified before this timeout: repeat our votes (durable once nothing waits
        // for the WAL) and the latest certificates so that peers that missed them can move
        // on. A first nullify vote leaves only once it is durable.
        let resend = self.unreleased.is_empty()
            && self.safety.as_ref().is_some_and(|rules| {
                let s = rules.state();
                s.view == view && s.nullified
            });
        self.sign_and_persist(|rules, scheme| rules.nullify(scheme, view));
        if resend {
            self.repeat_votes();
        }
        self.resend_certificates(view);
        self.out.push(Effect::Timeout {
            view,
            after_ms: self.timeout_ms(),
        });
    }

    /// [`Input::Resend`]: this validator's votes of the current view, once all are durable
    /// (a vote still waiting for the WAL leaves when it is acknowledged), and the
    /// certificates that lead to the view.
    fn on_resend(&mut self) {
        let current = self
            .safety
            .as_ref()
            .is_some_and(|rules| rules.state().view == self.view);
        if current && self.unreleased.is_empty() {
            self.repeat_votes();
        }
        self.resend_certificates(self.view);
    }

    /// Repeats the votes the safety state records (the caller knows they are durable).
    fn repeat_votes(&mut self) {
        if let Some(rules) = &self.safety {
            for vote in rules.resend(&self.scheme) {
                self.out.push(Effect::Broadcast(Message::Vote(vote)));
            }
        }
    }

    /// The certificates of the view before `view` and the latest finalization, and asks for
    /// what this validator lacks.
    fn resend_certificates(&mut self, view: View) {
        if let Some(prev) = view.0.checked_sub(1).and_then(|w| self.views.get(&View(w))) {
            for cert in [&prev.notarization, &prev.nullification]
                .into_iter()
                .flatten()
            {
                self.out
                    .push(Effect::Broadcast(Message::Certificate(cert.clone())));
            }
        }
        if let Some(f) = &self.latest_finalization {
            self.out
                .push(Effect::Broadcast(Message::Certificate(f.clone())));
        }
        if let Some((p, _)) = &self.awaiting {
            self.out.push(Effect::Broadcast(Message::Fetch(p.parent)));
        }
        for missing in self.missing_views() {
            self.out
                .push(Effect::Broadcast(Message::FetchView(missing)));
        }
    }

    fn on_message(&mut self, from: ValidatorIndex, message: Message<S::Signature>) {
        match message {
            Message::Vote(vote) => self.on_vote(from, vote),
            Message::Certificate(cert) => self.on_certificate(from, cert),
            Message::Fetch(digest) => {
                let reply = match &self.latest_finalization {
                    Some(f) if f.subject.digest() == Some(digest) => Some(f.clone()),
                    _ => self.notarized.get(&digest).map(|(_, c)| c.clone()),
                };
                if let Some(cert) = reply {
                    self.out.push(Effect::Send {
                        to: from,
                        message: Message::Certificate(cert),
                    });
                }
            }
            Message::FetchView(view) => {
                // A view we finalized past: the finalization moves the asker beyond it.
                let certs: Vec<Certificate<S::Signature>> = if view <= self.finalized.view {
                    self.latest_finalization.iter().cloned().collect()
                } else {
                    self.views
                        .get(&view)
                        .map(|s| {
                            [&s.notarization, &s.nullification]
                                .into_iter()
                                .flatten()
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default()
                };
                for cert in certs {
                    self.out.push(Effect::Send {
                        to: from,
                        message: Message::Certificate(cert),
                    });
                }
            }
        }
    }

    /// Whether a message about `view` in `epoch` is worth looking at.
    fn relevant(&self, epoch: Epoch, view: View) -> bool {
        epoch == self.cfg.epoch
            && view > self.finalized.view
            && view.0 <= self.view.0 + self.cfg.future_views
    }
}
