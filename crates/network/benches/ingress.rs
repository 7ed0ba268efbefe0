//! The ingress pipeline's cost per gossip message, without sockets. Run:
//! `cargo bench -p platform-network --bench ingress`.
//!
//! `accept`: a fresh, valid 256-byte consensus message goes through every stage (the sr25519
//! verification dominates). `refuse_*`: what refusing costs at each stage, in pipeline order —
//! oversize (size cap), replay (the replay cache), relay (a peer that is not a validator
//! forwards it), malformed (bytes that do not decode), not_validator (an author outside the
//! set), future_round (the round window), bad_signature (every stage, the verification
//! failing).

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use platform_crypto::Keypair;
use platform_network::ingress::{Ingress, Membership, Rate, TopicSpec, Verdict};
use platform_network::libp2p::PeerId;
use platform_network::{Metrics, Topic};
use platform_primitives::{NetUid, encode};

fn pipeline() -> (Ingress, PeerId, Keypair) {
    let mut specs: std::collections::BTreeMap<Topic, TopicSpec> = Topic::ALL
        .into_iter()
        .map(|t| (t, TopicSpec::default_for(t)))
        .collect();
    let unlimited = Rate {
        per_sec: u32::MAX / 1000,
        burst: u32::MAX / 1000,
    };
    for spec in specs.values_mut() {
        spec.per_peer = unlimited;
        spec.per_author = unlimited;
    }
    let mut ing = Ingress::new(NetUid(1), specs, unlimited, Arc::new(Metrics::default()));
    let key = Keypair::from_seed(&[1; 32]);
    ing.set_membership(Membership {
        peer_ids: Default::default(),
        validators: [(key.hotkey(), 100)].into(),
    });
    let peer = PeerId::random();
    ing.bind(peer, key.hotkey());
    (ing, peer, key)
}

fn message(key: &Keypair, i: u64) -> Vec<u8> {
    message_in_round(key, i, 0)
}

fn message_in_round(key: &Keypair, i: u64, round: u64) -> Vec<u8> {
    let mut payload = i.to_le_bytes().to_vec();
    payload.resize(256, 0xAB);
    encode(&platform_network::Envelope::sign(
        key,
        NetUid(1),
        Topic::Consensus,
        round,
        payload,
    ))
}

fn ingress(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingress");
    g.throughput(Throughput::Elements(1));
    let (mut ing, peer, key) = pipeline();
    let mut i = 0u64;
    g.bench_function("accept", |b| {
        b.iter_batched(
            || {
                i += 1;
                message(&key, i)
            },
            |m| {
                let v = ing.check_gossip(Topic::Consensus, &peer, &m, Instant::now());
                assert!(matches!(v, Verdict::Accept(_)));
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let big = vec![0u8; 64 * 1024];
    g.bench_function("refuse_oversize", |b| {
        b.iter(|| ing.check_gossip(Topic::Consensus, &peer, &big, Instant::now()))
    });
    let seen = message(&key, 0);
    ing.check_gossip(Topic::Consensus, &peer, &seen, Instant::now());
    g.bench_function("refuse_replay", |b| {
        b.iter(|| ing.check_gossip(Topic::Consensus, &peer, &seen, Instant::now()))
    });
    // Each refusal below is checked once, so a benchmark cannot measure the wrong stage.
    let mut refuse = |name: &str, from: &PeerId, data: &[u8], reason: &str| {
        let v = ing.check_gossip(Topic::Consensus, from, data, Instant::now());
        assert!(
            matches!(v, Verdict::Reject(r) | Verdict::Ignore(r) if r == reason),
            "{name}: {v:?}"
        );
        g.bench_function(name, |b| {
            b.iter(|| ing.check_gossip(Topic::Consensus, from, data, Instant::now()))
        });
    };
    let stranger = PeerId::random();
    refuse(
        "refuse_relay",
        &stranger,
        &message(&key, 1 << 40),
        "relay_not_validator",
    );
    refuse("refuse_malformed", &peer, &[7u8; 300], "malformed");
    let outsider = Keypair::from_seed(&[2; 32]);
    refuse(
        "refuse_not_validator",
        &peer,
        &message(&outsider, 1),
        "not_validator",
    );
    let ahead = message_in_round(&key, 2, 1_000_000);
    refuse("refuse_future_round", &peer, &ahead, "future_round");
    let mut forged = message(&key, 3);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    refuse("refuse_bad_signature", &peer, &forged, "bad_signature");
    g.finish();
}

criterion_group!(benches, ingress);
criterion_main!(benches);
