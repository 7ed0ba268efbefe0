//! Collecting votes for one subject with lazy batch verification.
//!
//! Votes arrive unverified. Verifying each on arrival would cost one pairing per vote; instead a
//! bucket waits until verified and unverified votes together *could* make a quorum, then checks
//! all unverified votes at once: they sign the same message, so one aggregate verification
//! covers them. If it fails, the bucket bisects the batch to find the bad signers, which the
//! engine penalizes, and keeps the rest.

use std::collections::BTreeMap;

use platform_crypto::bls::SignerBitmap;

use crate::scheme::Scheme;
use crate::types::ValidatorIndex;
use crate::validators::Validators;

/// At most this many different signatures are held per unverified signer. A deterministic
/// signer has one valid signature; the others are forgeries sent in its name, and holding a few
/// means a forgery that arrives first cannot shadow the real vote.
const MAX_CANDIDATES: usize = 3;

/// Votes of one kind on one subject.
#[derive(Debug)]
pub struct Bucket<Sig> {
    verified: BTreeMap<ValidatorIndex, Sig>,
    /// Unverified signatures per signer, each with the peer that sent it.
    pending: BTreeMap<ValidatorIndex, Candidates<Sig>>,
    verified_stake: u128,
    pending_stake: u128,
    /// Set once a certificate was formed from this bucket; later votes are ignored.
    pub done: bool,
}

/// One signer's unverified signatures, each with the peer that sent it: the first, and any
/// others (rare: a signer has one valid signature), kept apart so the common case allocates
/// nothing.
#[derive(Debug)]
struct Candidates<Sig> {
    first: (Sig, ValidatorIndex),
    others: Vec<(Sig, ValidatorIndex)>,
}

impl<Sig> Candidates<Sig> {
    fn len(&self) -> usize {
        1 + self.others.len()
    }

    fn iter(&self) -> impl Iterator<Item = &(Sig, ValidatorIndex)> {
        std::iter::once(&self.first).chain(&self.others)
    }
}

impl<Sig> Default for Bucket<Sig> {
    fn default() -> Self {
        Bucket {
            verified: BTreeMap::new(),
            pending: BTreeMap::new(),
            verified_stake: 0,
            pending_stake: 0,
            done: false,
        }
    }
}

impl<Sig: Clone + PartialEq> Bucket<Sig> {
    /// Whether this signer has a verified vote here.
    pub fn is_verified(&self, signer: ValidatorIndex) -> bool {
        self.verified.contains_key(&signer)
    }

    /// Adds an unverified vote sent by `from`; returns false if it adds nothing.
    pub fn add_pending(
        &mut self,
        signer: ValidatorIndex,
        sig: Sig,
        from: ValidatorIndex,
        validators: &Validators,
    ) -> bool {
        if self.done || self.verified.contains_key(&signer) {
            return false;
        }
        match self.pending.entry(signer) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Candidates {
                    first: (sig, from),
                    others: Vec::new(),
                });
                self.pending_stake += u128::from(validators.stake(signer));
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let candidates = e.get_mut();
                if candidates.len() >= MAX_CANDIDATES || candidates.iter().any(|(s, _)| *s == sig) {
                    return false;
                }
                candidates.others.push((sig, from));
            }
        }
        true
    }

    /// Removes a signer's votes (a forgery found another way).
    pub fn remove(&mut self, signer: ValidatorIndex, validators: &Validators) {
        if self.pending.remove(&signer).is_some() {
            self.pending_stake -= u128::from(validators.stake(signer));
        }
        if self.verified.remove(&signer).is_some() {
            self.verified_stake -= u128::from(validators.stake(signer));
        }
    }

    /// Adds a vote already known to be valid (our own, or one checked on its own).
    pub fn add_verified(&mut self, signer: ValidatorIndex, sig: Sig, validators: &Validators) {
        if self.done {
            return;
        }
        if self.pending.remove(&signer).is_some() {
            self.pending_stake -= u128::from(validators.stake(signer));
        }
        if self.verified.insert(signer, sig).is_none() {
            self.verified_stake += u128::from(validators.stake(signer));
        }
    }

    /// Verifies the pending votes if a quorum has become possible, against the signing message
    /// `message` makes (asked for only then: most votes arrive when there is nothing to check).
    /// Returns the peers that sent bad signatures (the signatures are dropped).
    pub fn verify_if_useful<S: Scheme<Signature = Sig>, M: std::ops::Deref<Target = [u8]>>(
        &mut self,
        scheme: &S,
        validators: &Validators,
        message: impl FnOnce() -> M,
    ) -> Vec<ValidatorIndex> {
        if self.done
            || self.pending.is_empty()
            || !validators.is_quorum(self.verified_stake + self.pending_stake)
        {
            return Vec::new();
        }
        let message = message();
        let message = &*message;
        let pending = std::mem::take(&mut self.pending);
        self.pending_stake = 0;
        // First candidate of every signer, checked together; bisection finds the bad ones.
        let first: Vec<(ValidatorIndex, Sig)> = pending
            .iter()
            .map(|(&i, c)| (i, c.first.0.clone()))
            .collect();
        let mut bad = Vec::new();
        bisect(scheme, validators.len(), message, &first, &mut bad);
        let mut offenders = Vec::new();
        let n = validators.len();
        for (signer, candidates) in pending {
            let good = if bad.binary_search(&signer).is_err() {
                Some(candidates.first.0)
            } else {
                offenders.push(candidates.first.1);
                // The first was forged: try the others on their own.
                let mut found = None;
                for (sig, from) in candidates.others {
                    if found.is_none() && scheme.verify(signer, n, message, &sig) {
                        found = Some(sig);
                    } else {
                        offenders.push(from);
                    }
                }
                found
            };
            if let Some(sig) = good {
                self.verified_stake += u128::from(validators.stake(signer));
                self.verified.insert(signer, sig);
            }
        }
        offenders.sort_unstable();
        offenders.dedup();
        offenders
    }

    /// If the verified votes are a quorum, the certificate's signers and aggregate signature.
    pub fn certificate<S: Scheme<Signature = Sig>>(
        &mut self,
        scheme: &S,
        validators: &Validators,
    ) -> Option<(SignerBitmap, Sig)> {
        if self.done || !validators.is_quorum(self.verified_stake) {
            return None;
        }
        let mut signers = SignerBitmap::new(validators.len());
        let sigs: Vec<&Sig> = self
            .verified
            .iter()
            .map(|(&i, s)| {
                signers.set(usize::from(i));
                s
            })
            .collect();
        let aggregate = scheme.aggregate(&sigs)?;
        self.done = true;
        Some((signers, aggregate))
    }
}

/// Finds the bad signatures among `items` (sorted by signer): verify the aggregate of the range;
/// if it fails, split it in two and recurse. Bad signers are appended in index order.
fn bisect<S: Scheme>(
    scheme: &S,
    n: usize,
    message: &[u8],
    items: &[(ValidatorIndex, S::Signature)],
    bad: &mut Vec<ValidatorIndex>,
) {
    let mut signers = SignerBitmap::new(n);
    items.iter().for_each(|(i, _)| signers.set(usize::from(*i)));
    let sigs: Vec<&S::Signature> = items.iter().map(|(_, s)| s).collect();
    let ok = scheme
        .aggregate(&sigs)
        .is_some_and(|agg| scheme.verify_aggregate(&signers, message, &agg));
    if ok {
        return;
    }
    if items.len() == 1 {
        bad.push(items[0].0);
        return;
    }
    let (left, right) = items.split_at(items.len() / 2);
    bisect(scheme, n, message, left, bad);
    bisect(scheme, n, message, right, bad);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::{Mac, MacScheme};

    #[test]
    fn verifies_only_once_a_quorum_is_possible_and_finds_forgers() {
        let validators = Validators::new(vec![1; 7]);
        let keys: Vec<MacScheme> = (0..7).map(|i| MacScheme::new(3, 7, Some(i))).collect();
        let msg = b"vote";
        let mut bucket = Bucket::default();
        for i in 0..4u16 {
            bucket.add_pending(i, keys[i as usize].sign(msg), i, &validators);
            assert!(
                bucket
                    .verify_if_useful(&keys[0], &validators, || &msg[..])
                    .is_empty()
            );
        }
        assert!(
            bucket.certificate(&keys[0], &validators).is_none(),
            "4 of 7 is not a quorum, nothing verified yet"
        );
        // Two forged signatures among the next votes.
        bucket.add_pending(4, Mac([1; 32]), 6, &validators);
        bucket.add_pending(5, keys[5].sign(msg), 5, &validators);
        let bad = bucket.verify_if_useful(&keys[0], &validators, || &msg[..]);
        assert_eq!(bad, vec![6], "the peer that sent the forgery is named");
        // 5 of 7 equal stakes is more than two thirds (15 > 14).
        let (signers, agg) = bucket.certificate(&keys[0], &validators).unwrap();
        assert_eq!(signers.members().collect::<Vec<_>>(), vec![0, 1, 2, 3, 5]);
        assert!(keys[0].verify_aggregate(&signers, msg, &agg));
        assert!(
            !bucket.add_pending(3, keys[3].sign(msg), 3, &validators),
            "closed once certified"
        );
    }

    /// At subnet size (64 equal validators, a quorum is 43): one forged vote among the first 43
    /// costs a bisection of about 2·log₂(43) checks instead of 43 single ones, names the peer
    /// that sent it, keeps the 42 good votes, and the next honest vote certifies.
    #[test]
    fn one_forgery_among_43_votes_is_found_and_the_rest_still_certify() {
        use crate::scheme::Counted;
        let n = 64;
        let validators = Validators::new(vec![1; n]);
        let keys: Vec<MacScheme> = (0..n as u16)
            .map(|i| MacScheme::new(3, n, Some(i)))
            .collect();
        let verifier = Counted::new(keys[0].clone());
        let msg = b"vote";
        let mut bucket = Bucket::default();
        for i in 0..43u16 {
            // Signer 17's vote is forged by peer 50, which relays it.
            let (sig, from) = if i == 17 {
                (Mac([17; 32]), 50)
            } else {
                (keys[i as usize].sign(msg), i)
            };
            bucket.add_pending(i, sig, from, &validators);
        }
        assert_eq!(
            bucket.verify_if_useful(&verifier, &validators, || &msg[..]),
            vec![50]
        );
        let checks = verifier.checks();
        assert!(
            (2..=13).contains(&checks),
            "one batch check, then bisection down to the forgery: {checks}"
        );
        assert!(
            bucket.certificate(&verifier, &validators).is_none(),
            "42 of 64 is not a quorum"
        );
        bucket.add_pending(43, keys[43].sign(msg), 43, &validators);
        assert!(
            bucket
                .verify_if_useful(&verifier, &validators, || &msg[..])
                .is_empty()
        );
        let (signers, agg) = bucket.certificate(&verifier, &validators).unwrap();
        assert_eq!(signers.count(), 43);
        assert!(!signers.members().any(|i| i == 17));
        assert!(verifier.verify_aggregate(&signers, msg, &agg));
    }

    #[test]
    fn bisection_finds_every_bad_signer() {
        let n = 16;
        let validators = Validators::new(vec![1; n]);
        let keys: Vec<MacScheme> = (0..n as u16)
            .map(|i| MacScheme::new(3, n, Some(i)))
            .collect();
        let msg = b"vote";
        let mut bucket = Bucket::default();
        for i in 0..n as u16 {
            let sig = if [2, 3, 11].contains(&i) {
                Mac([i as u8; 32])
            } else {
                keys[i as usize].sign(msg)
            };
            bucket.add_pending(i, sig, 0, &validators);
        }
        assert_eq!(
            bucket.verify_if_useful(&keys[0], &validators, || &msg[..]),
            vec![0]
        );
        assert_eq!(
            bucket.certificate(&keys[0], &validators).unwrap().0.count(),
            13
        );
    }

    #[test]
    fn a_forgery_that_arrives_first_does_not_shadow_the_real_vote() {
        let validators = Validators::new(vec![1; 4]);
        let keys: Vec<MacScheme> = (0..4).map(|i| MacScheme::new(3, 4, Some(i))).collect();
        let msg = b"vote";
        let mut bucket = Bucket::default();
        bucket.add_pending(2, Mac([9; 32]), 3, &validators); // peer 3 forges signer 2's vote
        for i in 0..3u16 {
            bucket.add_pending(i, keys[i as usize].sign(msg), i, &validators);
        }
        assert_eq!(
            bucket.verify_if_useful(&keys[0], &validators, || &msg[..]),
            vec![3]
        );
        assert_eq!(
            bucket.certificate(&keys[0], &validators).unwrap().0.count(),
            3
        );
    }
}
