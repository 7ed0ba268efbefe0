//! The node's weight submitter writes weights in the mode the subnet requires, against
//! LocalChain: direct, CRv2 with
//! the reveal data persisted across a restart, timelocked commits revealed by the chain,
//! bounded retries.

use std::time::Duration;

use platform_chain::local::LocalChain;
use platform_chain::local::LocalChainClient;
use platform_chain::local::genesis;
use platform_chain::retry::Retry;
use platform_chain::timelock::seal_timelocked;
use platform_chain::{Chain, ChainError, rules, timelock};
use platform_crypto::parse_suri;
use platform_node::weights_submitter::{
    PendingStore, RevealOutcome, Submitted, reveal_due, submit_weights,
};

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

/// Commit-reveal version 4: the weights go in sealed to a beacon round and the chain itself
/// applies them once it has that round's signature, in the reveal epoch and not before.
#[tokio::test]
async fn timelocked_commits_are_revealed_by_the_chain_at_their_round() {
    let d = tempfile::tempdir().unwrap();
    let store = PendingStore::open(&d.path().join("p.redb")).unwrap();
    let c = chain(Some(4));
    let alice = parse_suri("//Alice").unwrap();
    let r = submit_weights(&c, &alice, 1, &[4, 6], &[2, 5], 7, Some(&store), FAST)
        .await
        .unwrap();
    let Submitted::Timelocked {
        block,
        reveal_round,
        commit_bytes,
    } = r
    else {
        panic!("{r:?}")
    };
    assert!(store.all().unwrap().is_empty(), "nothing to reveal later");
    assert!(commit_bytes > 0 && commit_bytes <= timelock::MAX_COMMIT_BYTES);
    let hyper = c.hyperparameters(1).await.unwrap();
    let reveal_epoch = rules::epoch_index(block, 1, hyper.tempo) + hyper.reveal_period_epochs;
    let beacon = c.beacon().await.unwrap();
    // The commit is still sealed: no weights, and the beacon has not reached its round.
    assert!(c.weights(1).await.unwrap().is_empty());
    assert!(beacon.latest_round(beacon.now_ms) < reveal_round);

    let mut revealed_at = None;
    for _ in 0..200 {
        let b = c.produce_block().unwrap();
        if !c.weights(1).await.unwrap().is_empty() {
            revealed_at = Some(b);
            break;
        }
    }
    let at = revealed_at.expect("the chain never revealed the commit");
    assert_eq!(rules::epoch_index(at, 1, hyper.tempo), reveal_epoch);
    let beacon = c.beacon().await.unwrap();
    assert!(beacon.latest_round(beacon.now_ms) >= reveal_round);
    let stored = &c.weights(1).await.unwrap()[0];
    assert_eq!(
        (stored.hotkey, stored.uids.clone()),
        (alice.hotkey(), vec![4, 6])
    );
    assert_eq!(
        c.read(|s| (
            s.subnets[&1].timelocked_revealed,
            s.subnets[&1].timelocked_failed
        )),
        (1, 0)
    );
}

/// A timelocked commit that names another hotkey, or another version, gets nowhere.
#[tokio::test]
async fn timelocked_commits_for_someone_else_or_another_version_are_refused() {
    let c = chain(Some(4));
    let alice = parse_suri("//Alice").unwrap();
    let bob = parse_suri("//Bob").unwrap();
    // Bob sends a payload in Alice's name: stored (sealed), dropped at reveal.
    let sealed = seal_timelocked(&c, &alice, 1, 20, 1, (&[4], &[9], 0), FAST)
        .await
        .unwrap();
    c.commit_timelocked_weights(&bob, 1, &sealed, 4)
        .await
        .unwrap();
    let e = c
        .commit_timelocked_weights(&bob, 1, &sealed, 3)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("IncorrectCommitRevealVersion"),
        "{e}"
    );
    let garbage = timelock::TimelockedCommit {
        commit: vec![1, 2, 3],
        reveal_round: sealed.reveal_round,
    };
    assert!(matches!(
        c.commit_timelocked_weights(&bob, 1, &garbage, 4).await,
        Err(ChainError::Malformed { .. })
    ));
    for _ in 0..200 {
        c.produce_block().unwrap();
        if c.read(|s| s.subnets[&1].timelocked_failed) > 0 {
            break;
        }
    }
    assert_eq!(
        c.read(|s| (
            s.subnets[&1].timelocked_revealed,
            s.subnets[&1].timelocked_failed
        )),
        (0, 1)
    );
    assert!(c.weights(1).await.unwrap().is_empty());
    // A version Platform does not know is a clear error before anything is sent.
    let r = submit_weights(&chain(Some(5)), &alice, 1, &[4], &[1], 0, None, FAST).await;
    assert!(matches!(r, Err(ChainError::Unsupported(_))), "{r:?}");
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

/// LocalChain whose `commit_weights` commits, then loses the answer (a connection dropped
/// before finality was reported): the outcome is unknown to the caller.
struct LostAnswer(LocalChain);

impl Chain for LostAnswer {
    async fn head(&self) -> Result<platform_chain::BlockRef, ChainError> {
        self.0.head().await
    }
    async fn block(&self, number: u64) -> Result<platform_chain::BlockRef, ChainError> {
        self.0.block(number).await
    }
    async fn hyperparameters(
        &self,
        netuid: u16,
    ) -> Result<platform_chain::Hyperparameters, ChainError> {
        self.0.hyperparameters(netuid).await
    }
    async fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<platform_chain::NeuronInfo>, ChainError> {
        self.0.metagraph(netuid, block).await
    }
    async fn epoch_schedule(
        &self,
        netuid: u16,
    ) -> Result<platform_chain::EpochSchedule, ChainError> {
        self.0.epoch_schedule(netuid).await
    }
    async fn set_weights(
        &self,
        signer: &platform_crypto::Keypair,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<platform_chain::Included, ChainError> {
        self.0
            .set_weights(signer, netuid, uids, weights, version_key)
            .await
    }
    async fn commit_weights(
        &self,
        signer: &platform_crypto::Keypair,
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<platform_chain::Included, ChainError> {
        self.0.commit_weights(signer, netuid, hash).await?;
        Err(ChainError::Unreachable {
            url: "test".into(),
            reason: "the transaction was not finalized within 180 s".into(),
        })
    }
    async fn reveal_weights(
        &self,
        signer: &platform_crypto::Keypair,
        netuid: u16,
        reveal: &platform_chain::Reveal,
    ) -> Result<platform_chain::Included, ChainError> {
        self.0.reveal_weights(signer, netuid, reveal).await
    }
    async fn weights(
        &self,
        netuid: u16,
    ) -> Result<Vec<platform_chain::ValidatorWeights>, ChainError> {
        self.0.weights(netuid).await
    }
    async fn beacon(&self) -> Result<platform_chain::timelock::Beacon, ChainError> {
        self.0.beacon().await
    }
    async fn epoch_state(
        &self,
        netuid: u16,
    ) -> Result<Option<platform_chain::timelock::EpochState>, ChainError> {
        self.0.epoch_state(netuid).await
    }
    async fn commit_timelocked_weights(
        &self,
        signer: &platform_crypto::Keypair,
        netuid: u16,
        commit: &platform_chain::timelock::TimelockedCommit,
        version: u16,
    ) -> Result<platform_chain::Included, ChainError> {
        self.0
            .commit_timelocked_weights(signer, netuid, commit, version)
            .await
    }
}

/// A commit whose outcome is unknown keeps its reveal data, and is revealed once its window
/// opens; a commit the chain refuses leaves nothing behind.
#[tokio::test]
async fn a_commit_with_an_unknown_outcome_is_kept_and_revealed() {
    let d = tempfile::tempdir().unwrap();
    let store = PendingStore::open(&d.path().join("p.redb")).unwrap();
    let c = LostAnswer(chain(Some(2)));
    let alice = parse_suri("//Alice").unwrap();
    let r = submit_weights(&c, &alice, 1, &[4, 6], &[2, 5], 0, Some(&store), FAST).await;
    assert!(matches!(r, Err(ChainError::Unreachable { .. })), "{r:?}");
    assert_eq!(store.all().unwrap().len(), 1, "the reveal data was dropped");
    // The window is unknown (never confirmed): reveal attempts go to the chain, which says
    // "not yet" until the commit's window opens, then takes the reveal.
    let mut revealed = false;
    for _ in 0..64 {
        let out = reveal_due(&c, &alice, &store, FAST).await.unwrap();
        if matches!(out.as_slice(), [RevealOutcome::Revealed { .. }]) {
            revealed = true;
            break;
        }
        assert!(
            matches!(out.as_slice(), [RevealOutcome::NotYet { .. }]),
            "{out:?}"
        );
        c.0.produce_block().unwrap();
    }
    assert!(revealed, "the commit was never revealed");
    assert!(store.all().unwrap().is_empty());
    assert_eq!(c.0.weights(1).await.unwrap()[0].uids, vec![4, 6]);

    // A definite refusal (//Nobody is not registered) leaves no reveal data.
    let nobody = parse_suri("//Nobody").unwrap();
    let r = submit_weights(&c.0, &nobody, 1, &[4], &[1], 0, Some(&store), FAST).await;
    assert!(r.is_err() && !r.unwrap_err().outcome_unknown());
    assert!(store.all().unwrap().is_empty());
}
