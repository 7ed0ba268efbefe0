//! The node's TOML configuration (`config.toml` in the data directory).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What `platform run --config FILE` reads. Relative paths are relative to the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The data directory (keys, database, blobs, audit log). Default: the config's folder.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The validator's hotkey: a keystore name in the data directory, a wallet hotkey file, or
    /// (dev networks only) a dev URI such as `//Alice`.
    pub hotkey: String,
    /// libp2p listen address. Default `/ip4/127.0.0.1/tcp/0`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Peers to dial at start: `/ip4/…/tcp/…/p2p/<peer id>`.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// HTTP API address. Default `127.0.0.1:8080`.
    #[serde(default = "default_http")]
    pub http: String,
    /// The operator listener: `POST /api/v1/transactions` for any transaction, with the
    /// operator token. Keep it off public interfaces. Default `127.0.0.1:0` (a free port; the
    /// address the node bound is written to `operator.addr` in the data directory).
    #[serde(default = "default_operator_http")]
    pub operator_http: String,
    /// The genesis file (Borsh-encoded `Genesis`, identical on every validator). Default
    /// `genesis.bin` in the data directory.
    #[serde(default)]
    pub genesis: Option<PathBuf>,
    /// The chain the subnet lives on: a LocalChain URL (`http://127.0.0.1:9944`, from
    /// `platform localchain`). Epochs follow its tempo and each epoch's weights are submitted
    /// to it. Without a chain the network stays in its genesis epoch and submits nothing.
    #[serde(default)]
    pub chain: Option<String>,
    /// A network launched from the chain (LocalChain): the subnet, and the chain block its
    /// genesis is derived at (`platform genesis`). At start the node publishes its peer record
    /// (key binding and listen address) as its commitment on the subnet, derives the genesis
    /// once the chain reaches `genesis_block` (unless the genesis file exists), and dials the
    /// validators whose records the chain holds, again as they change: no genesis file to
    /// pass around and no bootstrap list. Both unset: the genesis file and `bootstrap`.
    #[serde(default)]
    pub netuid: Option<u16>,
    /// See `netuid`.
    #[serde(default)]
    pub genesis_block: Option<u64>,
    /// A deliberate fault, for tests and demonstrations only: `"wrong-scores"` makes this
    /// validator attest forged results as a committee member (the others out-vote it, report
    /// the contradiction as evidence, and the state jails it); `"nullify-closes"` makes
    /// it time out in each epoch's close view right after notarizing the close, so that it
    /// cannot finalize it (the close is then finalized through a seal when the others are no
    /// quorum alone); `"withhold-attestations"` makes it evaluate nothing as a committee
    /// member (the state replaces it in each committee once the attestation time is up);
    /// `"poison-anchors"` makes it gossip forged epoch anchors (peers refuse them at ingress);
    /// `"flood-announces"` makes it announce made-up blocks for views it does not lead;
    /// `"stall-weights"` makes its first runs of modules' `weights` exports report "cannot run
    /// here yet", as over the wall-clock backstop (it waits and retries; it neither refuses
    /// the close nor stops); `"garbage-gossip"` makes it gossip well-formed messages that mean
    /// nothing on every topic (peers count, drop and penalize them); `"flood-fetches"` makes it
    /// send 128 certificate requests point-to-point and 256 `Fetch`/`FetchView` asks on
    /// gossip per tick (peers rate-limit the first and refuse the second); `"ignore-announces"`
    /// makes it drop every block announcement, as a validator whose announcements are all
    /// lost would (it fetches the blocks it must verify from validators). Only builds with the
    /// `test-faults` feature accept one. Default: none.
    #[serde(default)]
    pub fault: Option<String>,
    /// How challenge modules are compiled, set by the program that runs the node (not read
    /// from config.toml): the `platform` binary compiles in a child process under CPU, memory
    /// and wall-clock limits, since a module is code the validator did not write. `None`
    /// compiles in this process (tests of the node library).
    #[serde(skip)]
    pub compiler: Option<platform_runtime::Compiler>,
    /// Milliseconds a leader waits after the last finalization before it proposes. Default 1000.
    /// Blocks can come faster than one per interval: a leader may propose on a block that is
    /// notarized but not yet final.
    #[serde(default = "default_block_ms")]
    pub block_interval_ms: u64,
    /// Base consensus view timeout in milliseconds (doubles over consecutive failed views).
    /// Default 4000.
    #[serde(default = "default_timeout_ms")]
    pub view_timeout_ms: u64,
    /// Most pending transactions. Default 50,000.
    #[serde(default = "default_mempool")]
    pub mempool_capacity: usize,
    /// Most pending transactions of one sender (miner, owner, validator). Default 256.
    #[serde(default = "default_per_sender")]
    pub mempool_per_sender: usize,
    /// Whether a validator that missed epoch closes starts from a peer's snapshot (checked
    /// against its chain client and the validators' keys it knows). When `false`, or when a
    /// snapshot is refused, it replays the certified blocks it missed, epoch by epoch.
    /// Default `true`.
    #[serde(default = "default_true")]
    pub snapshot_catch_up: bool,
    /// The DHT's provider records (announcements of miners' payloads and challenge modules).
    #[serde(default)]
    pub dht: DhtConfig,
    /// libp2p connection admission (`platform_network::admission`).
    #[serde(default)]
    pub p2p: P2pConfig,
    /// How long blobs the validator no longer needs are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// The HTTP API listener's limits (connections, timeouts, per-address rates).
    #[serde(default)]
    pub http_limits: crate::http::HttpLimits,
    /// The threads that run challenge code.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
}

/// `[p2p]`: who gets one of the node's libp2p connection slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// Most established connections; one per validator of the epoch (at most half) is kept
    /// for validators. Default 256.
    pub max_connections: u32,
    /// Most inbound connections of non-validators from one IP address (loopback excepted).
    /// Default 8.
    pub max_per_ip: u32,
    /// Seconds a connected peer has to bind a hotkey before it is disconnected. Default 10.
    pub bind_deadline_secs: u64,
}

impl Default for P2pConfig {
    fn default() -> Self {
        let d = platform_network::Config::new(platform_primitives::NetUid(0));
        P2pConfig {
            max_connections: d.max_connections,
            max_per_ip: d.max_per_ip,
            bind_deadline_secs: d.bind_deadline.as_secs(),
        }
    }
}

/// `[evaluation]`: the threads that run challenge code (`platform_node::eval_threads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// Evaluations run at once (at least 1). Default 2.
    pub workers: usize,
    /// The nice value of the evaluation threads (0 = the node's own priority, 19 = lowest):
    /// consensus, the network and the API get the CPU before challenge code does. Default 10.
    pub nice: u8,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig {
            workers: 2,
            nice: 10,
        }
    }
}

/// `[retention]`: when blobs are collected (see `platform_node::collect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Epochs a settled submission's payload is kept after the epoch that ordered it.
    /// Default 2.
    pub payload_epochs: u64,
    /// Finalized heights a block's blob is kept (the block stays in the database until
    /// a snapshot passes it). Default 256.
    pub block_depth: u64,
    /// Finalized heights the payload of a submission this validator's API admitted is kept
    /// while it is neither pending nor ordered. Default 256.
    pub unordered_depth: u64,
    /// Snapshots kept (at least 1). Default 2.
    pub snapshots: usize,
    /// Keep every finalized block in the database, for peers that catch up without
    /// snapshots and for history. Default `false`: blocks at or below the oldest kept
    /// snapshot are deleted when a newer snapshot is stored.
    pub archive: bool,
    /// Size in KiB of the chunks snapshots are stored and served in (4 to 8,192). A snapshot
    /// of any size moves between validators chunk by chunk. Default 8192 (8 MiB).
    pub snapshot_chunk_kib: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let d = crate::collect::Retention::default();
        RetentionConfig {
            payload_epochs: d.payload_epochs,
            block_depth: d.block_depth,
            unordered_depth: d.unordered_depth,
            snapshots: d.snapshots,
            archive: d.archive,
            snapshot_chunk_kib: (d.snapshot_chunk_bytes / 1024) as u32,
        }
    }
}

impl RetentionConfig {
    /// The collector's settings.
    pub fn get(&self) -> crate::collect::Retention {
        crate::collect::Retention {
            payload_epochs: self.payload_epochs,
            block_depth: self.block_depth,
            unordered_depth: self.unordered_depth,
            snapshots: self.snapshots,
            archive: self.archive,
            snapshot_chunk_bytes: (self.snapshot_chunk_kib as usize * 1024).clamp(
                crate::snapshots::MIN_CHUNK_BYTES,
                crate::snapshots::MAX_CHUNK_BYTES,
            ),
        }
    }
}

/// `[dht]`: limits of the provider store. Blocks and snapshots never use the DHT; these bound
/// the announcements of payloads and modules however long the network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhtConfig {
    /// Most blobs this validator announces at once; past it the oldest announcement is
    /// withdrawn. Default 16,384.
    pub max_provided: usize,
    /// Most provider records of other peers kept; past it expired ones go first, then those
    /// closest to expiry. Default 65,536.
    pub max_remote: usize,
    /// How long another peer's record lives without being re-announced, in seconds.
    /// Default 3,600.
    pub record_ttl_secs: u64,
    /// How often this validator re-announces its records, in seconds (well under the TTL).
    /// Default 600.
    pub republish_secs: u64,
}

impl Default for DhtConfig {
    fn default() -> Self {
        let d = platform_network::ProviderLimits::default();
        DhtConfig {
            max_provided: d.max_provided,
            max_remote: d.max_remote,
            record_ttl_secs: d.record_ttl.as_secs(),
            republish_secs: d.republish.as_secs(),
        }
    }
}

impl DhtConfig {
    /// The network's limits.
    pub fn limits(&self) -> platform_network::ProviderLimits {
        platform_network::ProviderLimits {
            max_provided: self.max_provided,
            max_remote: self.max_remote,
            record_ttl: std::time::Duration::from_secs(self.record_ttl_secs),
            republish: std::time::Duration::from_secs(self.republish_secs),
            ..Default::default()
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_mempool() -> usize {
    50_000
}

fn default_per_sender() -> usize {
    256
}

fn default_listen() -> String {
    "/ip4/127.0.0.1/tcp/0".into()
}

fn default_http() -> String {
    "127.0.0.1:8080".into()
}

fn default_operator_http() -> String {
    "127.0.0.1:0".into()
}

fn default_block_ms() -> u64 {
    1000
}

fn default_timeout_ms() -> u64 {
    4000
}

/// A deliberate fault, for tests and demonstrations of what the network does about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Attest a result with a forged output (a wrong score) instead of the real one.
    WrongScores,
    /// Time out in the view of each epoch's close right after notarizing it, as a validator
    /// would whose timer fires before the notarization reaches it: having nullified the view,
    /// it may not finalize the close. When the others are no quorum without it, only a seal
    /// can finalize the close.
    NullifyCloses,
    /// Sit on committees but never evaluate or attest, as a validator whose evaluations are
    /// down would: its committees are completed by replacements.
    WithholdAttestations,
    /// Gossip a forged `EpochAnchor` (a metagraph of its own making) every tick, as a
    /// Byzantine validator trying to get honest leaders to put it in their blocks would. Peers
    /// refuse it at ingress (`epoch_transaction`) and it never reaches a mempool.
    PoisonAnchors,
    /// Announce made-up blocks for views this validator does not lead (and a second block for
    /// the views it does) every tick, as a Byzantine validator trying to make its peers fetch
    /// junk would. Peers follow one announcement per view, from its leader only.
    FloodAnnounces,
    /// Gossip, every tick, messages on every topic that pass the network's checks and mean
    /// nothing (a vote for a proposal nobody made, a submission no miner signed, an
    /// attestation of a submission nobody made), as a Byzantine validator probing its peers'
    /// handlers would. Peers count and drop them, penalize it, and go on.
    GarbageGossip,
    /// Send 128 certificate requests point-to-point and 256 asks on gossip per tick
    /// (`FetchView` for decided views, `Fetch` for digests nobody proposed), as a Byzantine
    /// validator trying to make its peers answer certificates without end would. Peers
    /// rate-limit the requests, refuse the gossiped asks, and go on.
    FloodFetches,
    /// Report the first [`STALLED_WEIGHT_RUNS`] runs of a module's `weights` export as unable
    /// to run here, as a validator whose runs hit the wall-clock backstop would: it must wait
    /// for the module and retry, never refuse the close or stop.
    StallWeights,
    /// Drop every block announcement, as a validator whose announcements are all lost would:
    /// it learns of a block only from the certificates on it, and must fetch the blocks it
    /// verifies, builds on or applies from validators.
    IgnoreAnnouncements,
}

/// How many `weights` runs [`Fault::StallWeights`] reports as unavailable.
pub const STALLED_WEIGHT_RUNS: u32 = 4;

impl NodeConfig {
    /// A configuration with defaults for everything but the hotkey.
    pub fn new(hotkey: &str) -> NodeConfig {
        NodeConfig {
            data_dir: None,
            hotkey: hotkey.into(),
            listen: default_listen(),
            bootstrap: Vec::new(),
            http: default_http(),
            operator_http: default_operator_http(),
            genesis: None,
            chain: None,
            netuid: None,
            genesis_block: None,
            fault: None,
            compiler: None,
            block_interval_ms: default_block_ms(),
            view_timeout_ms: default_timeout_ms(),
            mempool_capacity: default_mempool(),
            mempool_per_sender: default_per_sender(),
            snapshot_catch_up: true,
            dht: DhtConfig::default(),
            p2p: P2pConfig::default(),
            retention: RetentionConfig::default(),
            http_limits: crate::http::HttpLimits::default(),
            evaluation: EvaluationConfig::default(),
        }
    }

    /// Reads and checks a configuration file; resolves relative paths against its folder.
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        // The parser's own message quotes the offending line, which may hold a secret: name
        // the line and the problem only.
        let mut cfg: NodeConfig = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            anyhow::anyhow!(
                "config {} is invalid at line {line}: {}",
                path.display(),
                e.message()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Option<PathBuf>, default: &str| -> PathBuf {
            match p {
                Some(p) if p.is_absolute() => p.clone(),
                Some(p) => base.join(p),
                None => base.join(default),
            }
        };
        let data_dir = resolve(&cfg.data_dir, ".");
        cfg.genesis = Some(match &cfg.genesis {
            Some(_) => resolve(&cfg.genesis, ""),
            None => data_dir.join("genesis.bin"),
        });
        cfg.data_dir = Some(data_dir);
        cfg.fault()
            .with_context(|| format!("config {}", path.display()))?;
        if cfg.view_timeout_ms <= cfg.block_interval_ms {
            anyhow::bail!(
                "config {}: view_timeout_ms ({}) must exceed block_interval_ms ({}), or every \
                 view would time out before its block is built",
                path.display(),
                cfg.view_timeout_ms,
                cfg.block_interval_ms
            );
        }
        cfg.http_limits
            .check()
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        if cfg.retention.snapshots == 0 {
            anyhow::bail!(
                "config {}: [retention] snapshots must be at least 1 (a restart starts from the \
                 newest one)",
                path.display()
            );
        }
        let kib = cfg.retention.snapshot_chunk_kib as usize;
        if !(crate::snapshots::MIN_CHUNK_BYTES / 1024..=crate::snapshots::MAX_CHUNK_BYTES / 1024)
            .contains(&kib)
        {
            anyhow::bail!(
                "config {}: [retention] snapshot_chunk_kib must be 4 to 8192 (is {kib})",
                path.display()
            );
        }
        let p2p = cfg.p2p;
        if p2p.max_connections < 8 || p2p.max_per_ip == 0 || p2p.bind_deadline_secs == 0 {
            anyhow::bail!(
                "config {}: [p2p] max_connections must be at least 8 (is {}), max_per_ip and \
                 bind_deadline_secs positive (are {} and {})",
                path.display(),
                p2p.max_connections,
                p2p.max_per_ip,
                p2p.bind_deadline_secs
            );
        }
        let evaluation = cfg.evaluation;
        if evaluation.workers == 0 || evaluation.workers > 64 || evaluation.nice > 19 {
            anyhow::bail!(
                "config {}: [evaluation] workers must be 1 to 64 (is {}) and nice 0 to 19 (is {})",
                path.display(),
                evaluation.workers,
                evaluation.nice
            );
        }
        let dht = cfg.dht;
        if dht.max_provided == 0 || dht.max_remote == 0 || dht.republish_secs == 0 {
            anyhow::bail!(
                "config {}: [dht] max_provided, max_remote and republish_secs must be positive",
                path.display()
            );
        }
        if dht.republish_secs * 2 > dht.record_ttl_secs {
            anyhow::bail!(
                "config {}: [dht] republish_secs ({}) must be at most half of record_ttl_secs \
                 ({}), or peers forget this validator's records between announcements",
                path.display(),
                dht.republish_secs,
                dht.record_ttl_secs
            );
        }
        Ok(cfg)
    }

    /// Writes the configuration as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).context("serializing the config")?;
        // Owner-only: it names the validator's key and its operator settings.
        platform_storage::write_atomic(path, text.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The configured fault, if any. Builds without the `test-faults` feature (release builds)
    /// refuse every fault: a production validator cannot be configured to misbehave.
    pub fn fault(&self) -> Result<Option<Fault>> {
        if let Some(name) = &self.fault
            && !cfg!(feature = "test-faults")
        {
            anyhow::bail!(
                "fault = {name:?}: deliberate faults exist only in builds with the `test-faults` \
                 feature (the test suite's); remove it from config.toml"
            );
        }
        match self.fault.as_deref() {
            None => Ok(None),
            Some("wrong-scores") => Ok(Some(Fault::WrongScores)),
            Some("nullify-closes") => Ok(Some(Fault::NullifyCloses)),
            Some("withhold-attestations") => Ok(Some(Fault::WithholdAttestations)),
            Some("poison-anchors") => Ok(Some(Fault::PoisonAnchors)),
            Some("flood-announces") => Ok(Some(Fault::FloodAnnounces)),
            Some("stall-weights") => Ok(Some(Fault::StallWeights)),
            Some("garbage-gossip") => Ok(Some(Fault::GarbageGossip)),
            Some("flood-fetches") => Ok(Some(Fault::FloodFetches)),
            Some("ignore-announces") => Ok(Some(Fault::IgnoreAnnouncements)),
            Some(other) => anyhow::bail!(
                "unknown fault {other:?} (known: \"wrong-scores\", \"nullify-closes\", \
                 \"withhold-attestations\", \"poison-anchors\", \"flood-announces\", \
                 \"stall-weights\", \"garbage-gossip\", \"flood-fetches\", \
                 \"ignore-announces\")"
            ),
        }
    }

    /// The data directory (after [`NodeConfig::load`]).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().unwrap_or(Path::new("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut cfg = NodeConfig::new("//Alice");
        cfg.bootstrap = vec!["/ip4/127.0.0.1/tcp/1/p2p/x".into()];
        cfg.save(&path).unwrap();
        let back = NodeConfig::load(&path).unwrap();
        assert_eq!(back.hotkey, "//Alice");
        assert_eq!(back.data_dir(), dir.path().join("."));
        assert_eq!(back.genesis, Some(dir.path().join("./genesis.bin")));
        assert_eq!(back.bootstrap, cfg.bootstrap);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "hotkey = \"//Alice\"\nlisten_port = 3\n").unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("listen_port"), "{err}");
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\nblock_interval_ms = 500\nview_timeout_ms = 400\n",
        )
        .unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("must exceed"), "{err}");
    }

    #[test]
    fn dht_limits_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\n[dht]\nmax_provided = 8\nrecord_ttl_secs = 100\n\
             republish_secs = 50\n",
        )
        .unwrap();
        let limits = NodeConfig::load(&path).unwrap().dht.limits();
        assert_eq!(limits.max_provided, 8);
        assert_eq!(limits.max_remote, DhtConfig::default().max_remote);
        assert_eq!(limits.republish, std::time::Duration::from_secs(50));
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\n[dht]\nrecord_ttl_secs = 100\nrepublish_secs = 60\n",
        )
        .unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("at most half"), "{err}");
    }

    #[test]
    fn a_parse_error_names_the_line_but_never_quotes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let secret = "0xdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
        std::fs::write(&path, format!("listen = \"x\"\nhotkey = \"{secret}\n")).unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("line 2"), "{err}");
        assert!(
            !err.contains("deadbeef"),
            "the error repeats the secret: {err}"
        );
    }

    #[test]
    fn retention_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let cfg = NodeConfig::load(&{
            std::fs::write(&path, "hotkey = \"//Alice\"\n").unwrap();
            path.clone()
        })
        .unwrap();
        assert_eq!(cfg.retention.get(), crate::collect::Retention::default());
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\n[retention]\nsnapshots = 4\narchive = true\n",
        )
        .unwrap();
        let r = NodeConfig::load(&path).unwrap().retention.get();
        assert_eq!((r.snapshots, r.archive), (4, true));
        std::fs::write(&path, "hotkey = \"//Alice\"\n[retention]\nsnapshots = 0\n").unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("snapshots must be at least 1"), "{err}");
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\n[retention]\nsnapshot_chunk_kib = 16\n",
        )
        .unwrap();
        let r = NodeConfig::load(&path).unwrap().retention.get();
        assert_eq!(r.snapshot_chunk_bytes, 16 * 1024);
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\n[retention]\nsnapshot_chunk_kib = 1\n",
        )
        .unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(
            err.contains("snapshot_chunk_kib must be 4 to 8192"),
            "{err}"
        );
    }

    #[test]
    fn p2p_and_evaluation_sections_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "hotkey = \"//Alice\"\n[p2p]\nmax_connections = 64\nmax_per_ip = 2\n\
             bind_deadline_secs = 5\n[evaluation]\nworkers = 4\nnice = 0\n",
        )
        .unwrap();
        let cfg = NodeConfig::load(&path).unwrap();
        assert_eq!(
            cfg.p2p,
            P2pConfig {
                max_connections: 64,
                max_per_ip: 2,
                bind_deadline_secs: 5
            }
        );
        assert_eq!(
            cfg.evaluation,
            EvaluationConfig {
                workers: 4,
                nice: 0
            }
        );
        for (section, want) in [
            (
                "[p2p]\nmax_per_ip = 0\n",
                "[p2p] max_connections must be at least 8",
            ),
            (
                "[p2p]\nmax_connections = 4\n",
                "[p2p] max_connections must be at least 8",
            ),
            (
                "[evaluation]\nnice = 20\n",
                "[evaluation] workers must be 1 to 64",
            ),
            (
                "[evaluation]\nworkers = 0\n",
                "[evaluation] workers must be 1 to 64",
            ),
        ] {
            std::fs::write(&path, format!("hotkey = \"//Alice\"\n{section}")).unwrap();
            let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
            assert!(err.contains(want), "{section}: {err}");
        }
    }
}
