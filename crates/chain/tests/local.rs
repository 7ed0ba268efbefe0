//! The conformance suite, generic over [`Chain`], run against LocalChain in process and over
//! loopback HTTP; plus LocalChain's own behaviour (persistence, consensus, errors).

use std::sync::Arc;
use std::time::Duration;

use platform_chain::local::genesis::{self, GenesisFile};
use platform_chain::local::{LocalChain, LocalChainClient, server};
use platform_chain::{Chain, ChainError};

mod common;
use common::conformance::{conformance_commit_reveal, conformance_set_weights, key};

fn dev_chain(cr: Option<u16>) -> LocalChain {
    let mut g = genesis::dev();
    if let Some(version) = cr {
        g.hyperparameters.commit_reveal_weights_enabled = true;
        g.hyperparameters.commit_reveal_version = version;
    }
    LocalChain::open(g.into_state().unwrap(), None).unwrap()
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

/// Commitments over HTTP: a registered hotkey's latest one, as of any block; an unregistered
/// hotkey and an oversized commitment are refused; the subnet owner is read.
#[tokio::test]
async fn commitments_are_read_as_of_a_block() {
    let (chain, url, stop) = served(dev_chain(None)).await;
    let client = LocalChainClient::new(&url).unwrap();
    let alice = key("//Alice");
    chain.produce_block().unwrap();
    let first = client
        .set_commitment(&alice, 1, b"first".to_vec())
        .await
        .unwrap();
    chain.produce_block().unwrap();
    let second = client
        .set_commitment(&alice, 1, b"second".to_vec())
        .await
        .unwrap();
    let now = client.commitments(1, None).await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(
        (now[0].hotkey, now[0].block, now[0].data.as_slice()),
        (alice.hotkey(), second.block, &b"second"[..])
    );
    let then = client.commitments(1, Some(first.block)).await.unwrap();
    assert_eq!(then[0].data, b"first");
    assert!(
        client
            .commitments(1, Some(first.block - 1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        client
            .set_commitment(&key("//Stranger"), 1, b"x".to_vec())
            .await,
        Err(ChainError::NotRegistered { .. })
    ));
    assert!(matches!(
        client
            .set_commitment(&alice, 1, vec![0; platform_chain::MAX_COMMITMENT_BYTES + 1])
            .await,
        Err(ChainError::Malformed { .. })
    ));
    assert_eq!(client.subnet_owner(1).await.unwrap(), genesis::dev().owner);
    let _ = stop.send(());
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
    assert!(text.contains("timelocked") && text.contains("commit_timelocked_weights"));
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
