//! Golden (known-answer) encodings of every primitive that crosses the wire or reaches disk.
//! If one of these fails, the byte format changed: that is a protocol break, not a test to
//! update casually.

use platform_primitives::{
    ChallengeId, Epoch, Hash, Height, Hotkey, NetUid, Score, Submission, SubmissionId, Uid, View,
    Weights, decode, encode,
};

fn check<T>(value: T, expected_hex: &str)
where
    T: borsh::BorshSerialize + borsh::BorshDeserialize + PartialEq + std::fmt::Debug,
{
    let bytes = encode(&value);
    assert_eq!(hex::encode(&bytes), expected_hex, "encoding of {value:?}");
    let back: T = decode("golden", &bytes, 1 << 16).expect("decodes");
    assert_eq!(back, value);
}

fn alice() -> Hotkey {
    "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        .parse()
        .unwrap()
}

#[test]
fn counters() {
    check(Height(0x0102030405060708), "0807060504030201");
    check(View(1), "0100000000000000");
    check(Epoch(258), "0201000000000000");
    check(NetUid(1), "0100");
    check(Uid(513), "0102");
}

#[test]
fn hashes_and_keys() {
    check(
        // blake3("platform"), cross-checked with the Python `blake3` package.
        Hash::of(b"platform"),
        "c58ca219bd380106351067d708291068932752ce389352ee86e5ce78190f7b41",
    );
    check(
        alice(),
        "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",
    );
}

#[test]
fn challenge_id() {
    check(ChallengeId::new("tsp").unwrap(), "03000000747370");
}

#[test]
fn score() {
    check(Score::ONE, "00ca9a3b00000000");
}

#[test]
fn weights() {
    let w = Weights::from_shares([(Uid(3), 1), (Uid(1), 1)]).unwrap();
    check(w, "0200000001000300020000000080ff7f");
}

#[test]
fn submission_and_its_id() {
    let s = Submission {
        challenge: ChallengeId::new("tsp").unwrap(),
        miner: alice(),
        payload_hash: Hash::of(b"tour"),
        payload_len: 4,
        nonce: 1,
    };
    let expected = concat!(
        "03000000747370",
        "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d",
        "PAYLOAD_HASH",
        "0400000000000000",
        "0100000000000000"
    )
    .replace("PAYLOAD_HASH", &Hash::of(b"tour").to_hex());
    check(s.clone(), &expected);
    let id = s.id();
    assert_eq!(id, SubmissionId(Hash::of(&hex::decode(&expected).unwrap())));
    check(id, &id.0.to_hex());
}
