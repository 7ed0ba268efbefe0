//! `platform bench soak`: a long devnet run, sampled throughout, to show that nothing degrades
//! with the network's age — throughput, finalization latency, memory, disk and the DHT's
//! provider records at the end against their values early in the run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use serde::Serialize;

use crate::node::{self, DevnetArgs};
use crate::output;

/// `platform bench soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Finalized blocks to run for (on every validator).
    #[arg(long)]
    blocks: u64,
    /// Milliseconds a leader waits after the last finalization before proposing (blocks can come
    /// faster: proposals build on notarized blocks).
    #[arg(long, default_value_t = 100)]
    block_ms: u64,
    /// Simulated miners; each submits every epoch (see `platform devnet --resubmit`).
    #[arg(long, default_value_t = 8)]
    miners: u16,
    /// Validators (1 to 4).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Chain blocks per epoch.
    #[arg(long, default_value_t = 10)]
    tempo: u16,
    /// Keep the network's files here (default: a temporary folder, removed at exit).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Give up after this many seconds (default: 20 × the run's nominal length, at least 10
    /// minutes).
    #[arg(long)]
    timeout_secs: Option<u64>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// One look at every validator.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    at: Duration,
    /// The lowest finalized height over the validators.
    height: u64,
    /// The highest finalization p99 (over each validator's last 1,000 blocks).
    p99_ms: u64,
    /// The largest resident set, MiB.
    rss_mb: u64,
    /// The largest anonymous resident set (without mapped files such as the binary), MiB.
    rss_anon_mb: u64,
    /// The largest data directory without its logs, MiB.
    disk_mb: u64,
    /// The largest validator log (`node.log`), KiB.
    log_kib: u64,
    /// The most provider records (own plus others') any validator's DHT store holds.
    dht_records: u64,
    /// The most entries any validator's replicated state holds.
    state_entries: u64,
    /// Gossip messages the validators could not queue for a peer, summed over validators.
    gossip_send_failures: u64,
    /// Links the validators closed and redialed because gossip over them stopped draining.
    stuck_links: u64,
}

/// What the devnet's watch loop tells the soak run on every poll.
pub struct Sampler {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
    every: Duration,
    last: Option<Instant>,
    samples: Vec<Sample>,
    /// Heights at which validators reported different block hashes.
    mismatches: Vec<u64>,
    compared: u64,
    started: Instant,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            pids: Vec::new(),
            dirs: Vec::new(),
            every: Duration::from_secs(2),
            last: None,
            samples: Vec::new(),
            mismatches: Vec::new(),
            compared: 0,
            started: Instant::now(),
        }
    }

    /// The validators' processes and data directories, once they are started.
    pub fn watch(&mut self, pids: Vec<u32>, dirs: Vec<PathBuf>) {
        self.pids = pids;
        self.dirs = dirs;
        self.started = Instant::now();
    }

    /// Called on every poll with the finalized heights and p99 latencies just read.
    pub async fn observe(
        &mut self,
        client: &reqwest::Client,
        apis: &[(String, String)],
        heights: &[u64],
        p99s: &[u64],
    ) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        let height = heights.iter().copied().min().unwrap_or(0);
        let (mut dht_records, mut state_entries) = (0, 0);
        let (mut gossip_send_failures, mut stuck_links) = (0, 0);
        for (_, api) in apis {
            if let Ok(r) = client.get(format!("{api}/metrics")).send().await {
                let text = r.text().await.unwrap_or_default();
                dht_records = dht_records.max(
                    metric(&text, "platform_dht_provider_records")
                        + metric(&text, "platform_dht_provided_keys"),
                );
                state_entries = state_entries.max(metric(&text, "platform_state_entries"));
                gossip_send_failures +=
                    metric(&text, "platform_network_gossip_send_failures_total");
                stuck_links += metric(&text, "platform_network_stuck_links_total");
            }
        }
        if height > 0 {
            let mut hashes = Vec::new();
            for (_, api) in apis {
                hashes.push(node::block_hash(client, api, height).await);
            }
            if hashes.iter().all(Option::is_some) {
                self.compared += 1;
                if hashes.windows(2).any(|w| w[0] != w[1]) {
                    self.mismatches.push(height);
                }
            }
        }
        self.samples.push(Sample {
            at: self.started.elapsed(),
            height,
            p99_ms: p99s.iter().copied().max().unwrap_or(0),
            rss_mb: self.pids.iter().map(|p| rss_kib(*p)).max().unwrap_or(0) / 1024,
            rss_anon_mb: self
                .pids
                .iter()
                .map(|p| rss_anon_kib(*p))
                .max()
                .unwrap_or(0)
                / 1024,
            disk_mb: self.dirs.iter().map(|d| dir_bytes(d)).max().unwrap_or(0) >> 20,
            log_kib: self
                .dirs
                .iter()
                .map(|d| std::fs::metadata(d.join("node.log")).map_or(0, |m| m.len()))
                .max()
                .unwrap_or(0)
                >> 10,
            dht_records,
            state_entries,
            gossip_send_failures,
            stuck_links,
        });
    }
}

/// The value of an unlabelled Prometheus sample, 0 when absent.
pub(crate) fn metric(text: &str, name: &str) -> u64 {
    metric_f64(text, name) as u64
}

/// Every sample of the family `name` in Prometheus text: its labels (name and unquoted value,
/// in order) and its value.
pub(crate) fn samples(text: &str, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect::<Option<Vec<_>>>()?;
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of the counter family `name`, whatever its labels.
pub(crate) fn metric_sum(text: &str, name: &str) -> u64 {
    samples(text, name).iter().map(|(_, v)| *v as u64).sum()
}

/// [`metric`] for samples with fractions (seconds).
pub(crate) fn metric_f64(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// CPU time (user and system) a process has used, in milliseconds (0 when it is gone). The
/// kernel reports it in USER_HZ ticks, which are 1/100 s on Linux.
pub(crate) fn cpu_ms(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may contain spaces, so split after ')'):
            // state is field 3; utime and stime are fields 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = f.get(11)?.parse().ok()?;
            let stime: u64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) * 10)
        })
        .unwrap_or(0)
}

/// Whether a process has exited (a zombie not yet reaped by its parent, or gone).
pub(crate) fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A process's resident set in KiB (0 when it is gone).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The anonymous part of a process's resident set (heap, stacks, anonymous mappings), in KiB:
/// the resident set without the pages of files mapped in, mostly the binary's own code, which
/// the kernel pages in as code paths are first run and can drop at any time.
pub(crate) fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

/// A `kB` field of `/proc/<pid>/status` (0 when the process is gone).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes under a directory (files only, symlinks not followed), logs (`*.log`) left out: they
/// grow with the run by design, and rotating them is the operator's (or journald's) job.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() && e.path().extension().is_none_or(|x| x != "log") => {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        })
        .sum()
}

#[derive(Serialize, Debug, PartialEq)]
pub struct SoakFigures {
    blocks: u64,
    seconds: u64,
    /// Finalized blocks per second over the first and the last 10 % of the run.
    blocks_per_sec_first: f64,
    blocks_per_sec_last: f64,
    /// `blocks_per_sec_last / blocks_per_sec_first` (target ≥ 0.9).
    throughput_ratio: f64,
    /// The highest validator's finalization p99 (over its last 1,000 blocks) at 10 % of the
    /// run and at its end.
    finalization_p99_ms_first: u64,
    finalization_p99_ms_last: u64,
    /// The largest validator's resident set and data directory at 20 % of the run and at its
    /// end.
    rss_mb_at_20pct: u64,
    rss_mb_end: u64,
    /// The largest resident set and data directory at 10 %, 20 %, … 100 % of the run (is the
    /// growth levelling off?).
    rss_mb_by_tenth: Vec<u64>,
    /// The same for the anonymous resident set: the resident set without mapped files (the
    /// binary's code is paged in as code paths first run, up to its size).
    rss_anon_mb_at_20pct: u64,
    rss_anon_mb_end: u64,
    rss_anon_mb_by_tenth: Vec<u64>,
    disk_mb_by_tenth: Vec<u64>,
    disk_mb_at_20pct: u64,
    disk_mb_end: u64,
    /// The largest validator log at the end (not in `disk_mb_*`), KiB.
    log_kib_end: u64,
    /// Entries in the largest replicated state at 20 % of the run and at its end (bounded by
    /// the genesis parameter `retain_epochs`).
    state_entries_at_20pct: u64,
    state_entries_end: u64,
    submissions_admitted: usize,
    /// Admitted and ordered into a block (a duplicate payload is admitted by one validator's
    /// mempool and refused by the block that would carry it).
    submissions_in_blocks: usize,
    submissions_evaluated: usize,
    submissions_expired: usize,
    /// The most provider records any validator's DHT store held at any sample.
    dht_provider_records_max: u64,
    /// Gossip messages dropped because a peer's send queue was full, summed over validators
    /// (0 in a healthy run).
    gossip_send_failures: u64,
    /// Links closed and redialed because gossip over them stopped draining, summed over
    /// validators.
    stuck_links: u64,
    /// Heights at which every validator's block hash was compared (besides the last).
    heights_compared: u64,
    /// Same block hash on every validator at every compared height and at the last.
    all_identical: bool,
    /// The targets of a soak run: throughput within 10 %, finalization p99 within 20 %, RSS
    /// and disk within 10 % of their values at 20 % of the run, no expired submission.
    targets_met: bool,
    data_dir: String,
}

/// The first sample at or past `height`.
fn at_height(samples: &[Sample], height: u64) -> Option<&Sample> {
    samples.iter().find(|s| s.height >= height)
}

/// `f` of the first sample at each tenth of `blocks` (the last sample for the last tenth).
fn tenths(samples: &[Sample], blocks: u64, end: &Sample, f: impl Fn(&Sample) -> u64) -> Vec<u64> {
    (1..=10)
        .map(|i| at_height(samples, blocks * i / 10).map_or(f(end), &f))
        .collect()
}

fn rate(from: &Sample, to: &Sample) -> f64 {
    let secs = (to.at - from.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    ((to.height - from.height) as f64 / secs * 100.0).round() / 100.0
}

fn within(end: u64, early: u64, pct: u64) -> bool {
    end * 100 <= early.max(1) * (100 + pct)
}

/// The figures from the samples of a run of `blocks` blocks.
fn figures(sampler: &Sampler, blocks: u64, summary: &node::DevnetSummary) -> Result<SoakFigures> {
    let samples = &sampler.samples;
    let tenth = (blocks / 10).max(1);
    let (Some(start), Some(first_end), Some(last_start), Some(end), Some(at20)) = (
        samples.iter().find(|s| s.height >= 1),
        at_height(samples, tenth),
        at_height(samples, blocks - tenth),
        samples.last(),
        at_height(samples, blocks / 5),
    ) else {
        bail!("the run ended before enough samples were taken; run more --blocks");
    };
    let first = rate(start, first_end);
    let last = rate(last_start, end);
    let throughput_ratio = if first > 0.0 {
        (last / first * 100.0).round() / 100.0
    } else {
        0.0
    };
    let all_identical = summary.all_identical && sampler.mismatches.is_empty();
    let targets_met = throughput_ratio >= 0.9
        && within(end.p99_ms, first_end.p99_ms, 20)
        && within(end.rss_mb, at20.rss_mb, 10)
        && within(end.disk_mb, at20.disk_mb, 10)
        && summary.submissions_expired == 0;
    Ok(SoakFigures {
        blocks: summary.blocks_finalized,
        seconds: end.at.as_secs(),
        blocks_per_sec_first: first,
        blocks_per_sec_last: last,
        throughput_ratio,
        finalization_p99_ms_first: first_end.p99_ms,
        finalization_p99_ms_last: end.p99_ms,
        rss_mb_at_20pct: at20.rss_mb,
        rss_mb_end: end.rss_mb,
        rss_mb_by_tenth: tenths(samples, blocks, end, |s| s.rss_mb),
        rss_anon_mb_at_20pct: at20.rss_anon_mb,
        rss_anon_mb_end: end.rss_anon_mb,
        rss_anon_mb_by_tenth: tenths(samples, blocks, end, |s| s.rss_anon_mb),
        disk_mb_by_tenth: tenths(samples, blocks, end, |s| s.disk_mb),
        disk_mb_at_20pct: at20.disk_mb,
        disk_mb_end: end.disk_mb,
        log_kib_end: end.log_kib,
        state_entries_at_20pct: at20.state_entries,
        state_entries_end: end.state_entries,
        submissions_admitted: summary.submissions_admitted,
        submissions_in_blocks: summary.submissions_in_blocks,
        submissions_evaluated: summary.submissions_evaluated,
        submissions_expired: summary.submissions_expired,
        dht_provider_records_max: samples.iter().map(|s| s.dht_records).max().unwrap_or(0),
        gossip_send_failures: samples
            .iter()
            .map(|s| s.gossip_send_failures)
            .max()
            .unwrap_or(0),
        stuck_links: samples.iter().map(|s| s.stuck_links).max().unwrap_or(0),
        heights_compared: sampler.compared,
        all_identical,
        targets_met,
        data_dir: summary.data_dir.clone(),
    })
}

#[derive(Parser)]
struct Devnet {
    #[command(flatten)]
    args: DevnetArgs,
}

pub fn run(a: SoakArgs) -> Result<ExitCode> {
    if a.blocks < 50 {
        bail!("--blocks must be at least 50 for the first and last tenths to mean anything");
    }
    let nominal = a.blocks * a.block_ms / 1000;
    let timeout = a.timeout_secs.unwrap_or((nominal * 20).max(600));
    let mut argv: Vec<String> = [
        "devnet",
        "--json",
        "--resubmit",
        "--blocks",
        &a.blocks.to_string(),
        "--block-ms",
        &a.block_ms.to_string(),
        "--miners",
        &a.miners.to_string(),
        "--validators",
        &a.validators.to_string(),
        "--tempo",
        &a.tempo.to_string(),
        "--timeout-secs",
        &timeout.to_string(),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Some(d) = &a.data_dir {
        argv.push("--data-dir".into());
        argv.push(d.display().to_string());
    }
    let args = Devnet::try_parse_from(argv)?.args;
    if !a.json {
        println!(
            "soak: {} validators, {} blocks at {} ms, {} miners submitting every epoch \
             (about {} s if nothing degrades)",
            a.validators, a.blocks, a.block_ms, a.miners, nominal
        );
    }
    let mut sampler = Sampler::new();
    let summary = node::run_devnet(&args, Some(&mut sampler))?;
    let figures = figures(&sampler, a.blocks, &summary)?;
    if a.json {
        output::json(&figures);
    } else {
        print(&figures);
    }
    Ok(if figures.all_identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(f: &SoakFigures) {
    println!("{} blocks in {} s", f.blocks, f.seconds);
    println!(
        "blocks/s       first 10 % {:>8.2}   last 10 % {:>8.2}   ratio {:.2} (target ≥ 0.90)",
        f.blocks_per_sec_first, f.blocks_per_sec_last, f.throughput_ratio
    );
    println!(
        "finalization p99  at 10 % {:>6} ms   end {:>6} ms",
        f.finalization_p99_ms_first, f.finalization_p99_ms_last
    );
    println!(
        "RSS (largest)     at 20 % {:>6} MiB  end {:>6} MiB   by tenth {:?}",
        f.rss_mb_at_20pct, f.rss_mb_end, f.rss_mb_by_tenth
    );
    println!(
        "  anonymous     at 20 % {:>6} MiB  end {:>6} MiB   by tenth {:?}",
        f.rss_anon_mb_at_20pct, f.rss_anon_mb_end, f.rss_anon_mb_by_tenth
    );
    println!(
        "disk (largest)    at 20 % {:>6} MiB  end {:>6} MiB",
        f.disk_mb_at_20pct, f.disk_mb_end
    );
    println!(
        "log (largest)     end {:>6} KiB (not counted above)",
        f.log_kib_end
    );
    println!(
        "state entries     at 20 % {:>6}      end {:>6}",
        f.state_entries_at_20pct, f.state_entries_end
    );
    println!(
        "submissions: {} admitted, {} in blocks, {} evaluated, {} expired",
        f.submissions_admitted,
        f.submissions_in_blocks,
        f.submissions_evaluated,
        f.submissions_expired
    );
    println!(
        "DHT provider records, most held by one validator: {}",
        f.dht_provider_records_max
    );
    println!(
        "gossip: {} sends dropped on full queues, {} stuck links redialed",
        f.gossip_send_failures, f.stuck_links
    );
    println!(
        "validators {} ({} heights compared); targets {}",
        if f.all_identical {
            "agree on every block"
        } else {
            "DISAGREE"
        },
        f.heights_compared,
        if f.targets_met { "met" } else { "NOT met" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_summed_over_its_labels() {
        let text = "platform_waits_total{stage=\"verify\"} 3\nplatform_waits_total{stage=\"apply\"} 2\n\
                    platform_waits_total_other 9\nplatform_waits_total 1\n";
        assert_eq!(metric_sum(text, "platform_waits_total"), 6);
        assert_eq!(metric_sum(text, "platform_absent_total"), 0);
    }

    #[test]
    fn labelled_samples_are_read_with_their_labels() {
        let text = "platform_x_total{kind=\"a\",reason=\"b\"} 3\nplatform_x_total 4\n\
                    platform_x_total_other{kind=\"c\"} 9\n";
        let got = samples(text, "platform_x_total");
        assert_eq!(
            got,
            vec![
                (
                    vec![("kind".into(), "a".into()), ("reason".into(), "b".into())],
                    3.0
                ),
                (vec![], 4.0)
            ]
        );
        assert_eq!(metric_sum(text, "platform_x_total"), 7);
    }

    #[test]
    fn metrics_are_read_by_exact_name() {
        let text = "platform_dht_provided_keys 12\nplatform_dht_provider_records 40\n\
                    platform_dht_provider_records_other 9\n";
        assert_eq!(metric(text, "platform_dht_provider_records"), 40);
        assert_eq!(metric(text, "platform_dht_provided_keys"), 12);
        assert_eq!(metric(text, "platform_missing"), 0);
    }

    #[test]
    fn the_anonymous_resident_set_is_part_of_the_resident_set() {
        let me = std::process::id();
        let (all, anon) = (rss_kib(me), rss_anon_kib(me));
        assert!(anon > 0 && anon <= all, "{anon} of {all} KiB");
        assert_eq!(rss_kib(u32::MAX), 0, "a process that does not exist");
    }

    #[test]
    fn rates_and_tolerances() {
        let s = |secs, height| Sample {
            at: Duration::from_secs(secs),
            height,
            ..Default::default()
        };
        assert_eq!(rate(&s(10, 100), &s(20, 200)), 10.0);
        assert_eq!(rate(&s(10, 100), &s(10, 100)), 0.0);
        assert!(within(110, 100, 10));
        assert!(!within(111, 100, 10));
        assert_eq!(
            at_height(&[s(1, 5), s(2, 9), s(3, 12)], 9).map(|x| x.at),
            Some(Duration::from_secs(2))
        );
    }
}
