//! Workloads for the state-root benchmarks (criterion and `platform bench state`).

use crate::store::Store;

fn key(i: u64) -> Vec<u8> {
    let mut k = vec![0x42];
    k.extend(blake3::hash(&i.to_le_bytes()).as_bytes()[..16].iter());
    k
}

/// A store with `n` entries of 64-byte values, its root computed.
pub fn filled_store(n: u64) -> Store {
    let mut s = Store::default();
    for i in 0..n {
        s.put(key(i), vec![(i % 251) as u8; 64]);
    }
    s.commit();
    s.root();
    s
}

/// Rewrites `changes` existing entries (a different set each `round`) and recomputes the root:
/// the work one block does to the state root.
pub fn update_and_root(
    s: &mut Store,
    n: u64,
    changes: u64,
    round: u64,
) -> platform_primitives::Hash {
    for j in 0..changes {
        let i = (round
            .wrapping_mul(7_919)
            .wrapping_add(j.wrapping_mul(104_729)))
            % n;
        s.put(key(i), round.to_le_bytes().repeat(8));
    }
    s.commit();
    s.root()
}

/// What a validator does per block: fork the committed store (to build or verify a block on),
/// rewrite `changes` entries on the fork and compute its root. The fork is then dropped.
pub fn fork_update_and_root(
    s: &Store,
    n: u64,
    changes: u64,
    round: u64,
) -> platform_primitives::Hash {
    let mut fork = s.clone();
    update_and_root(&mut fork, n, changes, round)
}

/// Adds what a long history leaves in the state to `state`: `filler` 64-byte entries and
/// `settled` certified submission records of one challenge, each with its payload index, as if
/// ordered and certified in earlier epochs and kept by a long retention. Commits and computes
/// the root. For the per-block cost with a history (`platform bench state`).
pub fn add_history(state: &mut crate::State, filler: u64, settled: u64) {
    use crate::keys;
    use crate::machine::put;
    use crate::records::{SubmissionRecord, SubmissionStatus};
    use platform_primitives::{ChallengeId, Hash, Height, Hotkey, Score, Submission};

    let challenge = ChallengeId::new("history").expect("valid id");
    let store = &mut state.store;
    for i in 0..filler {
        store.put(key(i), vec![(i % 251) as u8; 64]);
    }
    for i in 0..settled {
        let seed = blake3::hash(&i.to_le_bytes());
        let submission = Submission {
            challenge: challenge.clone(),
            miner: Hotkey(*seed.as_bytes()),
            payload_hash: Hash(*blake3::hash(seed.as_bytes()).as_bytes()),
            payload_len: 1_000,
            nonce: i,
        };
        let id = submission.id();
        put(
            store,
            keys::payload(&challenge, &submission.payload_hash),
            &id,
        );
        put(
            store,
            keys::submission(&id),
            &SubmissionRecord {
                submission,
                height: Height(1),
                epoch: platform_primitives::Epoch(0),
                seed: i,
                draw_seed: Hash(*seed.as_bytes()),
                committee: vec![Hotkey([1; 32]); 3],
                dropped: Vec::new(),
                deadline: Height(10),
                attestations: Vec::new(),
                status: SubmissionStatus::Certified {
                    digest: Hash(*seed.as_bytes()),
                    outcome: platform_runtime::OutcomeClass::Ok,
                    score: Some(Score(i % 1_000_000)),
                    signers: vec![Hotkey([1; 32]); 3],
                    height: Height(2),
                },
            },
        );
    }
    store.commit();
    store.root();
}
