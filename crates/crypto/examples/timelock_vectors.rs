//! Prints ciphertexts of this crate's timelock encryption, with fixed randomness, to drand
//! quicknet's round 1000, as JSON. `crates/chain/tests/vectors/make_tlock_vectors.py` feeds them
//! to the reference implementation (`bittensor-drand`) and records that it decrypts them; the
//! tests then check that this code still produces the same bytes.
//!
//!     cargo run -q -p platform-crypto --example timelock_vectors

use platform_crypto::timelock::{BeaconKey, Randomness, encrypt};

fn main() {
    let key = BeaconKey::quicknet();
    let plaintexts: [&[u8]; 3] = [b"", b"this is a test", &[0xA5; 1000]];
    let mut cases = Vec::new();
    for (i, plaintext) in plaintexts.iter().enumerate() {
        let seed = i as u8 + 1;
        let randomness = Randomness {
            key: [seed; 32],
            sigma: [seed + 100; 32],
            nonce: [seed; 12],
        };
        let ct = encrypt(&key, 1000, plaintext, &randomness).expect("small plaintext");
        cases.push(serde_json::json!({
            "round": 1000,
            "key": hex::encode(randomness.key),
            "sigma": hex::encode(randomness.sigma),
            "nonce": hex::encode(randomness.nonce),
            "plaintext": hex::encode(plaintext),
            "ciphertext": hex::encode(ct),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&cases).expect("json"));
}
