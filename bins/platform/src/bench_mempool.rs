//! `platform bench mempool`: admission latency with 50,000 submissions pending.
//!
//! The state has one validator and 1,000 registered miners and one active challenge (published
//! and activated by the owner's `Sudo` transactions in blocks). The mempool is filled with
//! 50,000 signed submissions (50 per miner) through the same admission path the API uses
//! (`Pool::admit`: the state's rules, then the mempool); then 2,000 more are admitted one by one
//! and timed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use platform_crypto::{Domain, Keypair};
use platform_node::mempool::{Mempool, Pool};
use platform_primitives::{ChallengeId, Hash, NetUid, Submission, Uid};
use platform_state::{
    ChallengeMeta, Genesis, Lifecycle, Neuron, NoModules, Params, Resources, ScoringRule, State,
    SubmitTx, SudoAction, SudoTx, Tx,
};
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

const NETUID: NetUid = NetUid(1);

fn sudo(owner: &Keypair, nonce: u64, action: SudoAction) -> Tx {
    let signature = owner.sign(Domain::Sudo, &SudoTx::signing_bytes(NETUID, nonce, &action));
    Tx::Sudo(SudoTx {
        action,
        nonce,
        signer: owner.hotkey(),
        signature: Some(signature),
    })
}

fn submission(miner: &Keypair, nonce: u64) -> Tx {
    let payload = nonce.to_le_bytes();
    let submission = Submission {
        challenge: ChallengeId::new("bench").expect("valid id"),
        miner: miner.hotkey(),
        payload_hash: Hash::of(&payload),
        payload_len: payload.len() as u64,
        nonce,
    };
    let signature = miner.sign(
        Domain::Submission,
        &SubmitTx::signing_bytes(NETUID, &submission),
    );
    Tx::Submit(SubmitTx {
        submission,
        signature: Some(signature),
    })
}

fn state_with_active_challenge(owner: &Keypair, miners: &[Keypair]) -> Result<State> {
    let mut metagraph = vec![Neuron {
        uid: Uid(0),
        hotkey: owner.hotkey(),
        coldkey: owner.hotkey().0,
        stake: 1_000,
        validator_permit: true,
    }];
    for (i, m) in miners.iter().enumerate() {
        metagraph.push(Neuron {
            uid: Uid(i as u16 + 1),
            hotkey: m.hotkey(),
            coldkey: m.hotkey().0,
            stake: 0,
            validator_permit: false,
        });
    }
    let genesis = Genesis {
        netuid: NETUID,
        owner: owner.hotkey(),
        params: Params {
            max_submissions_per_epoch: 1_000,
            ..Params::default()
        },
        chain_block: 0,
        chain_hash: Hash::of(b"bench"),
        metagraph,
        bindings: Vec::new(),
        timestamp_ms: 0,
    };
    let mut state = State::genesis(&genesis).map_err(|e| anyhow!("bench genesis: {e}"))?;
    let meta = ChallengeMeta {
        id: ChallengeId::new("bench").expect("valid id"),
        name: "bench".into(),
        version: 1,
        wasm_hash: Hash::of(b"module"),
        abi_version: platform_runtime::abi::ABI_VERSION,
        resources: Resources::default(),
        committee_size: None,
        emission_bps: 10_000,
        scoring: ScoringRule::WinnerTakesAll,
        assets: Vec::new(),
    };
    let steps = [
        sudo(owner, 1, SudoAction::Publish(meta)),
        sudo(
            owner,
            2,
            SudoAction::Transition {
                challenge: ChallengeId::new("bench").expect("valid id"),
                to: Lifecycle::Active,
            },
        ),
    ];
    for (i, tx) in steps.into_iter().enumerate() {
        let (block, outcomes) = state.build_block(
            owner,
            platform_primitives::View(i as u64 + 1),
            0,
            vec![tx],
            &NoModules,
        );
        if let Some((_, Err(e))) = outcomes.first() {
            return Err(anyhow!("setting up the challenge: {e}"));
        }
        state
            .apply_block(&block, &NoModules)
            .map_err(|e| anyhow!("setting up the challenge: {e:?}"))?;
    }
    Ok(state)
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
    let state = state_with_active_challenge(&owner, &miners)?;
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
