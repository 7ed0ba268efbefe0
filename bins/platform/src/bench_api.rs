//! `platform bench api`: what a flood of HTTP requests on one validator's public API costs the
//! network. A four-validator devnet runs; for `--secs` seconds nobody but the benchmark's
//! observer touches it (idle), then for `--secs` seconds `--clients` concurrent clients send
//! GET requests to Alice's API as fast as it answers (flood). For each phase: blocks finalized
//! per second and the finalization latency histogram's p50/p99 on the three other validators
//! and on Alice, and for the flood the requests Alice answered and refused per second.
//!
//! The devnet lifts the API's per-address rate limit (every client is 127.0.0.1), so what is
//! measured is what the listener sustains before its in-flight cap (`503`) refuses, and what
//! serving that costs finalization.

use std::io::BufRead;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::output;

/// `platform bench api`.
#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// Concurrent clients during the flood.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of each phase (idle, then flood).
    #[arg(long, default_value_t = 15)]
    secs: u64,
    /// The path every flood request asks for.
    #[arg(long, default_value = "/api/v1/status")]
    path: String,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// One phase's figures.
#[derive(Debug, Default, Serialize)]
struct Phase {
    /// Finalized blocks per second: the slowest of the three other validators.
    blocks_per_sec: f64,
    /// Finalization latency over the phase on the three others (histogram bucket bounds).
    finalization_ms_p50: f64,
    finalization_ms_p99: f64,
    /// The same on Alice, the flooded validator.
    flooded_finalization_ms_p99: f64,
    /// Requests Alice answered with 2xx, per second (flood only).
    answered_per_sec: f64,
    /// Requests Alice refused (429, 503), per second (flood only).
    refused_per_sec: f64,
    /// Requests that failed otherwise (connection refused or reset, timeouts).
    failed: u64,
}

#[derive(Debug, Serialize)]
struct Figures {
    clients: usize,
    secs: u64,
    path: String,
    idle: Phase,
    flood: Phase,
}

pub fn run(a: ApiArgs) -> Result<ExitCode> {
    if a.clients == 0 || a.secs == 0 {
        bail!("--clients and --secs must be positive");
    }
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let mut devnet = Devnet::start(dir.path())?;
    let result = measure(&a, &devnet.apis);
    devnet.stop();
    let figures = result?;
    if a.json {
        output::json(&figures);
    } else {
        print(&figures);
    }
    Ok(ExitCode::SUCCESS)
}

fn print(f: &Figures) {
    println!(
        "API flood: {} clients on Alice's {} for {} s (after {} s idle)",
        f.clients, f.path, f.secs, f.secs
    );
    for (name, p) in [("idle", &f.idle), ("flood", &f.flood)] {
        println!(
            "  {name:5}  {:.2} blocks/s, finalization p50 ≤ {} ms, p99 ≤ {} ms (Alice p99 ≤ {} ms)",
            p.blocks_per_sec,
            p.finalization_ms_p50,
            p.finalization_ms_p99,
            p.flooded_finalization_ms_p99
        );
    }
    println!(
        "  Alice answered {:.0} requests/s and refused {:.0}/s; {} failed",
        f.flood.answered_per_sec, f.flood.refused_per_sec, f.flood.failed
    );
}

/// A devnet child process and its validators' API addresses (Alice first).
struct Devnet {
    child: Child,
    apis: Vec<String>,
}

impl Devnet {
    fn start(dir: &std::path::Path) -> Result<Devnet> {
        let exe = std::env::current_exe().context("locating the platform binary")?;
        let mut child = Command::new(exe)
            .args(["devnet", "--data-dir"])
            .arg(dir)
            .args([
                "--epochs",
                "100000",
                "--tempo",
                "1000",
                "--timeout-secs",
                "86400",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the devnet")?;
        let out = std::io::BufReader::new(child.stdout.take().context("the devnet's output")?);
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line, so the devnet never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(i) = line.find("http://127.0.0.1:")
                    && let Some(end) = line[i..].find("/api/v1/status")
                {
                    let _ = tx.send(line[i..i + end].to_string());
                }
            }
        });
        let mut apis = Vec::new();
        while apis.len() < 4 {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(api) => apis.push(api),
                Err(_) => {
                    let _ = child.kill();
                    bail!("the devnet did not print its four validators' addresses in 120 s");
                }
            }
        }
        Ok(Devnet { child, apis })
    }

    /// Stops the devnet (SIGTERM: it stops its validators and chain) and waits for it.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure(a: &ApiArgs, apis: &[String]) -> Result<Figures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        // Started: every validator past a few blocks.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut lowest = u64::MAX;
            for api in apis {
                lowest = lowest.min(height(&client, api).await.unwrap_or(0));
            }
            if lowest >= 3 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the devnet did not finalize 3 blocks in 120 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let idle = phase(&client, apis, a, false).await?;
        let flood = phase(&client, apis, a, true).await?;
        Ok(Figures {
            clients: a.clients,
            secs: a.secs,
            path: a.path.clone(),
            idle,
            flood,
        })
    })
}

async fn phase(
    client: &reqwest::Client,
    apis: &[String],
    a: &ApiArgs,
    flood: bool,
) -> Result<Phase> {
    let (alice, others) = (&apis[0], &apis[1..]);
    let mut before = Vec::new();
    for api in apis {
        before.push((
            height(client, api).await.unwrap_or(0),
            histogram(client, api).await,
        ));
    }
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let mut tasks = Vec::new();
    if flood {
        // Its own client: a connection pool as large as the flood.
        let flooder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(a.clients)
            .build()?;
        let url = format!("{alice}{}", a.path);
        for _ in 0..a.clients {
            let (flooder, url, stop, counts) =
                (flooder.clone(), url.clone(), stop.clone(), counts.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let slot = match flooder.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            0
                        }
                        Ok(r) if matches!(r.status().as_u16(), 429 | 503) => 1,
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut after = Vec::new();
    for api in apis {
        after.push((
            height(client, api).await.unwrap_or(0),
            histogram(client, api).await,
        ));
    }
    let blocks_per_sec = (1..apis.len())
        .map(|i| after[i].0.saturating_sub(before[i].0) as f64 / secs)
        .fold(f64::INFINITY, f64::min);
    let mut others_hist: Vec<(f64, u64)> = Vec::new();
    for i in 1..=others.len() {
        add(&mut others_hist, &delta(&before[i].1, &after[i].1));
    }
    let alice_hist = delta(&before[0].1, &after[0].1);
    let per_sec = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / secs;
    Ok(Phase {
        blocks_per_sec,
        finalization_ms_p50: quantile(&others_hist, 0.50),
        finalization_ms_p99: quantile(&others_hist, 0.99),
        flooded_finalization_ms_p99: quantile(&alice_hist, 0.99),
        answered_per_sec: per_sec(&counts[0]),
        refused_per_sec: per_sec(&counts[1]),
        failed: counts[2].load(Ordering::Relaxed),
    })
}

async fn height(client: &reqwest::Client, api: &str) -> Option<u64> {
    let v: serde_json::Value = client
        .get(format!("{api}/api/v1/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["height"].as_u64()
}

/// The finalization latency histogram's cumulative buckets: (upper bound in seconds, count).
async fn histogram(client: &reqwest::Client, api: &str) -> Vec<(f64, u64)> {
    let Ok(r) = client.get(format!("{api}/metrics")).send().await else {
        return Vec::new();
    };
    let text = r.text().await.unwrap_or_default();
    let prefix = "platform_finalization_latency_seconds_bucket{le=\"";
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn delta(before: &[(f64, u64)], after: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0, |(_, c)| *c);
            (*le, n.saturating_sub(was))
        })
        .collect()
}

fn add(sum: &mut Vec<(f64, u64)>, h: &[(f64, u64)]) {
    for (le, n) in h {
        match sum.iter_mut().find(|(b, _)| b == le) {
            Some(e) => e.1 += n,
            None => sum.push((*le, *n)),
        }
    }
}

/// The upper bound (ms) of the first cumulative bucket holding the `q` quantile; 0 without
/// observations.
fn quantile(h: &[(f64, u64)], q: f64) -> f64 {
    let total = h.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if total == 0 {
        return 0.0;
    }
    let want = (total as f64 * q).ceil() as u64;
    let mut sorted = h.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or(f64::INFINITY, |(le, _)| le * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_deltas() {
        let before = [(0.001, 0), (0.002, 1), (0.004, 2), (f64::INFINITY, 2)];
        let after = [(0.001, 0), (0.002, 1), (0.004, 50), (f64::INFINITY, 102)];
        let d = delta(&before, &after);
        // 100 new observations: 48 in (2, 4] ms and 52 above the last finite bound.
        assert_eq!(quantile(&d, 0.40), 4.0);
        assert_eq!(quantile(&d, 0.99), f64::INFINITY);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
