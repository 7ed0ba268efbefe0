//! The conformance suite, generic over [`Chain`], run against LocalChain in process and over
//! loopback HTTP; plus LocalChain's own behaviour (persistence, consensus, errors).

use std::sync::Arc;
use std::time::Duration;

use platform_chain::local::genesis::{self, GenesisFile};
use platform_chain::local::{LocalChain, LocalChainClient, server};
use platform_chain::scale::commit_hash;
use platform_chain::{Chain, ChainError, Reveal};
use platform_crypto::{Keypair, parse_suri};

fn key(s: &str) -> Keypair {
    parse_suri(s).unwrap()
}

fn dev_chain(cr: Option<u16>) -> LocalChain {
    let mut g = genesis::dev();
    if let Some(version) = cr {
        g.hyperparameters.commit_reveal_weights_enabled = true;
        g.hyperparameters.commit_reveal_version = version;
    }
    LocalChain::open(g.into_state().unwrap(), None).unwrap()
}

/// Checks every chain: reads, set_weights and its rules, read-back.
async fn conformance_set_weights<C: Chain>(chain: &C, produce: impl Fn()) {
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
async fn conformance_commit_reveal<C: Chain>(chain: &C, produce: impl Fn()) {
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

#[tokio::test]
async fn local_chain_in_process() {
    let chain = dev_chain(None);
    conformance_set_weights(&chain, || {
        chain.produce_block().unwrap();
    })
    .await;
    let chain = dev_chain(Some(2));
    conformance_commit_reveal(&chain, || {
        chain.produce_block().unwrap();
    })
    .await;
}

async fn served(chain: LocalChain) -> (Arc<LocalChain>, String, tokio::sync::oneshot::Sender<()>) {
    let chain = Arc::new(chain);
    let (listener, addr) = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // A long block time: the test produces blocks itself.
    tokio::spawn(server::serve(
        chain.clone(),
        listener,
        Duration::from_secs(3600),
        async move {
            let _ = stopped.await;
        },
    ));
    (chain, format!("http://{addr}"), stop)
}

#[tokio::test]
async fn local_chain_over_loopback_http() {
    let (chain, url, stop) = served(dev_chain(None)).await;
    let client = LocalChainClient::new(&url).unwrap();
    assert!(client.info().await.unwrap().simulation);
    conformance_set_weights(&client, || {
        chain.produce_block().unwrap();
    })
    .await;
    let _ = stop.send(());

    let (chain, url, stop) = served(dev_chain(Some(2))).await;
    let client = LocalChainClient::new(&url).unwrap();
    conformance_commit_reveal(&client, || {
        chain.produce_block().unwrap();
    })
    .await;
    // Registration over HTTP.
    let newcomer = key("//Newcomer");
    let inc = client.register(&newcomer, 1).await.unwrap();
    let meta = client.metagraph(1, None).await.unwrap();
    assert_eq!(meta.last().unwrap().hotkey, newcomer.hotkey());
    assert_eq!(meta.last().unwrap().uid, 12);
    // The metagraph at an earlier block does not have it.
    let before = client.metagraph(1, Some(inc.block - 1)).await.unwrap();
    assert_eq!(before.len(), 12);
    assert!(matches!(
        client.register(&newcomer, 1).await,
        Err(ChainError::AlreadyRegistered { uid: 12, .. })
    ));
    let _ = stop.send(());

    // An endpoint nobody listens on is a clear error, not a hang.
    let dead = LocalChainClient::new(&url).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        dead.head().await,
        Err(ChainError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn timelocked_subnets_get_an_error_that_says_what_to_do() {
    let chain = dev_chain(Some(4));
    let e = chain
        .commit_weights(&key("//Alice"), 1, [0; 32])
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::TimelockedOnly { version: 4, .. }));
    let text = e.to_string();
    assert!(text.contains("timelocked") && text.contains("CommitRevealWeightsVersion"));
}

#[test]
fn version_key_and_consensus() {
    let mut g = genesis::dev();
    g.hyperparameters.weights_version_key = 7;
    let chain = LocalChain::open(g.into_state().unwrap(), None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(matches!(
            chain.set_weights(&key("//Alice"), 1, &[4], &[1], 6).await,
            Err(ChainError::VersionKey {
                given: 6,
                required: 7
            })
        ));
        // Alice (4000) and Bob (3000) agree on miner 4; Charlie (2000) and Dave (1000) prefer 5.
        for (k, w) in [
            ("//Alice", [3, 1]),
            ("//Bob", [3, 1]),
            ("//Charlie", [1, 3]),
            ("//Dave", [1, 3]),
        ] {
            chain.set_weights(&key(k), 1, &[4, 5], &w, 7).await.unwrap();
        }
    });
    let consensus = chain.read(|s| s.consensus(1)).unwrap();
    // Stake-weighted median: 70% of stake gives uid 4 three quarters and uid 5 one quarter.
    assert_eq!(consensus, vec![(4, 49151), (5, 16383)]);
}

#[test]
fn state_survives_a_restart_and_refuses_another_genesis() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("chain.redb");
    {
        let chain = LocalChain::open(genesis::dev().into_state().unwrap(), Some(&db)).unwrap();
        for _ in 0..5 {
            chain.produce_block().unwrap();
        }
        let tx = chain.sign(
            &key("//Newcomer"),
            platform_chain::local::sim::Call::Register { netuid: 1 },
        );
        chain.submit(&tx).unwrap();
    }
    let chain = LocalChain::open(genesis::dev().into_state().unwrap(), Some(&db)).unwrap();
    assert_eq!(chain.read(|s| s.block), 5);
    assert_eq!(chain.read(|s| s.metagraph(1, None).unwrap().len()), 13);
    drop(chain);
    let mut other = genesis::dev();
    other.netuid = 2;
    let e = LocalChain::open(other.into_state().unwrap(), Some(&db))
        .err()
        .unwrap();
    assert!(e.to_string().contains("another genesis"));
}

#[test]
fn genesis_files_are_checked() {
    let alice = key("//Alice").hotkey();
    let text = format!(
        r#"
netuid = 3
owner = "{alice}"
[hyperparameters]
tempo = 0
min_allowed_weights = 1
max_weights_limit = 65535
weights_version_key = 0
weights_set_rate_limit = 1
commit_reveal_weights_enabled = false
commit_reveal_version = 2
reveal_period_epochs = 1
[[neurons]]
hotkey = "{alice}"
stake = 5
validator_permit = true
"#
    );
    let e = GenesisFile::parse(&text).unwrap().into_state().unwrap_err();
    assert!(e.to_string().contains("tempo"));
    let ok = GenesisFile::parse(&text.replace("tempo = 0", "tempo = 5"))
        .unwrap()
        .into_state()
        .unwrap();
    assert_eq!(ok.metagraph(3, None).unwrap().len(), 1);
    let dup =
        text.replace("tempo = 0", "tempo = 5") + &format!("[[neurons]]\nhotkey = \"{alice}\"\n");
    assert!(
        GenesisFile::parse(&dup)
            .unwrap()
            .into_state()
            .unwrap_err()
            .to_string()
            .contains("twice")
    );
    assert!(GenesisFile::parse("netuid = 1\nbogus = 2").is_err());
}
