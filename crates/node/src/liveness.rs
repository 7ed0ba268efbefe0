//! Who this validator has heard from, and what follows from it: which leaders to skip at once
//! and whether the partition alarm is up.
//!
//! Open connections say little about a link that was cut without a reset (the connection
//! stays "open" until a ping fails), and nothing about a peer whose process hangs. A live
//! validator, though, sends consensus votes in every view. So the driver records the author of
//! every consensus message that passed the network's checks, and decides from that:
//!
//! - **A leader not heard from for two view timeouts, while the others are heard, is
//!   skipped**: this validator nullifies its view at once instead of waiting out the timeout,
//!   so an unreachable validator costs the network only its own leader views, each about as
//!   long as it takes the others to exchange nullify votes. When nobody is heard (all waiting
//!   out a long timeout, or this node cut off) nobody is skipped: skipping every leader would
//!   nullify every view and lengthen the timeouts further.
//! - **The partition alarm** is up while the validators heard from within [`HEARD_WINDOW`]
//!   (this one included) hold less than two thirds of the epoch's stake: no block can be
//!   finalized on this side. It clears as soon as enough are heard again.
//!
//! Pure: the caller passes the time, so the rules are tested without clocks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use platform_primitives::Hotkey;

/// How recently a validator must have been heard from to count towards the partition alarm.
pub const HEARD_WINDOW: Duration = Duration::from_secs(10);

/// When each validator was last heard from.
#[derive(Debug)]
pub struct Heard {
    last: HashMap<Hotkey, Instant>,
    /// When listening began: a validator never heard from counts as silent since then.
    since: Instant,
}

impl Heard {
    /// Nobody heard from yet.
    pub fn new(now: Instant) -> Heard {
        Heard {
            last: HashMap::new(),
            since: now,
        }
    }

    /// `who` sent a message that passed the network's checks.
    pub fn heard(&mut self, who: Hotkey, now: Instant) {
        self.last.insert(who, now);
    }

    /// How long `who` has been silent (since listening began, if never heard).
    pub fn silent_for(&self, who: &Hotkey, now: Instant) -> Duration {
        now.saturating_duration_since(*self.last.get(who).unwrap_or(&self.since))
    }

    /// Whether `leader` is singled out as unreachable: silent for `silence` while another
    /// member (not `me`) was heard from within `recent`. When nobody is heard from — every
    /// validator waiting out a long view timeout, or this node cut off — no one is singled
    /// out: skipping every leader then would nullify every view and lengthen the timeouts
    /// further.
    pub fn singled_out(
        &self,
        leader: &Hotkey,
        me: &Hotkey,
        members: &[Hotkey],
        (silence, recent): (Duration, Duration),
        now: Instant,
    ) -> bool {
        self.silent_for(leader, now) >= silence
            && members
                .iter()
                .filter(|m| *m != leader && *m != me)
                .any(|m| self.silent_for(m, now) < recent)
    }

    /// The stake of `members` heard from within [`HEARD_WINDOW`] (`me` always counts), and the
    /// members' total. Forgets validators that are no longer members.
    pub fn heard_stake(
        &mut self,
        members: &[(Hotkey, u64)],
        me: &Hotkey,
        now: Instant,
    ) -> (u128, u128) {
        self.last.retain(|h, _| members.iter().any(|(m, _)| m == h));
        let total = members.iter().map(|(_, s)| u128::from(*s)).sum();
        let heard = members
            .iter()
            .filter(|(h, _)| h == me || self.silent_for(h, now) < HEARD_WINDOW)
            .map(|(_, s)| u128::from(*s))
            .sum();
        (heard, total)
    }
}

/// Whether `heard` of `total` stake is too little to finalize anything (below two thirds).
pub fn partitioned(heard: u128, total: u128) -> bool {
    total > 0 && heard * 3 < total * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> Hotkey {
        Hotkey([b; 32])
    }

    #[test]
    fn silence_counts_from_the_last_message_or_from_the_start() {
        let t0 = Instant::now();
        let mut heard = Heard::new(t0);
        heard.heard(h(1), t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_secs(5);
        assert_eq!(heard.silent_for(&h(1), now), Duration::from_secs(2));
        assert_eq!(heard.silent_for(&h(2), now), Duration::from_secs(5));
    }

    #[test]
    fn the_alarm_follows_the_stake_heard_from_recently() {
        let members = [(h(1), 4000), (h(2), 3000), (h(3), 2000), (h(4), 1000)];
        let t0 = Instant::now();
        let mut heard = Heard::new(t0);
        for (m, _) in &members {
            heard.heard(*m, t0);
        }
        let (s, total) = heard.heard_stake(&members, &h(1), t0);
        assert_eq!((s, total), (10_000, 10_000));
        assert!(!partitioned(s, total));
        // Alice and Charlie (60 %) keep talking; Bob and Dave go silent.
        let later = t0 + HEARD_WINDOW + Duration::from_secs(1);
        heard.heard(h(3), later);
        let (s, total) = heard.heard_stake(&members, &h(1), later);
        assert_eq!(s, 6000);
        assert!(partitioned(s, total), "60 % cannot finalize");
        // Bob is back: 90 %.
        heard.heard(h(2), later);
        let (s, total) = heard.heard_stake(&members, &h(1), later);
        assert_eq!(s, 9000);
        assert!(!partitioned(s, total));
    }

    #[test]
    fn a_leader_is_singled_out_only_while_the_others_are_heard() {
        let (me, leader, other) = (h(1), h(4), h(2));
        let members = [me, other, h(3), leader];
        let t0 = Instant::now();
        let mut heard = Heard::new(t0);
        heard.heard(leader, t0);
        let bounds = (Duration::from_secs(4), Duration::from_secs(2));
        let later = t0 + Duration::from_secs(5);
        heard.heard(other, later - Duration::from_secs(1));
        assert!(heard.singled_out(&leader, &me, &members, bounds, later));
        // Everyone silent (a long view timeout, or this node cut off): nobody is singled out.
        let much_later = later + Duration::from_secs(10);
        assert!(!heard.singled_out(&leader, &me, &members, bounds, much_later));
        // A leader heard recently is never singled out.
        heard.heard(leader, much_later);
        heard.heard(other, much_later);
        assert!(!heard.singled_out(&leader, &me, &members, bounds, much_later));
    }

    #[test]
    fn former_members_are_forgotten() {
        let t0 = Instant::now();
        let mut heard = Heard::new(t0);
        let t5 = t0 + Duration::from_secs(5);
        heard.heard(h(9), t5);
        assert_eq!(heard.silent_for(&h(9), t5), Duration::ZERO);
        heard.heard_stake(&[(h(1), 1)], &h(1), t5);
        assert_eq!(heard.silent_for(&h(9), t5), Duration::from_secs(5));
    }
}
