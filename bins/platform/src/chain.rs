//! `platform localchain` and `platform chain …`: the chain Platform reads its metagraph from and
//! writes weights to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use platform_chain::local::genesis::{self, GenesisFile};
use platform_chain::local::{LocalChain, LocalChainClient, server};
use platform_chain::retry::Retry;
use platform_chain::{AnyChain, is_subtensor_url};
use platform_chain::{Chain, ValidatorWeights};
use platform_crypto::{Keypair, Keystore, parse_suri};
use platform_node::weights_submitter::{
    PendingStore, RevealOutcome, Submitted, reveal_due, submit_weights,
};
use serde::Serialize;

use crate::output;
use crate::wallet::{Passwords, WalletArgs};

/// `platform localchain`.
#[derive(clap::Args, Debug)]
pub struct LocalChainArgs {
    /// Use the built-in dev genesis: validators //Alice (owner), //Bob, //Charlie, //Dave (and
    /// //Validator5 … with --validators above 4) with different stakes, miners //Miner1 …
    /// //Miner8 (see --miners), netuid 1, tempo 20.
    #[arg(long, conflicts_with = "genesis", required_unless_present = "genesis")]
    dev: bool,
    /// A genesis file (TOML: netuid, owner, [hyperparameters], [[neurons]]).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// With --dev: how many dev validators hold a validator permit (1 to 64; of the four named
    /// ones the rest keep their stake; above 4, //Validator5 … are registered too). Usually the
    /// validators' genesis (`platform init --dev --validators`); permitted validators the
    /// genesis does not bind join later by binding their keys.
    #[arg(long, default_value_t = 4, requires = "dev")]
    validators: usize,
    /// With --dev: how many miners //Miner1 … //MinerN are registered (1 to 256 less the
    /// registered validators: 252 with up to four). Must match the validators' genesis.
    #[arg(long, default_value_t = 8, requires = "dev")]
    miners: usize,
    /// With --dev: the first validators' stakes in TAO, comma-separated (default: 4000, 3000,
    /// 2000, 1000, then 990, 980, … for //Validator5 …). Must match the validators' genesis.
    #[arg(long, value_delimiter = ',', requires = "dev")]
    stakes: Vec<u64>,
    /// With --dev: blocks per epoch (the weights rate limit becomes at most half of it).
    #[arg(long, requires = "dev")]
    tempo: Option<u16>,
    /// With --dev: the subnet's commit-reveal mode. 0: off (weights are set directly); 2:
    /// hash commits revealed by the validator; 3 or 4: commits timelocked to LocalChain's own
    /// test beacon, revealed by the chain in the next epoch (subtensor's default is 4, with
    /// drand quicknet as the beacon).
    #[arg(long, default_value_t = 0, requires = "dev", value_parser = parse_commit_reveal)]
    commit_reveal: u16,
    /// Loopback address to serve on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9944")]
    listen: SocketAddr,
    /// Also allow a private IPv4 address for --listen (10/8, 172.16/12, 192.168/16): for test
    /// networks on private interfaces, such as validators in network namespaces. LocalChain
    /// has no authentication; never expose it beyond such a network.
    #[arg(long)]
    listen_private: bool,
    /// Milliseconds per block.
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// Persist the chain here (resumes on restart); without it the chain lives in memory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON line (`url`, `genesis_hash`, `netuid`) once serving.
    #[arg(long)]
    json: bool,
}

/// `platform chain …`.
#[derive(clap::Subcommand, Debug)]
pub enum ChainCommand {
    /// List the subnet's neurons: uid, hotkey, stake, validator permit.
    Metagraph {
        #[command(flatten)]
        chain: ChainArg,
        /// The subnet.
        #[arg(long, default_value_t = 1)]
        netuid: u16,
        /// As of this block (default: the latest).
        #[arg(long)]
        block: Option<u64>,
        /// Print JSON: a list of neurons (`uid`, `hotkey`, `coldkey`, `stake`,
        /// `validator_permit`, `active`, `last_update`).
        #[arg(long)]
        json: bool,
    },
    /// Set weights with a validator hotkey (the chain's rules apply: permit, rate limit, …).
    /// On a subnet with commit-reveal version 2 the weights are committed and their reveal
    /// data kept in --data-dir; reveal them with `platform chain reveal`. With versions 3 and 4
    /// (subtensor's default) they are committed timelocked to the chain's drand beacon, and the
    /// chain reveals them itself an epoch later.
    SetWeights {
        /// The chain (optional with --dry-run).
        #[command(flatten)]
        chain: ChainArg,
        /// The subnet.
        #[arg(long)]
        netuid: u16,
        /// The validator's hotkey: a dev URI (//Alice), a wallet hotkey file, or a keystore name
        /// (with --data-dir). Or give the wallet options.
        #[arg(long, required_unless_present = "wallet_name")]
        hotkey: Option<String>,
        #[command(flatten)]
        wallet: WalletArgs,
        /// Data directory: its keystore holds named keys, and pending commits are kept in it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Target UIDs, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        uids: Vec<u16>,
        /// Weights, comma-separated, one per UID.
        #[arg(long, value_delimiter = ',', required = true)]
        weights: Vec<u16>,
        /// Weights version key.
        #[arg(long, default_value_t = 0)]
        version_key: u64,
        /// Print what would be sent instead of sending it: `mode` (`set`, `commit`,
        /// `timelocked`), `call`, `pallet_index`, `call_index`, the arguments, and for a
        /// timelocked commit `reveal_round` and `commit` (hex of the exact bytes the extrinsic
        /// carries). Without --chain: a direct `set_weights`, or with --reveal-round a commit
        /// timelocked to that drand quicknet round. With --chain the subnet decides the mode.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: seal a timelocked commit to this drand quicknet round (instead of
        /// the round the chain's clock gives).
        #[arg(long, requires = "dry_run")]
        reveal_round: Option<u64>,
        /// Print JSON: `mode` (`set`, `commit` or `timelocked`), `block`, and for commits
        /// `reveal_from`, `reveal_until`; for timelocked commits `reveal_round`.
        #[arg(long)]
        json: bool,
    },
    /// Reveal this hotkey's pending commits whose reveal window is open.
    Reveal {
        #[command(flatten)]
        chain: ChainArg,
        /// The hotkey that committed (or give the wallet options).
        #[arg(long, required_unless_present = "wallet_name")]
        hotkey: Option<String>,
        #[command(flatten)]
        wallet: WalletArgs,
        /// The data directory the commits were made with.
        #[arg(long)]
        data_dir: PathBuf,
        /// Wait (polling the chain head) until every pending commit's window opens.
        #[arg(long)]
        wait: bool,
        /// Print JSON: one outcome per pending commit (`result`: `revealed`, `not_yet`,
        /// `dropped`).
        #[arg(long)]
        json: bool,
    },
    /// Show the weights stored on chain, per validator.
    Weights {
        #[command(flatten)]
        chain: ChainArg,
        /// The subnet.
        #[arg(long, default_value_t = 1)]
        netuid: u16,
        /// Print JSON: per validator `uid`, `hotkey`, `uids`, `weights`.
        #[arg(long)]
        json: bool,
    },
    /// Yuma's consensus step over the stored weights (LocalChain): per UID, the stake-weighted
    /// median of the permitted validators' normalized weights — what agreement does.
    Consensus {
        #[command(flatten)]
        chain: ChainArg,
        /// The subnet.
        #[arg(long, default_value_t = 1)]
        netuid: u16,
        /// Print JSON: a list of `[uid, weight]`.
        #[arg(long)]
        json: bool,
    },
    /// Read a subnet (read-only; any chain, live ones included) and print what Platform would
    /// do there: the validators its genesis would hold, how each epoch's weights would go to the
    /// chain (`set_weights`, hash commits, or timelocked commits and the drand round one made
    /// now would be sealed to), when the next epoch starts, and anything that stops it.
    /// Without a chain it fails: it never passes without having read one.
    Check {
        #[command(flatten)]
        chain: ChainArg,
        /// The subnet.
        #[arg(long)]
        netuid: u16,
        /// Also report on this validator hotkey (SS58): its UID, permit and stake.
        #[arg(long)]
        validator: Option<String>,
        /// Print JSON: `block`, `netuid`, `tempo`, `next_epoch_block`, `weights` (`mode`,
        /// `call`, `call_index`, `commit_reveal_version`, `reveal_round`, …), `validators`,
        /// `neurons`, `validator` and `problems`.
        #[arg(long)]
        json: bool,
    },
    /// Register a hotkey on a subnet (LocalChain only; on subtensor use btcli).
    Register {
        #[command(flatten)]
        chain: ChainArg,
        /// The subnet.
        #[arg(long, default_value_t = 1)]
        netuid: u16,
        /// The hotkey to register (dev URI, wallet hotkey file, or keystore name; or give the
        /// wallet options).
        #[arg(long, required_unless_present = "wallet_name")]
        hotkey: Option<String>,
        #[command(flatten)]
        wallet: WalletArgs,
        /// Data directory whose keystore holds named keys.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON (`uid`, `block`).
        #[arg(long)]
        json: bool,
    },
}

/// The chain endpoint option.
#[derive(clap::Args, Debug)]
pub struct ChainArg {
    /// `http://…` for a LocalChain (`platform localchain`); `ws://…`/`wss://…` for subtensor.
    #[arg(long = "chain", env = "PLATFORM_CHAIN")]
    url: Option<String>,
    /// Bittensor's name for a subtensor network, as btcli takes it: `finney`, `test`,
    /// `archive`, `local` (ws://127.0.0.1:9944) or a `ws(s)://` URL. Takes precedence over
    /// --chain.
    #[arg(long = "subtensor.network", id = "subtensor_network")]
    network: Option<String>,
}

impl ChainArg {
    /// The endpoint given, if any.
    fn given(&self) -> Result<Option<String>> {
        match (&self.network, &self.url) {
            (Some(n), _) => subtensor_endpoint(n).map(Some),
            (None, url) => Ok(url.clone()),
        }
    }

    /// The endpoint, which must be given.
    pub fn url(&self) -> Result<String> {
        self.given()?.ok_or_else(|| {
            anyhow!(
                "no chain: give --chain URL (or PLATFORM_CHAIN), or --subtensor.network \
                 finney|test|archive|local"
            )
        })
    }
}

/// Bittensor's network names, mapped to the endpoints the `bittensor` package uses.
pub fn subtensor_endpoint(network: &str) -> Result<String> {
    Ok(match network {
        "finney" => "wss://entrypoint-finney.opentensor.ai:443".into(),
        "test" => "wss://test.finney.opentensor.ai:443".into(),
        "archive" => "wss://archive.chain.opentensor.ai:443".into(),
        "local" => "ws://127.0.0.1:9944".into(),
        url if url.starts_with("ws://") || url.starts_with("wss://") => url.into(),
        other => bail!(
            "--subtensor.network {other}: expected finney, test, archive, local or a ws(s):// URL"
        ),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// What `platform chain set-weights --dry-run` would send.
#[derive(Serialize)]
struct DryRun {
    mode: &'static str,
    call: &'static str,
    pallet_index: u8,
    call_index: u8,
    netuid: u16,
    hotkey: String,
    uids: Vec<u16>,
    weights: Vec<u16>,
    version_key: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reveal_round: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_reveal_version: Option<u16>,
    /// Hex of the bytes the call carries (the ciphertext).
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_bytes: Option<usize>,
}

/// Builds what `set-weights` would send, without sending it.
async fn dry_run_weights(
    chain: Option<&str>,
    key: &Keypair,
    netuid: u16,
    (uids, weights, version_key): (&[u16], &[u16], u64),
    reveal_round: Option<u64>,
) -> Result<DryRun> {
    use platform_chain::subtensor::call_index;
    use platform_chain::timelock::{self, Beacon, WeightsPayload};
    if uids.len() != weights.len() {
        bail!("{} uids but {} weights", uids.len(), weights.len());
    }
    let mut plan = DryRun {
        mode: "set",
        call: "set_weights",
        pallet_index: call_index::SUBTENSOR_PALLET,
        call_index: call_index::SET_WEIGHTS,
        netuid,
        hotkey: key.hotkey().to_ss58(),
        uids: uids.to_vec(),
        weights: weights.to_vec(),
        version_key,
        reveal_round: None,
        commit_reveal_version: None,
        commit: None,
        commit_bytes: None,
    };
    let payload = WeightsPayload {
        hotkey: key.hotkey().0,
        uids: uids.to_vec(),
        values: weights.to_vec(),
        version_key,
    };
    let randomness = platform_crypto::timelock::Randomness::fresh();
    let sealed = match (chain, reveal_round) {
        (None, None) => return Ok(plan),
        (None, Some(round)) => {
            plan.commit_reveal_version = Some(4);
            timelock::seal(&Beacon::quicknet(0), round, &payload, &randomness)?
        }
        (Some(url), round) => {
            let c = AnyChain::connect(url)
                .await
                .with_context(|| format!("cannot use chain {url}"))?;
            let hyper = c.hyperparameters(netuid).await?;
            let Some(version) = timelock::timelocked_version(&hyper) else {
                if hyper.commit_reveal_weights_enabled {
                    bail!(
                        "subnet {netuid} uses commit-reveal version {}: --dry-run shows direct \
                         and timelocked submissions only (a hash commit depends on a fresh salt)",
                        hyper.commit_reveal_version
                    );
                }
                return Ok(plan);
            };
            plan.commit_reveal_version = Some(version);
            match round {
                Some(round) => timelock::seal(&c.beacon().await?, round, &payload, &randomness)?,
                None => {
                    platform_chain::timelock::seal_timelocked(
                        &c,
                        key,
                        netuid,
                        hyper.tempo,
                        hyper.reveal_period_epochs,
                        (uids, weights, version_key),
                        Retry::default(),
                    )
                    .await?
                }
            }
        }
    };
    plan.mode = "timelocked";
    plan.call = "commit_timelocked_weights";
    plan.call_index = call_index::COMMIT_TIMELOCKED_WEIGHTS;
    plan.reveal_round = Some(sealed.reveal_round);
    plan.commit_bytes = Some(sealed.commit.len());
    plan.commit = Some(hex::encode(sealed.commit));
    Ok(plan)
}

/// What `platform chain check` found.
#[derive(Serialize)]
struct CheckReport {
    endpoint: String,
    block: u64,
    netuid: u16,
    tempo: u16,
    next_epoch_block: u64,
    weights: WeightsPlan,
    /// A subtensor node's runtime (absent for LocalChain).
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<CheckedRuntime>,
    /// The validators a genesis read from this subnet now would hold: permit and stake.
    validators: Vec<CheckedValidator>,
    neurons: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    validator: Option<CheckedValidator>,
    /// What would stop Platform on this subnet; empty when nothing does.
    problems: Vec<String>,
}

/// How each epoch's weights would reach the chain.
#[derive(Serialize)]
struct WeightsPlan {
    mode: &'static str,
    call: &'static str,
    call_index: u8,
    commit_reveal_version: Option<u16>,
    reveal_period_epochs: u64,
    rate_limit_blocks: u64,
    version_key: u64,
    min_allowed_weights: u16,
    max_weights_limit: u16,
    /// For timelocked commits: the drand round a commit made now would be sealed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    reveal_round: Option<u64>,
}

/// The runtime's spec version and the shapes Platform uses that it changed.
#[derive(Serialize)]
struct CheckedRuntime {
    spec_version: u32,
    changed: Vec<&'static str>,
}

#[derive(Clone, Serialize)]
struct CheckedValidator {
    uid: Option<u16>,
    hotkey: String,
    stake: u64,
    validator_permit: bool,
}

/// Reads a subnet and works out what Platform would do on it.
async fn check_subnet(
    c: &AnyChain,
    endpoint: &str,
    netuid: u16,
    validator: Option<platform_primitives::Hotkey>,
) -> Result<CheckReport> {
    use platform_chain::subtensor::call_index;
    use platform_chain::timelock;
    let head = c.head().await?;
    let hyper = c
        .hyperparameters(netuid)
        .await
        .with_context(|| format!("reading subnet {netuid}"))?;
    let schedule = c.epoch_schedule(netuid).await?;
    let neurons = c.metagraph(netuid, None).await?;
    let mut problems = Vec::new();
    let (mode, call, index, reveal_round) = match timelock::timelocked_version(&hyper) {
        Some(_) => {
            let round = match platform_chain::timelock::timelocked_reveal_round(
                c,
                netuid,
                hyper.tempo,
                hyper.reveal_period_epochs,
                Retry::default(),
            )
            .await
            {
                Ok((_, round)) => Some(round),
                Err(e) => {
                    problems.push(format!("timelocked commits cannot be sealed: {e}"));
                    None
                }
            };
            (
                "timelocked",
                "commit_timelocked_weights",
                call_index::COMMIT_TIMELOCKED_WEIGHTS,
                round,
            )
        }
        None if hyper.commit_reveal_weights_enabled => {
            if hyper.commit_reveal_version != 2 {
                problems.push(format!(
                    "commit-reveal version {} is not one Platform speaks (2, 3 or 4)",
                    hyper.commit_reveal_version
                ));
            }
            ("commit", "commit_weights", call_index::COMMIT_WEIGHTS, None)
        }
        None => ("set", "set_weights", call_index::SET_WEIGHTS, None),
    };
    if hyper.tempo == 0 {
        problems.push(format!("subnet {netuid} has tempo 0: it runs no epochs"));
    }
    let runtime = c.runtime().await?.map(|r| CheckedRuntime {
        spec_version: r.spec_version,
        changed: r.changed,
    });
    if let Some(r) = runtime.as_ref() {
        let needed = format!("SubtensorModule.{call}");
        if r.changed.contains(&needed.as_str()) {
            problems.push(format!(
                "the runtime (spec {}) changed {needed}, which this subnet's weights need: \
                 Platform must be rebuilt with its metadata",
                r.spec_version
            ));
        }
    }
    let checked = |n: &platform_chain::NeuronInfo| CheckedValidator {
        uid: Some(n.uid),
        hotkey: n.hotkey.to_ss58(),
        stake: n.stake,
        validator_permit: n.validator_permit,
    };
    let validators: Vec<CheckedValidator> = neurons
        .iter()
        .filter(|n| n.validator_permit && n.stake > 0)
        .map(checked)
        .collect();
    if validators.is_empty() {
        problems.push("no neuron holds a validator permit with stake".into());
    }
    let validator = validator.map(|hk| {
        let found = neurons.iter().find(|n| n.hotkey == hk);
        match found {
            Some(n) => {
                if !n.validator_permit {
                    problems.push(format!(
                        "{} (UID {}) has no validator permit: its weights would be refused",
                        hk.to_ss58(),
                        n.uid
                    ));
                }
                checked(n)
            }
            None => {
                problems.push(format!(
                    "{} is not registered on subnet {netuid}",
                    hk.to_ss58()
                ));
                CheckedValidator {
                    uid: None,
                    hotkey: hk.to_ss58(),
                    stake: 0,
                    validator_permit: false,
                }
            }
        }
    });
    Ok(CheckReport {
        endpoint: endpoint.to_owned(),
        block: head.number,
        netuid,
        tempo: hyper.tempo,
        next_epoch_block: schedule.next_epoch_block,
        weights: WeightsPlan {
            mode,
            call,
            call_index: index,
            commit_reveal_version: hyper
                .commit_reveal_weights_enabled
                .then_some(hyper.commit_reveal_version),
            reveal_period_epochs: hyper.reveal_period_epochs,
            rate_limit_blocks: hyper.weights_set_rate_limit,
            version_key: hyper.weights_version_key,
            min_allowed_weights: hyper.min_allowed_weights,
            max_weights_limit: hyper.max_weights_limit,
            reveal_round,
        },
        runtime,
        validators,
        neurons: neurons.len(),
        validator,
        problems,
    })
}

fn print_check(r: &CheckReport) {
    println!("{}: block {}, subnet {}", r.endpoint, r.block, r.netuid);
    println!(
        "epochs: tempo {}, next epoch at block {} (in {} blocks)",
        r.tempo,
        r.next_epoch_block,
        r.next_epoch_block.saturating_sub(r.block)
    );
    if let Some(rt) = &r.runtime {
        if rt.changed.is_empty() {
            println!(
                "runtime: spec {}, every shape Platform uses as built",
                rt.spec_version
            );
        } else {
            println!(
                "runtime: spec {}, changed: {}",
                rt.spec_version,
                rt.changed.join(", ")
            );
        }
    }
    let w = &r.weights;
    match w.reveal_round {
        Some(round) => println!(
            "weights: {} (call index {}), commit-reveal version {:?}; a commit made now would \
             be sealed to drand round {round}",
            w.call, w.call_index, w.commit_reveal_version
        ),
        None => println!(
            "weights: {} (call index {}), commit-reveal {:?}, rate limit {} blocks",
            w.call, w.call_index, w.commit_reveal_version, w.rate_limit_blocks
        ),
    }
    println!(
        "genesis: {} validators with permit and stake, of {} neurons",
        r.validators.len(),
        r.neurons
    );
    for v in &r.validators {
        println!(
            "  uid {:>3}  {}  stake {}",
            v.uid.unwrap_or(0),
            v.hotkey,
            v.stake
        );
    }
    if let Some(v) = &r.validator {
        println!(
            "validator {}: uid {:?}, permit {}, stake {}",
            v.hotkey, v.uid, v.validator_permit, v.stake
        );
    }
    if r.problems.is_empty() {
        println!("no problems: Platform can run on this subnet");
    }
    for p in &r.problems {
        println!("problem: {p}");
    }
}

/// `--commit-reveal`: 0 (off), 2, 3 or 4.
pub fn parse_commit_reveal(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(v @ (0 | 2 | 3 | 4)) => Ok(v),
        _ => Err(format!(
            "{s}: 0 (off), 2 (hash commits) or 3/4 (timelocked commits)"
        )),
    }
}

/// Connects to the chain `--chain` names (LocalChain or subtensor).
fn connect(rt: &tokio::runtime::Runtime, arg: &ChainArg) -> Result<AnyChain> {
    let url = arg.url()?;
    rt.block_on(AnyChain::connect(&url))
        .with_context(|| format!("cannot use chain {url}"))
}

/// A LocalChain-only command: the LocalChain client, or an error naming what to use instead.
fn local_only<'a>(chain: &'a AnyChain, what: &str) -> Result<&'a LocalChainClient> {
    chain
        .local()
        .ok_or_else(|| anyhow!("{what} exists on a LocalChain only; subtensor does not offer it"))
}

/// Whether a `--hotkey` value is itself a secret (a mnemonic, a raw seed, or a URI with a
/// `///password`), as opposed to a dev URI, a file or a keystore name.
pub fn is_secret(spec: &str) -> bool {
    spec.contains(' ') || spec.starts_with("0x") || spec.contains("///")
}

/// Resolves `--hotkey`: a secret URI, a wallet hotkey file (asking `passwords` when it is
/// encrypted), or a keystore name. Errors never repeat a secret.
pub fn load_hotkey(spec: &str, data_dir: Option<&Path>, passwords: &Passwords) -> Result<Keypair> {
    if is_secret(spec) {
        return parse_suri(spec).map_err(|e| anyhow!("--hotkey (a secret, not shown): {e}"));
    }
    if spec.starts_with("//") {
        return parse_suri(spec).map_err(|e| anyhow!("--hotkey {spec}: {e}"));
    }
    let path = Path::new(spec);
    if path.is_file() {
        return passwords
            .load_key_file(path)
            .map_err(|e| anyhow!("--hotkey {spec}: {e}"));
    }
    if let Some(dd) = data_dir {
        let ks = Keystore::open(dd)?;
        return ks.load(spec).map_err(|e| anyhow!("--hotkey {spec}: {e}"));
    }
    bail!(
        "--hotkey {spec}: not a dev URI (//Alice), not a wallet file, and no --data-dir to look \
         up a keystore name in"
    )
}

/// The key named by `--hotkey` or the wallet options.
pub fn wallet_key(
    hotkey: Option<&str>,
    wallet: &WalletArgs,
    data_dir: Option<&Path>,
) -> Result<Keypair> {
    let spec = wallet
        .hotkey_spec(hotkey)?
        .ok_or_else(|| anyhow!("give --hotkey, or --wallet.name (with --wallet.hotkey)"))?;
    load_hotkey(&spec, data_dir, &wallet.passwords())
}

fn pending_store(data_dir: &Path) -> Result<PendingStore> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    Ok(PendingStore::open(&data_dir.join(
        platform_node::weights_submitter::PENDING_COMMITS_FILE,
    ))?)
}

pub fn run_localchain(args: LocalChainArgs) -> Result<ExitCode> {
    let genesis = match &args.genesis {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read genesis {}", path.display()))?;
            GenesisFile::parse(&text)?
        }
        None => {
            platform_node::genesis::check_dev_network(args.validators, args.miners, &args.stakes)?;
            let tempo = args.tempo.unwrap_or(genesis::dev_hyperparameters().tempo);
            if tempo < 2 {
                bail!("--tempo must be at least 2 blocks");
            }
            let mut g =
                genesis::dev_network_with_stakes(args.validators, args.miners, tempo, &args.stakes);
            g.hyperparameters.commit_reveal_weights_enabled = args.commit_reveal != 0;
            if args.commit_reveal != 0 {
                g.hyperparameters.commit_reveal_version = args.commit_reveal;
            }
            g
        }
    };
    let netuid = genesis.netuid;
    let state = genesis.into_state()?;
    let db = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            Some(d.join("localchain.redb"))
        }
        None => None,
    };
    let chain = Arc::new(LocalChain::open(state, db.as_deref())?);
    let genesis_hash = chain.read(|s| hex::encode(s.genesis_hash));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (listener, addr) = server::bind_within(args.listen, args.listen_private)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let url = format!("http://{addr}");
        if args.json {
            output::json(&serde_json::json!({
                "url": url, "genesis_hash": genesis_hash, "netuid": netuid, "simulation": true,
            }));
        } else {
            println!("LocalChain — a simulation of subtensor for development, not a real chain");
            println!(
                "serving {url} (netuid {netuid}, a block every {} ms)",
                args.block_time_ms
            );
            println!("genesis {genesis_hash}");
        }
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        server::serve(
            chain,
            listener,
            Duration::from_millis(args.block_time_ms.max(1)),
            shutdown,
        )
        .await
        .context("LocalChain server failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct WeightsLine<'a> {
    uid: u16,
    hotkey: String,
    uids: &'a [u16],
    weights: &'a [u16],
}

pub fn run(cmd: ChainCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match cmd {
        ChainCommand::Metagraph {
            chain,
            netuid,
            block,
            json,
        } => {
            let c = connect(&rt, &chain)?;
            let neurons = rt.block_on(c.metagraph(netuid, block))?;
            if json {
                output::json(&neurons);
            } else {
                println!(
                    "{:>4}  {:<48}  {:>20}  permit",
                    "uid", "hotkey", "stake (rao)"
                );
                for n in &neurons {
                    println!(
                        "{:>4}  {:<48}  {:>20}  {}",
                        n.uid,
                        n.hotkey.to_ss58(),
                        n.stake,
                        if n.validator_permit { "yes" } else { "no" }
                    );
                }
            }
        }
        ChainCommand::SetWeights {
            chain,
            netuid,
            hotkey,
            wallet,
            data_dir,
            uids,
            weights,
            version_key,
            dry_run,
            reveal_round,
            json,
        } => {
            let key = wallet_key(hotkey.as_deref(), &wallet, data_dir.as_deref())?;
            if dry_run {
                let url = chain.given()?;
                let plan = rt.block_on(dry_run_weights(
                    url.as_deref(),
                    &key,
                    netuid,
                    (&uids, &weights, version_key),
                    reveal_round,
                ))?;
                if json {
                    output::json(&plan);
                } else {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let c = connect(&rt, &chain)?;
            let pending = data_dir.as_deref().map(pending_store).transpose()?;
            let r = rt.block_on(submit_weights(
                &c,
                &key,
                netuid,
                &uids,
                &weights,
                version_key,
                pending.as_ref(),
                Retry::default(),
            ))?;
            if json {
                output::json(&r);
            } else {
                match r {
                    Submitted::Set { block } => println!("weights set in block {block}"),
                    Submitted::Committed {
                        block,
                        reveal_from,
                        reveal_until,
                    } => println!(
                        "weights committed in block {block}; reveal between blocks \
                         {reveal_from} and {reveal_until} with `platform chain reveal`"
                    ),
                    Submitted::Timelocked {
                        block,
                        reveal_round,
                        commit_bytes,
                    } => println!(
                        "weights committed timelocked in block {block} ({commit_bytes} bytes); \
                         the chain reveals them once the beacon signs round {reveal_round}"
                    ),
                }
            }
        }
        ChainCommand::Reveal {
            chain,
            hotkey,
            wallet,
            data_dir,
            wait,
            json,
        } => {
            let key = wallet_key(hotkey.as_deref(), &wallet, Some(&data_dir))?;
            let c = connect(&rt, &chain)?;
            let store = pending_store(&data_dir)?;
            let outcomes = rt.block_on(async {
                loop {
                    let out = reveal_due(&c, &key, &store, Retry::default()).await?;
                    let waiting = out
                        .iter()
                        .any(|o| matches!(o, RevealOutcome::NotYet { .. }));
                    if !wait || !waiting {
                        return Ok::<_, anyhow::Error>(out);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })?;
            if json {
                output::json(&outcomes);
            } else if outcomes.is_empty() {
                println!("no pending commits for {}", key.hotkey());
            } else {
                for o in &outcomes {
                    match o {
                        RevealOutcome::Revealed { netuid, block } => {
                            println!("subnet {netuid}: revealed in block {block}")
                        }
                        RevealOutcome::NotYet { netuid, from } => {
                            println!("subnet {netuid}: reveal window opens at block {from}")
                        }
                        RevealOutcome::Dropped { netuid, reason } => {
                            println!("subnet {netuid}: dropped ({reason})")
                        }
                    }
                }
            }
        }
        ChainCommand::Weights {
            chain,
            netuid,
            json,
        } => {
            let c = connect(&rt, &chain)?;
            let rows: Vec<ValidatorWeights> = rt.block_on(c.weights(netuid))?;
            let lines: Vec<WeightsLine<'_>> = rows
                .iter()
                .map(|r| WeightsLine {
                    uid: r.uid,
                    hotkey: r.hotkey.to_ss58(),
                    uids: &r.uids,
                    weights: &r.weights,
                })
                .collect();
            if json {
                output::json(&lines);
            } else if lines.is_empty() {
                println!("no weights set on subnet {netuid}");
            } else {
                for l in &lines {
                    let pairs: Vec<String> = l
                        .uids
                        .iter()
                        .zip(l.weights)
                        .map(|(u, w)| format!("{u}:{w}"))
                        .collect();
                    println!("uid {:>3} {}  {}", l.uid, l.hotkey, pairs.join(" "));
                }
            }
        }
        ChainCommand::Consensus {
            chain,
            netuid,
            json,
        } => {
            let c = connect(&rt, &chain)?;
            let median = rt.block_on(local_only(&c, "the consensus view")?.consensus(netuid))?;
            if json {
                output::json(&median);
            } else if median.is_empty() {
                println!("no UID has a non-zero median weight on subnet {netuid}");
            } else {
                let pairs: Vec<String> = median.iter().map(|(u, w)| format!("{u}:{w}")).collect();
                println!("stake-weighted median: {}", pairs.join(" "));
            }
        }
        ChainCommand::Check {
            chain,
            netuid,
            validator,
            json,
        } => {
            let validator = validator
                .map(|v| {
                    v.parse::<platform_primitives::Hotkey>()
                        .map_err(|e| anyhow!("--validator {v}: {e}"))
                })
                .transpose()?;
            let c = connect(&rt, &chain)?;
            let report = rt.block_on(check_subnet(&c, &chain.url()?, netuid, validator))?;
            if json {
                output::json(&report);
            } else {
                print_check(&report);
            }
            if !report.problems.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        ChainCommand::Register {
            chain,
            netuid,
            hotkey,
            wallet,
            data_dir,
            json,
        } => {
            if is_subtensor_url(&chain.url()?) {
                bail!(
                    "registration on subtensor costs TAO and is done with btcli \
                     (`btcli subnet register --netuid {netuid}`); `platform chain register` \
                     registers on a LocalChain only"
                );
            }
            let key = wallet_key(hotkey.as_deref(), &wallet, data_dir.as_deref())?;
            let c = connect(&rt, &chain)?;
            let inc = rt.block_on(local_only(&c, "registration")?.register(&key, netuid))?;
            let uid = rt
                .block_on(c.metagraph(netuid, None))?
                .iter()
                .find(|n| n.hotkey == key.hotkey())
                .map(|n| n.uid);
            if json {
                output::json(&serde_json::json!({"uid": uid, "block": inc.block}));
            } else {
                println!(
                    "{} registered on subnet {netuid} as uid {} in block {}",
                    key.hotkey(),
                    uid.map_or_else(|| "?".into(), |u| u.to_string()),
                    inc.block
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
