//! Weight submission in the mode the subnet requires, against LocalChain: direct, CRv2 with
//! the reveal data persisted across a restart, timelocked refusal, bounded retries.

use std::time::Duration;

use platform_chain::local::LocalChain;
use platform_chain::local::LocalChainClient;
use platform_chain::local::genesis;
use platform_chain::submit::{
    PendingStore, Retry, RevealOutcome, Submitted, reveal_due, submit_weights,
};
use platform_chain::{Chain, ChainError};
use platform_crypto::parse_suri;

fn chain(cr: Option<u16>) -> LocalChain {
    let mut g = genesis::dev();
    if let Some(v) = cr {
        g.hyperparameters.commit_reveal_weights_enabled = true;
        g.hyperparameters.commit_reveal_version = v;
    }
    LocalChain::open(g.into_state().unwrap(), None).unwrap()
}

const FAST: Retry = Retry {
    attempts: 3,
    base: Duration::from_millis(10),
    max: Duration::from_millis(40),
};

#[tokio::test]
async fn direct_when_commit_reveal_is_off() {
    let c = chain(None);
    let alice = parse_suri("//Alice").unwrap();
    let r = submit_weights(&c, &alice, 1, &[4, 5], &[1, 1], 0, None, FAST)
        .await
        .unwrap();
    assert_eq!(r, Submitted::Set { block: 0 });
    assert_eq!(c.weights(1).await.unwrap()[0].uids, vec![4, 5]);
}

#[tokio::test]
async fn commit_then_reveal_with_the_data_kept_across_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("pending.redb");
    let c = chain(Some(2));
    let alice = parse_suri("//Alice").unwrap();
    let (from, until) = {
        let store = PendingStore::open(&path).unwrap();
        // Without a store there is nowhere to keep the reveal data.
        assert!(matches!(
            submit_weights(&c, &alice, 1, &[4, 6], &[2, 5], 0, None, FAST).await,
            Err(ChainError::Unsupported(_))
        ));
        let r = submit_weights(&c, &alice, 1, &[4, 6], &[2, 5], 0, Some(&store), FAST)
            .await
            .unwrap();
        let Submitted::Committed {
            reveal_from,
            reveal_until,
            ..
        } = r
        else {
            panic!("{r:?}")
        };
        // Too early: nothing is revealed, the commit is kept.
        let out = reveal_due(&c, &alice, &store, FAST).await.unwrap();
        assert!(
            matches!(out.as_slice(), [RevealOutcome::NotYet { from, .. }] if *from == reveal_from)
        );
        (reveal_from, reveal_until)
    };
    assert!(from <= until);
    while c.read(|s| s.block) < from {
        c.produce_block().unwrap();
    }
    // A restarted process finds the pending commit and reveals it.
    let store = PendingStore::open(&path).unwrap();
    assert_eq!(store.all().unwrap().len(), 1);
    let out = reveal_due(&c, &alice, &store, FAST).await.unwrap();
    assert!(matches!(
        out.as_slice(),
        [RevealOutcome::Revealed { netuid: 1, .. }]
    ));
    assert!(store.all().unwrap().is_empty());
    let w = c.weights(1).await.unwrap();
    assert_eq!(w[0].uids, vec![4, 6]);
    assert_eq!(w[0].weights, vec![26214, 65535]);
}

#[tokio::test]
async fn a_passed_window_drops_the_commit() {
    let d = tempfile::tempdir().unwrap();
    let store = PendingStore::open(&d.path().join("p.redb")).unwrap();
    let c = chain(Some(2));
    let bob = parse_suri("//Bob").unwrap();
    let Submitted::Committed { reveal_until, .. } =
        submit_weights(&c, &bob, 1, &[4], &[1], 0, Some(&store), FAST)
            .await
            .unwrap()
    else {
        panic!()
    };
    while c.read(|s| s.block) <= reveal_until {
        c.produce_block().unwrap();
    }
    let out = reveal_due(&c, &bob, &store, FAST).await.unwrap();
    assert!(
        matches!(out.as_slice(), [RevealOutcome::Dropped { .. }]),
        "{out:?}"
    );
    assert!(store.all().unwrap().is_empty());
}

#[tokio::test]
async fn timelocked_subnets_are_refused_before_anything_is_sent() {
    let d = tempfile::tempdir().unwrap();
    let store = PendingStore::open(&d.path().join("p.redb")).unwrap();
    let c = chain(Some(4));
    let r = submit_weights(
        &c,
        &parse_suri("//Alice").unwrap(),
        1,
        &[4],
        &[1],
        0,
        Some(&store),
        FAST,
    )
    .await;
    assert!(matches!(
        r,
        Err(ChainError::TimelockedOnly { version: 4, .. })
    ));
    assert!(store.all().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_chain_is_retried_a_bounded_number_of_times() {
    // Nothing listens on port 1.
    let dead = LocalChainClient::new("http://127.0.0.1:1").unwrap();
    let alice = parse_suri("//Alice").unwrap();
    // Three attempts with 10 ms and 20 ms pauses, then the error: never retried forever.
    let r = submit_weights(&dead, &alice, 1, &[4], &[1], 0, None, FAST).await;
    assert!(matches!(r, Err(ChainError::Unreachable { .. })), "{r:?}");
}
