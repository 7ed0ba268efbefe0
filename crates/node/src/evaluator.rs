//! The evaluator: committee members run ordered submissions through the WebAssembly runtime,
//! sign the receipt digest with their BLS key and gossip the attestation with its result; any
//! validator that holds matching attestations from more than two thirds of a committee
//! aggregates them into a `Certify` transaction and admits it to the mempool.
//!
//! Evaluation is deterministic, so a member whose attested digest differs from the certified
//! one attested something false: every validator that saw such an attestation turns it into
//! `Evidence::WrongResult`, which the state answers by jailing the member.
//!
//! It never runs module code on the async runtime's workers (`crate::eval_threads`), and never
//! decides a score itself: only certified results reach the state.
//!
//! Evaluations run on the evaluation threads (`crate::eval_threads`), at a lower scheduling
//! priority than consensus, never on the async runtime's workers. Module and payload bytes come
//! from the blob store or peers (checked against their hashes by the network); a challenge's
//! assets from [`crate::assets`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use borsh::{BorshDeserialize, BorshSerialize};
use platform_crypto::{BlsSecretKey, BlsSignature, SignerBitmap, VerifiedBlsKey};
use platform_network::{Network, Topic};
use platform_primitives::{
    ChallengeId, Hash, Height, Hotkey, NetUid, SubmissionId, decode, encode,
};
use platform_runtime::{Allocation, EvalInput, ModuleLoader, Runtime};

use crate::assets::Assets;
use crate::config::Fault;
use crate::eval_threads::EvalThreads;
use crate::mempool::Pool;
use platform_state::records::{SubmissionRecord, SubmissionStatus};
use platform_state::{
    AssetsReady, Attest, Block, CertifyTx, Evidence, Lifecycle, ResultBody, State, Tx,
};

/// What members gossip on the `attestations` topic.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Attestation {
    /// The signed attestation.
    pub attest: Attest,
    /// The result it attests to (its digest is `attest.digest`).
    pub result: ResultBody,
}

/// The largest attestation accepted from gossip.
pub const MAX_ATTESTATION_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Collected {
    /// By digest: the result and each member's attestation.
    by_digest: BTreeMap<Hash, (ResultBody, BTreeMap<Hotkey, Attest>)>,
    /// The committee a certificate was formed for. A replacement changes the committee, and
    /// the certificate must then be formed again over the new one.
    certified_for: Option<Vec<Hotkey>>,
}

/// One validator's evaluator.
pub struct Evaluator {
    me: Hotkey,
    secret: Option<Arc<BlsSecretKey>>,
    netuid: NetUid,
    net: Network,
    pool: Arc<Pool>,
    runtimes: Mutex<HashMap<(ChallengeId, u32), Arc<Runtime>>>,
    threads: EvalThreads,
    /// Module loads at once (on the blocking pool, at the node's own priority).
    loads: tokio::sync::Semaphore,
    collected: Mutex<HashMap<SubmissionId, Collected>>,
    /// Each pending submission's input: its challenge's key-value state after the block that
    /// ordered it. Every member evaluates over that one state however late it starts (a
    /// replacement drawn many blocks later, a member whose node applied further blocks first),
    /// while certified write-sets keep changing the live state.
    inputs: Mutex<Inputs>,
    fault: Option<Fault>,
    /// Compiles challenge modules (bounded, in a child process, on validators).
    loader: ModuleLoader,
    /// Evaluations run to an attestable result, and the wall time they took (loading the
    /// module included), since this process started.
    evaluations: AtomicU64,
    evaluation_ms: AtomicU64,
    /// Challenge assets held for evaluations.
    assets: Assets,
    /// When this validator last set out to confirm a challenge version's assets.
    asset_confirms: Mutex<BTreeMap<(ChallengeId, u32), Instant>>,
}

/// How long a confirmation of assets that has not reached the state waits before it is tried
/// again (the fetch failed, or the transaction was dropped).
const ASSET_CONFIRM_RETRY: Duration = Duration::from_secs(15);

/// A challenge's key-value state.
type Kv = BTreeMap<Vec<u8>, Vec<u8>>;

/// Submissions' evaluation inputs.
pub type Inputs = HashMap<SubmissionId, Arc<Kv>>;

/// Records in `inputs` the input of each submission `block` orders; `state` is the state right
/// after the block. Submissions of one challenge in one block share one copy.
pub fn record_inputs(inputs: &mut Inputs, state: &State, block: &Block) {
    let mut by_challenge: BTreeMap<&ChallengeId, Arc<Kv>> = BTreeMap::new();
    for tx in &block.txs {
        if let Tx::Submit(t) = tx {
            let challenge = &t.submission.challenge;
            let kv = by_challenge
                .entry(challenge)
                .or_insert_with(|| Arc::new(state.challenge_kv(challenge)));
            inputs.insert(t.submission.id(), kv.clone());
        }
    }
}

impl Evaluator {
    /// An evaluator signing with `secret` (none for observers), running evaluations on
    /// `threads`.
    pub fn new(
        me: Hotkey,
        secret: Option<BlsSecretKey>,
        netuid: NetUid,
        net: Network,
        pool: Arc<Pool>,
        threads: EvalThreads,
        (fault, loader): (Option<Fault>, ModuleLoader),
    ) -> Evaluator {
        Evaluator {
            me,
            secret: secret.map(Arc::new),
            netuid,
            net,
            pool,
            runtimes: Mutex::new(HashMap::new()),
            threads,
            loads: tokio::sync::Semaphore::new(2),
            collected: Mutex::new(HashMap::new()),
            inputs: Mutex::new(HashMap::new()),
            fault,
            loader,
            evaluations: AtomicU64::new(0),
            evaluation_ms: AtomicU64::new(0),
            assets: Assets::default(),
            asset_confirms: Mutex::new(BTreeMap::new()),
        }
    }

    /// Evaluations run to an attestable result since this process started, and the
    /// milliseconds they took.
    pub fn evaluations(&self) -> (u64, u64) {
        (
            self.evaluations.load(Ordering::Relaxed),
            self.evaluation_ms.load(Ordering::Relaxed),
        )
    }

    /// Records the input of each submission `block` orders; `state` is the state right after
    /// the block. Call it for every finalized block, in order: any validator may later be
    /// drawn to a committee as a replacement.
    pub fn record_inputs(&self, state: &State, block: &Block) {
        record_inputs(
            &mut self.inputs.lock().expect("input lock poisoned"),
            state,
            block,
        );
    }

    /// After a restart: takes the inputs recorded while replaying the finalized blocks since
    /// the node's snapshot, and evaluates again each pending submission whose committee we
    /// sit on (an evaluation cut short by the restart; attestations are deterministic, so
    /// attesting twice is harmless). Submissions ordered before the snapshot have no input
    /// here and are left to replacement.
    pub fn resume(self: &Arc<Self>, replayed: Inputs) {
        let pending: Vec<SubmissionId> = {
            let state = self.pool.state();
            let mut inputs = self.inputs.lock().expect("input lock poisoned");
            for (id, kv) in replayed {
                let record = state.submission(&id);
                if record.is_some_and(|r| matches!(r.status, SubmissionStatus::Pending)) {
                    inputs.insert(id, kv);
                }
            }
            inputs.keys().copied().collect()
        };
        for id in pending {
            self.ordered(id);
        }
    }

    /// Called for each submission a finalized block ordered: evaluates it if we sit on its
    /// committee.
    pub fn ordered(self: &Arc<Self>, id: SubmissionId) {
        let Some(secret) = &self.secret else {
            return;
        };
        let record = self.pool.state().submission(&id);
        let Some(record) = record else {
            return;
        };
        if !record.committee.contains(&self.me)
            || !matches!(record.status, SubmissionStatus::Pending)
        {
            return;
        }
        if self.fault == Some(Fault::WithholdAttestations) {
            tracing::info!(submission = %id, "withholding the evaluation (deliberate fault)");
            return;
        }
        let secret = secret.clone();
        let this = self.clone();
        tracing::info!(submission = %id, "evaluating as a committee member");
        tokio::spawn(async move {
            if let Err(e) = this.evaluate(id, record, secret).await {
                tracing::warn!("evaluating {id}: {e:#}");
            }
        });
    }

    async fn evaluate(
        self: &Arc<Self>,
        id: SubmissionId,
        record: SubmissionRecord,
        secret: Arc<BlsSecretKey>,
    ) -> anyhow::Result<()> {
        let challenge = self
            .pool
            .state()
            .challenge(&record.submission.challenge)
            .ok_or_else(|| {
                anyhow::anyhow!("challenge {} is unknown", record.submission.challenge)
            })?;
        let module = self.net.fetch_blob(challenge.meta.wasm_hash).await?;
        let payload = self.net.fetch_blob(record.submission.payload_hash).await?;
        let assets = self.assets.of(&self.net, &challenge.meta).await?;
        let kv = self
            .inputs
            .lock()
            .expect("input lock poisoned")
            .get(&id)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "its input state is not at hand (it was ordered before this node started \
                     or installed a snapshot); not attesting, so the committee replaces this \
                     member"
                )
            })?;
        let runtime = {
            let key = (challenge.meta.id.clone(), challenge.meta.version);
            let mut runtimes = self.runtimes.lock().expect("runtime cache lock poisoned");
            match runtimes.get(&key) {
                Some(r) => r.clone(),
                None => {
                    let r = Arc::new(
                        Runtime::new(challenge.meta.resources.policy(), Allocation::OnDemand)
                            .map_err(|e| anyhow::anyhow!("runtime: {e}"))?,
                    );
                    runtimes.insert(key, r.clone());
                    r
                }
            }
        };
        let challenge_label = vec![("challenge", challenge.meta.id.as_str().to_string())];
        let seed = record.seed;
        let fault = self.fault;
        let started = std::time::Instant::now();
        let outcome = |labels: &[(&'static str, String)], o: &str| {
            let mut l = labels.to_vec();
            l.push(("outcome", o.to_string()));
            crate::metrics::events().evaluations.get_or_create(&l).inc();
        };
        // The module is loaded (compiled on first use, in a child process that inherits the
        // calling thread's priority) at the node's own priority: a compile is a one-time,
        // bounded cost, and one starved behind other processes' work made a committee member
        // miss its attestation deadline. Only running the module is low-priority work.
        let loaded = {
            let _load = self.loads.acquire().await?;
            let (loader, runtime) = (self.loader.clone(), runtime.clone());
            tokio::task::spawn_blocking(move || loader.load(&runtime, &module)).await?
        };
        let loaded = loaded.map_err(|e| {
            outcome(&challenge_label, "load_failed");
            anyhow::anyhow!("loading the module: {e}")
        })?;
        let labels = challenge_label.clone();
        let evaluated = self
            .threads
            .run(move || {
                let events = crate::metrics::events();
                let outcome = |o: &str| outcome(&labels, o);
                let (_, eval, _) = runtime.validate_and_evaluate(
                    &loaded,
                    &EvalInput { seed, payload },
                    kv,
                    assets,
                );
                outcome(
                    serde_json::to_value(eval.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .as_deref()
                        .unwrap_or("unknown"),
                );
                events
                    .evaluation_fuel
                    .get_or_create(&labels)
                    .observe(eval.fuel_used as f64);
                if !attestable(eval.outcome) {
                    return Ok(None);
                }
                let mut result = ResultBody {
                    outcome: eval.outcome,
                    output: eval.output,
                    write_set: eval.write_set,
                    fuel_used: eval.fuel_used,
                    engine_hash: runtime.engine_hash(),
                };
                if fault == Some(Fault::WrongScores) {
                    result.output.extend_from_slice(b"forged");
                    let digest = result.digest();
                    return Ok(Some((result, digest)));
                }
                Ok::<_, anyhow::Error>(Some((result, eval.digest)))
            })
            .await??;
        if evaluated.is_some() {
            crate::metrics::events()
                .evaluation_seconds
                .get_or_create(&challenge_label)
                .observe(started.elapsed().as_secs_f64());
            self.evaluations.fetch_add(1, Ordering::Relaxed);
            self.evaluation_ms
                .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        let Some((result, digest)) = evaluated else {
            // Our wall-clock backstop fired: this node has no result. It abstains, and the
            // committee replaces it if the others cannot certify without it.
            tracing::warn!(
                submission = %id,
                "the evaluation hit this node's wall-clock backstop; abstaining"
            );
            return Ok(());
        };
        let attest = Attest {
            submission: id,
            evaluator: self.me,
            digest,
            signature: secret.sign(&Attest::message(self.netuid, &id, &digest)),
        };
        tracing::info!(submission = %id, digest = %digest, "attesting");
        let attestation = Attestation { attest, result };
        let round = record.height.0;
        if let Err(e) = self
            .net
            .publish(Topic::Attestations, round, encode(&attestation))
            .await
        {
            tracing::debug!("gossiping the attestation of {id}: {e}");
        }
        self.collect(attestation).await;
        Ok(())
    }

    /// Takes an attestation (ours or gossiped): checks it against the submission's committee,
    /// the member's bound BLS key and the result's digest; certifies when a digest has more
    /// than two thirds of the committee.
    pub async fn collect(self: &Arc<Self>, a: Attestation) {
        let id = a.attest.submission;
        let pool = self.pool.clone();
        let netuid = self.netuid;
        let this = self.clone();
        let dropped = |reason| crate::error::count_dropped("attestation", reason);
        let _ = tokio::task::spawn_blocking(move || {
            let (record, key) = {
                let state = pool.state();
                let Some(record) = state.submission(&id) else {
                    // Unknown here: never ordered, or already pruned.
                    return dropped("unknown_submission");
                };
                let Some(keys) = state.bound_keys(&a.attest.evaluator) else {
                    return dropped("unbound_evaluator");
                };
                (record, keys)
            };
            if !record.committee.contains(&a.attest.evaluator) {
                return dropped("not_a_member");
            }
            if a.result.digest() != a.attest.digest {
                tracing::warn!(member = %a.attest.evaluator, "attestation with a mismatched result");
                return dropped("mismatched_result");
            }
            let Ok(verified): Result<VerifiedBlsKey, _> = key.bls_key.verify_possession(&key.pop)
            else {
                return dropped("bad_key");
            };
            let message = Attest::message(netuid, &id, &a.attest.digest);
            if a.attest.signature.verify(&verified, &message).is_err() {
                tracing::warn!(member = %a.attest.evaluator, "attestation with a bad signature");
                return dropped("bad_signature");
            }
            match record.status {
                SubmissionStatus::Pending => {}
                SubmissionStatus::Certified { digest, .. } if digest != a.attest.digest => {
                    // Too late to matter for the certificate, not for the member's record.
                    this.report_wrong(a.attest, record.height.0);
                    return;
                }
                _ => return,
            }
            let certify = {
                let mut all = this.collected.lock().expect("attestation lock poisoned");
                let entry = all.entry(id).or_default();
                let done = entry.certified_for.as_ref() == Some(&record.committee);
                let (result, attests) = entry
                    .by_digest
                    .entry(a.attest.digest)
                    .or_insert_with(|| (a.result.clone(), BTreeMap::new()));
                attests.insert(a.attest.evaluator, a.attest);
                if done {
                    return;
                }
                // Only the current members count: members replaced since they attested no
                // longer sit on the committee the certificate is checked against.
                let mut signers = SignerBitmap::new(record.committee.len());
                let mut list = Vec::new();
                for (i, member) in record.committee.iter().enumerate() {
                    if let Some(attest) = attests.get(member) {
                        signers.set(i);
                        list.push(attest.signature);
                    }
                }
                if list.len() * 3 <= record.committee.len() * 2 {
                    return;
                }
                let Ok(signature) = BlsSignature::aggregate(&list) else {
                    return;
                };
                let result = result.clone();
                entry.certified_for = Some(record.committee.clone());
                Tx::Certify(CertifyTx {
                    submission: id,
                    result,
                    signers,
                    signature,
                })
            };
            match pool.admit_and_publish(&this.net, certify, record.height.0) {
                Ok(_) => tracing::info!(submission = %id, "certificate formed"),
                Err(e) => tracing::debug!("certificate for {id} not admitted: {e}"),
            }
        })
        .await;
    }

    /// Attestations for a block at `height` on top of `state` to record: for each submission
    /// still pending at least half way to its deadline, the collected attestations of current
    /// members that the state has not recorded yet (at most `limit`). Gossip is enough while
    /// a certificate forms; when one cannot (a member is silent, or attested something else),
    /// the recorded attestations let the state replace at the deadline exactly the members
    /// that did not agree, and keep the others.
    pub fn due_attests(&self, state: &State, height: Height, limit: usize) -> Vec<Tx> {
        let half = state.params().attest_timeout_blocks / 2;
        let collected = self.collected.lock().expect("attestation lock poisoned");
        // In submission-id order: a fixed order keeps blocks reproducible from the same inputs.
        let mut ids: Vec<&SubmissionId> = collected.keys().collect();
        ids.sort_unstable_by_key(|id| id.0.0);
        let mut txs = Vec::new();
        for id in ids {
            let c = &collected[id];
            let Some(r) = state.submission(id) else {
                continue;
            };
            let due = r.deadline.0 > height.0 && r.deadline.0 - height.0 <= half;
            if !matches!(r.status, SubmissionStatus::Pending) || !due {
                continue;
            }
            for (_, attests) in c.by_digest.values() {
                for (member, attest) in attests {
                    let recorded = r.attestations.iter().any(|(hk, _)| hk == member);
                    if r.committee.contains(member) && !recorded && txs.len() < limit {
                        txs.push(Tx::Attest(attest.clone()));
                    }
                }
            }
        }
        txs
    }

    /// Confirms, for each challenge whose assets the finalized state does not yet list this
    /// validator as holding, that it does: fetches them ([`crate::assets`]), then admits and
    /// gossips a signed `AssetsReady`. Runs after each finalized block; a confirmation that has
    /// not reached the state is retried after [`ASSET_CONFIRM_RETRY`].
    pub fn confirm_assets(self: &Arc<Self>) {
        let Some(secret) = self.secret.clone() else {
            return;
        };
        let (due, live, height) = {
            let state = self.pool.state();
            let mut due = Vec::new();
            let mut live = Vec::new();
            for c in state.challenges() {
                if c.meta.assets.is_empty() || c.status == Lifecycle::Retired {
                    continue;
                }
                live.push((c.meta.id.clone(), c.meta.version));
                if !state.assets_ready(&c.meta.id).contains(&self.me) {
                    due.push(c.meta);
                }
            }
            (due, live, state.meta().height.0)
        };
        self.assets.retain(&live);
        let now = Instant::now();
        let mut confirms = self.asset_confirms.lock().expect("asset lock poisoned");
        confirms.retain(|key, _| live.contains(key));
        for meta in due {
            let key = (meta.id.clone(), meta.version);
            if confirms
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < ASSET_CONFIRM_RETRY)
            {
                continue;
            }
            confirms.insert(key, now);
            let (this, secret) = (self.clone(), secret.clone());
            tokio::spawn(async move {
                if let Err(e) = this.assets.of(&this.net, &meta).await {
                    tracing::warn!(challenge = %meta.id, "cannot confirm its assets: {e:#}");
                    return;
                }
                let tx = Tx::AssetsReady(AssetsReady {
                    challenge: meta.id.clone(),
                    version: meta.version,
                    validator: this.me,
                    signature: secret.sign(&AssetsReady::message(
                        this.netuid,
                        &meta.id,
                        meta.version,
                    )),
                });
                let admitted = tokio::task::spawn_blocking(move || {
                    this.pool.admit_and_publish(&this.net, tx, height)
                })
                .await;
                match admitted {
                    Ok(Ok(_)) => {
                        tracing::info!(challenge = %meta.id, version = meta.version, "holds the challenge's assets; confirmation sent")
                    }
                    Ok(Err(e)) => tracing::debug!("asset confirmation not admitted: {e}"),
                    Err(e) => tracing::warn!("asset confirmation: {e}"),
                }
            });
        }
    }

    /// Decodes a gossiped attestation.
    pub fn decode(bytes: &[u8]) -> Option<Attestation> {
        decode("attestation", bytes, MAX_ATTESTATION_BYTES).ok()
    }

    /// Admits and gossips evidence that `attest` contradicts its submission's certified result.
    fn report_wrong(&self, attest: Attest, round: u64) {
        let evaluator = attest.evaluator;
        if self.report(Evidence::WrongResult { attest }, round) {
            tracing::warn!(member = %evaluator, "evidence: an attestation contradicts the certified result");
        }
    }

    /// Admits evidence to the mempool and gossips it to the other validators; `false` if the
    /// state does not admit it (already known or already judged: another validator reported
    /// it first). Runs the state's checks: call it on a blocking thread.
    pub fn report(&self, evidence: Evidence, round: u64) -> bool {
        let tx = Tx::Evidence(evidence);
        match self.pool.admit_and_publish(&self.net, tx, round) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!("evidence not admitted: {e}");
                false
            }
        }
    }

    /// Forgets submissions that are no longer pending; attestations that contradict a
    /// certified result become evidence first.
    pub fn prune(&self) {
        let mut wrong = Vec::new();
        {
            let state = self.pool.state();
            self.inputs
                .lock()
                .expect("input lock poisoned")
                .retain(|id, _| {
                    state
                        .submission(id)
                        .is_some_and(|r| matches!(r.status, SubmissionStatus::Pending))
                });
            self.collected
                .lock()
                .expect("attestation lock poisoned")
                .retain(|id, c| match state.submission(id) {
                    Some(r) => match r.status {
                        SubmissionStatus::Pending => true,
                        SubmissionStatus::Certified { digest, .. } => {
                            for (d, (_, attests)) in &c.by_digest {
                                if *d != digest {
                                    wrong.extend(attests.values().map(|a| (a.clone(), r.height.0)));
                                }
                            }
                            false
                        }
                        _ => false,
                    },
                    None => false,
                });
        }
        for (attest, round) in wrong {
            self.report_wrong(attest, round);
        }
    }
}

/// Whether an evaluation's outcome is a result to attest. A deadline is this node's own clock
/// running out, not a property of the submission: attesting it would contradict the members
/// that finished, and get this node jailed for a slow machine.
pub fn attestable(outcome: platform_runtime::OutcomeClass) -> bool {
    outcome != platform_runtime::OutcomeClass::Deadline
}

#[cfg(test)]
mod deadline_tests {
    use super::*;
    use platform_runtime::OutcomeClass;

    #[test]
    fn only_a_deadline_is_an_abstention() {
        assert!(!attestable(OutcomeClass::Deadline));
        for o in [
            OutcomeClass::Ok,
            OutcomeClass::Trap,
            OutcomeClass::OutOfFuel,
            OutcomeClass::MemoryLimit,
            OutcomeClass::InvalidOutput,
        ] {
            assert!(attestable(o), "{o:?}");
        }
    }

    #[test]
    fn the_deadline_follows_the_fuel_budget() {
        use platform_runtime::policy::deadline_for_fuel;
        assert_eq!(deadline_for_fuel(1_000), 10_000, "at least 10 s");
        assert_eq!(deadline_for_fuel(2_000_000_000), 100_000);
        let meta_policy = platform_state::Resources {
            fuel: 4_000_000_000,
            ..platform_state::Resources::default()
        }
        .policy();
        assert_eq!(meta_policy.deadline_ms, 200_000);
    }
}
