//! `platform init`, `platform run` and `platform devnet`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use platform_crypto::parse_suri;
use platform_node::{NodeConfig, genesis};
use serde::Serialize;

use crate::output;

/// `platform init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The data directory to create.
    #[arg(long = "data-dir")]
    data_dir: PathBuf,
    /// Write a dev genesis (LocalChain's dev metagraph, //Alice … //Dave bound) and use a dev
    /// hotkey (default //Alice). Every validator of one network needs the same genesis file:
    /// copy it, or pass it with --genesis.
    #[arg(long)]
    dev: bool,
    /// The hotkey: a dev URI (with --dev), a wallet hotkey file, or a keystore name.
    #[arg(long)]
    hotkey: Option<String>,
    /// Use this genesis file instead of creating one.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// How many dev validators the dev genesis binds (1 to 4).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// libp2p listen address.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    listen: String,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// Peers to dial at start (repeat).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `platform run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The node's config file (written by `platform init`).
    #[arg(long)]
    config: PathBuf,
}

/// `platform devnet`.
#[derive(clap::Args, Debug)]
pub struct DevnetArgs {
    /// How many validators (1 to 4: //Alice, //Bob, //Charlie, //Dave).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Stop after this many finalized blocks (on every validator) and print a summary; without
    /// it the devnet runs until Ctrl-C.
    #[arg(long)]
    blocks: Option<u64>,
    /// Minimum milliseconds between blocks.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Keep the network's files here (default: a temporary folder, removed at exit).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Give up (exit 1) if --blocks are not finalized within this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Epochs with weights need the epoch driver, which is not built yet.
    #[arg(long)]
    epochs: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn init(args: InitArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let config_path = args.data_dir.join("config.toml");
    if config_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a node's configuration",
            config_path.display()
        );
    }
    let hotkey = match (&args.hotkey, args.dev) {
        (Some(h), _) => h.clone(),
        (None, true) => "//Alice".into(),
        (None, false) => bail!(
            "--hotkey is required without --dev (a wallet hotkey file or a keystore name; \
             `platform keys generate` creates one)"
        ),
    };
    let key = crate::chain::load_hotkey(&hotkey, Some(&args.data_dir))?;
    let genesis_path = args.data_dir.join("genesis.bin");
    let genesis = match (&args.genesis, args.dev) {
        (Some(file), _) => genesis::load(file)?,
        (None, true) => genesis::dev(args.validators, now_ms())?,
        (None, false) => bail!(
            "a genesis is needed: --dev for a dev network, or --genesis FILE (the file every \
             validator of the network shares)"
        ),
    };
    genesis::save(&genesis, &genesis_path)?;
    let mut cfg = NodeConfig::new(&hotkey);
    cfg.listen = args.listen;
    cfg.http = args.http;
    cfg.bootstrap = args.bootstrap;
    cfg.save(&config_path)?;
    #[derive(Serialize)]
    struct Out {
        config: String,
        genesis: String,
        genesis_hash: String,
        hotkey: String,
        peer_id: String,
    }
    let out = Out {
        config: config_path.display().to_string(),
        genesis: genesis_path.display().to_string(),
        genesis_hash: genesis.hash().to_hex(),
        hotkey: key.hotkey().to_ss58(),
        peer_id: platform_network::identity_from_hotkey(&key)
            .public()
            .to_peer_id()
            .to_string(),
    };
    if args.json {
        output::json(&out);
    } else {
        println!("wrote {} and {}", out.config, out.genesis);
        println!("genesis {}", out.genesis_hash);
        println!("hotkey  {}  peer id {}", out.hotkey, out.peer_id);
        println!("start it with: platform run --config {}", out.config);
    }
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let cfg = NodeConfig::load(&args.config)?;
    let key = crate::chain::load_hotkey(&cfg.hotkey, Some(cfg.data_dir()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(platform_node::run(cfg, key, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The validator processes; stopped (SIGTERM, then SIGKILL) when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        let end = Instant::now() + Duration::from_secs(5);
        for c in &mut self.0 {
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

#[derive(Serialize)]
struct DevnetValidator {
    hotkey: String,
    api: String,
    height: u64,
    hash_at_target: Option<String>,
    finalization_ms_p50: u64,
    finalization_ms_p99: u64,
}

#[derive(Serialize)]
struct DevnetSummary {
    validators: Vec<DevnetValidator>,
    blocks_finalized: u64,
    all_identical: bool,
    data_dir: String,
}

pub fn devnet(args: DevnetArgs) -> Result<ExitCode> {
    if args.epochs.is_some() {
        bail!(
            "--epochs is not available yet: epochs, evaluations and weight submission need the \
             node's epoch driver, which is not built. Use --blocks N to run N finalized blocks."
        );
    }
    let temp;
    let root = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let uris = genesis::dev_validator_uris();
    if args.validators == 0 || args.validators > uris.len() {
        bail!("--validators must be 1 to {}", uris.len());
    }
    let genesis = genesis::dev(args.validators, now_ms())?;
    let exe = std::env::current_exe().context("locating the platform binary")?;
    let mut addrs: Vec<String> = Vec::new();
    let mut apis = Vec::new();
    let mut children = Children(Vec::new());
    for uri in &uris[..args.validators] {
        let key = parse_suri(uri)?;
        let dir = root.join(uri.trim_start_matches("//").to_lowercase());
        std::fs::create_dir_all(&dir)?;
        genesis::save(&genesis, &dir.join("genesis.bin"))?;
        let p2p = free_port()?;
        let http = free_port()?;
        let mut cfg = NodeConfig::new(uri);
        cfg.listen = format!("/ip4/127.0.0.1/tcp/{p2p}");
        cfg.bootstrap = addrs.clone();
        cfg.http = format!("127.0.0.1:{http}");
        cfg.block_interval_ms = args.block_ms;
        cfg.view_timeout_ms = (args.block_ms * 4).max(2000);
        let config = dir.join("config.toml");
        cfg.save(&config)?;
        let peer = platform_network::identity_from_hotkey(&key)
            .public()
            .to_peer_id();
        addrs.push(format!("{}/p2p/{peer}", cfg.listen));
        let log = std::fs::File::create(dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(["-v", "run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a validator")?;
        children.0.push(child);
        apis.push((key.hotkey().to_ss58(), format!("http://127.0.0.1:{http}")));
    }
    if !args.json {
        println!(
            "devnet: {} validators (data in {})",
            args.validators,
            root.display()
        );
        for (hotkey, api) in &apis {
            println!("  {hotkey}  {api}/api/v1/status");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(watch(&args, &apis, &root))?;
    drop(children);
    let ok = summary.all_identical;
    if args.json {
        output::json(&summary);
    } else if args.blocks.is_some() {
        for v in &summary.validators {
            println!(
                "  {}  height {}  proposal → finalization p50 {} ms, p99 {} ms",
                v.hotkey, v.height, v.finalization_ms_p50, v.finalization_ms_p99
            );
        }
        println!(
            "{} blocks finalized; validators {}",
            summary.blocks_finalized,
            if ok {
                "agree on every block"
            } else {
                "DISAGREE"
            }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(serde::Deserialize)]
struct NodeStatus {
    height: u64,
    view: u64,
    peers: usize,
    finalization_ms_p50: u64,
    finalization_ms_p99: u64,
}

#[derive(serde::Deserialize)]
struct BlockInfo {
    hash: String,
}

async fn get<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> Option<T> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// Polls every validator, shows progress, and returns once `--blocks` are final everywhere
/// (or on Ctrl-C).
async fn watch(args: &DevnetArgs, apis: &[(String, String)], root: &Path) -> Result<DevnetSummary> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let start = Instant::now();
    let mut last_line = String::new();
    let mut heights = vec![0u64; apis.len()];
    let mut latencies = vec![(0u64, 0u64); apis.len()];
    loop {
        for (i, (_, api)) in apis.iter().enumerate() {
            if let Some(s) = get::<NodeStatus>(&client, &format!("{api}/api/v1/status")).await {
                heights[i] = s.height;
                latencies[i] = (s.finalization_ms_p50, s.finalization_ms_p99);
                if i == 0 && !args.json {
                    let line = format!(
                        "view {:>4}  finalized heights {:?}  peers of the first validator {}",
                        s.view, heights, s.peers
                    );
                    if line != last_line {
                        println!("{line}");
                        last_line = line;
                    }
                }
            }
        }
        let min = heights.iter().copied().min().unwrap_or(0);
        if args.blocks.is_some_and(|target| min >= target) {
            break;
        }
        if args.blocks.is_some() && start.elapsed() > Duration::from_secs(args.timeout_secs) {
            bail!(
                "only {min} blocks were finalized on every validator within {} s (logs in {})",
                args.timeout_secs,
                root.display()
            );
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    let target = heights.iter().copied().min().unwrap_or(0);
    let mut validators = Vec::new();
    for (i, (hotkey, api)) in apis.iter().enumerate() {
        let hash = if target > 0 {
            get::<BlockInfo>(&client, &format!("{api}/api/v1/blocks/{target}"))
                .await
                .map(|b| b.hash)
        } else {
            None
        };
        validators.push(DevnetValidator {
            hotkey: hotkey.clone(),
            api: api.clone(),
            height: heights[i],
            hash_at_target: hash,
            finalization_ms_p50: latencies[i].0,
            finalization_ms_p99: latencies[i].1,
        });
    }
    let first = validators.first().and_then(|v| v.hash_at_target.clone());
    let all_identical =
        target > 0 && first.is_some() && validators.iter().all(|v| v.hash_at_target == first);
    Ok(DevnetSummary {
        validators,
        blocks_finalized: target,
        all_identical,
        data_dir: root.display().to_string(),
    })
}
