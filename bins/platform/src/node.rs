//! `platform init`, `platform run` and `platform devnet`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use platform_chain::local::server::TimelockedStatus;
use platform_crypto::parse_suri;
use platform_node::{NodeConfig, genesis};
use serde::Serialize;

use crate::output;
use crate::wallet::{Passwords, WalletArgs};

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
    /// The hotkey: a dev URI (with --dev), a wallet hotkey file, or a keystore name. Or give
    /// the wallet options; config.toml then names the wallet's hotkey file.
    #[arg(long)]
    hotkey: Option<String>,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Use this genesis file instead of creating one.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// How many dev validators the dev genesis binds (1 to 64: //Alice, //Bob, //Charlie,
    /// //Dave, then //Validator5 …).
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
    /// The chain (a LocalChain URL, http://…): epochs follow its tempo and each epoch's
    /// weights are submitted to it. Without it the network stays in its genesis epoch.
    #[arg(long)]
    chain: Option<String>,
    /// Launch the network from the chain (with --chain, --netuid, instead of --genesis and
    /// --bootstrap): `platform run` publishes this validator's peer record on the subnet,
    /// derives the genesis from the chain at this block once the chain reaches it (every
    /// validator given the same block derives the same one), and dials the validators whose
    /// records the chain holds. Pick a block far enough ahead for every validator to start.
    #[arg(long, requires_all = ["chain", "netuid"], conflicts_with_all = ["genesis", "dev"])]
    genesis_block: Option<u64>,
    /// The subnet (with --genesis-block).
    #[arg(long)]
    netuid: Option<u16>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `platform genesis`.
#[derive(clap::Args, Debug)]
pub struct GenesisArgs {
    #[command(flatten)]
    chain: crate::chain::ChainArg,
    /// The subnet.
    #[arg(long)]
    netuid: u16,
    /// The chain block to derive it at (default: the chain's head). Validators launched with
    /// `platform init --genesis-block B` derive the same genesis at B themselves.
    #[arg(long)]
    block: Option<u64>,
    /// Also write it as a genesis file (Borsh), for networks that hand one around.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON: `network_id`, `genesis_hash`, `chain_block`, `owner`, `neurons`, and each
    /// permitted validator's `hotkey`, `stake`, `bound` (its peer record was on chain) and
    /// `addrs`.
    #[arg(long)]
    json: bool,
}

/// `platform genesis`: the genesis the chain gives subnet `--netuid` at `--block`.
pub fn genesis_from_chain(args: GenesisArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let netuid = platform_primitives::NetUid(args.netuid);
    let (genesis, records) = rt.block_on(async {
        let chain = platform_chain::AnyChain::connect(&args.chain.url()?).await?;
        let block = match args.block {
            Some(b) => b,
            None => platform_chain::Chain::head(&chain).await?.number,
        };
        let genesis = genesis::from_chain(&chain, netuid, block).await?;
        let records = genesis::peer_records(&chain, netuid, Some(block)).await?;
        anyhow::Ok((genesis, records))
    })?;
    if let Some(out) = &args.out {
        genesis::save(&genesis, out)?;
    }
    #[derive(Serialize)]
    struct Validator {
        hotkey: String,
        stake: u64,
        bound: bool,
        addrs: Vec<String>,
    }
    #[derive(Serialize)]
    struct Out {
        network_id: String,
        genesis_hash: String,
        chain_block: u64,
        owner: String,
        neurons: usize,
        validators: Vec<Validator>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    }
    let validators = genesis
        .metagraph
        .iter()
        .filter(|n| n.validator_permit)
        .map(|n| Validator {
            hotkey: n.hotkey.to_ss58(),
            stake: n.stake,
            bound: genesis.bindings.iter().any(|b| b.hotkey == n.hotkey),
            addrs: records
                .iter()
                .find(|(b, _)| b.hotkey == n.hotkey)
                .map(|(_, a)| a.clone())
                .unwrap_or_default(),
        })
        .collect();
    let out = Out {
        network_id: genesis.network_id().to_hex(),
        genesis_hash: genesis.hash().to_hex(),
        chain_block: genesis.chain_block,
        owner: genesis.owner.to_ss58(),
        neurons: genesis.metagraph.len(),
        validators,
        file: args.out.as_ref().map(|p| p.display().to_string()),
    };
    if args.json {
        output::json(&out);
    } else {
        println!(
            "subnet {} at chain block {}: network {}",
            args.netuid, out.chain_block, out.network_id
        );
        println!("owner {}, {} neurons", out.owner, out.neurons);
        for v in &out.validators {
            println!(
                "  {}  stake {:>20}  {}",
                v.hotkey,
                v.stake,
                if v.bound {
                    format!("bound, at {}", v.addrs.join(" "))
                } else {
                    "no peer record: binds later (BindKeys)".into()
                }
            );
        }
        if let Some(f) = &out.file {
            println!("wrote {f}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `platform run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The node's config file (written by `platform init`).
    #[arg(long)]
    config: PathBuf,
    /// When the config's hotkey is a password-encrypted key file: a file (mode 0600) whose
    /// first line is the password. Without it: PLATFORM_WALLET_PASSWORD, btcli's BT_PW_…
    /// variable for the key file, or a prompt on the terminal.
    #[arg(
        long = "wallet.password-file",
        id = "wallet_password_file",
        env = "PLATFORM_WALLET_PASSWORD_FILE"
    )]
    password_file: Option<PathBuf>,
}

/// `platform devnet`.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("fault")
        .multiple(false)
        .args(DevnetArgs::FAULT_FLAGS)
))]
pub struct DevnetArgs {
    /// The `-v` count `platform` was given; the validators log at it (at least `-v`).
    #[arg(skip)]
    pub verbose: u8,
    /// How many validators (1 to 64: //Alice, //Bob, //Charlie, //Dave, then //Validator5 …,
    /// each a process; stakes differ, see --stakes). Above 8, committees have 8 members unless
    /// --committee-size says otherwise.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// The first validators' stakes in TAO, comma-separated (default: 4000, 3000, 2000, 1000,
    /// then 990, 980, … for //Validator5 …).
    #[arg(long, value_delimiter = ',')]
    stakes: Vec<u64>,
    /// Stop after this many finalized blocks (on every validator) and print a summary; without
    /// it (or --epochs) the devnet runs until Ctrl-C.
    #[arg(long, conflicts_with = "epochs")]
    blocks: Option<u64>,
    /// Stop once this many epochs are closed and every validator has submitted their weights
    /// to the chain; print a summary. Exit 0 only if every validator submitted the same
    /// weights in every epoch.
    #[arg(long)]
    epochs: Option<u64>,
    /// Chain blocks per epoch (LocalChain's tempo).
    #[arg(long, default_value_t = 10)]
    tempo: u16,
    /// The subnet's commit-reveal mode on LocalChain. 0: weights are set directly; 2: hash
    /// commits the validators reveal; 3 or 4: commits timelocked to LocalChain's test beacon,
    /// which the chain reveals itself an epoch later (subtensor's default is 4). With --epochs
    /// and 3 or 4, the run ends once the chain has revealed every validator's commit of every
    /// epoch, and succeeds only if each one opened and the revealed weights are identical.
    #[arg(long, default_value_t = 0, value_parser = crate::chain::parse_commit_reveal)]
    commit_reveal: u16,
    /// Milliseconds per chain block.
    #[arg(long, default_value_t = 1000)]
    chain_block_ms: u64,
    /// Simulated miners (1 to 252: //Miner1 … //Miner252, registered in LocalChain's dev
    /// genesis; with more than 4 validators, 256 less the validators). Miner i submits the payloads of quality a, b, c, … (best to worst,
    /// `scenarios/payloads`); from miner 7 on, letters repeat with other TSP tours of the same
    /// quality (the same cycle from another city), and the classifier is left to miners 1–6.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=252))]
    miners: u16,
    /// Make the last N validators Byzantine: they attest forged results as committee members.
    /// The honest ones out-vote them, report the contradiction as evidence and jail them.
    /// Their stake must stay below a third of the total.
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// Make the last N validators withhold evaluations: they sit on committees but never
    /// attest, and once a committee's attestation time is up the state replaces them with
    /// validators outside it (see --committee-size, --attest-timeout-blocks).
    #[arg(long, default_value_t = 0)]
    withhold: usize,
    /// Make the last N validators gossip forged epoch anchors (a metagraph that leaves them
    /// the only validator). Peers refuse them at ingress (`epoch_transaction` in /metrics) and
    /// soon ban the sender; the others keep finalizing and closing epochs without it, and
    /// --blocks and --epochs count only them.
    #[arg(long, default_value_t = 0)]
    poison_anchors: usize,
    /// Make the last N validators announce made-up blocks for views they do not lead (and a
    /// second block for the views they do) every tick. Peers follow one announcement per view,
    /// from its leader only, count the rest (`announce/not_leader`,
    /// `announce/duplicate_announcement` in /metrics) and soon ban the sender; --blocks and
    /// --epochs count only the others.
    #[arg(long, default_value_t = 0)]
    flood_announces: usize,
    /// Make the last N validators unable to run modules' `weights` exports the first few
    /// times (as runs over the wall-clock backstop would be). They wait and retry each epoch
    /// close instead of refusing it or stopping (`platform_epoch_close_module_waits` in
    /// /metrics, `module_waits` in the summary) and submit the same weights as the others.
    #[arg(long, default_value_t = 0)]
    stall_weights: usize,
    /// Make the last N validators gossip, every tick, well-formed messages that mean nothing
    /// on every topic (a vote for a proposal nobody made, a submission no miner signed, an
    /// attestation of a submission nobody made). The others count and drop them
    /// (`inputs_dropped` and `refused` in the summary), penalize the sender and go on;
    /// --blocks and --epochs count only the others.
    #[arg(long, default_value_t = 0)]
    garbage_gossip: usize,
    /// Make the last N validators send, every tick, 128 certificate requests point-to-point
    /// (for views already decided, each answered with a certificate) and 256 `Fetch` and
    /// `FetchView` asks on gossip, where they do not belong. The others rate-limit the first
    /// (`certificates/rate_limited` in `refused`), refuse the second (`consensus/fetch_on_gossip`)
    /// and go on; --blocks and --epochs count only the others.
    #[arg(long, default_value_t = 0)]
    flood_fetches: usize,
    /// Committee size of the published challenges (default: every validator sits on every
    /// committee up to 8 validators, 8 members above that). With fewer members than
    /// validators, silent members can be replaced.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    committee_size: Option<u16>,
    /// Blocks a committee member has to attest before it is replaced (default: about 20 s of
    /// blocks at --block-ms, and at least 30).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    attest_timeout_blocks: Option<u64>,
    /// Milliseconds a leader waits after the last finalization before proposing (blocks can come
    /// faster: proposals build on notarized blocks).
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Keep the network's files here (default: a temporary folder, removed at exit).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Give up (exit 1) if --blocks or --epochs are not reached within this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Where the built example challenges are (`tsp.wasm`, `classifier.wasm`); the owner
    /// (//Alice) publishes them, each with its source folder's `assets/` files
    /// (`<this>/../../../<name>/assets/`, the classifier's data set) uploaded as its assets,
    /// activates them once the validators hold those, then simulated miners submit to them.
    #[arg(
        long,
        default_value = "challenges/target/wasm32-unknown-unknown/release"
    )]
    challenges: PathBuf,
    /// Where the simulated miners' payloads are (`tsp-a.bin` … `classifier-f.bin`).
    #[arg(long, default_value = "scenarios/payloads")]
    payloads: PathBuf,
    /// Miners submit again every epoch (fresh TSP tours of the same quality: the same cycle
    /// from another starting city or backwards) until --blocks or --epochs is reached, so a
    /// long run keeps the whole pipeline busy. A payload can be submitted once while the state
    /// remembers it: a 112-city tour has 224 such variants shared by the miners of one letter,
    /// and once they are used up the ones the state has pruned (all but each miner's first,
    /// which stays its best) are used again in turn. Without it each miner submits once.
    #[arg(long)]
    resubmit: bool,
    /// Validators keep every finalized block (`[retention] archive = true`), so that
    /// `platform replay --data-dir D/<validator>` re-executes the whole history from the
    /// genesis. Without it, storing a snapshot prunes the blocks before the older one kept.
    #[arg(long)]
    archive: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

impl DevnetArgs {
    /// The flags that each make the last N validators run a deliberate fault: at most one
    /// may be given.
    const FAULT_FLAGS: [&'static str; 7] = [
        "byzantine",
        "withhold",
        "poison_anchors",
        "flood_announces",
        "stall_weights",
        "garbage_gossip",
        "flood_fetches",
    ];

    /// Each fault flag's count with the fault's name in config.toml (`NodeConfig::fault`).
    fn faults(&self) -> [(usize, &'static str); 7] {
        [
            (self.byzantine, "wrong-scores"),
            (self.withhold, "withhold-attestations"),
            (self.poison_anchors, "poison-anchors"),
            (self.flood_announces, "flood-announces"),
            (self.stall_weights, "stall-weights"),
            (self.garbage_gossip, "garbage-gossip"),
            (self.flood_fetches, "flood-fetches"),
        ]
    }
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
    let hotkey = match (args.wallet.hotkey_spec(args.hotkey.as_deref())?, args.dev) {
        (Some(h), _) => h,
        (None, true) => "//Alice".into(),
        (None, false) => bail!(
            "--hotkey is required without --dev (a wallet hotkey file or a keystore name; \
             `platform keys generate` creates one), or --wallet.name with --wallet.hotkey"
        ),
    };
    if crate::chain::is_secret(&hotkey) {
        bail!(
            "--hotkey: a mnemonic or seed would be written into config.toml; import it first \
             (`platform keys import --data-dir D --name N --mnemonic`) and pass --hotkey N"
        );
    }
    let key = crate::chain::load_hotkey(&hotkey, Some(&args.data_dir), &args.wallet.passwords())?;
    let genesis_path = args.data_dir.join("genesis.bin");
    let genesis = match (&args.genesis, args.dev, args.genesis_block) {
        (Some(file), _, _) => Some(genesis::load(file)?),
        (None, true, _) => Some(genesis::dev(args.validators, now_ms(), 1000)?),
        // Derived by `platform run` once the chain reaches the block.
        (None, false, Some(_)) => None,
        (None, false, None) => bail!(
            "a genesis is needed: --dev for a dev network, --genesis FILE (the file every \
             validator of the network shares), or --chain URL --netuid N --genesis-block B to \
             derive it from the chain"
        ),
    };
    if let Some(g) = &genesis {
        genesis::save(g, &genesis_path)?;
    }
    let mut cfg = NodeConfig::new(&hotkey);
    cfg.listen = args.listen;
    cfg.http = args.http;
    cfg.bootstrap = args.bootstrap;
    cfg.chain = args.chain;
    cfg.netuid = args.genesis_block.and(args.netuid);
    cfg.genesis_block = args.genesis_block;
    cfg.save(&config_path)?;
    let token_file = platform_node::token::path(&args.data_dir);
    platform_node::token::load_or_create(&args.data_dir)?;
    #[derive(Serialize)]
    struct Out {
        config: String,
        genesis: String,
        /// `None` until `platform run` derives it from the chain.
        genesis_hash: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        genesis_block: Option<u64>,
        hotkey: String,
        peer_id: String,
        operator_token_file: String,
    }
    let out = Out {
        operator_token_file: token_file.display().to_string(),
        config: config_path.display().to_string(),
        genesis: genesis_path.display().to_string(),
        genesis_hash: genesis.as_ref().map(|g| g.hash().to_hex()),
        genesis_block: args.genesis_block,
        hotkey: key.hotkey().to_ss58(),
        peer_id: platform_network::identity_from_hotkey(&key)
            .public()
            .to_peer_id()
            .to_string(),
    };
    if args.json {
        output::json(&out);
    } else {
        match (&out.genesis_hash, out.genesis_block) {
            (Some(hash), _) => {
                println!("wrote {} and {}", out.config, out.genesis);
                println!("genesis {hash}");
            }
            (None, block) => {
                println!("wrote {}", out.config);
                println!(
                    "genesis: derived from the chain at block {} when the node runs",
                    block.unwrap_or(0)
                );
            }
        }
        println!("hotkey  {}  peer id {}", out.hotkey, out.peer_id);
        println!(
            "operator token in {} (the operator listener, operator_http, takes any transaction \
             with it)",
            out.operator_token_file
        );
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
    if crate::chain::is_secret(&cfg.hotkey) {
        bail!(
            "config {}: `hotkey` holds a secret (a mnemonic or seed), which a config file must \
             not: import it into the keystore (`platform keys import --data-dir D --name N \
             --mnemonic`, reading it from standard input) and set hotkey = \"N\"",
            args.config.display()
        );
    }
    let passwords = Passwords {
        file: args.password_file.clone(),
    };
    let key = crate::chain::load_hotkey(&cfg.hotkey, Some(cfg.data_dir()), &passwords)?;
    // Challenge modules are code this validator did not write: compile them in this binary's
    // bounded worker process.
    let mut cfg = cfg;
    cfg.compiler = Some(crate::challenge::worker_compiler()?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?;
    rt.block_on(platform_node::run(cfg, key, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Threads a validator runs short blocking work on (blob and database reads and writes, each
/// `fsync` included); more waits in a queue. Tokio's default of 512 let bursts of `fsync`s
/// leave over a hundred idle threads alive, each holding a stack and its share of the
/// allocator (docs/BENCHMARKS.md, "Long run"). The consensus WAL and evaluations have threads
/// of their own.
const BLOCKING_THREADS: usize = 16;

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Waits (up to 30 s) until a freshly started LocalChain answers.
fn wait_for_chain(url: &str) -> Result<()> {
    let client = platform_chain::local::LocalChainClient::new(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match client.info().await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > end => {
                    bail!("LocalChain did not start at {url}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
}

/// Starts `platform run` on the config in `dir`, logging to `dir/node.log` at the devnet's
/// own verbosity (`platform -vv devnet` logs debug lines), and at least at `-v`.
fn spawn_validator(exe: &Path, dir: &Path, verbose: u8) -> Result<Child> {
    let log = std::fs::File::create(dir.join("node.log"))?;
    let level = format!("-{}", "v".repeat(usize::from(verbose.clamp(1, 3))));
    Command::new(exe)
        .arg(level)
        .args(["run", "--config"])
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting a validator")
}

enum Started {
    Up,
    /// It exited because a port it was given was taken.
    PortTaken,
    Exited,
}

/// Waits (up to a minute) until a validator's API answers or its process exits.
fn validator_started(child: &mut Child, api: &str, dir: &Path) -> Result<Started> {
    let end = Instant::now() + Duration::from_secs(60);
    let url = format!("{api}/api/v1/status");
    while Instant::now() < end {
        if child.try_wait()?.is_some() {
            let reason = log_tail(&dir.join("node.log"));
            return Ok(if reason.contains("Address already in use") {
                Started::PortTaken
            } else {
                Started::Exited
            });
        }
        let up = std::net::TcpStream::connect_timeout(
            &api.trim_start_matches("http://").parse()?,
            Duration::from_millis(200),
        )
        .is_ok();
        if up {
            return Ok(Started::Up);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{url} did not answer within 60 s (log in {})",
        dir.display()
    )
}

/// The last non-empty line of a log, without terminal colours.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip an escape sequence up to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A loopback port for a devnet process to bind later (see [`platform_node::ports`]).
fn free_port() -> Result<u16> {
    platform_node::ports::free_loopback_port()
        .context("no free loopback port below the kernel's ephemeral range")
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
    /// Why its block at the target height could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    hash_error: Option<String>,
    finalization_ms_p50: u64,
    finalization_ms_p99: u64,
    /// Gossip and requests its network refused, by `channel/reason` (from its `/metrics`).
    refused: BTreeMap<String, u64>,
    /// Blobs its garbage collection deleted (blocks past the kept depth, settled payloads).
    blobs_collected: u64,
    /// The most DHT provider records it held at the end (its own and others').
    dht_provider_records: u64,
    /// Entries in its replicated state at the end.
    state_entries: u64,
    /// State records epoch closes removed since genesis.
    state_pruned: u64,
    /// Blocks it finalized while running.
    finalized: u64,
    /// Times one of its epoch closes waited for a module that could not run there yet.
    module_waits: u64,
    /// Inputs its handlers could not use and dropped, by `input/reason` (from its `/metrics`).
    inputs_dropped: BTreeMap<String, u64>,
    /// Pending transactions that left its mempool unordered, by `kind/reason` (evicted, or
    /// refused by a block it built).
    mempool_dropped: BTreeMap<String, u64>,
    /// Gossiped transactions its mempool refused by the state's rules.
    gossip_rejected: u64,
    /// Signature checks its consensus engine made while running.
    signature_checks: u64,
    /// Consensus messages it sent to one validator only (finalize votes to their collectors,
    /// in validator sets of `platform_consensus::COLLECTORS_FROM` or more).
    direct_sent: u64,
    /// CPU time its process used (user and system), in milliseconds.
    cpu_ms: u64,
    /// Its resident set at the end, in MiB.
    rss_mb: u64,
    /// Evaluations it ran as a committee member, and the milliseconds they took.
    evaluations: u64,
    evaluation_ms: u64,
}

/// What the network cost, for the scale figures (docs/BENCHMARKS.md, "Scale").
#[derive(Serialize, Clone)]
pub(crate) struct ScaleFigures {
    pub(crate) validators: usize,
    /// Finalized blocks per second from the first finalized block to the end.
    pub(crate) blocks_per_sec: f64,
    /// The largest of the validators' finalization p50 and p99, in milliseconds.
    pub(crate) finalization_ms_p50: u64,
    pub(crate) finalization_ms_p99: u64,
    /// Mean over validators of CPU milliseconds per finalized block (evaluation and
    /// everything else included).
    pub(crate) cpu_ms_per_block: f64,
    /// Mean over validators of consensus signature checks per finalized block.
    pub(crate) signature_checks_per_block: f64,
    /// The largest validator resident set at the end, in MiB.
    pub(crate) rss_mb_max: u64,
    /// Mean over validators of the evaluations each ran.
    pub(crate) evaluations_per_validator: f64,
    /// The share of the submissions in blocks that a validator evaluated, on average (its
    /// committees' share of the network's work).
    pub(crate) evaluation_share: f64,
    /// Mean time of one evaluation (module loading included), in milliseconds.
    pub(crate) evaluation_ms_mean: f64,
}

impl ScaleFigures {
    fn of(
        validators: &[DevnetValidator],
        blocks_per_sec: f64,
        submissions_in_blocks: usize,
    ) -> ScaleFigures {
        let mean = |f: &dyn Fn(&DevnetValidator) -> f64| {
            let n = validators.len().max(1) as f64;
            (validators.iter().map(f).sum::<f64>() / n * 10.0).round() / 10.0
        };
        let per_block = |x: u64, v: &DevnetValidator| x as f64 / v.finalized.max(1) as f64;
        ScaleFigures {
            validators: validators.len(),
            blocks_per_sec: (blocks_per_sec * 100.0).round() / 100.0,
            finalization_ms_p50: validators
                .iter()
                .map(|v| v.finalization_ms_p50)
                .max()
                .unwrap_or(0),
            finalization_ms_p99: validators
                .iter()
                .map(|v| v.finalization_ms_p99)
                .max()
                .unwrap_or(0),
            cpu_ms_per_block: mean(&|v| per_block(v.cpu_ms, v)),
            signature_checks_per_block: mean(&|v| per_block(v.signature_checks, v)),
            rss_mb_max: validators.iter().map(|v| v.rss_mb).max().unwrap_or(0),
            evaluations_per_validator: mean(&|v| v.evaluations as f64),
            evaluation_share: {
                let share = mean(&|v| v.evaluations as f64) / submissions_in_blocks.max(1) as f64;
                (share * 100.0).round() / 100.0
            },
            evaluation_ms_mean: {
                let n: u64 = validators.iter().map(|v| v.evaluations).sum();
                let ms: u64 = validators.iter().map(|v| v.evaluation_ms).sum();
                (ms as f64 / n.max(1) as f64 * 10.0).round() / 10.0
            },
        }
    }
}

/// The network's refusals in a node's `/metrics` text
/// (`platform_network_rejected_total{channel="…",reason="…"} n`), by `channel/reason`.
fn refusals(metrics: &str) -> BTreeMap<String, u64> {
    labelled_pairs(
        metrics,
        "platform_network_rejected_total",
        ("channel", "reason"),
    )
}

/// The samples of a counter family with two labels, keyed `first/second` by their values.
fn labelled_pairs(metrics: &str, name: &str, keys: (&str, &str)) -> BTreeMap<String, u64> {
    crate::soak::samples(metrics, name)
        .into_iter()
        .filter_map(|(labels, value)| {
            let get = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            Some((format!("{}/{}", get(keys.0)?, get(keys.1)?), value as u64))
        })
        .collect()
}

/// One validator's weights for one epoch, as it submitted them to the chain.
#[derive(Serialize, serde::Deserialize, Clone, PartialEq, Eq, Debug)]
struct Submitted {
    uids: Vec<u16>,
    weights: Vec<u16>,
    mode: String,
    chain_block: u64,
}

#[derive(Serialize)]
struct EpochValidator {
    hotkey: String,
    /// `null`: this validator has no submission recorded for the epoch.
    uids: Option<Vec<u16>>,
    weights: Option<Vec<u16>>,
    chain_block: Option<u64>,
}

#[derive(Serialize)]
struct EpochSummary {
    epoch: u64,
    weights_identical: bool,
    validators: Vec<EpochValidator>,
}

#[derive(Serialize)]
pub(crate) struct DevnetSummary {
    /// One entry per closed epoch (with --epochs).
    epochs: Vec<EpochSummary>,
    /// Epochs in which validators' submitted weights differ (or one is missing).
    disagreements: usize,
    /// The weights the chain stores per validator at the end (max-upscaled by the chain).
    chain_weights: Vec<serde_json::Value>,
    /// With --commit-reveal 3 or 4: the chain's timelocked commits (pending, revealed,
    /// failed) at the end.
    timelocked: Option<TimelockedStatus>,
    /// Milliseconds from the devnet's start (keys, genesis, chain and validator processes
    /// included) until every validator had finalized the first epoch's close.
    first_epoch_closed_ms: Option<u64>,
    /// Validators kept out of committees after evidence against them (as the first validator
    /// sees it).
    jailed: Vec<String>,
    validators: Vec<DevnetValidator>,
    challenges_active: usize,
    pub(crate) submissions_admitted: usize,
    /// Miners' submissions the API refused or did not answer, and why.
    pub(crate) submissions_refused: Vec<String>,
    pub(crate) submissions_in_blocks: usize,
    pub(crate) submissions_evaluated: usize,
    /// Submissions the state gave up on (no certificate before every draw was used up).
    pub(crate) submissions_expired: usize,
    /// Submissions whose committee had members replaced: who was dropped, the committee
    /// that certified, and its signers.
    replacements: Vec<serde_json::Value>,
    leaders: Vec<serde_json::Value>,
    /// Throughput and cost per block over the validators that finalized.
    pub(crate) scale: ScaleFigures,
    pub(crate) blocks_finalized: u64,
    pub(crate) all_identical: bool,
    pub(crate) data_dir: String,
}

/// Whether the devnet's subnet takes timelocked commits.
fn timelocked_mode(args: &DevnetArgs) -> bool {
    matches!(args.commit_reveal, 3 | 4)
}

/// LocalChain's count of the subnet's timelocked commits.
async fn timelocked_status(client: &reqwest::Client, chain_url: &str) -> Option<TimelockedStatus> {
    get(client, &format!("{chain_url}/v1/subnets/1/timelocked")).await
}

/// Committee size of a devnet's challenges when not given: every validator up to this many,
/// this many above (evaluation work per validator stays bounded as the network grows).
pub const DEVNET_MAX_DEFAULT_COMMITTEE: u16 = 8;

pub fn devnet(args: DevnetArgs) -> Result<ExitCode> {
    let summary = run_devnet(&args, None)?;
    print_summary(&args, &summary);
    Ok(if summary.all_identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs the devnet until its goal (or Ctrl-C); `sampler` is shown every poll.
pub(crate) fn run_devnet(
    args: &DevnetArgs,
    sampler: Option<&mut crate::soak::Sampler>,
) -> Result<DevnetSummary> {
    let started = Instant::now();
    if args.tempo < 2 {
        bail!("--tempo must be at least 2 chain blocks");
    }
    let temp;
    let root = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let faulty: usize = args.faults().iter().map(|(n, _)| n).sum();
    if faulty > 0 && !cfg!(feature = "test-faults") {
        bail!(
            "--byzantine, --withhold, --poison-anchors, --flood-announces, --stall-weights, \
             --garbage-gossip and --flood-fetches need a build with the `test-faults` feature: \
             cargo build --features platform/test-faults"
        );
    }
    let uris = genesis::dev_validator_uris(args.validators);
    // At least //Miner1 … //Miner8 are registered, so a miner outside the simulation (such as
    // `platform submit --hotkey //Miner8`) can take part.
    let registered = usize::from(args.miners).max(platform_chain::local::genesis::DEV_MINERS);
    let mut genesis = genesis::dev_with_miners(
        args.validators,
        registered,
        &args.stakes,
        now_ms(),
        args.block_ms,
    )?;
    if let Some(blocks) = args.attest_timeout_blocks {
        genesis.params.attest_timeout_blocks = blocks;
    }
    if args.withhold >= args.validators && args.withhold > 0 {
        bail!(
            "--withhold {}: at least one of the {} validators must evaluate",
            args.withhold,
            args.validators
        );
    }
    let total: u64 = genesis
        .metagraph
        .iter()
        .filter(|n| n.validator_permit)
        .map(|n| n.stake)
        .sum();
    let faulty: u64 = genesis
        .metagraph
        .iter()
        .filter(|n| n.validator_permit)
        .rev()
        .take(args.byzantine)
        .map(|n| n.stake)
        .sum();
    if args.byzantine > 0 && (args.byzantine >= args.validators || faulty * 3 >= total) {
        bail!(
            "--byzantine {}: the Byzantine validators would hold {faulty} of {total} rao of \
             stake; consensus tolerates less than a third",
            args.byzantine
        );
    }
    let exe = std::env::current_exe().context("locating the platform binary")?;
    let mut addrs: Vec<String> = Vec::new();
    let mut apis = Vec::new();
    let mut children = Children(Vec::new());
    // The chain: LocalChain's dev genesis with the same validators and the chosen tempo.
    let chain_port = free_port()?;
    let chain_url = format!("http://127.0.0.1:{chain_port}");
    let chain_dir = root.join("localchain");
    std::fs::create_dir_all(&chain_dir)?;
    let chain_log = std::fs::File::create(chain_dir.join("localchain.log"))?;
    children.0.push(
        Command::new(&exe)
            .args(["localchain", "--dev", "--listen"])
            .arg(format!("127.0.0.1:{chain_port}"))
            .arg("--validators")
            .arg(args.validators.to_string())
            .args(stakes_arg(&args.stakes))
            .arg("--miners")
            .arg(registered.to_string())
            .arg("--tempo")
            .arg(args.tempo.to_string())
            .arg("--commit-reveal")
            .arg(args.commit_reveal.to_string())
            .arg("--block-time-ms")
            .arg(args.chain_block_ms.to_string())
            .stdin(Stdio::null())
            .stdout(chain_log.try_clone()?)
            .stderr(chain_log)
            .spawn()
            .context("starting LocalChain")?,
    );
    wait_for_chain(&chain_url)?;
    for (i, uri) in uris[..args.validators].iter().enumerate() {
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
        cfg.chain = Some(chain_url.clone());
        // A dev network keeps little, so that collection shows in short runs.
        cfg.retention.block_depth = 32;
        cfg.retention.payload_epochs = 1;
        cfg.retention.archive = args.archive;
        // Every miner, the owner and the watch loop reach the API from 127.0.0.1.
        cfg.http_limits.per_ip_requests_per_sec = 0;
        cfg.http_limits.per_ip_connections = cfg.http_limits.max_connections;
        // The last N validators run the fault a flag names (one flag at most).
        for (n, fault) in args.faults() {
            if i + n >= args.validators {
                cfg.fault = Some(fault.into());
            }
        }
        let config = dir.join("config.toml");
        cfg.save(&config)?;
        let peer = platform_network::identity_from_hotkey(&key)
            .public()
            .to_peer_id();
        addrs.push(format!("{}/p2p/{peer}", cfg.listen));
        children.0.push(spawn_validator(&exe, &dir, args.verbose)?);
        apis.push((key.hotkey().to_ss58(), format!("http://127.0.0.1:{http}")));
    }
    // Ports are picked free and handed over, so another process (the validators' own
    // outgoing connections, at 64 of them) can take one first: restart such a validator on
    // fresh ports; any other early exit ends the devnet with the validator's reason.
    for (i, uri) in uris[..args.validators].iter().enumerate() {
        let dir = root.join(uri.trim_start_matches("//").to_lowercase());
        let mut retries = 3;
        loop {
            match validator_started(&mut children.0[i + 1], &apis[i].1, &dir)? {
                Started::Up => break,
                Started::PortTaken if retries > 0 => {
                    retries -= 1;
                    let config = dir.join("config.toml");
                    let mut cfg = NodeConfig::load(&config)?;
                    let http = free_port()?;
                    cfg.listen = format!("/ip4/127.0.0.1/tcp/{}", free_port()?);
                    cfg.http = format!("127.0.0.1:{http}");
                    // The others' bootstrap lists name its old address, so it dials every
                    // one of them itself (before, a restarted first validator was reachable
                    // by nobody and a devnet could stall at height 0).
                    let peer = addrs[i]
                        .rsplit_once("/p2p/")
                        .map(|(_, p)| p.to_string())
                        .context("a validator address without its peer id")?;
                    addrs[i] = format!("{}/p2p/{peer}", cfg.listen);
                    cfg.bootstrap = addrs
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, a)| a.clone())
                        .collect();
                    cfg.save(&config)?;
                    apis[i].1 = format!("http://127.0.0.1:{http}");
                    children.0[i + 1] = spawn_validator(&exe, &dir, args.verbose)?;
                }
                Started::PortTaken | Started::Exited => bail!(
                    "validator {uri} stopped while starting: {}",
                    log_tail(&dir.join("node.log"))
                ),
            }
        }
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
        println!(
            "  LocalChain (a simulation of subtensor): {chain_url}/v1/head, tempo {}, a block \
             every {} ms",
            args.tempo, args.chain_block_ms
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut sampler = sampler;
    if let Some(s) = sampler.as_deref_mut() {
        s.watch(
            children.0[1..].iter().map(Child::id).collect(),
            uris[..args.validators]
                .iter()
                .map(|u| root.join(u.trim_start_matches("//").to_lowercase()))
                .collect(),
        );
    }
    let pids: Vec<u32> = children.0[1..].iter().map(Child::id).collect();
    let network = (root.as_path(), genesis.network_id());
    let summary = rt.block_on(watch(
        args, &apis, &pids, network, &chain_url, started, sampler,
    ))?;
    drop(children);
    Ok(summary)
}

/// `--stakes A,B,…` for LocalChain, or nothing.
fn stakes_arg(stakes: &[u64]) -> Vec<String> {
    if stakes.is_empty() {
        return Vec::new();
    }
    let list: Vec<String> = stakes.iter().map(u64::to_string).collect();
    vec!["--stakes".into(), list.join(",")]
}

fn print_summary(args: &DevnetArgs, summary: &DevnetSummary) {
    let ok = summary.all_identical;
    if args.json {
        output::json(summary);
    } else if args.blocks.is_some() || args.epochs.is_some() {
        for e in &summary.epochs {
            println!(
                "epoch {}: weights {}",
                e.epoch,
                if e.weights_identical {
                    "identical on every validator"
                } else {
                    "DIFFER"
                }
            );
            for v in &e.validators {
                println!(
                    "  {}  uids {:?}  weights {:?}",
                    v.hotkey,
                    v.uids.as_deref().unwrap_or_default(),
                    v.weights.as_deref().unwrap_or_default()
                );
            }
        }
        if !summary.jailed.is_empty() {
            println!("jailed after evidence: {}", summary.jailed.join(", "));
        }
        println!(
            "submissions: {} admitted, {} certified, {} expired; {} committees completed by \
             replacements",
            summary.submissions_admitted,
            summary.submissions_evaluated,
            summary.submissions_expired,
            summary.replacements.len()
        );
        if !summary.submissions_refused.is_empty() {
            println!(
                "{} submissions refused or unanswered; the first: {}",
                summary.submissions_refused.len(),
                summary.submissions_refused[0]
            );
        }
        if let Some(ms) = summary.first_epoch_closed_ms {
            println!("first epoch closed on every validator {ms} ms after the devnet started");
        }
        for v in &summary.validators {
            println!(
                "  {}  height {}  proposal → finalization p50 {} ms, p99 {} ms",
                v.hotkey, v.height, v.finalization_ms_p50, v.finalization_ms_p99
            );
        }
        let f = &summary.scale;
        println!(
            "{} validators: {} blocks/s, finalization p50 {} ms / p99 {} ms, {} ms CPU and {} \
             signature checks per block per validator, largest RSS {} MiB",
            f.validators,
            f.blocks_per_sec,
            f.finalization_ms_p50,
            f.finalization_ms_p99,
            f.cpu_ms_per_block,
            f.signature_checks_per_block,
            f.rss_mb_max
        );
        if f.evaluations_per_validator > 0.0 {
            println!(
                "evaluations: {} per validator ({:.0}% of the submissions in blocks), {} ms each",
                f.evaluations_per_validator,
                f.evaluation_share * 100.0,
                f.evaluation_ms_mean
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
}

#[derive(serde::Deserialize)]
struct NodeStatus {
    height: u64,
    #[serde(default)]
    peers: usize,
    view: u64,
    epoch: u64,
    finalization_ms_p50: u64,
    finalization_ms_p99: u64,
    weights_submitted_epoch: Option<u64>,
}

#[derive(serde::Deserialize)]
struct EpochWeights {
    submitted: Option<Submitted>,
}

/// Every validator's submission for each epoch of `epochs`.
async fn epoch_summaries(
    client: &reqwest::Client,
    apis: &[(String, String)],
    epochs: std::ops::Range<u64>,
) -> Vec<EpochSummary> {
    let mut out = Vec::new();
    for epoch in epochs {
        let mut validators = Vec::new();
        let mut seen: Vec<Option<Submitted>> = Vec::new();
        for (hotkey, api) in apis {
            let sub = get::<EpochWeights>(client, &format!("{api}/api/v1/epochs/{epoch}/weights"))
                .await
                .and_then(|w| w.submitted);
            validators.push(EpochValidator {
                hotkey: hotkey.clone(),
                uids: sub.as_ref().map(|s| s.uids.clone()),
                weights: sub.as_ref().map(|s| s.weights.clone()),
                chain_block: sub.as_ref().map(|s| s.chain_block),
            });
            seen.push(sub);
        }
        let first = seen.first().cloned().flatten();
        let weights_identical = first.is_some()
            && seen.iter().all(|s| {
                s.as_ref().map(|s| (&s.uids, &s.weights))
                    == first.as_ref().map(|f| (&f.uids, &f.weights))
            });
        out.push(EpochSummary {
            epoch,
            weights_identical,
            validators,
        });
    }
    out
}

#[derive(serde::Deserialize)]
struct BlockInfo {
    hash: String,
}

/// The hash of the block a validator finalized at `height` (`None`: it has none, or did not
/// answer in about a second).
pub(crate) async fn block_hash(client: &reqwest::Client, api: &str, height: u64) -> Option<String> {
    block_hash_within(client, api, height, Duration::from_secs(1))
        .await
        .ok()
        .flatten()
}

/// The hash of the block a validator finalized at `height`: `Ok(None)` when it answers that
/// it has no such block, `Err` with the last failure when it gives no answer (a timeout, a
/// closed connection, a server error) before `patience` is over. A validator busy on a
/// loaded machine may miss the client's timeout several times in a row; that is not a
/// disagreement.
pub(crate) async fn block_hash_within(
    client: &reqwest::Client,
    api: &str,
    height: u64,
    patience: Duration,
) -> Result<Option<String>, String> {
    let deadline = Instant::now() + patience;
    let url = format!("{api}/api/v1/blocks/{height}");
    loop {
        let failure = match client.get(&url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return Ok(None),
            Ok(r) if r.status().is_success() => match r.json::<BlockInfo>().await {
                Ok(b) => return Ok(Some(b.hash)),
                Err(e) => format!("an unreadable answer: {e}"),
            },
            Ok(r) => format!("HTTP {}", r.status()),
            // Nothing listens (the process is gone): no point waiting.
            Err(e) if e.is_connect() => return Err(format!("GET {url}: no answer: {e}")),
            Err(e) => format!("no answer: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("GET {url}: {failure}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn get<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str) -> Option<T> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// What the live panel shows besides the validators, from one validator's API (missing
/// parts stay empty).
async fn read_network(
    client: &reqwest::Client,
    api: &str,
    epoch: u64,
) -> crate::devnet_view::Network {
    let mut net = crate::devnet_view::Network::default();
    let challenges: Vec<serde_json::Value> = get(client, &format!("{api}/api/v1/challenges"))
        .await
        .unwrap_or_default();
    for c in &challenges {
        let id = c["id"].as_str().unwrap_or_default().to_string();
        let status = c["lifecycle"].as_str().unwrap_or_default().to_string();
        net.challenges
            .push((id, status, c["emission_bps"].as_u64().unwrap_or(0)));
    }
    for c in challenges.iter().filter(|c| !c["leader"].is_null()) {
        let id = c["id"].as_str().unwrap_or_default();
        let board: Vec<serde_json::Value> =
            get(client, &format!("{api}/api/v1/challenges/{id}/leaderboard"))
                .await
                .unwrap_or_default();
        let top = board
            .iter()
            .take(5)
            .map(|r| {
                (
                    r["miner"].as_str().unwrap_or_default().to_string(),
                    r["uid"].as_u64(),
                    r["score"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect::<Vec<_>>();
        if !top.is_empty() {
            net.leaderboard = Some((id.to_string(), top));
            break;
        }
    }
    if epoch > 0 {
        let w: Option<serde_json::Value> = get(
            client,
            &format!("{api}/api/v1/epochs/{}/weights", epoch - 1),
        )
        .await;
        if let Some(w) = w {
            let uids = w["uids"].as_array().cloned().unwrap_or_default();
            let ws = w["weights"].as_array().cloned().unwrap_or_default();
            let pairs = uids
                .iter()
                .zip(&ws)
                .map(|(u, w)| (u.as_u64().unwrap_or(0), w.as_u64().unwrap_or(0)))
                .collect();
            net.weights = Some((epoch - 1, pairs));
        }
    }
    net
}

/// Polls every validator, shows progress, and returns once `--blocks` are final everywhere
/// (or on Ctrl-C).
#[allow(clippy::too_many_arguments)]
async fn watch(
    args: &DevnetArgs,
    apis: &[(String, String)],
    pids: &[u32],
    (root, network_id): (&Path, platform_primitives::Hash),
    chain_url: &str,
    started: Instant,
    mut sampler: Option<&mut crate::soak::Sampler>,
) -> Result<DevnetSummary> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let start = Instant::now();
    let mut last_line = String::new();
    // Whether a signal (Ctrl-C, SIGTERM) ended the run rather than its goal.
    let mut signalled = false;
    // The owner's signed transactions go through the first validator's public API.
    let mut traffic = DevnetTraffic::new(args, &apis[0].1, network_id)?;
    // On a terminal, one panel redrawn in place; elsewhere, a line per change.
    let mut panel =
        (!args.json && std::io::stdout().is_terminal()).then(crate::devnet_view::Panel::default);
    if panel.is_some() {
        traffic.held = Some(Vec::new());
    }
    let mut rows: Vec<crate::devnet_view::Row> = apis
        .iter()
        .map(|(hotkey, api)| crate::devnet_view::Row {
            hotkey: hotkey.clone(),
            api: api.clone(),
            ..Default::default()
        })
        .collect();
    let mut drawn_at: Option<Instant> = None;
    // Ctrl-C or SIGTERM ends the run (the validators are stopped by the caller).
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut heights = vec![0u64; apis.len()];
    let mut epochs = vec![0u64; apis.len()];
    let mut submitted: Vec<Option<u64>> = vec![None; apis.len()];
    let mut latencies = vec![(0u64, 0u64); apis.len()];
    let mut answered = vec![false; apis.len()];
    let mut view = 0;
    let mut first_epoch_ms = None;
    // When every counted validator had finalized a block, and the height then.
    let mut first_block: Option<(Instant, u64)> = None;
    let mut epoch_list: Vec<EpochSummary> = Vec::new();
    // Validators that gossip forged anchors are banned by their peers and cut off; the goal
    // counts the others (the faulty ones are the last).
    let counted = apis.len()
        - (args.poison_anchors + args.flood_announces + args.garbage_gossip + args.flood_fetches)
            .min(apis.len() - 1);
    loop {
        for (i, (_, api)) in apis.iter().enumerate() {
            let status = get::<NodeStatus>(&client, &format!("{api}/api/v1/status")).await;
            rows[i].up = status.is_some();
            if let Some(s) = status {
                let r = &mut rows[i];
                (r.height, r.epoch, r.view) = (s.height, s.epoch, s.view);
                (r.peers, r.p99_ms) = (s.peers, s.finalization_ms_p99);
                r.submitted = s.weights_submitted_epoch;
                answered[i] = true;
                heights[i] = s.height;
                epochs[i] = s.epoch;
                submitted[i] = s.weights_submitted_epoch;
                latencies[i] = (s.finalization_ms_p50, s.finalization_ms_p99);
                if i == 0 {
                    view = s.view;
                }
            }
        }
        if let Some(p) = panel.as_mut() {
            for msg in traffic
                .held
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
            {
                p.event(msg);
            }
            if drawn_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                let network = read_network(&client, &apis[0].1, epochs[0]).await;
                let title = format!(
                    "devnet: {} validators, LocalChain {chain_url} (data in {})",
                    apis.len(),
                    root.display()
                );
                p.draw(&p.text(&title, &rows, &network));
                drawn_at = Some(Instant::now());
            }
        } else if !args.json {
            let line = format!(
                "epoch {:?}  view {view:>4}  finalized {heights:?}  weights submitted for epoch {}",
                epochs,
                submitted
                    .iter()
                    .map(|s| s.map_or("-".to_string(), |e| e.to_string()))
                    .collect::<Vec<_>>()
                    .join("/")
            );
            if line != last_line {
                println!("{line}");
                last_line = line;
            }
        }
        if let Some(s) = sampler.as_deref_mut() {
            let p99s: Vec<u64> = latencies.iter().map(|l| l.1).collect();
            s.observe(
                &client,
                &apis[..counted],
                &heights[..counted],
                &p99s[..counted],
            )
            .await;
        }
        if first_epoch_ms.is_none() && epochs[..counted].iter().all(|e| *e >= 1) {
            first_epoch_ms = Some(started.elapsed().as_millis() as u64);
        }
        // A validator that stopped before it ever answered will not reach the goal: say why
        // now, not at the timeout. (One that stops later may be restarted by hand, as the
        // tests do; the devnet keeps waiting for it.)
        if let Some(i) = (0..counted)
            .find(|&i| !answered[i] && pids.get(i).is_some_and(|p| crate::soak::exited(*p)))
        {
            let uri = &genesis::dev_validator_uris(apis.len())[i];
            let dir = root.join(uri.trim_start_matches("//").to_lowercase());
            bail!(
                "validator {} stopped: {} (log in {})",
                apis[i].0,
                log_tail(&dir.join("node.log")),
                dir.display()
            );
        }
        let min = heights[..counted].iter().copied().min().unwrap_or(0);
        if min >= 1 && first_block.is_none() {
            first_block = Some((Instant::now(), min));
        }
        if min >= 1 {
            let reached = args.blocks.is_some_and(|target| min >= target)
                || args.epochs.is_some_and(|n| epochs[0] >= n);
            traffic.step(&client, args.json, epochs[0], reached).await;
        }
        // With --blocks, stop once that many are final everywhere and every submission the
        // miners made is settled (certified or expired).
        if args.blocks.is_some_and(|target| min >= target) && traffic.settled(&client).await {
            break;
        }
        // Read each epoch's submissions as soon as every validator has made its own: the
        // state prunes the oldest epochs' records as later epochs close, so by the end of a
        // long run the first ones are gone.
        if let Some(n) = args.epochs {
            let done = submitted[..counted]
                .iter()
                .map(|s| s.map_or(0, |e| e + 1))
                .min()
                .unwrap_or(0)
                .min(n);
            let next = epoch_list.len() as u64;
            if next < done {
                epoch_list.extend(epoch_summaries(&client, &apis[..counted], next..done).await);
            }
        }
        // With --epochs, stop once every validator has submitted the last epoch's weights
        // (and, with timelocked commits, once the chain has revealed every one of them).
        if let Some(n) = args.epochs
            && n > 0
            && submitted[..counted]
                .iter()
                .all(|s| s.is_some_and(|e| e + 1 >= n))
            && (!timelocked_mode(args)
                || timelocked_status(&client, chain_url)
                    .await
                    .is_some_and(|t| t.revealed + t.failed >= counted as u64 * n))
        {
            break;
        }
        if (args.blocks.is_some() || args.epochs.is_some())
            && start.elapsed() > Duration::from_secs(args.timeout_secs)
        {
            bail!(
                "the devnet did not reach its goal within {} s: finalized heights {heights:?}, \
                 epochs {epochs:?}, weights submitted for epochs {submitted:?} (logs in {})",
                args.timeout_secs,
                root.display()
            );
        }
        tokio::select! {
            _ = &mut stop => {
                signalled = true;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    let target = heights[..counted].iter().copied().min().unwrap_or(0);
    let mut validators = Vec::new();
    for (i, (hotkey, api)) in apis.iter().enumerate() {
        let (hash, hash_error) = if target > 0 {
            // Stopped by a signal, the devnet must exit promptly; at its goal, a busy
            // validator gets time to answer.
            let patience = Duration::from_secs(if signalled { 2 } else { 15 });
            match block_hash_within(&client, api, target, patience).await {
                Ok(Some(hash)) => (Some(hash), None),
                Ok(None) => (None, Some(format!("it has no finalized block at {target}"))),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        let text = match client.get(format!("{api}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let refused = refusals(&text);
        let blobs_collected = crate::soak::metric(&text, "platform_blobs_collected_total");
        let dht_provider_records = crate::soak::metric(&text, "platform_dht_provider_records")
            + crate::soak::metric(&text, "platform_dht_provided_keys");
        let state_entries = crate::soak::metric(&text, "platform_state_entries");
        let state_pruned = crate::soak::metric(&text, "platform_state_pruned_total");
        let pid = pids.get(i).copied().unwrap_or(0);
        validators.push(DevnetValidator {
            hotkey: hotkey.clone(),
            api: api.clone(),
            height: heights[i],
            hash_at_target: hash,
            hash_error,
            finalization_ms_p50: latencies[i].0,
            finalization_ms_p99: latencies[i].1,
            refused,
            blobs_collected,
            dht_provider_records,
            state_entries,
            state_pruned,
            finalized: crate::soak::metric(&text, "platform_finalized_blocks_total"),
            module_waits: crate::soak::metric_sum(&text, "platform_epoch_close_module_waits_total"),
            inputs_dropped: labelled_pairs(
                &text,
                "platform_inputs_dropped_total",
                ("input", "reason"),
            ),
            mempool_dropped: labelled_pairs(
                &text,
                "platform_mempool_dropped_total",
                ("kind", "reason"),
            ),
            gossip_rejected: labelled_pairs(
                &text,
                "platform_mempool_offers_total",
                ("source", "result"),
            )
            .get("gossip/rejected")
            .copied()
            .unwrap_or(0),
            signature_checks: crate::soak::metric(
                &text,
                "platform_consensus_signature_checks_total",
            ),
            direct_sent: crate::soak::metric(&text, "platform_network_direct_sent_total"),
            cpu_ms: crate::soak::cpu_ms(pid),
            rss_mb: crate::soak::rss_kib(pid) / 1024,
            evaluations: crate::soak::metric(&text, "platform_evaluations_total"),
            evaluation_ms: (crate::soak::metric_f64(&text, "platform_evaluation_seconds_total")
                * 1000.0) as u64,
        });
    }
    let blocks_per_sec = first_block.map_or(0.0, |(at, h0)| {
        target.saturating_sub(h0) as f64 / at.elapsed().as_secs_f64().max(1e-3)
    });
    let tally = traffic.tally(&client).await;
    let scale = ScaleFigures::of(&validators[..counted], blocks_per_sec, tally.ordered);
    let first = validators.first().and_then(|v| v.hash_at_target.clone());
    // A validator cut off by its peers may not hold the target block; those that do agree.
    let all_identical = target > 0
        && first.is_some()
        && validators[..counted]
            .iter()
            .all(|v| v.hash_at_target == first)
        && validators[counted..]
            .iter()
            .all(|v| v.hash_at_target.is_none() || v.hash_at_target == first);
    let leaders = traffic.leaders(&client).await;
    // The epochs every validator has submitted weights for: all of --epochs when the run
    // reached its goal, fewer when it was stopped (Ctrl-C, SIGTERM) before — never the
    // epochs that did not happen, which would cost a request each.
    let closed = submitted[..counted]
        .iter()
        .map(|s| s.map_or(0, |e| e + 1))
        .min()
        .unwrap_or(0);
    let wanted = args.epochs.unwrap_or(0).min(closed);
    if (epoch_list.len() as u64) < wanted {
        let next = epoch_list.len() as u64;
        epoch_list.extend(epoch_summaries(&client, &apis[..counted], next..wanted).await);
    }
    let disagreements = epoch_list.iter().filter(|e| !e.weights_identical).count();
    // A submission shows in the chain's rows once a chain block includes it: when epochs
    // closed under --epochs, give the last ones a few chain blocks.
    let deadline = Instant::now() + Duration::from_millis(10 * args.chain_block_ms);
    let chain_weights = loop {
        let rows =
            get::<Vec<serde_json::Value>>(&client, &format!("{chain_url}/v1/subnets/1/weights"))
                .await
                .unwrap_or_default();
        if wanted == 0 || rows.len() >= counted || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let timelocked = if timelocked_mode(args) {
        timelocked_status(&client, chain_url).await
    } else {
        None
    };
    // Timelocked commits: every one opened, and the chain holds the same row for every
    // validator (they committed the same weights).
    let revealed_identical = timelocked.as_ref().is_none_or(|t| {
        t.failed == 0
            && chain_weights.len() >= counted
            && chain_weights.iter().all(|w| {
                (&w["uids"], &w["weights"])
                    == (&chain_weights[0]["uids"], &chain_weights[0]["weights"])
            })
    });
    let all_identical = all_identical && disagreements == 0 && revealed_identical;
    let jailed =
        get::<Vec<serde_json::Value>>(&client, &format!("{}/api/v1/validators", apis[0].1))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !v["jailed_until"].is_null())
            .filter_map(|v| v["hotkey"].as_str().map(str::to_string))
            .collect();
    Ok(DevnetSummary {
        epochs: epoch_list,
        disagreements,
        chain_weights,
        timelocked,
        first_epoch_closed_ms: first_epoch_ms,
        jailed,
        validators,
        challenges_active: traffic.active,
        submissions_admitted: traffic.admitted.len(),
        submissions_refused: traffic.refused.clone(),
        submissions_in_blocks: tally.ordered,
        submissions_evaluated: tally.certified,
        submissions_expired: tally.expired,
        replacements: tally.replacements,
        leaders,
        scale,
        blocks_finalized: target,
        all_identical,
        data_dir: root.display().to_string(),
    })
}

/// `platform submit`.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// A validator's API, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    node: String,
    /// The challenge to submit to.
    #[arg(long)]
    challenge: String,
    /// The payload file.
    #[arg(long)]
    payload: PathBuf,
    /// The miner's hotkey: a dev URI, a wallet hotkey file, or a keystore name (with --data-dir).
    /// Or give the wallet options.
    #[arg(long, required_unless_present = "wallet_name")]
    hotkey: Option<String>,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Where to look up a keystore name.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Wait until the submission is certified (print its score) or expires.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Print the receipt as JSON.
    #[arg(long)]
    json: bool,
}

/// Signs `payload` for `challenge` with `key` as a submission request for `netuid`; the nonce
/// is the current time in nanoseconds, so repeated submissions differ.
fn submission_request(
    key: &platform_crypto::Keypair,
    (netuid, network): (u16, platform_primitives::Hash),
    challenge: &str,
    payload: Vec<u8>,
) -> Result<Vec<u8>> {
    use platform_primitives::{ChallengeId, Hash, NetUid, Submission};
    let submission = Submission {
        challenge: ChallengeId::new(challenge).map_err(|e| anyhow::anyhow!("--challenge: {e}"))?,
        miner: key.hotkey(),
        payload_hash: Hash::of(&payload),
        payload_len: payload.len() as u64,
        nonce: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    };
    let signature = key.sign(
        platform_crypto::Domain::Submission,
        &platform_state::SubmitTx::signing_bytes(NetUid(netuid), &network, &submission),
    );
    Ok(platform_primitives::encode(
        &platform_node::api::SubmissionRequest {
            tx: platform_state::SubmitTx {
                submission,
                signature: Some(signature),
            },
            payload,
        },
    ))
}

/// POSTs Borsh bytes to a validator's public API.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<(reqwest::StatusCode, serde_json::Value)> {
    let res = client
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let code = res.status();
    let value = res.json().await.unwrap_or(serde_json::Value::Null);
    Ok((code, value))
}

pub fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let key = crate::chain::wallet_key(
        args.hotkey.as_deref(),
        &args.wallet,
        args.data_dir.as_deref(),
    )?;
    let payload = std::fs::read(&args.payload)
        .with_context(|| format!("cannot read {}", args.payload.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use platform_node::rpc::PlatformRpcClient;
        let base = args.node.trim_end_matches('/');
        let client = rpc_client(base).await?;
        let status = client
            .status()
            .await
            .with_context(|| format!("reading the status of the node at {base}"))?;
        let genesis = platform_primitives::Hash::from_hex(&status.network_id)
            .map_err(|e| anyhow::anyhow!("the node at {base} reports no genesis hash: {e}"))?;
        let body = submission_request(&key, (status.netuid, genesis), &args.challenge, payload)?;
        let receipt = client
            .submit(hex::encode(body))
            .await
            .map_err(|e| anyhow::anyhow!("the node refused the submission: {}", rpc_reason(&e)))?;
        let id = receipt.submission_id.clone();
        if !args.wait {
            if args.json {
                output::json(&receipt);
            } else {
                println!("submission {id} accepted, pending ordering and evaluation");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !args.json {
            println!("submission {id} accepted; waiting for its committee to certify it");
        }
        // The node sends the submission's view whenever it changes, the last once settled.
        let mut changes = client
            .subscribe_submission(id.clone())
            .await
            .context("subscribing to the submission's result")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
        loop {
            let view = match tokio::time::timeout_at(deadline, changes.next()).await {
                Err(_) => bail!(
                    "submission {id} is still pending after {} s",
                    args.timeout_secs
                ),
                Ok(None) => bail!("the node closed the subscription before {id} was settled"),
                Ok(Some(v)) => v.context("the node sent a malformed submission view")?,
            };
            if !view.settled() {
                continue;
            }
            if args.json {
                output::json(&view);
            } else if view.status == "certified" {
                println!(
                    "certified: score {}",
                    view.score
                        .as_deref()
                        .unwrap_or("none (the evaluation failed)")
                );
            } else {
                println!("{}: no certificate could be formed", view.status);
            }
            return Ok(if view.status == "certified" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    })
}

/// A JSON-RPC client of the node whose HTTP API is at `base` (`http://host:port`): its
/// WebSocket endpoint, `ws://host:port/rpc`.
pub(crate) async fn rpc_client(base: &str) -> Result<jsonrpsee::ws_client::WsClient> {
    let url = match base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}/rpc"),
        Some((_, rest)) => format!("ws://{rest}/rpc"),
        None => format!("ws://{base}/rpc"),
    };
    jsonrpsee::ws_client::WsClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(&url)
        .await
        .with_context(|| format!("cannot reach the node's JSON-RPC at {url}"))
}

/// The reason in a JSON-RPC error.
fn rpc_reason(e: &jsonrpsee::core::ClientError) -> String {
    match e {
        jsonrpsee::core::ClientError::Call(err) => err.message().to_string(),
        other => other.to_string(),
    }
}

/// Variant `k` of a TSP submission (a Borsh `Vec<u16>` tour): the same cycle started `k`
/// cities later (`k < n`), or traversed backwards from city `k - n` (`n ≤ k < 2n`) — the same
/// length and score in different bytes. Past the 2n variants the ones from `keep` on are used
/// again in turn (the first `keep` are the miners' first submissions, which stay their best
/// results and so stay known to the state; the others have been pruned from it by then, see
/// the genesis parameter `retain_epochs`), so the miners never run out. `None` when there is
/// nothing to reuse.
fn tour_variant(payload: &[u8], k: usize, keep: usize) -> Result<Option<Vec<u8>>> {
    let mut tour: Vec<u16> = platform_primitives::decode("tour", payload, payload.len())
        .context("a TSP payload is not a Borsh Vec<u16>")?;
    let n = tour.len();
    let k = if k < 2 * n {
        k
    } else if keep < 2 * n {
        keep + (k - keep) % (2 * n - keep)
    } else {
        return Ok(None);
    };
    if k >= n {
        tour.reverse();
    }
    tour.rotate_left(k % n);
    Ok(Some(platform_primitives::encode(&tour)))
}

/// What became of the devnet's submissions.
#[derive(Default)]
struct Tally {
    /// Carried into the state by a finalized block.
    ordered: usize,
    certified: usize,
    expired: usize,
    replacements: Vec<serde_json::Value>,
}

/// The devnet's owner and miners: the owner (//Alice) publishes and activates the example
/// challenges through signed `Sudo` transactions that go through consensus; then miners
/// //Miner1 … //MinerN (`--miners`, default 6) each submit one payload per challenge —
/// payloads of different quality (`scenarios/payloads`, scored in docs/scenarios.md).
struct DevnetTraffic {
    api: String,
    /// The devnet's network id (signed with every transaction).
    network_id: platform_primitives::Hash,
    /// For transactions: a validator's API under an evaluation burst may take seconds to admit
    /// one, longer than the polling client's timeout.
    posting: reqwest::Client,
    modules: Vec<(String, Vec<u8>)>,
    /// Each module's assets (its source folder's `assets/`), uploaded with its publish.
    assets: BTreeMap<String, Vec<Vec<u8>>>,
    payloads: PathBuf,
    stage: u8,
    nonce: u64,
    active: usize,
    admitted: Vec<String>,
    /// Miners' submissions the API refused or did not answer: why, one line each.
    refused: Vec<String>,
    /// The records of admitted submissions last seen settled (certified or expired), kept
    /// because the state prunes settled records `retain_epochs` epochs later.
    outcomes: BTreeMap<String, serde_json::Value>,
    /// When `outcomes` was last brought up to date.
    followed: Option<Instant>,
    /// Submissions the API did not know, since when.
    missing: BTreeMap<String, Instant>,
    miners: u16,
    committee_size: Option<u16>,
    /// Submit again every epoch (`--resubmit`).
    resubmit: bool,
    /// The epoch of the last round of submissions, and how many rounds there were.
    mined_epoch: Option<u64>,
    rounds: usize,
    /// Messages held for the live panel instead of printed (`Some` when it shows).
    held: Option<Vec<String>>,
}

impl DevnetTraffic {
    fn new(
        args: &DevnetArgs,
        api: &str,
        network_id: platform_primitives::Hash,
    ) -> Result<DevnetTraffic> {
        let mut modules = Vec::new();
        let mut assets = BTreeMap::new();
        for name in ["tsp", "classifier"] {
            let path = args.challenges.join(format!("{name}.wasm"));
            match std::fs::read(&path) {
                Ok(bytes) => {
                    // The source folder beside the build (`challenges/<name>/assets/`).
                    let source = args.challenges.join("../../..").join(name);
                    let files = platform_runtime::fixtures::challenge_assets(&source)
                        .with_context(|| format!("reading the assets of {name}"))?;
                    assets.insert(name.to_string(), files);
                    modules.push((name.to_string(), bytes));
                }
                Err(_) => {
                    if !args.json {
                        println!(
                            "no {} (build the examples: cd challenges && cargo build --release); \
                             running without challenges",
                            path.display()
                        );
                    }
                }
            }
        }
        Ok(DevnetTraffic {
            api: api.to_string(),
            network_id,
            posting: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            modules,
            assets,
            payloads: args.payloads.clone(),
            stage: 0,
            nonce: 0,
            active: 0,
            admitted: Vec::new(),
            refused: Vec::new(),
            outcomes: BTreeMap::new(),
            followed: None,
            missing: BTreeMap::new(),
            miners: args.miners,
            committee_size: args.committee_size.or((args.validators
                > usize::from(DEVNET_MAX_DEFAULT_COMMITTEE))
            .then_some(DEVNET_MAX_DEFAULT_COMMITTEE)),
            resubmit: args.resubmit,
            mined_epoch: None,
            rounds: 0,
            held: None,
        })
    }

    async fn sudo(
        &mut self,
        action: platform_state::SudoAction,
        blobs: Vec<Vec<u8>>,
    ) -> Result<()> {
        let owner = parse_suri("//Alice")?;
        self.nonce += 1;
        let network = (platform_primitives::NetUid(1), self.network_id);
        let tx = crate::owner::sudo_tx(&owner, network, self.nonce, action);
        let body =
            platform_primitives::encode(&platform_node::api::TransactionRequest { tx, blobs });
        let url = format!("{}/api/v1/transactions", self.api);
        let (code, v) = post(&self.posting, &url, body).await?;
        if !code.is_success() {
            bail!("the owner's transaction was refused ({code}): {v}");
        }
        Ok(())
    }

    /// Each challenge's id, lifecycle, and whether it can be activated: it has no assets, or
    /// validators holding more than 2/3 of the stake hold them.
    async fn challenges(&self, client: &reqwest::Client) -> Vec<(String, String, bool)> {
        get::<Vec<serde_json::Value>>(client, &format!("{}/api/v1/challenges", self.api))
            .await
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let ready = u128::from(c["assets_ready_stake"].as_u64().unwrap_or(0));
                let total = u128::from(c["total_stake"].as_u64().unwrap_or(0));
                let no_assets = c["assets"].as_array().is_none_or(Vec::is_empty);
                (
                    c["id"].as_str().unwrap_or("").to_string(),
                    c["lifecycle"].as_str().unwrap_or("").to_string(),
                    no_assets || ready * 3 > total * 2,
                )
            })
            .collect()
    }

    /// Prints `msg`, or holds it for the live panel.
    fn say(&mut self, msg: String) {
        match &mut self.held {
            Some(held) => held.push(msg),
            None => println!("{msg}"),
        }
    }

    /// Advances: publish → wait → activate → wait → miners submit (and, with --resubmit,
    /// submit again in each later `epoch` until the run's goal is `reached`).
    async fn step(&mut self, client: &reqwest::Client, quiet: bool, epoch: u64, reached: bool) {
        if self.modules.is_empty() {
            return;
        }
        let result = match self.stage {
            0 => self.publish().await,
            1 => self.wait_for(client, "draft", 2).await,
            2 => self.activate().await,
            3 => self.wait_for(client, "active", 4).await,
            4 => self.mine(quiet, epoch).await,
            5 if self.resubmit && !reached && self.mined_epoch.is_some_and(|e| epoch > e) => {
                self.mine(quiet, epoch).await
            }
            5 => {
                self.follow(client, false).await;
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            if !quiet {
                self.say(format!("devnet: {e:#}"));
            }
            self.stage = 5;
            self.resubmit = false;
        }
    }

    async fn publish(&mut self) -> Result<()> {
        let modules = self.modules.clone();
        let (tsp_bps, classifier_bps) = (6_000, 3_000);
        for (name, wasm) in modules {
            let files = self.assets.get(&name).cloned().unwrap_or_default();
            let (scoring, emission_bps) = if name == "tsp" {
                (
                    platform_state::ScoringRule::TopK {
                        k: 3,
                        decay_bps: 5_000,
                    },
                    tsp_bps,
                )
            } else {
                (platform_state::ScoringRule::Module, classifier_bps)
            };
            let meta = platform_state::ChallengeMeta {
                id: platform_primitives::ChallengeId::new(&name).expect("valid id"),
                name: name.clone(),
                version: 1,
                wasm_hash: platform_primitives::Hash::of(&wasm),
                abi_version: platform_runtime::abi::ABI_VERSION,
                resources: platform_state::Resources::default(),
                committee_size: self.committee_size,
                emission_bps,
                scoring,
                assets: files
                    .iter()
                    .map(|bytes| platform_state::Asset {
                        url: String::new(),
                        blake3: platform_primitives::Hash::of(bytes),
                        max_bytes: bytes.len() as u64,
                    })
                    .collect(),
            };
            let mut blobs = vec![wasm];
            blobs.extend(files);
            self.sudo(platform_state::SudoAction::Publish(meta), blobs)
                .await?;
        }
        self.stage = 1;
        Ok(())
    }

    async fn wait_for(
        &mut self,
        client: &reqwest::Client,
        lifecycle: &str,
        next: u8,
    ) -> Result<()> {
        // A draft is activated once the validators hold its assets.
        let list = self.challenges(client).await;
        let ready = list
            .iter()
            .filter(|(_, l, can_activate)| l == lifecycle && (*can_activate || l != "draft"))
            .count();
        if ready == self.modules.len() {
            if lifecycle == "active" {
                self.active = ready;
            }
            self.stage = next;
        }
        Ok(())
    }

    async fn activate(&mut self) -> Result<()> {
        for (name, _) in self.modules.clone() {
            self.sudo(
                platform_state::SudoAction::Transition {
                    challenge: platform_primitives::ChallengeId::new(&name).expect("valid id"),
                    to: platform_state::Lifecycle::Active,
                },
                Vec::new(),
            )
            .await?;
        }
        self.stage = 3;
        Ok(())
    }

    async fn mine(&mut self, quiet: bool, epoch: u64) -> Result<()> {
        const QUALITIES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
        let round = self.rounds;
        let before = self.admitted.len();
        let miners = usize::from(self.miners);
        // Miners i, i + 6, i + 12, … share payload letter i % 6; each takes its own variant
        // (`slot`), and each round moves every miner to variants not used before.
        let per_letter = miners.div_ceil(QUALITIES.len());
        for i in 0..miners {
            let letter = QUALITIES[i % QUALITIES.len()];
            let slot = i / QUALITIES.len();
            let miner = parse_suri(&format!("//Miner{}", i + 1))?;
            for (name, _) in self.modules.clone() {
                let path = self.payloads.join(format!("{name}-{letter}.bin"));
                let Ok(mut payload) = std::fs::read(&path) else {
                    continue;
                };
                if name == "tsp" {
                    match tour_variant(&payload, round * per_letter + slot, per_letter)? {
                        Some(v) => payload = v,
                        None => continue,
                    }
                } else if round > 0 || slot > 0 {
                    // No variants of the same quality: submitted once, by one miner a letter.
                    continue;
                }
                let body = submission_request(&miner, (1, self.network_id), &name, payload)?;
                let url = format!("{}/api/v1/submissions", self.api);
                // A miner whose request fails is reported, and the others still submit.
                let refusal = match post(&self.posting, &url, body).await {
                    Ok((code, v)) if code.is_success() => {
                        self.admitted
                            .push(v["submission_id"].as_str().unwrap_or("").to_string());
                        continue;
                    }
                    Ok((code, v)) => format!("refused ({code}): {v}"),
                    Err(e) => format!("{e:#}"),
                };
                let line = format!("miner {} ({name}): {refusal}", i + 1);
                if !quiet {
                    self.say(format!("devnet: a miner's submission failed: {line}"));
                }
                self.refused.push(line);
            }
        }
        if !quiet {
            self.say(format!(
                "devnet: {}miners submitted {} payloads in epoch {epoch}",
                if round == 0 {
                    "challenges active; "
                } else {
                    ""
                },
                self.admitted.len() - before
            ));
        }
        self.rounds += 1;
        self.mined_epoch = Some(epoch);
        self.stage = 5;
        Ok(())
    }

    /// Reads the record of every admitted submission not yet seen settled and keeps those now
    /// settled. At most once a second unless `now`.
    async fn follow(&mut self, client: &reqwest::Client, now: bool) {
        if !now
            && self
                .followed
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.followed = Some(Instant::now());
        for id in &self.admitted {
            if self.outcomes.contains_key(id) {
                continue;
            }
            let url = format!("{}/api/v1/submissions/{id}", self.api);
            let Ok(r) = client.get(&url).send().await else {
                continue;
            };
            // Gone from the mempool without being ordered (refused by a block) for 15 s:
            // settled too.
            if r.status() == reqwest::StatusCode::NOT_FOUND {
                let since = *self.missing.entry(id.clone()).or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(15) {
                    let gone = serde_json::json!({ "status": "dropped", "in_block": false });
                    self.outcomes.insert(id.clone(), gone);
                }
                continue;
            }
            self.missing.remove(id);
            if let Ok(v) = r.json::<serde_json::Value>().await
                && (v["status"] == "certified" || v["status"] == "expired")
            {
                self.outcomes.insert(id.clone(), v);
            }
        }
    }

    /// What became of the admitted submissions, as the first validator's state holds it (or
    /// held it when they settled).
    async fn tally(&mut self, client: &reqwest::Client) -> Tally {
        self.follow(client, true).await;
        let mut t = Tally::default();
        for id in &self.admitted {
            let current = match self.outcomes.get(id) {
                Some(v) => Some(v.clone()),
                None => {
                    get::<serde_json::Value>(
                        client,
                        &format!("{}/api/v1/submissions/{id}", self.api),
                    )
                    .await
                }
            };
            if let Some(v) = current {
                t.ordered += usize::from(v["in_block"] == true);
                t.certified += usize::from(v["status"] == "certified");
                t.expired += usize::from(v["status"] == "expired");
                if v["dropped"].as_array().is_some_and(|d| !d.is_empty()) {
                    t.replacements.push(serde_json::json!({
                        "submission_id": id,
                        "status": v["status"],
                        "dropped": v["dropped"],
                        "committee": v["committee"],
                        "signers": v["signers"],
                    }));
                }
            }
        }
        t
    }

    /// Whether the simulation is done: nothing to publish, or every admitted submission is
    /// certified or expired.
    async fn settled(&mut self, client: &reqwest::Client) -> bool {
        if self.modules.is_empty() || self.stage == 5 && self.admitted.is_empty() {
            return true;
        }
        if self.stage != 5 {
            return false;
        }
        self.follow(client, true).await;
        self.outcomes.len() == self.admitted.len()
    }

    /// The leading miner of each challenge, as the state holds it.
    async fn leaders(&self, client: &reqwest::Client) -> Vec<serde_json::Value> {
        get::<Vec<serde_json::Value>>(client, &format!("{}/api/v1/challenges", self.api))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|c| serde_json::json!({ "challenge": c["id"], "leader": c["leader"] }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tour_variants_are_the_same_cycle_in_distinct_bytes() {
        let tour: Vec<u16> = vec![3, 1, 4, 0, 2];
        let bytes = platform_primitives::encode(&tour);
        let decode =
            |b: &[u8]| -> Vec<u16> { platform_primitives::decode("tour", b, 100).unwrap() };
        let variants: Vec<Vec<u8>> = (0..10)
            .map(|k| tour_variant(&bytes, k, 2).unwrap().unwrap())
            .collect();
        assert_eq!(variants[0], bytes);
        assert_eq!(decode(&variants[2]), vec![4, 0, 2, 3, 1]);
        assert_eq!(decode(&variants[5]), vec![2, 0, 4, 1, 3]);
        let distinct: std::collections::BTreeSet<_> = variants.iter().collect();
        assert_eq!(distinct.len(), 10);
        // Past the ten, variants 2..10 come round again; the first two (the miners' firsts,
        // kept by the state for good) never do.
        assert_eq!(
            tour_variant(&bytes, 10, 2).unwrap().as_ref(),
            Some(&variants[2])
        );
        assert_eq!(
            tour_variant(&bytes, 17, 2).unwrap().as_ref(),
            Some(&variants[9])
        );
        assert_eq!(
            tour_variant(&bytes, 18, 2).unwrap().as_ref(),
            Some(&variants[2])
        );
        assert_eq!(tour_variant(&bytes, 10, 10).unwrap(), None);
        assert!(tour_variant(&[1, 2], 1, 0).is_err());
    }

    #[test]
    fn refusals_are_read_from_the_metrics_text() {
        let text = "# TYPE platform_network_rejected_total counter\n\
            platform_network_rejected_total{channel=\"submissions\",reason=\"epoch_transaction\"} 7\n\
            platform_network_rejected_total{channel=\"consensus\",reason=\"bad_signature\"} 2\n\
            platform_network_bans_total 0\n";
        let r = refusals(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r["submissions/epoch_transaction"], 7);
        assert_eq!(r["consensus/bad_signature"], 2);
    }
}
