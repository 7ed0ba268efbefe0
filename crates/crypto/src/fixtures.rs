//! Deterministic key sets for benchmarks, simulations and tests. The keys come from fixed seeds
//! and are public knowledge: never use them for value.

use platform_primitives::Hotkey;

use crate::bls::{BlsSecretKey, BlsSignature, SignerBitmap, VerifiedBlsKey};
use crate::sr25519::{Domain, Keypair, Signature, SignedMessage};

/// `n` messages signed by `n` distinct sr25519 keys in one domain.
pub struct SignedBatch {
    hotkeys: Vec<Hotkey>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    domain: Domain,
}

impl SignedBatch {
    /// Builds the batch: key `i` has seed `[i; 32]` and signs 128 bytes of `i`.
    pub fn new(n: usize, domain: Domain) -> SignedBatch {
        let keys: Vec<Keypair> = (0..n).map(|i| Keypair::from_seed(&[i as u8; 32])).collect();
        let messages: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 128]).collect();
        let signatures = keys
            .iter()
            .zip(&messages)
            .map(|(k, m)| k.sign(domain, m))
            .collect();
        SignedBatch {
            hotkeys: keys.iter().map(Keypair::hotkey).collect(),
            messages,
            signatures,
            domain,
        }
    }

    /// The batch as [`crate::verify_batch`] takes it.
    pub fn items(&self) -> Vec<SignedMessage<'_>> {
        (0..self.hotkeys.len())
            .map(|i| SignedMessage {
                signer: &self.hotkeys[i],
                domain: self.domain,
                message: &self.messages[i],
                signature: &self.signatures[i],
            })
            .collect()
    }
}

/// A BLS committee of `n` members with verified proofs of possession. Member `i` has seed
/// `[i + 1; 32]`.
pub struct BlsCommittee {
    /// Secret keys, by member index.
    pub secrets: Vec<BlsSecretKey>,
    /// Verified public keys, by member index.
    pub keys: Vec<VerifiedBlsKey>,
}

impl BlsCommittee {
    /// Builds the committee.
    pub fn new(n: usize) -> BlsCommittee {
        let secrets: Vec<BlsSecretKey> = (0..n)
            .map(|i| BlsSecretKey::from_seed(&[i as u8 + 1; 32]))
            .collect();
        let keys = secrets
            .iter()
            .map(|k| {
                k.public()
                    .verify_possession(&k.prove_possession())
                    .expect("own proof verifies")
            })
            .collect();
        BlsCommittee { secrets, keys }
    }

    /// Every member's signature over `message`, aggregated, with the all-members bitmap.
    pub fn sign_all(&self, message: &[u8]) -> (BlsSignature, SignerBitmap) {
        let mut bitmap = SignerBitmap::new(self.secrets.len());
        (0..self.secrets.len()).for_each(|i| bitmap.set(i));
        let sigs: Vec<BlsSignature> = self.secrets.iter().map(|k| k.sign(message)).collect();
        (
            BlsSignature::aggregate(&sigs).expect("non-empty committee"),
            bitmap,
        )
    }
}
