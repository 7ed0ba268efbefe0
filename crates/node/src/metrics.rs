//! The node's Prometheus metrics, through `prometheus-client` (OpenMetrics text at `/metrics`).
//!
//! Two kinds:
//! - **Events** (histograms and labelled counters) are recorded where they happen: finalization
//!   latency (driver), evaluations by challenge and outcome with their time and fuel
//!   (evaluator), HTTP requests by route and status with their time (the API's middleware),
//!   mempool admissions by source and result (API and gossip). They live in one process-wide
//!   [`Events`], as a node is one process; nodes sharing a process in tests share it.
//! - **Readings** are taken at scrape time by [`Readings`], a collector over what the node
//!   already keeps: its status (height, view, epoch, peers, partition, chain head, weights
//!   submitted, …), the network's accepted and refused counters, the API listener's refusals,
//!   and the process (resident memory, open files, the data directory's bytes).
//!
//! Names follow Prometheus conventions: base units (seconds, bytes), `_total` on counters
//! (added by the encoder), `platform_` first. The metrics the devnet and `platform bench` read
//! keep their names.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::driver::SharedStatus;

type Labels = Vec<(&'static str, String)>;

fn seconds_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn fuel_histogram() -> Histogram {
    // 1,000 … ~4·10^12 units of fuel.
    Histogram::new(exponential_buckets(1_000.0, 4.0, 16))
}

/// Metrics recorded as events happen (see the module documentation).
#[derive(Debug)]
pub struct Events {
    /// From a block's proposal (its header's timestamp) to its finalization here.
    pub finalization: Histogram,
    /// Evaluations by challenge and outcome (`ok`, `trap`, `out_of_fuel`, …, or
    /// `load_failed`).
    pub evaluations: Family<Labels, Counter>,
    /// Time of each evaluation (module loading included), by challenge.
    pub evaluation_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Fuel each evaluation used, by challenge.
    pub evaluation_fuel: Family<Labels, Histogram, fn() -> Histogram>,
    /// HTTP requests by route (the pattern, not the path) and status code.
    pub http_requests: Family<Labels, Counter>,
    /// Time to answer each request (headers; a stream's body is not timed), by route.
    pub http_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Transactions offered to the mempool by source (`api`, `gossip`) and result
    /// (`admitted`, `full`, `rejected`).
    pub mempool_offers: Family<Labels, Counter>,
    /// Pending transactions that left the mempool unordered, by kind and reason (`evicted`
    /// for room, or the state's refusal code when a block built here refused them).
    pub mempool_dropped: Family<Labels, Counter>,
    /// Certificate asks this validator made point-to-point (view sync), by result
    /// (`answered`: a validator sent certificates; `unanswered`: no connected validator had
    /// any).
    pub view_sync_asks: Family<Labels, Counter>,
    /// Bodies of notarized blocks, not yet final, that this validator had to verify again
    /// but lacked (it restarted, or missed the announcement), by where they were found
    /// (`store`: its own blob store; `peer`: a validator) or `missing`.
    pub notarized_bodies: Family<Labels, Counter>,
    /// Challenge assets fetched, by source (`network`: the blob store, a peer or the DHT;
    /// `url`: the owner's URL) or `failed`.
    pub asset_fetches: Family<Labels, Counter>,
    /// View timeouts this node's consensus engine handled.
    pub view_timeouts: Counter,
    /// Times a validator's (re)connection, while nothing had finalized for a view timeout,
    /// made this node repeat its votes and certificates at once.
    pub resends_on_connect: Counter,
    /// Certificates formed or received, by kind (`notarize`, `nullify`: a view given up,
    /// `finalize`).
    pub certificates: Family<Labels, Counter>,
    /// Equivocations (two conflicting votes of one validator) this node observed.
    pub equivocations: Counter,
    /// Weight submissions to the chain by result (`submitted`, `superseded` by a newer epoch, `failed`,
    /// `revealed`, `reveal_failed`).
    pub weight_submissions: Family<Labels, Counter>,
    /// Hash commits waiting for their reveal window (commit-reveal version 2).
    pub pending_commits: Gauge,
    /// Times an epoch close had to wait because a challenge module could not run here yet
    /// (missing, or over the wall-clock backstop), by where (`verify`: a proposal, `apply`: a
    /// finalized block, `replay`: the restart's replay, `build`: this leader's close).
    pub module_waits: Family<Labels, Counter>,
    /// Inputs (gossip, peers' data) a handler could not use and dropped, by input and reason
    /// (`crate::error`).
    pub inputs_dropped: Family<Labels, Counter>,
}

impl Events {
    fn new() -> Events {
        Events {
            finalization: seconds_histogram(),
            evaluations: Family::default(),
            evaluation_seconds: Family::new_with_constructor(seconds_histogram),
            evaluation_fuel: Family::new_with_constructor(fuel_histogram),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(seconds_histogram),
            mempool_offers: Family::default(),
            mempool_dropped: Family::default(),
            view_sync_asks: Family::default(),
            notarized_bodies: Family::default(),
            asset_fetches: Family::default(),
            view_timeouts: Counter::default(),
            resends_on_connect: Counter::default(),
            certificates: Family::default(),
            equivocations: Counter::default(),
            weight_submissions: Family::default(),
            pending_commits: Gauge::default(),
            module_waits: Family::default(),
            inputs_dropped: Family::default(),
        }
    }

    /// Counts an input a handler dropped.
    pub fn inputs_dropped(&self, input: &'static str, reason: &'static str) {
        self.inputs_dropped
            .get_or_create(&vec![("input", input.into()), ("reason", reason.into())])
            .inc();
    }

    /// Counts an epoch close that waits for a module, at `stage`.
    pub fn module_wait(&self, stage: &'static str) {
        self.module_waits
            .get_or_create(&vec![("stage", stage.into())])
            .inc();
    }

    /// Counts a weight submission's result.
    pub fn weights(&self, result: &'static str) {
        self.weight_submissions
            .get_or_create(&vec![("result", result.into())])
            .inc();
    }

    /// Counts a pending transaction of `kind` dropped unordered, for `reason`.
    pub fn mempool_dropped(&self, kind: &'static str, reason: String) {
        self.mempool_dropped
            .get_or_create(&vec![("kind", kind.into()), ("reason", reason)])
            .inc();
    }

    /// Counts a challenge asset fetch by source or failure.
    pub fn asset_fetch(&self, source: &'static str) {
        self.asset_fetches
            .get_or_create(&vec![("source", source.into())])
            .inc();
    }

    /// Counts a certificate ask's result.
    pub fn view_sync_ask(&self, result: &'static str) {
        self.view_sync_asks
            .get_or_create(&vec![("result", result.into())])
            .inc();
    }

    /// Counts a transaction offered to the mempool.
    pub fn offered(&self, source: &'static str, result: &'static str) {
        self.mempool_offers
            .get_or_create(&vec![("source", source.into()), ("result", result.into())])
            .inc();
    }
}

/// The process's event metrics.
pub fn events() -> &'static Events {
    static EVENTS: OnceLock<Events> = OnceLock::new();
    EVENTS.get_or_init(Events::new)
}

/// A registry with the event metrics and a [`Readings`] collector: what `/metrics` encodes.
pub fn registry(readings: Readings) -> Registry {
    let e = events();
    let mut r = Registry::default();
    r.register(
        "platform_finalization_latency_seconds",
        "From a block's proposal to its finalization on this node",
        e.finalization.clone(),
    );
    r.register(
        "platform_evaluation_outcomes",
        "Evaluations run as a committee member, by challenge and outcome",
        e.evaluations.clone(),
    );
    r.register(
        "platform_evaluation_duration_seconds",
        "Time of each evaluation, module loading included, by challenge",
        e.evaluation_seconds.clone(),
    );
    r.register(
        "platform_evaluation_fuel",
        "Fuel each evaluation used, by challenge",
        e.evaluation_fuel.clone(),
    );
    r.register(
        "platform_http_requests",
        "HTTP API requests by route and status code",
        e.http_requests.clone(),
    );
    r.register(
        "platform_http_request_duration_seconds",
        "Time to answer each HTTP API request, by route",
        e.http_seconds.clone(),
    );
    r.register(
        "platform_mempool_offers",
        "Transactions offered to the mempool, by source and result",
        e.mempool_offers.clone(),
    );
    r.register(
        "platform_mempool_dropped",
        "Pending transactions that left the mempool unordered, by kind and reason",
        e.mempool_dropped.clone(),
    );
    r.register(
        "platform_view_sync_asks",
        "Certificate asks made point-to-point to catch up on views, by result",
        e.view_sync_asks.clone(),
    );
    r.register(
        "platform_asset_fetches",
        "Challenge assets fetched, by source (network, url) or failed",
        e.asset_fetches.clone(),
    );
    r.register(
        "platform_inputs_dropped",
        "Inputs (gossip, peers' data) a handler could not use and dropped, by input and reason",
        e.inputs_dropped.clone(),
    );
    r.register(
        "platform_epoch_close_module_waits",
        "Epoch closes that waited because a challenge module could not run here yet, by stage",
        e.module_waits.clone(),
    );
    r.register(
        "platform_consensus_notarized_bodies",
        "Bodies of notarized, not yet final blocks this validator lacked, by where they were \
         found (store, peer) or missing",
        e.notarized_bodies.clone(),
    );
    r.register(
        "platform_consensus_view_timeouts",
        "View timeouts the consensus engine handled",
        e.view_timeouts.clone(),
    );
    r.register(
        "platform_consensus_resends_on_connect",
        "Votes and certificates repeated at once because a validator connected while nothing \
         had finalized for a view timeout",
        e.resends_on_connect.clone(),
    );
    r.register(
        "platform_consensus_certificates",
        "Certificates formed or received, by kind (nullify: a view given up)",
        e.certificates.clone(),
    );
    r.register(
        "platform_consensus_equivocations",
        "Equivocations (conflicting votes of one validator) observed",
        e.equivocations.clone(),
    );
    r.register(
        "platform_weight_submissions",
        "Weight submissions to the chain, by result",
        e.weight_submissions.clone(),
    );
    r.register(
        "platform_weight_pending_commits",
        "Hash commits of weights waiting for their reveal window",
        e.pending_commits.clone(),
    );
    r.register_collector(Box::new(readings));
    r
}

/// Encodes `registry` as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// The same metrics in Prometheus's text format (version 0.0.4), for scrapers that do not ask
/// for OpenMetrics: a counter's `# HELP` and `# TYPE` name its samples (`x_total`), and the
/// OpenMetrics-only `# UNIT` and `# EOF` lines are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// How long the data directory's size is reused between scrapes (walking it costs I/O).
const DISK_EVERY: Duration = Duration::from_secs(30);

/// Values read at scrape time (see the module documentation).
#[derive(Debug)]
pub struct Readings {
    pub status: SharedStatus,
    pub network: Arc<platform_network::Metrics>,
    pub http: Arc<crate::http::HttpStats>,
    pub data_dir: PathBuf,
    disk: Mutex<Option<(Instant, u64)>>,
}

impl Readings {
    /// Readings of a node.
    pub fn new(
        status: SharedStatus,
        network: Arc<platform_network::Metrics>,
        http: Arc<crate::http::HttpStats>,
        data_dir: PathBuf,
    ) -> Readings {
        Readings {
            status,
            network,
            http,
            data_dir,
            disk: Mutex::new(None),
        }
    }

    fn data_dir_bytes(&self) -> u64 {
        let mut cached = self.disk.lock().expect("disk lock poisoned");
        match *cached {
            Some((at, bytes)) if at.elapsed() < DISK_EVERY => bytes,
            _ => {
                let bytes = dir_bytes(&self.data_dir);
                *cached = Some((Instant::now(), bytes));
                bytes
            }
        }
    }
}

/// Bytes of the files under `dir` (not following links).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// This process's resident memory in bytes and open file descriptors (Linux `/proc`).
fn process() -> (u64, u64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (rss, fds)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counters<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)> + 'a,
) -> std::fmt::Result {
    let mut family =
        e.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Readings {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = self.status.lock().expect("status lock poisoned").clone();
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut e,
            "platform_finalized_height",
            "The last finalized height",
            i(s.height),
        )?;
        gauge(
            &mut e,
            "platform_consensus_view",
            "The current consensus view",
            i(s.view),
        )?;
        gauge(&mut e, "platform_epoch", "The current epoch", i(s.epoch))?;
        gauge(
            &mut e,
            "platform_validator",
            "1 when this node holds a seat in the current validator set",
            i64::from(s.validator),
        )?;
        gauge(
            &mut e,
            "platform_peers",
            "Connected peers",
            i(s.peers as u64),
        )?;
        gauge(
            &mut e,
            "platform_partitioned",
            "1 while the validators heard from in the last 10 s hold less than two thirds of the stake",
            i64::from(s.partitioned),
        )?;
        gauge(
            &mut e,
            "platform_heard_stake_bps",
            "Share of the epoch's stake heard from in the last 10 s, basis points",
            i(s.heard_stake_bps),
        )?;
        gauge(
            &mut e,
            "platform_mempool_transactions",
            "Transactions waiting in the mempool",
            i(s.pending_transactions as u64),
        )?;
        gauge(
            &mut e,
            "platform_state_entries",
            "Entries in the replicated state",
            i(s.state_entries),
        )?;
        gauge(
            &mut e,
            "platform_snapshot_height",
            "Height of this node's newest snapshot (0: none)",
            i(s.snapshot_height.unwrap_or(0)),
        )?;
        if let Some(chain) = &s.chain {
            gauge(
                &mut e,
                "platform_chain_head",
                "The chain's head as last read",
                i(chain.head),
            )?;
            gauge(
                &mut e,
                "platform_chain_tempo",
                "Blocks per chain epoch of the subnet",
                i64::from(chain.tempo),
            )?;
            gauge(
                &mut e,
                "platform_chain_epoch_anchor_age_blocks",
                "Chain blocks since the block the current epoch is anchored on",
                i(chain.head.saturating_sub(s.epoch_chain_block)),
            )?;
        }
        gauge(
            &mut e,
            "platform_weights_submitted_epoch",
            "The newest epoch whose weights this validator submitted to the chain (-1: none)",
            s.weights_submitted_epoch.map_or(-1, i),
        )?;
        counter(
            &mut e,
            "platform_finalized_blocks",
            "Blocks finalized since this process started",
            s.finalized_since_start,
        )?;
        counter(
            &mut e,
            "platform_leader_views_skipped",
            "Views nullified at once because their leader had been silent for two view timeouts",
            s.leader_views_skipped,
        )?;
        counter(
            &mut e,
            "platform_consensus_signature_checks",
            "Signature checks by the consensus engine (votes one by one or in batches, certificates)",
            s.consensus_signature_checks,
        )?;
        counter(
            &mut e,
            "platform_evaluations",
            "Evaluations run as a committee member since this process started",
            s.evaluations,
        )?;
        let secs = ConstCounter::new(s.evaluation_ms as f64 / 1000.0);
        secs.encode(e.encode_descriptor(
            "platform_evaluation_seconds",
            "Time those evaluations took",
            None,
            secs.metric_type(),
        )?)?;
        counter(
            &mut e,
            "platform_blobs_collected",
            "Blobs deleted by garbage collection since this process started",
            s.blobs_collected,
        )?;
        counter(
            &mut e,
            "platform_state_pruned",
            "State records removed by epoch closes since genesis",
            s.state_pruned,
        )?;
        counter(
            &mut e,
            "platform_blocks_pruned",
            "Finalized blocks deleted behind the oldest kept snapshot",
            s.blocks_pruned,
        )?;

        let n = self.network.snapshot();
        counters(
            &mut e,
            "platform_network_accepted",
            "Messages and requests the network accepted, by channel",
            n.accepted
                .iter()
                .map(|(c, v)| (vec![("channel", c.clone())], *v)),
        )?;
        counters(
            &mut e,
            "platform_network_rejected",
            "Messages and requests the network refused, by channel and reason",
            n.rejected
                .iter()
                .map(|((c, r), v)| (vec![("channel", c.clone()), ("reason", r.clone())], *v)),
        )?;
        counters(
            &mut e,
            "platform_network_gossip_received_bytes",
            "Bytes of gossip messages received, by topic (accepted or not)",
            n.received_bytes
                .iter()
                .map(|(c, v)| (vec![("topic", c.clone())], *v)),
        )?;
        counter(
            &mut e,
            "platform_network_bans",
            "Peers banned since start",
            n.bans,
        )?;
        counter(
            &mut e,
            "platform_network_dropped",
            "Accepted messages dropped because the node was not keeping up",
            n.dropped_backpressure,
        )?;
        counter(
            &mut e,
            "platform_network_gossip_send_failures",
            "Gossip messages that could not be queued for a peer (its send queue was full)",
            n.gossip_send_failures,
        )?;
        counter(
            &mut e,
            "platform_network_stuck_links",
            "Peers disconnected and redialed because gossip to them stopped draining",
            n.stuck_links,
        )?;
        counter(
            &mut e,
            "platform_network_direct_sent",
            "Consensus messages sent to one validator (finalize votes to their collectors)",
            n.direct_sent,
        )?;
        counter(
            &mut e,
            "platform_network_signature_checks",
            "sr25519 signatures verified on ingress",
            n.signature_checks,
        )?;
        gauge(
            &mut e,
            "platform_dht_provided_keys",
            "Keys this node provides in the DHT",
            i(n.dht.provided as u64),
        )?;
        gauge(
            &mut e,
            "platform_dht_provider_records",
            "Other peers' provider records this node stores",
            i(n.dht.remote as u64),
        )?;
        counters(
            &mut e,
            "platform_dht_evicted",
            "Provider records evicted from the bounded store, by whose",
            [
                (vec![("whose", "own".to_string())], n.dht.evicted_own),
                (vec![("whose", "remote".to_string())], n.dht.evicted_remote),
            ],
        )?;
        counter(
            &mut e,
            "platform_dht_expired",
            "Provider records expired",
            n.dht.expired,
        )?;

        counters(
            &mut e,
            "platform_http_refused",
            "Connections and requests the API listener refused, by reason",
            crate::http::Refusal::ALL.iter().map(|r| {
                (
                    vec![("reason", r.label().to_string())],
                    self.http.refused(*r),
                )
            }),
        )?;
        gauge(
            &mut e,
            "platform_http_connections",
            "Open API connections",
            i(self.http.connections()),
        )?;

        let (rss, fds) = process();
        gauge(
            &mut e,
            "platform_process_resident_memory_bytes",
            "Resident memory of this process",
            i(rss),
        )?;
        gauge(
            &mut e,
            "platform_process_open_fds",
            "Open file descriptors of this process",
            i(fds),
        )?;
        gauge(
            &mut e,
            "platform_data_dir_bytes",
            "Bytes of the files in the data directory (read at most every 30 s)",
            i(self.data_dir_bytes()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_renamed_for_the_prometheus_text_format() {
        let om = "# HELP a_x Things.\n# TYPE a_x counter\na_x_total{k=\"v\"} 3\n\
                  # HELP b Level.\n# TYPE b gauge\n# UNIT b bytes\nb 4\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_x_total Things.\n# TYPE a_x_total counter\na_x_total{k=\"v\"} 3\n\
             # HELP b Level.\n# TYPE b gauge\nb 4\n"
        );
    }

    #[test]
    fn a_registry_encodes_events_and_readings() {
        let status: SharedStatus = Arc::default();
        status.lock().unwrap().height = 7;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), [0u8; 100]).unwrap();
        let r = registry(Readings::new(
            status,
            Arc::default(),
            Arc::default(),
            dir.path().to_path_buf(),
        ));
        events().offered("api", "admitted");
        let text = encode(&r);
        assert!(text.contains("platform_finalized_height 7\n"), "{text}");
        assert!(text.contains("platform_data_dir_bytes 100\n"), "{text}");
        assert!(
            text.contains("platform_mempool_offers_total{source=\"api\",result=\"admitted\"}"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
