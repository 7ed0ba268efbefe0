//! Proposing and voting on proposals: choosing the parent, checking a proposal's ancestry,
//! asking the application, and signing the notarize vote.

use super::*;

impl<S: Scheme> Engine<S> {
    /// The newest notarized block a proposal in `view` may extend: the parent must be notarized
    /// and every view between it and `view` nullified. `None` while a certificate is missing.
    pub(super) fn parent_for(&self, view: View) -> Option<(Hash, Height)> {
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
    pub(super) fn missing_views(&self) -> Vec<View> {
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

    pub(super) fn try_propose(&mut self, view: View) {
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

    pub(super) fn on_proposal_ready(&mut self, view: View, payload: Hash) {
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
    pub(super) fn ancestry(&self, p: &Proposal) -> Ancestry {
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
    pub(super) fn try_vote_on_proposal(&mut self, view: View) {
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

    pub(super) fn on_verified(&mut self, digest: Hash, valid: bool) {
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

    pub(super) fn try_propose_current(&mut self) {
        let view = self.view;
        if self.cfg.me == Some(self.leader(view)) {
            self.try_propose(view);
        }
    }
}
