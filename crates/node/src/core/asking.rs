//! When a validator asks its peers for finalized blocks.
//!
//! Three asks, each repeated at most every [`ASK_AGAIN_MS`] while its answer may still be on
//! its way:
//!
//! - **body**: a block not yet final that a certificate showed notarized, and that this
//!   validator must verify to build on, is not here (it restarted, or missed the block's
//!   announcement); asked per block.
//! - **fetch**: the next finalized block's body is missing (its announcement was lost, or
//!   came while the validator was down); asked again at once for a different height.
//! - **catch-up**: the network has moved past this validator. Asked when another epoch's
//!   messages arrive, and when nothing has been applied for [`IDLE_TIMEOUTS`] view timeouts:
//!   a peer may hold a finalization this validator missed (an epoch's close cannot be
//!   finalized through a later block of its epoch, so its engine may never hear of it).
//!
//! Time is passed in as milliseconds on a monotonic clock (the driver's process clock, the
//! simulator's virtual time); nothing here reads a clock.

use std::collections::BTreeMap;

use platform_primitives::Hash;

/// How long an ask's answer is waited for before it is repeated, ms.
pub const ASK_AGAIN_MS: u64 = 2_000;

/// View timeouts without an applied block after which a validator asks for catch-up.
pub const IDLE_TIMEOUTS: u64 = 3;

/// What was asked when, and when a block was last applied.
#[derive(Clone, Debug)]
pub struct Asking {
    applied_at: u64,
    /// The height whose body was last asked for, and when.
    fetched: Option<(u64, u64)>,
    caught_up: Option<u64>,
    /// Bodies of blocks not yet final asked for in the last [`ASK_AGAIN_MS`], by header hash.
    bodies: BTreeMap<Hash, u64>,
}

impl Asking {
    /// Nothing asked yet; the idle clock starts at `now`.
    pub fn new(now: u64) -> Asking {
        Asking {
            applied_at: now,
            fetched: None,
            caught_up: None,
            bodies: BTreeMap::new(),
        }
    }

    /// A finalized block was applied at `now` (or the validator started).
    pub fn applied(&mut self, now: u64) {
        self.applied_at = now;
    }

    /// How long ago a block was last applied, ms.
    pub fn since_applied(&self, now: u64) -> u64 {
        now.saturating_sub(self.applied_at)
    }

    /// Whether nothing has been applied for [`IDLE_TIMEOUTS`] view timeouts.
    pub fn idle(&self, now: u64, view_timeout_ms: u64) -> bool {
        self.since_applied(now) > IDLE_TIMEOUTS.saturating_mul(view_timeout_ms)
    }

    /// Whether to ask for the body of the block at `height` now; if so, the ask is recorded.
    pub fn fetch(&mut self, now: u64, height: u64) -> bool {
        if self
            .fetched
            .is_some_and(|(h, at)| h == height && now < at.saturating_add(ASK_AGAIN_MS))
        {
            return false;
        }
        self.fetched = Some((height, now));
        true
    }

    /// Whether to ask for catch-up now; if so, the ask is recorded.
    pub fn catch_up(&mut self, now: u64) -> bool {
        if self
            .caught_up
            .is_some_and(|at| now < at.saturating_add(ASK_AGAIN_MS))
        {
            return false;
        }
        self.caught_up = Some(now);
        true
    }

    /// Whether to ask for the body of the block (not yet final) with header hash `header`
    /// now; if so, the ask is recorded. Only asks of the last [`ASK_AGAIN_MS`] are kept.
    pub fn body(&mut self, now: u64, header: Hash) -> bool {
        self.bodies
            .retain(|_, at| now < at.saturating_add(ASK_AGAIN_MS));
        if self.bodies.contains_key(&header) {
            return false;
        }
        self.bodies.insert(header, now);
        true
    }

    /// The validator's place moved (a peer's snapshot was installed): earlier asks are moot.
    pub fn reset(&mut self) {
        self.fetched = None;
        self.caught_up = None;
        self.bodies.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_is_repeated_only_after_its_answer_had_time() {
        let mut a = Asking::new(0);
        assert!(a.fetch(100, 7));
        assert!(!a.fetch(100 + ASK_AGAIN_MS - 1, 7));
        assert!(a.fetch(100, 8), "another height is asked for at once");
        assert!(a.fetch(100 + ASK_AGAIN_MS, 8));
        assert!(a.catch_up(0));
        assert!(!a.catch_up(ASK_AGAIN_MS - 1));
        assert!(a.catch_up(ASK_AGAIN_MS));
        a.reset();
        assert!(a.catch_up(ASK_AGAIN_MS + 1));
        assert!(a.fetch(ASK_AGAIN_MS + 1, 8));
    }

    #[test]
    fn each_missing_body_is_asked_for_on_its_own_schedule() {
        let mut a = Asking::new(0);
        let (x, y) = (Hash::of(b"x"), Hash::of(b"y"));
        assert!(a.body(0, x));
        assert!(a.body(10, y), "another block is asked for at once");
        assert!(!a.body(ASK_AGAIN_MS - 1, x));
        assert!(a.body(ASK_AGAIN_MS, x));
        assert!(!a.body(ASK_AGAIN_MS + 9, y));
        assert!(a.body(ASK_AGAIN_MS + 10, y));
        assert_eq!(a.bodies.len(), 2, "only recent asks are kept");
        assert!(a.body(ASK_AGAIN_MS * 3, x));
        assert_eq!(
            a.bodies.len(),
            1,
            "asks older than ASK_AGAIN_MS are forgotten"
        );
    }

    #[test]
    fn idle_means_no_block_for_three_view_timeouts() {
        let mut a = Asking::new(1_000);
        assert!(!a.idle(4_000, 1_000));
        assert!(a.idle(4_001, 1_000));
        a.applied(4_001);
        assert_eq!(a.since_applied(4_500), 499);
        assert!(!a.idle(4_500, 1_000));
        assert!(
            !a.idle(0, 1_000),
            "a clock before the last block is not idle"
        );
    }
}
