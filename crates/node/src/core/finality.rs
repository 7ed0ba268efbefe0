//! The finality queue: which finalized block is applied next.
//!
//! The engine reports finalized proposals; their blocks may not be here yet (a block's
//! announcement travels apart from the votes on it and can be lost), and the validator may
//! learn of them out of order (a peer's finalized blocks during catch-up). The queue keeps
//! them by height and hands out exactly one next step: apply the block after the tip, fetch
//! its body, or wait for the next epoch's engine after a close. Nothing here performs I/O,
//! reads a clock or runs asynchronously: the driver and the node-level simulator
//! ([`super::sim`]) feed it the same events and carry out its steps.

use std::collections::BTreeMap;

use platform_consensus::{Certificate, Proposal};
use platform_primitives::{Hash, Height, View};

/// The last applied finalized block: the parent of the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Its proposal's digest (the genesis hash before the first block).
    pub digest: Hash,
    /// Its height.
    pub height: Height,
    /// The view it was finalized in.
    pub view: View,
}

/// A finalized proposal waiting to be applied, with the certificate that finalized it and,
/// for an epoch's close finalized through seals, those seals (see `platform_consensus::SEAL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalized<S> {
    /// The proposal.
    pub proposal: Proposal,
    /// The finalize certificate (of this proposal or of a descendant).
    pub certificate: Certificate<S>,
    /// Seals linking a close to the certificate's head.
    pub seals: Vec<Proposal>,
}

/// The one thing to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a, S> {
    /// Nothing is waiting.
    Idle,
    /// Apply this block (its body is at hand), then call [`FinalityQueue::applied`].
    Apply(&'a Finalized<S>),
    /// The body of the next finalized block is missing: fetch it (and those after it, up to
    /// `through`).
    Fetch {
        /// The next height.
        height: Height,
        /// Its block's header hash.
        payload: Hash,
        /// The newest finalized height waiting.
        through: Height,
    },
    /// The last applied block closed the epoch: start the next epoch's engine, then call
    /// [`FinalityQueue::switched`]. Nothing after the close is applied before.
    SwitchEpoch,
}

/// Finalized proposals by height, above the tip.
#[derive(Clone, Debug)]
pub struct FinalityQueue<S> {
    tip: Tip,
    waiting: BTreeMap<u64, Finalized<S>>,
    /// The last applied block closed its epoch and the next engine has not started.
    closed: bool,
}

impl<S> FinalityQueue<S> {
    /// An empty queue above `tip`.
    pub fn new(tip: Tip) -> FinalityQueue<S> {
        FinalityQueue {
            tip,
            waiting: BTreeMap::new(),
            closed: false,
        }
    }

    /// The last applied block.
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// Whether no finalized block waits to be applied.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The finalized proposals waiting, lowest height first.
    pub fn waiting(&self) -> impl Iterator<Item = &Finalized<S>> {
        self.waiting.values()
    }

    /// A finalization: kept unless its height is applied already or another finalization of
    /// that height is waiting (finality is unique; the first certificate is as good as any).
    /// Seals are never applied and are ignored here.
    pub fn finalized(&mut self, f: Finalized<S>) {
        let height = f.proposal.height.0;
        if f.proposal.is_seal() || height <= self.tip.height.0 {
            return;
        }
        self.waiting.entry(height).or_insert(f);
    }

    /// The next step, given which block bodies are at hand.
    pub fn next(&self, has_block: impl Fn(&Hash) -> bool) -> Next<'_, S> {
        if self.closed {
            return Next::SwitchEpoch;
        }
        let Some((&height, first)) = self.waiting.first_key_value() else {
            return Next::Idle;
        };
        if height != self.tip.height.0 + 1 || !has_block(&first.proposal.payload) {
            return Next::Fetch {
                height: Height(self.tip.height.0 + 1),
                payload: if height == self.tip.height.0 + 1 {
                    first.proposal.payload
                } else {
                    Hash::ZERO
                },
                through: Height(*self.waiting.keys().next_back().expect("not empty")),
            };
        }
        Next::Apply(first)
    }

    /// The block [`Next::Apply`] named was applied (`closes`: it closed the epoch). Returns
    /// what was applied, and the new tip is its proposal.
    pub fn applied(&mut self, closes: bool) -> Finalized<S> {
        let (_, f) = self
            .waiting
            .pop_first()
            .expect("applied only after Next::Apply");
        debug_assert_eq!(f.proposal.height.0, self.tip.height.0 + 1);
        self.tip = Tip {
            digest: f.proposal.digest(),
            height: f.proposal.height,
            view: f.proposal.view,
        };
        self.closed = closes;
        f
    }

    /// The next epoch's engine runs: blocks after the close may be applied.
    pub fn switched(&mut self) {
        self.closed = false;
    }

    /// Starts over above `tip` (a snapshot was installed), with `waiting` finalized above it.
    pub fn reset(&mut self, tip: Tip, waiting: impl IntoIterator<Item = Finalized<S>>) {
        self.tip = tip;
        self.waiting.clear();
        self.closed = false;
        for f in waiting {
            self.finalized(f);
        }
    }
}

/// Whether a finalize certificate for `head` proves `batch[i]` final: the blocks from `i` on
/// extend one another up to one that is `head` itself or that `head` follows through seals
/// (an epoch's close finalized through them). Each element is a proposal with the seals kept
/// with it. Every block between `i` and the head must be checked, not only that the head is
/// somewhere in the batch: otherwise a forged block at `i` would ride on a genuine
/// certificate of a later one.
pub fn proven_final(batch: &[(&Proposal, &[Proposal])], i: usize, head: &Proposal) -> bool {
    let head_digest = head.digest();
    let mut previous: Option<Hash> = None;
    for (proposal, seals) in &batch[i.min(batch.len())..] {
        if previous.is_some_and(|d| proposal.parent != d) {
            return false;
        }
        let digest = proposal.digest();
        if digest == head_digest || platform_consensus::seals_link(proposal, seals, head) {
            return true;
        }
        previous = Some(digest);
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use platform_consensus::{Subject, VoteKind};
    use platform_crypto::SignerBitmap;
    use platform_primitives::Epoch;

    fn proposal(height: u64, parent: Hash) -> Proposal {
        Proposal {
            epoch: Epoch(1),
            view: View(height),
            height: Height(height),
            parent,
            payload: Hash::of(&height.to_le_bytes()),
        }
    }

    fn finalized(p: Proposal) -> Finalized<u8> {
        Finalized {
            proposal: p,
            certificate: Certificate {
                kind: VoteKind::Finalize,
                subject: Subject::Proposal(p),
                signers: SignerBitmap::new(4),
                signature: 0,
            },
            seals: Vec::new(),
        }
    }

    pub(crate) fn genesis() -> Tip {
        Tip {
            digest: Hash::of(b"genesis"),
            height: Height(0),
            view: View(0),
        }
    }

    /// Out-of-order finalizations are applied in height order, each once its body is here;
    /// a gap is fetched; duplicates and applied heights are dropped.
    #[test]
    fn applies_in_height_order_and_fetches_what_is_missing() {
        let p1 = proposal(1, genesis().digest);
        let p2 = proposal(2, p1.digest());
        let p3 = proposal(3, p2.digest());
        let mut q = FinalityQueue::new(genesis());
        assert_eq!(q.next(|_| true), Next::Idle);
        q.finalized(finalized(p3));
        // Height 1 and 2 are not known yet: fetch from 1 through 3.
        assert_eq!(
            q.next(|_| true),
            Next::Fetch {
                height: Height(1),
                payload: Hash::ZERO,
                through: Height(3)
            }
        );
        q.finalized(finalized(p1));
        q.finalized(finalized(p2));
        q.finalized(finalized(p2));
        // Height 1's body is missing.
        let only_3 = |h: &Hash| *h == p3.payload;
        assert_eq!(
            q.next(only_3),
            Next::Fetch {
                height: Height(1),
                payload: p1.payload,
                through: Height(3)
            }
        );
        for p in [p1, p2, p3] {
            match q.next(|_| true) {
                Next::Apply(f) => assert_eq!(f.proposal, p),
                other => panic!("expected to apply {}: {other:?}", p.height.0),
            }
            q.applied(false);
            assert_eq!(q.tip().digest, p.digest());
        }
        assert_eq!(q.next(|_| true), Next::Idle);
        q.finalized(finalized(p2));
        assert!(q.is_empty(), "an applied height is not queued again");
    }

    /// After a close nothing is applied until the next engine runs.
    #[test]
    fn a_close_holds_the_queue_until_the_switch() {
        let p1 = proposal(1, genesis().digest);
        let p2 = proposal(2, p1.digest());
        let mut q = FinalityQueue::new(genesis());
        q.finalized(finalized(p1));
        q.finalized(finalized(p2));
        q.applied(true);
        assert_eq!(q.next(|_| true), Next::SwitchEpoch);
        q.switched();
        assert!(matches!(q.next(|_| true), Next::Apply(f) if f.proposal == p2));
    }

    /// A certificate proves a block final through the later blocks that extend it, or through
    /// the seals kept with an epoch's close; never through a block that does not extend it.
    #[test]
    fn a_certificate_proves_only_the_blocks_it_extends() {
        let p1 = proposal(1, genesis().digest);
        let p2 = proposal(2, p1.digest());
        let mut seal = proposal(3, p2.digest());
        seal.payload = platform_consensus::SEAL;
        let seals = [seal];
        let batch = [(&p1, &[][..]), (&p2, &seals[..])];
        assert!(proven_final(&batch, 0, &p2));
        assert!(proven_final(&batch, 1, &p2));
        assert!(proven_final(&batch, 0, &seal), "through the close's seals");
        assert!(!proven_final(
            &batch,
            0,
            &proposal(3, Hash::of(b"elsewhere"))
        ));
        // A forged first block with a genuine later head.
        let forged = proposal(1, Hash::of(b"forged parent"));
        let batch = [(&forged, &[][..]), (&p2, &seals[..])];
        assert!(!proven_final(&batch, 0, &p2));
        assert!(proven_final(&batch, 1, &p2));
    }

    /// Seals are never queued; a reset starts above the snapshot's block.
    #[test]
    fn seals_are_ignored_and_a_reset_starts_over() {
        let p1 = proposal(1, genesis().digest);
        let mut seal = proposal(2, p1.digest());
        seal.payload = platform_consensus::SEAL;
        let mut q = FinalityQueue::new(genesis());
        q.finalized(finalized(seal));
        assert!(q.is_empty());
        let p5 = proposal(5, Hash::of(b"4"));
        let tip = Tip {
            digest: Hash::of(b"4"),
            height: Height(4),
            view: View(4),
        };
        q.reset(tip, [finalized(p1), finalized(p5)]);
        assert_eq!(q.tip(), tip);
        assert!(matches!(q.next(|_| true), Next::Apply(f) if f.proposal == p5));
    }
}
