//! BLS12-381 signatures for consensus votes (min-pk: 48-byte public keys, 96-byte signatures),
//! using the IETF proof-of-possession ciphersuite as implemented by `blst`.
//!
//! Aggregation makes a quorum certificate one signature plus a signer bitmap, however many
//! validators signed. Aggregating public keys is only safe when every key's owner has proved
//! knowledge of its secret: otherwise an attacker can publish `pk_rogue = g^x − pk_honest` and
//! forge an "aggregate" of both with `x` alone. So this module never aggregates a raw public key:
//! only a [`VerifiedBlsKey`], which exists only after [`BlsPublicKey::verify_possession`].

use std::fmt;

use blst::BLST_ERROR;
use blst::min_pk::{AggregatePublicKey, AggregateSignature, PublicKey, SecretKey, Signature};
use borsh::{BorshDeserialize, BorshSerialize};

/// Domain separation tag for signatures (the IETF `_POP_` ciphersuite, min-pk variant).
const SIG_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Domain separation tag for proofs of possession.
const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Why a BLS operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlsError {
    /// The bytes are not a valid public key (bad encoding, infinity or outside the subgroup).
    #[error("invalid BLS public key: {0:?}")]
    BadPublicKey(BLST_ERROR),
    /// The bytes are not a valid signature.
    #[error("invalid BLS signature encoding: {0:?}")]
    BadSignature(BLST_ERROR),
    /// The proof of possession does not verify for the key.
    #[error("proof of possession does not verify for this BLS key")]
    BadProofOfPossession,
    /// The signature does not verify.
    #[error("BLS signature does not verify")]
    Invalid,
    /// The signer bitmap does not fit the committee.
    #[error("signer bitmap does not fit a committee of {committee}: {reason}")]
    BadBitmap {
        /// Committee size.
        committee: usize,
        /// What is wrong with the bitmap.
        reason: &'static str,
    },
    /// Nothing to aggregate.
    #[error("cannot aggregate zero signatures")]
    Empty,
}

/// A BLS secret key. Zeroized on drop; `Debug` shows only the public key.
pub struct BlsSecretKey(SecretKey);

impl BlsSecretKey {
    /// Derives a key from 32 bytes of secret input keying material (IETF KeyGen).
    pub fn from_seed(ikm: &[u8; 32]) -> BlsSecretKey {
        BlsSecretKey(
            SecretKey::key_gen(ikm, b"platform/v1/bls").expect("32 bytes of IKM are enough"),
        )
    }

    /// The public key.
    pub fn public(&self) -> BlsPublicKey {
        BlsPublicKey(self.0.sk_to_pk().compress())
    }

    /// Signs `message`. Callers put their own domain tag in the message.
    pub fn sign(&self, message: &[u8]) -> BlsSignature {
        BlsSignature(self.0.sign(message, SIG_DST, &[]).compress())
    }

    /// A proof of possession: a signature over the public key under the PoP tag.
    pub fn prove_possession(&self) -> BlsSignature {
        BlsSignature(self.0.sign(&self.public().0, POP_DST, &[]).compress())
    }
}

impl fmt::Debug for BlsSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BlsSecretKey(public {:?}, secret redacted)",
            self.public()
        )
    }
}

/// A compressed 48-byte G1 public key, not yet checked.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct BlsPublicKey(pub [u8; 48]);

impl fmt::Debug for BlsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsPublicKey({})", hex::encode(self.0))
    }
}

impl BlsPublicKey {
    /// Checks the key and its proof of possession; the result may join aggregates.
    pub fn verify_possession(&self, pop: &BlsSignature) -> Result<VerifiedBlsKey, BlsError> {
        let point = PublicKey::key_validate(&self.0).map_err(BlsError::BadPublicKey)?;
        let sig = pop.point()?;
        match sig.verify(true, &self.0, POP_DST, &[], &point, false) {
            BLST_ERROR::BLST_SUCCESS => Ok(VerifiedBlsKey {
                bytes: *self,
                point,
            }),
            _ => Err(BlsError::BadProofOfPossession),
        }
    }
}

/// A public key whose proof of possession has been verified. The only kind of key that
/// signatures are checked against and that is ever aggregated.
#[derive(Clone)]
pub struct VerifiedBlsKey {
    bytes: BlsPublicKey,
    point: PublicKey,
}

impl VerifiedBlsKey {
    /// The compressed key.
    pub fn public(&self) -> BlsPublicKey {
        self.bytes
    }
}

impl fmt::Debug for VerifiedBlsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifiedBlsKey({})", hex::encode(self.bytes.0))
    }
}

/// A compressed 96-byte G2 signature (single or aggregate).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlsSignature(pub [u8; 96]);

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSignature({})", hex::encode(self.0))
    }
}

impl BlsSignature {
    fn point(&self) -> Result<Signature, BlsError> {
        Signature::from_bytes(&self.0).map_err(BlsError::BadSignature)
    }

    /// Verifies a single signature.
    pub fn verify(&self, key: &VerifiedBlsKey, message: &[u8]) -> Result<(), BlsError> {
        match self
            .point()?
            .verify(true, message, SIG_DST, &[], &key.point, false)
        {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(BlsError::Invalid),
        }
    }

    /// Aggregates signatures (each checked to be in the subgroup).
    pub fn aggregate(signatures: &[BlsSignature]) -> Result<BlsSignature, BlsError> {
        if signatures.is_empty() {
            return Err(BlsError::Empty);
        }
        let points = signatures
            .iter()
            .map(BlsSignature::point)
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Signature> = points.iter().collect();
        let agg = AggregateSignature::aggregate(&refs, true).map_err(BlsError::BadSignature)?;
        Ok(BlsSignature(agg.to_signature().compress()))
    }

    /// Verifies an aggregate signature by the members of `committee` marked in `signers`, all
    /// over the same `message`.
    pub fn verify_aggregate(
        &self,
        committee: &[VerifiedBlsKey],
        signers: &SignerBitmap,
        message: &[u8],
    ) -> Result<(), BlsError> {
        signers.check_fits(committee.len())?;
        let keys: Vec<&PublicKey> = signers.members().map(|i| &committee[i].point).collect();
        let agg = AggregatePublicKey::aggregate(&keys, false).map_err(BlsError::BadPublicKey)?;
        match self.point()?.fast_aggregate_verify_pre_aggregated(
            true,
            message,
            SIG_DST,
            &agg.to_public_key(),
        ) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(BlsError::Invalid),
        }
    }
}

/// Which members of an ordered committee signed: bit `i` (byte `i / 8`, bit `i % 8`, least
/// significant first) is member `i`.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct SignerBitmap(Vec<u8>);

impl SignerBitmap {
    /// An empty bitmap for a committee of `n`.
    pub fn new(n: usize) -> SignerBitmap {
        SignerBitmap(vec![0; n.div_ceil(8)])
    }

    /// Marks member `i`. Panics if `i` is outside the committee the bitmap was made for.
    pub fn set(&mut self, i: usize) {
        self.0[i / 8] |= 1 << (i % 8);
    }

    /// Whether member `i` signed.
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Indices of the members who signed, ascending.
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.0.len() * 8).filter(|&i| self.contains(i))
    }

    /// Number of signers.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    fn check_fits(&self, committee: usize) -> Result<(), BlsError> {
        let bad = |reason| Err(BlsError::BadBitmap { committee, reason });
        if self.0.len() != committee.div_ceil(8) {
            return bad("wrong length");
        }
        if self.members().any(|i| i >= committee) {
            return bad("a bit is set beyond the last member");
        }
        if self.count() == 0 {
            return bad("no signers");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> BlsSecretKey {
        BlsSecretKey::from_seed(&[i; 32])
    }

    fn verified(sk: &BlsSecretKey) -> VerifiedBlsKey {
        sk.public()
            .verify_possession(&sk.prove_possession())
            .unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let sk = key(1);
        let vk = verified(&sk);
        let sig = sk.sign(b"notarize 7");
        assert_eq!(sig.verify(&vk, b"notarize 7"), Ok(()));
        assert_eq!(sig.verify(&vk, b"notarize 8"), Err(BlsError::Invalid));
        assert_eq!(
            sig.verify(&verified(&key(2)), b"notarize 7"),
            Err(BlsError::Invalid)
        );
    }

    #[test]
    fn a_pop_is_not_a_signature_and_vice_versa() {
        let sk = key(1);
        // A signature over the key bytes under the signing tag is not a valid PoP.
        let fake_pop = sk.sign(&sk.public().0);
        assert_eq!(
            sk.public().verify_possession(&fake_pop).unwrap_err(),
            BlsError::BadProofOfPossession
        );
        // Another key's PoP does not transfer.
        assert!(
            sk.public()
                .verify_possession(&key(2).prove_possession())
                .is_err()
        );
    }

    #[test]
    fn aggregate_with_bitmap() {
        let sks: Vec<BlsSecretKey> = (0..10).map(key).collect();
        let committee: Vec<VerifiedBlsKey> = sks.iter().map(verified).collect();
        let msg = b"finalize 42";
        let mut signers = SignerBitmap::new(10);
        let mut sigs = Vec::new();
        for i in [0, 3, 4, 9] {
            signers.set(i);
            sigs.push(sks[i].sign(msg));
        }
        let agg = BlsSignature::aggregate(&sigs).unwrap();
        assert_eq!(agg.verify_aggregate(&committee, &signers, msg), Ok(()));

        // Claiming a signer who did not sign fails; so does omitting one who did.
        let mut extra = signers.clone();
        extra.set(5);
        assert_eq!(
            agg.verify_aggregate(&committee, &extra, msg),
            Err(BlsError::Invalid)
        );
        let mut fewer = SignerBitmap::new(10);
        for i in [0, 3, 4] {
            fewer.set(i);
        }
        assert_eq!(
            agg.verify_aggregate(&committee, &fewer, msg),
            Err(BlsError::Invalid)
        );

        // Bitmaps that do not fit the committee.
        assert!(matches!(
            agg.verify_aggregate(&committee[..8], &signers, msg),
            Err(BlsError::BadBitmap { .. })
        ));
        let mut beyond = SignerBitmap::new(10);
        beyond.set(12);
        assert!(matches!(
            agg.verify_aggregate(&committee, &beyond, msg),
            Err(BlsError::BadBitmap { .. })
        ));
        assert!(matches!(
            agg.verify_aggregate(&committee, &SignerBitmap::new(10), msg),
            Err(BlsError::BadBitmap { .. })
        ));
        assert_eq!(BlsSignature::aggregate(&[]), Err(BlsError::Empty));
    }

    /// The rogue-key attack: the attacker publishes `pk_rogue = pk_attacker − pk_honest`, so
    /// the aggregate of {honest, rogue} is `pk_attacker` and the attacker alone "co-signs" for
    /// the honest validator. Raw aggregation (no PoP) accepts the forgery; ours refuses the key.
    #[test]
    fn rogue_key_attack_is_refused() {
        let honest = key(1);
        let attacker = key(66);
        // Negating a compressed G1 point flips its sign bit (0x20 of the first byte).
        let mut neg_honest = honest.public().0;
        neg_honest[0] ^= 0x20;
        let a = PublicKey::from_bytes(&attacker.public().0).unwrap();
        let n = PublicKey::from_bytes(&neg_honest).unwrap();
        let rogue = AggregatePublicKey::aggregate(&[&a, &n], false)
            .unwrap()
            .to_public_key();
        let rogue_bytes = BlsPublicKey(rogue.compress());

        // The attack is real against raw aggregation.
        let msg = b"finalize the attacker's block";
        let forged = attacker.sign(msg);
        let honest_pk = PublicKey::from_bytes(&honest.public().0).unwrap();
        let raw = Signature::from_bytes(&forged.0)
            .unwrap()
            .fast_aggregate_verify(true, msg, SIG_DST, &[&honest_pk, &rogue]);
        assert_eq!(
            raw,
            BLST_ERROR::BLST_SUCCESS,
            "the forgery verifies without PoP"
        );

        // The attacker cannot prove possession of the rogue key: neither its own PoP nor a PoP
        // signed with its key over the rogue bytes verifies, so the key never joins a committee.
        for pop in [
            attacker.prove_possession(),
            BlsSignature(attacker.0.sign(&rogue_bytes.0, POP_DST, &[]).compress()),
        ] {
            assert_eq!(
                rogue_bytes.verify_possession(&pop).unwrap_err(),
                BlsError::BadProofOfPossession
            );
        }

        // And with the honest key verified, the forgery fails against any committee the
        // attacker can actually join with its own (verified) key.
        let committee = vec![verified(&honest), verified(&attacker)];
        let mut both = SignerBitmap::new(2);
        both.set(0);
        both.set(1);
        assert_eq!(
            forged.verify_aggregate(&committee, &both, msg),
            Err(BlsError::Invalid)
        );
    }

    #[test]
    fn malformed_bytes_are_errors() {
        assert!(matches!(
            BlsPublicKey([0xff; 48]).verify_possession(&key(1).prove_possession()),
            Err(BlsError::BadPublicKey(_))
        ));
        let vk = verified(&key(1));
        assert!(matches!(
            BlsSignature([0xff; 96]).verify(&vk, b"m"),
            Err(BlsError::BadSignature(_))
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let sk = key(7);
        let secret_hex = hex::encode(sk.0.to_bytes());
        assert!(!format!("{sk:?}").contains(&secret_hex));
    }
}
