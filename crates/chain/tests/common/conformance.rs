//! The conformance suite every [`Chain`] passes: LocalChain (in process and over HTTP) and
//! SubtensorChain (over subxt's mock RPC client and a loopback WebSocket server).

use platform_chain::scale::commit_hash;
use platform_chain::{Chain, ChainError, Reveal};
use platform_crypto::{Keypair, parse_suri};

/// A dev key.
pub fn key(s: &str) -> Keypair {
    parse_suri(s).unwrap()
}

/// Checks every chain: reads, set_weights and its rules, read-back.
pub async fn conformance_set_weights<C: Chain>(chain: &C, produce: impl Fn()) {
    let head = chain.head().await.unwrap();
    let meta = chain.metagraph(1, None).await.unwrap();
    assert_eq!(meta.len(), 12);
    assert_eq!(
        meta[0].hotkey.to_ss58(),
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        "//Alice"
    );
    assert_eq!(
        meta[1].hotkey.to_ss58(),
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        "//Bob"
    );
    assert!(meta[..4].iter().all(|n| n.validator_permit && n.stake > 0));
    assert!(
        meta[4..]
            .iter()
            .all(|n| !n.validator_permit && n.stake == 0)
    );
    // Blocks by number: the head's own hash, and no block beyond the head.
    assert_eq!(chain.block(head.number).await.unwrap(), head);
    assert!(matches!(
        chain.block(head.number + 1000).await,
        Err(ChainError::UnknownBlock { number, .. }) if number == head.number + 1000
    ));
    let hyper = chain.hyperparameters(1).await.unwrap();
    assert_eq!(hyper.tempo, 20);
    let schedule = chain.epoch_schedule(1).await.unwrap();
    assert!(schedule.next_epoch_block > schedule.current_block);
    assert!(schedule.next_epoch_block - schedule.current_block <= 21);
    assert!(matches!(
        chain.metagraph(9, None).await,
        Err(ChainError::UnknownNetuid { netuid: 9 })
    ));

    let alice = key("//Alice");
    // Max-upscale: the largest weight becomes 65535.
    let inc = chain
        .set_weights(&alice, 1, &[4, 5], &[10, 20], 0)
        .await
        .unwrap();
    assert!(inc.block >= head.number);
    let stored = chain.weights(1).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].uid, 0);
    assert_eq!(stored[0].uids, vec![4, 5]);
    assert_eq!(stored[0].weights, vec![32767, 65535]);

    let bob = key("//Bob");
    let e = |r: Result<_, ChainError>| r.unwrap_err();
    assert!(matches!(
        e(chain.set_weights(&bob, 1, &[4, 5], &[1], 0).await),
        ChainError::LengthMismatch {
            uids: 2,
            weights: 1
        }
    ));
    assert!(matches!(
        e(chain.set_weights(&bob, 1, &[4, 99], &[1, 1], 0).await),
        ChainError::UnknownUid { uid: 99, .. }
    ));
    assert!(matches!(
        e(chain.set_weights(&bob, 1, &[4, 4], &[1, 1], 0).await),
        ChainError::DuplicateUid { uid: 4 }
    ));
    assert!(matches!(
        e(chain.set_weights(&key("//Miner1"), 1, &[5], &[1], 0).await),
        ChainError::NoValidatorPermit { .. }
    ));
    assert!(matches!(
        e(chain.set_weights(&key("//Nobody"), 1, &[5], &[1], 0).await),
        ChainError::NotRegistered { .. }
    ));
    assert!(matches!(
        e(chain.set_weights(&bob, 9, &[5], &[1], 0).await),
        ChainError::UnknownNetuid { netuid: 9 }
    ));
    // The rate limit: Alice set weights this block.
    assert!(matches!(
        e(chain.set_weights(&alice, 1, &[4], &[1], 0).await),
        ChainError::RateLimited { limit: 10, .. }
    ));
    for _ in 0..10 {
        produce();
    }
    chain.set_weights(&alice, 1, &[6], &[1], 0).await.unwrap();
    assert_eq!(chain.weights(1).await.unwrap()[0].uids, vec![6]);
}

/// CRv2 on every chain: commit, reveal too early, reveal in the window, wrong data.
pub async fn conformance_commit_reveal<C: Chain>(chain: &C, produce: impl Fn()) {
    let alice = key("//Alice");
    let reveal = Reveal {
        uids: vec![4, 7],
        values: vec![100, 300],
        salt: vec![1, 2, 3],
        version_key: 0,
    };
    assert!(matches!(
        chain.set_weights(&alice, 1, &[4], &[1], 0).await,
        Err(ChainError::CommitRevealRequired { netuid: 1 })
    ));
    let hash = commit_hash(
        &alice.hotkey().0,
        1,
        &reveal.uids,
        &reveal.values,
        &reveal.salt,
        0,
    );
    chain.commit_weights(&alice, 1, hash).await.unwrap();
    let early = chain.reveal_weights(&alice, 1, &reveal).await.unwrap_err();
    let ChainError::RevealWindow { from, to, now } = early else {
        panic!("{early:?}")
    };
    assert!(now < from && from <= to);
    for _ in now..from {
        produce();
    }
    let mut wrong = reveal.clone();
    wrong.salt = vec![9];
    assert!(matches!(
        chain.reveal_weights(&alice, 1, &wrong).await,
        Err(ChainError::NoMatchingCommit { .. })
    ));
    chain.reveal_weights(&alice, 1, &reveal).await.unwrap();
    let stored = chain.weights(1).await.unwrap();
    assert_eq!(stored[0].uids, vec![4, 7]);
    assert_eq!(stored[0].weights, vec![21845, 65535]);
    // The commit is consumed.
    assert!(matches!(
        chain.reveal_weights(&alice, 1, &reveal).await,
        Err(ChainError::NoMatchingCommit { .. })
    ));
}
