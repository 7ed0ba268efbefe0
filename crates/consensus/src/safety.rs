//! Safety rules: the only code that signs consensus votes.
//!
//! Rules, for one validator key and one epoch:
//! 1. Never vote in a view older than the newest view already voted in.
//! 2. In a view, notarize at most one proposal, and not after nullifying it.
//! 3. Never both nullify and finalize the same view.
//!
//! Votes carry their epoch (proposals name it, nullify subjects name it), so votes of
//! different epochs never conflict, and each epoch's views start afresh: the persisted state
//! names its epoch, and rules for a later epoch start from an empty state. Rules for an
//! *earlier* epoch than the persisted one sign nothing: what the validator signed in that
//! epoch is no longer on record, so any vote could contradict one it already sent.
//!
//! Before a vote leaves the node, the state that records it must be durable: [`SafetyRules`]
//! returns the new [`SafetyState`] with the vote, and the engine releases the vote only after the
//! driver acknowledges persisting it. After a restart from that state the rules refuse anything
//! that conflicts with it, and [`SafetyRules::resend`] re-signs exactly the votes it records.
//! Signatures are deterministic, so a re-sent vote is byte-identical.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Epoch, NetUid, View};

use crate::scheme::Scheme;
use crate::types::{Proposal, Subject, ValidatorIndex, Vote, VoteKind, signing_message};

/// What a validator has voted in its newest view. This is the consensus WAL record.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct SafetyState {
    /// The epoch the votes below belong to.
    pub epoch: Epoch,
    /// The newest view voted in.
    pub view: View,
    /// The proposal notarized in that view.
    pub notarized: Option<Proposal>,
    /// Whether that view was nullified.
    pub nullified: bool,
    /// The proposal finalized in that view.
    pub finalized: Option<Proposal>,
}

/// The signer, guarded by the rules above.
pub struct SafetyRules {
    netuid: NetUid,
    epoch: Epoch,
    me: ValidatorIndex,
    state: SafetyState,
    /// The persisted state belongs to a later epoch: sign nothing.
    retired: bool,
}

impl SafetyRules {
    /// Rules for `epoch` starting from a persisted state (the default state for a fresh
    /// validator). A state of an earlier epoch is set aside; one of a later epoch retires
    /// the rules.
    pub fn new(netuid: NetUid, epoch: Epoch, me: ValidatorIndex, state: SafetyState) -> Self {
        let retired = state.epoch > epoch;
        let state = if state.epoch == epoch {
            state
        } else {
            SafetyState {
                epoch,
                ..SafetyState::default()
            }
        };
        SafetyRules {
            netuid,
            epoch,
            me,
            state,
            retired,
        }
    }

    /// The current state (empty for a new epoch).
    pub fn state(&self) -> SafetyState {
        self.state
    }

    fn sign<S: Scheme>(&self, scheme: &S, kind: VoteKind, subject: Subject) -> Vote<S::Signature> {
        Vote {
            kind,
            subject,
            signer: self.me,
            signature: scheme.sign(&signing_message(self.netuid, kind, &subject)),
        }
    }

    /// Moves the state to `view` if it is newer; refuses older views (and everything, when
    /// retired).
    fn enter(&mut self, view: View) -> bool {
        if self.retired || view < self.state.view {
            return false;
        }
        if view > self.state.view {
            self.state = SafetyState {
                epoch: self.epoch,
                view,
                ..SafetyState::default()
            };
        }
        true
    }

    /// Signs a notarize vote, or refuses.
    pub fn notarize<S: Scheme>(
        &mut self,
        scheme: &S,
        proposal: Proposal,
    ) -> Option<(Vote<S::Signature>, SafetyState)> {
        if proposal.epoch != self.epoch || !self.enter(proposal.view) {
            return None;
        }
        match self.state.notarized {
            Some(p) if p != proposal => return None,
            _ if self.state.nullified => return None,
            _ => {}
        }
        self.state.notarized = Some(proposal);
        Some((
            self.sign(scheme, VoteKind::Notarize, Subject::Proposal(proposal)),
            self.state,
        ))
    }

    /// Signs a nullify vote, or refuses.
    pub fn nullify<S: Scheme>(
        &mut self,
        scheme: &S,
        view: View,
    ) -> Option<(Vote<S::Signature>, SafetyState)> {
        if !self.enter(view) || self.state.finalized.is_some() {
            return None;
        }
        self.state.nullified = true;
        Some((
            self.sign(scheme, VoteKind::Nullify, Subject::View(self.epoch, view)),
            self.state,
        ))
    }

    /// Signs a finalize vote, or refuses.
    pub fn finalize<S: Scheme>(
        &mut self,
        scheme: &S,
        proposal: Proposal,
    ) -> Option<(Vote<S::Signature>, SafetyState)> {
        if proposal.epoch != self.epoch || !self.enter(proposal.view) || self.state.nullified {
            return None;
        }
        match self.state.finalized {
            Some(p) if p != proposal => return None,
            _ => {}
        }
        self.state.finalized = Some(proposal);
        Some((
            self.sign(scheme, VoteKind::Finalize, Subject::Proposal(proposal)),
            self.state,
        ))
    }

    /// The votes the persisted state records, re-signed, for re-sending after a restart.
    pub fn resend<S: Scheme>(&self, scheme: &S) -> Vec<Vote<S::Signature>> {
        let s = self.state;
        let mut out = Vec::new();
        if let Some(p) = s.notarized {
            out.push(self.sign(scheme, VoteKind::Notarize, Subject::Proposal(p)));
        }
        if s.nullified {
            out.push(self.sign(scheme, VoteKind::Nullify, Subject::View(self.epoch, s.view)));
        }
        if let Some(p) = s.finalized {
            out.push(self.sign(scheme, VoteKind::Finalize, Subject::Proposal(p)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::MacScheme;
    use platform_primitives::{Hash, Height};

    fn proposal(view: u64, payload: u8) -> Proposal {
        Proposal {
            epoch: Epoch(1),
            view: View(view),
            height: Height(view),
            parent: Hash::ZERO,
            payload: Hash([payload; 32]),
        }
    }

    fn rules(state: SafetyState) -> SafetyRules {
        SafetyRules::new(NetUid(1), Epoch(1), 0, state)
    }

    fn key() -> MacScheme {
        MacScheme::new(1, 4, Some(0))
    }

    #[test]
    fn one_notarization_per_view() {
        let mut r = rules(SafetyState::default());
        assert!(r.notarize(&key(), proposal(3, 1)).is_some());
        assert!(
            r.notarize(&key(), proposal(3, 1)).is_some(),
            "the same vote again is fine"
        );
        assert!(
            r.notarize(&key(), proposal(3, 2)).is_none(),
            "a conflicting proposal is refused"
        );
        assert!(
            r.notarize(&key(), proposal(2, 1)).is_none(),
            "an older view is refused"
        );
        assert!(r.notarize(&key(), proposal(4, 2)).is_some());
    }

    #[test]
    fn nullify_and_finalize_exclude_each_other() {
        let mut r = rules(SafetyState::default());
        r.notarize(&key(), proposal(5, 1)).unwrap();
        r.finalize(&key(), proposal(5, 1)).unwrap();
        assert!(r.nullify(&key(), View(5)).is_none());
        let mut r = rules(SafetyState::default());
        r.nullify(&key(), View(5)).unwrap();
        assert!(r.finalize(&key(), proposal(5, 1)).is_none());
        assert!(r.notarize(&key(), proposal(5, 1)).is_none());
    }

    #[test]
    fn a_restart_refuses_conflicts_and_resends_the_same_votes() {
        let mut r = rules(SafetyState::default());
        let (vote, persisted) = r.notarize(&key(), proposal(7, 1)).unwrap();
        // Crash after persisting, before sending: restart from the persisted state.
        let mut restarted = rules(persisted);
        assert_eq!(
            restarted.resend(&key()),
            vec![vote.clone()],
            "the same vote, byte for byte"
        );
        assert!(
            restarted.notarize(&key(), proposal(7, 2)).is_none(),
            "never a different one"
        );
        assert_eq!(restarted.notarize(&key(), proposal(7, 1)).unwrap().0, vote);
    }

    #[test]
    fn a_new_epoch_starts_afresh_and_an_older_one_signs_nothing() {
        let mut r = rules(SafetyState::default());
        r.notarize(&key(), proposal(9, 1)).unwrap();
        let (_, persisted) = r.nullify(&key(), View(12)).unwrap();
        assert_eq!(persisted.epoch, Epoch(1));
        // Epoch 2 may vote in views the record of epoch 1 has passed.
        let mut next = SafetyRules::new(NetUid(1), Epoch(2), 0, persisted);
        assert_eq!(next.state().view, View(0));
        assert!(
            next.resend(&key()).is_empty(),
            "nothing of epoch 1 is re-sent"
        );
        let mut p = proposal(10, 1);
        p.epoch = Epoch(2);
        let (_, state) = next.notarize(&key(), p).unwrap();
        assert_eq!(state.epoch, Epoch(2));
        // Back in epoch 1 with epoch 2's record: nothing is signed, not even in new views.
        let mut old = SafetyRules::new(NetUid(1), Epoch(1), 0, state);
        assert!(old.notarize(&key(), proposal(20, 1)).is_none());
        assert!(old.nullify(&key(), View(20)).is_none());
        assert!(old.finalize(&key(), proposal(20, 1)).is_none());
    }

    #[test]
    fn votes_of_another_epoch_are_refused() {
        let mut r = rules(SafetyState::default());
        let mut p = proposal(3, 1);
        p.epoch = Epoch(2);
        assert!(r.notarize(&key(), p).is_none());
        assert!(r.finalize(&key(), p).is_none());
    }
}
