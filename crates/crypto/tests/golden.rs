//! Golden encodings of the crypto types that travel in blocks and certificates. sr25519
//! signatures are randomized, so their vectors fix the *encoding*; BLS is deterministic, so its
//! vectors fix keys and signatures too.

use platform_crypto::bls::SignerBitmap;
use platform_crypto::{BlsSecretKey, Signature, VrfProof};
use platform_primitives::{decode, encode};

#[test]
fn bls_keys_and_signatures_are_deterministic() {
    let sk = BlsSecretKey::from_seed(&[7; 32]);
    let pk = sk.public();
    let sig = sk.sign(b"platform golden");
    let pop = sk.prove_possession();
    assert_eq!(
        hex::encode(encode(&pk)),
        hex::encode(pk.0),
        "a public key encodes as its 48 bytes"
    );
    assert_eq!(encode(&sig).len(), 96);
    // Known answers: a change of ciphersuite, tag or key derivation changes these.
    assert_eq!(hex::encode(pk.0), GOLDEN_PK);
    assert_eq!(hex::encode(sig.0), GOLDEN_SIG);
    assert_eq!(hex::encode(pop.0), GOLDEN_POP);
}

/// From py_ecc (`vectors/make_bls_vectors.py`), an implementation independent of blst.
const GOLDEN_PK: &str = "ae6d6a46dfbe372ba665a5cc89125b5e49515099f0cf3a4d298c4e641202244f0baffd0be579078a78853b2d567b2fe4";
const GOLDEN_SIG: &str = "89debbd63aab15f11326a97cb4107be129bf8b64700d6b314e19ccd1306b45a7895974eb7eec0af227fbcbb4acc55aed0bfb8542a3e7a511ecffb7f97d9d2b541fbb0c153264f64e9290da504761cd566b9bb7159fd578cc906153aafdab6d9d";
const GOLDEN_POP: &str = "b7588ab55bc2fe1c21b482cc35a85171bef4ace8317906c37b1659803283cf649200c0b78012d03022be727962a747f3103606030b10526c2811eceadd7a96651a1655c106614289c7992d36c731bbab3917ce2b8ffe5f42a210645d18c06c87";

#[test]
fn signer_bitmap() {
    let mut b = SignerBitmap::new(10);
    for i in [0, 3, 9] {
        b.set(i);
    }
    assert_eq!(hex::encode(encode(&b)), "020000000902");
    assert_eq!(
        decode::<SignerBitmap>("bitmap", &encode(&b), 64).unwrap(),
        b
    );
}

#[test]
fn fixed_size_encodings() {
    assert_eq!(encode(&Signature([0xab; 64])), vec![0xab; 64]);
    let proof = VrfProof {
        output: [1; 32],
        proof: [2; 64],
    };
    let bytes = encode(&proof);
    assert_eq!(bytes.len(), 96);
    assert_eq!(&bytes[..32], &[1; 32]);
    assert_eq!(decode::<VrfProof>("vrf", &bytes, 96).unwrap(), proof);
    assert!(decode::<VrfProof>("vrf", &bytes[..95], 96).is_err());
}
