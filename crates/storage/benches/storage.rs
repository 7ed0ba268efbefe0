//! Audit-log append throughput with group commit. Run:
//! `cargo bench -p platform-storage --bench storage`.
//!
//! Every append is durable (fdatasync) before it returns, so the figures depend on the disk.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use platform_storage::{AuditEntry, AuditLog};

fn entry(i: u64) -> AuditEntry {
    AuditEntry::with_fields(
        "bench.append",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        &[("i", &i.to_string())],
    )
}

fn audit(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit_append");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    g.bench_function("sequential", |b| b.iter(|| log.append(entry(0)).unwrap()));
    drop(log);

    // N threads appending concurrently: appends that arrive during a flush share the next sync.
    for threads in [4u64, 16, 64] {
        g.throughput(Throughput::Elements(threads * 16));
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        g.bench_with_input(
            BenchmarkId::new("concurrent_threads", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let log = &log;
                                s.spawn(move || {
                                    for i in 0..16 {
                                        log.append(entry(t * 16 + i)).unwrap();
                                    }
                                });
                            }
                        });
                    }
                    start.elapsed()
                })
            },
        );
    }

    // A caller with many records at once (e.g. a block's worth) uses one batch.
    for batch in [64u64, 512] {
        g.throughput(Throughput::Elements(batch));
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        g.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter(|| log.append_batch((0..batch).map(entry).collect()).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = audit
}
criterion_main!(benches);
