//! The node's HTTP API (the parts built so far): `GET /api/v1/status`,
//! `GET /api/v1/blocks/{height}`, `/health`, `/ready`, `/metrics`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use platform_network::Network;
use platform_storage::DataDir;

use crate::driver::{SharedStatus, Status};

#[derive(Clone)]
struct Ctx {
    status: SharedStatus,
    net: Network,
    dir: Arc<DataDir>,
}

/// The API's routes.
pub fn router(status: SharedStatus, net: Network, dir: Arc<DataDir>) -> Router {
    Router::new()
        .route("/api/v1/status", get(get_status))
        .route("/api/v1/blocks/{height}", get(get_block))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Ctx { status, net, dir })
}

fn snapshot(ctx: &Ctx) -> Status {
    ctx.status.lock().expect("status lock poisoned").clone()
}

async fn get_status(State(ctx): State<Ctx>) -> Json<Status> {
    Json(snapshot(&ctx))
}

/// A finalized block's header fields.
#[derive(serde::Serialize)]
struct BlockView {
    height: u64,
    hash: String,
    parent: String,
    view: u64,
    proposer: String,
    state_root: String,
    timestamp_ms: u64,
    txs: usize,
}

async fn get_block(State(ctx): State<Ctx>, Path(height): Path<u64>) -> impl IntoResponse {
    let dir = ctx.dir.clone();
    let found = tokio::task::spawn_blocking(move || {
        crate::store::finalized_range(dir.db(), height, height)
    })
    .await;
    match found {
        Ok(Ok(mut v)) if !v.is_empty() => {
            let f = v.remove(0);
            let h = &f.block.header;
            Json(BlockView {
                height: h.height.0,
                hash: h.hash().to_hex(),
                parent: h.parent.to_hex(),
                view: h.view.0,
                proposer: h.proposer.to_ss58(),
                state_root: h.state_root.to_hex(),
                timestamp_ms: h.timestamp_ms,
                txs: f.block.txs.len(),
            })
            .into_response()
        }
        Ok(Ok(_)) => (
            StatusCode::NOT_FOUND,
            format!("block {height} is not finalized on this node"),
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the block store",
        )
            .into_response(),
    }
}

/// Alive: the process answers.
async fn health() -> &'static str {
    "ok"
}

/// Ready: connected to peers and not partitioned.
async fn ready(State(ctx): State<Ctx>) -> impl IntoResponse {
    let s = snapshot(&ctx);
    if s.partitioned {
        (StatusCode::SERVICE_UNAVAILABLE, "partitioned")
    } else if s.peers == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "no peers")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn metrics(State(ctx): State<Ctx>) -> String {
    let s = snapshot(&ctx);
    let mut out = ctx.net.metrics().render_prometheus();
    out.push_str(&format!(
        "# TYPE platform_finalized_height gauge\nplatform_finalized_height {}\n\
         # TYPE platform_consensus_view gauge\nplatform_consensus_view {}\n\
         # TYPE platform_partitioned gauge\nplatform_partitioned {}\n",
        s.height,
        s.view,
        u8::from(s.partitioned)
    ));
    out
}
