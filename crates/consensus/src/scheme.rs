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

/// A simulation-only scheme: a signature is a keyed blake3 MAC and an aggregate is the XOR of
/// MACs. Every simulated validator knows every key, so it is worthless against a real adversary,
/// but it has the properties the protocol relies on inside the simulator: an actor without a key
/// cannot produce a verifying signature or aggregate for it, and verification is deterministic.
#[derive(Clone)]
pub struct MacScheme {
    keys: std::sync::Arc<Vec<[u8; 32]>>,
    me: Option<ValidatorIndex>,
}

/// A MAC "signature" (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Mac(pub [u8; 32]);

impl MacScheme {
    /// Keys for `n` validators derived from `seed`; `me` signs.
    pub fn new(seed: u64, n: usize, me: Option<ValidatorIndex>) -> MacScheme {
        let keys = (0..n)
            .map(|i| {
                blake3::derive_key(
                    "platform sim mac key",
                    &[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat(),
                )
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

    fn mac(&self, signer: usize, message: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.keys[signer], message).as_bytes()
    }
}

impl Scheme for MacScheme {
    type Signature = Mac;

    fn sign(&self, message: &[u8]) -> Mac {
        Mac(self.mac(self.me.expect("a signing validator") as usize, message))
    }

    fn aggregate(&self, signatures: &[&Mac]) -> Option<Mac> {
        if signatures.is_empty() {
            return None;
        }
        let mut out = [0u8; 32];
        for s in signatures {
            out.iter_mut().zip(s.0).for_each(|(o, b)| *o ^= b);
        }
        Some(Mac(out))
    }

    fn verify_aggregate(&self, signers: &SignerBitmap, message: &[u8], signature: &Mac) -> bool {
        let mut expected = [0u8; 32];
        let mut any = false;
        for i in signers.members() {
            if i >= self.keys.len() {
                return false;
            }
            any = true;
            expected
                .iter_mut()
                .zip(self.mac(i, message))
                .for_each(|(o, b)| *o ^= b);
        }
        any && expected == signature.0
    }
}
