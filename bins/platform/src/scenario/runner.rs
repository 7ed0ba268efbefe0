//! Scenario files: a whole subnet — validators, miners, challenges with their modules,
//! submissions and epochs — run through the real state machine and wasm runtime in one
//! process. Consensus is abstracted as an ordered log: each batch of steps becomes one block,
//! proposed in turn by the validators, built by the proposer gate and applied by the block gate.
//! Committees evaluate every ordered submission with the runtime, attest with their BLS keys
//! and certify in the next block, exactly as the transactions say.
//!
//! Subnet owners use it to see the weights a scoring rule produces before publishing it. The
//! format is described in `docs/scenarios.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform_crypto::{BlsSecretKey, BlsSignature, Domain, Keypair, SignerBitmap, parse_suri};
use platform_primitives::{
    ChallengeId, Epoch, Hash, Hotkey, NetUid, Submission, SubmissionId, Uid, View,
};
use platform_runtime::{Allocation, EvalInput, LoadedModule, Runtime};
use serde::{Deserialize, Serialize};

use platform_node::RuntimeWeights;
use platform_state::records::{Genesis, Meta, SubmissionStatus};
use platform_state::types::*;
use platform_state::{Reject, State, TxOutcome, weights_digest};

/// Largest scenario file read.
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;
/// Largest module or payload file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// A scenario file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Subnet id (default 1).
    #[serde(default = "one")]
    pub netuid: u16,
    /// The subnet owner's secret URI.
    pub owner: String,
    /// Parameter overrides.
    #[serde(default)]
    pub params: ParamsFile,
    /// Validators.
    pub validators: Vec<ValidatorFile>,
    /// Miners.
    pub miners: Vec<MinerFile>,
    /// Challenges, published and (unless `activate = false`) activated before the steps.
    pub challenges: Vec<ChallengeFile>,
    /// Steps, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// What the run must produce.
    #[serde(default)]
    pub expect: Option<Expect>,
}

fn one() -> u16 {
    1
}

fn yes() -> bool {
    true
}

/// Parameter overrides (unset fields keep the defaults of [`Params`]).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsFile {
    min_stake: Option<u64>,
    committee_size: Option<u16>,
    max_committee_share_bps: Option<u16>,
    jail_epochs: Option<u64>,
    attest_timeout_blocks: Option<u64>,
    max_submissions_per_epoch: Option<u32>,
    burn_uid: Option<u16>,
    retain_epochs: Option<u64>,
}

/// A validator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorFile {
    /// Secret URI (`//Alice`, a mnemonic, a `0x` seed).
    pub key: String,
    /// Stake in rao.
    pub stake: u64,
    /// Attests a wrong digest for every submission (to show evidence and jailing).
    #[serde(default)]
    pub byzantine: bool,
}

/// A miner.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerFile {
    /// Secret URI.
    pub key: String,
}

/// A challenge.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeFile {
    /// Identifier.
    pub id: String,
    /// Name (default: the id).
    pub name: Option<String>,
    /// Module path (`.wasm` or `.wat`), relative to the scenario file.
    pub module: PathBuf,
    /// Emission share, basis points.
    pub emission_bps: u16,
    /// Scoring rule.
    pub scoring: ScoringRule,
    /// Committee size (default: the network's).
    pub committee_size: Option<u16>,
    /// Largest payload (default 64 KiB).
    pub max_payload_bytes: Option<u64>,
    /// Activate after publishing (default true).
    #[serde(default = "yes")]
    pub activate: bool,
    /// Files the module reads with `asset_read`, in index order, relative to the scenario:
    /// pinned in the challenge's metadata; every validator confirms it holds them before the
    /// challenge is activated.
    #[serde(default)]
    pub assets: Vec<PathBuf>,
}

/// One step.
#[derive(Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Step {
    /// A miner submits.
    Submit {
        /// Label for expectations.
        label: Option<String>,
        /// The miner's secret URI.
        miner: String,
        /// Challenge id.
        challenge: String,
        /// Payload file, relative to the scenario.
        payload: Option<PathBuf>,
        /// Payload as hex, instead of a file.
        payload_hex: Option<String>,
        /// Nonce (default: one above the miner's last).
        nonce: Option<u64>,
        /// `unsigned` or `bad_signature`.
        tamper: Option<String>,
        /// Claim this payload length instead of the real one.
        claim_len: Option<u64>,
    },
    /// The owner (or `signer`) signs an action.
    Sudo {
        /// Label for expectations.
        label: Option<String>,
        /// Signer (default: the owner).
        signer: Option<String>,
        /// Nonce (default: one above the last used).
        nonce: Option<u64>,
        /// The action.
        #[serde(flatten)]
        action: SudoStep,
    },
    /// Ends the current block batch: everything pending is evaluated and certified.
    Settle,
    /// Anchors the next epoch and closes the current one.
    CloseEpoch,
}

/// A `Sudo` action in a scenario.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SudoStep {
    /// Lifecycle transition.
    Transition {
        /// Challenge id.
        challenge: String,
        /// New stage.
        to: Lifecycle,
    },
    /// Emission share.
    SetEmission {
        /// Challenge id.
        challenge: String,
        /// New share.
        emission_bps: u16,
    },
}

/// Expectations.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Final state root (hex).
    pub state_root: Option<String>,
    /// Exact weights per epoch.
    #[serde(default)]
    pub weights: Vec<ExpectWeights>,
    /// Outcomes of labelled steps.
    #[serde(default)]
    pub receipts: Vec<ExpectReceipt>,
}

/// Expected weights of one epoch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectWeights {
    /// Epoch.
    pub epoch: u64,
    /// UIDs.
    pub uids: Vec<u16>,
    /// Weights.
    pub weights: Vec<u16>,
}

/// Expected outcome of a labelled step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectReceipt {
    /// The step's label.
    pub label: String,
    /// `accepted` or a rejection reason (`duplicate_payload`, `not_owner`, ...).
    pub outcome: String,
}

/// One receipt of the run.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiptLine {
    /// Block height that carried it (or would have).
    pub height: u64,
    /// The step label, or what the runner did (`setup`, `evaluation`, `epoch`).
    pub label: String,
    /// Transaction kind.
    pub kind: &'static str,
    /// `accepted`, or the rejection reason code.
    pub outcome: String,
    /// What the transaction did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<TxOutcome>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<String>,
}

/// Weights of one epoch.
#[derive(Clone, Debug, Serialize)]
pub struct EpochWeights {
    /// Epoch.
    pub epoch: u64,
    /// UIDs.
    pub uids: Vec<u16>,
    /// Weights.
    pub weights: Vec<u16>,
}

/// What a run produced.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Epoch weights, in order.
    pub epochs: Vec<EpochWeights>,
    /// Every receipt.
    pub receipts: Vec<ReceiptLine>,
    /// Blocks applied.
    pub blocks: u64,
    /// Submissions certified.
    pub certified: u64,
    /// Validators jailed.
    pub jailed: Vec<Hotkey>,
    /// Final state root.
    pub state_root: Hash,
    /// True if there was an `[expect]` section and all of it held, or there was none.
    pub expectations_met: bool,
    /// Expectations that did not hold.
    pub failures: Vec<String>,
}

fn sudo_tx(
    (netuid, genesis): (NetUid, Hash),
    counter: &mut u64,
    signer: &Keypair,
    nonce: Option<u64>,
    action: SudoAction,
) -> Tx {
    let nonce = nonce.unwrap_or(*counter + 1);
    *counter = (*counter).max(nonce);
    let bytes = SudoTx::signing_bytes(netuid, &genesis, nonce, &action);
    Tx::Sudo(SudoTx {
        signature: Some(signer.sign(Domain::Sudo, &bytes)),
        action,
        nonce,
        signer: signer.hotkey(),
    })
}

fn reject_line(height: u64, label: String, kind: &'static str, r: &Reject) -> ReceiptLine {
    ReceiptLine {
        height,
        label,
        kind,
        outcome: reason_code(r),
        effect: None,
        rejection: Some(r.to_string()),
    }
}

fn reason_code(r: &Reject) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("reason").and_then(|s| s.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

struct Validator {
    key: Keypair,
    bls: BlsSecretKey,
    byzantine: bool,
}

struct ChallengeRt {
    runtime: Runtime,
    module: Arc<LoadedModule>,
    assets: Arc<Vec<Vec<u8>>>,
}

/// The runner's error: the scenario itself is wrong (not a rejected transaction, which is a
/// result).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ScenarioError> {
    Err(ScenarioError(msg.into()))
}

fn read(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, ScenarioError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ScenarioError(format!("cannot read {what} {}: {e}", path.display())))?;
    if meta.len() > limit {
        return err(format!(
            "{what} {} is {} bytes; at most {limit} are read",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path)
        .map_err(|e| ScenarioError(format!("cannot read {what} {}: {e}", path.display())))
}

fn key(suri: &str) -> Result<Keypair, ScenarioError> {
    parse_suri(suri).map_err(|e| ScenarioError(format!("key '{suri}': {e}")))
}

fn bls_key(k: &Keypair, suri: &str) -> BlsSecretKey {
    k.derive_bls_key().unwrap_or_else(|| {
        // Soft-derived keys have no seed; scenario keys are public dev keys anyway.
        BlsSecretKey::from_seed(&Hash::of(suri.as_bytes()).0)
    })
}

/// Runs the scenario at `path`; with `snapshot`, also exports the final state. A scenario has
/// no consensus, so the snapshot carries no certificate.
pub fn run_file_with_snapshot(
    path: &Path,
    snapshot: bool,
) -> Result<(Report, Option<Vec<u8>>), ScenarioError> {
    let text = read(path, MAX_SCENARIO_BYTES, "scenario")?;
    let text =
        String::from_utf8(text).map_err(|_| ScenarioError("scenario is not UTF-8".into()))?;
    let scenario: Scenario =
        toml::from_str(&text).map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let (report, mut state) = Runner::new(scenario, base)?.run()?;
    let snap = snapshot.then(|| state.export_snapshot(Vec::new()).to_bytes());
    Ok((report, snap))
}

struct Runner {
    s: Scenario,
    base: PathBuf,
    netuid: NetUid,
    owner: Keypair,
    validators: Vec<Validator>,
    state: State,
    host: RuntimeWeights,
    challenges: BTreeMap<ChallengeId, ChallengeRt>,
    payloads: BTreeMap<SubmissionId, Vec<u8>>,
    /// Submissions ordered but not yet certified.
    pending: Vec<SubmissionId>,
    /// Wrong attestations by Byzantine validators, turned into evidence once certified.
    false_attests: Vec<Attest>,
    nonces: BTreeMap<Hotkey, u64>,
    sudo_nonce: u64,
    chain_block: u64,
    report: Report,
}

impl Runner {
    fn new(s: Scenario, base: &Path) -> Result<Runner, ScenarioError> {
        if s.validators.is_empty() {
            return err("a scenario needs at least one validator");
        }
        let netuid = NetUid(s.netuid);
        let owner = key(&s.owner)?;
        let mut params = Params::default();
        let p = &s.params;
        params.min_stake = p.min_stake.unwrap_or(params.min_stake);
        params.committee_size = p.committee_size.unwrap_or(params.committee_size);
        params.max_committee_share_bps = p
            .max_committee_share_bps
            .unwrap_or(params.max_committee_share_bps);
        params.jail_epochs = p.jail_epochs.unwrap_or(params.jail_epochs);
        params.attest_timeout_blocks = p
            .attest_timeout_blocks
            .unwrap_or(params.attest_timeout_blocks);
        params.max_submissions_per_epoch = p
            .max_submissions_per_epoch
            .unwrap_or(params.max_submissions_per_epoch);
        params.burn_uid = Uid(p.burn_uid.unwrap_or(0));
        params.retain_epochs = p.retain_epochs.unwrap_or(params.retain_epochs);

        let mut validators = Vec::new();
        let mut metagraph = Vec::new();
        for v in &s.validators {
            let k = key(&v.key)?;
            metagraph.push(Neuron {
                uid: Uid(metagraph.len() as u16),
                hotkey: k.hotkey(),
                coldkey: k.hotkey().0,
                stake: v.stake,
                validator_permit: true,
            });
            validators.push(Validator {
                bls: bls_key(&k, &v.key),
                key: k,
                byzantine: v.byzantine,
            });
        }
        for m in &s.miners {
            let k = key(&m.key)?;
            metagraph.push(Neuron {
                uid: Uid(metagraph.len() as u16),
                hotkey: k.hotkey(),
                coldkey: k.hotkey().0,
                stake: 0,
                validator_permit: false,
            });
        }
        let bindings = validators
            .iter()
            .map(|v| {
                let bls_key = v.bls.public();
                let pop = v.bls.prove_possession();
                let peer_id = v.key.hotkey().0.to_vec();
                BindKeysTx {
                    hotkey: v.key.hotkey(),
                    bls_key,
                    pop,
                    signature: Some(v.key.sign(
                        Domain::BindKeys,
                        &BindKeysTx::signing_bytes(netuid, &bls_key, &pop, &peer_id),
                    )),
                    peer_id,
                }
            })
            .collect();
        let genesis = Genesis {
            netuid,
            owner: owner.hotkey(),
            params,
            chain_block: 1,
            chain_hash: Hash::of(b"scenario chain block 1"),
            metagraph,
            bindings,
            timestamp_ms: 0,
        };
        let state = State::genesis(&genesis)
            .map_err(|e| ScenarioError(format!("the scenario's genesis is invalid: {e}")))?;

        let mut modules = Vec::new();
        let mut challenges = BTreeMap::new();
        for c in &s.challenges {
            let id = ChallengeId::new(&c.id).map_err(|e| ScenarioError(e.to_string()))?;
            let path = base.join(&c.module);
            let mut bytes = read(&path, MAX_FILE_BYTES, "module")?;
            if path.extension().is_some_and(|e| e == "wat") {
                bytes = wat::parse_bytes(&bytes)
                    .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?
                    .into_owned();
            }
            let resources = Resources {
                max_payload_bytes: c.max_payload_bytes.unwrap_or(64 * 1024),
                ..Resources::default()
            };
            let runtime =
                Runtime::new(resources.policy(), Allocation::OnDemand).map_err(ScenarioError)?;
            let module = runtime
                .load(&bytes)
                .map_err(|e| ScenarioError(format!("module {} of '{id}': {e}", path.display())))?;
            let assets = c
                .assets
                .iter()
                .map(|a| read(&base.join(a), MAX_ASSET_BYTES, "asset"))
                .collect::<Result<Vec<_>, _>>()?;
            challenges.insert(
                id,
                ChallengeRt {
                    runtime,
                    module,
                    assets: Arc::new(assets),
                },
            );
            modules.push(bytes);
        }
        Ok(Runner {
            netuid,
            owner,
            validators,
            state,
            host: RuntimeWeights::new(modules),
            challenges,
            payloads: BTreeMap::new(),
            pending: Vec::new(),
            false_attests: Vec::new(),
            nonces: BTreeMap::new(),
            sudo_nonce: 0,
            chain_block: 1,
            base: base.to_path_buf(),
            report: Report {
                epochs: Vec::new(),
                receipts: Vec::new(),
                blocks: 0,
                certified: 0,
                jailed: Vec::new(),
                state_root: Hash::ZERO,
                expectations_met: true,
                failures: Vec::new(),
            },
            s,
        })
    }

    fn meta(&self) -> Meta {
        self.state.meta()
    }

    /// Proposes a block with `txs` (labelled), applies it, and records receipts. Rejections at
    /// mempool admission and at block building are both receipts; the block itself must apply.
    fn block(&mut self, txs: Vec<(String, Tx)>) -> Result<(), ScenarioError> {
        let height = self.meta().height.0 + 1;
        let mut lines: Vec<Option<ReceiptLine>> = Vec::new();
        let mut candidates = Vec::new();
        let mut slots = Vec::new();
        for (label, tx) in txs {
            // Epoch transactions go straight to the proposer's block, as a node builds them.
            let admitted = if tx.is_epoch_transaction() {
                Ok(())
            } else {
                self.state.admit(&tx, &self.host).map(|_| ())
            };
            match admitted {
                Ok(_) => {
                    slots.push((lines.len(), label));
                    lines.push(None);
                    candidates.push(tx);
                }
                Err(r) => lines.push(Some(reject_line(height, label, tx.kind(), &r))),
            }
        }
        let proposer = &self.validators[(height as usize) % self.validators.len()].key;
        let (block, outcomes) = self.state.build_block(
            proposer,
            View(height),
            height * 1_000,
            candidates,
            &self.host,
        );
        let applied = self
            .state
            .apply_block(&block, &self.host)
            .map_err(|e| ScenarioError(format!("block {height} did not apply: {e}")))?;
        self.report.blocks += 1;
        let mut effects = applied.outcomes.into_iter();
        for ((slot, label), (tx, outcome)) in slots.into_iter().zip(outcomes) {
            lines[slot] = Some(match outcome {
                Ok(_) => {
                    let effect = effects.next().expect("one effect per included tx");
                    self.on_effect(&effect);
                    ReceiptLine {
                        height,
                        label,
                        kind: tx.kind(),
                        outcome: "accepted".into(),
                        effect: Some(effect),
                        rejection: None,
                    }
                }
                Err(r) => reject_line(height, label, tx.kind(), &r),
            });
        }
        self.report.receipts.extend(lines.into_iter().flatten());
        Ok(())
    }

    fn on_effect(&mut self, effect: &TxOutcome) {
        match effect {
            TxOutcome::Submitted { submission, .. } => self.pending.push(*submission),
            TxOutcome::Certified { .. } => self.report.certified += 1,
            TxOutcome::Jailed { hotkey, .. } if !self.report.jailed.contains(hotkey) => {
                self.report.jailed.push(*hotkey);
            }
            TxOutcome::Closed {
                epoch,
                uids,
                weights,
                ..
            } => self.report.epochs.push(EpochWeights {
                epoch: epoch.0,
                uids: uids.clone(),
                weights: weights.clone(),
            }),
            _ => {}
        }
    }

    /// Evaluates every pending submission with its committee and certifies it; then turns the
    /// Byzantine members' false attestations into evidence.
    fn settle(&mut self) -> Result<(), ScenarioError> {
        let mut txs = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        for id in pending {
            let record = self
                .state
                .submission(&id)
                .expect("ordered submissions exist");
            let rt = &self.challenges[&record.submission.challenge];
            let payload = self.payloads[&id].clone();
            let (_, eval, _) = rt.runtime.validate_and_evaluate(
                &rt.module,
                &EvalInput {
                    seed: record.seed,
                    payload,
                },
                Arc::new(self.state.challenge_kv(&record.submission.challenge)),
                rt.assets.clone(),
            );
            let result = ResultBody {
                outcome: eval.outcome,
                output: eval.output.clone(),
                write_set: eval.write_set.clone(),
                fuel_used: eval.fuel_used,
                engine_hash: rt.runtime.engine_hash(),
            };
            if result.digest() != eval.digest {
                return err("the certified result does not reproduce the runtime's digest");
            }
            let message = Attest::message(self.netuid, &id, &eval.digest);
            let mut signers = SignerBitmap::new(record.committee.len());
            let mut signatures = Vec::new();
            for (i, member) in record.committee.iter().enumerate() {
                let v = self
                    .validators
                    .iter()
                    .find(|v| v.key.hotkey() == *member)
                    .expect("committees are drawn from the scenario's validators");
                if v.byzantine {
                    let wrong =
                        Hash::of(&[eval.digest.0, *b"a different result, on purpose!!"].concat());
                    let attest = Attest {
                        submission: id,
                        evaluator: *member,
                        digest: wrong,
                        signature: v.bls.sign(&Attest::message(self.netuid, &id, &wrong)),
                    };
                    self.false_attests.push(attest.clone());
                    txs.push(("evaluation".to_string(), Tx::Attest(attest)));
                } else {
                    let signature = v.bls.sign(&message);
                    signers.set(i);
                    signatures.push(signature);
                    txs.push((
                        "evaluation".to_string(),
                        Tx::Attest(Attest {
                            submission: id,
                            evaluator: *member,
                            digest: eval.digest,
                            signature,
                        }),
                    ));
                }
            }
            if !signatures.is_empty() {
                txs.push((
                    "evaluation".to_string(),
                    Tx::Certify(CertifyTx {
                        submission: id,
                        result,
                        signers,
                        signature: BlsSignature::aggregate(&signatures)
                            .expect("at least one signature"),
                    }),
                ));
            }
        }
        if txs.is_empty() {
            return Ok(());
        }
        self.block(txs)?;
        let evidence: Vec<(String, Tx)> = std::mem::take(&mut self.false_attests)
            .into_iter()
            .filter(|a| {
                matches!(
                    self.state.submission(&a.submission).map(|r| r.status),
                    Some(SubmissionStatus::Certified { .. })
                )
            })
            .map(|attest| {
                (
                    "evidence".to_string(),
                    Tx::Evidence(Evidence::WrongResult { attest }),
                )
            })
            .collect();
        if !evidence.is_empty() {
            self.block(evidence)?;
        }
        Ok(())
    }

    fn close_epoch(&mut self) -> Result<(), ScenarioError> {
        self.settle()?;
        let current = self.state.current_epoch();
        self.chain_block += 100;
        let anchor = Tx::EpochAnchor(EpochAnchor {
            epoch: Epoch(current.epoch.0 + 1),
            chain_block: self.chain_block,
            chain_hash: Hash::of(&self.chain_block.to_le_bytes()),
            metagraph: current.metagraph.clone(),
        });
        self.block(vec![("epoch".into(), anchor)])?;
        let weights = self
            .state
            .compute_weights(&self.host)
            .map_err(|e| ScenarioError(e.to_string()))?;
        let close = Tx::EpochClose(EpochClose {
            epoch: current.epoch,
            weights_digest: weights_digest(&weights),
        });
        self.block(vec![("epoch".into(), close)])
    }

    fn submit_tx(&mut self, step: &Step) -> Result<Tx, ScenarioError> {
        let Step::Submit {
            miner,
            challenge,
            payload,
            payload_hex,
            nonce,
            tamper,
            claim_len,
            ..
        } = step
        else {
            unreachable!("called for submit steps")
        };
        let k = key(miner)?;
        let bytes = match (payload, payload_hex) {
            (Some(p), None) => read(&self.base.join(p), MAX_FILE_BYTES, "payload")?,
            (None, Some(h)) => {
                hex::decode(h.trim()).map_err(|e| ScenarioError(format!("payload_hex: {e}")))?
            }
            _ => return err("a submit step needs exactly one of payload or payload_hex"),
        };
        let challenge = ChallengeId::new(challenge).map_err(|e| ScenarioError(e.to_string()))?;
        let last = self.nonces.get(&k.hotkey()).copied();
        let nonce = nonce.unwrap_or(last.map_or(1, |n| n + 1));
        self.nonces.insert(k.hotkey(), last.unwrap_or(0).max(nonce));
        let submission = Submission {
            challenge,
            miner: k.hotkey(),
            payload_hash: Hash::of(&bytes),
            payload_len: claim_len.unwrap_or(bytes.len() as u64),
            nonce,
        };
        let signing =
            SubmitTx::signing_bytes(self.netuid, &self.state.meta().network_id, &submission);
        let signature = match tamper.as_deref() {
            None => Some(k.sign(Domain::Submission, &signing)),
            Some("unsigned") => None,
            Some("bad_signature") => Some(k.sign(Domain::Submission, b"something else")),
            Some(other) => {
                return err(format!(
                    "tamper = '{other}': use 'unsigned' or 'bad_signature'"
                ));
            }
        };
        // The payload is available by hash, as a blob would be.
        self.payloads.insert(submission.id(), bytes);
        Ok(Tx::Submit(SubmitTx {
            submission,
            signature,
        }))
    }

    fn run(mut self) -> Result<(Report, State), ScenarioError> {
        // Setup: publish and activate the challenges.
        let mut publish = Vec::new();
        let mut activate_txs = Vec::new();
        let mut metas = Vec::new();
        for c in &self.s.challenges {
            let id = ChallengeId::new(&c.id).map_err(|e| ScenarioError(e.to_string()))?;
            let rt = &self.challenges[&id];
            metas.push((
                ChallengeMeta {
                    id: id.clone(),
                    name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                    version: 1,
                    wasm_hash: rt.module.hash,
                    abi_version: platform_runtime::abi::ABI_VERSION,
                    resources: Resources {
                        max_payload_bytes: c.max_payload_bytes.unwrap_or(64 * 1024),
                        ..Resources::default()
                    },
                    committee_size: c.committee_size,
                    emission_bps: c.emission_bps,
                    scoring: c.scoring.clone(),
                    assets: rt
                        .assets
                        .iter()
                        .map(|bytes| Asset {
                            url: String::new(),
                            blake3: Hash::of(bytes),
                            max_bytes: bytes.len() as u64,
                        })
                        .collect(),
                },
                c.activate,
            ));
        }
        let mut to_activate = Vec::new();
        let mut confirm = Vec::new();
        for (meta, activate) in metas {
            if activate {
                to_activate.push(meta.id.clone());
            }
            if !meta.assets.is_empty() {
                // Every validator holds the scenario's files: each confirms it.
                for v in &self.validators {
                    let message = AssetsReady::message(self.netuid, &meta.id, meta.version);
                    confirm.push((
                        format!("setup: {} holds the assets of {}", v.key.hotkey(), meta.id),
                        Tx::AssetsReady(AssetsReady {
                            challenge: meta.id.clone(),
                            version: meta.version,
                            validator: v.key.hotkey(),
                            signature: v.bls.sign(&message),
                        }),
                    ));
                }
            }
            publish.push((
                format!("setup: publish {}", meta.id),
                sudo_tx(
                    (self.netuid, self.state.meta().network_id),
                    &mut self.sudo_nonce,
                    &self.owner,
                    None,
                    SudoAction::Publish(meta),
                ),
            ));
        }
        for id in to_activate {
            activate_txs.push((
                format!("setup: activate {id}"),
                sudo_tx(
                    (self.netuid, self.state.meta().network_id),
                    &mut self.sudo_nonce,
                    &self.owner,
                    None,
                    SudoAction::Transition {
                        challenge: id,
                        to: Lifecycle::Active,
                    },
                ),
            ));
        }
        self.block(publish)?;
        if !confirm.is_empty() {
            self.block(confirm)?;
        }
        self.block(activate_txs)?;

        let steps = std::mem::take(&mut self.s.steps);
        let mut batch: Vec<(String, Tx)> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let label = |l: &Option<String>| l.clone().unwrap_or_else(|| format!("step {}", i + 1));
            match step {
                Step::Submit { label: l, .. } => {
                    let tx = self.submit_tx(step)?;
                    batch.push((label(l), tx));
                }
                Step::Sudo {
                    label: l,
                    signer,
                    nonce,
                    action,
                } => {
                    let other;
                    let signer = match signer {
                        Some(s) => {
                            other = key(s)?;
                            &other
                        }
                        None => &self.owner,
                    };
                    let to_id =
                        |s: &str| ChallengeId::new(s).map_err(|e| ScenarioError(e.to_string()));
                    let action = match action {
                        SudoStep::Transition { challenge, to } => SudoAction::Transition {
                            challenge: to_id(challenge)?,
                            to: *to,
                        },
                        SudoStep::SetEmission {
                            challenge,
                            emission_bps,
                        } => SudoAction::SetEmission {
                            challenge: to_id(challenge)?,
                            emission_bps: *emission_bps,
                        },
                    };
                    let network = (self.netuid, self.state.meta().network_id);
                    let tx = sudo_tx(network, &mut self.sudo_nonce, signer, *nonce, action);
                    batch.push((label(l), tx));
                }
                Step::Settle => {
                    if !batch.is_empty() {
                        self.block(std::mem::take(&mut batch))?;
                    }
                    self.settle()?;
                }
                Step::CloseEpoch => {
                    if !batch.is_empty() {
                        self.block(std::mem::take(&mut batch))?;
                    }
                    self.close_epoch()?;
                }
            }
        }
        if !batch.is_empty() {
            self.block(batch)?;
        }
        self.settle()?;
        self.report.state_root = self.state.root();
        let expect = self.s.expect.take();
        if let Some(expect) = expect {
            self.check(&expect);
        }
        Ok((self.report, self.state))
    }

    fn check(&mut self, expect: &Expect) {
        let mut failures = Vec::new();
        if let Some(root) = &expect.state_root
            && root != &self.report.state_root.to_hex()
        {
            failures.push(format!(
                "state root is {}, expected {root}",
                self.report.state_root
            ));
        }
        for w in &expect.weights {
            match self.report.epochs.iter().find(|e| e.epoch == w.epoch) {
                None => failures.push(format!("epoch {} was not closed", w.epoch)),
                Some(got) if got.uids != w.uids || got.weights != w.weights => failures.push(
                    format!(
                        "epoch {} weights are uids {:?} weights {:?}, expected uids {:?} weights {:?}",
                        w.epoch, got.uids, got.weights, w.uids, w.weights
                    ),
                ),
                Some(_) => {}
            }
        }
        for r in &expect.receipts {
            match self.report.receipts.iter().find(|x| x.label == r.label) {
                None => failures.push(format!("no receipt for step '{}'", r.label)),
                Some(got) if got.outcome != r.outcome => failures.push(format!(
                    "step '{}' was {}, expected {}",
                    r.label, got.outcome, r.outcome
                )),
                Some(_) => {}
            }
        }
        self.report.expectations_met = failures.is_empty();
        self.report.failures = failures;
    }
}
