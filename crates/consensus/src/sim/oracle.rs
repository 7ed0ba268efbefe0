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
    tips: BTreeMap<usize, (Height, Hash)>,
    /// The first violation found.
    pub violation: Option<String>,
    /// Certificates checked.
    pub certificates_checked: u64,
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
            tips: BTreeMap::new(),
            violation: None,
            certificates_checked: 0,
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
        context: &str,
    ) {
        self.certificates_checked += 1;
        let total: u128 = self.stakes.iter().map(|&s| u128::from(s)).sum();
        let mut signed: u128 = 0;
        for i in cert.signers.members() {
            match self.stakes.get(i) {
                Some(&s) => signed += u128::from(s),
                None => {
                    return self.fail(format!(
                        "{context}: certificate names signer {i} outside the set"
                    ));
                }
            }
        }
        if 3 * signed <= 2 * total {
            return self.fail(format!(
                "{context}: certificate with {signed} of {total} stake, not more than 2/3"
            ));
        }
        let message = signing_message(self.netuid, cert.kind, &cert.subject);
        if !scheme.verify_aggregate(&cert.signers, &message, &cert.signature) {
            self.fail(format!("{context}: certificate signature does not verify"));
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
        let ctx = format!("actor {actor} at height {}", proposal.height.0);
        if cert.kind != VoteKind::Finalize {
            self.fail(format!(
                "{ctx}: finalized under a {:?} certificate",
                cert.kind
            ));
        }
        if let Subject::Proposal(head) = cert.subject
            && head.height < proposal.height
        {
            self.fail(format!("{ctx}: certificate is for a lower block"));
        }
        self.check_certificate(scheme, cert, &ctx);
        let digest = proposal.digest();
        // Heights arrive one by one, each extending the actor's previous tip.
        if let Some(&(h, tip)) = self.tips.get(&actor) {
            if proposal.height.0 != h.0 + 1 {
                self.fail(format!(
                    "{ctx}: finalized height {} after {}",
                    proposal.height.0, h.0
                ));
            }
            if proposal.parent != tip {
                self.fail(format!(
                    "{ctx}: block does not extend the actor's previous finalized block"
                ));
            }
        } else if self.canonical.get(&Height(proposal.height.0 - 1)) != Some(&proposal.parent) {
            self.fail(format!(
                "{ctx}: first finalized block does not extend the canonical chain"
            ));
        }
        match self.canonical.get(&proposal.height) {
            Some(&d) if d != digest => self.fail(format!(
                "SAFETY VIOLATION {ctx}: finalized {digest} but another honest actor finalized {d} at this height"
            )),
            Some(_) => {}
            None => {
                self.canonical.insert(proposal.height, digest);
            }
        }
        self.tips.insert(actor, (proposal.height, digest));
    }

    /// An honest actor restarted with this finalized tip (from its own storage).
    pub fn restored(&mut self, actor: usize, tip: (Height, Hash)) {
        self.tips.insert(actor, tip);
    }

    /// Finalized height of an actor.
    pub fn height(&self, actor: usize) -> u64 {
        self.tips.get(&actor).map_or(0, |(h, _)| h.0)
    }
}
