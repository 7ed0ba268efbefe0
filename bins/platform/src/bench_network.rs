//! `platform bench network`: a 4-node loopback network in this process — gossip latency of
//! consensus-sized messages and blob transfer throughput through the DHT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use platform_crypto::Keypair;
use platform_network::{Config, Event, Membership, Network, NothingToServe, Topic, loopback};
use platform_primitives::NetUid;
use platform_storage::DataDir;
use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Serialize)]
pub struct NetworkFigures {
    nodes: usize,
    gossip_messages: usize,
    gossip_payload_bytes: usize,
    gossip_p50_ms: f64,
    gossip_p99_ms: f64,
    blob_bytes: usize,
    blob_fetches: usize,
    blob_mb_per_s: f64,
}

const NODES: usize = 4;
/// A vote with a 96-byte BLS signature and a proposal, or a small certificate.
const PAYLOAD: usize = 256;
const WAIT: Duration = Duration::from_secs(20);

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn run(quick: bool) -> Result<NetworkFigures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(measure(quick))
}

async fn measure(quick: bool) -> Result<NetworkFigures> {
    let (messages, blob_bytes, fetches) = if quick {
        (100, 4 << 20, 1)
    } else {
        (1000, 16 << 20, 3)
    };
    let tmp = tempfile::tempdir()?;
    let keys: Vec<Keypair> = (1..=NODES as u8)
        .map(|i| Keypair::from_seed(&[i; 32]))
        .collect();
    let membership = Membership {
        peer_ids: Default::default(),
        validators: keys.iter().map(|k| (k.hotkey(), 100)).collect(),
    };
    let mut cfg = Config::new(NetUid(1));
    // The bench publishes as fast as deliveries complete; lift the per-peer limits so it
    // measures the network, not the rate limiter.
    let spec = cfg
        .topics
        .get_mut(&Topic::Consensus)
        .expect("every topic has a spec");
    spec.per_peer.per_sec = 100_000;
    spec.per_peer.burst = 100_000;
    spec.per_author = spec.per_peer;
    let mut nets = Vec::new();
    let (arrivals_tx, mut arrivals) = mpsc::channel::<(u64, Instant)>(4096);
    for (i, key) in keys.into_iter().enumerate() {
        let dir = Arc::new(DataDir::open(&tmp.path().join(format!("node{i}")))?);
        let (net, events) = Network::start(cfg.clone(), key, dir, Arc::new(NothingToServe))
            .await
            .context("starting a node")?;
        tokio::spawn(forward_arrivals(events, arrivals_tx.clone()));
        nets.push(net);
    }
    let refs: Vec<&Network> = nets.iter().collect();
    loopback::connect_all(&refs, &membership, WAIT).await?;

    // Gossip: one message at a time, round-robin over publishers, until all others have it.
    let mut latencies = Vec::with_capacity(messages * (NODES - 1));
    for seq in 0..messages as u64 {
        let mut payload = seq.to_le_bytes().to_vec();
        payload.resize(PAYLOAD, 0xAB);
        let sent = Instant::now();
        nets[seq as usize % NODES]
            .publish(Topic::Consensus, 0, payload)
            .await?;
        let mut got = 0;
        while got < NODES - 1 {
            let (s, at) = tokio::time::timeout(WAIT, arrivals.recv())
                .await
                .map_err(|_| anyhow!("message {seq} did not reach every node"))?
                .ok_or_else(|| anyhow!("network stopped"))?;
            if s == seq {
                latencies.push(at.duration_since(sent));
                got += 1;
            }
        }
    }
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];

    // Blobs: node 0 stores, node 3 finds it through the DHT and fetches it.
    let mut fetched = 0usize;
    let mut elapsed = Duration::ZERO;
    for f in 0..fetches {
        let blob: Vec<u8> = (0..blob_bytes)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(f as u32) as u8
            })
            .collect();
        let hash = nets[0].put_blob(blob).await?;
        let end = Instant::now() + WAIT;
        while !nets[NODES - 1]
            .providers(hash)
            .await?
            .contains(&nets[0].peer_id())
        {
            if Instant::now() > end {
                return Err(anyhow!("the blob's provider record did not propagate"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let start = Instant::now();
        let bytes = nets[NODES - 1].fetch_blob(hash).await?;
        elapsed += start.elapsed();
        fetched += bytes.len();
    }
    for n in &nets {
        n.shutdown().await?;
    }
    Ok(NetworkFigures {
        nodes: NODES,
        gossip_messages: messages,
        gossip_payload_bytes: PAYLOAD,
        gossip_p50_ms: round3(pct(50).as_secs_f64() * 1e3),
        gossip_p99_ms: round3(pct(99).as_secs_f64() * 1e3),
        blob_bytes,
        blob_fetches: fetches,
        blob_mb_per_s: round3(fetched as f64 / 1e6 / elapsed.as_secs_f64()),
    })
}

async fn forward_arrivals(mut events: mpsc::Receiver<Event>, out: mpsc::Sender<(u64, Instant)>) {
    while let Some(ev) = events.recv().await {
        if let Event::Gossip { envelope, .. } = ev {
            let at = Instant::now();
            let Some(seq) = envelope.payload.get(..8) else {
                continue;
            };
            let seq = u64::from_le_bytes(seq.try_into().expect("eight bytes"));
            if out.send((seq, at)).await.is_err() {
                return;
            }
        }
    }
}

pub fn print(f: &NetworkFigures) {
    println!(
        "{} nodes on loopback, in one process (libp2p TCP + Noise + Yamux)",
        f.nodes
    );
    println!(
        "gossip, {} messages of {} bytes: p50 {} ms, p99 {} ms (publish to delivery after the ingress checks)",
        f.gossip_messages, f.gossip_payload_bytes, f.gossip_p50_ms, f.gossip_p99_ms
    );
    println!(
        "blob fetch through the DHT, {} × {} MiB: {} MB/s (lookup, transfer, hash check, store)",
        f.blob_fetches,
        f.blob_bytes >> 20,
        f.blob_mb_per_s
    );
}
