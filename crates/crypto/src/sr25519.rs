//! sr25519 hotkeys.
//!
//! Two kinds of signatures are made with the same key:
//! - *Substrate* signatures ([`Keypair::sign_substrate`]) under the signing context
//!   `b"substrate"`, which is what the chain checks on extrinsics.
//! - *Platform* signatures ([`Keypair::sign`]) under one signing context per [`Domain`], so a
//!   signature made for one kind of message can never be replayed as another kind — nor as a
//!   chain extrinsic, whose context differs from all of them.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::Hotkey;
use schnorrkel::{ExpansionMode, MiniSecretKey, signing_context};
use zeroize::Zeroizing;

/// The signing context Substrate uses for sr25519 extrinsic and message signatures.
pub const SUBSTRATE_CONTEXT: &[u8] = b"substrate";

/// The kinds of message Platform signs with hotkeys. Each has its own signing context.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash)]
pub enum Domain {
    /// A miner's submission.
    Submission,
    /// A subnet owner's `Sudo` action.
    Sudo,
    /// A validator binding its BLS key and libp2p identity to its hotkey.
    BindKeys,
    /// The statement, exchanged on connect, that a libp2p PeerId belongs to a hotkey.
    PeerIdentity,
    /// Evidence of misbehaviour submitted by anyone.
    Evidence,
    /// A block proposal's header, signed by its proposer.
    Proposal,
    /// A message a validator publishes on a gossip topic.
    Gossip,
}

impl Domain {
    /// Every domain, for tests and documentation.
    pub const ALL: [Domain; 7] = [
        Domain::Submission,
        Domain::Sudo,
        Domain::BindKeys,
        Domain::PeerIdentity,
        Domain::Evidence,
        Domain::Proposal,
        Domain::Gossip,
    ];

    /// The schnorrkel signing context of this domain.
    pub fn context(self) -> &'static [u8] {
        match self {
            Domain::Submission => b"platform/v1/submission",
            Domain::Sudo => b"platform/v1/sudo",
            Domain::BindKeys => b"platform/v1/bind-keys",
            Domain::PeerIdentity => b"platform/v1/peer-identity",
            Domain::Evidence => b"platform/v1/evidence",
            Domain::Proposal => b"platform/v1/proposal",
            Domain::Gossip => b"platform/v1/gossip",
        }
    }
}

/// A 64-byte sr25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Why a signature did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The 32 bytes are not a valid sr25519 public key.
    #[error("{0} is not a valid sr25519 public key")]
    BadPublicKey(Hotkey),
    /// The 64 bytes are not a well-formed sr25519 signature.
    #[error("malformed sr25519 signature: {0}")]
    Malformed(String),
    /// Well-formed, but not made by this key over this message in this domain.
    #[error("signature does not verify for {0}")]
    Invalid(Hotkey),
    /// One or more signatures of a batch are invalid.
    #[error("batch of {0} signatures does not verify: at least one is invalid")]
    BatchInvalid(usize),
}

fn public_key(hotkey: &Hotkey) -> Result<schnorrkel::PublicKey, SignatureError> {
    schnorrkel::PublicKey::from_bytes(&hotkey.0).map_err(|_| SignatureError::BadPublicKey(*hotkey))
}

fn signature(sig: &Signature) -> Result<schnorrkel::Signature, SignatureError> {
    schnorrkel::Signature::from_bytes(&sig.0).map_err(|e| SignatureError::Malformed(e.to_string()))
}

/// An sr25519 key pair. The mini-secret seed is kept when known (keys made from a seed, a
/// mnemonic or a hard derivation) so the key can be exported to a wallet file.
pub struct Keypair {
    pair: schnorrkel::Keypair,
    seed: Option<Zeroizing<[u8; 32]>>,
}

impl Keypair {
    /// The key pair of a 32-byte mini-secret seed, expanded as Substrate does (Ed25519 mode).
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        let mini = MiniSecretKey::from_bytes(seed).expect("any 32 bytes are a mini secret key");
        Keypair {
            pair: mini.expand_to_keypair(ExpansionMode::Ed25519),
            seed: Some(Zeroizing::new(*seed)),
        }
    }

    pub(crate) fn from_secret(secret: schnorrkel::SecretKey) -> Keypair {
        Keypair {
            pair: secret.to_keypair(),
            seed: None,
        }
    }

    pub(crate) fn schnorrkel(&self) -> &schnorrkel::Keypair {
        &self.pair
    }

    /// The public key.
    pub fn hotkey(&self) -> Hotkey {
        Hotkey(self.pair.public.to_bytes())
    }

    /// The 32-byte mini-secret seed, if this key has one (soft-derived keys do not).
    pub fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_deref()
    }

    /// Signs `message` in a Platform [`Domain`].
    pub fn sign(&self, domain: Domain, message: &[u8]) -> Signature {
        Signature(
            self.pair
                .sign(signing_context(domain.context()).bytes(message))
                .to_bytes(),
        )
    }

    /// Signs `message` as Substrate does (context `substrate`), e.g. for chain extrinsics.
    pub fn sign_substrate(&self, message: &[u8]) -> Signature {
        Signature(
            self.pair
                .sign(signing_context(SUBSTRATE_CONTEXT).bytes(message))
                .to_bytes(),
        )
    }

    /// Derives the validator's BLS12-381 key from this hotkey's seed, so one backed-up secret
    /// restores both keys. `None` for keys without a seed.
    pub fn derive_bls_key(&self) -> Option<crate::bls::BlsSecretKey> {
        let seed = self.seed()?;
        let ikm = Zeroizing::new(blake3::derive_key(
            "platform v1 bls12-381 key from sr25519 seed",
            seed,
        ));
        Some(crate::bls::BlsSecretKey::from_seed(&ikm))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({}, secret redacted)", self.hotkey())
    }
}

/// Verifies a Platform signature in `domain`.
pub fn verify(
    hotkey: &Hotkey,
    domain: Domain,
    message: &[u8],
    sig: &Signature,
) -> Result<(), SignatureError> {
    public_key(hotkey)?
        .verify(
            signing_context(domain.context()).bytes(message),
            &signature(sig)?,
        )
        .map_err(|_| SignatureError::Invalid(*hotkey))
}

/// Verifies a Substrate-context signature.
pub fn verify_substrate(
    hotkey: &Hotkey,
    message: &[u8],
    sig: &Signature,
) -> Result<(), SignatureError> {
    public_key(hotkey)?
        .verify(
            signing_context(SUBSTRATE_CONTEXT).bytes(message),
            &signature(sig)?,
        )
        .map_err(|_| SignatureError::Invalid(*hotkey))
}

/// One signed message of a batch.
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    /// Who signed.
    pub signer: &'a Hotkey,
    /// The domain it was signed in.
    pub domain: Domain,
    /// The signed bytes.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
}

/// Verifies many Platform signatures at once, faster than one by one. On failure the caller
/// learns only that some signature is bad and should fall back to [`verify`] per item to find it.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Result<(), SignatureError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    for item in items {
        keys.push(public_key(item.signer)?);
        sigs.push(signature(item.signature)?);
    }
    let transcripts = items
        .iter()
        .map(|item| signing_context(item.domain.context()).bytes(item.message));
    schnorrkel::verify_batch(transcripts, &sigs, &keys, false)
        .map_err(|_| SignatureError::BatchInvalid(items.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_in_its_own_domain() {
        let key = Keypair::from_seed(&[1; 32]);
        let msg = b"the same bytes";
        for signed_in in Domain::ALL {
            let sig = key.sign(signed_in, msg);
            for checked_in in Domain::ALL {
                let ok = verify(&key.hotkey(), checked_in, msg, &sig).is_ok();
                assert_eq!(
                    ok,
                    signed_in == checked_in,
                    "{signed_in:?} vs {checked_in:?}"
                );
            }
            // Nor is it a valid Substrate signature.
            assert!(verify_substrate(&key.hotkey(), msg, &sig).is_err());
        }
        let sub = key.sign_substrate(msg);
        for d in Domain::ALL {
            assert!(verify(&key.hotkey(), d, msg, &sub).is_err());
        }
        assert!(verify_substrate(&key.hotkey(), msg, &sub).is_ok());
    }

    #[test]
    fn domain_contexts_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for d in Domain::ALL {
            assert!(seen.insert(d.context()));
            assert_ne!(d.context(), SUBSTRATE_CONTEXT);
        }
    }

    #[test]
    fn wrong_key_or_message_fails() {
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let sig = a.sign(Domain::Submission, b"m");
        assert_eq!(
            verify(&b.hotkey(), Domain::Submission, b"m", &sig),
            Err(SignatureError::Invalid(b.hotkey()))
        );
        assert!(verify(&a.hotkey(), Domain::Submission, b"n", &sig).is_err());
        let mut bad = sig;
        bad.0[63] &= 0x7f; // clears schnorrkel's marker bit
        assert!(matches!(
            verify(&a.hotkey(), Domain::Submission, b"m", &bad),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn batch_verification_accepts_good_and_refuses_any_bad() {
        let keys: Vec<Keypair> = (0..16u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let hotkeys: Vec<Hotkey> = keys.iter().map(Keypair::hotkey).collect();
        let msgs: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 10]).collect();
        let domains = [Domain::Submission, Domain::Sudo];
        let mut sigs: Vec<Signature> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.sign(domains[i % 2], &msgs[i]))
            .collect();
        let batch = |sigs: &[Signature]| {
            let items: Vec<SignedMessage<'_>> = (0..16)
                .map(|i| SignedMessage {
                    signer: &hotkeys[i],
                    domain: domains[i % 2],
                    message: &msgs[i],
                    signature: &sigs[i],
                })
                .collect();
            verify_batch(&items)
        };
        assert_eq!(batch(&sigs), Ok(()));
        sigs.swap(3, 4);
        assert_eq!(batch(&sigs), Err(SignatureError::BatchInvalid(16)));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let seed = [0xab; 32];
        let key = Keypair::from_seed(&seed);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(seed)), "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(shown.contains(&key.hotkey().to_ss58()));
    }
}
