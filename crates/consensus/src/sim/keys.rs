//! Key sets for simulated validators: the cheap MAC scheme for large campaigns, or real BLS.

use platform_crypto::bls::{BlsSecretKey, BlsSignature, VerifiedBlsKey};
use platform_crypto::fixtures::BlsCommittee;

use crate::scheme::{BlsScheme, Mac, MacScheme, Scheme};
use crate::types::ValidatorIndex;

/// Makes the scheme each simulated validator signs and verifies with.
pub trait SimKeys {
    /// The scheme.
    type Scheme: Scheme;
    /// The scheme of validator `me` (or of the oracle, with `None`).
    fn scheme(&self, me: Option<ValidatorIndex>) -> Self::Scheme;
    /// A signature that will not verify, as a forger would send.
    fn forged(&self, noise: [u8; 32]) -> <Self::Scheme as Scheme>::Signature;
}

/// MAC keys for `n` validators.
pub struct MacKeys(MacScheme);

impl MacKeys {
    /// Keys derived from `seed`.
    pub fn new(seed: u64, n: usize) -> MacKeys {
        MacKeys(MacScheme::new(seed, n, None))
    }
}

impl SimKeys for MacKeys {
    type Scheme = MacScheme;
    fn scheme(&self, me: Option<ValidatorIndex>) -> MacScheme {
        self.0.for_signer(me)
    }
    fn forged(&self, noise: [u8; 32]) -> Mac {
        Mac(noise)
    }
}

/// Real BLS12-381 keys (the fixture committee).
pub struct BlsKeys(Vec<VerifiedBlsKey>);

impl BlsKeys {
    /// A committee of `n`.
    pub fn new(n: usize) -> BlsKeys {
        BlsKeys(BlsCommittee::new(n).keys)
    }
}

impl SimKeys for BlsKeys {
    type Scheme = BlsScheme;
    fn scheme(&self, me: Option<ValidatorIndex>) -> BlsScheme {
        // The fixture committee's member i has seed [i + 1; 32].
        let secret = me.map(|i| BlsSecretKey::from_seed(&[i as u8 + 1; 32]));
        BlsScheme::new(secret, self.0.clone())
    }
    fn forged(&self, noise: [u8; 32]) -> BlsSignature {
        // A valid signature by a key outside the committee, over unrelated bytes.
        BlsSecretKey::from_seed(&noise).sign(b"forged")
    }
}
