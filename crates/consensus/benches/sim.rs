//! Simulated consensus throughput. Run: `cargo bench -p platform-consensus --bench sim`.
//!
//! One iteration is one seed run to 20 finalized blocks; the throughput is finalized blocks
//! (decisions) per second of wall time on one core.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use platform_consensus::sim::keys::MacKeys;
use platform_consensus::sim::{Scenario, run};

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_decisions");
    for n in [4usize, 16] {
        let s = Scenario::honest(n, 20);
        let keys = MacKeys::new(1, n);
        g.throughput(Throughput::Elements(20));
        g.bench_with_input(BenchmarkId::new("validators", n), &n, |b, _| {
            let mut seed = 0;
            b.iter(|| {
                seed += 1;
                let o = run(&s, &keys, seed);
                assert!(o.finalized_blocks >= 20);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = decisions
}
criterion_main!(benches);
