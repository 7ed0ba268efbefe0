//! Safety and liveness checks, written independently of the engine: they recompute quorums and
//! chain links from the raw data instead of calling the engine's own predicates.

use std::collections::BTreeMap;

use platform_primitives::{Hash, Height};

use crate::scheme::Scheme;
use crate::types::{Certificate, Proposal, Subject, VoteKind, signing_message};

/// What the oracle has seen and found.
pub struct Oracle {
    stakes: Vec<u64>,
    netuid: platform_primitives::NetUid,
    /// The digest finalized at each height by the first honest actor to finalize it.
    canonical: BTreeMap<Height, Hash>,
    /// Each honest actor's finalized tip: height and digest.
    tips: Vec<Option<(Height, Hash)>>,
    /// The first violation found.
    pub violation: Option<String>,
    /// Certificates checked.
    pub certificates_checked: u64,
    /// The signing message of the last certificate checked: every honest actor's copy of a
    /// certificate is checked, and they come one after another.
    last_message: Option<(VoteKind, Subject, Vec<u8>)>,
}

impl Oracle {
    /// An oracle for a validator set whose chain starts at `anchor` (height `anchor_height`).
    pub fn new(
        stakes: Vec<u64>,
        netuid: platform_primitives::NetUid,
        anchor: Hash,
        anchor_height: Height,
    ) -> Oracle {
        let mut canonical = BTreeMap::new();
        canonical.insert(anchor_height, anchor);
        Oracle {
            stakes,
            netuid,
            canonical,
            tips: Vec::new(),
            violation: None,
            certificates_checked: 0,
            last_message: None,
        }
    }

    fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(why);
        }
    }

    /// Checks a certificate: signers hold more than 2/3 of the stake and the aggregate verifies.
    pub fn check_certificate<S: Scheme>(
        &mut self,
        scheme: &S,
        cert: &Certificate<S::Signature>,
        context: impl Fn() -> String,
    ) {
        self.certificates_checked += 1;
        let total: u128 = self.stakes.iter().map(|&s| u128::from(s)).sum();
        let mut signed: u128 = 0;
        for i in cert.signers.members() {
            match self.stakes.get(i) {
                Some(&s) => signed += u128::from(s),
                None => {
                    return self.fail(format!(
                        "{}: certificate names signer {i} outside the set",
                        context()
                    ));
                }
            }
        }
        if 3 * signed <= 2 * total {
            return self.fail(format!(
                "{}: certificate with {signed} of {total} stake, not more than 2/3",
                context()
            ));
        }
        let (kind, subject) = (cert.kind, cert.subject);
        let cached = match &self.last_message {
            Some((k, s, message)) if *k == kind && *s == subject => Some(message),
            _ => None,
        };
        let message = match cached {
            Some(message) => message,
            None => {
                let message = signing_message(self.netuid, kind, &subject);
                &self.last_message.insert((kind, subject, message)).2
            }
        };
        if !scheme.verify_aggregate(&cert.signers, message, &cert.signature) {
            self.fail(format!(
                "{}: certificate signature does not verify",
                context()
            ));
        }
    }

    /// Records that honest `actor` finalized `proposal` under `cert`.
    pub fn finalized<S: Scheme>(
        &mut self,
        scheme: &S,
        actor: usize,
        proposal: &Proposal,
        cert: &Certificate<S::Signature>,
    ) {
        let ctx = || format!("actor {actor} at height {}", proposal.height.0);
        if cert.kind != VoteKind::Finalize {
            self.fail(format!(
                "{}: finalized under a {:?} certificate",
                ctx(),
                cert.kind
            ));
        }
        if let Subject::Proposal(head) = cert.subject
            && head.height < proposal.height
        {
            self.fail(format!("{}: certificate is for a lower block", ctx()));
        }
        self.check_certificate(scheme, cert, ctx);
        let digest = proposal.digest();
        // Heights arrive one by one, each extending the actor's previous tip.
        if let Some(&(h, tip)) = self.tips.get(actor).and_then(Option::as_ref) {
            if proposal.height.0 != h.0 + 1 {
                self.fail(format!(
                    "{}: finalized height {} after {}",
                    ctx(),
                    proposal.height.0,
                    h.0
                ));
            }
            if proposal.parent != tip {
                self.fail(format!(
                    "{}: block does not extend the actor's previous finalized block",
                    ctx()
                ));
            }
        } else if self.canonical.get(&Height(proposal.height.0 - 1)) != Some(&proposal.parent) {
            self.fail(format!(
                "{}: first finalized block does not extend the canonical chain",
                ctx()
            ));
        }
        match self.canonical.get(&proposal.height) {
            Some(&d) if d != digest => self.fail(format!(
                "SAFETY VIOLATION {}: finalized {digest} but another honest actor finalized {d} at this height",
                ctx()
            )),
            Some(_) => {}
            None => {
                self.canonical.insert(proposal.height, digest);
            }
        }
        self.set_tip(actor, (proposal.height, digest));
    }

    /// An honest actor restarted with this finalized tip (from its own storage).
    pub fn restored(&mut self, actor: usize, tip: (Height, Hash)) {
        self.set_tip(actor, tip);
    }

    fn set_tip(&mut self, actor: usize, tip: (Height, Hash)) {
        if self.tips.len() <= actor {
            self.tips.resize(actor + 1, None);
        }
        self.tips[actor] = Some(tip);
    }

    /// Finalized height of an actor.
    pub fn height(&self, actor: usize) -> u64 {
        self.tips
            .get(actor)
            .and_then(Option::as_ref)
            .map_or(0, |(h, _)| h.0)
    }
}
