//! JSON-RPC 2.0 at `/rpc` on the node's HTTP listener, over HTTP (POST) and WebSocket
//! (`jsonrpsee`), reading the same live state as the REST API and answering with the same
//! typed views (`crate::views`). The `PlatformRpc` trait is the contract: the server below
//! implements it and `PlatformRpcClient` (generated from it) is what the CLI and the tests
//! call, so both sides share every request and response type.
//!
//! Methods (namespace `platform`): `status`, `block` (by height or hash), `submission`,
//! `challenges`, `validators`, `epochWeights`, `submit`. Subscriptions (WebSocket):
//! `subscribeFinalized` (every finalized block, in height order), `subscribeSubmission` (a
//! submission's view whenever it changes, ending once it is settled) and `subscribeEpochs`
//! (each epoch's weights as it closes). A connection holds at most
//! [`MAX_SUBSCRIPTIONS_PER_CONNECTION`] subscriptions; the HTTP listener's connection and rate
//! limits apply to `/rpc` as to every route.

use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{PendingSubscriptionSink, SubscriptionMessage, SubscriptionSink};
use platform_network::Network;
use platform_primitives::{Hash, SubmissionId};
use platform_storage::DataDir;
use serde::{Deserialize, Serialize};

use crate::driver::{SharedStatus, Status};
use crate::mempool::Pool;
use crate::views::{BlockInfo, ChallengeView, EpochWeightsView, SubmissionView, ValidatorView};

/// Most subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 16;

/// How often subscriptions look for a new finalized height.
const POLL: Duration = Duration::from_millis(200);

/// A block by height or by header hash (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockId {
    Height(u64),
    Hash(String),
}

/// What `platform_submit` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitReceipt {
    pub submission_id: String,
    /// `pending`: admitted, waiting to be ordered and evaluated.
    pub status: String,
}

/// Platform's JSON-RPC interface.
#[rpc(server, client, namespace = "platform")]
pub trait PlatformRpc {
    /// The node's status (as `GET /api/v1/status`).
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<Status>;

    /// A finalized block by height or hash (`null`: not finalized here, or pruned).
    #[method(name = "block")]
    async fn block(&self, id: BlockId) -> RpcResult<Option<BlockInfo>>;

    /// A submission by id (hex) (`null`: unknown here).
    #[method(name = "submission")]
    async fn submission(&self, id: String) -> RpcResult<Option<SubmissionView>>;

    /// The challenges in the canonical state.
    #[method(name = "challenges")]
    async fn challenges(&self) -> RpcResult<Vec<ChallengeView>>;

    /// The current epoch's validators.
    #[method(name = "validators")]
    async fn validators(&self) -> RpcResult<Vec<ValidatorView>>;

    /// A closed epoch's weights (`null`: unknown or not closed yet).
    #[method(name = "epochWeights")]
    async fn epoch_weights(&self, epoch: u64) -> RpcResult<Option<EpochWeightsView>>;

    /// Admits a miner's submission: `request` is the hex of the Borsh
    /// `api::SubmissionRequest` (the signed submission and its payload), checked as
    /// `POST /api/v1/submissions` checks it.
    #[method(name = "submit")]
    async fn submit(&self, request: String) -> RpcResult<SubmitReceipt>;

    /// Every block finalized from now on, in height order.
    #[subscription(name = "subscribeFinalized" => "finalized", unsubscribe = "unsubscribeFinalized", item = BlockInfo)]
    async fn subscribe_finalized(&self) -> SubscriptionResult;

    /// Submission `id`'s view now and whenever it changes; ends once it is settled.
    #[subscription(name = "subscribeSubmission" => "submissionChanged", unsubscribe = "unsubscribeSubmission", item = SubmissionView)]
    async fn subscribe_submission(&self, id: String) -> SubscriptionResult;

    /// Each epoch's weights as the epoch closes.
    #[subscription(name = "subscribeEpochs" => "epochClosed", unsubscribe = "unsubscribeEpochs", item = EpochWeightsView)]
    async fn subscribe_epochs(&self) -> SubscriptionResult;
}

/// The server side: the node's live state.
#[derive(Clone)]
pub struct Rpc {
    pub(crate) status: SharedStatus,
    pub(crate) pool: Arc<Pool>,
    pub(crate) dir: Arc<DataDir>,
    pub(crate) net: Network,
}

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

fn internal(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32603, msg.into(), None::<()>)
}

/// Runs a state or store read on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ErrorObjectOwned> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| internal("reading the state failed"))
}

fn submission_id(id: &str) -> Result<SubmissionId, ErrorObjectOwned> {
    Hash::from_hex(id)
        .map(SubmissionId)
        .map_err(|_| invalid("the id is not a 64-digit hex hash"))
}

async fn send<T: Serialize>(sink: &SubscriptionSink, item: &T) -> Result<(), ()> {
    let msg = serde_json::value::to_raw_value(item).map_err(|_| ())?;
    sink.send(SubscriptionMessage::from(msg))
        .await
        .map_err(|_| ())
}

impl Rpc {
    fn height(&self) -> u64 {
        self.status.lock().expect("status lock poisoned").height
    }

    fn epoch(&self) -> u64 {
        self.status.lock().expect("status lock poisoned").epoch
    }

    /// Waits until the finalized height passes `after` or the subscriber leaves.
    async fn next_height(&self, sink: &SubscriptionSink, after: u64) -> Option<u64> {
        loop {
            let h = self.height();
            if h > after {
                return Some(h);
            }
            tokio::select! {
                _ = sink.closed() => return None,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

#[async_trait]
impl PlatformRpcServer for Rpc {
    async fn status(&self) -> RpcResult<Status> {
        Ok(self.status.lock().expect("status lock poisoned").clone())
    }

    async fn block(&self, id: BlockId) -> RpcResult<Option<BlockInfo>> {
        let dir = self.dir.clone();
        let read = match id {
            BlockId::Height(h) => blocking(move || crate::views::block(&dir, h)).await?,
            BlockId::Hash(hex) => {
                let hash = Hash::from_hex(&hex).map_err(|_| invalid("not a 64-digit hex hash"))?;
                blocking(move || crate::views::block_by_hash(&dir, &hash)).await?
            }
        };
        read.map_err(|_| internal("cannot read the block store"))
    }

    async fn submission(&self, id: String) -> RpcResult<Option<SubmissionView>> {
        let id = submission_id(&id)?;
        let pool = self.pool.clone();
        blocking(move || crate::views::submission(&pool, &id)).await
    }

    async fn challenges(&self) -> RpcResult<Vec<ChallengeView>> {
        let pool = self.pool.clone();
        blocking(move || crate::views::challenges(&pool)).await
    }

    async fn validators(&self) -> RpcResult<Vec<ValidatorView>> {
        let heard = self
            .status
            .lock()
            .expect("status lock poisoned")
            .heard
            .clone();
        let pool = self.pool.clone();
        blocking(move || crate::views::validators(&pool, &heard)).await
    }

    async fn epoch_weights(&self, epoch: u64) -> RpcResult<Option<EpochWeightsView>> {
        let (pool, dir) = (self.pool.clone(), self.dir.clone());
        match blocking(move || crate::views::epoch_weights(&pool, &dir, epoch)).await? {
            Ok(v) => Ok(Some(v)),
            Err(crate::views::EpochWeightsError::Store(e)) => Err(internal(e)),
            Err(_) => Ok(None),
        }
    }

    async fn submit(&self, request: String) -> RpcResult<SubmitReceipt> {
        let bytes = hex::decode(request.trim_start_matches("0x"))
            .map_err(|_| invalid("the request is not hex"))?;
        let req: crate::api::SubmissionRequest = platform_primitives::decode(
            "submission request",
            &bytes,
            crate::api::MAX_SUBMISSION_REQUEST,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let id = crate::api::admit_submission(&self.pool, &self.dir, &self.net, &self.status, req)
            .await
            .map_err(|(code, why)| {
                // The REST API's status code, as the error's data.
                ErrorObjectOwned::owned(-32000, why, Some(code.as_u16()))
            })?;
        Ok(SubmitReceipt {
            submission_id: id.0.to_hex(),
            status: "pending".into(),
        })
    }

    async fn subscribe_finalized(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let mut sent = self.height();
        while let Some(now) = self.next_height(&sink, sent).await {
            for height in sent + 1..=now {
                let dir = self.dir.clone();
                // A block pruned in between (far behind a slow subscriber) is skipped.
                let Ok(Ok(Some(block))) = blocking(move || crate::views::block(&dir, height)).await
                else {
                    continue;
                };
                if send(&sink, &block).await.is_err() {
                    return Ok(());
                }
            }
            sent = now;
        }
        Ok(())
    }

    async fn subscribe_submission(
        &self,
        pending: PendingSubscriptionSink,
        id: String,
    ) -> SubscriptionResult {
        let id = match submission_id(&id) {
            Ok(id) => id,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        let mut last: Option<SubmissionView> = None;
        let mut seen = 0;
        loop {
            let pool = self.pool.clone();
            let view = blocking(move || crate::views::submission(&pool, &id)).await?;
            if view != last {
                if let Some(v) = &view {
                    if send(&sink, v).await.is_err() {
                        return Ok(());
                    }
                    if v.settled() {
                        return Ok(());
                    }
                }
                last = view;
            }
            let Some(h) = self.next_height(&sink, seen).await else {
                return Ok(());
            };
            seen = h;
        }
    }

    async fn subscribe_epochs(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let mut epoch = self.epoch();
        let mut height = self.height();
        while let Some(h) = self.next_height(&sink, height).await {
            height = h;
            let now = self.epoch();
            for closed in epoch..now {
                let (pool, dir) = (self.pool.clone(), self.dir.clone());
                if let Ok(Ok(view)) =
                    blocking(move || crate::views::epoch_weights(&pool, &dir, closed)).await
                    && send(&sink, &view).await.is_err()
                {
                    return Ok(());
                }
            }
            epoch = now;
        }
        Ok(())
    }
}

/// The `/rpc` service: the methods above, HTTP and WebSocket, with `stop` ending every
/// WebSocket session.
pub fn service(
    rpc: Rpc,
    stop: jsonrpsee::server::StopHandle,
) -> jsonrpsee::server::TowerService<tower::layer::util::Identity, tower::layer::util::Identity> {
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(crate::api::MAX_SUBMISSION_REQUEST as u32 * 2 + 4096)
        .max_response_body_size(16 << 20)
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .build();
    jsonrpsee::server::Server::builder()
        .set_config(config)
        .to_service_builder()
        .build(rpc.into_rpc(), stop)
}
