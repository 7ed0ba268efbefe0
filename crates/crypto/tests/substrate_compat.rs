//! Compatibility with Substrate and Bittensor, checked against vectors that an independent
//! implementation produced (see `vectors/make_sr25519_vectors.py`).

use platform_crypto::sr25519::verify_substrate;
use platform_crypto::{Signature, parse_suri};
use platform_primitives::Hotkey;

#[derive(serde::Deserialize)]
struct Vector {
    suri: String,
    public_key: String,
    message: String,
    signature: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("vectors/sr25519_vectors.json")).unwrap()
}

#[test]
fn we_derive_the_same_keys() {
    let vectors = vectors();
    assert!(vectors.len() >= 12);
    for v in &vectors {
        let key = parse_suri(&v.suri).unwrap();
        assert_eq!(key.hotkey().to_hex(), v.public_key, "{}", v.suri);
    }
    let alice = vectors.iter().find(|v| v.suri == "//Alice").unwrap();
    let hk = Hotkey(hex::decode(&alice.public_key).unwrap().try_into().unwrap());
    assert_eq!(
        hk.to_ss58(),
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
}

#[test]
fn their_signatures_verify_with_the_substrate_context() {
    for v in vectors() {
        let hk = Hotkey(hex::decode(&v.public_key).unwrap().try_into().unwrap());
        let sig = Signature(hex::decode(&v.signature).unwrap().try_into().unwrap());
        let msg = hex::decode(&v.message).unwrap();
        assert_eq!(verify_substrate(&hk, &msg, &sig), Ok(()), "{}", v.suri);
        let mut other = msg.clone();
        other.push(0);
        assert!(verify_substrate(&hk, &other, &sig).is_err());
    }
}
