//! `platform`: the command-line tool of the Platform validator network.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod bench;
mod bench_api;
mod bench_gossip;
mod bench_mempool;
mod bench_network;
mod bench_runtime;
mod bench_scale;
mod bench_state;
mod chain;
mod challenge;
mod devnet_view;
mod inspect;
mod keys;
mod node;
mod output;
mod owner;
mod replay;
mod scaffold;
mod scenario;
mod sim;
mod snapshot;
mod soak;
mod status;
mod wallet;

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PLATFORM_GIT_COMMIT"),
    ")"
);

/// Platform: a peer-to-peer network of Bittensor subnet validators that score miners with
/// WebAssembly challenges, agree on every result by stake-weighted BFT consensus, and submit
/// one identical weight vector to the chain each epoch.
#[derive(Parser, Debug)]
#[command(name = "platform", version = VERSION, propagate_version = true)]
struct Cli {
    /// Log more detail to stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, import and inspect sr25519 hotkeys (Bittensor wallet compatible).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The subnet owner's actions: publish, activate, deprecate, retire a challenge; set its
    /// emission share; set the network parameters. Signed with the owner's key and sent to any
    /// validator's public API (no operator token); each prints its finalized outcome.
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
    /// Check and read a data directory's hash-chained audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Measure this machine against Platform's performance targets.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the consensus engine in the deterministic simulator.
    Sim(sim::SimArgs),
    /// Create, build, inspect and test WebAssembly challenge modules.
    #[command(subcommand)]
    Challenge(challenge::ChallengeCommand),
    /// Run scenario files through the state machine: see the weights a scoring rule produces.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Run LocalChain: an embedded simulation of subtensor (metagraph, weights, commit-reveal)
    /// served over loopback HTTP, for development and the devnet.
    Localchain(chain::LocalChainArgs),
    /// Read the metagraph and weights of a chain, set weights, register (LocalChain).
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Derive a subnet's genesis from the chain at a block: its metagraph, its owner, and the
    /// key bindings of the validators whose peer records the chain held by then.
    Genesis(node::GenesisArgs),
    /// Create a validator's data directory: config, genesis (--dev: a dev network's), keys.
    Init(node::InitArgs),
    /// Run a validator: consensus with its peers, the replicated state, the HTTP API.
    Run(node::RunArgs),
    /// Run a whole network on this machine: one validator process per dev validator, with
    /// live progress; --blocks N stops after N finalized blocks and checks they agree.
    Devnet(node::DevnetArgs),
    /// Submit a payload to a challenge as a miner, through a validator's API.
    Submit(node::SubmitArgs),
    /// Show a validator's status: height, epoch, view and leader, peers, the stake it hears
    /// from, the partition alarm, finality.
    Status(status::StatusArgs),
    /// Show a validator's connected peers: the validator each is bound to (with its stake),
    /// address and ping; then the epoch's validators it has no connection to.
    Peers(status::PeersArgs),
    /// Show where a stopped validator's data directory spends its space: each top-level entry
    /// and each database table (entries and bytes).
    Inspect(inspect::InspectArgs),
    /// Inspect and verify state snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Re-execute a stopped validator's stored finalized blocks on a fresh state (from the
    /// genesis, or from its newest snapshot when older blocks were pruned) and check every
    /// state root against the certified headers; exits 1 at the first divergence.
    Replay(replay::ReplayArgs),
    /// Compile a module from stdin under resource limits (used internally by the runtime).
    #[command(hide = true)]
    RuntimeCompileWorker {
        /// CPU seconds allowed.
        #[arg(long)]
        cpu_seconds: u64,
        /// Address space allowed, bytes.
        #[arg(long)]
        memory_bytes: u64,
        /// The runtime policy (Borsh, hex) whose engine configuration to compile for; default:
        /// the default policy.
        #[arg(long)]
        policy: Option<String>,
    },
}

/// The data directory option shared by commands that use one.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDirArg {
    /// Data directory of the node (keys, database, blobs, audit log).
    #[arg(long = "data-dir", env = "PLATFORM_DATA_DIR", default_value_os_t = default_data_dir())]
    pub path: PathBuf,
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".platform"),
        |h| PathBuf::from(h).join(".platform"),
    )
}

/// The allocator is jemalloc, not glibc's malloc. glibc gives threads that allocate at once
/// arenas of their own and returns little of what they free: over 20,000 blocks of `platform
/// bench soak` a validator's resident set kept growing after its live heap had stopped
/// (docs/BENCHMARKS.md, "Long run").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // gossipsub warns when a validator's GRAFT races its promotion to an explicit peer (every
    // validator is one); harmless, so shown only with -v.
    let gossipsub = if cli.verbose == 0 {
        tracing::Level::ERROR
    } else {
        level
    };
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_target(false)
            .finish()
            .with(
                tracing_subscriber::filter::Targets::new()
                    .with_default(level)
                    .with_target("libp2p_gossipsub", gossipsub),
            )
            .init();
    }
    let result = match cli.command {
        Command::Keys(cmd) => keys::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Genesis(args) => node::genesis_from_chain(args),
        Command::Init(args) => node::init(args),
        Command::Run(args) => node::run(args),
        Command::Devnet(mut args) => {
            args.verbose = cli.verbose;
            node::devnet(args)
        }
        Command::Submit(args) => node::submit(args),
        Command::Status(args) => status::run(args),
        Command::Peers(args) => status::peers(args),
        Command::Sim(args) => sim::run_sim(args),
        Command::Challenge(cmd) => challenge::run(cmd),
        Command::Scenario(cmd) => scenario::run(cmd),
        Command::Inspect(args) => inspect::run(args),
        Command::Snapshot(cmd) => snapshot::run(cmd),
        Command::Replay(args) => replay::run(args),
        Command::Localchain(args) => chain::run_localchain(args),
        Command::Chain(cmd) => chain::run(cmd),
        Command::Owner(cmd) => owner::run(cmd),
        Command::RuntimeCompileWorker {
            cpu_seconds,
            memory_bytes,
            policy,
        } => challenge::compile_worker(cpu_seconds, memory_bytes, policy.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
