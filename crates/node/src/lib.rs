//! The Platform validator node: the composition of the pure parts (consensus engine, state
//! machine) with the network, storage, the wasm runtime and the chain, and everything a
//! validator process does with them (`platform run`).
//!
//! What lives where:
//!
//! - [`driver`]: the consensus driver — the one task that owns the engine, the canonical state
//!   and the forks being voted on; builds, verifies, applies and persists blocks, switches
//!   epochs, catches up.
//! - [`error`]: the error boundary — bad input from peers is dropped and counted, only this
//!   node's own failures stop it.
//! - [`wal`], [`store`], [`snapshots`], [`collect`]: what is persisted (the consensus WAL,
//!   finalized blocks, snapshots) and what is collected again.
//! - [`mempool`]: admission of transactions (the state's own rule) and the one
//!   admit-and-publish path of a validator's own transactions.
//! - [`evaluator`], [`eval_threads`]: committee evaluations on dedicated low-priority threads,
//!   attestations and certificates.
//! - [`weights_host`](mod@weights_host): runs challenge modules' `weights` exports at epoch close for the state.
//! - [`chain_watch`]: reads the chain's epochs and metagraphs; [`weights_submitter`]: writes
//!   this validator's weights to the chain (the only writer).
//! - [`api`], [`http`], [`rpc`], [`views`], [`metrics`], [`dashboard`], [`token`]: the HTTP API,
//!   its listener and limits, JSON-RPC, the read models they share, Prometheus metrics, the web
//!   dashboard and the operator token.
//! - [`config`], [`genesis`], [`liveness`], [`replay`], [`workload`]: configuration, genesis
//!   files, peer liveness, offline replay, benchmark workloads.
//!
//! It never decides what the state machine decides (admission and block validity are
//! `platform-state`'s rules), never signs anything the consensus safety rules have not allowed,
//! and never blocks the async runtime's workers with module runs, state execution or disk I/O.

pub mod api;
pub mod assets;
pub mod chain_watch;
pub mod collect;
pub mod config;
pub mod core;
pub mod dashboard;
pub mod driver;
pub mod error;
pub mod eval_threads;
pub mod evaluator;
pub mod genesis;
pub mod http;
pub mod launch;
pub mod liveness;
pub mod mempool;
pub mod metrics;
pub mod ports;
pub mod replay;
pub mod rpc;
pub mod snapshots;
pub mod store;
pub mod token;
pub mod views;
pub mod wal;
pub mod weights_host;
pub mod weights_submitter;
pub mod workload;

/// Where a running node writes its operator listener's address (`http://ip:port`), in its data
/// directory.
pub const OPERATOR_ADDR_FILE: &str = "operator.addr";

/// Where a running node writes its HTTP API's bound address (`http://ip:port`), in its data
/// directory: the way to find an API configured on port 0.
pub const API_ADDR_FILE: &str = "api.addr";

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use platform_crypto::Keypair;
use platform_network::{Config as NetConfig, Network, Provider, SnapshotInfo};
use platform_primitives::{NetUid, encode};
use platform_storage::DataDir;

pub use config::NodeConfig;
pub use driver::{SharedStatus, Status};
pub use weights_host::{RuntimeWeights, weights_host};

/// Serves finalized blocks from the database to peers that sync, and the consensus
/// certificates the driver keeps to validators that ask.
struct FinalizedBlocks(Arc<DataDir>, Arc<driver::CertificateBook>);

impl Provider for FinalizedBlocks {
    fn blocks(&self, from: u64, to: u64, max_bytes: usize) -> Vec<Vec<u8>> {
        let Ok(found) = store::finalized_range(self.0.db(), from, to) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut size = 0;
        for (i, f) in found.into_iter().enumerate() {
            if f.proposal.height.0 != from + i as u64 {
                break;
            }
            let bytes = encode(&f);
            size += bytes.len();
            if size > max_bytes {
                break;
            }
            out.push(bytes);
        }
        out
    }

    fn latest_snapshot(&self) -> Option<SnapshotInfo> {
        let (height, record) = snapshots::latest(self.0.db()).ok()??;
        Some(SnapshotInfo {
            height,
            blob: record.blob,
            certificate: encode(&record.proof),
        })
    }

    fn certificates(&self, ask: platform_network::CertificateAsk) -> Vec<Vec<u8>> {
        self.1.answer(ask)
    }

    fn unfinalized_block(&self, height: u64, header: platform_primitives::Hash) -> Option<Vec<u8>> {
        let blob = store::unfinalized_blob(self.0.db(), height, &header).ok()??;
        self.0
            .blobs()
            .get(&blob, platform_state::MAX_BLOCK_BYTES as u64)
            .ok()?
    }
}

/// The validator's module loader: the configured compiler, filling the data directory's
/// artifact cache (`compiled/`), so that a restart does not compile again.
fn module_loader(cfg: &NodeConfig) -> Result<platform_runtime::ModuleLoader> {
    let cache = platform_runtime::ArtifactCache::open(&cfg.data_dir().join("compiled"))
        .map_err(|e| anyhow::anyhow!("opening the compiled-module cache: {e}"))?;
    Ok(platform_runtime::ModuleLoader::new(
        cfg.compiler
            .clone()
            .unwrap_or(platform_runtime::Compiler::InProcess),
        Some(Arc::new(cache)),
    ))
}

/// Runs a validator until `stop` resolves.
pub async fn run(
    cfg: NodeConfig,
    key: Keypair,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let dir = Arc::new(
        DataDir::open(cfg.data_dir())
            .with_context(|| format!("opening data directory {}", cfg.data_dir().display()))?,
    );
    let genesis_path = cfg.genesis.clone().context("no genesis file configured")?;
    // A network launched from the chain derives its genesis there (once; then the file).
    let launch = match (cfg.netuid, cfg.genesis_block) {
        (Some(netuid), Some(block)) => Some((NetUid(netuid), block)),
        (None, None) => None,
        _ => bail!("config: `netuid` and `genesis_block` go together"),
    };
    let file_genesis = if launch.is_none() || genesis_path.exists() {
        Some(genesis::load(&genesis_path)?)
    } else {
        None
    };
    if let (Some(g), Some((netuid, block))) = (&file_genesis, launch)
        && (g.netuid != netuid || g.chain_block != block)
    {
        bail!(
            "genesis {} is of subnet {} at chain block {}, but the config launches subnet {} \
             at block {block}",
            genesis_path.display(),
            g.netuid.0,
            g.chain_block,
            netuid.0
        );
    }
    let netuid = match (&file_genesis, launch) {
        (Some(g), _) => g.netuid,
        (None, Some((netuid, _))) => netuid,
        (None, None) => unreachable!("without a launch the genesis file was loaded"),
    };

    let mut net_cfg = NetConfig::new(netuid);
    net_cfg.listen = cfg
        .listen
        .parse()
        .with_context(|| format!("listen address {}", cfg.listen))?;
    net_cfg.bootstrap = cfg
        .bootstrap
        .iter()
        .map(|a| a.parse().with_context(|| format!("bootstrap address {a}")))
        .collect::<Result<_>>()?;
    net_cfg.providers = cfg.dht.limits();
    net_cfg.max_connections = cfg.p2p.max_connections;
    net_cfg.max_per_ip = cfg.p2p.max_per_ip;
    net_cfg.bind_deadline = Duration::from_secs(cfg.p2p.bind_deadline_secs);
    for (topic, check) in driver::payload_checks() {
        if let Some(spec) = net_cfg.topics.get_mut(&topic) {
            spec.check = Some(check);
        }
    }
    // Attestations carry the evaluation's result (output and KV writes).
    if let Some(spec) = net_cfg
        .topics
        .get_mut(&platform_network::Topic::Attestations)
    {
        spec.max_bytes = evaluator::MAX_ATTESTATION_BYTES + 1024;
    }
    let hotkey = key.hotkey();
    if let Some(fault) = cfg.fault()? {
        tracing::warn!("this validator runs with a deliberate fault: {fault:?}");
    }
    let certificates = Arc::new(driver::CertificateBook::default());
    let (net, events) = Network::start(
        net_cfg,
        Keypair::from_seed(key.seed().context("the hotkey has no seed")?),
        dir.clone(),
        Arc::new(FinalizedBlocks(dir.clone(), certificates.clone())),
    )
    .await?;
    tracing::info!(%hotkey, addr = %net.addr(), "network up");

    let mut stop = std::pin::pin!(stop);
    let genesis = match (file_genesis, launch) {
        (Some(g), None) => g,
        (file, Some((netuid, block))) => {
            let url = cfg
                .chain
                .as_deref()
                .context("config: a network launched from the chain needs `chain`")?;
            let chain = chain_watch::connect(url)
                .await
                .with_context(|| format!("connecting to chain {url}"))?;
            launch::publish_record(&chain, &key, netuid, &net).await?;
            let genesis = match file {
                Some(g) => g,
                None => {
                    let derived = tokio::select! {
                        g = launch::genesis_at(&chain, netuid, block) => g?,
                        () = stop.as_mut() => {
                            net.shutdown().await.ok();
                            return Ok(());
                        }
                    };
                    genesis::save(&derived, &genesis_path)?;
                    derived
                }
            };
            let own = Keypair::from_seed(key.seed().context("the hotkey has no seed")?);
            launch::spawn_discovery(chain, own, netuid, net.clone());
            genesis
        }
        (None, None) => unreachable!("without a launch the genesis file was loaded"),
    };

    let chain = match &cfg.chain {
        Some(url) => {
            let client = chain_watch::connect(url)
                .await
                .with_context(|| format!("connecting to chain {url}"))?;
            let watch = Arc::new(chain_watch::ChainWatch::new(genesis.netuid.0, client));
            // Fail early on a chain that does not know the subnet.
            watch
                .poll()
                .await
                .with_context(|| format!("reading subnet {} from chain {url}", genesis.netuid.0))?;
            let submitter = weights_submitter::WeightSubmitter::start(
                Arc::new(Keypair::from_seed(
                    key.seed().context("the hotkey has no seed")?,
                )),
                watch.clone(),
                dir.clone(),
                genesis.netuid.0,
            )?;
            tracing::info!(%url, "chain connected");
            Some(driver::ChainLink { watch, submitter })
        }
        None => {
            tracing::info!("no chain configured: the network stays in its genesis epoch");
            None
        }
    };
    let chain_client = chain.as_ref().map(|c| c.watch.client().clone());
    let status: SharedStatus = Arc::new(Mutex::new(Status::default()));
    let driver = driver::Driver::new(
        key,
        &genesis,
        dir.clone(),
        (net.clone(), certificates),
        (
            Duration::from_millis(cfg.block_interval_ms),
            Duration::from_millis(cfg.view_timeout_ms),
        ),
        status.clone(),
        mempool::Mempool::new(cfg.mempool_capacity, cfg.mempool_per_sender),
        chain,
        cfg.fault()?,
        (
            module_loader(&cfg)?,
            eval_threads::EvalThreads::start(cfg.evaluation.workers, cfg.evaluation.nice)
                .context("starting the evaluation threads")?,
        ),
    )?
    .with_snapshot_catch_up(cfg.snapshot_catch_up)
    .with_retention(cfg.retention.get());
    let listener = tokio::net::TcpListener::bind(&cfg.http)
        .await
        .with_context(|| format!("binding the HTTP API to {}", cfg.http))?;
    let api_addr = listener.local_addr()?;
    platform_storage::write_atomic(
        &cfg.data_dir().join(API_ADDR_FILE),
        format!("http://{api_addr}\n").as_bytes(),
        0o644,
    )
    .context("writing api.addr")?;
    tracing::info!("HTTP API on http://{api_addr}");
    let token = token::load_or_create(cfg.data_dir())?;
    let stats = Arc::new(http::HttpStats::default());
    // Ends the JSON-RPC WebSocket sessions when the node stops.
    let (rpc_stop, rpc_sessions) = jsonrpsee::server::stop_channel();
    let operator_listener = tokio::net::TcpListener::bind(&cfg.operator_http)
        .await
        .with_context(|| format!("binding the operator listener to {}", cfg.operator_http))?;
    let operator_addr = operator_listener.local_addr()?;
    platform_storage::write_atomic(
        &cfg.data_dir().join(OPERATOR_ADDR_FILE),
        format!("http://{operator_addr}\n").as_bytes(),
        0o600,
    )
    .context("writing operator.addr")?;
    tracing::info!("operator API on http://{operator_addr}");
    let routers = api::router(api::Parts {
        status,
        net: net.clone(),
        dir: dir.clone(),
        pool: driver.pool(),
        token,
        http: stats.clone(),
        chain: chain_client,
        rpc_stop,
    });
    let (api_stop_tx, api_stop_rx) = tokio::sync::watch::channel(false);
    let limits = cfg.http_limits;
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let server = tokio::spawn(http::serve(
        listener,
        routers.public,
        limits,
        stats.clone(),
        stopped(api_stop_rx.clone()),
    ));
    let operator_server = tokio::spawn(http::serve(
        operator_listener,
        routers.operator,
        limits,
        stats,
        stopped(api_stop_rx),
    ));
    let result = driver.run(events, stop).await;
    let _ = rpc_sessions.stop();
    let _ = api_stop_tx.send(true);
    let _ = server.await;
    let _ = operator_server.await;
    net.shutdown().await.ok();
    result
}
