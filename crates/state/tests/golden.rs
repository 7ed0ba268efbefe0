//! Golden (known-answer) encodings of the state machine's transactions, blocks and records.
//! If one fails, the byte format changed: that is a protocol break (old blocks would no longer
//! decode or hash the same), not a test to update casually.

use platform_crypto::vrf::VrfProof;
use platform_crypto::{BlsPublicKey, BlsSignature, Signature, SignerBitmap};
use platform_primitives::{
    ChallengeId, Epoch, Hash, Height, Hotkey, NetUid, Score, Submission, SubmissionId, Uid, View,
    decode, encode,
};
use platform_runtime::OutcomeClass;
use platform_state::records::{
    BoundKeys, ChallengeRecord, EpochRecord, Genesis, Member, Meta, ScoreEntry, SubmissionRecord,
    SubmissionStatus,
};
use platform_state::*;

fn check<T>(value: T, expected_blake3: &str)
where
    T: borsh::BorshSerialize + borsh::BorshDeserialize + PartialEq + std::fmt::Debug,
{
    let bytes = encode(&value);
    assert_eq!(
        Hash::of(&bytes).to_hex(),
        expected_blake3,
        "blake3 of the encoding of {value:?} (hex {})",
        hex::encode(&bytes)
    );
    let back: T = decode("golden", &bytes, 1 << 20).expect("decodes");
    assert_eq!(back, value);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(decode::<T>("golden", &trailing, 1 << 20).is_err());
}

fn hk(b: u8) -> Hotkey {
    Hotkey([b; 32])
}

fn meta() -> ChallengeMeta {
    ChallengeMeta {
        id: ChallengeId::new("tsp").unwrap(),
        name: "Travelling salesman".into(),
        version: 3,
        wasm_hash: Hash([7; 32]),
        abi_version: 1,
        resources: Resources {
            fuel: 2_000_000_000,
            max_memory_pages: 512,
            max_output_bytes: 65_536,
            max_log_bytes: 16_384,
            max_payload_bytes: 4_096,
        },
        committee_size: Some(3),
        emission_bps: 6_000,
        scoring: ScoringRule::TopK {
            k: 3,
            decay_bps: 5_000,
        },
        assets: vec![Asset {
            url: "https://example.org/data.bin".into(),
            blake3: Hash([8; 32]),
            max_bytes: 1 << 20,
        }],
    }
}

fn attest() -> Attest {
    Attest {
        submission: SubmissionId(Hash([4; 32])),
        evaluator: hk(5),
        digest: Hash([6; 32]),
        signature: BlsSignature([9; 96]),
    }
}

fn submission() -> Submission {
    Submission {
        challenge: ChallengeId::new("tsp").unwrap(),
        miner: hk(2),
        payload_hash: Hash([3; 32]),
        payload_len: 228,
        nonce: 7,
    }
}

fn neuron() -> Neuron {
    Neuron {
        uid: Uid(3),
        hotkey: hk(1),
        coldkey: [2; 32],
        stake: 1_000_000_000,
        validator_permit: true,
    }
}

#[test]
fn transactions() {
    check(
        Tx::Submit(SubmitTx {
            submission: submission(),
            signature: Some(Signature([1; 64])),
        }),
        "76ab293105d1c1d2f73a8ec1043359ae33d1e04daa84d4cef97f16576e04f66e",
    );
    check(
        Tx::Attest(attest()),
        "8052148e9ee2c9ab27a6b24518b7d6ffd53590650a2d10c8ac960352605c881b",
    );
    let mut signers = SignerBitmap::new(4);
    signers.set(0);
    signers.set(2);
    check(
        Tx::Certify(CertifyTx {
            submission: SubmissionId(Hash([4; 32])),
            result: ResultBody {
                outcome: OutcomeClass::Ok,
                output: vec![1, 2, 3],
                write_set: vec![(b"k".to_vec(), Some(b"v".to_vec())), (b"d".to_vec(), None)],
                fuel_used: 12_345,
                engine_hash: [5; 32],
            },
            signers,
            signature: BlsSignature([9; 96]),
        }),
        "4efc69af3d48ae58cf679ca149c5cd27dfe0539ae972254d8b8e7f1d9519588f",
    );
    check(
        Tx::Sudo(SudoTx {
            action: SudoAction::Publish(meta()),
            nonce: 4,
            signer: hk(1),
            signature: Some(Signature([1; 64])),
        }),
        "6a938866c43bae07cd7b82f449226f6c6b471fa90b66847232d4c9b11998e78f",
    );
    check(
        Tx::Sudo(SudoTx {
            action: SudoAction::Transition {
                challenge: ChallengeId::new("tsp").unwrap(),
                to: Lifecycle::Active,
            },
            nonce: 5,
            signer: hk(1),
            signature: None,
        }),
        "4a4506c4f8a19af6da5e7443a93747e7eb788df28383a072ba5c64f41fee89a0",
    );
    check(
        SudoAction::SetParams(Params::default()),
        "29a7ac750a69ec73835fb9c1520b74ad8d61bc81b4d142c032708f22141fb136",
    );
    check(
        SudoAction::SetEmission {
            challenge: ChallengeId::new("tsp").unwrap(),
            emission_bps: 2_500,
        },
        "5bbe4d1aee9d37b916172ef29628b0bc19aab586a46a2d064626b69b76c8f439",
    );
    check(
        Tx::BindKeys(BindKeysTx {
            hotkey: hk(1),
            bls_key: BlsPublicKey([3; 48]),
            pop: BlsSignature([4; 96]),
            peer_id: vec![0, 36, 8, 1],
            signature: Some(Signature([1; 64])),
        }),
        "f4d179b3f1aa0cb2df1e191e69a76f3d835756de36656ba6a5f88ccd83bab3e8",
    );
    check(
        Tx::Evidence(Evidence::Conflicting {
            a: attest(),
            b: Attest {
                digest: Hash([7; 32]),
                ..attest()
            },
        }),
        "2af80d62ef9a2a661ac140959c4bfc3f9c6d8d7e8e0855bc65d08de520eb7215",
    );
    check(
        Tx::Evidence(Evidence::WrongResult { attest: attest() }),
        "d2d85fb71d5e0adc1b7c6ca81b89b2a79007d4ba3f49abc5cde9890979651923",
    );
    check(
        Tx::EpochAnchor(EpochAnchor {
            epoch: Epoch(2),
            chain_block: 4_000_000,
            chain_hash: Hash([1; 32]),
            metagraph: vec![neuron()],
        }),
        "ef0a4632e9a20dc5df2dc298f323f93246b2c7718629d767b93c887d6d75899c",
    );
    check(
        Tx::EpochClose(EpochClose {
            epoch: Epoch(1),
            weights_digest: Hash([2; 32]),
        }),
        "f1433100819a3d0ce717dde7e403f4885aa2e569f117174ae9f8043913491639",
    );
}

#[test]
fn blocks_and_records() {
    let header = BlockHeader {
        height: Height(10),
        view: View(12),
        parent: Hash([1; 32]),
        state_root: Hash([2; 32]),
        proposer: hk(3),
        timestamp_ms: 1_700_000_000_000,
        beacon: VrfProof {
            output: [4; 32],
            proof: [5; 64],
        },
        tx_root: Hash([6; 32]),
    };
    check(
        Block {
            header,
            txs: vec![Tx::Attest(attest())],
        },
        "e0fee1505806e4f06318d5c5fde2afbd3aaf3a8b86e0a52309fa0950906bd3fd",
    );
    check(
        Genesis {
            netuid: NetUid(1),
            owner: hk(1),
            params: Params::default(),
            chain_block: 10,
            chain_hash: Hash([1; 32]),
            metagraph: vec![neuron()],
            bindings: vec![],
            timestamp_ms: 0,
        },
        "23dcaaf447d77d9aece524ecdca41f5142c4f0884ddadc62731df633ab84a70b",
    );
    check(
        ScoreEntry {
            score: Score(750_000_000),
            seq: 3,
            submission: SubmissionId(Hash([4; 32])),
        },
        "32ca805e86f370725f76955ce16f77959863fcaddb9928810814f2af33b2dff1",
    );
    check(
        Snapshot {
            version: 1,
            height: Height(3),
            block_hash: Hash([1; 32]),
            state_root: Hash([2; 32]),
            certificate: vec![1, 2],
            entries: vec![(vec![0], vec![1]), (vec![1], vec![2, 3])],
        },
        "49b4ea05178459154e6d85c346ef4da8d8532bbc4e903d8085cc550d04036ed9",
    );
}

/// The records under state keys: their encodings are hashed into the state root.
#[test]
fn state_records() {
    check(
        Meta {
            netuid: NetUid(1),
            owner: hk(1),
            height: Height(42),
            last_timestamp_ms: 1_700_000_000_000,
            epoch: Epoch(3),
            sudo_nonce: Some(9),
            certified: 17,
            pruned: 3,
            network_id: Hash([5; 32]),
        },
        "8d915976f666fbb6850e8b7fc6781bf654686b63ef8b22eecd835e24ac7b5465",
    );
    check(
        ChallengeRecord {
            meta: meta(),
            status: Lifecycle::Deprecated,
        },
        "db02ae12f94d4f1b2b53c54838c382ec25346355eb161025e42e398173df89a6",
    );
    check(
        EpochRecord {
            epoch: Epoch(2),
            chain_block: 4_000_000,
            chain_hash: Hash([1; 32]),
            metagraph: vec![neuron()],
            validators: vec![(hk(1), 1_000_000_000), (hk(2), 5)],
            members: vec![Member {
                hotkey: hk(1),
                stake: 1_000_000_000,
                bls_key: BlsPublicKey([3; 48]),
                pop: BlsSignature([4; 96]),
            }],
            weights: Some(
                platform_primitives::Weights::from_shares([(Uid(0), 1), (Uid(3), 3)]).unwrap(),
            ),
        },
        "7ba509e1675241f6243e7cabef36768812f5ec308d3905fa182ffbae9f5687c5",
    );
    check(
        BoundKeys {
            bls_key: BlsPublicKey([3; 48]),
            pop: BlsSignature([4; 96]),
            peer_id: vec![1, 2, 3],
        },
        "fa1f08dacfac377787fad1ec7071292d96aa88417c8c50cdb8f94a3614032a2d",
    );
    let record = SubmissionRecord {
        submission: submission(),
        height: Height(5),
        epoch: Epoch(1),
        seed: 99,
        draw_seed: Hash([8; 32]),
        committee: vec![hk(1), hk(2)],
        dropped: vec![hk(3)],
        deadline: Height(15),
        attestations: vec![(hk(1), Hash([6; 32]))],
        status: SubmissionStatus::Pending,
    };
    check(
        record.clone(),
        "4c04c4552d52e55994f15713999c9e8499bcb8fb22990769cac77fb822889235",
    );
    check(
        SubmissionRecord {
            status: SubmissionStatus::Certified {
                digest: Hash([6; 32]),
                outcome: OutcomeClass::Ok,
                score: Some(Score(5)),
                signers: vec![hk(1)],
                height: Height(6),
            },
            ..record.clone()
        },
        "145a1187af8ba6ddf7cc13c011ed30fed360b6697de959b86ac8e61553d08b9a",
    );
    check(
        SubmissionRecord {
            status: SubmissionStatus::Expired { height: Height(20) },
            ..record
        },
        "15e4771b491deebed2a503d93b45ec631e73cbcf3ad54b3dc58e0d8ac503b229",
    );
}
