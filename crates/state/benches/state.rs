//! State-root cost per block at 10⁵ and 10⁶ entries: the cost of rewriting 100 entries and
//! recomputing the root should barely depend on the size of the state.

use criterion::{Criterion, criterion_group, criterion_main};
use platform_state::fixtures::{filled_store, update_and_root};

fn root_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_root_100_changes");
    g.sample_size(20);
    for n in [100_000u64, 1_000_000] {
        let mut store = filled_store(n);
        let mut round = 0u64;
        g.bench_function(format!("{n}_entries"), |b| {
            b.iter(|| {
                round += 1;
                update_and_root(&mut store, n, 100, round)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, root_updates);
criterion_main!(benches);
