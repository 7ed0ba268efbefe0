//! In-process networks of real libp2p nodes on 127.0.0.1.
//!
//! Waits are bounded by deadlines (a test that cannot make progress fails instead of hanging);
//! no test asserts how fast anything happens — `platform bench network` measures that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform_crypto::{Domain, Keypair, Signature, sr25519};
use platform_network::{
    CertificateAsk, Config, Envelope, Event, Membership, NetStatus, Network, NothingToServe,
    Provider, Rate, SnapshotInfo, Topic, identity_from_hotkey,
};
use platform_primitives::{NetUid, decode, encode};
use platform_storage::DataDir;
use tempfile::TempDir;
use tokio::sync::mpsc;

const NETUID: NetUid = NetUid(1);
const DEADLINE: Duration = Duration::from_secs(20);

fn key(seed: u8) -> Keypair {
    Keypair::from_seed(&[seed; 32])
}

/// Blocks "certified" by one key: `(height, body, signature over (height, body))`.
#[derive(Default)]
struct Blocks {
    blocks: Vec<Vec<u8>>,
    snapshot: Option<SnapshotInfo>,
}

fn certifier() -> Keypair {
    key(200)
}

fn certified_block(height: u64) -> Vec<u8> {
    let body = format!("block {height}").into_bytes();
    let sig = certifier().sign(Domain::Proposal, &encode(&(height, &body)));
    encode(&(height, body, sig))
}

fn verify_blocks(from: u64, blocks: &[Vec<u8>]) -> Result<(), &'static str> {
    for (i, b) in blocks.iter().enumerate() {
        let (h, body, sig): (u64, Vec<u8>, Signature) =
            decode("block", b, 1 << 16).map_err(|_| "malformed_block")?;
        if h != from + i as u64 {
            return Err("wrong_height");
        }
        sr25519::verify(
            &certifier().hotkey(),
            Domain::Proposal,
            &encode(&(h, &body)),
            &sig,
        )
        .map_err(|_| "bad_certificate")?;
    }
    Ok(())
}

impl Provider for Blocks {
    fn blocks(&self, from: u64, to: u64, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut size = 0;
        for h in from..=to {
            let Some(b) = self.blocks.get(h as usize - 1) else {
                break;
            };
            size += b.len();
            if size > max_bytes {
                break;
            }
            out.push(b.clone());
        }
        out
    }
    fn latest_snapshot(&self) -> Option<SnapshotInfo> {
        self.snapshot.clone()
    }
}

struct Node {
    net: Network,
    events: mpsc::Receiver<Event>,
    key: Keypair,
    _dir: Option<TempDir>,
}

async fn start_in(
    seed: u8,
    dir: &std::path::Path,
    cfg: Config,
    provider: Arc<dyn Provider>,
) -> (Network, mpsc::Receiver<Event>) {
    let data = Arc::new(DataDir::open(dir).unwrap());
    Network::start(cfg, key(seed), data, provider)
        .await
        .unwrap()
}

async fn start(seed: u8, cfg: Config, provider: Arc<dyn Provider>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (net, events) = start_in(seed, dir.path(), cfg, provider).await;
    Node {
        net,
        events,
        key: key(seed),
        _dir: Some(dir),
    }
}

fn membership(stakes: &[(u8, u64)]) -> Membership {
    Membership {
        peer_ids: stakes
            .iter()
            .map(|(s, _)| identity_from_hotkey(&key(*s)).public().to_peer_id())
            .collect(),
        validators: stakes
            .iter()
            .map(|(s, st)| (key(*s).hotkey(), *st))
            .collect(),
    }
}

/// Polls `f` until it holds, failing after the deadline.
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    let end = Instant::now() + DEADLINE;
    while !f().await {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `by` has banned `peer`.
async fn banned(by: &Network, peer: &Network) -> bool {
    status(by)
        .await
        .banned
        .contains(&peer.peer_id().to_string())
}

async fn status(n: &Network) -> NetStatus {
    n.status().await.unwrap()
}

async fn mesh(nodes: &[&Network], m: &Membership) {
    platform_network::loopback::connect_all(nodes, m, DEADLINE)
        .await
        .unwrap();
}

async fn next_gossip(events: &mut mpsc::Receiver<Event>) -> Envelope {
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(Event::Gossip { envelope, .. })) => return envelope,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("network stopped"),
            Err(_) => panic!("no gossip arrived"),
        }
    }
}

const STAKES: [(u8, u64); 4] = [(1, 400), (2, 300), (3, 200), (4, 100)];

/// The four validators of `STAKES`, connected and bound to each other.
async fn start_four(cfg: Config) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (seed, _) in STAKES {
        nodes.push(start(seed, cfg.clone(), Arc::new(NothingToServe)).await);
    }
    let nets: Vec<&Network> = nodes.iter().map(|n| &n.net).collect();
    mesh(&nets, &membership(&STAKES)).await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validator_receives_every_validators_gossip() {
    let mut nodes = start_four(Config::new(NETUID)).await;

    let started = Instant::now();
    for n in &nodes {
        let body = format!("vote from {}", n.key.hotkey()).into_bytes();
        n.net.publish(Topic::Consensus, 0, body).await.unwrap();
    }
    for n in &mut nodes {
        let mut authors = Vec::new();
        for _ in 0..3 {
            let env = next_gossip(&mut n.events).await;
            assert_eq!(env.topic, Topic::Consensus);
            assert_eq!(
                env.payload,
                format!("vote from {}", env.author).into_bytes()
            );
            authors.push(env.author);
        }
        authors.sort();
        let mut expected: Vec<_> = nodes_hotkeys(&STAKES);
        expected.retain(|h| *h != n.key.hotkey());
        assert_eq!(authors, expected, "each node hears the three others once");
    }
    eprintln!(
        "all four validators received all gossip {:?} after publishing",
        started.elapsed()
    );
    let s = status(&nodes[0].net).await;
    assert_eq!(s.connected_stake, 1000);
    assert!(!s.partitioned);
}

fn nodes_hotkeys(stakes: &[(u8, u64)]) -> Vec<platform_primitives::Hotkey> {
    let mut v: Vec<_> = stakes.iter().map(|(s, _)| key(*s).hotkey()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_published_by_one_node_is_fetched_by_another_through_the_dht() {
    let nodes = start_four(Config::new(NETUID)).await;

    let blob: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = nodes[0].net.put_blob(blob.clone()).await.unwrap();
    let (a, d) = (&nodes[0].net, &nodes[3].net);
    until("the provider record to reach the DHT", async || {
        d.providers(hash).await.unwrap().contains(&a.peer_id())
    })
    .await;
    let fetched = d.fetch_blob(hash).await.unwrap();
    assert_eq!(fetched, blob);
    // D now holds and announces it too.
    until("D's provider record", async || {
        nodes[1]
            .net
            .providers(hash)
            .await
            .unwrap()
            .contains(&d.peer_id())
    })
    .await;
    // An unknown blob is a clear error, not a hang.
    let missing = platform_primitives::Hash::of(b"nobody has this");
    let err = d.fetch_blob(missing).await.unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcing_past_the_provider_stores_capacity_keeps_blobs_fetchable() {
    // A network that has run for a long time has announced far more blobs than any store
    // holds. Small limits make that cheap: 4 own keys, 6 remote records per node, 60 blobs.
    let mut cfg = Config::new(NETUID);
    cfg.providers = platform_network::ProviderLimits {
        max_provided: 4,
        max_remote: 6,
        ..Default::default()
    };
    let nodes = start_four(cfg).await;
    let (a, d) = (&nodes[0].net, &nodes[3].net);
    let mut hashes = Vec::new();
    for i in 0..60u32 {
        hashes.push(
            a.put_blob(format!("payload {i}").into_bytes())
                .await
                .unwrap(),
        );
    }
    let newest = *hashes.last().unwrap();
    // The newest announcement still reaches the DHT: nothing is refused for lack of room.
    until("the newest provider record", async || {
        d.providers(newest).await.unwrap().contains(&a.peer_id())
    })
    .await;
    until("A's store to report its figures", async || {
        a.metrics().snapshot().dht.evicted_own == 56
    })
    .await;
    for node in &nodes {
        let dht = node.net.metrics().snapshot().dht;
        assert!(dht.provided <= 4 && dht.remote <= 6, "{dht:?}");
    }
    // Every blob, the first included, is still fetched (from the connected holder).
    for (i, hash) in [(0, hashes[0]), (30, hashes[30]), (59, newest)] {
        assert_eq!(
            d.fetch_blob(hash).await.unwrap(),
            format!("payload {i}").into_bytes()
        );
    }
    // A withdrawn announcement leaves the store.
    a.unprovide(newest).await.unwrap();
    until("the withdrawal", async || {
        a.metrics().snapshot().dht.provided == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_syncs_certified_blocks_and_the_latest_snapshot() {
    let snapshot_bytes = b"state at height 8".to_vec();
    let mut early = Vec::new();
    for (seed, _) in &STAKES[..3] {
        let provider = Blocks {
            blocks: (1..=10).map(certified_block).collect(),
            snapshot: Some(SnapshotInfo {
                height: 8,
                blob: platform_primitives::Hash::of(&snapshot_bytes),
                certificate: b"cert".to_vec(),
            }),
        };
        early.push(start(*seed, Config::new(NETUID), Arc::new(provider)).await);
    }
    let m = membership(&STAKES);
    mesh(&early.iter().map(|n| &n.net).collect::<Vec<_>>(), &m).await;
    early[1].net.put_blob(snapshot_bytes.clone()).await.unwrap();

    let late = start(4, Config::new(NETUID), Arc::new(Blocks::default())).await;
    late.net.set_membership(m.clone()).await.unwrap();
    late.net.dial(early[0].net.addr().clone()).await.unwrap();
    until("the late node to bind", async || {
        !status(&late.net).await.connected_validators.is_empty()
    })
    .await;

    let blocks = late.net.sync_blocks(1, 10, verify_blocks).await.unwrap();
    // Verified on receipt (signatures are randomized, so compare contents, not bytes).
    assert_eq!(blocks.len(), 10);
    verify_blocks(1, &blocks).unwrap();
    // Past the end: the peers have nothing, and the error says so.
    assert!(late.net.sync_blocks(11, 20, verify_blocks).await.is_err());

    let (info, _) = late.net.latest_snapshot().await.unwrap().unwrap();
    assert_eq!(info.height, 8);
    until("the snapshot's provider record", async || {
        !late.net.providers(info.blob).await.unwrap().is_empty()
    })
    .await;
    assert_eq!(
        late.net.fetch_blob(info.blob).await.unwrap(),
        snapshot_bytes
    );
}

/// Holds the certificates of one view (opaque bytes here; the node's consensus engine checks
/// real ones).
struct OneView(Vec<Vec<u8>>);

const KNOWN: CertificateAsk = CertificateAsk::View { epoch: 1, view: 5 };

impl Provider for OneView {
    fn blocks(&self, _: u64, _: u64, _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn latest_snapshot(&self) -> Option<SnapshotInfo> {
        None
    }
    fn certificates(&self, ask: CertificateAsk) -> Vec<Vec<u8>> {
        if ask == KNOWN {
            self.0.clone()
        } else {
            Vec::new()
        }
    }
}

/// View synchronization asks validators point-to-point: the asker gets the certificates from
/// whichever connected validator holds them (the preferred one first), and only validators
/// are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_answered_to_the_asking_validator_only() {
    let certs = vec![b"notarization".to_vec(), b"nullification".to_vec()];
    let stakes = [(1, 400), (2, 300), (3, 200)];
    let asker = start(1, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let holder = start(2, Config::new(NETUID), Arc::new(OneView(certs.clone()))).await;
    let empty = start(3, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let m = membership(&stakes);
    mesh(&[&asker.net, &holder.net, &empty.net], &m).await;

    // Preferring the validator that has nothing, the answer still comes from the one that has.
    let (from, got) = asker
        .net
        .fetch_certificates(KNOWN, Some(empty.key.hotkey()))
        .await
        .unwrap();
    assert_eq!(from, holder.key.hotkey());
    assert_eq!(got, certs);
    // Nobody holds another view's: the error says how many were asked.
    let other = CertificateAsk::View { epoch: 1, view: 6 };
    assert!(matches!(
        asker.net.fetch_certificates(other, None).await,
        Err(platform_network::NetError::NotFound { tried: 2, .. })
    ));

    // A peer outside the validator set is refused, counted and penalized.
    let outsider = start(9, Config::new(NETUID), Arc::new(NothingToServe)).await;
    outsider.net.set_membership(m.clone()).await.unwrap();
    outsider.net.dial(holder.net.addr().clone()).await.unwrap();
    until("the outsider to bind", async || {
        !status(&outsider.net).await.connected_validators.is_empty()
    })
    .await;
    assert!(outsider.net.fetch_certificates(KNOWN, None).await.is_err());
    let refused = holder.net.metrics().snapshot().rejected;
    assert!(
        refused
            .get(&("certificates".to_string(), "not_validator".to_string()))
            .is_some_and(|n| *n >= 1),
        "{refused:?}"
    );
}

/// A consensus message sent directly (a finalize vote to a collector) reaches the addressed
/// validator through the same checks as gossip, and nobody else; one for a validator that is
/// not connected is refused at once; an outsider's is refused and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_reaches_only_the_addressed_validator() {
    let mut nodes = start_four(Config::new(NETUID)).await;
    let to = nodes[1].key.hotkey();
    nodes[0]
        .net
        .send_direct(to, 0, b"for the second only".to_vec())
        .await
        .unwrap();
    let env = next_gossip(&mut nodes[1].events).await;
    assert_eq!(env.payload, b"for the second only");
    assert_eq!(env.topic, Topic::Consensus);
    assert_eq!(env.author, nodes[0].key.hotkey());
    let direct = |n: &Node| {
        n.net
            .metrics()
            .snapshot()
            .accepted
            .get("direct")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(direct(&nodes[1]), 1);
    assert_eq!(direct(&nodes[2]) + direct(&nodes[3]), 0);
    assert_eq!(nodes[0].net.metrics().snapshot().direct_sent, 1);

    // Nobody connected holds this hotkey: the caller learns it (and may gossip instead).
    assert!(matches!(
        nodes[0]
            .net
            .send_direct(key(77).hotkey(), 0, b"x".to_vec())
            .await,
        Err(platform_network::NetError::NoPeers)
    ));

    // A peer outside the validator set may not send one.
    let outsider = start(9, Config::new(NETUID), Arc::new(NothingToServe)).await;
    outsider
        .net
        .set_membership(membership(&STAKES))
        .await
        .unwrap();
    outsider
        .net
        .dial(nodes[2].net.addr().clone())
        .await
        .unwrap();
    until("the outsider to bind", async || {
        !status(&outsider.net).await.connected_validators.is_empty()
    })
    .await;
    outsider
        .net
        .send_direct(nodes[2].key.hotkey(), 0, b"from outside".to_vec())
        .await
        .unwrap();
    until(
        "the validator to refuse the outsider's direct message",
        async || {
            nodes[2]
                .net
                .metrics()
                .snapshot()
                .rejected
                .get(&("direct".to_string(), "not_validator".to_string()))
                .is_some_and(|n| *n >= 1)
        },
    )
    .await;
    assert_eq!(direct(&nodes[2]), 0);
}

/// A provider whose reads take a while (a slow disk), so that requests stay in flight.
struct Slow(Blocks, Duration);

impl Provider for Slow {
    fn blocks(&self, from: u64, to: u64, max_bytes: usize) -> Vec<Vec<u8>> {
        std::thread::sleep(self.1);
        self.0.blocks(from, to, max_bytes)
    }
    fn latest_snapshot(&self) -> Option<SnapshotInfo> {
        std::thread::sleep(self.1);
        self.0.latest_snapshot()
    }
}

/// Three peers outside the validator set flood a validator with sync requests: together they
/// are served a few at a time and refused (`busy`, `busy_peer`) beyond that, while a
/// validator's own request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_flooding_requests_never_crowd_out_validators() {
    let stakes = [(1, 400), (2, 300)];
    let provider = Slow(
        Blocks {
            blocks: (1..=10).map(certified_block).collect(),
            snapshot: None,
        },
        Duration::from_secs(3),
    );
    let server = start(1, Config::new(NETUID), Arc::new(provider)).await;
    let validator = start(2, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let m = membership(&stakes);
    mesh(&[&server.net, &validator.net], &m).await;
    let mut outsiders = Vec::new();
    for seed in [9, 10, 11] {
        let outsider = start(seed, Config::new(NETUID), Arc::new(NothingToServe)).await;
        outsider.net.set_membership(m.clone()).await.unwrap();
        outsider.net.dial(server.net.addr().clone()).await.unwrap();
        until("the outsider to bind", async || {
            !status(&outsider.net).await.connected_validators.is_empty()
        })
        .await;
        outsiders.push(outsider);
    }

    let flood: Vec<_> = (0..12)
        .map(|i| {
            let net = outsiders[i % 3].net.clone();
            tokio::spawn(async move { net.sync_blocks(1, 10, verify_blocks).await })
        })
        .collect();
    let refused = || {
        let metrics = server.net.metrics();
        metrics.rejections("busy") + metrics.rejections("busy_peer")
    };
    until(
        "the flood to be refused beyond the outsiders' share",
        async || refused() >= 8,
    )
    .await;
    assert!(server.net.metrics().rejections("busy") >= 2);
    let served = validator
        .net
        .sync_blocks(1, 10, verify_blocks)
        .await
        .unwrap();
    assert_eq!(served.len(), 10);
    let mut outsiders_served = 0;
    for f in flood {
        if f.await.unwrap().is_ok_and(|b| b.len() == 10) {
            outsiders_served += 1;
        }
    }
    assert!(
        (1..=platform_network::SERVE_OUTSIDERS).contains(&outsiders_served),
        "{outsiders_served} of the outsiders' requests served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_that_fail_verification_cost_the_peer_and_are_not_returned() {
    let forged = Blocks {
        blocks: (1..=5u64)
            .map(|h| {
                let body = format!("block {h}").into_bytes();
                let sig = key(66).sign(Domain::Proposal, &encode(&(h, &body)));
                encode(&(h, body, sig))
            })
            .collect(),
        snapshot: None,
    };
    let liar = start(1, Config::new(NETUID), Arc::new(forged)).await;
    let late = start(2, Config::new(NETUID), Arc::new(Blocks::default())).await;
    let m = membership(&STAKES[..2]);
    mesh(&[&liar.net, &late.net], &m).await;
    let err = late.net.sync_blocks(1, 5, verify_blocks).await.unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
    until("the bad certificate to be counted", async || {
        late.net.metrics().rejections("bad_certificate") == 1
    })
    .await;
}

/// A fifth, Byzantine validator (seed 5) sends every kind of bad message to node 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_rejected_counted_and_the_sender_banned() {
    let stakes = [(1, 400), (5, 100)];
    let honest = start(1, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let mallory = start(5, Config::new(NETUID), Arc::new(NothingToServe)).await;
    // An observer: connected, not in the validator set.
    let observer = start(9, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let m = membership(&stakes);
    mesh(&[&honest.net, &mallory.net], &m).await;
    observer.net.set_membership(m.clone()).await.unwrap();
    observer.net.dial(honest.net.addr().clone()).await.unwrap();
    until("the observer to connect", async || {
        status(&honest.net).await.connected_peers == 2
    })
    .await;

    // The observer may fetch blobs, but its gossip is not accepted.
    let hash = honest.net.put_blob(b"public".to_vec()).await.unwrap();
    until("the observer to fetch a blob", async || {
        observer.net.fetch_blob(hash).await.is_ok()
    })
    .await;
    // Its own messages, and validly signed envelopes of a validator it harvested, are refused
    // at the relay stage: they never cost the honest node a signature check.
    let checks_before = honest.net.metrics().snapshot().signature_checks;
    observer
        .net
        .publish(Topic::Consensus, 0, b"observer vote".to_vec())
        .await
        .unwrap();
    for i in 0..20u8 {
        let harvested = Envelope::sign(&mallory.key, NETUID, Topic::Consensus, 0, vec![i]);
        observer.net.publish_envelope(harvested).await.unwrap();
    }
    until("the observer's messages to be refused", async || {
        honest.net.metrics().rejections("relay_not_validator") >= 21
    })
    .await;
    assert_eq!(
        honest.net.metrics().snapshot().signature_checks,
        checks_before
    );

    // Oversize for the announce topic (4 KiB), though within gossipsub's own limit.
    mallory
        .net
        .publish(Topic::Announce, 0, vec![7; 5000])
        .await
        .unwrap();
    // A message claiming to be from the honest validator, with a broken signature.
    let mut forged = Envelope::sign(&mallory.key, NETUID, Topic::Consensus, 0, b"x".to_vec());
    forged.author = honest.key.hotkey();
    mallory.net.publish_envelope(forged).await.unwrap();
    for reason in ["oversize", "bad_signature"] {
        until(reason, async || {
            honest.net.metrics().rejections(reason) >= 1
        })
        .await;
    }
    until("mallory to be banned", async || {
        banned(&honest.net, &mallory.net).await
    })
    .await;
    until("mallory to be disconnected", async || {
        !status(&honest.net)
            .await
            .connected_validators
            .contains(&mallory.key.hotkey())
    })
    .await;
    assert!(honest.net.metrics().snapshot().bans >= 1);
    let text = honest.net.metrics().render_prometheus();
    assert!(text.contains("reason=\"bad_signature\""), "{text}");
    // The banned peer cannot come back during its ban.
    let _ = mallory.net.dial(honest.net.addr().clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !status(&honest.net)
            .await
            .connected_validators
            .contains(&mallory.key.hotkey())
    );
}

/// The consensus layer names an equivocating validator by hotkey; the network finds its peer,
/// counts the offence and bans it at once, while a lesser offence by another only costs points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_reported_for_equivocation_is_banned() {
    let stakes = [(1, 400), (2, 300), (5, 100)];
    let honest = start(1, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let other = start(2, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let mallory = start(5, Config::new(NETUID), Arc::new(NothingToServe)).await;
    let m = membership(&stakes);
    mesh(&[&honest.net, &other.net, &mallory.net], &m).await;
    honest
        .net
        .report_validator(other.key.hotkey(), "consensus", "invalid_proposal")
        .await
        .unwrap();
    honest
        .net
        .report_validator(mallory.key.hotkey(), "consensus", "equivocation")
        .await
        .unwrap();
    until("mallory to be banned", async || {
        banned(&honest.net, &mallory.net).await
    })
    .await;
    assert_eq!(honest.net.metrics().rejections("equivocation"), 1);
    assert_eq!(honest.net.metrics().rejections("invalid_proposal"), 1);
    assert!(!banned(&honest.net, &other.net).await);
    assert!(
        status(&honest.net)
            .await
            .connected_validators
            .contains(&other.key.hotkey())
    );
}

/// A message accepted before a restart is refused after it: the replay cache is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_message_is_refused_after_the_receiver_restarts() {
    let stakes = [(1, 400), (5, 100)];
    let m = membership(&stakes);
    let receiver_dir = tempfile::tempdir().unwrap();
    let (receiver, mut events) = start_in(
        1,
        receiver_dir.path(),
        Config::new(NETUID),
        Arc::new(NothingToServe),
    )
    .await;
    let sender = start(5, Config::new(NETUID), Arc::new(NothingToServe)).await;
    mesh(&[&receiver, &sender.net], &m).await;
    let env = Envelope::sign(&sender.key, NETUID, Topic::Consensus, 3, b"once".to_vec());
    sender.net.publish_envelope(env.clone()).await.unwrap();
    assert_eq!(next_gossip(&mut events).await, env);
    receiver.shutdown().await.unwrap();
    drop((receiver, events));
    sender.net.shutdown().await.unwrap();
    drop(sender);

    // Both restart: neither gossipsub remembers the message, only the replay cache does.
    let (receiver, _events) = start_in(
        1,
        receiver_dir.path(),
        Config::new(NETUID),
        Arc::new(NothingToServe),
    )
    .await;
    let sender = start(5, Config::new(NETUID), Arc::new(NothingToServe)).await;
    mesh(&[&receiver, &sender.net], &m).await;
    sender.net.publish_envelope(env).await.unwrap();
    until("the replay to be refused", async || {
        receiver.metrics().rejections("replayed") == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_rate_limited_while_others_stay_served() {
    let mut cfg = Config::new(NETUID);
    let limited = Rate {
        per_sec: 5,
        burst: 20,
    };
    let announce = cfg.topics.get_mut(&Topic::Announce).unwrap();
    announce.per_peer = limited;
    announce.per_author = limited;
    let stakes = [(1, 400), (2, 300), (5, 100)];
    let mut receiver = start(1, cfg.clone(), Arc::new(NothingToServe)).await;
    let honest = start(2, cfg.clone(), Arc::new(NothingToServe)).await;
    let flooder = start(5, cfg, Arc::new(NothingToServe)).await;
    mesh(
        &[&receiver.net, &honest.net, &flooder.net],
        &membership(&stakes),
    )
    .await;

    for i in 0..200u32 {
        let _ = flooder
            .net
            .publish(Topic::Announce, 0, i.to_le_bytes().to_vec())
            .await;
    }
    until("the flood to be limited", async || {
        receiver.net.metrics().rejections("rate_limited_peer") >= 50
    })
    .await;
    // The honest validator forwarded some of the flood; let its own bucket refill (5/s) so the
    // test shows the flooder's limit, not the forwarder's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    honest
        .net
        .publish(Topic::Announce, 0, b"honest news".to_vec())
        .await
        .unwrap();
    let mut got_honest = false;
    let end = Instant::now() + DEADLINE;
    while !got_honest && Instant::now() < end {
        let env = next_gossip(&mut receiver.events).await;
        got_honest = env.author == honest.key.hotkey();
    }
    assert!(got_honest, "the honest validator's message arrived");
    until("the flooder to be banned", async || {
        status(&receiver.net)
            .await
            .banned
            .contains(&flooder.net.peer_id().to_string())
    })
    .await;
}

/// Node 4 believes in a fifth validator holding most of the stake; until it connects, node 4
/// sees 1000 of 3000 and reports a partition, which clears when the fifth joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_is_reported_and_cleared_on_heal() {
    let mut cfg = Config::new(NETUID);
    cfg.partition_alarm = Duration::from_millis(300);
    let mut nodes = start_four(cfg.clone()).await;
    let mut with_absent = STAKES.to_vec();
    with_absent.push((6, 2000));
    let d = &mut nodes[3];
    d.net
        .set_membership(membership(&with_absent))
        .await
        .unwrap();
    let ev = wait_for(&mut d.events, |e| matches!(e, Event::Partitioned { .. })).await;
    assert_eq!(
        ev,
        Event::Partitioned {
            connected_stake: 1000,
            total_stake: 3000
        }
    );
    assert!(status(&d.net).await.partitioned);

    let sixth = start(6, cfg, Arc::new(NothingToServe)).await;
    sixth
        .net
        .set_membership(membership(&with_absent))
        .await
        .unwrap();
    sixth.net.dial(d.net.addr().clone()).await.unwrap();
    wait_for(&mut d.events, |e| *e == Event::Healed).await;
    assert!(!status(&d.net).await.partitioned);
}

async fn wait_for(events: &mut mpsc::Receiver<Event>, want: fn(&Event) -> bool) -> Event {
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) if want(&ev) => return ev,
            Ok(Some(_)) => continue,
            _ => panic!("event did not arrive"),
        }
    }
}

/// A connection that never binds a hotkey is closed at the deadline; Sybil peers fill what is
/// left to non-validators and no more, and a validator still connects and binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sybil_connections_never_crowd_out_a_validator() {
    let stakes = [(1, 400), (2, 300)];
    let m = membership(&stakes);

    // A bare libp2p peer that connects and never says who it is, on a node whose deadline to
    // bind is 1 s (only this peer connects to it: a slow machine cannot make others miss it).
    let mut strict = Config::new(NETUID);
    strict.bind_deadline = Duration::from_secs(1);
    let watcher = start(3, strict, Arc::new(NothingToServe)).await;
    watcher.net.set_membership(m.clone()).await.unwrap();
    use platform_network::libp2p::{self, futures::StreamExt, swarm::SwarmEvent};
    let mut silent = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::ping::Behaviour::default())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    silent.dial(watcher.net.addr().clone()).unwrap();
    let end = Instant::now() + DEADLINE;
    let mut connected = false;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, silent.select_next_some()).await {
            Ok(SwarmEvent::ConnectionEstablished { .. }) => connected = true,
            Ok(SwarmEvent::ConnectionClosed { .. }) if connected => break,
            Ok(_) => continue,
            Err(_) => panic!("the silent peer was never disconnected"),
        }
    }
    assert_eq!(watcher.net.metrics().rejections("unbound"), 1);
    until("the silent peer's slot to be free", async || {
        status(&watcher.net).await.connected_peers == 0
    })
    .await;

    // Four slots, two kept for the two validators: outsiders get two.
    let mut cfg = Config::new(NETUID);
    cfg.max_connections = 4;
    let server = start(1, cfg, Arc::new(NothingToServe)).await;
    server.net.set_membership(m.clone()).await.unwrap();
    let refused = |reason: &str| server.net.metrics().rejections(reason);
    let mut sybils = Vec::new();
    for seed in 20..23 {
        let sybil = start(seed, Config::new(NETUID), Arc::new(NothingToServe)).await;
        sybil.net.set_membership(m.clone()).await.unwrap();
        let _ = sybil.net.dial(server.net.addr().clone()).await;
        sybils.push(sybil);
    }
    until("the third Sybil to be refused", async || {
        refused("outsider_slots") >= 1
    })
    .await;
    assert_eq!(status(&server.net).await.connected_peers, 2);

    let validator = start(2, Config::new(NETUID), Arc::new(NothingToServe)).await;
    validator.net.set_membership(m.clone()).await.unwrap();
    validator.net.dial(server.net.addr().clone()).await.unwrap();
    until("the validator to connect and bind", async || {
        status(&server.net).await.connected_validators == vec![key(2).hotkey()]
    })
    .await;
    assert_eq!(status(&server.net).await.connected_peers, 3);
    assert_eq!(refused("unbound"), 0);
}

/// A link whose gossip stops draining while the connection stays up (libp2p-gossipsub disables
/// a connection's gossip handler for good after five substream attempts) is closed and dialed
/// again, and gossip flows over the new connection.
///
/// The fault: node A takes consensus messages five times larger than node B's frame limit, so
/// B's decoder refuses A's large frames and drops the substream each came on; after five, A's
/// handler for that connection is disabled, and everything A sends B waits in a queue nothing
/// reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossip_link_that_stops_draining_is_closed_and_redialed() {
    let stakes = [(1, 500), (2, 500)];
    let mut loose = Config::new(NETUID);
    loose.topics.get_mut(&Topic::Consensus).unwrap().max_bytes = 512 * 1024;
    let a = start(1, loose, Arc::new(NothingToServe)).await;
    // B takes the flood this test makes without rate-limiting A (what reaches B of the backlog
    // after the redial would otherwise get A banned).
    let mut patient = Config::new(NETUID);
    let consensus = patient.topics.get_mut(&Topic::Consensus).unwrap();
    let unlimited = Rate {
        per_sec: 1_000_000,
        burst: 1_000_000,
    };
    (consensus.per_peer, consensus.per_author) = (unlimited, unlimited);
    let mut b = start(2, patient, Arc::new(NothingToServe)).await;
    mesh(&[&a.net, &b.net], &membership(&stakes)).await;

    for i in 0..8u8 {
        a.net
            .publish(Topic::Consensus, 0, vec![i; 400 * 1024])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Small messages fill the queue to B (5,000 messages) and go past it.
    let mut sent = 0u32;
    until("A to find its link to B stuck", async || {
        for _ in 0..500 {
            sent += 1;
            let _ = a
                .net
                .publish(Topic::Consensus, 0, sent.to_le_bytes().to_vec())
                .await;
        }
        a.net.metrics().snapshot().stuck_links >= 1
    })
    .await;
    let m = a.net.metrics().snapshot();
    assert!(
        m.gossip_send_failures > 0,
        "the queue to B refused messages before the link was closed"
    );
    assert!(sent > 5000, "{sent} messages published");

    // A dialed B again; a message sent now arrives.
    until("A and B to be connected again", async || {
        status(&a.net).await.connected_validators.len() == 1
            && status(&b.net).await.connected_validators.len() == 1
    })
    .await;
    // (Which side dialed first is a race, so the new connection's address may equal the old
    // one's: B's listening address. What shows the link is new is that a message arrives on
    // it, which nothing did on the old one once its handler was disabled.)
    while b.events.try_recv().is_ok() {}
    let probe = b"after the redial ";
    let end = Instant::now() + DEADLINE;
    for attempt in 0u32.. {
        let body = [probe.as_slice(), &attempt.to_le_bytes()].concat();
        // `NoPeers` until B's subscriptions arrive over the new connection.
        let _ = a.net.publish(Topic::Consensus, 1, body).await;
        match tokio::time::timeout(Duration::from_millis(500), b.events.recv()).await {
            Ok(Some(Event::Gossip { envelope, .. })) if envelope.payload.starts_with(probe) => {
                break;
            }
            _ => assert!(
                Instant::now() < end,
                "B never received A's gossip again: {:?}",
                b.net.metrics().snapshot()
            ),
        }
    }
}
