//! Forks and waiting proposals: the state after each verified, not yet final block, and the
//! proposals that cannot be checked yet.
//!
//! A proposal is checked against the state after its parent. That state is the canonical one
//! when the parent is the last applied finalized block and no finalized block waits to be
//! applied; otherwise it is the fork kept when the parent was verified. A proposal whose
//! parent's state, block body, chain anchor or module is not here yet waits, and is checked
//! again when something arrives.
//!
//! The seal rule lives here too, in terms of states rather than heights: a block whose state
//! after its parent is already in the next epoch (the parent closed the epoch, or sealed its
//! close) can only be a seal, and a seal is valid exactly there.
//!
//! The driver keeps its `platform_state::State` here; the node-level simulator
//! ([`super::sim`]) keeps a small state that knows only its epoch. Nothing here performs I/O
//! or reads a clock.

use std::collections::{HashMap, HashSet};

use platform_consensus::{Certificate, Proposal, Subject, VoteKind};
use platform_primitives::{Epoch, Hash, Height};

use super::finality::FinalityQueue;

/// What the fork tracker needs of a state.
pub trait ForkState {
    /// An independent copy, to build or verify a block on.
    fn fork(&self) -> Self;
    /// The epoch the state is in after its last block (the next one after a close).
    fn epoch(&self) -> Epoch;
}

/// The validator's state ([`platform_state::State::fork`] makes the independent copy).
impl ForkState for platform_state::State {
    fn fork(&self) -> Self {
        platform_state::State::fork(self)
    }
    fn epoch(&self) -> Epoch {
        self.meta().epoch
    }
}

/// The state after one verified block, with what the block's verification found out
/// (`X`: the driver keeps the submissions the block drew this validator to).
#[derive(Debug)]
pub struct Fork<S, X> {
    /// The block's height.
    pub height: u64,
    /// The state after it.
    pub state: S,
    /// What else the driver keeps with it.
    pub extra: X,
}

/// How far above the applied tip a certified block whose state is missing is verified again
/// (its body fetched if need be): the notarized blocks not yet final when this validator
/// restarted are the next few; a validator further behind is catching up.
pub const CHASE_AHEAD: u64 = 8;

/// The forks being voted on, by proposal digest, and the proposals waiting to be checked.
#[derive(Debug)]
pub struct Forks<S, X = ()> {
    states: HashMap<Hash, Fork<S, X>>,
    waiting: Vec<Proposal>,
    /// Digests of waiting proposals a certificate showed notarized or final: a quorum holds
    /// their blocks, so a missing body is asked of peers.
    certified: HashSet<Hash>,
}

impl<S, X> Default for Forks<S, X> {
    fn default() -> Self {
        Forks {
            states: HashMap::new(),
            waiting: Vec::new(),
            certified: HashSet::new(),
        }
    }
}

impl<S: ForkState, X> Forks<S, X> {
    /// A copy of the state after the proposal with digest `parent`: `canonical()` (the state
    /// after the last applied finalized block) when `parent` is that block and nothing waits
    /// to be applied after it, else the fork kept for `parent`. `None`: not known here.
    pub fn state_after<Sig>(
        &self,
        parent: &Hash,
        finality: &FinalityQueue<Sig>,
        canonical: impl FnOnce() -> S,
    ) -> Option<S> {
        if *parent == finality.tip().digest && finality.is_empty() {
            Some(canonical())
        } else {
            self.states.get(parent).map(|f| f.state.fork())
        }
    }

    /// Whether the leader's block on `after_parent` must be a seal: the state after its parent
    /// is already in the next epoch, so the block belongs to the next engine.
    pub fn builds_seal(after_parent: &S, epoch: Epoch) -> bool {
        after_parent.epoch() != epoch
    }

    /// The verdict on a seal proposal `p` given the state after its parent: valid exactly
    /// when that state is already in the next epoch. A valid seal's state is kept (the same
    /// as its parent's), so that a seal after it is checked the same way.
    pub fn check_seal(&mut self, p: &Proposal, after_parent: S, extra: X) -> bool {
        let valid = Self::builds_seal(&after_parent, p.epoch);
        if valid {
            self.insert(p, after_parent, extra);
        }
        valid
    }

    /// Keeps the state after the verified proposal `p`.
    pub fn insert(&mut self, p: &Proposal, state: S, extra: X) {
        self.certified.remove(&p.digest());
        self.states.insert(
            p.digest(),
            Fork {
                height: p.height.0,
                state,
                extra,
            },
        );
    }

    /// The fork kept for `digest`.
    pub fn get(&self, digest: &Hash) -> Option<&Fork<S, X>> {
        self.states.get(digest)
    }

    /// Takes the fork of a block being applied as final: its state becomes canonical.
    pub fn take(&mut self, digest: &Hash) -> Option<Fork<S, X>> {
        self.states.remove(digest)
    }

    /// The block at `height` was applied: forks at or below it can no longer be built on,
    /// and proposals waiting at or below it can never be final.
    pub fn finalized(&mut self, height: u64) {
        self.states.retain(|_, f| f.height > height);
        let certified = &mut self.certified;
        self.waiting.retain(|p| {
            let keep = p.height.0 > height;
            if !keep {
                certified.remove(&p.digest());
            }
            keep
        });
    }

    /// A proposal that cannot be checked yet.
    pub fn wait(&mut self, p: Proposal) {
        if !self.waiting.contains(&p) {
            self.waiting.push(p);
        }
    }

    /// A certificate `c` was formed or received (or read back from the journal at a restart).
    /// A notarized or finalized proposal above the applied `tip` is one the next blocks may
    /// extend, so this validator must hold the state after it: when it does not (it restarted
    /// since it verified the block, or never saw the block), the proposal waits to be
    /// verified like any other. Without this, a leader whose parent's state was lost could
    /// never build, and a network whose validators all restarted after a notarization would
    /// stall for good. Only proposals at most [`CHASE_AHEAD`] above the tip: a validator
    /// further behind catches up on finalized blocks instead (the blocks it lacks are final
    /// at its peers, which serve notarized bodies only while they are not). True when the
    /// proposal now waits.
    pub fn certified<Sig>(&mut self, c: &Certificate<Sig>, tip: Height) -> bool {
        if let (VoteKind::Notarize | VoteKind::Finalize, Subject::Proposal(p)) =
            (c.kind, &c.subject)
            && p.height > tip
            && p.height.0 <= tip.0.saturating_add(CHASE_AHEAD)
            && !self.states.contains_key(&p.digest())
            && self.certified.insert(p.digest())
        {
            self.wait(*p);
            return true;
        }
        false
    }

    /// The certified proposals waiting for a block body that `have` says is not here: their
    /// bodies are to be fetched (from this node's own store, else from peers), lowest height
    /// first.
    pub fn missing_bodies(&self, have: impl Fn(&Hash) -> bool) -> Vec<Proposal> {
        let mut missing: Vec<Proposal> = self
            .waiting
            .iter()
            .filter(|p| !p.is_seal() && self.certified.contains(&p.digest()) && !have(&p.payload))
            .copied()
            .collect();
        missing.sort_by_key(|p| p.height);
        missing
    }

    /// The waiting proposals of `epoch`, lowest height first (a parent before its children,
    /// so that one pass checks a whole chain), to be checked again; those that still cannot
    /// be go back through [`Forks::wait`]. Those of other epochs are dropped.
    pub fn retry(&mut self, epoch: Epoch) -> Vec<Proposal> {
        let mut waiting = std::mem::take(&mut self.waiting);
        waiting.retain(|p| p.epoch == epoch);
        waiting.sort_by_key(|p| p.height);
        waiting
    }

    /// The proposals waiting, in the order they arrived.
    pub fn waiting(&self) -> impl Iterator<Item = &Proposal> {
        self.waiting.iter()
    }

    /// A new engine starts (a new epoch, or a snapshot): nothing kept applies to it.
    pub fn clear(&mut self) {
        self.states.clear();
        self.waiting.clear();
        self.certified.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finality::Finalized;
    use crate::core::finality::tests::genesis;
    use platform_consensus::{Certificate, SEAL, Subject, VoteKind};
    use platform_crypto::SignerBitmap;
    use platform_primitives::{Height, View};

    /// A state that knows its epoch and how many blocks it has.
    #[derive(Debug, PartialEq)]
    struct Toy {
        epoch: u64,
        blocks: u64,
    }

    impl ForkState for Toy {
        fn fork(&self) -> Toy {
            Toy { ..*self }
        }
        fn epoch(&self) -> Epoch {
            Epoch(self.epoch)
        }
    }

    fn proposal(height: u64, parent: Hash, payload: Hash) -> Proposal {
        Proposal {
            epoch: Epoch(0),
            view: View(height),
            height: Height(height),
            parent,
            payload,
        }
    }

    #[test]
    fn the_canonical_state_serves_only_the_settled_tip() {
        let mut finality = FinalityQueue::<u8>::new(genesis());
        let mut forks = Forks::<Toy>::default();
        let canonical = || Toy {
            epoch: 0,
            blocks: 0,
        };
        assert_eq!(
            forks.state_after(&genesis().digest, &finality, canonical),
            Some(Toy {
                epoch: 0,
                blocks: 0
            })
        );
        let b1 = proposal(1, genesis().digest, Hash::of(b"b1"));
        assert_eq!(forks.state_after(&b1.digest(), &finality, canonical), None);
        forks.insert(
            &b1,
            Toy {
                epoch: 0,
                blocks: 1,
            },
            (),
        );
        assert_eq!(
            forks
                .state_after(&b1.digest(), &finality, canonical)
                .map(|s| s.blocks),
            Some(1)
        );
        // A finalized block waits to be applied: the canonical state is no longer the state
        // after the tip's successor chain, so nothing is served from it.
        finality.finalized(Finalized {
            proposal: b1,
            certificate: Certificate {
                kind: VoteKind::Finalize,
                subject: Subject::Proposal(b1),
                signers: SignerBitmap::new(1),
                signature: 0,
            },
            seals: Vec::new(),
        });
        assert_eq!(
            forks.state_after(&genesis().digest, &finality, canonical),
            None
        );
        forks.finalized(1);
        assert!(forks.get(&b1.digest()).is_none(), "applied forks go");
    }

    #[test]
    fn seals_are_valid_exactly_after_the_close() {
        let mut forks = Forks::<Toy>::default();
        let close = proposal(5, Hash::of(b"p4"), Hash::of(b"close"));
        let before = Toy {
            epoch: 0,
            blocks: 4,
        };
        let after = Toy {
            epoch: 1,
            blocks: 5,
        };
        assert!(!Forks::<Toy>::builds_seal(&before, Epoch(0)));
        assert!(Forks::<Toy>::builds_seal(&after, Epoch(0)));
        let early_seal = proposal(5, Hash::of(b"p4"), SEAL);
        assert!(!forks.check_seal(&early_seal, before, ()));
        assert!(forks.get(&early_seal.digest()).is_none());
        let seal = proposal(6, close.digest(), SEAL);
        assert!(forks.check_seal(&seal, after, ()));
        // A seal after a seal is checked against the same next-epoch state.
        let second = proposal(7, seal.digest(), SEAL);
        let finality = FinalityQueue::<u8>::new(genesis());
        let state = forks
            .state_after(&seal.digest(), &finality, || unreachable!())
            .expect("the seal's state is kept");
        assert!(forks.check_seal(&second, state, ()));
    }

    #[test]
    fn waiting_proposals_are_kept_once_and_only_for_their_epoch() {
        let mut forks = Forks::<Toy>::default();
        let p = proposal(1, genesis().digest, Hash::of(b"b1"));
        let next_epoch = Proposal {
            epoch: Epoch(1),
            ..proposal(2, p.digest(), Hash::of(b"b2"))
        };
        forks.wait(p);
        forks.wait(p);
        forks.wait(next_epoch);
        assert_eq!(forks.waiting().count(), 2);
        assert_eq!(forks.retry(Epoch(0)), vec![p]);
        assert_eq!(
            forks.waiting().count(),
            0,
            "retried proposals wait again only if re-added"
        );
        forks.wait(p);
        forks.clear();
        assert_eq!(forks.waiting().count(), 0);
    }

    #[test]
    fn a_certified_block_whose_state_is_missing_is_verified_again_parents_first() {
        let mut forks = Forks::<Toy>::default();
        let b1 = proposal(1, genesis().digest, Hash::of(b"b1"));
        let b2 = proposal(2, b1.digest(), Hash::of(b"b2"));
        let cert = |kind, p: Proposal| Certificate {
            kind,
            subject: Subject::Proposal(p),
            signers: SignerBitmap::new(4),
            signature: 0u8,
        };
        forks.certified(&cert(VoteKind::Notarize, b2), Height(0));
        forks.certified(&cert(VoteKind::Finalize, b1), Height(0));
        forks.certified(&cert(VoteKind::Notarize, b1), Height(0));
        assert_eq!(
            forks.retry(Epoch(0)),
            vec![b1, b2],
            "parents first, each once"
        );
        // Nothing to do for a block already verified here, one at or below the tip, or a
        // nullification.
        forks.insert(
            &b2,
            Toy {
                epoch: 0,
                blocks: 2,
            },
            (),
        );
        forks.certified(&cert(VoteKind::Notarize, b2), Height(0));
        forks.certified(&cert(VoteKind::Notarize, b1), Height(1));
        // Nor for one far above the tip: a validator that far behind catches up instead.
        let far = proposal(CHASE_AHEAD + 1, Hash::of(b"unknown"), Hash::of(b"far"));
        assert!(!forks.certified(&cert(VoteKind::Notarize, far), Height(0)));
        assert!(!forks.certified(&cert(VoteKind::Finalize, far), Height(0)));
        forks.certified(
            &Certificate {
                kind: VoteKind::Nullify,
                subject: Subject::View(Epoch(0), View(3)),
                signers: SignerBitmap::new(4),
                signature: 0u8,
            },
            Height(0),
        );
        assert_eq!(forks.waiting().count(), 0);
    }
}
