//! `platform bench mempool`: admission latency with 50,000 submissions pending.
//!
//! The state has one validator and 1,000 registered miners and one active challenge (published
//! and activated by the owner's `Sudo` transactions in blocks). The mempool is filled with
//! 50,000 signed submissions (50 per miner) through the same admission path the API uses
//! (`Pool::admit`: the state's rules, then the mempool); then 2,000 more are admitted one by one
//! and timed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use platform_crypto::Keypair;
use platform_node::mempool::{Mempool, Pool};
use platform_node::workload::{state_with_active_challenge, submission};
use platform_state::Tx;
use serde::Serialize;

#[derive(Serialize)]
pub struct MempoolFigures {
    pending: usize,
    admissions_timed: usize,
    admit_p50_ms: f64,
    admit_p95_ms: f64,
    admit_p99_ms: f64,
    admit_p95_target_ms: f64,
    admit_p95_target_met: bool,
}

pub fn run(quick: bool) -> Result<MempoolFigures> {
    let (pending, timed) = if quick { (5_000, 500) } else { (50_000, 2_000) };
    let owner = Keypair::from_seed(&[1; 32]);
    let miners: Vec<Keypair> = (0..1_000u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            seed[31] = 7;
            Keypair::from_seed(&seed)
        })
        .collect();
    let state = state_with_active_challenge(&owner, &miners, 1_000)?;
    let g = state.meta().network_id;
    let submission = |miner: &Keypair, nonce| submission(miner, &g, nonce);
    let pool = Pool::new(state, Mempool::new(pending + timed, 256));
    let per_miner = pending.div_ceil(miners.len());
    let mut filled = 0;
    'fill: for n in 0..per_miner as u64 {
        for m in &miners {
            if filled == pending {
                break 'fill;
            }
            pool.admit(submission(m, n))
                .map_err(|e| anyhow!("filling the mempool: {e}"))?;
            filled += 1;
        }
    }
    let txs: Vec<Tx> = (0..timed)
        .map(|i| submission(&miners[i % miners.len()], 1_000_000 + i as u64))
        .collect();
    let mut samples: Vec<Duration> = Vec::with_capacity(timed);
    for tx in txs {
        let t = Instant::now();
        pool.admit(tx)
            .map_err(|e| anyhow!("timed admission: {e}"))?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let p95 = ms(pct(95));
    Ok(MempoolFigures {
        pending: filled,
        admissions_timed: timed,
        admit_p50_ms: ms(pct(50)),
        admit_p95_ms: p95,
        admit_p99_ms: ms(pct(99)),
        admit_p95_target_ms: 10.0,
        admit_p95_target_met: p95 <= 10.0,
    })
}

pub fn print(f: &MempoolFigures) {
    println!(
        "admission with {} pending: p50 {} ms, p95 {} ms, p99 {} ms ({} admissions timed)",
        f.pending, f.admit_p50_ms, f.admit_p95_ms, f.admit_p99_ms, f.admissions_timed
    );
    println!(
        "target p95 ≤ {} ms: {}",
        f.admit_p95_target_ms,
        if f.admit_p95_target_met {
            "met"
        } else {
            "NOT met"
        }
    );
}
