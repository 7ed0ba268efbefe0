//! `platform owner …`: the subnet owner's actions — publish, activate, deprecate and retire a
//! challenge, set its emission share, set the network parameters. Each is a `Sudo` transaction
//! signed with the owner's hotkey and sent to any validator's public API, which takes it on the
//! strength of that signature (no operator token); consensus orders it like any transaction.
//! The command waits until the action is in the finalized state and prints the outcome.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use platform_crypto::{Domain, Keypair};
use platform_primitives::{ChallengeId, Hash, NetUid, encode};
use platform_state::{
    Asset, ChallengeMeta, Lifecycle, MAX_ASSET_BYTES, Params, Resources, ScoringRule, SudoAction,
    SudoTx, Tx,
};
use serde::Serialize;

use crate::output;

/// Options every owner action takes.
#[derive(clap::Args, Debug)]
pub struct OwnerArgs {
    /// A validator's API (`http://host:port`); any validator of the subnet will do.
    #[arg(long, env = "PLATFORM_NODE")]
    node: String,
    /// The subnet owner's hotkey: a dev URI (//Alice), a wallet hotkey file, or a keystore
    /// name (with --data-dir).
    #[arg(long)]
    key: String,
    /// Data directory whose keystore holds --key.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Give up waiting for the finalized outcome after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Print JSON: `action`, `nonce`, `tx_hash`, `finalized_height`, and the challenge as the
    /// finalized state has it (`challenge`, `lifecycle`, `emission_bps`, `wasm_hash`) or the
    /// parameters.
    #[arg(long)]
    json: bool,
}

/// `platform owner …`.
#[derive(clap::Subcommand, Debug)]
pub enum OwnerCommand {
    /// Publish, activate, deprecate or retire a challenge.
    #[command(subcommand)]
    Challenge(ChallengeAction),
    /// Change a challenge's share of the subnet's emission.
    SetEmission {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The challenge.
        #[arg(long)]
        id: String,
        /// Its share, basis points (10,000 = all).
        #[arg(long)]
        bps: u16,
    },
    /// Change network parameters: the current ones are read from the validator and each
    /// `--set name=value` replaces one (names as `GET /api/v1/params` shows them, e.g.
    /// `retain_epochs=4`, `committee_size=3`).
    SetParams {
        #[command(flatten)]
        owner: OwnerArgs,
        /// `name=value`, repeatable.
        #[arg(long = "set", required = true)]
        set: Vec<String>,
    },
}

/// `platform owner challenge …`.
#[derive(clap::Subcommand, Debug)]
pub enum ChallengeAction {
    /// Publish a challenge module as a draft (or a new version of one), after the same checks
    /// `platform challenge build` applies (ABI, imports, exports, resource policy).
    Publish {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The module (`.wasm` or `.wat`).
        #[arg(long)]
        wasm: PathBuf,
        /// The challenge id (a-z, 0-9, '-').
        #[arg(long)]
        id: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// The challenge's version; a republished challenge needs a higher one.
        #[arg(long = "challenge-version", default_value_t = 1)]
        challenge_version: u32,
        /// Share of the subnet's emission, basis points.
        #[arg(long, default_value_t = 0)]
        emission_bps: u16,
        /// Committee size (default: the network's).
        #[arg(long)]
        committee_size: Option<u16>,
        /// How scores become weights: `winner-takes-all`, `top-k:K:DECAY_BPS`,
        /// `proportional:BASELINE` or `module` (the module's `weights` export).
        #[arg(long, default_value = "top-k:3:5000")]
        scoring: String,
        /// A data set the module reads with `asset_read` (repeat; index order). `FILE`: pinned
        /// by its blake3 and size, and uploaded with the publish, so validators fetch it from
        /// peers (the request carries at most 16 MiB in all). `FILE=http://…`: pinned from the
        /// local copy, not uploaded; validators download it from the URL, check it and serve
        /// it to each other.
        #[arg(long = "asset", value_name = "FILE[=URL]")]
        assets: Vec<String>,
    },
    /// Open a draft challenge to submissions. A challenge with assets is opened only once
    /// validators holding more than 2/3 of the stake hold them: the command waits for that
    /// (up to --timeout-secs), showing their progress.
    Activate {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The challenge.
        #[arg(long)]
        id: String,
    },
    /// Stop new submissions; pending ones are still scored.
    Deprecate {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The challenge.
        #[arg(long)]
        id: String,
    },
    /// Remove a challenge: no submissions, no emission.
    Retire {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The challenge.
        #[arg(long)]
        id: String,
    },
}

#[derive(Serialize)]
struct Outcome {
    action: &'static str,
    nonce: u64,
    tx_hash: String,
    finalized_height: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<serde_json::Value>,
}

pub fn run(cmd: OwnerCommand) -> Result<ExitCode> {
    let (owner, action, blobs, name) = match cmd {
        OwnerCommand::Challenge(ChallengeAction::Publish {
            owner,
            wasm,
            id,
            name,
            challenge_version,
            emission_bps,
            committee_size,
            scoring,
            assets,
        }) => {
            let bytes = crate::challenge::read_module(&wasm)?;
            let (assets, uploads) = read_assets(&assets)?;
            let info =
                platform_runtime::validate::validate(&bytes, &platform_runtime::Policy::default())
                    .map_err(|e| anyhow!("{}: the module fails the checks: {e}", wasm.display()))?;
            let meta = ChallengeMeta {
                id: challenge_id(&id)?,
                name: name.unwrap_or_else(|| id.clone()),
                version: challenge_version,
                wasm_hash: Hash::of(&bytes),
                abi_version: info.abi_version,
                resources: Resources::default(),
                committee_size,
                emission_bps,
                scoring: parse_scoring(&scoring)?,
                assets,
            };
            let mut blobs = vec![bytes];
            blobs.extend(uploads);
            (owner, SudoAction::Publish(meta), blobs, "publish")
        }
        OwnerCommand::Challenge(ChallengeAction::Activate { owner, id }) => (
            owner,
            transition(&id, Lifecycle::Active)?,
            Vec::new(),
            "activate",
        ),
        OwnerCommand::Challenge(ChallengeAction::Deprecate { owner, id }) => (
            owner,
            transition(&id, Lifecycle::Deprecated)?,
            Vec::new(),
            "deprecate",
        ),
        OwnerCommand::Challenge(ChallengeAction::Retire { owner, id }) => (
            owner,
            transition(&id, Lifecycle::Retired)?,
            Vec::new(),
            "retire",
        ),
        OwnerCommand::SetEmission { owner, id, bps } => {
            if bps > 10_000 {
                bail!("--bps {bps}: at most 10000 (all of the emission)");
            }
            let action = SudoAction::SetEmission {
                challenge: challenge_id(&id)?,
                emission_bps: bps,
            };
            (owner, action, Vec::new(), "set-emission")
        }
        OwnerCommand::SetParams { owner, set } => {
            let rt = runtime()?;
            let current: serde_json::Value =
                rt.block_on(get_json(&client()?, &api(&owner, "params")))?;
            let params = with_overrides(current, &set)?;
            (
                owner,
                SudoAction::SetParams(params),
                Vec::new(),
                "set-params",
            )
        }
    };
    let key = crate::chain::load_hotkey(
        &owner.key,
        owner.data_dir.as_deref(),
        &crate::wallet::Passwords::from_env(),
    )?;
    let rt = runtime()?;
    if let SudoAction::Transition {
        challenge,
        to: Lifecycle::Active,
    } = &action
    {
        rt.block_on(wait_for_assets(&owner, challenge.as_str()))?;
    }
    let out = rt.block_on(send(&owner, &key, action, blobs, name))?;
    if owner.json {
        output::json(&out);
    } else {
        println!(
            "{} finalized at height {} (owner nonce {}, transaction {})",
            out.action, out.finalized_height, out.nonce, out.tx_hash
        );
        if let Some(c) = &out.challenge {
            println!(
                "challenge {}: {}, emission {} bps, module {}",
                c["id"].as_str().unwrap_or("?"),
                c["lifecycle"].as_str().unwrap_or("?"),
                c["emission_bps"],
                c["wasm_hash"].as_str().unwrap_or("?")
            );
        }
        if let Some(p) = &out.params {
            println!("parameters: {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The owner's `Sudo` for `action` with `nonce`, signed for the network of `netuid` and
/// identity `network` (`Genesis::network_id`).
pub fn sudo_tx(
    owner: &Keypair,
    (netuid, network): (NetUid, Hash),
    nonce: u64,
    action: SudoAction,
) -> Tx {
    let signature = owner.sign(
        Domain::Sudo,
        &SudoTx::signing_bytes(netuid, &network, nonce, &action),
    );
    Tx::Sudo(SudoTx {
        action,
        nonce,
        signer: owner.hotkey(),
        signature: Some(signature),
    })
}

/// Signs `action` with the next owner nonce, posts it, and waits until the finalized state
/// has taken it.
async fn send(
    args: &OwnerArgs,
    key: &Keypair,
    action: SudoAction,
    blobs: Vec<Vec<u8>>,
    name: &'static str,
) -> Result<Outcome> {
    let client = client()?;
    let info = get_json(&client, &api(args, "owner")).await?;
    let owner = info["owner"].as_str().unwrap_or_default();
    if owner != key.hotkey().to_ss58() {
        bail!(
            "--key is {} but the subnet owner is {owner}: only the owner's signature is taken",
            key.hotkey().to_ss58()
        );
    }
    let netuid = NetUid(
        info["netuid"]
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| anyhow!("{}: no netuid in the answer", api(args, "owner")))?,
    );
    let network_id = info["network_id"]
        .as_str()
        .and_then(|h| Hash::from_hex(h).ok())
        .ok_or_else(|| anyhow!("{}: no network id in the answer", api(args, "owner")))?;
    let nonce = info["sudo_nonce"].as_u64().unwrap_or(0) + 1;
    let challenge = match &action {
        SudoAction::Publish(m) => Some(m.id.as_str().to_string()),
        SudoAction::Transition { challenge, .. } | SudoAction::SetEmission { challenge, .. } => {
            Some(challenge.as_str().to_string())
        }
        SudoAction::SetParams(_) => None,
    };
    let tx = sudo_tx(key, (netuid, network_id), nonce, action);
    let tx_hash = tx.hash().to_hex();
    let body = encode(&platform_node::api::TransactionRequest { tx, blobs });
    let (code, answer) = crate::node::post(&client, &api(args, "transactions"), body).await?;
    if !code.is_success() {
        let why = answer["error"]
            .as_str()
            .map_or_else(|| answer.to_string(), str::to_string);
        bail!("the validator refused the {name} ({code}): {why}");
    }
    // Taken once the finalized state's owner nonce reaches ours.
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let finalized_height = loop {
        let now = get_json(&client, &api(args, "owner")).await?;
        if now["sudo_nonce"].as_u64().is_some_and(|n| n >= nonce) {
            break now["height"].as_u64().unwrap_or(0);
        }
        if Instant::now() > deadline {
            bail!(
                "the {name} (transaction {tx_hash}) was admitted but not finalized within {} s",
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let challenge = match challenge {
        Some(id) => get_json(&client, &api(args, "challenges"))
            .await?
            .as_array()
            .and_then(|list| list.iter().find(|c| c["id"] == id.as_str()).cloned()),
        None => None,
    };
    let params = match name {
        "set-params" => Some(get_json(&client, &api(args, "params")).await?),
        _ => None,
    };
    Ok(Outcome {
        action: name,
        nonce,
        tx_hash,
        finalized_height,
        challenge,
        params,
    })
}

/// The `--asset FILE[=URL]` options: the assets to pin, and the files to upload.
fn read_assets(specs: &[String]) -> Result<(Vec<Asset>, Vec<Vec<u8>>)> {
    let mut assets = Vec::new();
    let mut uploads = Vec::new();
    for spec in specs {
        let (file, url) = match spec.split_once('=') {
            Some((file, url)) => (file, url),
            None => (spec.as_str(), ""),
        };
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            bail!("--asset {spec}: the URL must be http://… or https://…");
        }
        let bytes =
            std::fs::read(file).with_context(|| format!("--asset {spec}: reading {file}"))?;
        if bytes.is_empty() || bytes.len() as u64 > MAX_ASSET_BYTES {
            bail!(
                "--asset {spec}: {file} is {} bytes; an asset is 1 byte to {} MiB",
                bytes.len(),
                MAX_ASSET_BYTES >> 20
            );
        }
        assets.push(Asset {
            url: url.to_string(),
            blake3: Hash::of(&bytes),
            max_bytes: bytes.len() as u64,
        });
        if url.is_empty() {
            uploads.push(bytes);
        }
    }
    Ok((assets, uploads))
}

/// Waits until validators holding more than 2/3 of the stake hold challenge `id`'s assets (at
/// once for a challenge without any), reporting progress on stderr.
async fn wait_for_assets(args: &OwnerArgs, id: &str) -> Result<()> {
    let client = client()?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut shown = None;
    loop {
        let list = get_json(&client, &api(args, "challenges")).await?;
        let Some(c) = list
            .as_array()
            .and_then(|l| l.iter().find(|c| c["id"] == id))
            .cloned()
        else {
            bail!("no challenge '{id}' at {}", args.node);
        };
        let assets = c["assets"].as_array().map_or(0, Vec::len);
        let ready = c["assets_ready_stake"].as_u64().unwrap_or(0);
        let total = c["total_stake"].as_u64().unwrap_or(0);
        if assets == 0 || u128::from(ready) * 3 > u128::from(total) * 2 {
            return Ok(());
        }
        if shown != Some(ready) {
            eprintln!(
                "waiting for validators to hold the {assets} asset(s) of '{id}': {ready} of \
                 {total} stake so far, more than 2/3 needed"
            );
            shown = Some(ready);
        }
        if Instant::now() > deadline {
            bail!(
                "validators with only {ready} of {total} stake hold the assets of '{id}' after \
                 {} s; check that each asset is uploaded or its URL is reachable from the \
                 validators (their logs and `platform_asset_fetches_total` say why)",
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn transition(id: &str, to: Lifecycle) -> Result<SudoAction> {
    Ok(SudoAction::Transition {
        challenge: challenge_id(id)?,
        to,
    })
}

fn challenge_id(id: &str) -> Result<ChallengeId> {
    ChallengeId::new(id).map_err(|e| anyhow!("--id: {e}"))
}

/// `winner-takes-all`, `top-k:K:DECAY_BPS`, `proportional:BASELINE` or `module`.
fn parse_scoring(s: &str) -> Result<ScoringRule> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str, what: &str| -> Result<u64> {
        p.parse()
            .map_err(|_| anyhow!("--scoring {s}: {what} must be a number"))
    };
    Ok(match parts.as_slice() {
        ["winner-takes-all"] => ScoringRule::WinnerTakesAll,
        ["module"] => ScoringRule::Module,
        ["top-k", k, decay] => ScoringRule::TopK {
            k: u16::try_from(num(k, "K")?).map_err(|_| anyhow!("--scoring {s}: K too large"))?,
            decay_bps: u16::try_from(num(decay, "DECAY_BPS")?)
                .ok()
                .filter(|d| *d <= 10_000)
                .ok_or_else(|| anyhow!("--scoring {s}: DECAY_BPS is at most 10000"))?,
        },
        ["proportional", baseline] => ScoringRule::Proportional {
            baseline: platform_primitives::Score(num(baseline, "BASELINE")?),
        },
        _ => bail!(
            "--scoring {s}: expected winner-takes-all, top-k:K:DECAY_BPS, proportional:BASELINE \
             or module"
        ),
    })
}

/// The current parameters with each `name=value` replaced; names and values are checked by
/// decoding the result as [`Params`].
fn with_overrides(mut current: serde_json::Value, set: &[String]) -> Result<Params> {
    let obj = current
        .as_object_mut()
        .ok_or_else(|| anyhow!("the validator's parameters are not an object"))?;
    for s in set {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s}: expected name=value"))?;
        if !obj.contains_key(name) {
            let known: Vec<&String> = obj.keys().collect();
            bail!("--set {s}: no parameter {name:?} (known: {known:?})");
        }
        let v: serde_json::Value = serde_json::from_str(value)
            .map_err(|_| anyhow!("--set {s}: {value} is not a number"))?;
        obj.insert(name.to_string(), v);
    }
    serde_json::from_value(current).map_err(|e| anyhow!("--set: {e}"))
}

fn api(args: &OwnerArgs, what: &str) -> String {
    format!("{}/api/v1/{what}", args.node.trim_end_matches('/'))
}

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let res = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let code = res.status();
    let v: serde_json::Value = res
        .json()
        .await
        .with_context(|| format!("{url}: not JSON"))?;
    if !code.is_success() {
        bail!("{url}: {code}: {v}");
    }
    Ok(v)
}
