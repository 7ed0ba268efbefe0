//! `platform bench`: measures this machine against Platform's performance targets.
//!
//! The same operations as the criterion benches, timed in-process so that an operator can check
//! a validator host without a Rust toolchain. Each figure is the median of several timed runs.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;
use platform_crypto::fixtures::{BlsCommittee, SignedBatch};
use platform_crypto::{BlsSecretKey, Domain, Keypair, verify_batch};
use platform_primitives::Hash;
use platform_storage::{AuditEntry, AuditLog};
use serde::Serialize;

use crate::output;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// sr25519 signing and batch verification, BLS aggregate verification, blake3.
    Crypto {
        /// Fewer, shorter runs (a rough figure in seconds).
        #[arg(long)]
        quick: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The WebAssembly challenge runtime: per-evaluation overhead, throughput on 1 and 2 threads,
    /// compile and cache-hit load times, and fuel overhead on the example challenges.
    Runtime {
        /// Fewer runs (a rough figure in seconds).
        #[arg(long)]
        quick: bool,
        /// Where the built example challenges are.
        #[arg(
            long,
            default_value = "challenges/target/wasm32-unknown-unknown/release"
        )]
        examples: std::path::PathBuf,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The state root's cost per block (100 changed entries) at 10^5 and 10^6 entries, and a
    /// block of 64 submissions applied with an empty history against 10^6 entries of which
    /// 10^5 are settled submissions (target: at most 1.2 times the cost).
    State {
        /// Fewer runs.
        #[arg(long)]
        quick: bool,
        /// Print the figures as JSON (`sizes`, `scaling_1m_over_100k`).
        #[arg(long)]
        json: bool,
    },
    /// A 4-node libp2p network on loopback in this process: gossip latency p50/p99 for
    /// consensus-sized messages and blob throughput through the DHT.
    Network {
        /// Fewer messages and a smaller blob.
        #[arg(long)]
        quick: bool,
        /// Print the figures as JSON (`nodes`, `gossip_p50_ms`, `gossip_p99_ms`,
        /// `blob_mb_per_s`).
        #[arg(long)]
        json: bool,
    },
    /// Mempool admission latency (the state's rules plus the pool) with 50,000 submissions
    /// pending.
    Mempool {
        /// 5,000 pending instead of 50,000.
        #[arg(long)]
        quick: bool,
        /// Print the figures as JSON (`admit_p95_ms`, `admit_p95_target_met`, ...).
        #[arg(long)]
        json: bool,
    },
    /// A long devnet run sampled throughout: throughput, finalization p99, memory, disk and
    /// DHT records at the end against early in the run, and whether every validator agrees
    /// on every block. Exit 0 only if they do.
    Soak(crate::soak::SoakArgs),
    /// The network at 4, 8, 16, 32 and 64 validators: the consensus simulator and real
    /// validator processes on this machine, against the subnet-size targets. Exit 0 unless a
    /// devnet's validators disagree.
    Scale(crate::bench_scale::ScaleArgs),
    /// An HTTP flood on one validator of a four-validator devnet: finalization idle and under
    /// the flood, and the requests the API answered and refused per second.
    Api(crate::bench_api::ApiArgs),
    /// Gossip floods by one Byzantine validator of four (block announcements, forged epoch
    /// anchors, well-formed garbage on every topic): the others' finalization during each vs
    /// idle, and what they refused. Needs a build with the `test-faults` feature.
    Gossip(crate::bench_gossip::GossipArgs),
    /// Durable audit-log appends per second with group commit (writes to a temporary folder).
    Audit {
        /// Fewer, shorter runs.
        #[arg(long)]
        quick: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `f` repeatedly for about `budget` per sample and returns the median time per call.
fn time_per_call<T>(samples: usize, budget: Duration, mut f: impl FnMut() -> T) -> Duration {
    black_box(f()); // warm up
    let mut per_call = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let mut n = 0u32;
        while n == 0 || start.elapsed() < budget {
            black_box(f());
            n += 1;
        }
        per_call.push(start.elapsed() / n);
    }
    per_call.sort();
    per_call[samples / 2]
}

fn per_sec(d: Duration, items: u64) -> u64 {
    (items as f64 / d.as_secs_f64()) as u64
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[derive(Serialize)]
struct CryptoFigures {
    sr25519_sign_per_sec: u64,
    sr25519_verify_per_sec: u64,
    sr25519_batch_verify_per_sec: u64,
    sr25519_batch_verify_target_per_sec: u64,
    sr25519_batch_verify_target_met: bool,
    bls_sign_ms: f64,
    bls_verify_ms: f64,
    bls_aggregate_verify_ms: Vec<(usize, f64)>,
    bls_aggregate_verify_43_ms: f64,
    bls_aggregate_verify_43_target_ms: f64,
    bls_aggregate_verify_43_target_met: bool,
    blake3_mib_per_sec: u64,
    vrf_prove_us: f64,
    vrf_verify_us: f64,
}

#[derive(Serialize)]
struct AuditFigures {
    audit_appends_per_sec_sequential: u64,
    audit_appends_per_sec_16_threads: u64,
    audit_appends_per_sec_batch_64: u64,
    audit_appends_target_per_sec: u64,
    audit_appends_target_met: bool,
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Runtime {
            quick,
            examples,
            json,
        } => {
            let figures = crate::bench_runtime::run(quick, &examples)?;
            if json {
                output::json(&figures);
            } else {
                crate::bench_runtime::print(&figures);
            }
        }
        BenchCommand::Crypto { quick, json } => {
            let figures = crypto(quick);
            if json {
                output::json(&figures);
            } else {
                let met = |m: bool| if m { "met" } else { "NOT met" };
                println!(
                    "sr25519 sign            {:>10} /s",
                    figures.sr25519_sign_per_sec
                );
                println!(
                    "sr25519 verify          {:>10} /s",
                    figures.sr25519_verify_per_sec
                );
                println!(
                    "sr25519 batch verify    {:>10} /s   target ≥ {} /s per core: {}",
                    figures.sr25519_batch_verify_per_sec,
                    figures.sr25519_batch_verify_target_per_sec,
                    met(figures.sr25519_batch_verify_target_met)
                );
                println!("BLS sign                {:>10} ms", figures.bls_sign_ms);
                println!("BLS verify              {:>10} ms", figures.bls_verify_ms);
                for (n, t) in &figures.bls_aggregate_verify_ms {
                    println!("BLS aggregate verify {n:>2} {t:>10} ms");
                }
                println!(
                    "BLS aggregate verify 43 {:>10} ms   target ≤ {} ms: {}",
                    figures.bls_aggregate_verify_43_ms,
                    figures.bls_aggregate_verify_43_target_ms,
                    met(figures.bls_aggregate_verify_43_target_met)
                );
                println!(
                    "blake3 (1 MiB inputs)   {:>10} MiB/s",
                    figures.blake3_mib_per_sec
                );
            }
        }
        BenchCommand::State { quick, json } => {
            let figures = crate::bench_state::run(quick)?;
            if json {
                output::json(&figures);
            } else {
                crate::bench_state::print(&figures);
            }
        }
        BenchCommand::Network { quick, json } => {
            let figures = crate::bench_network::run(quick)?;
            if json {
                output::json(&figures);
            } else {
                crate::bench_network::print(&figures);
            }
        }
        BenchCommand::Mempool { quick, json } => {
            let figures = crate::bench_mempool::run(quick)?;
            if json {
                output::json(&figures);
            } else {
                crate::bench_mempool::print(&figures);
            }
        }
        BenchCommand::Soak(args) => return crate::soak::run(args),
        BenchCommand::Scale(args) => return crate::bench_scale::run(args),
        BenchCommand::Api(args) => return crate::bench_api::run(args),
        BenchCommand::Gossip(args) => return crate::bench_gossip::run(args),
        BenchCommand::Audit { quick, json } => {
            let figures = audit(quick)?;
            if json {
                output::json(&figures);
            } else {
                println!(
                    "sequential appends      {:>8} /s (one sync each)",
                    figures.audit_appends_per_sec_sequential
                );
                println!(
                    "16 concurrent appenders {:>8} /s",
                    figures.audit_appends_per_sec_16_threads
                );
                println!(
                    "batches of 64           {:>8} /s",
                    figures.audit_appends_per_sec_batch_64
                );
                println!(
                    "target ≥ {} /s with group commit: {}",
                    figures.audit_appends_target_per_sec,
                    if figures.audit_appends_target_met {
                        "met"
                    } else {
                        "NOT met"
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn crypto(quick: bool) -> CryptoFigures {
    let (samples, budget) = if quick {
        (3, Duration::from_millis(50))
    } else {
        (7, Duration::from_millis(400))
    };
    let key = Keypair::from_seed(&[1; 32]);
    let msg = [7u8; 128];
    let sig = key.sign(Domain::Submission, &msg);
    let sign = time_per_call(samples, budget, || {
        black_box(key.sign(Domain::Submission, &msg))
    });
    let verify = time_per_call(samples, budget, || {
        platform_crypto::sr25519::verify(&key.hotkey(), Domain::Submission, &msg, &sig)
            .expect("valid");
    });

    let n = 256;
    let signed = SignedBatch::new(n, Domain::Submission);
    let items = signed.items();
    let batch = time_per_call(samples, budget, || verify_batch(&items).expect("valid"));

    let bls_msg = b"platform/1/finalize view 9";
    let sk = BlsSecretKey::from_seed(&[1; 32]);
    let vk = sk
        .public()
        .verify_possession(&sk.prove_possession())
        .expect("valid");
    let bls_sig = sk.sign(bls_msg);
    let bls_sign = time_per_call(samples, budget, || sk.sign(bls_msg));
    let bls_verify = time_per_call(samples, budget, || {
        bls_sig.verify(&vk, bls_msg).expect("valid")
    });
    let mut agg_times = Vec::new();
    for size in [4usize, 16, 43, 64] {
        let committee = BlsCommittee::new(size);
        let (agg, bitmap) = committee.sign_all(bls_msg);
        let t = time_per_call(samples, budget, || {
            agg.verify_aggregate(&committee.keys, &bitmap, bls_msg)
                .expect("valid")
        });
        agg_times.push((size, ms(t)));
    }
    let agg43 = agg_times
        .iter()
        .find(|(n, _)| *n == 43)
        .map_or(0.0, |(_, t)| *t);

    let vrf_input = b"netuid 1 epoch 3 height 77";
    let (_, vrf_proof) = key.vrf_prove(vrf_input);
    let vrf_prove = time_per_call(samples, budget, || key.vrf_prove(vrf_input));
    let vrf_verify = time_per_call(samples, budget, || {
        platform_crypto::vrf::vrf_verify(&key.hotkey(), vrf_input, &vrf_proof).expect("valid")
    });

    let data = vec![0xa5u8; 1 << 20];
    let hash = time_per_call(samples, budget, || Hash::of(&data));

    let batch_rate = per_sec(batch, n as u64);
    CryptoFigures {
        sr25519_sign_per_sec: per_sec(sign, 1),
        sr25519_verify_per_sec: per_sec(verify, 1),
        sr25519_batch_verify_per_sec: batch_rate,
        sr25519_batch_verify_target_per_sec: 40_000,
        sr25519_batch_verify_target_met: batch_rate >= 40_000,
        bls_sign_ms: ms(bls_sign),
        bls_verify_ms: ms(bls_verify),
        bls_aggregate_verify_ms: agg_times,
        bls_aggregate_verify_43_ms: agg43,
        bls_aggregate_verify_43_target_ms: 2.0,
        bls_aggregate_verify_43_target_met: agg43 <= 2.0,
        blake3_mib_per_sec: per_sec(hash, 1),
        vrf_prove_us: ms(vrf_prove) * 1000.0,
        vrf_verify_us: ms(vrf_verify) * 1000.0,
    }
}

fn audit(quick: bool) -> Result<AuditFigures> {
    let (samples, budget) = if quick {
        (3, Duration::from_millis(100))
    } else {
        (5, Duration::from_millis(1000))
    };
    let entry =
        |i: u64| AuditEntry::with_fields("bench.append", "operator", &[("i", &i.to_string())]);
    let dir = std::env::temp_dir().join(format!("platform-bench-audit-{}", std::process::id()));
    let result = (|| -> Result<AuditFigures> {
        let log = AuditLog::open(&dir.join("sequential"))?;
        let seq = time_per_call(samples, budget, || {
            black_box(log.append(entry(0)).expect("append"))
        });
        let log = AuditLog::open(&dir.join("threads"))?;
        let threads = time_per_call(samples, budget, || {
            std::thread::scope(|s| {
                for t in 0..16u64 {
                    let log = &log;
                    s.spawn(move || {
                        for i in 0..16 {
                            log.append(entry(t * 16 + i)).expect("append");
                        }
                    });
                }
            })
        });
        let log = AuditLog::open(&dir.join("batch"))?;
        let batch = time_per_call(samples, budget, || {
            black_box(
                log.append_batch((0..64).map(entry).collect())
                    .expect("append"),
            )
        });
        let threads_rate = per_sec(threads, 256);
        Ok(AuditFigures {
            audit_appends_per_sec_sequential: per_sec(seq, 1),
            audit_appends_per_sec_16_threads: threads_rate,
            audit_appends_per_sec_batch_64: per_sec(batch, 64),
            audit_appends_target_per_sec: 5_000,
            audit_appends_target_met: threads_rate >= 5_000,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
