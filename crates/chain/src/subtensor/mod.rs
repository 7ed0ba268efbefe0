//! **SubtensorChain**: the [`Chain`] of a real Bittensor subtensor node, through subxt.
//!
//! - Types and call payloads are generated at build time from the metadata checked in under
//!   `crates/chain/metadata/` ([`runtime`]). The live runtime's metadata is read at every block
//!   the client works at (subxt reads the block's runtime version and fetches the metadata of
//!   each new spec version once), so a runtime upgrade is followed without a restart. Only the
//!   shapes Platform uses are checked ([`Shape`]): before an item is used, its shape in the
//!   block's runtime is compared with the built one, and a changed shape is refused with
//!   [`ChainError::RuntimeMismatch`] naming the item, never sent as wrong bytes.
//! - Reads: the metagraph through the `NeuronInfoRuntimeApi.get_neurons_lite` runtime API at a
//!   block; hyperparameters from `SubtensorModule` storage; the epoch schedule from `Tempo` and
//!   subtensor's formula ([`crate::rules::next_epoch_start`]).
//! - Writes: `set_weights`, CRv2 `commit_weights` / `reveal_weights`, and timelocked
//!   `commit_timelocked_weights` (encrypted to drand quicknet, revealed by the chain), signed with the
//!   hotkey (sr25519, Substrate context). Every call is first checked with subtensor's rules
//!   ([`crate::rules`]) against the chain's current state, so a refused call gets an error that
//!   names the rule and no fee is paid; the chain's own refusal (a dispatch error) is mapped to
//!   the same errors by name.
//! - The node is spoken to over JSON-RPC with the legacy RPC methods every subtensor node
//!   serves (`chain_*`, `state_*`, `author_submitAndWatchExtrinsic`).
//! - Reads are retried with backoff when the endpoint fails; every request has a time limit.

pub mod runtime;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use platform_crypto::Keypair;
use platform_primitives::Hotkey;
use subxt::OnlineClient;
use subxt::backend::LegacyBackend;
use subxt::client::ClientAtBlock;
use subxt::client::OnlineClientAtBlockImpl;
use subxt::config::PolkadotConfig;
use subxt::error::{
    DispatchError, ExtrinsicError, OnlineClientAtBlockError, RuntimeApiError, StorageError,
    TransactionEventsError, TransactionFinalizedSuccessError,
};
use subxt::rpcs::RpcClient;
use subxt::utils::{AccountId32, H256, MultiSignature};

use crate::rules::{self, WeightsContext};
use crate::scale::commit_hash;
use crate::timelock::{Beacon, EpochState, MAX_COMMIT_BYTES, TimelockedCommit};
use crate::{
    BlockRef, Chain, ChainError, EpochSchedule, Hyperparameters, Included, NeuronInfo, Reveal,
    ValidatorWeights,
};
use runtime::api;
use runtime::api::runtime_types::bounded_collections::bounded_vec::BoundedVec;

/// The pallet and call indexes of the calls Platform sends, in the checked-in runtime's
/// metadata (asserted against it by `tests/metadata.rs`).
pub mod call_index {
    /// `SubtensorModule`.
    pub const SUBTENSOR_PALLET: u8 = 7;
    /// `set_weights`.
    pub const SET_WEIGHTS: u8 = 0;
    /// `commit_weights` (CRv2).
    pub const COMMIT_WEIGHTS: u8 = 96;
    /// `reveal_weights` (CRv2).
    pub const REVEAL_WEIGHTS: u8 = 97;
    /// `commit_timelocked_weights`.
    pub const COMMIT_TIMELOCKED_WEIGHTS: u8 = 113;
}

/// Reads one storage value at a block (the chain's default when unset), mapping errors.
macro_rules! fetch {
    ($chain:expr, $at:expr, $entry:expr, $key:expr) => {
        $at.storage()
            .fetch($entry, $key)
            .await
            .map_err(|e| $chain.error(e))?
            .decode()
            .map_err(|e| $chain.error(e))?
    };
}

/// Subtensor's chain configuration: `AccountId32`, `MultiAddress<AccountId32, ()>`,
/// `MultiSignature`, BLAKE2-256 headers — the same shapes as Polkadot's.
pub type SubtensorConfig = PolkadotConfig;

type AtBlock = ClientAtBlock<SubtensorConfig, OnlineClientAtBlockImpl<SubtensorConfig>>;

/// Most pending CRv2 commits per hotkey that subtensor keeps.
pub const MAX_COMMITS: usize = 10;
/// Time limit of one read (including subxt's own request retries).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit for a transaction to be finalized (subtensor: 12 s blocks, GRANDPA finality).
const FINALITY_TIMEOUT: Duration = Duration::from_secs(180);
/// Attempts of a read whose endpoint failed, with doubling backoff from 500 ms.
const READ_ATTEMPTS: u32 = 3;

/// A connection to a subtensor node.
#[derive(Clone)]
pub struct SubtensorChain {
    client: OnlineClient<SubtensorConfig>,
    url: Arc<str>,
    /// The shapes each spec version seen changed (a spec's metadata never changes, so each is
    /// compared once).
    changed: Arc<std::sync::Mutex<std::collections::BTreeMap<u32, Arc<Vec<Shape>>>>>,
}

impl SubtensorChain {
    /// Connects to `ws://…` or `wss://…` and reads the node's runtime metadata.
    pub async fn connect(url: &str) -> Result<SubtensorChain, ChainError> {
        let unreachable = |reason: String| ChainError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let rpc = if url.starts_with("wss://") {
            RpcClient::from_url(url).await
        } else if url.starts_with("ws://") {
            RpcClient::from_insecure_url(url).await
        } else {
            return Err(ChainError::Malformed {
                reason: format!("{url}: a subtensor endpoint is ws://… or wss://…"),
            });
        };
        let rpc = rpc.map_err(|e| unreachable(e.to_string()))?;
        SubtensorChain::with_rpc_client(rpc, url).await
    }

    /// A client over any JSON-RPC transport (`label` names it in errors).
    pub async fn with_rpc_client(
        rpc: RpcClient,
        label: &str,
    ) -> Result<SubtensorChain, ChainError> {
        let backend = LegacyBackend::<SubtensorConfig>::builder().build(rpc);
        let config = PolkadotConfig::builder().use_historic_types(false).build();
        let connect = OnlineClient::from_backend_with_config(config, Arc::new(backend));
        let client = tokio::time::timeout(READ_TIMEOUT, connect)
            .await
            .map_err(|_| ChainError::Unreachable {
                url: label.to_string(),
                reason: format!("no answer within {} s", READ_TIMEOUT.as_secs()),
            })?
            .map_err(|e| ChainError::Unreachable {
                url: label.to_string(),
                reason: e.to_string(),
            })?;
        let chain = SubtensorChain {
            client,
            url: label.into(),
            changed: Default::default(),
        };
        // Fail now if what every read needs changed shape; calls are checked when made (a
        // subnet needs only one of the weight calls).
        let at = chain.at(None).await?;
        chain.require(&at, Shape::READS)?;
        let changed = chain.changed_names(&at);
        if !changed.is_empty() {
            tracing::warn!(
                spec = at.spec_version(),
                changed = changed.join(", "),
                "the chain's runtime changed calls Platform may make; they are refused if used"
            );
        }
        Ok(chain)
    }

    /// The runtime at the finalized head: its spec version and which of the shapes Platform
    /// uses it changed.
    pub async fn runtime(&self) -> Result<RuntimeShapes, ChainError> {
        self.read("runtime", || async {
            let at = self.at(None).await?;
            Ok(RuntimeShapes {
                spec_version: at.spec_version(),
                changed: self.changed_names(&at),
            })
        })
        .await
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Maps any subxt error to the [`ChainError`] that names it.
    fn error(&self, e: impl Into<subxt::Error>) -> ChainError {
        let e: subxt::Error = e.into();
        if let Some(dispatch) = dispatch_error(&e) {
            return module_error(dispatch);
        }
        // An RPC failure somewhere in the chain of causes: the node's own refusal (a JSON-RPC
        // error answer, e.g. an invalid transaction) or a transport failure.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(rpc) = s.downcast_ref::<subxt::rpcs::Error>() {
                return match rpc {
                    subxt::rpcs::Error::User(u) => ChainError::Rejected {
                        reason: format!(
                            "the node refused the request: {} ({}){}",
                            u.message,
                            u.code,
                            u.data
                                .as_ref()
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ),
                    },
                    other => ChainError::Unreachable {
                        url: self.url.to_string(),
                        reason: other.to_string(),
                    },
                };
            }
            source = s.source();
        }
        let mismatch = matches!(
            &e,
            subxt::Error::StorageError(StorageError::IncompatibleCodegen)
                | subxt::Error::RuntimeApiError(RuntimeApiError::IncompatibleCodegen)
                | subxt::Error::ExtrinsicError(ExtrinsicError::IncompatibleCodegen)
        );
        if mismatch {
            return ChainError::RuntimeMismatch {
                runtime: "the live runtime".into(),
                items: e.to_string(),
            };
        }
        ChainError::Rejected {
            reason: e.to_string(),
        }
    }

    /// Runs a read with a time limit, retrying it when the endpoint failed.
    async fn read<T, F, Fut>(&self, what: &str, f: F) -> Result<T, ChainError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(READ_TIMEOUT, f()).await {
                Ok(r) => r,
                Err(_) => Err(ChainError::Unreachable {
                    url: self.url.to_string(),
                    reason: format!("{what}: no answer within {} s", READ_TIMEOUT.as_secs()),
                }),
            };
            match result {
                Err(ChainError::Unreachable { .. }) if attempt < READ_ATTEMPTS => {
                    tracing::warn!(what, attempt, "subtensor read failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The client at `block` (the finalized head when `None`).
    async fn at(&self, block: Option<u64>) -> Result<AtBlock, ChainError> {
        match block {
            None => self
                .client
                .at_current_block()
                .await
                .map_err(|e| self.error(e)),
            // One lookup; the head is read only to say how far the chain is.
            Some(n) => match self.client.at_block(n).await {
                Err(OnlineClientAtBlockError::BlockNotFound { .. }) => {
                    let head = self
                        .client
                        .at_current_block()
                        .await
                        .map_err(|e| self.error(e))?;
                    Err(ChainError::UnknownBlock {
                        number: n,
                        head: head.block_number(),
                    })
                }
                other => other.map_err(|e| self.error(e)),
            },
        }
    }

    /// Checks the read shapes at `at`, then that subnet `netuid` exists; every subnet read
    /// starts here.
    async fn subnet_exists(&self, at: &AtBlock, netuid: u16) -> Result<(), ChainError> {
        self.require(at, Shape::READS)?;
        let storage = api::storage().subtensor_module();
        let added: bool = fetch!(self, at, storage.networks_added(), (netuid,));
        if !added {
            return Err(ChainError::UnknownNetuid { netuid });
        }
        Ok(())
    }

    async fn hyperparameters_at(
        &self,
        at: &AtBlock,
        netuid: u16,
    ) -> Result<Hyperparameters, ChainError> {
        // The caller has checked that the subnet exists.
        let s = api::storage().subtensor_module();
        // One storage read per hyperparameter; each falls back to the chain's default.
        macro_rules! read {
            ($entry:expr, $key:expr) => {
                fetch!(self, at, $entry, $key)
            };
        }
        Ok(Hyperparameters {
            tempo: read!(s.tempo(), (netuid,)),
            min_allowed_weights: read!(s.min_allowed_weights(), (netuid,)),
            max_weights_limit: read!(s.max_weights_limit(), (netuid,)),
            weights_version_key: read!(s.weights_version_key(), (netuid,)),
            weights_set_rate_limit: read!(s.weights_set_rate_limit(), (netuid,)),
            commit_reveal_weights_enabled: read!(s.commit_reveal_weights_enabled(), (netuid,)),
            commit_reveal_version: read!(s.commit_reveal_weights_version(), ()),
            reveal_period_epochs: read!(s.reveal_period_epochs(), (netuid,)),
        })
    }

    /// The subnet's neurons (the caller has checked that the subnet exists).
    async fn metagraph_at(&self, at: &AtBlock, netuid: u16) -> Result<Vec<NeuronInfo>, ChainError> {
        let call = api::runtime_apis()
            .neuron_info_runtime_api()
            .get_neurons_lite(netuid);
        let neurons = at
            .runtime_apis()
            .call(call)
            .await
            .map_err(|e| self.error(e))?;
        let mut out: Vec<NeuronInfo> = neurons
            .into_iter()
            .map(|n| NeuronInfo {
                uid: n.uid,
                hotkey: Hotkey(n.hotkey.0),
                coldkey: Hotkey(n.coldkey.0),
                // Total stake on the hotkey: the sum over its stakers.
                stake: n
                    .stake
                    .iter()
                    .fold(0u64, |sum, (_, s)| sum.saturating_add(s.0)),
                validator_permit: n.validator_permit,
                active: n.active,
                last_update: n.last_update,
            })
            .collect();
        out.sort_by_key(|n| n.uid);
        Ok(out)
    }

    /// Everything the weight rules look at, read at the finalized head.
    async fn weights_context(
        &self,
        netuid: u16,
    ) -> Result<(AtBlock, Hyperparameters, Vec<NeuronInfo>), ChainError> {
        let at = self.at(None).await?;
        self.subnet_exists(&at, netuid).await?;
        let hyper = self.hyperparameters_at(&at, netuid).await?;
        let neurons = self.metagraph_at(&at, netuid).await?;
        Ok((at, hyper, neurons))
    }

    /// Signs `call`, submits it and waits until it is finalized; the chain's refusal becomes
    /// the [`ChainError`] that names it.
    async fn submit<Call: subxt::tx::Payload>(
        &self,
        at: &AtBlock,
        signer: &Keypair,
        call: &Call,
    ) -> Result<Included, ChainError> {
        let signer = HotkeySigner(signer);
        let progress = at
            .transactions()
            .sign_and_submit_then_watch_default(call, &signer)
            .await
            .map_err(|e| self.error(e))?;
        let finalized = tokio::time::timeout(FINALITY_TIMEOUT, progress.wait_for_finalized())
            .await
            .map_err(|_| ChainError::Unreachable {
                url: self.url.to_string(),
                reason: format!(
                    "the transaction was not finalized within {} s",
                    FINALITY_TIMEOUT.as_secs()
                ),
            })?
            .map_err(|e| self.error(e))?;
        finalized
            .wait_for_success()
            .await
            .map_err(|e| self.error(e))?;
        let block = self
            .client
            .at_block(finalized.block_hash())
            .await
            .map_err(|e| self.error(e))?
            .block_number();
        Ok(Included { block })
    }
}

/// A dispatch error inside any of subxt's transaction errors.
fn dispatch_error(e: &subxt::Error) -> Option<&DispatchError> {
    match e {
        subxt::Error::TransactionEventsError(TransactionEventsError::ExtrinsicFailed(d)) => Some(d),
        subxt::Error::TransactionFinalizedSuccessError(
            TransactionFinalizedSuccessError::SuccessError(
                TransactionEventsError::ExtrinsicFailed(d),
            ),
        ) => Some(d),
        _ => None,
    }
}

/// The chain's refusal, by the name of subtensor's error.
fn module_error(e: &DispatchError) -> ChainError {
    let DispatchError::Module(m) = e else {
        return ChainError::Rejected {
            reason: e.to_string(),
        };
    };
    let name = match m.details() {
        Ok(d) => format!("{}::{}", d.pallet.name(), d.variant.name),
        Err(_) => m.details_string(),
    };
    let reason = match name.as_str() {
        "SubtensorModule::SettingWeightsTooFast" => "weights set too fast (WeightsSetRateLimit)",
        "SubtensorModule::NeuronNoValidatorPermit" => "the hotkey has no validator permit",
        "SubtensorModule::HotKeyNotRegisteredInSubNet" => "the hotkey is not registered",
        "SubtensorModule::WeightVecNotEqualSize" => "uids and weights differ in length",
        "SubtensorModule::DuplicateUids" => "a uid appears twice",
        "SubtensorModule::UidVecContainInvalidOne" => "a uid is not in the subnet",
        "SubtensorModule::WeightVecLengthIsLow" => "fewer weights than MinAllowedWeights",
        "SubtensorModule::MaxWeightExceeded" => "a weight exceeds MaxWeightsLimit",
        "SubtensorModule::IncorrectWeightVersionKey" => {
            "the version key is below WeightsVersionKey"
        }
        "SubtensorModule::CommitRevealEnabled" => "commit-reveal is on: commit, then reveal",
        "SubtensorModule::CommitRevealDisabled" => "commit-reveal is off: set weights directly",
        "SubtensorModule::NoWeightsCommitFound"
        | "SubtensorModule::InvalidRevealCommitHashNotMatch" => "no commit matches the reveal",
        "SubtensorModule::RevealTooEarly" => "the reveal window has not opened",
        "SubtensorModule::ExpiredWeightCommit" => "the commit expired",
        "SubtensorModule::TooManyUnrevealedCommits" => "too many unrevealed commits",
        "SubtensorModule::IncorrectCommitRevealVersion" => {
            "the commit names another commit-reveal version than the chain's"
        }
        "SubtensorModule::CommittingWeightsTooFast" => "weights committed too fast",
        _ => "",
    };
    ChainError::Rejected {
        reason: if reason.is_empty() {
            format!("the chain refused the transaction: {name}")
        } else {
            format!("the chain refused the transaction: {name} ({reason})")
        },
    }
}

/// Signs extrinsics with a Platform hotkey: sr25519 in the Substrate signing context.
struct HotkeySigner<'a>(&'a Keypair);

impl subxt::tx::Signer<SubtensorConfig> for HotkeySigner<'_> {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.0.hotkey().0)
    }

    fn sign(&self, signer_payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign_substrate(signer_payload).0)
    }
}

impl Chain for SubtensorChain {
    async fn head(&self) -> Result<BlockRef, ChainError> {
        self.read("head", || async {
            let at = self.at(None).await?;
            Ok(BlockRef {
                number: at.block_number(),
                hash: at.block_hash().0,
            })
        })
        .await
    }

    async fn block(&self, number: u64) -> Result<BlockRef, ChainError> {
        self.read("block", || async {
            let at = self.at(Some(number)).await?;
            Ok(BlockRef {
                number,
                hash: at.block_hash().0,
            })
        })
        .await
    }

    async fn hyperparameters(&self, netuid: u16) -> Result<Hyperparameters, ChainError> {
        self.read("hyperparameters", || async {
            let at = self.at(None).await?;
            self.subnet_exists(&at, netuid).await?;
            self.hyperparameters_at(&at, netuid).await
        })
        .await
    }

    async fn metagraph(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<NeuronInfo>, ChainError> {
        self.read("metagraph", || async {
            let at = self.at(block).await?;
            self.subnet_exists(&at, netuid).await?;
            self.metagraph_at(&at, netuid).await
        })
        .await
    }

    async fn epoch_schedule(&self, netuid: u16) -> Result<EpochSchedule, ChainError> {
        self.read("epoch schedule", || async {
            let at = self.at(None).await?;
            self.subnet_exists(&at, netuid).await?;
            let tempo: u16 = fetch!(
                self,
                at,
                api::storage().subtensor_module().tempo(),
                (netuid,)
            );
            let current = at.block_number();
            Ok(EpochSchedule {
                tempo,
                current_block: current,
                next_epoch_block: rules::next_epoch_start(current, netuid, tempo),
            })
        })
        .await
    }

    async fn set_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Included, ChainError> {
        let (at, hyper, neurons) = self.weights_context(netuid).await?;
        rules::check_direct(netuid, &hyper)?;
        check_weights_now(
            &at,
            netuid,
            &hyper,
            &neurons,
            signer,
            uids,
            weights,
            version_key,
        )?;
        self.require(&at, &[Shape::SetWeights])?;
        let call = api::transactions().subtensor_module().set_weights(
            netuid,
            uids.to_vec(),
            weights.to_vec(),
            version_key,
        );
        self.submit(&at, signer, &call).await
    }

    async fn commit_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<Included, ChainError> {
        let (at, hyper, neurons) = self.weights_context(netuid).await?;
        rules::check_crv2(netuid, &hyper)?;
        let hotkey = signer.hotkey();
        rules::registered(netuid, &neurons, &hotkey)?;
        let pending = self.commits(&at, netuid, &hotkey).await?;
        if pending.len() >= MAX_COMMITS {
            return Err(ChainError::TooManyCommits {
                hotkey: hotkey.to_ss58(),
                max: MAX_COMMITS,
            });
        }
        self.require(&at, &[Shape::CommitWeights])?;
        let call = api::transactions()
            .subtensor_module()
            .commit_weights(netuid, H256(hash));
        self.submit(&at, signer, &call).await
    }

    async fn reveal_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        reveal: &Reveal,
    ) -> Result<Included, ChainError> {
        let (at, hyper, neurons) = self.weights_context(netuid).await?;
        rules::check_crv2(netuid, &hyper)?;
        let hotkey = signer.hotkey();
        let hash = commit_hash(
            &hotkey.0,
            netuid,
            &reveal.uids,
            &reveal.values,
            &reveal.salt,
            reveal.version_key,
        );
        let commits = self.commits(&at, netuid, &hotkey).await?;
        let Some(&(_, _, first, last)) = commits.iter().find(|c| c.0 == hash) else {
            return Err(ChainError::NoMatchingCommit {
                hotkey: hotkey.to_ss58(),
                hash: hex::encode(hash),
            });
        };
        // The reveal lands in the next block at the earliest.
        let now = at.block_number();
        if now + 1 < first || now + 1 > last {
            return Err(ChainError::RevealWindow {
                from: first,
                to: last,
                now,
            });
        }
        check_weights_now(
            &at,
            netuid,
            &hyper,
            &neurons,
            signer,
            &reveal.uids,
            &reveal.values,
            reveal.version_key,
        )?;
        self.require(&at, &[Shape::RevealWeights])?;
        let call = api::transactions().subtensor_module().reveal_weights(
            netuid,
            reveal.uids.clone(),
            reveal.values.clone(),
            reveal.salt.clone(),
            reveal.version_key,
        );
        self.submit(&at, signer, &call).await
    }

    async fn weights(&self, netuid: u16) -> Result<Vec<ValidatorWeights>, ChainError> {
        self.read("weights", || async {
            let at = self.at(None).await?;
            self.subnet_exists(&at, netuid).await?;
            let neurons = self.metagraph_at(&at, netuid).await?;
            self.require(&at, &[Shape::Weights])?;
            let entry = api::storage().subtensor_module().weights();
            let mut out = Vec::new();
            for n in neurons.iter().filter(|n| n.validator_permit) {
                let row: Vec<(u16, u16)> = fetch!(self, at, entry.clone(), (netuid, n.uid));
                if row.is_empty() {
                    continue;
                }
                out.push(ValidatorWeights {
                    uid: n.uid,
                    hotkey: n.hotkey,
                    uids: row.iter().map(|r| r.0).collect(),
                    weights: row.iter().map(|r| r.1).collect(),
                });
            }
            Ok(out)
        })
        .await
    }

    /// Drand quicknet (which subtensor ingests through `pallet_drand`), aimed with this
    /// machine's clock, as the reference client does.
    async fn beacon(&self) -> Result<Beacon, ChainError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| ChainError::Unsupported("the system clock is before 1970".into()))?;
        Ok(Beacon::quicknet(now.as_millis() as u64))
    }

    /// Read dynamically: the checked-in spec-393 metadata predates these storage items, so a
    /// runtime without `SubtensorModule.SubnetEpochIndex` has modulo epochs (`None`).
    async fn epoch_state(&self, netuid: u16) -> Result<Option<EpochState>, ChainError> {
        self.read("epoch state", || async {
            let at = self.at(None).await?;
            self.subnet_exists(&at, netuid).await?;
            if at.storage().entry(epoch_item("SubnetEpochIndex")).is_err() {
                return Ok(None);
            }
            let tempo = self.hyperparameters_at(&at, netuid).await?.tempo;
            Ok(Some(EpochState {
                last_epoch_block: self.epoch_value(&at, "LastEpochBlock", netuid).await?,
                pending_epoch_at: self.epoch_value(&at, "PendingEpochAt", netuid).await?,
                subnet_epoch_index: self.epoch_value(&at, "SubnetEpochIndex", netuid).await?,
                tempo,
                blocks_since_last_step: self
                    .epoch_value(&at, "BlocksSinceLastStep", netuid)
                    .await?,
                current_block: at.block_number(),
            }))
        })
        .await
    }

    async fn commit_timelocked_weights(
        &self,
        signer: &Keypair,
        netuid: u16,
        commit: &TimelockedCommit,
        version: u16,
    ) -> Result<Included, ChainError> {
        let (at, hyper, neurons) = self.weights_context(netuid).await?;
        rules::check_timelocked(netuid, &hyper, version)?;
        rules::registered(netuid, &neurons, &signer.hotkey())?;
        if commit.commit.len() > MAX_COMMIT_BYTES {
            return Err(ChainError::Malformed {
                reason: format!(
                    "a timelocked commit of {} bytes exceeds subtensor's {MAX_COMMIT_BYTES}",
                    commit.commit.len()
                ),
            });
        }
        self.require(&at, &[Shape::CommitTimelockedWeights])?;
        let call = api::transactions()
            .subtensor_module()
            .commit_timelocked_weights(
                netuid,
                BoundedVec(commit.commit.clone()),
                commit.reveal_round,
                version,
            );
        self.submit(&at, signer, &call).await
    }
}

impl SubtensorChain {
    /// `SubnetOwnerHotkey(netuid)`.
    pub async fn subnet_owner(&self, netuid: u16) -> Result<Hotkey, ChainError> {
        self.read("subnet owner", || async {
            let at = self.at(None).await?;
            self.subnet_exists(&at, netuid).await?;
            let owner: AccountId32 = fetch!(
                self,
                at,
                api::storage().subtensor_module().subnet_owner_hotkey(),
                (netuid,)
            );
            Ok(Hotkey(owner.0))
        })
        .await
    }

    /// `Commitments.set_commitment(netuid, info)`: `data` in raw fields of at most 128 bytes
    /// (subtensor keeps up to three). The hotkey must be registered on the subnet.
    pub async fn set_commitment(
        &self,
        signer: &Keypair,
        netuid: u16,
        data: Vec<u8>,
    ) -> Result<Included, ChainError> {
        rules::check_commitment(&data)?;
        let (at, _, neurons) = self.weights_context(netuid).await?;
        rules::registered(netuid, &neurons, &signer.hotkey())?;
        self.require(&at, &[Shape::SetCommitment])?;
        use subxt::dynamic::Value;
        let fields: Vec<Value> = data
            .chunks(RAW_FIELD_BYTES)
            .map(|c| Value::unnamed_variant(format!("Raw{}", c.len()), [Value::from_bytes(c)]))
            .collect();
        let info = Value::named_composite([("fields", Value::unnamed_composite(fields))]);
        let call = subxt::dynamic::tx(
            "Commitments",
            "set_commitment",
            (Value::u128(u128::from(netuid)), info),
        );
        self.submit(&at, signer, &call).await
    }

    /// `Commitments.CommitmentOf(netuid, hotkey)` of every neuron with a validator permit at
    /// `block` (the head when `None`), hotkeys ascending: the raw fields joined. A commitment
    /// holding anything but raw fields (a hash, a timelocked field) is not one of Platform's
    /// and is left out.
    pub async fn commitments(
        &self,
        netuid: u16,
        block: Option<u64>,
    ) -> Result<Vec<crate::Commitment>, ChainError> {
        self.read("commitments", || async {
            let at = self.at(block).await?;
            self.subnet_exists(&at, netuid).await?;
            self.require(&at, &[Shape::CommitmentOf])?;
            let mut validators: Vec<NeuronInfo> = self
                .metagraph_at(&at, netuid)
                .await?
                .into_iter()
                .filter(|n| n.validator_permit)
                .collect();
            validators.sort_by_key(|n| n.hotkey);
            let entry = api::storage().commitments().commitment_of();
            let mut out = Vec::new();
            for n in validators {
                let found = at
                    .storage()
                    .try_fetch(entry.clone(), (netuid, AccountId32(n.hotkey.0)))
                    .await
                    .map_err(|e| self.error(e))?;
                if let Some((block, data)) = found.and_then(|v| registration(v.bytes())) {
                    out.push(crate::Commitment {
                        hotkey: n.hotkey,
                        block,
                        data,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Bytes in one raw field of a commitment (`Data::Raw128`).
const RAW_FIELD_BYTES: usize = 128;

/// A `Registration { deposit: u64, block: u32, info: CommitmentInfo { fields: Vec<Data> } }`
/// in SCALE: the block and the raw fields joined; `None` unless every field is raw (`Data` 1
/// to 129: `Raw0` … `Raw128`) or `None` (0), or with bytes left over.
fn registration(bytes: &[u8]) -> Option<(u64, Vec<u8>)> {
    use subxt::ext::codec::{Compact, Decode};
    let mut r = bytes;
    let _deposit = u64::decode(&mut r).ok()?;
    let block = u32::decode(&mut r).ok()?;
    let Compact(n) = Compact::<u32>::decode(&mut r).ok()?;
    let mut data = Vec::new();
    for _ in 0..n {
        let (&tag, rest) = r.split_first()?;
        r = rest;
        match tag {
            0 => {}
            1..=129 => {
                let len = usize::from(tag - 1);
                if r.len() < len {
                    return None;
                }
                data.extend_from_slice(&r[..len]);
                r = &r[len..];
            }
            _ => return None,
        }
    }
    r.is_empty().then_some((u64::from(block), data))
}

/// A `u64` storage map of `SubtensorModule` keyed by netuid, addressed dynamically.
fn epoch_item(name: &'static str) -> subxt::storage::DynamicAddress<[u16; 1], u64> {
    subxt::dynamic::storage::<[u16; 1], u64>("SubtensorModule", name)
}

impl SubtensorChain {
    /// One of the stateful epoch items (`LastEpochBlock`, …) for `netuid` at `at`.
    async fn epoch_value(
        &self,
        at: &AtBlock,
        name: &'static str,
        netuid: u16,
    ) -> Result<u64, ChainError> {
        at.storage()
            .fetch(epoch_item(name), [netuid])
            .await
            .map_err(|e| self.error(e))?
            .decode()
            .map_err(|e| self.error(e))
    }

    /// `WeightCommits(netuid, hotkey)`: `(hash, commit block, first reveal, last reveal)`.
    async fn commits(
        &self,
        at: &AtBlock,
        netuid: u16,
        hotkey: &Hotkey,
    ) -> Result<Vec<([u8; 32], u64, u64, u64)>, ChainError> {
        self.require(at, &[Shape::WeightCommits])?;
        let entry = api::storage().subtensor_module().weight_commits();
        let found = at
            .storage()
            .try_fetch(entry, (netuid, AccountId32(hotkey.0)))
            .await
            .map_err(|e| self.error(e))?;
        let Some(value) = found else {
            return Ok(Vec::new());
        };
        let list = value.decode().map_err(|e| self.error(e))?;
        Ok(list
            .into_iter()
            .map(|(h, commit, first, last)| (h.0, commit, first, last))
            .collect())
    }
}

/// The `set_weights` rules against the state at `at`, for inclusion in the next block.
#[allow(clippy::too_many_arguments)]
fn check_weights_now(
    at: &AtBlock,
    netuid: u16,
    hyper: &Hyperparameters,
    neurons: &[NeuronInfo],
    signer: &Keypair,
    uids: &[u16],
    weights: &[u16],
    version_key: u64,
) -> Result<(), ChainError> {
    let hotkey = signer.hotkey();
    let me = rules::registered(netuid, neurons, &hotkey)?;
    // subtensor: a LastUpdate of 0 means "never set", which the rate limit lets through.
    let last_set = (me.last_update != 0).then_some(me.last_update);
    let cx = WeightsContext {
        netuid,
        hyper,
        neurons,
        block: at.block_number() + 1,
    };
    rules::check_weights(&cx, &hotkey, last_set, uids, weights, version_key).map(|_| ())
}

/// The runtime at a block, as [`SubtensorChain::runtime`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeShapes {
    /// Its spec version.
    pub spec_version: u32,
    /// The shapes Platform uses that differ from the built ones, by name.
    pub changed: Vec<&'static str>,
}

/// A call, storage item or runtime API Platform uses. Each is checked against the runtime of
/// the block it is used at; an upgrade that keeps these shapes needs nothing from Platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `SubtensorModule.set_weights`.
    SetWeights,
    /// `SubtensorModule.commit_weights`.
    CommitWeights,
    /// `SubtensorModule.reveal_weights`.
    RevealWeights,
    /// `SubtensorModule.commit_timelocked_weights`.
    CommitTimelockedWeights,
    /// `SubtensorModule.NetworksAdded`.
    NetworksAdded,
    /// `SubtensorModule.Tempo`.
    Tempo,
    /// `SubtensorModule.MinAllowedWeights`.
    MinAllowedWeights,
    /// `SubtensorModule.MaxWeightsLimit`.
    MaxWeightsLimit,
    /// `SubtensorModule.WeightsVersionKey`.
    WeightsVersionKey,
    /// `SubtensorModule.WeightsSetRateLimit`.
    WeightsSetRateLimit,
    /// `SubtensorModule.CommitRevealWeightsEnabled`.
    CommitRevealWeightsEnabled,
    /// `SubtensorModule.CommitRevealWeightsVersion`.
    CommitRevealWeightsVersion,
    /// `SubtensorModule.RevealPeriodEpochs`.
    RevealPeriodEpochs,
    /// `SubtensorModule.Weights`.
    Weights,
    /// `SubtensorModule.WeightCommits`.
    WeightCommits,
    /// `NeuronInfoRuntimeApi.get_neurons_lite`.
    NeuronsLite,
    /// `Commitments.set_commitment` (peer records).
    SetCommitment,
    /// `Commitments.CommitmentOf` (peer records).
    CommitmentOf,
}

impl Shape {
    /// Every shape Platform uses.
    pub const ALL: [Shape; 18] = [
        Shape::SetWeights,
        Shape::CommitWeights,
        Shape::RevealWeights,
        Shape::CommitTimelockedWeights,
        Shape::NetworksAdded,
        Shape::Tempo,
        Shape::MinAllowedWeights,
        Shape::MaxWeightsLimit,
        Shape::WeightsVersionKey,
        Shape::WeightsSetRateLimit,
        Shape::CommitRevealWeightsEnabled,
        Shape::CommitRevealWeightsVersion,
        Shape::RevealPeriodEpochs,
        Shape::Weights,
        Shape::WeightCommits,
        Shape::NeuronsLite,
        Shape::SetCommitment,
        Shape::CommitmentOf,
    ];

    /// What every read of a subnet needs: its existence, hyperparameters and neurons.
    pub const READS: &[Shape] = &[
        Shape::NetworksAdded,
        Shape::Tempo,
        Shape::MinAllowedWeights,
        Shape::MaxWeightsLimit,
        Shape::WeightsVersionKey,
        Shape::WeightsSetRateLimit,
        Shape::CommitRevealWeightsEnabled,
        Shape::CommitRevealWeightsVersion,
        Shape::RevealPeriodEpochs,
        Shape::NeuronsLite,
    ];

    /// Its name in the runtime: `Pallet.call`, `Pallet.StorageItem` or `RuntimeApi.method`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::SetWeights => "SubtensorModule.set_weights",
            Shape::CommitWeights => "SubtensorModule.commit_weights",
            Shape::RevealWeights => "SubtensorModule.reveal_weights",
            Shape::CommitTimelockedWeights => "SubtensorModule.commit_timelocked_weights",
            Shape::NetworksAdded => "SubtensorModule.NetworksAdded",
            Shape::Tempo => "SubtensorModule.Tempo",
            Shape::MinAllowedWeights => "SubtensorModule.MinAllowedWeights",
            Shape::MaxWeightsLimit => "SubtensorModule.MaxWeightsLimit",
            Shape::WeightsVersionKey => "SubtensorModule.WeightsVersionKey",
            Shape::WeightsSetRateLimit => "SubtensorModule.WeightsSetRateLimit",
            Shape::CommitRevealWeightsEnabled => "SubtensorModule.CommitRevealWeightsEnabled",
            Shape::CommitRevealWeightsVersion => "SubtensorModule.CommitRevealWeightsVersion",
            Shape::RevealPeriodEpochs => "SubtensorModule.RevealPeriodEpochs",
            Shape::Weights => "SubtensorModule.Weights",
            Shape::WeightCommits => "SubtensorModule.WeightCommits",
            Shape::NeuronsLite => "NeuronInfoRuntimeApi.get_neurons_lite",
            Shape::SetCommitment => "Commitments.set_commitment",
            Shape::CommitmentOf => "Commitments.CommitmentOf",
        }
    }

    /// Whether the runtime at `at` has this item with the shape Platform was built for (a
    /// missing item does not).
    fn matches(self, at: &AtBlock) -> bool {
        let tx = api::transactions().subtensor_module();
        let s = api::storage().subtensor_module();
        let txs = at.transactions();
        let storage = at.storage();
        match self {
            Shape::SetWeights => txs.validate(&tx.set_weights(0, vec![], vec![], 0)).is_ok(),
            Shape::CommitWeights => txs.validate(&tx.commit_weights(0, H256([0; 32]))).is_ok(),
            Shape::RevealWeights => txs
                .validate(&tx.reveal_weights(0, vec![], vec![], vec![], 0))
                .is_ok(),
            Shape::CommitTimelockedWeights => txs
                .validate(&tx.commit_timelocked_weights(0, BoundedVec(vec![]), 0, 0))
                .is_ok(),
            Shape::NetworksAdded => storage.validate(s.networks_added()).is_ok(),
            Shape::Tempo => storage.validate(s.tempo()).is_ok(),
            Shape::MinAllowedWeights => storage.validate(s.min_allowed_weights()).is_ok(),
            Shape::MaxWeightsLimit => storage.validate(s.max_weights_limit()).is_ok(),
            Shape::WeightsVersionKey => storage.validate(s.weights_version_key()).is_ok(),
            Shape::WeightsSetRateLimit => storage.validate(s.weights_set_rate_limit()).is_ok(),
            Shape::CommitRevealWeightsEnabled => {
                storage.validate(s.commit_reveal_weights_enabled()).is_ok()
            }
            Shape::CommitRevealWeightsVersion => {
                storage.validate(s.commit_reveal_weights_version()).is_ok()
            }
            Shape::RevealPeriodEpochs => storage.validate(s.reveal_period_epochs()).is_ok(),
            Shape::Weights => storage.validate(s.weights()).is_ok(),
            Shape::WeightCommits => storage.validate(s.weight_commits()).is_ok(),
            Shape::SetCommitment => txs
                .validate(&api::transactions().commitments().set_commitment(
                    0,
                    api::runtime_types::pallet_commitments::types::CommitmentInfo {
                        fields: BoundedVec(Vec::new()),
                    },
                ))
                .is_ok(),
            Shape::CommitmentOf => storage
                .validate(api::storage().commitments().commitment_of())
                .is_ok(),
            Shape::NeuronsLite => at
                .runtime_apis()
                .validate(
                    api::runtime_apis()
                        .neuron_info_runtime_api()
                        .get_neurons_lite(0),
                )
                .is_ok(),
        }
    }
}

impl SubtensorChain {
    /// The shapes the runtime at `at` changed, compared once per spec version.
    fn changed(&self, at: &AtBlock) -> Arc<Vec<Shape>> {
        let spec = at.spec_version();
        let mut seen = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(spec)
            .or_insert_with(|| {
                Arc::new(Shape::ALL.into_iter().filter(|s| !s.matches(at)).collect())
            })
            .clone()
    }

    /// The names of the shapes the runtime at `at` changed.
    fn changed_names(&self, at: &AtBlock) -> Vec<&'static str> {
        self.changed(at).iter().map(|s| s.name()).collect()
    }

    /// Refuses to go on when the runtime at `at` changed any of `shapes`, naming them.
    fn require(&self, at: &AtBlock, shapes: &[Shape]) -> Result<(), ChainError> {
        let changed = self.changed(at);
        let names: Vec<&str> = shapes
            .iter()
            .filter(|s| changed.contains(s))
            .map(|s| s.name())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        Err(ChainError::RuntimeMismatch {
            runtime: format!("spec {}", at.spec_version()),
            items: names.join(", "),
        })
    }
}
