//! LocalChain over loopback HTTP (JSON), so that several processes share one chain.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/info` | genesis hash, block, netuids, `"simulation": true` |
//! | GET | `/v1/head` | `{number, hash}` |
//! | GET | `/v1/subnets/{netuid}/hyperparameters` | [`Hyperparameters`](crate::Hyperparameters) |
//! | GET | `/v1/subnets/{netuid}/metagraph?block=N` | `[NeuronInfo]` |
//! | GET | `/v1/subnets/{netuid}/schedule` | [`EpochSchedule`](crate::EpochSchedule) |
//! | GET | `/v1/subnets/{netuid}/weights` | `[ValidatorWeights]` |
//! | GET | `/v1/subnets/{netuid}/consensus` | `[[uid, weight]]`: Yuma's stake-weighted median |
//! | GET | `/v1/accounts/{ss58}/nonce` | the account's next nonce |
//! | POST | `/v1/extrinsics` | `{"signed": hex(borsh(SignedCall))}` → `{block}` |
//!
//! Errors are 4xx with a [`ChainError`] as JSON. Request bodies are capped at 64 KiB.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use platform_primitives::{Hotkey, decode};
use serde::{Deserialize, Serialize};

use super::LocalChain;
use super::sim::SignedCall;
use crate::{ChainError, Included};

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;

type Shared = Arc<LocalChain>;

struct ApiError(ChainError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0 {
            ChainError::UnknownNetuid { .. } => StatusCode::NOT_FOUND,
            ChainError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, Json(self.0)).into_response()
    }
}

impl From<ChainError> for ApiError {
    fn from(e: ChainError) -> ApiError {
        ApiError(e)
    }
}

/// What `/v1/info` says.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Info {
    /// Always true: this is LocalChain, a simulation.
    pub simulation: bool,
    /// Genesis hash (hex); signatures are bound to it.
    pub genesis_hash: String,
    /// Current block.
    pub block: u64,
    /// Subnets.
    pub netuids: Vec<u16>,
}

/// A subnet's timelocked commits (`GET /v1/subnets/{netuid}/timelocked`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimelockedStatus {
    /// Committed, not yet revealed.
    pub pending: usize,
    /// Opened and applied by the chain.
    pub revealed: u64,
    /// Dropped at reveal: did not open, named another hotkey, or the weights were refused.
    pub failed: u64,
}

#[derive(Deserialize)]
struct At {
    block: Option<u64>,
}

/// A submitted extrinsic.
#[derive(Serialize, Deserialize)]
pub struct Extrinsic {
    /// hex(borsh(SignedCall)).
    pub signed: String,
}

/// The router over `chain`.
pub fn router(chain: Shared) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/head", get(head))
        .route("/v1/beacon", get(beacon))
        .route("/v1/blocks/{number}", get(block))
        .route("/v1/subnets/{netuid}/hyperparameters", get(hyperparameters))
        .route("/v1/subnets/{netuid}/metagraph", get(metagraph))
        .route("/v1/subnets/{netuid}/schedule", get(schedule))
        .route("/v1/subnets/{netuid}/weights", get(weights))
        .route("/v1/subnets/{netuid}/consensus", get(consensus))
        .route("/v1/subnets/{netuid}/timelocked", get(timelocked))
        .route("/v1/subnets/{netuid}/owner", get(owner))
        .route("/v1/subnets/{netuid}/commitments", get(commitments))
        .route("/v1/accounts/{account}/nonce", get(nonce))
        .route("/v1/extrinsics", post(extrinsic))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(chain)
}

async fn info(State(c): State<Shared>) -> Json<Info> {
    Json(c.read(|s| Info {
        simulation: true,
        genesis_hash: hex::encode(s.genesis_hash),
        block: s.block,
        netuids: s.subnets.keys().copied().collect(),
    }))
}

async fn head(State(c): State<Shared>) -> Json<crate::BlockRef> {
    Json(c.read(|s| crate::BlockRef {
        number: s.block,
        hash: s.block_hash(s.block),
    }))
}

async fn beacon(State(c): State<Shared>) -> Json<crate::timelock::Beacon> {
    Json(c.read(|s| s.beacon()))
}

async fn block(
    State(c): State<Shared>,
    Path(number): Path<u64>,
) -> Result<Json<crate::BlockRef>, ApiError> {
    Ok(Json(c.read(|s| s.block_ref(number))?))
}

async fn hyperparameters(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
) -> Result<Json<crate::Hyperparameters>, ApiError> {
    Ok(Json(c.read(|s| s.subnet(netuid).map(|n| n.hyper.clone()))?))
}

async fn metagraph(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
    Query(at): Query<At>,
) -> Result<Json<Vec<crate::NeuronInfo>>, ApiError> {
    Ok(Json(c.read(|s| s.metagraph(netuid, at.block))?))
}

async fn schedule(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
) -> Result<Json<crate::EpochSchedule>, ApiError> {
    Ok(Json(c.read(|s| s.schedule(netuid))?))
}

async fn weights(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
) -> Result<Json<Vec<crate::ValidatorWeights>>, ApiError> {
    Ok(Json(c.read(|s| s.weights(netuid))?))
}

async fn consensus(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
) -> Result<Json<Vec<(u16, u16)>>, ApiError> {
    Ok(Json(c.read(|s| s.consensus(netuid))?))
}

async fn timelocked(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
) -> Result<Json<TimelockedStatus>, ApiError> {
    Ok(Json(c.read(|s| {
        s.subnet(netuid).map(|n| TimelockedStatus {
            pending: n.timelocked.values().map(Vec::len).sum(),
            revealed: n.timelocked_revealed,
            failed: n.timelocked_failed,
        })
    })?))
}

async fn owner(State(c): State<Shared>, Path(netuid): Path<u16>) -> Result<Json<Hotkey>, ApiError> {
    Ok(Json(c.read(|s| s.subnet(netuid).map(|n| n.owner))?))
}

async fn commitments(
    State(c): State<Shared>,
    Path(netuid): Path<u16>,
    Query(at): Query<At>,
) -> Result<Json<Vec<crate::Commitment>>, ApiError> {
    Ok(Json(c.read(|s| s.commitments(netuid, at.block))?))
}

async fn nonce(
    State(c): State<Shared>,
    Path(account): Path<String>,
) -> Result<Json<u64>, ApiError> {
    let hotkey: Hotkey = account.parse().map_err(|e| ChainError::Malformed {
        reason: format!("account: {e}"),
    })?;
    Ok(Json(
        c.read(|s| s.nonces.get(&hotkey).copied().unwrap_or(0)),
    ))
}

async fn extrinsic(
    State(c): State<Shared>,
    Json(x): Json<Extrinsic>,
) -> Result<Json<Included>, ApiError> {
    let bytes = hex::decode(x.signed.trim()).map_err(|e| ChainError::Malformed {
        reason: format!("signed: {e}"),
    })?;
    let tx: SignedCall =
        decode("extrinsic", &bytes, MAX_BODY).map_err(|e| ChainError::Malformed {
            reason: e.to_string(),
        })?;
    // Applying persists with an fsync: off the async workers.
    let included = tokio::task::spawn_blocking(move || c.submit(&tx))
        .await
        .map_err(|e| ChainError::Storage(e.to_string()))??;
    Ok(Json(included))
}

/// Serves `chain` on `listener` and produces a block every `block_time` until `shutdown`
/// resolves.
pub async fn serve(
    chain: Shared,
    listener: tokio::net::TcpListener,
    block_time: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let producer = {
        let chain = chain.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(block_time);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let c = chain.clone();
                match tokio::task::spawn_blocking(move || c.produce_block()).await {
                    Ok(Ok(n)) => tracing::debug!(block = n, "block produced"),
                    Ok(Err(e)) => tracing::error!("cannot persist block: {e}"),
                    Err(e) => tracing::error!("block producer failed: {e}"),
                }
            }
        })
    };
    let r = axum::serve(listener, router(chain))
        .with_graceful_shutdown(shutdown)
        .await;
    producer.abort();
    r
}

/// Binds `addr` (loopback only) and returns the listener and the address actually bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    bind_within(addr, false).await
}

/// Binds `addr`: a loopback address, or with `private` also a private IPv4 address (10/8,
/// 172.16/12, 192.168/16), for test networks on private interfaces such as network
/// namespaces. LocalChain has no authentication: it must never face a public network.
pub async fn bind_within(
    addr: SocketAddr,
    private: bool,
) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let allowed = addr.ip().is_loopback()
        || (private && matches!(addr.ip(), std::net::IpAddr::V4(v4) if v4.is_private()));
    if !allowed {
        let what = if private {
            "loopback or private IPv4 addresses (10/8, 172.16/12, 192.168/16)"
        } else {
            "loopback addresses only (127.0.0.1 or ::1; --listen-private allows private ones)"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: LocalChain listens on {what}"),
        ));
    }
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
