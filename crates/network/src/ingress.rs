//! The one ingress pipeline (DESIGN invariant 6). Every gossip message passes its stages
//! cheapest first, so that what a peer can send for free never buys a signature check:
//!
//! 1. the topic's **size cap**, before any parsing;
//! 2. the **replay cache**: a message seen before (the cache survives restarts, see
//!    [`crate::seen::SeenStore`]) costs a hash lookup;
//! 3. the **relay**: the peer that forwarded it is bound to a validator of the epoch with stake
//!    (observers' and strangers' messages are neither accepted nor forwarded);
//! 4. a **strict Borsh decode** of the envelope (no trailing bytes), its netuid and topic;
//! 5. the **author** is a validator of the epoch with stake;
//! 6. the **round window** around the topic's current round;
//! 7. the forwarding **peer's rate** (a token bucket per peer and topic);
//! 8. the topic's own **payload check** ([`TopicSpec::check`]);
//! 9. the author's **signature** — the one expensive stage, counted in
//!    [`MetricsSnapshot::signature_checks`](crate::metrics::MetricsSnapshot);
//! 10. the **author's rate**, after the signature, so that a forger cannot spend an honest
//!     author's budget;
//!
//! and only then is dispatched. Each rejection has a stable reason code, is counted in
//! [`Metrics`], and costs the forwarding peer score; a peer whose score falls to the ban
//! threshold is disconnected and banned for a period. Request-response requests go through
//! the same size caps and strict decoding (in the codec) and per-peer rate limits here.
//!
//! The pipeline is plain data and functions: no sockets and no libp2p swarm, so it is tested
//! directly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use platform_primitives::{Hash, Hotkey, NetUid, decode};

use crate::metrics::Metrics;
use crate::wire::{Envelope, Protocol, Topic};

/// A topic's own payload check: strict decoding of the payload and any checks of its kind.
/// Returns a stable reason code on refusal.
pub type PayloadCheck = Arc<dyn Fn(&Envelope) -> Result<(), &'static str> + Send + Sync>;

/// A token bucket's rate and burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: u32,
    /// Bucket capacity.
    pub burst: u32,
}

/// How one topic is policed.
#[derive(Clone)]
pub struct TopicSpec {
    /// Largest encoded envelope accepted.
    pub max_bytes: usize,
    /// How many rounds behind the current round a message may be.
    pub rounds_back: u64,
    /// How many rounds ahead of the current round a message may be.
    pub rounds_ahead: u64,
    /// Messages per forwarding peer.
    pub per_peer: Rate,
    /// Messages per author.
    pub per_author: Rate,
    /// The topic's payload check; `None` accepts any payload.
    pub check: Option<PayloadCheck>,
}

impl std::fmt::Debug for TopicSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSpec")
            .field("max_bytes", &self.max_bytes)
            .field("rounds_back", &self.rounds_back)
            .field("rounds_ahead", &self.rounds_ahead)
            .field("per_peer", &self.per_peer)
            .field("per_author", &self.per_author)
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl TopicSpec {
    /// Defaults for a topic: consensus messages are small and frequent, attestations and
    /// submissions small, announcements rarer.
    pub fn default_for(topic: Topic) -> TopicSpec {
        let (max_bytes, per_sec, burst) = match topic {
            Topic::Consensus => (20 * 1024, 200, 400),
            Topic::Submissions => (4 * 1024, 100, 200),
            Topic::Attestations => (4 * 1024, 100, 200),
            Topic::Announce => (4 * 1024, 20, 40),
        };
        // A consensus round is a view. A validator that fell behind (cut off, restarted, slow)
        // must still take the certificates of views far ahead of its own, since a finalization
        // moves it straight there: with a window of 16 views, one more than 16 behind could
        // not vote again until the next epoch. The engine keeps its own, tighter bound on
        // what it stores of future views.
        let rounds_ahead = match topic {
            Topic::Consensus => CONSENSUS_ROUNDS_AHEAD,
            _ => 16,
        };
        TopicSpec {
            max_bytes,
            rounds_back: 64,
            rounds_ahead,
            per_peer: Rate { per_sec, burst },
            per_author: Rate { per_sec, burst },
            check: None,
        }
    }
}

/// `Hello` requests per peer: a few at once (reconnects), then one a second; each refusal
/// costs the peer score, so a flood ends in a ban.
pub const HELLO_RATE: Rate = Rate {
    per_sec: 1,
    burst: 4,
};

/// How many views ahead of this node's a consensus message may be.
pub const CONSENSUS_ROUNDS_AHEAD: u64 = 1024;

/// What the pipeline decided about a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it and forward it.
    Accept(Envelope),
    /// Drop it, do not forward it, and let gossipsub penalize the path it came by.
    Reject(&'static str),
    /// Drop it without forwarding (not necessarily the forwarder's fault).
    Ignore(&'static str),
}

/// Score penalties. A peer starts at zero and is banned at [`BAN_SCORE`]; the score recovers by
/// one point per second.
fn penalty(reason: &str) -> i64 {
    match reason {
        // Consensus offences (reported by the node against the validator's own peer): a
        // conflicting vote is proof of a Byzantine validator and bans it at once.
        "equivocation" => 100,
        "bad_signature" | "oversize" | "malformed" | "invalid_certificate" | "bad_snapshot" => 50,
        "invalid_proposal" | "not_leader" | "duplicate_announcement" => 20,
        "wrong_netuid" | "wrong_topic" | "not_validator" => 20,
        "replayed" => 5,
        "rate_limited_peer" | "rate_limited_author" | "rate_limited" => 2,
        _ => 0,
    }
}

/// The least a refused gossip message costs its forwarder.
const REJECT_PENALTY: i64 = 20;

/// Score at or below which a peer is banned.
pub const BAN_SCORE: i64 = -100;

/// A token bucket over integer milli-tokens.
#[derive(Clone, Debug)]
struct Bucket {
    milli: u64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let cap = u64::from(rate.burst) * 1000;
        let elapsed = now.saturating_duration_since(self.at).as_millis() as u64;
        self.milli = cap.min(self.milli + elapsed.saturating_mul(u64::from(rate.per_sec)));
        self.at = now;
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// Token buckets keyed by anything, created full.
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Bucket>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets {
            map: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    fn take(&mut self, key: K, rate: Rate, now: Instant) -> bool {
        self.map
            .entry(key)
            .or_insert(Bucket {
                milli: u64::from(rate.burst) * 1000,
                at: now,
            })
            .take(rate, now)
    }
}

#[derive(Clone, Copy, Debug)]
struct Score {
    points: i64,
    at: Instant,
}

/// The identities and stakes the pipeline checks against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// The epoch's validators and their stakes.
    pub validators: BTreeMap<Hotkey, u64>,
    /// The libp2p peer ids the validators' key bindings declare: connection slots are kept for
    /// them (`crate::admission`).
    pub peer_ids: std::collections::BTreeSet<libp2p::PeerId>,
}

impl Membership {
    /// The validator's stake, if it is one with stake.
    pub fn stake(&self, hotkey: &Hotkey) -> Option<u64> {
        self.validators.get(hotkey).copied().filter(|s| *s > 0)
    }

    /// Total stake of the set.
    pub fn total(&self) -> u128 {
        self.validators.values().map(|s| u128::from(*s)).sum()
    }
}

/// The pipeline's state: policies, identities, replay cache, buckets and scores.
pub struct Ingress {
    netuid: NetUid,
    specs: BTreeMap<Topic, TopicSpec>,
    membership: Membership,
    bound: HashMap<PeerId, Hotkey>,
    rounds: BTreeMap<Topic, u64>,
    seen: HashMap<Hash, (Topic, u64)>,
    fresh: Vec<(Hash, Topic, u64)>,
    evicted: Vec<Hash>,
    peer_buckets: Buckets<(PeerId, Topic)>,
    author_buckets: Buckets<(Hotkey, Topic)>,
    request_buckets: Buckets<PeerId>,
    hello_buckets: Buckets<PeerId>,
    request_rate: Rate,
    scores: HashMap<PeerId, Score>,
    /// What each peer with a score was penalized for, and how often (for the ban's log line).
    causes: HashMap<PeerId, BTreeMap<String, u32>>,
    metrics: Arc<Metrics>,
}

impl Ingress {
    /// A pipeline for `netuid` with the given topic policies.
    pub fn new(
        netuid: NetUid,
        specs: BTreeMap<Topic, TopicSpec>,
        request_rate: Rate,
        metrics: Arc<Metrics>,
    ) -> Ingress {
        Ingress {
            netuid,
            specs,
            membership: Membership::default(),
            bound: HashMap::new(),
            rounds: BTreeMap::new(),
            seen: HashMap::new(),
            fresh: Vec::new(),
            evicted: Vec::new(),
            peer_buckets: Buckets::default(),
            author_buckets: Buckets::default(),
            request_buckets: Buckets::default(),
            hello_buckets: Buckets::default(),
            request_rate,
            scores: HashMap::new(),
            causes: HashMap::new(),
            metrics,
        }
    }

    /// The topic's policy.
    pub fn spec(&self, topic: Topic) -> &TopicSpec {
        &self.specs[&topic]
    }

    /// Replaces the validator set (at each epoch).
    pub fn set_membership(&mut self, m: Membership) {
        self.membership = m;
    }

    /// The validator set.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Records a verified identity binding.
    pub fn bind(&mut self, peer: PeerId, hotkey: Hotkey) {
        self.bound.insert(peer, hotkey);
    }

    /// Forgets a disconnected peer's binding.
    pub fn unbind(&mut self, peer: &PeerId) {
        self.bound.remove(peer);
    }

    /// The connected peers bound to `hotkey`.
    pub fn peers_of(&self, hotkey: &Hotkey) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .bound
            .iter()
            .filter(|(_, h)| *h == hotkey)
            .map(|(p, _)| *p)
            .collect();
        peers.sort();
        peers
    }

    /// The hotkey a peer proved, if any.
    pub fn bound_hotkey(&self, peer: &PeerId) -> Option<Hotkey> {
        self.bound.get(peer).copied()
    }

    /// Whether the peer is bound to a validator of the current set.
    pub fn is_validator_peer(&self, peer: &PeerId) -> bool {
        self.bound
            .get(peer)
            .is_some_and(|h| self.membership.stake(h).is_some())
    }

    /// Moves a topic's current round forward and forgets messages that fell out of its window.
    /// A round lower than the current one starts the topic's rounds afresh (consensus views
    /// restart with each epoch): every message of the topic is forgotten, since the old
    /// rounds' window would otherwise keep the previous epoch's last views for good.
    pub fn set_round(&mut self, topic: Topic, round: u64) {
        let restarted = self
            .rounds
            .insert(topic, round)
            .is_some_and(|old| round < old);
        let floor = if restarted {
            u64::MAX
        } else {
            round.saturating_sub(self.specs[&topic].rounds_back)
        };
        let evicted = &mut self.evicted;
        self.seen.retain(|id, (t, r)| {
            let keep = *t != topic || *r >= floor;
            if !keep {
                evicted.push(*id);
            }
            keep
        });
    }

    /// The topic's current round.
    pub fn round(&self, topic: Topic) -> u64 {
        self.rounds.get(&topic).copied().unwrap_or(0)
    }

    /// Puts back changes that could not be written yet.
    pub fn restore_changes(&mut self, fresh: Vec<(Hash, Topic, u64)>, evicted: Vec<Hash>) {
        self.fresh.splice(0..0, fresh);
        self.evicted.splice(0..0, evicted);
    }

    /// Restores message ids seen before a restart.
    pub fn restore_seen(&mut self, entries: impl IntoIterator<Item = (Hash, Topic, u64)>) {
        for (id, topic, round) in entries {
            self.seen.insert(id, (topic, round));
        }
    }

    /// Message ids accepted, and ids that left their window, since the last call: what the
    /// replay cache on disk must add and forget.
    pub fn take_changes(&mut self) -> (Vec<(Hash, Topic, u64)>, Vec<Hash>) {
        (
            std::mem::take(&mut self.fresh),
            std::mem::take(&mut self.evicted),
        )
    }

    /// Runs a gossip message through the pipeline. `source` is the peer that forwarded it.
    pub fn check_gossip(
        &mut self,
        topic: Topic,
        source: &PeerId,
        data: &[u8],
        now: Instant,
    ) -> Verdict {
        let verdict = self.run(topic, source, data, now);
        match &verdict {
            Verdict::Accept(_) => self.metrics.accepted(topic.name()),
            // A refused message costs its forwarder at least the price of an invalid payload
            // (honest peers never forward one); the topic's own checks name their reasons.
            Verdict::Reject(reason) => {
                self.metrics.rejected(topic.name(), reason);
                self.penalize_points(source, reason, penalty(reason).max(REJECT_PENALTY), now);
            }
            Verdict::Ignore(reason) => {
                self.metrics.rejected(topic.name(), reason);
                self.penalize(source, reason, now);
            }
        }
        verdict
    }

    fn run(&mut self, topic: Topic, source: &PeerId, data: &[u8], now: Instant) -> Verdict {
        let spec = &self.specs[&topic];
        // 1. Size cap, before parsing.
        if data.len() > spec.max_bytes {
            return Verdict::Reject("oversize");
        }
        // 2. Replay cache: an id in it is the hash of bytes that already passed every stage.
        let id = Hash::of(data);
        if self.seen.contains_key(&id) {
            return Verdict::Ignore("replayed");
        }
        // 3. Relay. Until the node has told us the validator set (it is still loading its state
        // at start), nobody can be judged: drop without blame.
        if self.membership.validators.is_empty() {
            return Verdict::Ignore("membership_unknown");
        }
        if !self.is_validator_peer(source) {
            return Verdict::Ignore("relay_not_validator");
        }
        // 4. Strict decode of the envelope.
        let Ok(env) = decode::<Envelope>("gossip envelope", data, spec.max_bytes) else {
            return Verdict::Reject("malformed");
        };
        if env.netuid != self.netuid {
            return Verdict::Reject("wrong_netuid");
        }
        if env.topic != topic {
            return Verdict::Reject("wrong_topic");
        }
        // 5. Author.
        if self.membership.stake(&env.author).is_none() {
            return Verdict::Reject("not_validator");
        }
        // 6. Round window.
        let current = self.round(topic);
        if env.round < current.saturating_sub(spec.rounds_back) {
            return Verdict::Ignore("stale_round");
        }
        if env.round > current.saturating_add(spec.rounds_ahead) {
            return Verdict::Ignore("future_round");
        }
        // 7. The forwarder's rate.
        let (per_peer, per_author) = (spec.per_peer, spec.per_author);
        if !self.peer_buckets.take((*source, topic), per_peer, now) {
            return Verdict::Ignore("rate_limited_peer");
        }
        // 8. The payload, by the topic's own check.
        if let Some(check) = &spec.check
            && let Err(reason) = check(&env)
        {
            return Verdict::Reject(reason);
        }
        // 9. Signature.
        self.metrics.signature_checked();
        if env.verify().is_err() {
            return Verdict::Reject("bad_signature");
        }
        // 10. The author's rate.
        if !self
            .author_buckets
            .take((env.author, topic), per_author, now)
        {
            return Verdict::Ignore("rate_limited_author");
        }
        self.seen.insert(id, (topic, env.round));
        self.fresh.push((id, topic, env.round));
        Verdict::Accept(env)
    }

    /// Admits a request-response request from `peer`: refused while the peer is banned or over
    /// its request rate. Returns the reason code for the error reply.
    pub fn check_request(
        &mut self,
        protocol: Protocol,
        peer: &PeerId,
        now: Instant,
    ) -> Result<(), &'static str> {
        // Hello has its own, slower budget: each one costs a signature check (the binding's),
        // and an honest peer sends one per connection.
        let (buckets, rate) = if protocol == Protocol::Hello {
            (&mut self.hello_buckets, HELLO_RATE)
        } else {
            (&mut self.request_buckets, self.request_rate)
        };
        if !buckets.take(*peer, rate, now) {
            self.metrics.rejected(protocol.name(), "rate_limited");
            self.penalize(peer, "rate_limited", now);
            return Err("rate_limited");
        }
        self.metrics.accepted(protocol.name());
        Ok(())
    }

    /// Counts a bad request or response (it failed decoding, or its content did not verify)
    /// and penalizes the peer.
    pub fn report(
        &mut self,
        what: &'static str,
        peer: &PeerId,
        reason: &'static str,
        now: Instant,
    ) {
        self.metrics.rejected(what, reason);
        self.penalize(peer, reason, now);
    }

    fn penalize(&mut self, peer: &PeerId, reason: &str, now: Instant) {
        self.penalize_points(peer, reason, penalty(reason), now);
    }

    fn penalize_points(&mut self, peer: &PeerId, reason: &str, p: i64, now: Instant) {
        if p == 0 {
            return;
        }
        *self
            .causes
            .entry(*peer)
            .or_default()
            .entry(reason.to_string())
            .or_default() += 1;
        let s = self
            .scores
            .entry(*peer)
            .or_insert(Score { points: 0, at: now });
        s.points = recovered(*s, now) - p;
        s.at = now;
    }

    /// The peer's current score.
    pub fn score(&self, peer: &PeerId, now: Instant) -> i64 {
        self.scores.get(peer).map_or(0, |s| recovered(*s, now))
    }

    /// Peers whose score reached the ban threshold, each with what it was penalized for
    /// (`reason×count, …`); their scores are reset (the ban itself is the punishment and lasts
    /// a fixed period).
    pub fn take_bannable(&mut self, now: Instant) -> Vec<(PeerId, String)> {
        let out: Vec<PeerId> = self
            .scores
            .iter()
            .filter(|(_, s)| recovered(**s, now) <= BAN_SCORE)
            .map(|(p, _)| *p)
            .collect();
        let out = out
            .into_iter()
            .map(|p| {
                self.scores.remove(&p);
                let causes = self.causes.remove(&p).unwrap_or_default();
                let why: Vec<String> = causes.iter().map(|(r, n)| format!("{r}×{n}")).collect();
                (p, why.join(", "))
            })
            .collect();
        self.scores.retain(|_, s| recovered(*s, now) < 0);
        let scores = &self.scores;
        self.causes.retain(|p, _| scores.contains_key(p));
        out
    }
}

fn recovered(s: Score, now: Instant) -> i64 {
    let secs = now.saturating_duration_since(s.at).as_secs() as i64;
    (s.points + secs).min(0)
}

/// A shared handle on the pipeline, locked only for the duration of one check (never across an
/// `.await`).
pub type SharedIngress = Arc<Mutex<Ingress>>;

/// How long a banned peer stays banned by default.
pub const DEFAULT_BAN: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;
    use platform_crypto::Keypair;
    use platform_primitives::encode;

    fn key(seed: u8) -> Keypair {
        Keypair::from_seed(&[seed; 32])
    }

    fn pipeline() -> (Ingress, PeerId, Keypair) {
        let specs = Topic::ALL
            .into_iter()
            .map(|t| (t, TopicSpec::default_for(t)))
            .collect();
        let mut ing = Ingress::new(
            NetUid(1),
            specs,
            Rate {
                per_sec: 10,
                burst: 10,
            },
            Arc::new(Metrics::default()),
        );
        let v = key(1);
        ing.set_membership(Membership {
            peer_ids: Default::default(),
            validators: [(v.hotkey(), 100), (key(9).hotkey(), 0)].into(),
        });
        let peer = PeerId::random();
        ing.bind(peer, v.hotkey());
        (ing, peer, v)
    }

    fn msg(k: &Keypair, round: u64, body: &[u8]) -> Vec<u8> {
        encode(&Envelope::sign(
            k,
            NetUid(1),
            Topic::Consensus,
            round,
            body.to_vec(),
        ))
    }

    /// A peer that bound no validator hotkey replays harvested, validly signed envelopes and
    /// sends junk: every message is refused before any signature is checked, and so is a
    /// validator peer's out-of-window or over-rate traffic.
    #[test]
    fn what_a_peer_sends_for_free_never_buys_a_signature_check() {
        let (mut ing, validator_peer, v) = pipeline();
        let now = Instant::now();
        let stranger = PeerId::random();
        let harvested: Vec<Vec<u8>> = (0..200u8).map(|i| msg(&v, 0, &[i])).collect();
        for m in &harvested {
            assert_eq!(
                ing.check_gossip(Topic::Consensus, &stranger, m, now),
                Verdict::Ignore("relay_not_validator")
            );
        }
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &stranger, b"junk", now),
            Verdict::Ignore("relay_not_validator")
        );
        // A validator peer: far-future rounds and a forged author cost no verification either.
        ing.set_round(Topic::Consensus, 10);
        let future = msg(&v, 10 + CONSENSUS_ROUNDS_AHEAD + 1, b"f");
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &validator_peer, &future, now),
            Verdict::Ignore("future_round")
        );
        let outsider = msg(&key(7), 10, b"o");
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &validator_peer, &outsider, now),
            Verdict::Reject("not_validator")
        );
        assert_eq!(ing.metrics.snapshot().signature_checks, 0);
        // Past the forwarder's burst, refusals are again free.
        let burst = TopicSpec::default_for(Topic::Consensus).per_peer.burst;
        let mut verdicts = BTreeMap::new();
        for i in 0..burst + 50 {
            let m = msg(&v, 10, &i.to_le_bytes());
            let verdict = match ing.check_gossip(Topic::Consensus, &validator_peer, &m, now) {
                Verdict::Accept(_) => "accepted",
                Verdict::Ignore(r) | Verdict::Reject(r) => r,
            };
            *verdicts.entry(verdict).or_insert(0u32) += 1;
        }
        assert_eq!(verdicts["accepted"], burst);
        assert_eq!(verdicts["rate_limited_peer"], 50);
        assert_eq!(ing.metrics.snapshot().signature_checks, u64::from(burst));
    }

    /// A validator peer forwarding envelopes forged in an honest author's name spends its own
    /// budget and score, never the author's: the author's rate is taken after the signature.
    #[test]
    fn forgeries_do_not_spend_an_honest_authors_rate() {
        let (mut ing, byzantine_peer, v) = pipeline();
        let now = Instant::now();
        for i in 0..20u8 {
            let mut env = Envelope::sign(&v, NetUid(1), Topic::Consensus, 0, vec![i]);
            env.payload.push(0xff);
            assert_eq!(
                ing.check_gossip(Topic::Consensus, &byzantine_peer, &encode(&env), now),
                Verdict::Reject("bad_signature")
            );
        }
        let honest_peer = PeerId::random();
        ing.bind(honest_peer, v.hotkey());
        let burst = TopicSpec::default_for(Topic::Consensus).per_author.burst;
        for i in 0..burst {
            let m = msg(&v, 0, &i.to_le_bytes());
            assert!(matches!(
                ing.check_gossip(Topic::Consensus, &honest_peer, &m, now),
                Verdict::Accept(_)
            ));
        }
        assert!(ing.score(&byzantine_peer, now) <= BAN_SCORE);
    }

    #[test]
    fn accepts_a_validators_message_once() {
        let (mut ing, peer, v) = pipeline();
        let now = Instant::now();
        let m = msg(&v, 0, b"a");
        assert!(matches!(
            ing.check_gossip(Topic::Consensus, &peer, &m, now),
            Verdict::Accept(_)
        ));
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &peer, &m, now),
            Verdict::Ignore("replayed")
        );
        assert_eq!(ing.take_changes().0.len(), 1);
    }

    #[test]
    fn before_the_validator_set_is_known_messages_are_dropped_without_blame() {
        let (mut ing, peer, v) = pipeline();
        ing.set_membership(Membership::default());
        let now = Instant::now();
        for i in 0..20u8 {
            assert_eq!(
                ing.check_gossip(Topic::Consensus, &peer, &msg(&v, 0, &[i]), now),
                Verdict::Ignore("membership_unknown")
            );
        }
        assert!(ing.take_bannable(now).is_empty());
        // Once it is known, the same validator's messages pass.
        ing.set_membership(Membership {
            peer_ids: Default::default(),
            validators: [(v.hotkey(), 100)].into(),
        });
        assert!(matches!(
            ing.check_gossip(Topic::Consensus, &peer, &msg(&v, 0, b"late"), now),
            Verdict::Accept(_)
        ));
    }

    #[test]
    fn each_stage_rejects_with_its_reason() {
        let (mut ing, peer, v) = pipeline();
        let now = Instant::now();
        let big = msg(&v, 0, &vec![0; 30 * 1024]);
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &peer, &big, now),
            Verdict::Reject("oversize")
        );
        let mut trailing = msg(&v, 0, b"x");
        trailing.push(0);
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &peer, &trailing, now),
            Verdict::Reject("malformed")
        );
        let on_other_topic = msg(&v, 0, b"x");
        assert_eq!(
            ing.check_gossip(Topic::Attestations, &peer, &on_other_topic, now),
            Verdict::Reject("wrong_topic")
        );
        let mut forged = Envelope::sign(&v, NetUid(1), Topic::Consensus, 0, b"x".to_vec());
        forged.payload = b"y".to_vec();
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &peer, &encode(&forged), now),
            Verdict::Reject("bad_signature")
        );
        // An observer (no stake, or not in the set) is not a validator.
        for outsider in [key(2), key(9)] {
            assert_eq!(
                ing.check_gossip(Topic::Consensus, &peer, &msg(&outsider, 0, b"x"), now),
                Verdict::Reject("not_validator")
            );
        }
        // A validator's message relayed by an unbound peer is not forwarded.
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &PeerId::random(), &msg(&v, 0, b"z"), now),
            Verdict::Ignore("relay_not_validator")
        );
        ing.set_round(Topic::Consensus, 100);
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &peer, &msg(&v, 10, b"x"), now),
            Verdict::Ignore("stale_round")
        );
        assert_eq!(
            ing.check_gossip(
                Topic::Consensus,
                &peer,
                &msg(&v, 101 + CONSENSUS_ROUNDS_AHEAD, b"x"),
                now
            ),
            Verdict::Ignore("future_round")
        );
        let m = ing.metrics.snapshot();
        for reason in [
            "oversize",
            "malformed",
            "wrong_topic",
            "bad_signature",
            "not_validator",
            "relay_not_validator",
            "stale_round",
            "future_round",
        ] {
            assert!(
                m.rejected.keys().any(|(_, r)| r == reason),
                "{reason} not counted"
            );
        }
    }

    #[test]
    fn payload_check_runs_before_the_signature() {
        let (mut ing, peer, v) = pipeline();
        ing.specs.get_mut(&Topic::Consensus).unwrap().check = Some(Arc::new(|e: &Envelope| {
            if e.payload.len() == 4 {
                Ok(())
            } else {
                Err("want four bytes")
            }
        }));
        let now = Instant::now();
        assert_eq!(
            ing.check_gossip(Topic::Consensus, &peer, &msg(&v, 0, b"abc"), now),
            Verdict::Reject("want four bytes")
        );
        // Counted under the check's own reason, and charged as an invalid payload.
        assert_eq!(ing.metrics.rejections("want four bytes"), 1);
        assert_eq!(ing.score(&peer, now), -REJECT_PENALTY);
        assert!(matches!(
            ing.check_gossip(Topic::Consensus, &peer, &msg(&v, 0, b"abcd"), now),
            Verdict::Accept(_)
        ));
    }

    #[test]
    fn a_flooding_peer_is_limited_then_banned_while_others_pass() {
        let (mut ing, flooder, v) = pipeline();
        let honest_key = key(3);
        let honest = PeerId::random();
        let mut m = ing.membership.clone();
        m.validators.insert(honest_key.hotkey(), 50);
        ing.set_membership(m);
        ing.bind(honest, honest_key.hotkey());
        let now = Instant::now();
        let mut limited = 0;
        for i in 0..1000u32 {
            let data = msg(&v, 0, &i.to_le_bytes());
            if let Verdict::Ignore(r) = ing.check_gossip(Topic::Consensus, &flooder, &data, now) {
                assert_eq!(r, "rate_limited_peer");
                limited += 1;
            }
        }
        assert_eq!(limited, 1000 - 400, "the burst passes, the rest is limited");
        let honest_msg = msg(&honest_key, 0, b"still served");
        assert!(matches!(
            ing.check_gossip(Topic::Consensus, &honest, &honest_msg, now),
            Verdict::Accept(_)
        ));
        let banned = ing.take_bannable(now);
        assert_eq!(
            banned.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![flooder]
        );
        assert!(banned[0].1.contains("rate_limited"), "{banned:?}");
        assert_eq!(ing.score(&flooder, now), 0);
        // The bucket refills with time.
        let later = now + Duration::from_secs(1);
        assert!(matches!(
            ing.check_gossip(Topic::Consensus, &flooder, &msg(&v, 0, b"later"), later),
            Verdict::Accept(_)
        ));
    }

    #[test]
    fn scores_recover_over_time() {
        let (mut ing, peer, _) = pipeline();
        let now = Instant::now();
        ing.penalize(&peer, "bad_signature", now);
        assert_eq!(ing.score(&peer, now), -50);
        assert_eq!(ing.score(&peer, now + Duration::from_secs(20)), -30);
        assert_eq!(ing.score(&peer, now + Duration::from_secs(90)), 0);
    }

    #[test]
    fn moving_the_round_prunes_the_replay_cache() {
        let (mut ing, peer, v) = pipeline();
        let now = Instant::now();
        assert!(matches!(
            ing.check_gossip(Topic::Consensus, &peer, &msg(&v, 1, b"a"), now),
            Verdict::Accept(_)
        ));
        ing.set_round(Topic::Consensus, 64);
        assert_eq!(ing.seen.len(), 1);
        ing.set_round(Topic::Consensus, 66);
        assert!(ing.seen.is_empty());
        let (fresh, evicted) = ing.take_changes();
        assert_eq!((fresh.len(), evicted.len()), (1, 1));
    }

    /// Views restart with each epoch: the previous epoch's last views leave the cache when the
    /// round goes back, instead of staying above every later floor (which made the cache, on
    /// disk and in memory, grow with every epoch).
    #[test]
    fn a_round_that_starts_afresh_forgets_the_previous_rounds() {
        let (mut ing, peer, v) = pipeline();
        let now = Instant::now();
        ing.set_round(Topic::Consensus, 120);
        for (i, round) in [100u64, 118, 120].into_iter().enumerate() {
            assert!(matches!(
                ing.check_gossip(Topic::Consensus, &peer, &msg(&v, round, &[i as u8]), now),
                Verdict::Accept(_)
            ));
        }
        ing.set_round(Topic::Consensus, 121);
        assert_eq!(ing.seen.len(), 3);
        ing.set_round(Topic::Consensus, 1);
        assert!(ing.seen.is_empty());
        assert_eq!(ing.take_changes().1.len(), 3);
        assert_eq!(ing.round(Topic::Consensus), 1);
    }

    #[test]
    fn requests_are_rate_limited_per_peer() {
        let (mut ing, peer, _) = pipeline();
        let now = Instant::now();
        for _ in 0..10 {
            ing.check_request(Protocol::Blob, &peer, now).unwrap();
        }
        assert_eq!(
            ing.check_request(Protocol::Blob, &peer, now),
            Err("rate_limited")
        );
        // Hello has its own budget, untouched by the other requests and limited in turn.
        for _ in 0..HELLO_RATE.burst {
            ing.check_request(Protocol::Hello, &peer, now).unwrap();
        }
        assert_eq!(
            ing.check_request(Protocol::Hello, &peer, now),
            Err("rate_limited")
        );
        let later = now + Duration::from_secs(1);
        ing.check_request(Protocol::Hello, &peer, later).unwrap();
        assert!(ing.score(&peer, later) < 0);
    }
}
