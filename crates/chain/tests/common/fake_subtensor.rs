//! A fake subtensor node for the SubtensorChain tests. It answers the JSON-RPC methods a real
//! node serves (`chain_*`, `state_getStorage`, `state_call`, `author_submitAndWatchExtrinsic`)
//! with SCALE values hand-encoded from the mirror structs below. The mirrors are written from
//! the runtime metadata's type definitions (field order, compact markers, enum indexes) and do
//! not use subxt's generated types, so a test passing means the client and our reading of the
//! layout agree. The runtime behind it is LocalChain's simulation (`ChainState`), so both chains
//! run the same conformance suite with the same dev genesis.
//!
//! Storage is served from the current state whatever block is asked for, except `System.Events`,
//! which is per block; the tests read at the head.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use parity_scale_codec::{Compact, Decode, Encode};
use platform_chain::ChainError;
use platform_chain::Reveal;
use platform_chain::local::sim::{Call, ChainState};
use platform_crypto::Signature;
use platform_crypto::sr25519::verify_substrate;
use platform_primitives::Hotkey;
use serde_json::{Value, json};
use sp_crypto_hashing::{blake2_128, blake2_256, twox_64, twox_128};

/// The checked-in metadata the fake serves (the client validates its static calls against it).
pub const METADATA: &[u8] = include_bytes!("../../metadata/finney-spec393.scale");
/// The runtime version the fake reports.
pub const SPEC_VERSION: u32 = 393;
/// The transaction version the fake reports.
pub const TX_VERSION: u32 = 1;

// ---- Mirror structs (from the metadata's type registry) ----

/// `pallet_subtensor::rpc_info::neuron_info::NeuronInfoLite<AccountId32>`.
#[derive(Encode)]
struct NeuronInfoLite {
    hotkey: [u8; 32],
    coldkey: [u8; 32],
    #[codec(compact)]
    uid: u16,
    #[codec(compact)]
    netuid: u16,
    active: bool,
    axon_info: AxonInfo,
    prometheus_info: PrometheusInfo,
    stake: Vec<([u8; 32], Compact<u64>)>,
    #[codec(compact)]
    rank: u16,
    #[codec(compact)]
    emission: u64,
    #[codec(compact)]
    incentive: u16,
    #[codec(compact)]
    consensus: u16,
    #[codec(compact)]
    trust: u16,
    #[codec(compact)]
    validator_trust: u16,
    #[codec(compact)]
    dividends: u16,
    #[codec(compact)]
    last_update: u64,
    validator_permit: bool,
    #[codec(compact)]
    pruning_score: u16,
}

/// `pallet_subtensor::pallet::AxonInfo`.
#[derive(Encode, Default)]
struct AxonInfo {
    block: u64,
    version: u32,
    ip: u128,
    port: u16,
    ip_type: u8,
    protocol: u8,
    placeholder1: u8,
    placeholder2: u8,
}

/// `pallet_subtensor::pallet::PrometheusInfo`.
#[derive(Encode, Default)]
struct PrometheusInfo {
    block: u64,
    version: u32,
    ip: u128,
    port: u16,
    ip_type: u8,
}

/// `sp_version::RuntimeVersion`.
#[derive(Encode)]
struct RuntimeVersion {
    spec_name: String,
    impl_name: String,
    authoring_version: u32,
    spec_version: u32,
    impl_version: u32,
    apis: Vec<([u8; 8], u32)>,
    transaction_version: u32,
    system_version: u8,
}

/// `frame_system::EventRecord<RuntimeEvent, H256>`.
#[derive(Encode)]
struct EventRecord {
    phase: Phase,
    event: RuntimeEvent,
    topics: Vec<[u8; 32]>,
}

/// `frame_system::Phase`.
#[derive(Encode)]
enum Phase {
    #[codec(index = 0)]
    ApplyExtrinsic(u32),
}

/// `node_subtensor_runtime::RuntimeEvent` (only `System`, index 0).
#[derive(Encode)]
enum RuntimeEvent {
    #[codec(index = 0)]
    System(SystemEvent),
}

/// `frame_system::pallet::Event` (its first two variants).
#[derive(Encode)]
enum SystemEvent {
    #[codec(index = 0)]
    ExtrinsicSuccess { dispatch_info: DispatchEventInfo },
    #[codec(index = 1)]
    ExtrinsicFailed {
        dispatch_error: DispatchError,
        dispatch_info: DispatchEventInfo,
    },
}

/// `frame_system::DispatchEventInfo`.
#[derive(Encode)]
struct DispatchEventInfo {
    weight: Weight,
    /// `DispatchClass::Normal` = 0.
    class: u8,
    /// `Pays::Yes` = 0.
    pays_fee: u8,
}

/// `sp_weights::weight_v2::Weight`.
#[derive(Encode)]
struct Weight {
    #[codec(compact)]
    ref_time: u64,
    #[codec(compact)]
    proof_size: u64,
}

/// `sp_runtime::DispatchError` (only `Module`, index 3).
#[derive(Encode)]
enum DispatchError {
    #[codec(index = 3)]
    Module { index: u8, error: [u8; 4] },
}

/// The `SubtensorModule` (pallet 7) calls Platform sends, by call index.
#[derive(Clone, Debug, PartialEq, Eq, Decode)]
#[allow(clippy::enum_variant_names)] // subtensor's own call names
pub enum SubtensorCall {
    /// `set_weights(netuid, dests, weights, version_key)`.
    #[codec(index = 0)]
    SetWeights {
        netuid: u16,
        dests: Vec<u16>,
        weights: Vec<u16>,
        version_key: u64,
    },
    /// `commit_weights(netuid, commit_hash)`.
    #[codec(index = 96)]
    CommitWeights { netuid: u16, commit_hash: [u8; 32] },
    /// `reveal_weights(netuid, uids, values, salt, version_key)`.
    #[codec(index = 97)]
    RevealWeights {
        netuid: u16,
        uids: Vec<u16>,
        values: Vec<u16>,
        salt: Vec<u16>,
        version_key: u64,
    },
    /// `commit_timelocked_weights(netuid, commit, reveal_round, commit_reveal_version)`.
    #[codec(index = 113)]
    CommitTimelockedWeights {
        netuid: u16,
        commit: Vec<u8>,
        reveal_round: u64,
        commit_reveal_version: u16,
    },
    /// `Commitments.set_commitment(netuid, info)` (pallet 18, call 0), decoded by hand
    /// ([`decode_set_commitment`]): the raw fields joined. Never decoded through this derive,
    /// hence an index no subtensor call has.
    #[codec(index = 255)]
    SetCommitment { netuid: u16, data: Vec<u8> },
}

/// `set_commitment`'s arguments after the call index: `netuid: u16`, then
/// `CommitmentInfo { fields: Vec<Data> }` where `Data` 0 is `None` and 1 to 129 are
/// `Raw0` … `Raw128` (a fixed array of that length); the fake takes nothing else.
fn decode_set_commitment(r: &mut &[u8]) -> Result<SubtensorCall, RpcFailure> {
    let netuid = u16::decode(r).map_err(|_| invalid_tx("set_commitment netuid"))?;
    let Compact(n) = Compact::<u32>::decode(r).map_err(|_| invalid_tx("set_commitment fields"))?;
    if n > 3 {
        return Err(invalid_tx("TooManyFieldsInCommitmentInfo"));
    }
    let mut data = Vec::new();
    for _ in 0..n {
        let tag = u8::decode(r).map_err(|_| invalid_tx("set_commitment field"))?;
        match tag {
            0 => {}
            1..=129 => {
                let len = usize::from(tag - 1);
                if r.len() < len {
                    return Err(invalid_tx("set_commitment field length"));
                }
                data.extend_from_slice(&r[..len]);
                *r = &r[len..];
            }
            other => return Err(invalid_tx(&format!("Data variant {other} is not raw"))),
        }
    }
    Ok(SubtensorCall::SetCommitment { netuid, data })
}

/// `pallet_commitments::types::Registration` of `data` set at `block`, in raw fields of at
/// most 128 bytes.
fn registration(block: u64, data: &[u8]) -> Vec<u8> {
    let fields: Vec<&[u8]> = data.chunks(128).collect();
    let mut out = 0u64.encode();
    out.extend((block as u32).encode());
    out.extend(Compact(fields.len() as u32).encode());
    for f in fields {
        out.push(f.len() as u8 + 1);
        out.extend_from_slice(f);
    }
    out
}

/// An extrinsic the fake accepted: signer and decoded call (its signature verified).
#[derive(Clone, Debug)]
pub struct Received {
    /// The pallet index of the call.
    pub pallet: u8,
    /// The call index within the pallet.
    pub call_index: u8,
    /// The decoded call.
    pub call: SubtensorCall,
    /// The signing account.
    pub signer: [u8; 32],
    /// The block it went into.
    pub block: u64,
}

/// A JSON-RPC error answer.
#[derive(Debug)]
pub struct RpcFailure {
    /// JSON-RPC error code.
    pub code: i32,
    /// Message.
    pub message: String,
    /// Detail, as substrate nodes put in `data`.
    pub data: Option<String>,
}

#[derive(Default, Clone)]
struct FakeBlock {
    extrinsics: Vec<Vec<u8>>,
    events: Vec<u8>,
}

struct Inner {
    chain: ChainState,
    blocks: BTreeMap<u64, FakeBlock>,
    nonces: BTreeMap<[u8; 32], u32>,
    received: Vec<Received>,
    refuse_next: Option<u8>,
    /// Runtime upgrades: from which block each spec version (with its metadata) is live; the
    /// checked-in spec 393 before the first.
    upgrades: Vec<(u64, u32, Arc<Vec<u8>>)>,
}

/// The fake node.
pub struct FakeSubtensor {
    inner: Mutex<Inner>,
}

fn h(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn unhex(v: &Value) -> Result<Vec<u8>, RpcFailure> {
    let s = v.as_str().ok_or_else(|| invalid("expected a hex string"))?;
    hex::decode(s.trim_start_matches("0x")).map_err(|e| invalid(&e.to_string()))
}

fn invalid(what: &str) -> RpcFailure {
    RpcFailure {
        code: -32602,
        message: format!("Invalid params: {what}"),
        data: None,
    }
}

fn invalid_tx(detail: &str) -> RpcFailure {
    RpcFailure {
        code: 1010,
        message: "Invalid Transaction".into(),
        data: Some(detail.into()),
    }
}

fn prefix(pallet: &str, item: &str) -> Vec<u8> {
    let mut k = twox_128(pallet.as_bytes()).to_vec();
    k.extend(twox_128(item.as_bytes()));
    k
}

/// The subtensor error index the chain would report for a refusal.
fn error_index(e: &ChainError) -> u8 {
    match e {
        ChainError::NotRegistered { .. } => 4,
        ChainError::NoValidatorPermit { .. } => 15,
        ChainError::LengthMismatch { .. } => 16,
        ChainError::DuplicateUid { .. } => 17,
        ChainError::UnknownUid { .. } => 18,
        ChainError::TooFewWeights { .. } => 19,
        ChainError::MaxWeightExceeded { .. } => 26,
        ChainError::RateLimited { .. } => 28,
        ChainError::VersionKey { .. } => 29,
        ChainError::NoMatchingCommit { .. } => 50,
        ChainError::CommitRevealRequired { .. } => 52,
        ChainError::CommitRevealDisabled { .. } => 53,
        ChainError::TooManyCommits { .. } => 76,
        ChainError::RevealWindow { .. } => 78,
        other => panic!("the fake has no subtensor error for {other:?}"),
    }
}

/// The error index of `SettingWeightsTooFast`.
pub const SETTING_WEIGHTS_TOO_FAST: u8 = 28;

impl FakeSubtensor {
    /// A node over `chain` (LocalChain's dev genesis, typically).
    pub fn new(chain: ChainState) -> Arc<FakeSubtensor> {
        Arc::new(FakeSubtensor {
            inner: Mutex::new(Inner {
                chain,
                blocks: BTreeMap::new(),
                nonces: BTreeMap::new(),
                received: Vec::new(),
                refuse_next: None,
                upgrades: Vec::new(),
            }),
        })
    }

    /// Produces an empty block.
    pub fn produce_block(&self) {
        self.inner.lock().unwrap().chain.produce_block();
    }

    /// The extrinsics accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Upgrades the runtime: from the next block on, the node reports `spec_version`, serves
    /// `metadata` and checks signatures against that version.
    pub fn upgrade_runtime(&self, spec_version: u32, metadata: Vec<u8>) {
        let mut inner = self.inner.lock().unwrap();
        let from = inner.chain.block + 1;
        inner
            .upgrades
            .push((from, spec_version, Arc::new(metadata)));
    }

    /// Makes the next extrinsic fail in dispatch with subtensor error `index`.
    pub fn refuse_next(&self, index: u8) {
        self.inner.lock().unwrap().refuse_next = Some(index);
    }

    /// Answers one JSON-RPC method call.
    pub fn call(&self, method: &str, params: &Value) -> Result<Value, RpcFailure> {
        let inner = self.inner.lock().unwrap();
        let chain = &inner.chain;
        let head = chain.block;
        let param = |i: usize| params.get(i).cloned().unwrap_or(Value::Null);
        let number_of = |hash: &Value| -> Result<Option<u64>, RpcFailure> {
            if hash.is_null() {
                return Ok(Some(head));
            }
            let bytes = unhex(hash)?;
            Ok((0..=head).find(|&n| chain.block_hash(n).as_slice() == bytes))
        };
        let header = |n: u64| {
            json!({
                "parentHash": h(&if n == 0 { [0u8; 32] } else { chain.block_hash(n - 1) }),
                "number": format!("0x{n:x}"),
                "stateRoot": h(&[0u8; 32]),
                "extrinsicsRoot": h(&[0u8; 32]),
                "digest": { "logs": [] },
            })
        };
        match method {
            "rpc_methods" => Ok(json!({ "methods": [
                "chain_getBlockHash", "chain_getFinalizedHead", "chain_getHeader",
                "chain_getBlock", "state_getStorage", "state_call",
                "author_submitAndWatchExtrinsic", "author_unwatchExtrinsic",
            ]})),
            "chain_getBlockHash" => {
                let n = match param(0) {
                    Value::Null => head,
                    v => v.as_u64().ok_or_else(|| invalid("block number"))?,
                };
                Ok(if n <= head {
                    json!(h(&chain.block_hash(n)))
                } else {
                    Value::Null
                })
            }
            "chain_getFinalizedHead" => Ok(json!(h(&chain.block_hash(head)))),
            "chain_getHeader" => Ok(number_of(&param(0))?.map_or(Value::Null, header)),
            "chain_getBlock" => Ok(number_of(&param(0))?.map_or(Value::Null, |n| {
                let exts: Vec<String> = inner
                    .blocks
                    .get(&n)
                    .map(|b| b.extrinsics.iter().map(|x| h(x)).collect())
                    .unwrap_or_default();
                json!({ "block": { "header": header(n), "extrinsics": exts }, "justifications": null })
            })),
            "state_getStorage" => {
                let key = unhex(&param(0))?;
                let at = number_of(&param(1))?.ok_or_else(|| invalid("unknown block"))?;
                Ok(inner.storage(&key, at).map_or(Value::Null, |v| json!(h(&v))))
            }
            "state_call" => {
                let name = param(0).as_str().unwrap_or_default().to_string();
                let data = unhex(&param(1))?;
                let at = number_of(&param(2))?.ok_or_else(|| invalid("unknown block"))?;
                Ok(json!(h(&inner.runtime_call(&name, &data, at)?)))
            }
            other => Err(RpcFailure {
                code: -32601,
                message: format!("Method not found: {other}"),
                data: None,
            }),
        }
    }

    /// `author_submitAndWatchExtrinsic`: checks the extrinsic, puts it in a new block and
    /// returns the status updates a node sends (ready, in block, finalized).
    pub fn submit_and_watch(&self, params: &Value) -> Result<Vec<Value>, RpcFailure> {
        let bytes = unhex(&params.get(0).cloned().unwrap_or(Value::Null))?;
        let mut inner = self.inner.lock().unwrap();
        let block = inner.accept(&bytes)?;
        let hash = h(&inner.chain.block_hash(block));
        Ok(vec![
            json!("ready"),
            json!({ "inBlock": hash }),
            json!({ "finalized": hash }),
        ])
    }
}

impl Inner {
    /// The spec version and metadata live at block `at`.
    fn runtime_at(&self, at: u64) -> (u32, &[u8]) {
        self.upgrades
            .iter()
            .rev()
            .find(|(from, _, _)| *from <= at)
            .map_or((SPEC_VERSION, METADATA), |(_, spec, md)| {
                (*spec, md.as_slice())
            })
    }

    fn storage(&self, key: &[u8], at: u64) -> Option<Vec<u8>> {
        if key == prefix("System", "Events").as_slice() {
            return Some(
                self.blocks
                    .get(&at)
                    .map(|b| b.events.clone())
                    .unwrap_or_else(|| Vec::<EventRecord>::new().encode()),
            );
        }
        if key == prefix("SubtensorModule", "CommitRevealWeightsVersion").as_slice() {
            let v = self
                .chain
                .subnets
                .values()
                .next()?
                .hyper
                .commit_reveal_version;
            return Some(v.encode());
        }
        // Maps keyed by netuid (Identity hasher: the u16 itself).
        let identity_netuid = |item: &str| -> Option<u16> {
            let rest = key.strip_prefix(prefix("SubtensorModule", item).as_slice())?;
            let netuid = u16::decode(&mut &rest[..2.min(rest.len())]).ok()?;
            Some(netuid).filter(|_| rest.len() == 2)
        };
        let by_netuid = |item: &str| -> Option<Option<Vec<u8>>> {
            let netuid = identity_netuid(item)?;
            let Some(s) = self.chain.subnets.get(&netuid) else {
                return Some(None);
            };
            let hp = &s.hyper;
            Some(Some(match item {
                "NetworksAdded" => true.encode(),
                "Tempo" => hp.tempo.encode(),
                "MinAllowedWeights" => hp.min_allowed_weights.encode(),
                "MaxWeightsLimit" => hp.max_weights_limit.encode(),
                "WeightsVersionKey" => hp.weights_version_key.encode(),
                "WeightsSetRateLimit" => hp.weights_set_rate_limit.encode(),
                "CommitRevealWeightsEnabled" => hp.commit_reveal_weights_enabled.encode(),
                _ => return None,
            }))
        };
        for item in [
            "NetworksAdded",
            "Tempo",
            "MinAllowedWeights",
            "MaxWeightsLimit",
            "WeightsVersionKey",
            "WeightsSetRateLimit",
            "CommitRevealWeightsEnabled",
        ] {
            if let Some(v) = by_netuid(item) {
                return v;
            }
        }
        if let Some(netuid) = identity_netuid("SubnetOwnerHotkey") {
            return Some(self.chain.subnets.get(&netuid)?.owner.0.encode());
        }
        // Commitments.CommitmentOf: Identity(netuid) ++ Twox64Concat(account), as of `at`.
        if let Some(rest) = key.strip_prefix(prefix("Commitments", "CommitmentOf").as_slice())
            && rest.len() == 2 + 8 + 32
        {
            let netuid = u16::from_le_bytes([rest[0], rest[1]]);
            assert_eq!(&rest[2..10], &twox_64(&rest[10..]), "Twox64Concat key");
            let account = Hotkey(rest[10..].try_into().unwrap());
            let held = self.chain.commitments(netuid, Some(at)).ok()?;
            let c = held.into_iter().find(|c| c.hotkey == account)?;
            return Some(registration(c.block, &c.data));
        }
        // RevealPeriodEpochs: Twox64Concat(netuid).
        if let Some(rest) =
            key.strip_prefix(prefix("SubtensorModule", "RevealPeriodEpochs").as_slice())
        {
            let netuid = u16::decode(&mut &rest[8..]).ok()?;
            assert_eq!(&rest[..8], &twox_64(&netuid.encode()), "Twox64Concat key");
            let s = self.chain.subnets.get(&netuid)?;
            return Some(s.hyper.reveal_period_epochs.encode());
        }
        // Weights: Identity(netuid) ++ Identity(uid).
        if let Some(rest) = key.strip_prefix(prefix("SubtensorModule", "Weights").as_slice())
            && rest.len() == 4
        {
            let netuid = u16::from_le_bytes([rest[0], rest[1]]);
            let uid = u16::from_le_bytes([rest[2], rest[3]]);
            let row = self.chain.subnets.get(&netuid)?.weights.get(&uid)?;
            return Some(row.encode());
        }
        // WeightCommits: Twox64Concat(netuid) ++ Twox64Concat(account).
        if let Some(rest) = key.strip_prefix(prefix("SubtensorModule", "WeightCommits").as_slice())
            && rest.len() == 8 + 2 + 8 + 32
        {
            let netuid = u16::from_le_bytes([rest[8], rest[9]]);
            assert_eq!(&rest[..8], &twox_64(&rest[8..10]), "Twox64Concat key");
            assert_eq!(&rest[10..18], &twox_64(&rest[18..]), "Twox64Concat key");
            let account: [u8; 32] = rest[18..].try_into().unwrap();
            let commits = self
                .chain
                .subnets
                .get(&netuid)?
                .commits
                .get(&Hotkey(account))?;
            let list: Vec<([u8; 32], u64, u64, u64)> = commits
                .iter()
                .map(|c| (c.hash, c.block, c.first_reveal, c.last_reveal))
                .collect();
            return Some(list.encode());
        }
        // Uids: Identity(netuid) ++ Blake2_128Concat(account) — not read by the client, but a
        // real node has it; answered so a client change that starts using it is checked too.
        if let Some(rest) = key.strip_prefix(prefix("SubtensorModule", "Uids").as_slice())
            && rest.len() == 2 + 16 + 32
        {
            assert_eq!(
                &rest[2..18],
                &blake2_128(&rest[18..]),
                "Blake2_128Concat key"
            );
            let netuid = u16::from_le_bytes([rest[0], rest[1]]);
            let account = Hotkey(rest[18..].try_into().unwrap());
            let s = self.chain.subnets.get(&netuid)?;
            return s
                .neurons
                .iter()
                .find(|n| n.info.hotkey == account)
                .map(|n| n.info.uid.encode());
        }
        None
    }

    fn runtime_call(&self, name: &str, data: &[u8], at: u64) -> Result<Vec<u8>, RpcFailure> {
        match name {
            "Core_version" => Ok(RuntimeVersion {
                spec_name: "node-subtensor".into(),
                impl_name: "node-subtensor".into(),
                authoring_version: 1,
                spec_version: self.runtime_at(at).0,
                impl_version: 1,
                apis: Vec::new(),
                transaction_version: TX_VERSION,
                system_version: 1,
            }
            .encode()),
            "Metadata_metadata_versions" => Ok(vec![16u32].encode()),
            "Metadata_metadata_at_version" => {
                let v = u32::decode(&mut &data[..]).map_err(|e| invalid(&e.to_string()))?;
                if v != 16 {
                    return Ok(None::<Vec<u8>>.encode());
                }
                Ok(Some(self.runtime_at(at).1.to_vec()).encode())
            }
            "AccountNonceApi_account_nonce" => {
                let account: [u8; 32] =
                    <[u8; 32]>::decode(&mut &data[..]).map_err(|e| invalid(&e.to_string()))?;
                Ok(self.nonces.get(&account).copied().unwrap_or(0).encode())
            }
            "NeuronInfoRuntimeApi_get_neurons_lite" => {
                let netuid = u16::decode(&mut &data[..]).map_err(|e| invalid(&e.to_string()))?;
                let neurons = self.chain.metagraph(netuid, Some(at)).unwrap_or_default();
                let lite: Vec<NeuronInfoLite> = neurons
                    .into_iter()
                    .map(|n| NeuronInfoLite {
                        hotkey: n.hotkey.0,
                        coldkey: n.coldkey.0,
                        uid: n.uid,
                        netuid,
                        active: n.active,
                        axon_info: AxonInfo::default(),
                        prometheus_info: PrometheusInfo::default(),
                        stake: if n.stake > 0 {
                            vec![(n.coldkey.0, Compact(n.stake))]
                        } else {
                            Vec::new()
                        },
                        rank: 0,
                        emission: 0,
                        incentive: 0,
                        consensus: 0,
                        trust: 0,
                        validator_trust: 0,
                        dividends: 0,
                        last_update: n.last_update,
                        validator_permit: n.validator_permit,
                        pruning_score: 0,
                    })
                    .collect();
                Ok(lite.encode())
            }
            other => Err(RpcFailure {
                code: -32000,
                message: format!("the fake does not implement runtime call {other}"),
                data: None,
            }),
        }
    }

    /// Decodes and checks a signed v4 extrinsic, then runs it in a new block.
    fn accept(&mut self, bytes: &[u8]) -> Result<u64, RpcFailure> {
        let mut input = bytes;
        let Compact(len) =
            Compact::<u32>::decode(&mut input).map_err(|_| invalid_tx("bad length prefix"))?;
        if len as usize != input.len() {
            return Err(invalid_tx("length prefix does not match"));
        }
        let body = input;
        let mut r = body;
        let version = u8::decode(&mut r).map_err(|_| invalid_tx("empty"))?;
        if version != 0x84 {
            return Err(invalid_tx(&format!(
                "expected a signed v4 extrinsic, got {version:#x}"
            )));
        }
        // MultiAddress::Id(AccountId32).
        if u8::decode(&mut r) != Ok(0) {
            return Err(invalid_tx("address is not MultiAddress::Id"));
        }
        let signer = <[u8; 32]>::decode(&mut r).map_err(|_| invalid_tx("address"))?;
        // MultiSignature::Sr25519.
        if u8::decode(&mut r) != Ok(1) {
            return Err(invalid_tx("signature is not sr25519"));
        }
        let signature = <[u8; 64]>::decode(&mut r).map_err(|_| invalid_tx("signature"))?;
        // Transaction extensions with data, in the metadata's order: CheckMortality (Era),
        // CheckNonce (Compact<u32>), ChargeTransactionPayment (Compact<u128> tip),
        // CheckMetadataHash (Mode: u8). The others carry nothing.
        let extra_start = body.len() - r.len();
        let era = decode_era(&mut r)?;
        let Compact(nonce) = Compact::<u32>::decode(&mut r).map_err(|_| invalid_tx("nonce"))?;
        let Compact(_tip) = Compact::<u128>::decode(&mut r).map_err(|_| invalid_tx("tip"))?;
        let mode = u8::decode(&mut r).map_err(|_| invalid_tx("metadata hash mode"))?;
        if mode != 0 {
            return Err(invalid_tx("CheckMetadataHash mode must be Disabled"));
        }
        let extra = &body[extra_start..body.len() - r.len()];
        let call_bytes = r;
        let mut c = call_bytes;
        let pallet = u8::decode(&mut c).map_err(|_| invalid_tx("call"))?;
        let call_index = c.first().copied().ok_or_else(|| invalid_tx("call"))?;
        let call = match (pallet, call_index) {
            (7, _) => SubtensorCall::decode(&mut c)
                .map_err(|e| invalid_tx(&format!("call {call_index}: {e}")))?,
            (18, 0) => {
                c = &c[1..];
                decode_set_commitment(&mut c)?
            }
            _ => {
                return Err(invalid_tx(&format!(
                    "call {call_index} of pallet {pallet}: the fake takes SubtensorModule (7) \
                     calls and Commitments.set_commitment (18, 0)"
                )));
            }
        };
        if !c.is_empty() {
            return Err(invalid_tx("trailing bytes after the call"));
        }
        // The signed payload: call ++ extra ++ implicit (spec version, tx version, genesis
        // hash, mortality checkpoint, metadata hash None); hashed when longer than 256 bytes.
        let head = self.chain.block;
        let checkpoint = match era {
            None => self.chain.block_hash(0),
            Some((period, phase)) => {
                let birth = (head.max(phase) - phase) / period * period + phase;
                if head >= birth + period {
                    return Err(invalid_tx("Transaction has an ancient birth block"));
                }
                self.chain.block_hash(birth)
            }
        };
        let mut payload = call_bytes.to_vec();
        payload.extend(extra);
        payload.extend(self.runtime_at(head).0.encode());
        payload.extend(TX_VERSION.encode());
        payload.extend(self.chain.block_hash(0));
        payload.extend(checkpoint);
        payload.push(0);
        if payload.len() > 256 {
            payload = blake2_256(&payload).to_vec();
        }
        verify_substrate(&Hotkey(signer), &payload, &Signature(signature))
            .map_err(|_| invalid_tx("Transaction has a bad signature"))?;
        let expected = self.nonces.get(&signer).copied().unwrap_or(0);
        if nonce != expected {
            return Err(invalid_tx(&format!(
                "Transaction has a bad nonce: {nonce}, expected {expected}"
            )));
        }
        // Into a new block.
        self.chain.produce_block();
        let block = self.chain.block;
        self.nonces.insert(signer, expected + 1);
        let sim_call = match &call {
            SubtensorCall::SetWeights {
                netuid,
                dests,
                weights,
                version_key,
            } => Call::SetWeights {
                netuid: *netuid,
                uids: dests.clone(),
                weights: weights.clone(),
                version_key: *version_key,
            },
            SubtensorCall::CommitWeights {
                netuid,
                commit_hash,
            } => Call::CommitWeights {
                netuid: *netuid,
                hash: *commit_hash,
            },
            SubtensorCall::RevealWeights {
                netuid,
                uids,
                values,
                salt,
                version_key,
            } => Call::RevealWeights {
                netuid: *netuid,
                reveal: Reveal {
                    uids: uids.clone(),
                    values: values.clone(),
                    salt: salt.clone(),
                    version_key: *version_key,
                },
            },
            SubtensorCall::CommitTimelockedWeights {
                netuid,
                commit,
                reveal_round,
                commit_reveal_version,
            } => Call::CommitTimelocked {
                netuid: *netuid,
                commit: commit.clone(),
                reveal_round: *reveal_round,
                version: *commit_reveal_version,
            },
            SubtensorCall::SetCommitment { netuid, data } => Call::SetCommitment {
                netuid: *netuid,
                data: data.clone(),
            },
        };
        let outcome = match self.refuse_next.take() {
            Some(index) => Err(index),
            None => self
                .chain
                .dispatch(Hotkey(signer), &sim_call)
                .map_err(|e| error_index(&e)),
        };
        let info = || DispatchEventInfo {
            weight: Weight {
                ref_time: 1_000_000,
                proof_size: 0,
            },
            class: 0,
            pays_fee: 0,
        };
        let event = match outcome {
            Ok(_) => SystemEvent::ExtrinsicSuccess {
                dispatch_info: info(),
            },
            Err(index) => SystemEvent::ExtrinsicFailed {
                dispatch_error: DispatchError::Module {
                    index: 7,
                    error: [index, 0, 0, 0],
                },
                dispatch_info: info(),
            },
        };
        let events = vec![EventRecord {
            phase: Phase::ApplyExtrinsic(0),
            event: RuntimeEvent::System(event),
            topics: Vec::new(),
        }];
        self.blocks.insert(
            block,
            FakeBlock {
                extrinsics: vec![bytes.to_vec()],
                events: events.encode(),
            },
        );
        self.received.push(Received {
            pallet,
            call_index,
            call,
            signer,
            block,
        });
        Ok(block)
    }
}

/// `sp_runtime::generic::Era`: `None` for immortal, else `(period, phase)`.
fn decode_era(r: &mut &[u8]) -> Result<Option<(u64, u64)>, RpcFailure> {
    let first = u8::decode(r).map_err(|_| invalid_tx("era"))?;
    if first == 0 {
        return Ok(None);
    }
    let second = u8::decode(r).map_err(|_| invalid_tx("era"))?;
    let encoded = u64::from(first) + (u64::from(second) << 8);
    let period = 2u64 << (encoded % (1 << 4));
    let quantize_factor = (period >> 12).max(1);
    let phase = (encoded >> 4) * quantize_factor;
    if period < 4 || phase >= period {
        return Err(invalid_tx("invalid era"));
    }
    Ok(Some((period, phase)))
}

// ---- Transports ----

/// The fake behind subxt's in-process mock RPC client.
pub fn mock_rpc_client(fake: Arc<FakeSubtensor>) -> subxt_rpcs::RpcClient {
    use subxt_rpcs::client::MockRpcClient;
    let methods = fake.clone();
    let subscriptions = fake;
    let to_error = |f: RpcFailure| {
        subxt_rpcs::Error::User(subxt_rpcs::UserError {
            code: f.code,
            message: f.message,
            data: f.data.map(|d| serde_json::value::to_raw_value(&d).unwrap()),
        })
    };
    let parse = |p: Option<Box<serde_json::value::RawValue>>| -> Value {
        p.map(|p| serde_json::from_str(p.get()).unwrap())
            .unwrap_or(Value::Null)
    };
    let mock = MockRpcClient::builder()
        .method_fallback(move |name: String, params| {
            let r = methods.call(&name, &parse(params)).map_err(to_error);
            async move { r }
        })
        .subscription_fallback(move |name: String, params, _unsub: String| {
            let r = if name == "author_submitAndWatchExtrinsic" {
                subscriptions
                    .submit_and_watch(&parse(params))
                    .map_err(to_error)
            } else {
                Err(to_error(RpcFailure {
                    code: -32601,
                    message: format!("Method not found: {name}"),
                    data: None,
                }))
            };
            async move { r }
        })
        .build();
    subxt_rpcs::RpcClient::new(mock)
}

/// Serves the fake over a loopback WebSocket (JSON-RPC 2.0, as a node does); returns its URL.
/// The server stops with the test's runtime.
pub async fn serve_websocket(fake: Arc<FakeSubtensor>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(websocket_connection(fake.clone(), socket));
        }
    });
    format!("ws://{addr}")
}

async fn websocket_connection(fake: Arc<FakeSubtensor>, socket: tokio::net::TcpStream) {
    use soketto::handshake::{Server, server::Response};
    use tokio_util::compat::TokioAsyncReadCompatExt;
    // Small request/answer messages: without NODELAY each waits out delayed ACKs.
    let _ = socket.set_nodelay(true);
    let mut server = Server::new(socket.compat());
    let Ok(request) = server.receive_request().await else {
        return;
    };
    let key = request.key();
    if server
        .send_response(&Response::Accept {
            key,
            protocol: None,
        })
        .await
        .is_err()
    {
        return;
    }
    let (mut tx, mut rx) = server.into_builder().finish();
    let mut subscriptions = 0u64;
    loop {
        let mut data = Vec::new();
        if rx.receive_data(&mut data).await.is_err() {
            return;
        }
        let Ok(req) = serde_json::from_slice::<Value>(&data) else {
            return;
        };
        let id = req["id"].clone();
        let method = req["method"].as_str().unwrap_or_default().to_string();
        let params = req["params"].clone();
        let answer = |r: Result<Value, RpcFailure>| match r {
            Ok(v) => json!({ "jsonrpc": "2.0", "id": id, "result": v }),
            Err(f) => json!({ "jsonrpc": "2.0", "id": id, "error": {
                "code": f.code, "message": f.message, "data": f.data } }),
        };
        let mut out = Vec::new();
        match method.as_str() {
            "author_submitAndWatchExtrinsic" => match fake.submit_and_watch(&params) {
                Ok(updates) => {
                    subscriptions += 1;
                    let sid = format!("sub{subscriptions}");
                    out.push(answer(Ok(json!(sid))));
                    for u in updates {
                        out.push(
                            json!({ "jsonrpc": "2.0", "method": "author_extrinsicUpdate",
                            "params": { "subscription": sid, "result": u } }),
                        );
                    }
                }
                Err(f) => out.push(answer(Err(f))),
            },
            "author_unwatchExtrinsic" => out.push(answer(Ok(json!(true)))),
            m => out.push(answer(fake.call(m, &params))),
        }
        for msg in out {
            if tx.send_text(msg.to_string()).await.is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
}

/// Runtimes a node might upgrade to: the checked-in spec-393 metadata with one edit to
/// `SubtensorModule`'s calls, as a runtime upgrade would make it.
pub mod upgraded {
    use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
    use parity_scale_codec::{Decode, Encode};
    use scale_info::form::PortableForm;
    use scale_info::{Field, TypeDef, TypeDefPrimitive, Variant};

    /// The metadata with `edit` applied to `SubtensorModule`'s call variants (the second
    /// argument is the type id of `u8`).
    fn with_calls(edit: impl FnOnce(&mut Vec<Variant<PortableForm>>, u32)) -> Vec<u8> {
        let mut prefixed =
            RuntimeMetadataPrefixed::decode(&mut &super::METADATA[..]).expect("metadata decodes");
        let RuntimeMetadata::V16(md) = &mut prefixed.1 else {
            panic!("expected metadata version 16");
        };
        let calls = md
            .pallets
            .iter()
            .find(|p| p.name == "SubtensorModule")
            .and_then(|p| p.calls.as_ref())
            .expect("SubtensorModule has calls")
            .ty
            .id;
        let u8_id = md
            .types
            .types
            .iter()
            .find(|t| matches!(t.ty.type_def, TypeDef::Primitive(TypeDefPrimitive::U8)))
            .expect("a u8 type")
            .id;
        let ty = md
            .types
            .types
            .iter_mut()
            .find(|t| t.id == calls)
            .expect("the call type");
        let TypeDef::Variant(v) = &mut ty.ty.type_def else {
            panic!("calls are an enum");
        };
        edit(&mut v.variants, u8_id);
        prefixed.encode()
    }

    fn u8_field(name: &str, u8_id: u32) -> Field<PortableForm> {
        Field {
            name: Some(name.into()),
            ty: u8_id.into(),
            type_name: Some("u8".into()),
            docs: Vec::new(),
        }
    }

    /// Changes that leave what Platform uses alone: a new call, and an argument added to a call
    /// Platform never makes (`burned_register`).
    pub fn unrelated_changes() -> Vec<u8> {
        with_calls(|calls, u8_id| {
            calls.push(Variant {
                name: "a_call_added_by_an_upgrade".into(),
                fields: vec![u8_field("flag", u8_id)],
                index: 250,
                docs: Vec::new(),
            });
            let burned = calls
                .iter_mut()
                .find(|c| c.name == "burned_register")
                .expect("burned_register");
            burned.fields.push(u8_field("mechanism", u8_id));
        })
    }

    /// `set_weights` with a fifth argument.
    pub fn changed_set_weights() -> Vec<u8> {
        with_calls(|calls, u8_id| {
            let set_weights = calls
                .iter_mut()
                .find(|c| c.name == "set_weights")
                .expect("set_weights");
            set_weights.fields.push(u8_field("mechanism", u8_id));
        })
    }
}
