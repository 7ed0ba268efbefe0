//! `platform bench state`: the state root's cost per block at 10⁵ and 10⁶ entries, and a
//! block's cost with an empty history against a history of 10⁶ entries of which 10⁵ are
//! settled submissions.

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

/// Applying one block of submissions on a fork of the committed state (what a validator does
/// to verify a block), with and without a long history in the state.
#[derive(Serialize)]
pub struct HistoryFigures {
    /// Entries in the state.
    entries: u64,
    /// Certified submission records among them.
    settled_submissions: u64,
    /// Median time to fork the state and apply the block (64 signed submissions: signature
    /// checks, committee draws, the root).
    block_apply_us: f64,
}

#[derive(Serialize)]
pub struct StateFigures {
    sizes: Vec<SizeFigures>,
    /// Cost at 10⁶ entries over cost at 10⁵: 1.0 would be perfectly size-independent; 10 would
    /// be proportional to the state size.
    scaling_1m_over_100k: f64,
    /// The same ratio for fork + 100 changes + root.
    fork_scaling_1m_over_100k: f64,
    /// A block's cost on a nearly empty state; on 1.1·10⁶ entries with no submission history;
    /// on as many entries of which 10⁵ are settled submissions (with their payload index).
    history: Vec<HistoryFigures>,
    /// Cost with the settled history over cost with the same number of entries and no
    /// history: what the history itself costs a block. Target: at most 1.2.
    history_ratio: f64,
    /// Cost at 1.1·10⁶ entries (no history) over the nearly empty state: the state size's own
    /// cost (a path in the trie and the ordered map grows with log n).
    size_ratio: f64,
}

/// Submissions per block in the history comparison.
const BLOCK_SUBMISSIONS: usize = 64;

/// Times fork + apply of one block of [`BLOCK_SUBMISSIONS`] submissions on a state holding
/// `filler` extra entries and `settled` certified submissions.
fn block_with_history(filler: u64, settled: u64, rounds: usize) -> anyhow::Result<HistoryFigures> {
    use platform_crypto::Keypair;
    use platform_node::workload::{state_with_active_challenge, submission};
    use platform_state::NoModules;
    let owner = Keypair::from_seed(&[1; 32]);
    let miners: Vec<Keypair> = (0..BLOCK_SUBMISSIONS)
        .map(|i| Keypair::from_seed(&[i as u8 + 2; 32]))
        .collect();
    let mut state = state_with_active_challenge(&owner, &miners, 1_000)?;
    platform_state::fixtures::add_history(&mut state, filler, settled);
    let network = state.meta().network_id;
    let txs: Vec<_> = miners
        .iter()
        .enumerate()
        .map(|(i, m)| submission(m, &network, i as u64 + 1))
        .collect();
    let view = platform_primitives::View(state.meta().height.0 + 1);
    let (block, outcomes) = state.fork().build_block(&owner, view, 1, txs, &NoModules);
    if let Some((_, Err(e))) = outcomes.iter().find(|(_, r)| r.is_err()) {
        anyhow::bail!("the benchmark block refused a submission: {e}");
    }
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let mut fork = state.fork();
            let applied = fork.apply_block(&block, &NoModules);
            std::hint::black_box(applied.is_ok());
            t.elapsed()
        })
        .collect();
    if let Err(e) = state.fork().apply_block(&block, &NoModules) {
        anyhow::bail!("the benchmark block does not apply: {e:?}");
    }
    Ok(HistoryFigures {
        entries: state.entry_count() as u64,
        settled_submissions: settled,
        block_apply_us: median_us(&mut samples),
    })
}

pub fn run(quick: bool) -> anyhow::Result<StateFigures> {
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
    let block_rounds = if quick { 10 } else { 50 };
    let history = vec![
        block_with_history(0, 0, block_rounds)?,
        block_with_history(1_100_000, 0, block_rounds)?,
        block_with_history(900_000, 100_000, block_rounds)?,
    ];
    let over = |a: usize, b: usize| {
        (history[a].block_apply_us / history[b].block_apply_us.max(0.001) * 100.0).round() / 100.0
    };
    let (history_ratio, size_ratio) = (over(2, 1), over(1, 0));
    Ok(StateFigures {
        scaling_1m_over_100k: ratio(|s| s.root_update_100_changes_us),
        fork_scaling_1m_over_100k: ratio(|s| s.fork_update_100_changes_us),
        sizes,
        history,
        history_ratio,
        size_ratio,
    })
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
    for h in &f.history {
        println!(
            "a block of {BLOCK_SUBMISSIONS} submissions, forked and applied: {:>9} µs with {} \
             entries ({} settled submissions)",
            h.block_apply_us, h.entries, h.settled_submissions
        );
    }
    println!(
        "settled history / the same entries without: {} (target: at most 1.2, {}); \
         1.1·10⁶ entries / an empty state: {}",
        f.history_ratio,
        if f.history_ratio <= 1.2 {
            "met"
        } else {
            "not met"
        },
        f.size_ratio
    );
}
