//! `platform status`: one validator's view of the network, read from its HTTP API.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::output;

/// `platform status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The validator's HTTP API (`http://127.0.0.1:8080`, as `platform init --http` set it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    node: String,
    /// Print the node's status as JSON (every field of `GET /api/v1/status`).
    #[arg(long)]
    json: bool,
}

/// `platform peers`.
#[derive(clap::Args, Debug)]
pub struct PeersArgs {
    /// The validator's HTTP API (`http://127.0.0.1:8080`, as `platform init --http` set it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    node: String,
    /// Print JSON: the body of `GET /api/v1/peers` (`peers`: `peer_id`, `address`, `rtt_ms`,
    /// `validator`; `banned`, `connected_stake`, `total_stake`, …) and `missing`: the epoch's
    /// validators this node has no connection to.
    #[arg(long)]
    json: bool,
}

/// GETs `path` from the node at `base` as JSON.
fn fetch(base: &str, paths: &[&str]) -> Result<Vec<serde_json::Value>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut out = Vec::new();
        for path in paths {
            out.push(
                client
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach the node at {base}"))?
                    .error_for_status()
                    .with_context(|| format!("the node at {base} refused {path}"))?
                    .json::<serde_json::Value>()
                    .await
                    .with_context(|| format!("the node's {path} is not JSON"))?,
            );
        }
        Ok(out)
    })
}

/// Lists a validator's connected peers: each one's validator (hotkey and stake) or
/// "observer", address and last ping; then the epoch's validators it has no link to.
pub fn peers(args: PeersArgs) -> Result<ExitCode> {
    let base = args.node.trim_end_matches('/').to_string();
    let got = fetch(
        &base,
        &["/api/v1/peers", "/api/v1/validators", "/api/v1/status"],
    )?;
    let (mut net, validators, status) = (got[0].clone(), &got[1], &got[2]);
    let stake_of = |hotkey: &str| {
        validators
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["hotkey"] == hotkey)
            .and_then(|v| v["stake"].as_u64())
    };
    let linked: Vec<String> = net["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["validator"].as_str().map(str::to_string))
        .collect();
    let me = status["hotkey"].as_str().unwrap_or_default();
    let missing: Vec<String> = validators
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["hotkey"].as_str())
        .filter(|h| *h != me && !linked.iter().any(|l| l == h))
        .map(str::to_string)
        .collect();
    if args.json {
        net["missing"] = serde_json::json!(missing);
        output::json(&net);
        return Ok(ExitCode::SUCCESS);
    }
    let peers = net["peers"].as_array().cloned().unwrap_or_default();
    println!("{} peers connected to {me}", peers.len());
    println!(
        "{:<52} {:>18} {:>8}  {:<30} PEER",
        "VALIDATOR", "STAKE", "PING", "ADDRESS"
    );
    for p in &peers {
        let (who, stake) = match p["validator"].as_str() {
            Some(h) => (
                h.to_string(),
                stake_of(h).map_or("-".into(), |s| s.to_string()),
            ),
            None => ("(observer or not bound)".to_string(), "-".to_string()),
        };
        let ping = p["rtt_ms"]
            .as_u64()
            .map_or("-".to_string(), |ms| format!("{ms} ms"));
        println!(
            "{who:<52} {stake:>18} {ping:>8}  {:<30} {}",
            p["address"].as_str().unwrap_or("-"),
            p["peer_id"].as_str().unwrap_or("-")
        );
    }
    for h in &missing {
        println!(
            "{h:<52} {:>18} {:>8}  not connected",
            stake_of(h).unwrap_or(0),
            "-"
        );
    }
    let banned = net["banned"].as_array().map_or(0, Vec::len);
    if banned > 0 {
        println!("{banned} peers banned");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let base = args.node.trim_end_matches('/').to_string();
    let status = fetch(&base, &["/api/v1/status"])?.remove(0);
    if args.json {
        output::json(&status);
        return Ok(ExitCode::SUCCESS);
    }
    let field = |k: &str| match &status[k] {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let heard = status["heard_stake_bps"].as_u64().unwrap_or(0);
    println!(
        "validator   {} (votes: {})",
        field("hotkey"),
        field("validator")
    );
    println!("height      {}  {}", field("height"), field("block_hash"));
    println!(
        "epoch       {} (chain block {})",
        field("epoch"),
        field("epoch_chain_block")
    );
    println!("view        {}  leader {}", field("view"), field("leader"));
    println!(
        "peers       {}  stake heard from in the last 10 s: {}.{:02} %",
        field("peers"),
        heard / 100,
        heard % 100
    );
    println!(
        "partition   {}",
        if status["partitioned"] == true {
            "ALARM: the validators heard from hold less than two thirds of the stake"
        } else {
            "none"
        }
    );
    println!(
        "finality    p50 {} ms, p99 {} ms; {} finalized since start; {} silent-leader views skipped",
        field("finalization_ms_p50"),
        field("finalization_ms_p99"),
        field("finalized_since_start"),
        field("leader_views_skipped")
    );
    println!(
        "weights     last submitted for epoch {}",
        field("weights_submitted_epoch")
    );
    Ok(ExitCode::SUCCESS)
}
