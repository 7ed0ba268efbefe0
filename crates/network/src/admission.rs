//! Connection admission: who gets one of the node's connection slots.
//!
//! A validator's libp2p port faces the internet. With one pool of slots, anyone able to open
//! `max_connections` connections (Sybil peer ids cost nothing) could fill it and leave no room
//! for the validators consensus needs: an eclipse. So slots are split:
//!
//! - **Validators** of the current epoch, known by the peer ids their key bindings declare in
//!   the replicated state, take any free slot up to `max_connections`, from any address.
//! - **Everyone else** (observers, miners' tools, strangers) shares what the validators'
//!   reservation leaves: `max_connections` minus one slot per validator (at most half of
//!   them), and at most `max_per_ip` connections from one IP address (loopback addresses
//!   excepted: they are this host, whose users can do far worse than open connections, and
//!   a devnet runs every validator there).
//! - At most 2 connections per peer and 64 handshakes in progress, for anyone.
//!
//! A peer that connects but never binds a hotkey (`Hello`) within the deadline is disconnected
//! by the network task, so a slot cannot be held by a connection that does nothing.
//!
//! Each refusal is counted under channel `connection` with its reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr, multiaddr::Protocol};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

use crate::metrics::Metrics;

/// Handshakes in progress at once.
pub const MAX_PENDING_INBOUND: usize = 64;
/// Connections to one peer.
pub const MAX_PER_PEER: usize = 2;

/// Why a connection was refused (the metrics' reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// The slots left to non-validators are taken.
    OutsiderSlots,
    /// Too many connections of non-validators from this IP address.
    PerIp,
    /// Already two connections to this peer.
    PerPeer,
    /// Too many handshakes in progress.
    Pending,
}

impl Refusal {
    /// The metrics' reason.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::OutsiderSlots => "outsider_slots",
            Refusal::PerIp => "per_ip",
            Refusal::PerPeer => "per_peer",
            Refusal::Pending => "pending",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection refused: {}", self.reason())
    }
}

impl std::error::Error for Refusal {}

/// One established connection.
struct Established {
    peer: PeerId,
    /// The remote IP of an inbound connection from a non-validator (what `max_per_ip`
    /// counts); `None` otherwise.
    outsider_ip: Option<IpAddr>,
    validator: bool,
}

/// The admission policy as a libp2p behaviour (it only accepts or denies connections).
pub struct Admission {
    max_connections: usize,
    max_per_ip: usize,
    /// The current validators' peer ids.
    validators: BTreeSet<PeerId>,
    pending: BTreeSet<ConnectionId>,
    established: BTreeMap<ConnectionId, Established>,
    metrics: Arc<Metrics>,
}

impl Admission {
    /// A policy for `max_connections` slots and `max_per_ip` outsider connections per address.
    pub fn new(max_connections: u32, max_per_ip: u32, metrics: Arc<Metrics>) -> Admission {
        Admission {
            max_connections: max_connections as usize,
            max_per_ip: max_per_ip as usize,
            validators: BTreeSet::new(),
            pending: BTreeSet::new(),
            established: BTreeMap::new(),
            metrics,
        }
    }

    /// Sets the epoch's validators (their bound peer ids). Connections already open stay.
    pub fn set_validators(&mut self, peers: BTreeSet<PeerId>) {
        self.validators = peers;
    }

    /// Slots kept for validators: one each, at most half of all slots.
    fn reserved(&self) -> usize {
        self.validators.len().min(self.max_connections / 2)
    }

    /// Checks a new connection to `peer` (`ip`: the remote address of an inbound one).
    fn check(&self, peer: &PeerId, ip: Option<IpAddr>) -> Result<(), Refusal> {
        let to_peer = self
            .established
            .values()
            .filter(|e| e.peer == *peer)
            .count();
        if to_peer >= MAX_PER_PEER {
            return Err(Refusal::PerPeer);
        }
        if self.established.len() >= self.max_connections {
            return Err(Refusal::Full);
        }
        if self.validators.contains(peer) {
            return Ok(());
        }
        let outsiders = self.established.values().filter(|e| !e.validator).count();
        if outsiders >= self.max_connections - self.reserved() {
            return Err(Refusal::OutsiderSlots);
        }
        if let Some(ip) = ip {
            let from_ip = self
                .established
                .values()
                .filter(|e| e.outsider_ip == Some(ip))
                .count();
            if from_ip >= self.max_per_ip {
                return Err(Refusal::PerIp);
            }
        }
        Ok(())
    }

    fn admit(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        ip: Option<IpAddr>,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Err(refusal) = self.check(&peer, ip) {
            self.metrics.rejected("connection", refusal.reason());
            return Err(ConnectionDenied::new(refusal));
        }
        let validator = self.validators.contains(&peer);
        self.established.insert(
            id,
            Established {
                peer,
                outsider_ip: ip.filter(|_| !validator),
                validator,
            },
        );
        Ok(dummy::ConnectionHandler)
    }

    /// Connections by kind: (validators, others).
    pub fn counts(&self) -> (usize, usize) {
        let validators = self.established.values().filter(|e| e.validator).count();
        (validators, self.established.len() - validators)
    }
}

/// The IP address a multiaddr starts with.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

impl NetworkBehaviour for Admission {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        if self.pending.len() >= MAX_PENDING_INBOUND {
            self.metrics
                .rejected("connection", Refusal::Pending.reason());
            return Err(ConnectionDenied::new(Refusal::Pending));
        }
        self.pending.insert(id);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending.remove(&id);
        let ip = ip_of(remote).filter(|ip| !ip.is_loopback());
        self.admit(id, peer, ip)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Peers we dialed (bootstrap, validators) are not counted per address.
        self.admit(id, peer, None)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.established.remove(&connection_id);
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Peers connected longer than a deadline without binding a hotkey.
#[derive(Default)]
pub struct BindDeadline {
    since: HashMap<PeerId, std::time::Instant>,
}

impl BindDeadline {
    /// A peer connected at `now`.
    pub fn connected(&mut self, peer: PeerId, now: std::time::Instant) {
        self.since.entry(peer).or_insert(now);
    }

    /// A peer bound a hotkey or disconnected.
    pub fn settled(&mut self, peer: &PeerId) {
        self.since.remove(peer);
    }

    /// Peers still unbound `deadline` after they connected (removed from the watch).
    pub fn overdue(
        &mut self,
        now: std::time::Instant,
        deadline: std::time::Duration,
    ) -> Vec<PeerId> {
        let late: Vec<PeerId> = self
            .since
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= deadline)
            .map(|(p, _)| *p)
            .collect();
        for p in &late {
            self.since.remove(p);
        }
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: u32, per_ip: u32, validators: &[PeerId]) -> Admission {
        let mut a = Admission::new(max, per_ip, Arc::new(Metrics::default()));
        a.set_validators(validators.iter().copied().collect());
        a
    }

    fn inbound(
        a: &mut Admission,
        n: usize,
        peer: PeerId,
        ip: &str,
    ) -> Result<(), ConnectionDenied> {
        let remote: Multiaddr = format!("/ip4/{ip}/tcp/4000").parse().unwrap();
        let local: Multiaddr = "/ip4/10.0.0.1/tcp/30333".parse().unwrap();
        let id = ConnectionId::new_unchecked(n);
        a.handle_pending_inbound_connection(id, &local, &remote)?;
        a.handle_established_inbound_connection(id, peer, &local, &remote)
            .map(|_| ())
    }

    #[test]
    fn sybils_cannot_take_the_validators_slots_or_crowd_one_address() {
        let validators: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        // 8 slots, 4 reserved for validators: outsiders get 4, at most 2 per address.
        let mut a = admission(8, 2, &validators);
        let mut n = 0;
        let mut try_outsider = |a: &mut Admission, ip: &str| {
            n += 1;
            inbound(a, n, PeerId::random(), ip)
        };
        assert!(try_outsider(&mut a, "10.0.0.9").is_ok());
        assert!(try_outsider(&mut a, "10.0.0.9").is_ok());
        assert!(
            try_outsider(&mut a, "10.0.0.9").is_err(),
            "a third from one address"
        );
        assert!(try_outsider(&mut a, "10.0.0.10").is_ok());
        assert!(try_outsider(&mut a, "10.0.0.11").is_ok());
        assert!(
            try_outsider(&mut a, "10.0.0.12").is_err(),
            "outsider slots are full"
        );
        assert_eq!(a.counts(), (0, 4));
        // Every validator still gets in, all from one address.
        for (i, v) in validators.iter().enumerate() {
            inbound(&mut a, 100 + i, *v, "10.0.0.9").unwrap();
        }
        assert_eq!(a.counts(), (4, 4));
        // Now everything is full, for validators too.
        assert!(inbound(&mut a, 200, validators[0], "10.0.0.9").is_err());
        let m = a.metrics.snapshot();
        let refused = |reason: &str| {
            m.rejected
                .get(&("connection".into(), reason.into()))
                .copied()
        };
        assert_eq!(refused("per_ip"), Some(1));
        assert_eq!(refused("outsider_slots"), Some(1));
        assert_eq!(refused("full"), Some(1));
    }

    #[test]
    fn a_closed_connection_frees_its_slot() {
        let mut a = admission(2, 8, &[]);
        let p = PeerId::random();
        inbound(&mut a, 1, p, "10.0.0.9").unwrap();
        inbound(&mut a, 2, PeerId::random(), "10.0.0.9").unwrap();
        assert!(inbound(&mut a, 3, PeerId::random(), "10.0.0.9").is_err());
        a.established.remove(&ConnectionId::new_unchecked(1));
        inbound(&mut a, 4, PeerId::random(), "10.0.0.9").unwrap();
    }

    #[test]
    fn peers_past_the_bind_deadline_are_named_once() {
        let mut d = BindDeadline::default();
        let t0 = std::time::Instant::now();
        let (slow, quick) = (PeerId::random(), PeerId::random());
        d.connected(slow, t0);
        d.connected(quick, t0);
        d.settled(&quick);
        let deadline = std::time::Duration::from_secs(10);
        assert!(
            d.overdue(t0 + std::time::Duration::from_secs(5), deadline)
                .is_empty()
        );
        assert_eq!(d.overdue(t0 + deadline, deadline), vec![slow]);
        assert!(d.overdue(t0 + deadline * 2, deadline).is_empty());
    }
}
