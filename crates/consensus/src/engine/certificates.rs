//! Certificates: checking those that arrive, applying them (view changes, finalize votes) and
//! finalizing chains in height order.

use super::*;

impl<S: Scheme> Engine<S> {
    pub(super) fn on_certificate(&mut self, from: ValidatorIndex, cert: Certificate<S::Signature>) {
        let epoch = cert.subject.epoch();
        let view = cert.subject.view();
        // Finalizations of older views still matter to a node that is behind.
        let useful = epoch == self.cfg.epoch
            && (self.relevant(epoch, view)
                || (cert.kind == VoteKind::Notarize && self.awaiting.is_some())
                || (cert.kind == VoteKind::Finalize && view > self.finalized.view));
        if !useful || self.has_certificate(&cert) {
            return;
        }
        let message = self.signing_message(cert.kind, &cert.subject);
        if !certificate_verifies(&self.cfg.validators, &self.scheme, &cert, &message) {
            self.out.push(Effect::Penalize {
                peer: from,
                offence: Offence::InvalidCertificate,
            });
            return;
        }
        self.apply_certificate(cert, true);
    }

    pub(super) fn has_certificate(&self, cert: &Certificate<S::Signature>) -> bool {
        let view = cert.subject.view();
        match cert.kind {
            VoteKind::Notarize => self
                .subject_digest(&cert.subject)
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
    pub(super) fn apply_certificate(
        &mut self,
        cert: Certificate<S::Signature>,
        journal: bool,
    ) -> bool {
        if self.has_certificate(&cert) {
            return false;
        }
        if journal {
            self.out.push(Effect::Certified(cert.clone()));
        }
        let view = cert.subject.view();
        match (cert.kind, cert.subject) {
            (VoteKind::Notarize, Subject::Proposal(p)) => {
                self.notarized
                    .insert(self.proposal_digest(&p), (p, cert.clone()));
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

    pub(super) fn retry_awaiting(&mut self) {
        if let Some((p, cert)) = self.awaiting.take() {
            self.finalize_chain(p, cert);
        }
    }

    /// Finalizes `head` and every ancestor down to the last finalized block, in height order. If
    /// an ancestor is unknown, fetches it and waits.
    pub(super) fn finalize_chain(&mut self, head: Proposal, cert: Certificate<S::Signature>) {
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
