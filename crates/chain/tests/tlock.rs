//! Timelocked commits against the reference implementation, `bittensor-drand` (vectors made by
//! `tests/vectors/make_tlock_vectors.py` with versions 1.3.0 and 2.0.0).

use platform_chain::timelock::{
    Beacon, CommitAt, EpochState, WeightsPayload, open, reveal_round, reveal_round_stateful,
};
use platform_crypto::timelock::{BeaconKey, Randomness, RoundSignature, decrypt, encrypt};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/tlock.json")).unwrap()
}

fn round_1000(v: &Value) -> RoundSignature {
    let hex_sig = v["round_1000_signature"].as_str().unwrap();
    let sig = RoundSignature::from_bytes(&hex::decode(hex_sig).unwrap()).unwrap();
    assert!(
        sig.verify(&BeaconKey::quicknet(), 1000),
        "a genuine quicknet signature"
    );
    sig
}

fn versions(v: &Value) -> Vec<(&String, &Value)> {
    let all: Vec<_> = v["bittensor_drand"].as_object().unwrap().iter().collect();
    let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&"1.3.0") && names.contains(&"2.0.0"),
        "{names:?}"
    );
    all
}

fn u16s(v: &Value) -> Vec<u16> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u16)
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn the_references_commits_open_here_to_the_payload_it_was_given() {
    let v = vectors();
    let sig = round_1000(&v);
    let mut opened = 0;
    for (version, section) in versions(&v) {
        for c in section["reference_commits"].as_array().unwrap() {
            assert_eq!(c["round"], 1000);
            let commit = bytes(&c["commit"]);
            let payload = open(&commit, &sig).unwrap_or_else(|e| panic!("{version}: {e}"));
            let expected = WeightsPayload {
                hotkey: bytes(&c["hotkey"]).try_into().unwrap(),
                uids: u16s(&c["uids"]),
                values: u16s(&c["values"]),
                version_key: c["version_key"].as_u64().unwrap(),
            };
            assert_eq!(payload, expected, "{version}");
            // Our SCALE encoding is byte for byte the reference's.
            assert_eq!(
                decrypt(&commit, &sig).unwrap(),
                expected.encode(),
                "{version}"
            );
            opened += 1;
        }
    }
    assert_eq!(opened, 6);
}

#[test]
fn our_ciphertexts_are_the_ones_the_reference_decrypted() {
    let v = vectors();
    let sig = round_1000(&v);
    let key = BeaconKey::quicknet();
    for (version, section) in versions(&v) {
        let cases = section["ours_decrypted_by_reference"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for c in cases {
            let randomness = Randomness {
                key: bytes(&c["key"]).try_into().unwrap(),
                sigma: bytes(&c["sigma"]).try_into().unwrap(),
                nonce: bytes(&c["nonce"]).try_into().unwrap(),
            };
            let plaintext = bytes(&c["plaintext"]);
            let round = c["round"].as_u64().unwrap();
            let ct = encrypt(&key, round, &plaintext, &randomness).unwrap();
            assert_eq!(ct, bytes(&c["ciphertext"]), "{version}: encryption changed");
            assert_eq!(bytes(&c["decrypted_by_reference"]), plaintext, "{version}");
            assert_eq!(decrypt(&ct, &sig).unwrap(), plaintext);
        }
    }
}

#[test]
fn reveal_rounds_match_the_spec_393_reference_on_every_chain_state() {
    let v = vectors();
    let rows = v["bittensor_drand"]["1.3.0"]["reveal_rounds"]
        .as_array()
        .unwrap();
    assert!(rows.len() >= 100);
    for r in rows {
        let at = CommitAt {
            netuid: r["netuid"].as_u64().unwrap() as u16,
            tempo: r["tempo"].as_u64().unwrap() as u16,
            reveal_period_epochs: r["reveal_period_epochs"].as_u64().unwrap(),
            current_block: r["current_block"].as_u64().unwrap(),
        };
        let beacon = Beacon {
            block_time_ms: r["block_time_ms"].as_u64().unwrap(),
            ..Beacon::quicknet(r["now_secs"].as_u64().unwrap() * 1000)
        };
        assert_eq!(
            reveal_round(&at, &beacon),
            r["reveal_round"].as_u64().unwrap(),
            "{r}"
        );
    }
}

#[test]
fn reveal_rounds_match_the_stateful_reference_on_every_chain_state() {
    let v = vectors();
    let rows = v["bittensor_drand"]["2.0.0"]["reveal_rounds"]
        .as_array()
        .unwrap();
    assert!(rows.len() >= 100);
    let n = |r: &Value, k: &str| r[k].as_u64().unwrap();
    let mut pending_cases = 0;
    for r in rows {
        let state = EpochState {
            last_epoch_block: n(r, "last_epoch_block"),
            pending_epoch_at: n(r, "pending_epoch_at"),
            subnet_epoch_index: n(r, "subnet_epoch_index"),
            tempo: n(r, "tempo") as u16,
            blocks_since_last_step: n(r, "blocks_since_last_step"),
            current_block: n(r, "current_block"),
        };
        pending_cases += usize::from(state.pending_epoch_at > 0);
        let beacon = Beacon {
            block_time_ms: n(r, "block_time_ms"),
            ..Beacon::quicknet(n(r, "now_secs") * 1000)
        };
        let round = reveal_round_stateful(&state, n(r, "reveal_period_epochs"), &beacon);
        assert_eq!(round, Some(n(r, "reveal_round")), "{r}");
    }
    assert!(pending_cases >= 6, "owner-triggered epochs are covered");
}
