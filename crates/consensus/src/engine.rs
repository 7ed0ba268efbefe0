//! The consensus engine: a pure state machine, `handle(input) -> effects`.
//!
//! The engine owns no sockets, clocks, threads or storage. The driver (the node, or the
//! simulator) feeds it [`Input`]s and performs the [`Effect`]s it returns, in order.

use std::collections::BTreeMap;

use platform_primitives::{Epoch, Hash, Height, NetUid, View};

use crate::safety::{SafetyRules, SafetyState};
use crate::scheme::Scheme;
use crate::types::{
    Certificate, Message, Proposal, Subject, ValidatorIndex, Vote, VoteKind, signing_message,
};
use crate::validators::Validators;
use crate::votes::Bucket;

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
    /// The first notarize and finalize vote of each signer, to catch equivocation.
    first_votes: BTreeMap<(VoteKind, ValidatorIndex), Vote<Sig>>,
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
            first_votes: BTreeMap::new(),
            notarization: None,
            nullification: None,
            finalization: None,
        }
    }
}

enum Ancestry {
    Valid,
    Invalid,
    MissingParent,
    MissingNullification,
}

impl<Sig> ViewState<Sig> {
    /// The bucket collecting votes of `kind` on `subject` (created on first use).
    fn bucket(&mut self, kind: VoteKind, subject: &Subject) -> Option<&mut Bucket<Sig>> {
        match (kind, subject.digest()) {
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
    out: Vec<Effect<S::Signature>>,
}

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
        self.cfg.validators.leader(&self.cfg.beacon, view)
    }

    /// Reacts to one input; returns what the driver must do, in order.
    pub fn handle(&mut self, input: Input<S::Signature>) -> Vec<Effect<S::Signature>> {
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
        }
        std::mem::take(&mut self.out)
    }

    fn start(&mut self, state: SafetyState, mut certificates: Vec<Certificate<S::Signature>>) {
        // Our own journal: verified before it was written.
        certificates.sort_by_key(|c| c.subject.view());
        for cert in certificates {
            self.apply_certificate(cert, false);
        }
        if let Some(me) = self.cfg.me {
            let rules = SafetyRules::new(self.cfg.netuid, self.cfg.epoch, me, state);
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
        self.enter_view(View(state.view.0.max(self.finalized.view.0 + 1)));
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

    /// The newest notarized block a proposal in `view` may extend: the parent must be notarized
    /// and every view between it and `view` nullified. `None` while a certificate is missing.
    fn parent_for(&self, view: View) -> Option<(Hash, Height)> {
        let mut w = view.0.checked_sub(1)?;
        loop {
            if w <= self.finalized.view.0 {
                return (w == self.finalized.view.0)
                    .then_some((self.finalized.digest, self.finalized.height));
            }
            let state = self.views.get(&View(w))?;
            if let Some(n) = &state.notarization {
                let Subject::Proposal(p) = n.subject else {
                    return None;
                };
                return Some((p.digest(), p.height));
            }
            state.nullification.as_ref()?;
            w -= 1;
        }
    }

    /// Views between the newest notarized block and the current view for which this node holds
    /// no certificate (at most 32, newest first): without them it can neither propose nor vote.
    fn missing_views(&self) -> Vec<View> {
        let mut missing = Vec::new();
        let mut w = self.view.0;
        while w > self.finalized.view.0 + 1 && missing.len() < 32 {
            w -= 1;
            match self.views.get(&View(w)) {
                Some(s) if s.notarization.is_some() => break,
                Some(s) if s.nullification.is_some() => {}
                _ => missing.push(View(w)),
            }
        }
        missing
    }

    fn try_propose(&mut self, view: View) {
        if view != self.view || self.state(view).proposing.is_some() {
            return;
        }
        if let Some((parent, height)) = self.parent_for(view) {
            let next = Height(height.0 + 1);
            self.state(view).proposing = Some((parent, next));
            self.out.push(Effect::Propose {
                view,
                parent,
                height: next,
            });
        }
    }

    fn on_proposal_ready(&mut self, view: View, payload: Hash) {
        let Some((parent, height)) = self.views.get(&view).and_then(|s| s.proposing) else {
            return;
        };
        if view != self.view || self.views[&view].proposal.is_some() {
            return;
        }
        let proposal = Proposal {
            epoch: self.cfg.epoch,
            view,
            height,
            parent,
            payload,
        };
        let state = self.state(view);
        state.proposal = Some(proposal);
        state.valid = Some(true);
        self.sign_and_persist(|rules, scheme| rules.notarize(scheme, proposal));
    }

    /// Checks a proposal's place in the chain: its parent is the last finalized block or a
    /// notarized block after it, every view in between is nullified, and its height follows.
    fn ancestry(&self, p: &Proposal) -> Ancestry {
        let (parent_view, parent_height) = if p.parent == self.finalized.digest {
            (self.finalized.view, self.finalized.height)
        } else {
            match self.notarized.get(&p.parent) {
                Some((pp, _)) if pp.view > self.finalized.view => (pp.view, pp.height),
                Some(_) => return Ancestry::Invalid,
                None => return Ancestry::MissingParent,
            }
        };
        if parent_view >= p.view || p.height.0 != parent_height.0 + 1 {
            return Ancestry::Invalid;
        }
        for w in parent_view.0 + 1..p.view.0 {
            if self
                .views
                .get(&View(w))
                .is_none_or(|s| s.nullification.is_none())
            {
                return Ancestry::MissingNullification;
            }
        }
        Ancestry::Valid
    }

    /// Asks the application to check the current view's proposal once its ancestry is certified.
    fn try_vote_on_proposal(&mut self, view: View) {
        if view != self.view {
            return;
        }
        let Some(state) = self.views.get(&view) else {
            return;
        };
        let Some(p) = state.proposal else { return };
        if state.verify_asked || state.valid.is_some() {
            return;
        }
        match self.ancestry(&p) {
            Ancestry::Valid => {
                self.state(view).verify_asked = true;
                self.out.push(Effect::Verify(p));
            }
            Ancestry::Invalid => {
                self.out.push(Effect::Penalize {
                    peer: self.leader(view),
                    offence: Offence::InvalidProposal,
                });
                self.state(view).valid = Some(false);
            }
            Ancestry::MissingParent => {
                // Ask the leader once for the parent's notarization.
                let leader = self.leader(view);
                let state = self.state(view);
                if !state.fetch_asked {
                    state.fetch_asked = true;
                    self.out.push(Effect::Send {
                        to: leader,
                        message: Message::Fetch(p.parent),
                    });
                }
            }
            // Nullifications arrive with peers' timeouts; we try again when one is applied.
            Ancestry::MissingNullification => {}
        }
    }

    fn on_verified(&mut self, digest: Hash, valid: bool) {
        let view = self.view;
        let Some(state) = self.views.get_mut(&view) else {
            return;
        };
        let Some(p) = state.proposal.filter(|p| p.digest() == digest) else {
            return;
        };
        state.valid = Some(valid);
        if valid {
            self.sign_and_persist(|rules, scheme| rules.notarize(scheme, p));
        } else {
            self.out.push(Effect::Penalize {
                peer: self.leader(view),
                offence: Offence::InvalidProposal,
            });
        }
    }

    /// Signs through the safety rules and holds the vote until its state is durable.
    fn sign_and_persist(
        &mut self,
        sign: impl FnOnce(&mut SafetyRules, &S) -> Option<(Vote<S::Signature>, SafetyState)>,
    ) {
        let Some(rules) = self.safety.as_mut() else {
            return;
        };
        let Some((vote, state)) = sign(rules, &self.scheme) else {
            return;
        };
        let token = self.next_token;
        self.next_token += 1;
        self.unreleased.insert(token, vote);
        self.out.push(Effect::Persist { state, token });
    }

    fn on_persisted(&mut self, token: u64) {
        // Persists are acknowledged in order; release every vote up to this token.
        let released: Vec<u64> = self.unreleased.range(..=token).map(|(&t, _)| t).collect();
        for t in released {
            let vote = self.unreleased.remove(&t).expect("listed");
            self.out
                .push(Effect::Broadcast(Message::Vote(vote.clone())));
            self.add_own_vote(&vote);
        }
    }

    fn add_own_vote(&mut self, vote: &Vote<S::Signature>) {
        let state = self.views.entry(vote.subject.view()).or_default();
        state
            .first_votes
            .entry((vote.kind, vote.signer))
            .or_insert_with(|| vote.clone());
        self.add_verified_vote(vote.clone());
    }

    fn on_timeout(&mut self, view: View) {
        if view != self.view {
            return;
        }
        self.sign_and_persist(|rules, scheme| rules.nullify(scheme, view));
        // Already nullified: repeat our vote and the latest certificates so that peers that
        // missed them can move on.
        if let Some(rules) = &self.safety {
            let s = rules.state();
            if s.view == view && s.nullified {
                for vote in rules.resend(&self.scheme) {
                    self.out.push(Effect::Broadcast(Message::Vote(vote)));
                }
            }
        }
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
        self.out.push(Effect::Timeout {
            view,
            after_ms: self.timeout_ms(),
        });
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

    fn on_vote(&mut self, from: ValidatorIndex, vote: Vote<S::Signature>) {
        let epoch = match vote.subject {
            Subject::Proposal(p) => p.epoch,
            Subject::View(e, _) => e,
        };
        let view = vote.subject.view();
        let kind_fits = matches!(
            (vote.kind, &vote.subject),
            (VoteKind::Nullify, Subject::View(..))
                | (
                    VoteKind::Notarize | VoteKind::Finalize,
                    Subject::Proposal(_)
                )
        );
        if !kind_fits || self.cfg.validators.stake(vote.signer) == 0 {
            self.out.push(Effect::Penalize {
                peer: from,
                offence: Offence::NotAValidator,
            });
            return;
        }
        if !self.relevant(epoch, view) {
            return;
        }
        if view > self.view && self.asked_view != Some(self.view) {
            // The sender is ahead: ask it once for the certificate that moved it past our view.
            self.asked_view = Some(self.view);
            self.out.push(Effect::Send {
                to: from,
                message: Message::FetchView(self.view),
            });
        }
        let message = signing_message(self.cfg.netuid, vote.kind, &vote.subject);
        let n = self.cfg.validators.len();

        // A second notarize or finalize vote of one signer in one view, on another proposal:
        // either equivocation (both verify) or a forgery in someone's name (one does not).
        if vote.kind != VoteKind::Nullify {
            let first = self
                .views
                .get(&view)
                .and_then(|s| s.first_votes.get(&(vote.kind, vote.signer)))
                .cloned();
            if let Some(first) = first.filter(|f| f.subject != vote.subject) {
                if !self
                    .scheme
                    .verify(vote.signer, n, &message, &vote.signature)
                {
                    self.out.push(Effect::Penalize {
                        peer: from,
                        offence: Offence::BadSignature,
                    });
                    return;
                }
                let first_msg = signing_message(self.cfg.netuid, first.kind, &first.subject);
                if self
                    .scheme
                    .verify(first.signer, n, &first_msg, &first.signature)
                {
                    self.out.push(Effect::Penalize {
                        peer: vote.signer,
                        offence: Offence::Equivocation,
                    });
                    self.out.push(Effect::Evidence {
                        first,
                        second: vote,
                    });
                    return;
                }
                // The first was forged: forget it and count this one.
                let v = &self.cfg.validators;
                let state = self.views.entry(view).or_default();
                let buckets = if vote.kind == VoteKind::Notarize {
                    &mut state.notarize
                } else {
                    &mut state.finalize
                };
                if let Some(b) = first.subject.digest().and_then(|d| buckets.get_mut(&d)) {
                    b.remove(vote.signer, v);
                }
                state
                    .first_votes
                    .insert((vote.kind, vote.signer), vote.clone());
                self.add_verified_vote(vote);
                return;
            }
        }

        // The leader's notarize vote is its proposal: check it on its own before acting on it.
        let is_proposal = vote.kind == VoteKind::Notarize
            && vote.signer == self.leader(view)
            && self.views.get(&view).is_none_or(|s| s.proposal.is_none());
        if is_proposal {
            if !self
                .scheme
                .verify(vote.signer, n, &message, &vote.signature)
            {
                self.out.push(Effect::Penalize {
                    peer: from,
                    offence: Offence::BadSignature,
                });
                return;
            }
            let Subject::Proposal(p) = vote.subject else {
                unreachable!("checked above")
            };
            let state = self.state(view);
            state.proposal = Some(p);
            state
                .first_votes
                .insert((vote.kind, vote.signer), vote.clone());
            self.add_verified_vote(vote);
            self.try_vote_on_proposal(view);
            return;
        }

        let v = &self.cfg.validators;
        let state = self.views.entry(view).or_default();
        if vote.kind != VoteKind::Nullify {
            state
                .first_votes
                .entry((vote.kind, vote.signer))
                .or_insert_with(|| vote.clone());
        }
        let Some(bucket) = state.bucket(vote.kind, &vote.subject) else {
            return;
        };
        if !bucket.add_pending(vote.signer, vote.signature, from, v) {
            return;
        }
        for peer in bucket.verify_if_useful(&self.scheme, v, &message) {
            self.out.push(Effect::Penalize {
                peer,
                offence: Offence::BadSignature,
            });
        }
        self.try_certify(vote.kind, vote.subject);
    }

    /// Counts a vote known to be valid and certifies if it completes a quorum.
    fn add_verified_vote(&mut self, vote: Vote<S::Signature>) {
        let v = &self.cfg.validators;
        let state = self.views.entry(vote.subject.view()).or_default();
        let Some(bucket) = state.bucket(vote.kind, &vote.subject) else {
            return;
        };
        bucket.add_verified(vote.signer, vote.signature, v);
        self.try_certify(vote.kind, vote.subject);
    }

    /// Forms a certificate from a bucket that reached a verified quorum, applies it and
    /// broadcasts it.
    fn try_certify(&mut self, kind: VoteKind, subject: Subject) {
        let view = subject.view();
        let v = &self.cfg.validators;
        let Some(state) = self.views.get_mut(&view) else {
            return;
        };
        let Some(bucket) = state.bucket(kind, &subject) else {
            return;
        };
        let Some((signers, signature)) = bucket.certificate(&self.scheme, v) else {
            return;
        };
        let cert = Certificate {
            kind,
            subject,
            signers,
            signature,
        };
        if self.apply_certificate(cert.clone(), true) {
            self.out.push(Effect::Broadcast(Message::Certificate(cert)));
        }
    }

    fn on_certificate(&mut self, from: ValidatorIndex, cert: Certificate<S::Signature>) {
        let epoch = match cert.subject {
            Subject::Proposal(p) => p.epoch,
            Subject::View(e, _) => e,
        };
        let view = cert.subject.view();
        // Finalizations of older views still matter to a node that is behind.
        let useful = epoch == self.cfg.epoch
            && (self.relevant(epoch, view)
                || (cert.kind == VoteKind::Notarize && self.awaiting.is_some())
                || (cert.kind == VoteKind::Finalize && view > self.finalized.view));
        if !useful || self.has_certificate(&cert) {
            return;
        }
        let kind_fits = matches!(
            (cert.kind, &cert.subject),
            (VoteKind::Nullify, Subject::View(..))
                | (
                    VoteKind::Notarize | VoteKind::Finalize,
                    Subject::Proposal(_)
                )
        );
        let stake = self.cfg.validators.stake_of(cert.signers.members());
        let message = signing_message(self.cfg.netuid, cert.kind, &cert.subject);
        if !kind_fits
            || !self.cfg.validators.is_quorum(stake)
            || !self
                .scheme
                .verify_aggregate(&cert.signers, &message, &cert.signature)
        {
            self.out.push(Effect::Penalize {
                peer: from,
                offence: Offence::InvalidCertificate,
            });
            return;
        }
        self.apply_certificate(cert, true);
    }

    fn has_certificate(&self, cert: &Certificate<S::Signature>) -> bool {
        let view = cert.subject.view();
        match cert.kind {
            VoteKind::Notarize => cert
                .subject
                .digest()
                .is_some_and(|d| self.notarized.contains_key(&d)),
            VoteKind::Nullify => self
                .views
                .get(&view)
                .is_some_and(|s| s.nullification.is_some()),
            VoteKind::Finalize => self
                .views
                .get(&view)
                .is_some_and(|s| s.finalization.is_some()),
        }
    }

    /// Records a verified certificate and acts on it (asking the driver to journal it when
    /// `journal`). Returns false if it was already known.
    fn apply_certificate(&mut self, cert: Certificate<S::Signature>, journal: bool) -> bool {
        if self.has_certificate(&cert) {
            return false;
        }
        if journal {
            self.out.push(Effect::Certified(cert.clone()));
        }
        let view = cert.subject.view();
        match (cert.kind, cert.subject) {
            (VoteKind::Notarize, Subject::Proposal(p)) => {
                self.notarized.insert(p.digest(), (p, cert.clone()));
                if view > self.finalized.view {
                    self.state(view).notarization = Some(cert);
                }
                if view == self.view {
                    self.sign_and_persist(|rules, scheme| rules.finalize(scheme, p));
                }
                if view >= self.view {
                    self.nullified_streak = 0;
                    self.enter_view(View(view.0 + 1));
                }
                self.retry_awaiting();
                // A newly certified parent may unblock the current view's proposal.
                self.try_vote_on_proposal(self.view);
                self.try_propose_current();
            }
            (VoteKind::Nullify, Subject::View(..)) => {
                self.state(view).nullification = Some(cert);
                if view >= self.view {
                    self.nullified_streak += 1;
                    self.enter_view(View(view.0 + 1));
                }
                self.try_vote_on_proposal(self.view);
                self.try_propose_current();
            }
            (VoteKind::Finalize, Subject::Proposal(p)) => {
                self.state(view).finalization = Some(cert.clone());
                self.finalize_chain(p, cert);
                if view >= self.view {
                    self.nullified_streak = 0;
                    self.enter_view(View(view.0 + 1));
                }
            }
            _ => return false,
        }
        true
    }

    fn try_propose_current(&mut self) {
        let view = self.view;
        if self.cfg.me == Some(self.leader(view)) {
            self.try_propose(view);
        }
    }

    fn retry_awaiting(&mut self) {
        if let Some((p, cert)) = self.awaiting.take() {
            self.finalize_chain(p, cert);
        }
    }

    /// Finalizes `head` and every ancestor down to the last finalized block, in height order. If
    /// an ancestor is unknown, fetches it and waits.
    fn finalize_chain(&mut self, head: Proposal, cert: Certificate<S::Signature>) {
        if head.height <= self.finalized.height {
            return;
        }
        let mut chain = vec![head];
        let mut cursor = head.parent;
        while cursor != self.finalized.digest {
            match self.notarized.get(&cursor) {
                Some((p, _)) if p.height > self.finalized.height => {
                    chain.push(*p);
                    cursor = p.parent;
                }
                Some(_) => return, // does not extend our finalized chain: cannot be honest
                None => {
                    let replace = self
                        .awaiting
                        .as_ref()
                        .is_none_or(|(a, _)| a.height < head.height);
                    if replace {
                        self.out.push(Effect::Broadcast(Message::Fetch(cursor)));
                        self.awaiting = Some((head, cert));
                    }
                    return;
                }
            }
        }
        for p in chain.into_iter().rev() {
            self.out.push(Effect::Finalized {
                proposal: p,
                certificate: cert.clone(),
            });
        }
        self.finalized = Finalized {
            digest: head.digest(),
            height: head.height,
            view: head.view,
        };
        self.latest_finalization = Some(cert);
        if self
            .awaiting
            .as_ref()
            .is_some_and(|(a, _)| a.height <= head.height)
        {
            self.awaiting = None;
        }
        // Views at or below the finalized one can no longer matter.
        let keep = self.views.split_off(&head.view);
        self.views = keep;
    }
}
