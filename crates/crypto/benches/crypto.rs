//! Signature, VRF and hashing costs. Run: `cargo bench -p platform-crypto --bench crypto`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use platform_crypto::fixtures::{BlsCommittee, SignedBatch};
use platform_crypto::sr25519::verify;
use platform_crypto::{BlsSecretKey, BlsSignature, Domain, Keypair, verify_batch};
use std::hint::black_box;
use std::time::Duration;

fn sr25519(c: &mut Criterion) {
    let mut g = c.benchmark_group("sr25519");
    let key = Keypair::from_seed(&[1; 32]);
    let msg = [7u8; 128];
    let sig = key.sign(Domain::Submission, &msg);
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| {
        b.iter(|| key.sign(Domain::Submission, black_box(&msg)))
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify(&key.hotkey(), Domain::Submission, black_box(&msg), &sig).unwrap())
    });
    for n in [64usize, 256] {
        let batch = SignedBatch::new(n, Domain::Submission);
        let items = batch.items();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("verify_batch", n), &items, |b, items| {
            b.iter(|| verify_batch(items).unwrap())
        });
    }
    g.finish();
}

fn bls(c: &mut Criterion) {
    let mut g = c.benchmark_group("bls");
    let sk = BlsSecretKey::from_seed(&[1; 32]);
    let vk = sk
        .public()
        .verify_possession(&sk.prove_possession())
        .unwrap();
    let msg = b"platform/1/finalize view 9 block 0123456789abcdef";
    let sig = sk.sign(msg);
    g.bench_function("sign", |b| b.iter(|| sk.sign(black_box(msg))));
    g.bench_function("verify", |b| {
        b.iter(|| sig.verify(&vk, black_box(msg)).unwrap())
    });
    let pop = sk.prove_possession();
    g.bench_function("verify_possession", |b| {
        b.iter(|| sk.public().verify_possession(black_box(&pop)).unwrap())
    });
    for n in [4usize, 16, 43, 64] {
        let committee = BlsCommittee::new(n);
        let (agg, bitmap) = committee.sign_all(msg);
        let sigs: Vec<BlsSignature> = committee.secrets.iter().map(|k| k.sign(msg)).collect();
        g.bench_with_input(BenchmarkId::new("aggregate", n), &sigs, |b, sigs| {
            b.iter(|| BlsSignature::aggregate(sigs).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("verify_aggregate", n), &n, |b, _| {
            b.iter(|| {
                agg.verify_aggregate(&committee.keys, &bitmap, black_box(msg))
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn vrf(c: &mut Criterion) {
    let key = Keypair::from_seed(&[5; 32]);
    let (_, proof) = key.vrf_prove(b"netuid 1 epoch 3 height 77");
    c.bench_function("vrf/prove", |b| {
        b.iter(|| key.vrf_prove(black_box(b"netuid 1 epoch 3 height 77")))
    });
    c.bench_function("vrf/verify", |b| {
        b.iter(|| {
            platform_crypto::vrf::vrf_verify(
                &key.hotkey(),
                black_box(b"netuid 1 epoch 3 height 77"),
                &proof,
            )
            .unwrap()
        })
    });
}

fn blake3(c: &mut Criterion) {
    let mut g = c.benchmark_group("blake3");
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        let data = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| platform_primitives::Hash::of(black_box(d)))
        });
    }
    g.finish();
}

/// Sealing a weight commit to a drand round and opening it (one pairing each).
fn timelock(c: &mut Criterion) {
    use platform_crypto::timelock::{BeaconSecret, Randomness, decrypt, encrypt};
    let beacon = BeaconSecret::from_seed(&[5; 32]);
    let key = beacon.public();
    let sig = beacon.sign_round(1000);
    // About the payload of 256 weights.
    let payload = vec![7u8; 1100];
    let mut g = c.benchmark_group("timelock");
    g.bench_function("encrypt_1100B", |b| {
        b.iter(|| encrypt(&key, 1000, black_box(&payload), &Randomness::fresh()).unwrap())
    });
    let ct = encrypt(&key, 1000, &payload, &Randomness::fresh()).unwrap();
    g.bench_function("decrypt_1100B", |b| {
        b.iter(|| decrypt(black_box(&ct), &sig).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    targets = sr25519, bls, vrf, blake3, timelock
}
criterion_main!(benches);
