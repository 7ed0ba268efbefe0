//! How votes are signed and verified. The engine is generic over the scheme so the simulator can
//! run thousands of seeds with a cheap stand-in while production uses BLS12-381.

use std::fmt::Debug;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::bls::{BlsSecretKey, BlsSignature, SignerBitmap, VerifiedBlsKey};

use crate::types::ValidatorIndex;

/// A signature scheme with aggregation over one message.
pub trait Scheme {
    /// A single or aggregate signature.
    type Signature: Clone + PartialEq + Eq + Debug + BorshSerialize + BorshDeserialize;

    /// Signs `message` with this validator's key. Must be deterministic: after a restart the
    /// same vote is re-signed to the same bytes.
    fn sign(&self, message: &[u8]) -> Self::Signature;

    /// Aggregates signatures over the same message; `None` if one is malformed.
    fn aggregate(&self, signatures: &[&Self::Signature]) -> Option<Self::Signature>;

    /// Verifies an aggregate by the validators in `signers` over `message`.
    fn verify_aggregate(
        &self,
        signers: &SignerBitmap,
        message: &[u8],
        signature: &Self::Signature,
    ) -> bool;

    /// Verifies one validator's signature.
    fn verify(
        &self,
        signer: ValidatorIndex,
        n: usize,
        message: &[u8],
        signature: &Self::Signature,
    ) -> bool {
        let mut b = SignerBitmap::new(n);
        b.set(signer as usize);
        self.verify_aggregate(&b, message, signature)
    }
}

/// A scheme that counts the signature checks made through it (`verify_aggregate`, which single
/// checks go through too): the figure behind "verifications per finalized block". Clones
/// share one counter.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    checks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<S> Counted<S> {
    /// Counts `inner`'s checks from zero.
    pub fn new(inner: S) -> Counted<S> {
        Counted {
            inner,
            checks: Default::default(),
        }
    }

    /// Checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `inner`'s checks into `checks`, which the caller keeps to read after the scheme
    /// has moved into an engine (several schemes may share one).
    pub fn with_counter(
        inner: S,
        checks: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Counted<S> {
        Counted { inner, checks }
    }
}

impl<S: Scheme> Scheme for Counted<S> {
    type Signature = S::Signature;

    fn sign(&self, message: &[u8]) -> S::Signature {
        self.inner.sign(message)
    }

    fn aggregate(&self, signatures: &[&S::Signature]) -> Option<S::Signature> {
        self.inner.aggregate(signatures)
    }

    fn verify_aggregate(
        &self,
        signers: &SignerBitmap,
        message: &[u8],
        signature: &S::Signature,
    ) -> bool {
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.verify_aggregate(signers, message, signature)
    }
}

/// BLS12-381: the production scheme. The committee's keys have verified proofs of possession.
pub struct BlsScheme {
    secret: Option<BlsSecretKey>,
    committee: Vec<VerifiedBlsKey>,
}

impl BlsScheme {
    /// A scheme for a validator (`secret`) or an observer (`None`) of `committee`.
    pub fn new(secret: Option<BlsSecretKey>, committee: Vec<VerifiedBlsKey>) -> BlsScheme {
        BlsScheme { secret, committee }
    }
}

impl Scheme for BlsScheme {
    type Signature = BlsSignature;

    fn sign(&self, message: &[u8]) -> BlsSignature {
        self.secret
            .as_ref()
            .expect("only validators with a BLS key are asked to sign")
            .sign(message)
    }

    fn aggregate(&self, signatures: &[&BlsSignature]) -> Option<BlsSignature> {
        let owned: Vec<BlsSignature> = signatures.iter().map(|s| **s).collect();
        BlsSignature::aggregate(&owned).ok()
    }

    fn verify_aggregate(
        &self,
        signers: &SignerBitmap,
        message: &[u8],
        signature: &BlsSignature,
    ) -> bool {
        signature
            .verify_aggregate(&self.committee, signers, message)
            .is_ok()
    }
}

/// A simulation-only scheme: a linear MAC. Validator `i` holds a secret key `k_i` (two 128-bit
/// lanes); its signature on `m` is `k_i · h(m)`, lane by lane modulo 2¹²⁸, with `h` = blake3;
/// an aggregate is the sum of signatures, and it verifies against `(Σ k_i) · h(m)` over its
/// signers. Every simulated validator knows every key, so it is worthless against a real
/// adversary, but it has the properties the protocol relies on inside the simulator: an actor
/// without a key cannot produce a verifying signature or aggregate for it (a forgery passes
/// with probability 2⁻²⁵⁶), an aggregate with one bad signature fails, and verification is
/// deterministic. Like BLS, checking an aggregate costs one hash of the message whatever the
/// number of signers (plus a sum of their keys), so the simulator's costs have BLS's shape.
#[derive(Clone)]
pub struct MacScheme {
    keys: std::sync::Arc<Vec<[u128; 2]>>,
    me: Option<ValidatorIndex>,
}

/// A MAC "signature" (32 bytes: two little-endian 128-bit lanes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Mac(pub [u8; 32]);

impl Mac {
    fn lanes(&self) -> [u128; 2] {
        let (a, b) = self.0.split_at(16);
        [
            u128::from_le_bytes(a.try_into().expect("16 bytes")),
            u128::from_le_bytes(b.try_into().expect("16 bytes")),
        ]
    }

    fn from_lanes(lanes: [u128; 2]) -> Mac {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&lanes[0].to_le_bytes());
        out[16..].copy_from_slice(&lanes[1].to_le_bytes());
        Mac(out)
    }
}

impl MacScheme {
    /// Keys for `n` validators derived from `seed`; `me` signs.
    pub fn new(seed: u64, n: usize, me: Option<ValidatorIndex>) -> MacScheme {
        let keys = (0..n)
            .map(|i| {
                Mac(blake3::derive_key(
                    "platform sim mac key",
                    &[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat(),
                ))
                .lanes()
            })
            .collect();
        MacScheme {
            keys: std::sync::Arc::new(keys),
            me,
        }
    }

    /// The same key set, signing as `me`.
    pub fn for_signer(&self, me: Option<ValidatorIndex>) -> MacScheme {
        MacScheme {
            keys: self.keys.clone(),
            me,
        }
    }

    /// `key · h(message)`, lane by lane.
    fn mac(key: [u128; 2], message: &[u8]) -> Mac {
        let h = Mac(*blake3::hash(message).as_bytes()).lanes();
        Mac::from_lanes([key[0].wrapping_mul(h[0]), key[1].wrapping_mul(h[1])])
    }
}

impl Scheme for MacScheme {
    type Signature = Mac;

    fn sign(&self, message: &[u8]) -> Mac {
        let me = self.me.expect("a signing validator") as usize;
        Self::mac(self.keys[me], message)
    }

    fn aggregate(&self, signatures: &[&Mac]) -> Option<Mac> {
        if signatures.is_empty() {
            return None;
        }
        let sum = signatures.iter().fold([0u128; 2], |acc, s| {
            let l = s.lanes();
            [acc[0].wrapping_add(l[0]), acc[1].wrapping_add(l[1])]
        });
        Some(Mac::from_lanes(sum))
    }

    fn verify_aggregate(&self, signers: &SignerBitmap, message: &[u8], signature: &Mac) -> bool {
        let mut key = [0u128; 2];
        let mut any = false;
        for i in signers.members() {
            let Some(k) = self.keys.get(i) else {
                return false;
            };
            any = true;
            key = [key[0].wrapping_add(k[0]), key[1].wrapping_add(k[1])];
        }
        any && Self::mac(key, message) == *signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulation MAC behaves as the protocol needs an aggregate signature to: it verifies
    /// for exactly its signers and message, and one bad part spoils it.
    #[test]
    fn mac_aggregates_verify_for_their_signers_and_message_only() {
        let n = 7;
        let keys: Vec<MacScheme> = (0..n as u16)
            .map(|i| MacScheme::new(5, n, Some(i)))
            .collect();
        let observer = keys[0].for_signer(None);
        let msg = b"vote";
        let sigs: Vec<Mac> = keys[..5].iter().map(|k| k.sign(msg)).collect();
        let mut signers = SignerBitmap::new(n);
        (0..5).for_each(|i| signers.set(i));
        let agg = observer
            .aggregate(&sigs.iter().collect::<Vec<_>>())
            .unwrap();
        assert!(observer.verify_aggregate(&signers, msg, &agg));
        assert!(!observer.verify_aggregate(&signers, b"other", &agg));
        let mut fewer = SignerBitmap::new(n);
        (0..4).for_each(|i| fewer.set(i));
        assert!(!observer.verify_aggregate(&fewer, msg, &agg));
        assert!(!observer.verify_aggregate(&SignerBitmap::new(n), msg, &agg));
        assert!(observer.verify(3, n, msg, &sigs[3]));
        assert!(
            !observer.verify(4, n, msg, &sigs[3]),
            "another signer's signature"
        );
        let mut forged = sigs.clone();
        forged[2] = Mac([2; 32]);
        let bad = observer
            .aggregate(&forged.iter().collect::<Vec<_>>())
            .unwrap();
        assert!(!observer.verify_aggregate(&signers, msg, &bad));
        let mut outside = SignerBitmap::new(n + 1);
        outside.set(n);
        assert!(!observer.verify_aggregate(&outside, msg, &sigs[0]));
    }
}
