//! A [`Chain`] client for a LocalChain served over HTTP (`platform localchain`).

use std::time::Duration;

use platform_crypto::Keypair;
use platform_primitives::encode;
use serde::de::DeserializeOwned;

use super::server::{Extrinsic, Info};
use super::sim::Call;
use crate::timelock::{Beacon, EpochState, TimelockedCommit};
use crate::{
    BlockRef, Chain, ChainError, EpochSchedule, Hyperparameters, Included, NeuronInfo, Reveal,
    ValidatorWeights,
};

/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Talks to `http://host:port` of a LocalChain.
#[derive(Clone)]
pub struct LocalChainClient {
    url: String,
    http: reqwest::Client,
}

impl LocalChainClient {
    /// A client for `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Result<LocalChainClient, ChainError> {
        if !url.starts_with("http://") {
            return Err(ChainError::Malformed {
                reason: format!("{url}: a LocalChain URL starts with http://"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| ChainError::Unreachable {
                url: url.into(),
                reason: e.to_string(),
            })?;
        Ok(LocalChainClient {
            url: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ChainError {
        ChainError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        r: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ChainError> {
        let r = r.map_err(|e| self.unreachable(e))?;
        let ok = r.status().is_success();
        let bytes = r.bytes().await.map_err(|e| self.unreachable(e))?;
        if ok {
            serde_json::from_slice(&bytes).map_err(|e| self.unreachable(format!("bad answer: {e}")))
        } else {
            Err(
                serde_json::from_slice::<ChainError>(&bytes).unwrap_or_else(|_| {
                    self.unreachable(format!(
                        "error answer: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    ))
                }),
            )
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ChainError> {
        let r = self.http.get(format!("{}{path}", self.url)).send().await;
        self.answer(r).await
    }

    /// What the server says about itself.
    pub async fn info(&self) -> Result<Info, ChainError> {
        self.get("/v1/info").await
    }

    /// Yuma's consensus step over the stored weights.
    /// The subnet's timelocked commits: pending, revealed, failed.
    pub async fn timelocked(
        &self,
        netuid: u16,
    ) -> Result<super::server::TimelockedStatus, ChainError> {
        self.get(&format!("/v1/subnets/{netuid}/timelocked")).await
    }

    pub async fn consensus(&self, netuid: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        self.get(&format!("/v1/subnets/{netuid}/consensus")).await
    }

    /// Signs `call` with the account's next nonce and submits it.
    pub async fn submit(&self, signer: &Keypair, call: Call) -> Result<Included, ChainError> {
        let info = self.info().await?;
        let genesis: [u8; 32] = hex::decode(&info.genesis_hash)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| self.unreachable("bad genesis hash"))?;
        let nonce: u64 = self
            .get(&format!("/v1/accounts/{}/nonce", signer.hotkey()))
            .await?;
        let tx = super::sign_call(signer, &genesis, nonce, call);
        let r = self
            .http
            .post(format!("{}/v1/extrinsics", self.url))
            .json(&Extrinsic {
                signed: hex::encode(encode(&tx)),
            })
            .send()
            .await;
        self.answer(r).await
    }

    /// Registers the signer on a subnet.
    pub async fn register(&self, signer: &Keypair, netuid: u16) -> Result<Included, ChainError> {
        self.submit(signer, Call::Register { netuid }).await
    }

    /// Sets `signer`'s commitment on `netuid`.
    pub async fn set_commitment(
        &self,
        signer: &Keypair,
        netuid: u16,
        data: Vec<u8>,
    ) -> Result<Included, ChainError> {
        self.submit(signer, Call::SetCommitment { netuid, data })
            .await
    }

    /// Every hotkey's commitment on `netuid` as of `block` (the head when `None`).
    pub async fn commitments(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<crate::Commitment>, ChainError> {
        let at = block.map_or(String::new(), |b| format!("?block={b}"));
        self.get(&format!("/v1/subnets/{netuid}/commitments{at}"))
            .await
    }

    /// The subnet owner's hotkey.
    pub async fn subnet_owner(
        &self,
        netuid: u16,
    ) -> Result<platform_primitives::Hotkey, ChainError> {
        self.get(&format!("/v1/subnets/{netuid}/owner")).await
    }
}

impl Chain for LocalChainClient {
    async fn head(&self) -> Result<BlockRef, ChainError> {
        self.get("/v1/head").await
    }

    async fn block(&self, number: u64) -> Result<BlockRef, ChainError> {
        self.get(&format!("/v1/blocks/{number}")).await
    }

    async fn hyperparameters(&self, netuid: u16) -> Result<Hyperparameters, ChainError> {
        self.get(&format!("/v1/subnets/{netuid}/hyperparameters"))
            .await
    }

    async fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<NeuronInfo>, ChainError> {
        let q = block.map(|b| format!("?block={b}")).unwrap_or_default();
        self.get(&format!("/v1/subnets/{netuid}/metagraph{q}"))
            .await
    }

    async fn epoch_schedule(&self, netuid: u16) -> Result<EpochSchedule, ChainError> {
        self.get(&format!("/v1/subnets/{netuid}/schedule")).await
    }

    async fn set_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Included, ChainError> {
        self.submit(
            signer,
            Call::SetWeights {
                netuid,
                uids: uids.to_vec(),
                weights: weights.to_vec(),
                version_key,
            },
        )
        .await
    }

    async fn commit_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<Included, ChainError> {
        self.submit(signer, Call::CommitWeights { netuid, hash })
            .await
    }

    async fn reveal_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        reveal: &Reveal,
    ) -> Result<Included, ChainError> {
        self.submit(
            signer,
            Call::RevealWeights {
                netuid,
                reveal: reveal.clone(),
            },
        )
        .await
    }

    async fn weights(&self, netuid: u16) -> Result<Vec<ValidatorWeights>, ChainError> {
        self.get(&format!("/v1/subnets/{netuid}/weights")).await
    }

    async fn beacon(&self) -> Result<Beacon, ChainError> {
        self.get("/v1/beacon").await
    }

    /// LocalChain runs spec 393's modulo epochs: there is no stateful schedule.
    async fn epoch_state(&self, netuid: u16) -> Result<Option<EpochState>, ChainError> {
        self.hyperparameters(netuid).await.map(|_| None)
    }

    async fn commit_timelocked_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        commit: &TimelockedCommit,
        version: u16,
    ) -> Result<Included, ChainError> {
        self.submit(signer, super::timelocked_call(netuid, commit, version))
            .await
    }
}
