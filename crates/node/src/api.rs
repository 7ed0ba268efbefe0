//! The node's HTTP API: `POST /api/v1/submissions`, `GET /api/v1/submissions/{id}`,
//! `POST /api/v1/transactions` (signed transactions such as the owner's `Sudo`, with the blobs
//! they name), `GET /api/v1/challenges` and `/api/v1/challenges/{id}/leaderboard`,
//! `GET /api/v1/owner`, `/api/v1/params`, `/api/v1/status`, `/api/v1/blocks/{height or hash}`,
//! `/api/v1/epochs/{n}/weights`, `/api/v1/validators`, `/api/v1/peers`,
//! `/api/v1/chain/weights`, server-sent events at `/api/v1/events`, JSON-RPC at `/rpc`
//! (`crate::rpc`), the dashboard at `/` (`crate::dashboard`), `/health`, `/ready` and
//! `/metrics` (`crate::metrics`). Answers are the typed views of `crate::views`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use borsh::{BorshDeserialize, BorshSerialize};
use platform_network::Network;
use platform_primitives::{Hash, SubmissionId, decode};
use platform_state::{SubmitTx, Tx};
use platform_storage::DataDir;

use crate::mempool::{AdmitError, Pool};

use crate::driver::{SharedStatus, Status};

#[derive(Clone)]
struct Ctx {
    status: SharedStatus,
    net: Network,
    dir: Arc<DataDir>,
    pool: Arc<Pool>,
    /// The operator token (see [`crate::token`]).
    token: Arc<str>,
    /// The chain client (`None` without a chain), and the weights it last read with when.
    chain: Option<platform_chain::AnyChain>,
    chain_weights: Arc<tokio::sync::Mutex<Option<(std::time::Instant, ChainWeightsView)>>>,
    /// What `/metrics` encodes (`crate::metrics`).
    registry: Arc<prometheus_client::registry::Registry>,
}

/// What a miner posts to `/api/v1/submissions` (Borsh, `application/octet-stream`): the signed
/// submission and the payload it names.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct SubmissionRequest {
    /// The miner-signed submission.
    pub tx: SubmitTx,
    /// The payload; its blake3 and length must match the submission.
    pub payload: Vec<u8>,
}

/// The largest submission request accepted (payload included).
pub const MAX_SUBMISSION_REQUEST: usize = 16 << 20;

/// What the API serves from.
pub struct Parts {
    pub status: SharedStatus,
    pub net: Network,
    pub dir: Arc<DataDir>,
    pub pool: Arc<Pool>,
    /// The operator token (see [`crate::token`]).
    pub token: String,
    /// The listener's refusals ([`crate::http`]).
    pub http: Arc<crate::http::HttpStats>,
    /// The chain client, if the node has a chain.
    pub chain: Option<platform_chain::AnyChain>,
    /// Ends the JSON-RPC WebSocket sessions ([`crate::rpc`]).
    pub rpc_stop: jsonrpsee::server::StopHandle,
}

/// The two listeners' routes: the public API, and the operator's.
pub struct Routers {
    /// Everything public: reads, miners' submissions, the owner's signed `Sudo`.
    pub public: Router,
    /// `POST /api/v1/transactions` for any transaction, with the operator token. Served on
    /// the operator listener only (`operator_http`, loopback by default).
    pub operator: Router,
}

/// The API's routes.
pub fn router(parts: Parts) -> Routers {
    let Parts {
        status,
        net,
        dir,
        pool,
        token,
        http,
        chain,
        rpc_stop,
    } = parts;
    let rpc = crate::rpc::service(
        crate::rpc::Rpc {
            status: status.clone(),
            pool: pool.clone(),
            dir: dir.clone(),
            net: net.clone(),
        },
        rpc_stop,
    );
    // jsonrpsee's service, its errors answered as 500s.
    let rpc = tower::service_fn(move |req: axum::extract::Request| {
        let rpc = rpc.clone();
        async move {
            use tower::ServiceExt;
            Ok::<_, std::convert::Infallible>(match rpc.oneshot(req).await {
                Ok(response) => response.map(axum::body::Body::new).into_response(),
                Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            })
        }
    });
    let ctx = Ctx {
        registry: Arc::new(crate::metrics::registry(crate::metrics::Readings::new(
            status.clone(),
            net.metrics().clone(),
            http.clone(),
            dir.root().to_path_buf(),
        ))),
        status,
        net,
        dir,
        pool,
        token: token.into(),
        chain,
        chain_weights: Arc::default(),
    };
    let operator = Router::new()
        .route(
            "/api/v1/transactions",
            axum::routing::post(post_transaction)
                .layer(DefaultBodyLimit::max(MAX_SUBMISSION_REQUEST + 1024)),
        )
        .route_layer(axum::middleware::from_fn(count_request))
        .with_state(ctx.clone());
    let public = Router::new()
        .route_service("/rpc", rpc)
        .route(
            "/api/v1/submissions",
            axum::routing::post(post_submission)
                .layer(DefaultBodyLimit::max(MAX_SUBMISSION_REQUEST + 1024)),
        )
        .route("/api/v1/submissions/{id}", get(get_submission))
        .route(
            "/api/v1/transactions",
            axum::routing::post(post_owner_transaction)
                .layer(DefaultBodyLimit::max(MAX_SUBMISSION_REQUEST + 1024)),
        )
        .route("/api/v1/challenges", get(get_challenges))
        .route("/api/v1/owner", get(get_owner))
        .route("/api/v1/params", get(get_params))
        .route("/api/v1/status", get(get_status))
        .route("/api/v1/blocks/{which}", get(get_block))
        .route("/api/v1/epochs/{epoch}/weights", get(get_epoch_weights))
        .route("/api/v1/validators", get(get_validators))
        .route("/api/v1/challenges/{id}/leaderboard", get(get_leaderboard))
        .route("/api/v1/chain/weights", get(get_chain_weights))
        .route("/api/v1/events", get(events))
        .route("/api/v1/peers", get(get_peers))
        .route("/", get(crate::dashboard::page))
        .route("/assets/dashboard.js", get(crate::dashboard::script))
        .route("/assets/dashboard.css", get(crate::dashboard::style))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn(count_request))
        .with_state(ctx);
    Routers { public, operator }
}

fn snapshot(ctx: &Ctx) -> Status {
    ctx.status.lock().expect("status lock poisoned").clone()
}

async fn get_status(State(ctx): State<Ctx>) -> Json<Status> {
    Json(snapshot(&ctx))
}

fn refuse(code: StatusCode, reason: impl Into<String>) -> axum::response::Response {
    (code, Json(serde_json::json!({ "error": reason.into() }))).into_response()
}

/// What `/api/v1/transactions` takes (Borsh): a signed transaction and the blobs it names (a
/// challenge module for an owner's `Publish`, a payload for a submission).
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct TransactionRequest {
    /// The transaction.
    pub tx: Tx,
    /// Content it refers to by hash.
    pub blobs: Vec<Vec<u8>>,
}

/// Admits `tx`, stores and announces `blobs`, gossips `tx`; the error response on refusal.
async fn admit_and_gossip(
    ctx: &Ctx,
    tx: Tx,
    blobs: Vec<Vec<u8>>,
) -> Result<(), axum::response::Response> {
    admit(&ctx.pool, &ctx.dir, &ctx.net, &ctx.status, tx, blobs)
        .await
        .map_err(|(code, why)| refuse(code, why))
}

/// Admits `tx` to the mempool, holds a submission's payload in quarantine until it is ordered
/// (`crate::collect`), stores and announces `blobs`, gossips `tx`. The refusal's status code
/// and reason otherwise (the REST API answers with them; JSON-RPC carries them in its error).
pub(crate) async fn admit(
    pool: &Arc<Pool>,
    dir: &Arc<DataDir>,
    net: &Network,
    status: &SharedStatus,
    tx: Tx,
    blobs: Vec<Vec<u8>>,
) -> Result<(), (StatusCode, String)> {
    let admitted = tokio::task::spawn_blocking({
        let (pool, tx) = (pool.clone(), tx.clone());
        move || pool.admit(tx)
    })
    .await;
    let result = match &admitted {
        Ok(Ok(_)) => "admitted",
        Ok(Err(AdmitError::Mempool(_))) => "full",
        _ => "rejected",
    };
    crate::metrics::events().offered("api", result);
    let failed = |why: &str| (StatusCode::INTERNAL_SERVER_ERROR, why.to_string());
    match admitted {
        Ok(Ok(evicted)) => {
            if let Some((old, reason)) = evicted {
                tracing::info!(kind = old.kind(), "evicted a pending transaction: {reason}");
            }
        }
        Ok(Err(AdmitError::Mempool(e))) => {
            return Err((StatusCode::TOO_MANY_REQUESTS, e.to_string()));
        }
        Ok(Err(AdmitError::Rejected(e))) => {
            return Err((StatusCode::UNPROCESSABLE_ENTITY, e.to_string()));
        }
        Err(_) => return Err(failed("admission failed")),
    }
    let height = status.lock().expect("status lock poisoned").height;
    if let Tx::Submit(t) = &tx {
        let (dir, id, payload) = (dir.clone(), t.submission.id(), t.submission.payload_hash);
        let held = tokio::task::spawn_blocking(move || {
            crate::collect::hold_admitted(dir.db(), id, height, payload)
        })
        .await;
        if !matches!(held, Ok(Ok(()))) {
            pool.mempool().remove([tx.hash()]);
            return Err(failed("could not record the payload"));
        }
    }
    for blob in blobs {
        if let Err(e) = net.put_blob(blob).await {
            tracing::warn!("storing a blob of a {} transaction: {e}", tx.kind());
            pool.mempool().remove([tx.hash()]);
            return Err(failed("could not store the content"));
        }
    }
    // Published only once its payload and blobs are stored: peers fetch them from here.
    crate::mempool::publish_tx(net, &tx, height).await;
    Ok(())
}

/// Checks a miner's submission request (the payload against the signed hash and length) and
/// admits it ([`admit`]); its id.
pub(crate) async fn admit_submission(
    pool: &Arc<Pool>,
    dir: &Arc<DataDir>,
    net: &Network,
    status: &SharedStatus,
    req: SubmissionRequest,
) -> Result<SubmissionId, (StatusCode, String)> {
    let s = &req.tx.submission;
    if Hash::of(&req.payload) != s.payload_hash || req.payload.len() as u64 != s.payload_len {
        return Err((
            StatusCode::BAD_REQUEST,
            "the payload does not match the submission's payload_hash and payload_len".into(),
        ));
    }
    let id = s.id();
    admit(
        pool,
        dir,
        net,
        status,
        Tx::Submit(req.tx),
        vec![req.payload],
    )
    .await?;
    Ok(id)
}

/// The public listener's `POST /api/v1/transactions`: the subnet owner's `Sudo`, admitted on
/// the strength of the owner's signature (checked before anything else is touched). Any
/// other transaction goes to the operator listener.
async fn post_owner_transaction(State(ctx): State<Ctx>, body: Bytes) -> axum::response::Response {
    let req: TransactionRequest = match decode("transaction request", &body, MAX_SUBMISSION_REQUEST)
    {
        Ok(r) => r,
        Err(_) => return owner_only(),
    };
    if !signed_by_owner(&ctx.pool, &req.tx) {
        return owner_only();
    }
    admit_request(&ctx, req).await
}

/// The operator listener's `POST /api/v1/transactions`: any signed transaction with the blobs
/// it names, with the operator token.
async fn post_transaction(
    State(ctx): State<Ctx>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !crate::token::authorizes(auth, &ctx.token) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this method needs the operator token ('Authorization: Bearer <token>' with the \
             token from operator.token in the validator's data directory)",
        );
    }
    match decode("transaction request", &body, MAX_SUBMISSION_REQUEST) {
        Ok(req) => admit_request(&ctx, req).await,
        Err(e) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn admit_request(ctx: &Ctx, req: TransactionRequest) -> axum::response::Response {
    let hash = req.tx.hash();
    let kind = req.tx.kind();
    match admit_and_gossip(ctx, req.tx, req.blobs).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(
                serde_json::json!({ "tx_hash": hash.to_hex(), "kind": kind, "status": "pending" }),
            ),
        )
            .into_response(),
        Err(r) => r,
    }
}

fn owner_only() -> axum::response::Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "the public API takes only the subnet owner's signed Sudo transactions here; other \
         transactions go to the validator's operator listener (operator_http in config.toml, \
         its address in operator.addr in the data directory) with the operator token",
    )
}

/// Whether `tx` is a `Sudo` that the subnet owner (as of the finalized state) signed.
fn signed_by_owner(pool: &Pool, tx: &Tx) -> bool {
    let Tx::Sudo(t) = tx else {
        return false;
    };
    let meta = pool.latest().meta();
    t.signer == meta.owner
        && t.signature.as_ref().is_some_and(|sig| {
            platform_crypto::sr25519::verify(
                &t.signer,
                platform_crypto::Domain::Sudo,
                &platform_state::SudoTx::signing_bytes(
                    meta.netuid,
                    &meta.network_id,
                    t.nonce,
                    &t.action,
                ),
                sig,
            )
            .is_ok()
        })
}

/// Who owns the subnet and the owner's last accepted nonce: what `platform owner` signs with.
async fn get_owner(State(ctx): State<Ctx>) -> axum::response::Response {
    let meta = ctx.pool.latest().meta();
    Json(serde_json::json!({
        "netuid": meta.netuid.0,
        "network_id": meta.network_id.to_hex(),
        "owner": meta.owner.to_ss58(),
        "sudo_nonce": meta.sudo_nonce,
        "height": meta.height,
    }))
    .into_response()
}

/// The network parameters in the finalized state.
async fn get_params(State(ctx): State<Ctx>) -> axum::response::Response {
    Json(ctx.pool.latest().params()).into_response()
}

/// The challenges in the canonical state.
async fn get_challenges(State(ctx): State<Ctx>) -> axum::response::Response {
    let pool = ctx.pool.clone();
    match tokio::task::spawn_blocking(move || crate::views::challenges(&pool)).await {
        Ok(list) => Json(list).into_response(),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the state failed",
        ),
    }
}

/// Admits a miner's submission: strict decoding with a size limit, the payload checked against
/// the signed hash and length, then the state's own admission rules (signature, registration,
/// active challenge, size policy, per-epoch limit, duplicates, nonce). On success the payload is
/// stored and announced, the transaction is gossiped to the other validators, and the receipt
/// names the submission id.
async fn post_submission(State(ctx): State<Ctx>, body: Bytes) -> axum::response::Response {
    let req: SubmissionRequest = match decode("submission request", &body, MAX_SUBMISSION_REQUEST) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match admit_submission(&ctx.pool, &ctx.dir, &ctx.net, &ctx.status, req).await {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "submission_id": id.0.to_hex(),
                "status": "pending",
            })),
        )
            .into_response(),
        Err((code, why)) => refuse(code, why),
    }
}

async fn get_submission(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> axum::response::Response {
    let Ok(hash) = Hash::from_hex(&id) else {
        return refuse(StatusCode::BAD_REQUEST, "the id is not a 64-digit hex hash");
    };
    let pool = ctx.pool.clone();
    let found =
        tokio::task::spawn_blocking(move || crate::views::submission(&pool, &SubmissionId(hash)))
            .await;
    match found {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            format!(
                "no submission {id} (never ordered, or settled more than the network's \
                 retain_epochs ago and pruned; a miner's best result stays in its score)"
            ),
        ),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the state failed",
        ),
    }
}

/// `GET /api/v1/blocks/{height or hash}`: a finalized block's header fields.
async fn get_block(State(ctx): State<Ctx>, Path(which): Path<String>) -> axum::response::Response {
    let by_hash = which.len() == 64;
    let key = match (which.parse::<u64>(), Hash::from_hex(&which)) {
        (Ok(h), _) if !by_hash => Ok(h),
        (_, Ok(hash)) if by_hash => Err(hash),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "name a block by its height or its 64-digit hex hash",
            );
        }
    };
    let dir = ctx.dir.clone();
    let found = tokio::task::spawn_blocking(move || match key {
        Ok(height) => crate::views::block(&dir, height),
        Err(hash) => crate::views::block_by_hash(&dir, &hash),
    })
    .await;
    match found {
        Ok(Ok(Some(b))) => Json(b).into_response(),
        Ok(Ok(None)) => refuse(
            StatusCode::NOT_FOUND,
            format!("block {which} is not finalized on this node (or was pruned)"),
        ),
        _ => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the block store",
        ),
    }
}

/// The current epoch's validators, with stake, keys, jail status and when last heard.
async fn get_validators(State(ctx): State<Ctx>) -> Json<Vec<crate::views::ValidatorView>> {
    let heard = snapshot(&ctx).heard;
    Json(crate::views::validators(&ctx.pool, &heard))
}

/// One row of `GET /api/v1/challenges/{id}/leaderboard`.
#[derive(serde::Serialize)]
struct LeaderboardRow {
    /// 1 for the leader.
    rank: usize,
    miner: String,
    /// The miner's UID in the current epoch's metagraph (`null`: no longer registered).
    uid: Option<u16>,
    /// The best certified score (decimal, 9 places).
    score: String,
    /// The submission that earned it.
    submission: String,
    /// The height its certificate was finalized at (`null`: its record was pruned).
    certified_height: Option<u64>,
    /// The miner's submissions to this challenge in the current epoch.
    submissions_this_epoch: u32,
}

/// The miners of a challenge by best certified score, highest first; among equal scores the
/// one certified first ranks higher (as the leader in `/api/v1/challenges` is chosen).
async fn get_leaderboard(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> axum::response::Response {
    let Ok(challenge) = platform_primitives::ChallengeId::new(&id) else {
        return refuse(StatusCode::BAD_REQUEST, "not a challenge id");
    };
    let pool = ctx.pool.clone();
    let read = tokio::task::spawn_blocking(move || {
        use platform_state::records::SubmissionStatus;
        let state = pool.latest();
        state.challenge(&challenge)?;
        let metagraph = state.current_epoch().metagraph;
        let mut scores: Vec<_> = state.scores(&challenge).into_iter().collect();
        scores.sort_by(|a, b| b.1.score.cmp(&a.1.score).then(a.1.seq.cmp(&b.1.seq)));
        Some(
            scores
                .into_iter()
                .enumerate()
                .map(|(i, (miner, entry))| LeaderboardRow {
                    rank: i + 1,
                    uid: metagraph
                        .iter()
                        .find(|n| n.hotkey == miner)
                        .map(|n| n.uid.0),
                    score: entry.score.to_string(),
                    submission: entry.submission.0.to_hex(),
                    certified_height: state.submission(&entry.submission).and_then(|r| {
                        match r.status {
                            SubmissionStatus::Certified { height, .. } => Some(height.0),
                            _ => None,
                        }
                    }),
                    submissions_this_epoch: state.submissions_this_epoch(&challenge, &miner),
                    miner: miner.to_ss58(),
                })
                .collect::<Vec<_>>(),
        )
    })
    .await;
    match read {
        Ok(Some(rows)) => Json(rows).into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, format!("no challenge {id}")),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the state failed",
        ),
    }
}

/// `GET /api/v1/chain/weights`: the weights the chain holds for the subnet, per validator.
#[derive(Clone, serde::Serialize)]
struct ChainWeightsView {
    /// The chain head when read.
    head: u64,
    validators: Vec<ChainWeightsRow>,
}

/// One validator's weights on chain, and the block they were last set in.
#[derive(Clone, serde::Serialize)]
struct ChainWeightsRow {
    #[serde(flatten)]
    weights: platform_chain::ValidatorWeights,
    /// The chain block of its last weight setting (the metagraph's `last_update`).
    last_update: Option<u64>,
}

/// How long a read of the chain's weights is served from memory: the route is public, and
/// each read is a chain query.
const CHAIN_WEIGHTS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

async fn get_chain_weights(State(ctx): State<Ctx>) -> axum::response::Response {
    use platform_chain::Chain;
    let Some(chain) = &ctx.chain else {
        return refuse(StatusCode::NOT_FOUND, "this validator has no chain");
    };
    // One read at a time; the others wait for it and share it.
    let mut cached = ctx.chain_weights.lock().await;
    if let Some((at, view)) = cached.as_ref()
        && at.elapsed() < CHAIN_WEIGHTS_TTL
    {
        return Json(view.clone()).into_response();
    }
    let netuid = ctx.pool.latest().meta().netuid.0;
    let read = async {
        Ok::<_, platform_chain::ChainError>((
            chain.head().await?,
            chain.weights(netuid).await?,
            chain.metagraph(netuid, None).await?,
        ))
    };
    match tokio::time::timeout(CHAIN_WEIGHTS_TTL, read).await {
        Ok(Ok((head, rows, metagraph))) => {
            let view = ChainWeightsView {
                head: head.number,
                validators: rows
                    .into_iter()
                    .map(|weights| ChainWeightsRow {
                        last_update: metagraph
                            .iter()
                            .find(|n| n.uid == weights.uid)
                            .map(|n| n.last_update),
                        weights,
                    })
                    .collect(),
            };
            *cached = Some((std::time::Instant::now(), view.clone()));
            Json(view).into_response()
        }
        Ok(Err(e)) => refuse(StatusCode::BAD_GATEWAY, format!("reading the chain: {e}")),
        Err(_) => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "the chain did not answer in time",
        ),
    }
}

/// `GET /api/v1/peers`: the network task's view (`platform_network::NetStatus`): every
/// connected peer with its address, last ping round trip and bound validator, banned peers,
/// the stake connected.
async fn get_peers(State(ctx): State<Ctx>) -> axum::response::Response {
    match ctx.net.status().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// How often `/api/v1/events` looks for a new status.
const EVENT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /api/v1/events`: server-sent events for the dashboard and scripts. An event `status`
/// carries the node's status (as `GET /api/v1/status`) whenever it changed, checked every
/// 500 ms; comments keep an idle connection open.
async fn events(
    State(ctx): State<Ctx>,
) -> axum::response::sse::Sse<
    impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let stream = futures::stream::unfold(
        (ctx, String::new(), true),
        |(ctx, last, first)| async move {
            if !first {
                tokio::time::sleep(EVENT_INTERVAL).await;
            }
            let mut last = last;
            loop {
                let now = serde_json::to_string(&snapshot(&ctx)).expect("a status serializes");
                if now != last {
                    let event = Event::default().event("status").data(now.clone());
                    return Some((Ok(event), (ctx, now, false)));
                }
                last = now;
                tokio::time::sleep(EVENT_INTERVAL).await;
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /api/v1/epochs/{n}/weights`.
async fn get_epoch_weights(State(ctx): State<Ctx>, Path(epoch): Path<u64>) -> impl IntoResponse {
    let (pool, dir) = (ctx.pool.clone(), ctx.dir.clone());
    let read =
        tokio::task::spawn_blocking(move || crate::views::epoch_weights(&pool, &dir, epoch)).await;
    use crate::views::EpochWeightsError as E;
    match read {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(e @ (E::Unknown(_) | E::Open(_)))) => refuse(StatusCode::NOT_FOUND, e.to_string()),
        _ => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the submission records",
        ),
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

/// `GET /metrics` (`crate::metrics`): OpenMetrics text to a scraper that asks for it (as
/// Prometheus does), Prometheus's text format otherwise.
async fn metrics(
    State(ctx): State<Ctx>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let registry = ctx.registry.clone();
    // The readings walk /proc and, every 30 s, the data directory.
    match tokio::task::spawn_blocking(move || crate::metrics::encode(&registry)).await {
        Ok(text) if openmetrics => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::to_prometheus_text(&text),
        )
            .into_response(),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed",
        ),
    }
}

/// Counts and times every request by its route's pattern (never the raw path, which a client
/// chooses) and status code.
async fn count_request(
    route: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let route = route.map_or("unmatched".to_string(), |r| r.as_str().to_string());
    let e = crate::metrics::events();
    e.http_requests
        .get_or_create(&vec![
            ("route", route.clone()),
            ("status", response.status().as_u16().to_string()),
        ])
        .inc();
    e.http_seconds
        .get_or_create(&vec![("route", route)])
        .observe(started.elapsed().as_secs_f64());
    response
}
