//! SubtensorChain against a fake subtensor node (see `common/fake_subtensor.rs`): the
//! conformance suite over subxt's in-process mock RPC client and over a loopback WebSocket
//! server; what the submitted extrinsics decode to; the chain's refusals; unreachable
//! endpoints. A live subnet is read with `platform chain check --subtensor.network … --netuid
//! N` (the test machines have no internet; the binary's tests run that command against the
//! fake node).

use std::sync::Arc;

use platform_chain::local::genesis;
use platform_chain::local::sim::ChainState;
use platform_chain::retry::Retry;
use platform_chain::scale::commit_hash;
use platform_chain::subtensor::SubtensorChain;
use platform_chain::timelock::seal_timelocked;
use platform_chain::{AnyChain, Chain, ChainError};

mod common;
use common::conformance::{conformance_commit_reveal, conformance_set_weights, key};
use common::fake_subtensor::{
    FakeSubtensor, SETTING_WEIGHTS_TOO_FAST, SubtensorCall, mock_rpc_client, serve_websocket,
    upgraded,
};

fn dev_state(cr: Option<u16>) -> ChainState {
    let mut g = genesis::dev();
    if let Some(version) = cr {
        g.hyperparameters.commit_reveal_weights_enabled = true;
        g.hyperparameters.commit_reveal_version = version;
    }
    g.into_state().unwrap()
}

async fn over_mock(fake: &Arc<FakeSubtensor>) -> SubtensorChain {
    SubtensorChain::with_rpc_client(mock_rpc_client(fake.clone()), "mock")
        .await
        .unwrap()
}

/// The extrinsics the fake received decode to pallet 7 with the right call and arguments,
/// signed (the fake verified the sr25519 signature) by the hotkey.
fn assert_extrinsics(fake: &FakeSubtensor) {
    let received = fake.received();
    let alice = key("//Alice").hotkey().0;
    let first = &received[0];
    assert_eq!((first.pallet, first.call_index), (7, 0), "set_weights");
    assert_eq!(first.signer, alice);
    assert_eq!(
        first.call,
        SubtensorCall::SetWeights {
            netuid: 1,
            dests: vec![4, 5],
            weights: vec![10, 20],
            version_key: 0,
        }
    );
    // The refused calls never reached the chain: only the two accepted settings did.
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[1].call,
        SubtensorCall::SetWeights {
            netuid: 1,
            dests: vec![6],
            weights: vec![1],
            version_key: 0,
        }
    );
}

fn assert_commit_reveal_extrinsics(fake: &FakeSubtensor) {
    let received = fake.received();
    let alice = key("//Alice").hotkey().0;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!((received[0].pallet, received[0].call_index), (7, 96));
    let expected_hash = commit_hash(&alice, 1, &[4, 7], &[100, 300], &[1, 2, 3], 0);
    assert_eq!(
        received[0].call,
        SubtensorCall::CommitWeights {
            netuid: 1,
            commit_hash: expected_hash,
        }
    );
    assert_eq!((received[1].pallet, received[1].call_index), (7, 97));
    assert_eq!(
        received[1].call,
        SubtensorCall::RevealWeights {
            netuid: 1,
            uids: vec![4, 7],
            values: vec![100, 300],
            salt: vec![1, 2, 3],
            version_key: 0,
        }
    );
    assert!(received.iter().all(|r| r.signer == alice));
}

#[tokio::test]
async fn subtensor_over_the_mock_rpc_client() {
    let fake = FakeSubtensor::new(dev_state(None));
    let chain = over_mock(&fake).await;
    conformance_set_weights(&chain, || fake.produce_block()).await;
    assert_extrinsics(&fake);

    let fake = FakeSubtensor::new(dev_state(Some(2)));
    let chain = over_mock(&fake).await;
    conformance_commit_reveal(&chain, || fake.produce_block()).await;
    assert_commit_reveal_extrinsics(&fake);
}

#[tokio::test]
async fn subtensor_over_a_loopback_websocket() {
    let fake = FakeSubtensor::new(dev_state(None));
    let url = serve_websocket(fake.clone()).await;
    let chain = AnyChain::connect(&url).await.unwrap();
    assert!(matches!(chain, AnyChain::Subtensor(_)));
    conformance_set_weights(&chain, || fake.produce_block()).await;
    assert_extrinsics(&fake);

    let fake = FakeSubtensor::new(dev_state(Some(2)));
    let url = serve_websocket(fake.clone()).await;
    let chain = SubtensorChain::connect(&url).await.unwrap();
    conformance_commit_reveal(&chain, || fake.produce_block()).await;
    assert_commit_reveal_extrinsics(&fake);
}

/// A runtime upgrade under a running client: a newer spec that keeps the shapes Platform uses
/// works at once (the extrinsic is signed for the new spec version, which the fake checks);
/// one that changes `set_weights` is refused with the call's name, nothing is sent, and reads
/// go on working.
#[tokio::test]
async fn a_runtime_upgrade_is_followed_and_a_changed_shape_is_named() {
    use platform_chain::subtensor::RuntimeShapes;
    let fake = FakeSubtensor::new(dev_state(None));
    let url = serve_websocket(fake.clone()).await;
    let chain = SubtensorChain::connect(&url).await.unwrap();
    let built = RuntimeShapes {
        spec_version: 393,
        changed: vec![],
    };
    assert_eq!(chain.runtime().await.unwrap(), built);
    chain
        .set_weights(&key("//Alice"), 1, &[4, 5], &[1, 2], 0)
        .await
        .unwrap();

    fake.upgrade_runtime(394, upgraded::unrelated_changes());
    fake.produce_block();
    let newer = RuntimeShapes {
        spec_version: 394,
        changed: vec![],
    };
    assert_eq!(chain.runtime().await.unwrap(), newer);
    chain
        .set_weights(&key("//Bob"), 1, &[4], &[1], 0)
        .await
        .unwrap();
    assert_eq!(fake.received().len(), 2);

    fake.upgrade_runtime(395, upgraded::changed_set_weights());
    fake.produce_block();
    assert_eq!(
        chain.runtime().await.unwrap(),
        RuntimeShapes {
            spec_version: 395,
            changed: vec!["SubtensorModule.set_weights"],
        }
    );
    let e = chain
        .set_weights(&key("//Charlie"), 1, &[4], &[1], 0)
        .await
        .unwrap_err();
    let ChainError::RuntimeMismatch { runtime, items } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (runtime.as_str(), items.as_str()),
        ("spec 395", "SubtensorModule.set_weights")
    );
    assert_eq!(fake.received().len(), 2, "nothing was sent");
    // Reads use none of what changed.
    assert_eq!(chain.metagraph(1, None).await.unwrap().len(), 12);
    assert_eq!(chain.weights(1).await.unwrap().len(), 2);
}

/// Peer records on subtensor: `Commitments.set_commitment` in raw fields (the fake decodes the
/// extrinsic and checks its signature), `CommitmentOf` read back as of a block for the
/// permitted validators, and the subnet owner from `SubnetOwnerHotkey`.
#[tokio::test]
async fn commitments_go_through_the_commitments_pallet() {
    let fake = FakeSubtensor::new(dev_state(None));
    let chain = over_mock(&fake).await;
    let alice = key("//Alice");
    fake.produce_block();
    let before = fake.received().len();
    // 300 bytes: three raw fields (128, 128, 44).
    let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let included = chain.set_commitment(&alice, 1, data.clone()).await.unwrap();
    let received = fake.received();
    assert_eq!(received.len(), before + 1);
    let last = received.last().unwrap();
    assert_eq!((last.pallet, last.call_index), (18, 0));
    assert_eq!(
        last.call,
        SubtensorCall::SetCommitment {
            netuid: 1,
            data: data.clone()
        }
    );
    let held = chain.commitments(1, None).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].hotkey, held[0].block, &held[0].data),
        (alice.hotkey(), included.block, &data)
    );
    assert!(
        chain
            .commitments(1, Some(included.block - 1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        chain.set_commitment(&key("//Stranger"), 1, vec![1]).await,
        Err(ChainError::NotRegistered { .. })
    ));
    assert!(matches!(
        chain
            .set_commitment(&alice, 1, vec![0; platform_chain::MAX_COMMITMENT_BYTES + 1])
            .await,
        Err(ChainError::Malformed { .. })
    ));
    assert_eq!(chain.subnet_owner(1).await.unwrap(), genesis::dev().owner);
}

#[tokio::test]
async fn the_chains_own_refusal_is_named() {
    // The client's checks pass, but the chain refuses in dispatch (for example another
    // transaction of the same hotkey landed first): the error names subtensor's error.
    let fake = FakeSubtensor::new(dev_state(None));
    let chain = over_mock(&fake).await;
    fake.refuse_next(SETTING_WEIGHTS_TOO_FAST);
    let e = chain
        .set_weights(&key("//Alice"), 1, &[4, 5], &[1, 2], 0)
        .await
        .unwrap_err();
    let ChainError::Rejected { reason } = &e else {
        panic!("{e:?}")
    };
    assert!(
        reason.contains("SubtensorModule::SettingWeightsTooFast"),
        "{reason}"
    );
    // Nothing was stored.
    assert!(chain.weights(1).await.unwrap().is_empty());
}

/// A commit-reveal v4 commit goes to subtensor as `commit_timelocked_weights` (call 113): the
/// SCALE payload sealed to a drand quicknet round ahead of this machine's clock. (Which mode a
/// subnet's settings call for is the node's weight submitter's choice, tested there.)
#[tokio::test]
async fn timelocked_commits_reach_subtensor_as_commit_timelocked_weights() {
    let fake = FakeSubtensor::new(dev_state(Some(4)));
    let chain = over_mock(&fake).await;
    let hyper = chain.hyperparameters(1).await.unwrap();
    assert_eq!(
        platform_chain::timelock::timelocked_version(&hyper),
        Some(4)
    );
    let sealed = seal_timelocked(
        &chain,
        &key("//Alice"),
        1,
        hyper.tempo,
        hyper.reveal_period_epochs,
        (&[4, 7], &[100, 300], 0),
        Retry::default(),
    )
    .await
    .unwrap();
    let (reveal_round, commit_bytes) = (sealed.reveal_round, sealed.commit.len());
    chain
        .commit_timelocked_weights(&key("//Alice"), 1, &sealed, 4)
        .await
        .unwrap();
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!((received[0].pallet, received[0].call_index), (7, 113));
    assert_eq!(received[0].signer, key("//Alice").hotkey().0);
    let SubtensorCall::CommitTimelockedWeights {
        netuid,
        commit,
        reveal_round: sent_round,
        commit_reveal_version,
    } = &received[0].call
    else {
        panic!("{:?}", received[0].call)
    };
    assert_eq!(
        (*netuid, *sent_round, *commit_reveal_version, commit.len()),
        (1, reveal_round, 4, commit_bytes)
    );
    platform_crypto::timelock::check_framing(commit).unwrap();
    let now = chain.beacon().await.unwrap();
    assert_eq!(
        now.public_key,
        platform_crypto::timelock::QUICKNET_PUBLIC_KEY_HEX
    );
    assert!(
        reveal_round > now.latest_round(now.now_ms),
        "aimed at a future round"
    );
}

#[tokio::test]
async fn timelocked_subnets_and_bad_endpoints_are_clear_errors() {
    let fake = FakeSubtensor::new(dev_state(Some(4)));
    let chain = over_mock(&fake).await;
    let e = chain
        .commit_weights(&key("//Alice"), 1, [0; 32])
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::TimelockedOnly { version: 4, .. }));
    assert!(e.to_string().contains("commit_timelocked_weights"));
    assert!(fake.received().is_empty());

    // Nothing listens on port 1.
    let e = SubtensorChain::connect("ws://127.0.0.1:1")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, ChainError::Unreachable { url, .. } if url == "ws://127.0.0.1:1"),
        "{e:?}"
    );
    assert!(matches!(
        SubtensorChain::connect("http://127.0.0.1:1").await,
        Err(ChainError::Malformed { .. })
    ));
}
