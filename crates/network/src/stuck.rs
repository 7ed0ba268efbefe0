//! Gossip links that stopped draining.
//!
//! gossipsub keeps one bounded send queue per peer, drained by the peer's connection handlers.
//! A handler can stop draining while its connection stays up and answers pings: libp2p-gossipsub
//! 0.50 disables a connection's gossip handler for good once five of its substreams have been
//! opened or failed (`MAX_SUBSTREAM_ATTEMPTS`), and from then on every message for that peer
//! waits in a queue nothing reads until it is full, then is dropped. Ping, request-response and
//! the partition alarm all still see a healthy peer.
//!
//! gossipsub reports a peer whose queue refused messages at each heartbeat
//! (`Event::SlowPeer`). A peer reported at every heartbeat for [`STUCK_AFTER`] has a link that
//! is not coming back by itself: the network task closes it and dials the peer again, which
//! gives it fresh handlers and an empty queue. A peer that is merely slow for a moment is
//! reported for a heartbeat or two and left alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How long a peer must be reported slow, without a pause, before its link is taken for stuck.
/// The queue holds thousands of messages, so a queue that refuses messages this long is minutes
/// behind at any realistic rate.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

/// A pause in reports this long ends a slow spell (gossipsub's heartbeat is 500 ms).
pub const SPELL_GAP: Duration = Duration::from_secs(2);

/// The slow spells of peers gossipsub reported.
#[derive(Debug, Default)]
pub struct StuckLinks {
    /// Per peer: when its current spell started and when it was last reported.
    spells: HashMap<PeerId, (Instant, Instant)>,
}

impl StuckLinks {
    /// Records a report that `peer`'s queue refused messages; true when its link is stuck (the
    /// spell is then over: the caller reconnects).
    pub fn report(&mut self, peer: PeerId, now: Instant) -> bool {
        let spell = self.spells.entry(peer).or_insert((now, now));
        if now.saturating_duration_since(spell.1) > SPELL_GAP {
            *spell = (now, now);
        }
        spell.1 = now;
        if now.saturating_duration_since(spell.0) >= STUCK_AFTER {
            self.spells.remove(&peer);
            return true;
        }
        false
    }

    /// Forgets `peer` (its connections closed).
    pub fn forget(&mut self, peer: &PeerId) {
        self.spells.remove(peer);
    }

    /// Drops spells that ended (no report for a gap), so peers that were slow once do not
    /// accumulate.
    pub fn sweep(&mut self, now: Instant) {
        self.spells
            .retain(|_, (_, last)| now.saturating_duration_since(*last) <= SPELL_GAP);
    }

    /// Peers in a slow spell now.
    pub fn len(&self) -> usize {
        self.spells.len()
    }

    /// Whether no peer is in a slow spell.
    pub fn is_empty(&self) -> bool {
        self.spells.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Duration = Duration::from_millis(500);

    #[test]
    fn a_peer_reported_at_every_heartbeat_is_stuck_after_the_grace() {
        let (mut links, peer, t0) = (StuckLinks::default(), PeerId::random(), Instant::now());
        let beats = (STUCK_AFTER.as_millis() / HEARTBEAT.as_millis()) as u32;
        for i in 0..beats {
            assert!(!links.report(peer, t0 + HEARTBEAT * i), "beat {i}");
        }
        assert!(links.report(peer, t0 + HEARTBEAT * beats));
        assert!(links.is_empty(), "the spell ends with the verdict");
        assert!(!links.report(peer, t0 + HEARTBEAT * (beats + 1)));
    }

    #[test]
    fn a_pause_in_reports_starts_the_spell_over() {
        let (mut links, peer, t0) = (StuckLinks::default(), PeerId::random(), Instant::now());
        let mut t = t0;
        for _ in 0..8 {
            assert!(!links.report(peer, t));
            t += HEARTBEAT;
        }
        // Three heartbeats without a report: the queue drained for a while.
        t += SPELL_GAP + HEARTBEAT;
        for _ in 0..8 {
            assert!(!links.report(peer, t), "a new spell, not the old one");
            t += HEARTBEAT;
        }
        let other = PeerId::random();
        assert!(!links.report(other, t));
        assert_eq!(links.len(), 2);
        links.sweep(t + SPELL_GAP + HEARTBEAT);
        assert!(links.is_empty());
        links.report(peer, t);
        links.forget(&peer);
        assert!(links.is_empty());
    }
}
