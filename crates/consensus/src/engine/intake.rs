//! Taking in votes: equivocation and forgery checks, the leader's proposal, lazy batch
//! verification, and releasing our own votes once persisted.

use super::*;

impl<S: Scheme> Engine<S> {
    /// Verifies one vote on its own; on failure penalizes the peer that sent it.
    pub(super) fn verify_one(
        &mut self,
        from: ValidatorIndex,
        vote: &Vote<S::Signature>,
        message: &[u8],
    ) -> bool {
        let n = self.cfg.validators.len();
        let ok = self.scheme.verify(vote.signer, n, message, &vote.signature);
        if !ok {
            self.out.push(Effect::Penalize {
                peer: from,
                offence: Offence::BadSignature,
            });
        }
        ok
    }

    /// Signs through the safety rules and holds the vote until its state is durable.
    pub(super) fn sign_and_persist(
        &mut self,
        sign: impl FnOnce(&mut SafetyRules, &S) -> Option<(Vote<S::Signature>, SafetyState)>,
    ) {
        let Some(rules) = self.safety.as_mut() else {
            return;
        };
        let Some((vote, state)) = sign(rules, &self.scheme) else {
            return;
        };
        let token = self.next_token;
        self.next_token += 1;
        self.unreleased.insert(token, vote);
        self.out.push(Effect::Persist { state, token });
    }

    pub(super) fn on_persisted(&mut self, token: u64) {
        // Persists are acknowledged in order; release every vote up to this token.
        let released: Vec<u64> = self.unreleased.range(..=token).map(|(&t, _)| t).collect();
        for t in released {
            let vote = self.unreleased.remove(&t).expect("listed");
            if vote.kind == VoteKind::Finalize && self.cfg.collectors > 0 {
                for to in self.collectors(vote.subject.view()) {
                    if Some(to) != self.cfg.me {
                        self.out.push(Effect::Send {
                            to,
                            message: Message::Vote(vote.clone()),
                        });
                    }
                }
            } else {
                self.out
                    .push(Effect::Broadcast(Message::Vote(vote.clone())));
            }
            self.add_own_vote(&vote);
        }
    }

    /// Two votes of one signer that it may not both sign (`first`, kept earlier, and `vote`,
    /// arriving with `message` as its signing message from peer `from`): both verify — proof
    /// of equivocation, penalized and handed to the node as evidence; `vote` does not — its
    /// sender is penalized; only `first` does not — it was forged in the signer's name.
    fn conflict(
        &mut self,
        from: ValidatorIndex,
        first: Vote<S::Signature>,
        vote: &Vote<S::Signature>,
        message: &[u8],
    ) -> Conflict<Vote<S::Signature>> {
        if !self.verify_one(from, vote, message) {
            return Conflict::SecondForged;
        }
        let n = self.cfg.validators.len();
        let first_msg = signing_message(self.cfg.netuid, first.kind, &first.subject);
        if !self
            .scheme
            .verify(first.signer, n, &first_msg, &first.signature)
        {
            return Conflict::FirstForged(first);
        }
        self.out.push(Effect::Penalize {
            peer: vote.signer,
            offence: Offence::Equivocation,
        });
        self.out.push(Effect::Evidence {
            first,
            second: vote.clone(),
        });
        Conflict::Proven
    }

    pub(super) fn add_own_vote(&mut self, vote: &Vote<S::Signature>) {
        let n = self.cfg.validators.len();
        let state = self.views.entry(vote.subject.view()).or_default();
        state.first_votes.keep_first(vote, n);
        self.add_verified_vote(vote.clone());
    }

    pub(super) fn on_vote(&mut self, from: ValidatorIndex, vote: Vote<S::Signature>) {
        let epoch = vote.subject.epoch();
        let view = vote.subject.view();
        if !kind_fits(vote.kind, &vote.subject) || self.cfg.validators.stake(vote.signer) == 0 {
            self.out.push(Effect::Penalize {
                peer: from,
                offence: Offence::NotAValidator,
            });
            return;
        }
        if epoch == self.cfg.epoch && view > self.view && self.asked_view != Some(self.view) {
            // The sender is ahead: ask it once for the certificate that moved it past our view
            // — also when it is too far ahead for its votes to be kept, since the answer (a
            // finalization, for a view it finalized past) moves us there at once.
            self.asked_view = Some(self.view);
            self.out.push(Effect::Send {
                to: from,
                message: Message::FetchView(self.view),
            });
        }
        if !self.relevant(epoch, view) {
            return;
        }

        // A nullify and a finalize vote of one signer in one view: the safety rules never sign
        // both, so if both verify they prove a Byzantine signer; if the one kept first does not,
        // it was a forgery in the signer's name and is forgotten.
        let opposite = match vote.kind {
            VoteKind::Nullify => Some(VoteKind::Finalize),
            VoteKind::Finalize => Some(VoteKind::Nullify),
            VoteKind::Notarize => None,
        };
        let other = opposite.and_then(|kind| {
            self.views
                .get(&view)
                .and_then(|s| s.first_votes.get(kind, vote.signer))
                .cloned()
        });
        if let Some(other) = other {
            let message = self.signing_message(vote.kind, &vote.subject);
            match self.conflict(from, other, &vote, &message) {
                Conflict::Proven | Conflict::SecondForged => return,
                Conflict::FirstForged(other) => {
                    if let Some(s) = self.views.get_mut(&view) {
                        s.first_votes.remove(other.kind, other.signer);
                    }
                }
            }
        }

        // A second notarize or finalize vote of one signer in one view, on another proposal:
        // either equivocation (both verify) or a forgery in someone's name (one does not).
        if vote.kind != VoteKind::Nullify {
            let first = self
                .views
                .get(&view)
                .and_then(|s| s.first_votes.get(vote.kind, vote.signer))
                .cloned();
            if let Some(first) = first.filter(|f| f.subject != vote.subject) {
                let message = self.signing_message(vote.kind, &vote.subject);
                let first = match self.conflict(from, first, &vote, &message) {
                    Conflict::Proven | Conflict::SecondForged => return,
                    Conflict::FirstForged(first) => first,
                };
                // The first was forged: forget it and count this one.
                let v = &self.cfg.validators;
                let state = self.views.entry(view).or_default();
                let buckets = if vote.kind == VoteKind::Notarize {
                    &mut state.notarize
                } else {
                    &mut state.finalize
                };
                if let Some(b) = first.subject.digest().and_then(|d| buckets.get_mut(&d)) {
                    b.remove(vote.signer, v);
                }
                state.first_votes.replace(&vote, v.len());
                self.add_verified_vote(vote);
                return;
            }
        }

        // The leader's notarize vote is its proposal: check it on its own before acting on it.
        let is_proposal = vote.kind == VoteKind::Notarize
            && vote.signer == self.leader(view)
            && self.views.get(&view).is_none_or(|s| s.proposal.is_none());
        if is_proposal {
            let message = self.signing_message(vote.kind, &vote.subject);
            if !self.verify_one(from, &vote, &message) {
                return;
            }
            let Subject::Proposal(p) = vote.subject else {
                unreachable!("checked above")
            };
            let n = self.cfg.validators.len();
            let state = self.state(view);
            state.proposal = Some(p);
            state.first_votes.replace(&vote, n);
            self.add_verified_vote(vote);
            self.try_vote_on_proposal(view);
            return;
        }

        let digest = self.subject_digest(&vote.subject);
        let v = &self.cfg.validators;
        let state = self.views.entry(view).or_default();
        state.first_votes.keep_first(&vote, v.len());
        let Some(bucket) = state.bucket(vote.kind, digest) else {
            return;
        };
        if !bucket.add_pending(vote.signer, vote.signature, from, v) {
            return;
        }
        let (signing, netuid) = (&self.signing, self.cfg.netuid);
        let message = || remembered_signing_message(signing, netuid, vote.kind, &vote.subject);
        for peer in bucket.verify_if_useful(&self.scheme, v, message) {
            self.out.push(Effect::Penalize {
                peer,
                offence: Offence::BadSignature,
            });
        }
        self.try_certify(vote.kind, vote.subject, digest);
    }

    /// Counts a vote known to be valid and certifies if it completes a quorum. Peers' votes
    /// still waiting for verification are checked now if, with this one, they can complete a
    /// quorum: otherwise a quorum whose last vote is our own would never form when the peers'
    /// votes came first (they are not sent again).
    pub(super) fn add_verified_vote(&mut self, vote: Vote<S::Signature>) {
        let digest = self.subject_digest(&vote.subject);
        let v = &self.cfg.validators;
        let state = self.views.entry(vote.subject.view()).or_default();
        let Some(bucket) = state.bucket(vote.kind, digest) else {
            return;
        };
        bucket.add_verified(vote.signer, vote.signature, v);
        let (signing, netuid) = (&self.signing, self.cfg.netuid);
        let message = || remembered_signing_message(signing, netuid, vote.kind, &vote.subject);
        for peer in bucket.verify_if_useful(&self.scheme, v, message) {
            self.out.push(Effect::Penalize {
                peer,
                offence: Offence::BadSignature,
            });
        }
        self.try_certify(vote.kind, vote.subject, digest);
    }

    /// Forms a certificate from a bucket that reached a verified quorum and applies it.
    ///
    /// It is not broadcast, except a finalization formed by one of its view's collectors
    /// ([`Config::collectors`]): every validator receives the same broadcast votes and forms
    /// the certificate too, so sending it would add n² messages per certificate for nothing. A
    /// validator that missed votes gets it another way: peers re-send their latest
    /// certificates on every timeout, answer `FetchView` and `Fetch`, and one that sees a
    /// later view's votes asks for it.
    pub(super) fn try_certify(&mut self, kind: VoteKind, subject: Subject, digest: Option<Hash>) {
        let view = subject.view();
        let v = &self.cfg.validators;
        let Some(state) = self.views.get_mut(&view) else {
            return;
        };
        let Some(bucket) = state.bucket(kind, digest) else {
            return;
        };
        let Some((signers, signature)) = bucket.certificate(&self.scheme, v) else {
            return;
        };
        let cert = Certificate {
            kind,
            subject,
            signers,
            signature,
        };
        if kind == VoteKind::Finalize && self.collects(view) {
            self.out
                .push(Effect::Broadcast(Message::Certificate(cert.clone())));
        }
        self.apply_certificate(cert, true);
    }
}

/// What two conflicting votes of one signer turned out to be.
pub(super) enum Conflict<V> {
    /// Both verify: equivocation, reported.
    Proven,
    /// The arriving vote does not verify (its sender was penalized).
    SecondForged,
    /// Only the vote kept first does not verify: a forgery in the signer's name, handed back.
    FirstForged(V),
}
