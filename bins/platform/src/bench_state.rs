//! `platform bench state`: the state root's cost per block at 10⁵ and 10⁶ entries.

use std::time::{Duration, Instant};

use platform_state::fixtures::{filled_store, fork_update_and_root, update_and_root};
use serde::Serialize;

#[derive(Serialize)]
pub struct SizeFigures {
    entries: u64,
    build_s: f64,
    root_update_100_changes_us: f64,
    /// Fork the committed state, change 100 entries on the fork and compute its root: a
    /// block's build or verification.
    fork_update_100_changes_us: f64,
}

#[derive(Serialize)]
pub struct StateFigures {
    sizes: Vec<SizeFigures>,
    /// Cost at 10⁶ entries over cost at 10⁵: 1.0 would be perfectly size-independent; 10 would
    /// be proportional to the state size.
    scaling_1m_over_100k: f64,
    /// The same ratio for fork + 100 changes + root.
    fork_scaling_1m_over_100k: f64,
}

pub fn run(quick: bool) -> StateFigures {
    let rounds = if quick { 20 } else { 200 };
    let mut sizes = Vec::new();
    for n in [100_000u64, 1_000_000] {
        let start = Instant::now();
        let mut store = filled_store(n);
        let build = start.elapsed();
        let mut samples: Vec<Duration> = (0..rounds)
            .map(|round| {
                let t = Instant::now();
                std::hint::black_box(update_and_root(&mut store, n, 100, round + 1));
                t.elapsed()
            })
            .collect();
        let mut forks: Vec<Duration> = (0..rounds)
            .map(|round| {
                let t = Instant::now();
                std::hint::black_box(fork_update_and_root(&store, n, 100, rounds + round + 1));
                t.elapsed()
            })
            .collect();
        sizes.push(SizeFigures {
            entries: n,
            build_s: (build.as_secs_f64() * 100.0).round() / 100.0,
            root_update_100_changes_us: median_us(&mut samples),
            fork_update_100_changes_us: median_us(&mut forks),
        });
    }
    let ratio = |f: fn(&SizeFigures) -> f64| {
        let r = f(&sizes[1]) / f(&sizes[0]).max(0.001);
        (r * 100.0).round() / 100.0
    };
    StateFigures {
        scaling_1m_over_100k: ratio(|s| s.root_update_100_changes_us),
        fork_scaling_1m_over_100k: ratio(|s| s.fork_update_100_changes_us),
        sizes,
    }
}

fn median_us(samples: &mut [Duration]) -> f64 {
    samples.sort();
    (samples[samples.len() / 2].as_secs_f64() * 1e7).round() / 10.0
}

pub fn print(f: &StateFigures) {
    for s in &f.sizes {
        println!(
            "{:>9} entries: 100 changed entries + root {:>8} µs; fork + the same {:>9} µs \
             (medians; state built in {} s)",
            s.entries, s.root_update_100_changes_us, s.fork_update_100_changes_us, s.build_s
        );
    }
    println!(
        "10⁶ / 10⁵ cost ratio: {} in place, {} with a fork (1.0 = independent of state size, \
         10 = proportional)",
        f.scaling_1m_over_100k, f.fork_scaling_1m_over_100k
    );
}
