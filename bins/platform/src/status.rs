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

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let base = args.node.trim_end_matches('/').to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status: serde_json::Value = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        client
            .get(format!("{base}/api/v1/status"))
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {base}"))?
            .error_for_status()
            .with_context(|| format!("the node at {base} refused the status request"))?
            .json::<serde_json::Value>()
            .await
            .context("the node's status is not JSON")
    })?;
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
