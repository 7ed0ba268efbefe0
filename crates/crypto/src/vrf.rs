//! The sr25519 VRF (schnorrkel): unpredictable, verifiable randomness per (key, input).
//!
//! A block proposer proves the VRF over `(netuid, epoch, height)`; the output seeds leader
//! election and committee sortition. Anyone holding the proposer's hotkey checks the proof and
//! derives the same randomness, so no validator can choose its own luck.

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::Hotkey;
use schnorrkel::signing_context;
use schnorrkel::vrf::{VRFPreOut, VRFProof};

use crate::sr25519::Keypair;

const VRF_CONTEXT: &[u8] = b"platform/v1/vrf";
const OUTPUT_CONTEXT: &[u8] = b"platform/v1/vrf-randomness";

/// A VRF pre-output and its proof, as carried in a block header (96 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct VrfProof {
    /// The VRF pre-output (a compressed Ristretto point).
    pub output: [u8; 32],
    /// The DLEQ proof that `output` was made with the signer's key.
    pub proof: [u8; 64],
}

/// 32 bytes of verified VRF randomness.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct VrfRandomness(pub [u8; 32]);

impl VrfRandomness {
    /// The first eight bytes, little-endian: a uniform u64 for draws.
    pub fn as_u64(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

/// Why a VRF proof did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VrfError {
    /// The hotkey is not a valid sr25519 key.
    #[error("{0} is not a valid sr25519 public key")]
    BadPublicKey(Hotkey),
    /// The output or proof bytes are malformed.
    #[error("malformed VRF proof")]
    Malformed,
    /// The proof does not verify for this key and input.
    #[error("VRF proof does not verify for {0} on this input")]
    Invalid(Hotkey),
}

fn randomness(inout: &schnorrkel::vrf::VRFInOut) -> VrfRandomness {
    VrfRandomness(inout.make_bytes::<[u8; 32]>(OUTPUT_CONTEXT))
}

impl Keypair {
    /// Evaluates the VRF on `input` and proves it.
    pub fn vrf_prove(&self, input: &[u8]) -> (VrfRandomness, VrfProof) {
        let (inout, proof, _) = self
            .schnorrkel()
            .vrf_sign(signing_context(VRF_CONTEXT).bytes(input));
        (
            randomness(&inout),
            VrfProof {
                output: inout.to_preout().to_bytes(),
                proof: proof.to_bytes(),
            },
        )
    }
}

/// Checks `proof` for `hotkey` on `input` and returns the randomness it commits to.
pub fn vrf_verify(
    hotkey: &Hotkey,
    input: &[u8],
    proof: &VrfProof,
) -> Result<VrfRandomness, VrfError> {
    let public = schnorrkel::PublicKey::from_bytes(&hotkey.0)
        .map_err(|_| VrfError::BadPublicKey(*hotkey))?;
    let preout = VRFPreOut::from_bytes(&proof.output).map_err(|_| VrfError::Malformed)?;
    let dleq = VRFProof::from_bytes(&proof.proof).map_err(|_| VrfError::Malformed)?;
    let (inout, _) = public
        .vrf_verify(signing_context(VRF_CONTEXT).bytes(input), &preout, &dleq)
        .map_err(|_| VrfError::Invalid(*hotkey))?;
    Ok(randomness(&inout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_key_and_input() {
        let key = Keypair::from_seed(&[3; 32]);
        let (r1, p1) = key.vrf_prove(b"netuid 1 epoch 5 height 9");
        let (r2, p2) = key.vrf_prove(b"netuid 1 epoch 5 height 9");
        assert_eq!(r1, r2);
        // The output point is deterministic; the proof is randomized but both verify.
        assert_eq!(p1.output, p2.output);
        assert_eq!(
            vrf_verify(&key.hotkey(), b"netuid 1 epoch 5 height 9", &p1),
            Ok(r1)
        );
        assert_eq!(
            vrf_verify(&key.hotkey(), b"netuid 1 epoch 5 height 9", &p2),
            Ok(r1)
        );
        assert_eq!(
            r1.as_u64(),
            u64::from_le_bytes(r1.0[..8].try_into().unwrap())
        );
    }

    #[test]
    fn differs_across_inputs_and_keys() {
        let a = Keypair::from_seed(&[3; 32]);
        let b = Keypair::from_seed(&[4; 32]);
        let outputs: std::collections::BTreeSet<_> = (0..50u32)
            .map(|h| a.vrf_prove(&h.to_le_bytes()).0)
            .chain((0..50u32).map(|h| b.vrf_prove(&h.to_le_bytes()).0))
            .collect();
        assert_eq!(outputs.len(), 100);
    }

    #[test]
    fn verification_fails_for_another_key_or_input() {
        let a = Keypair::from_seed(&[3; 32]);
        let b = Keypair::from_seed(&[4; 32]);
        let (_, proof) = a.vrf_prove(b"x");
        assert_eq!(
            vrf_verify(&b.hotkey(), b"x", &proof),
            Err(VrfError::Invalid(b.hotkey()))
        );
        assert_eq!(
            vrf_verify(&a.hotkey(), b"y", &proof),
            Err(VrfError::Invalid(a.hotkey()))
        );
        // Swapping in another key's output with the original proof fails too.
        let (_, other) = b.vrf_prove(b"x");
        let spliced = VrfProof {
            output: other.output,
            proof: proof.proof,
        };
        assert!(vrf_verify(&a.hotkey(), b"x", &spliced).is_err());
    }
}
