//! Running a module: a fresh store and instance per call, from an `InstancePre` cached per
//! module; outcome classes; the receipt digest.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use borsh::{BorshDeserialize, BorshSerialize};
use platform_primitives::{Hash, decode, encode};
use wasmtime::{Engine, InstancePre, Linker, Module, Store, Trap};

use crate::abi::{ABI_VERSION, EvalInput, EvalOutput};
use crate::engine::{self, Allocation};
use crate::host::{self, Fault, HostState};
use crate::policy::Policy;
use crate::validate::{ModuleInfo, Rejection, validate};

/// The version of wasmtime this runtime is pinned to (part of the engine hash).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How a call ended. Only the class enters the receipt digest, never an error string.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// Success; output and write-set are valid.
    Ok,
    /// The module's `validate` (or `evaluate`) refused the payload.
    Invalid,
    /// The module trapped or aborted.
    Trap,
    /// Fuel ran out.
    OutOfFuel,
    /// Memory or table growth beyond the policy.
    MemoryLimit,
    /// Output larger than the policy, or written twice.
    OutputTooLarge,
    /// No output, or output that is not a Borsh `EvalOutput`.
    InvalidOutput,
    /// The local wall-clock backstop fired. Never a score: this validator has no result.
    Deadline,
    /// The module failed static validation.
    Rejected,
}

/// Which export to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `validate(input_len)`: admission check.
    Validate,
    /// `evaluate(input_len)`: the scoring run.
    Evaluate,
    /// `query(input_len)`: a read-only question for challenge routes; its writes are discarded.
    Query,
    /// `weights(input_len)`: custom scoring at epoch close.
    Weights,
}

/// The result of one call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Evaluation {
    /// How it ended.
    pub outcome: OutcomeClass,
    /// Output bytes (empty unless `ok`).
    pub output: Vec<u8>,
    /// The score, when the output decoded.
    pub score: Option<u64>,
    /// KV writes in key order (`None` = delete); empty unless `ok`.
    #[serde(skip)]
    pub write_set: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Log lines kept (local diagnostics; not in the digest).
    pub logs: Vec<String>,
    /// Why it failed, for people (never in the digest).
    pub error: Option<String>,
    /// The receipt digest that validators attest to.
    pub digest: Hash,
}

#[derive(BorshSerialize)]
struct DigestBody<'a> {
    outcome: OutcomeClass,
    output: &'a [u8],
    write_set: &'a [(Vec<u8>, Option<Vec<u8>>)],
    fuel_used: u64,
    abi_version: u32,
    engine_hash: [u8; 32],
}

/// The receipt digest validators attest to:
/// `blake3(borsh(outcome, output, write_set, fuel_used, abi_version, engine_hash))`. The state
/// machine recomputes it from a certified result, so both sides share this one function.
pub fn receipt_digest(
    outcome: OutcomeClass,
    output: &[u8],
    write_set: &[(Vec<u8>, Option<Vec<u8>>)],
    fuel_used: u64,
    engine_hash: [u8; 32],
) -> Hash {
    Hash::of(&encode(&DigestBody {
        outcome,
        output,
        write_set,
        fuel_used,
        abi_version: ABI_VERSION,
        engine_hash,
    }))
}

/// A validated, compiled module ready to instantiate.
pub struct LoadedModule {
    /// blake3 of the module bytes.
    pub hash: Hash,
    /// What validation learned.
    pub info: ModuleInfo,
    pre: InstancePre<HostState>,
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Static validation refused it.
    #[error("module rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Compilation or linking failed.
    #[error("module failed to compile: {0}")]
    Compile(String),
}

/// The sandbox: one engine, a linker with the host functions, and compiled modules by hash.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    policy: Arc<Policy>,
    engine_hash: [u8; 32],
    modules: Mutex<BTreeMap<Hash, Arc<LoadedModule>>>,
    /// Held while a module is validated, compiled and inserted (see `load_with`).
    pub(crate) loading: Mutex<()>,
    stop_ticker: Arc<AtomicBool>,
    metered: bool,
}

/// Epoch ticks per second for the wall-clock backstop.
const TICKS_PER_SEC: u64 = 100;

impl Runtime {
    /// A runtime for `policy`.
    pub fn new(policy: Policy, allocation: Allocation) -> Result<Runtime, String> {
        Self::build(policy, allocation, true)
    }

    /// A runtime without fuel metering, for measuring its overhead only: without fuel a module
    /// can run until the wall-clock deadline, and its results are not valid evaluations.
    pub fn unmetered_for_measurement(
        policy: Policy,
        allocation: Allocation,
    ) -> Result<Runtime, String> {
        Self::build(policy, allocation, false)
    }

    fn build(policy: Policy, allocation: Allocation, metered: bool) -> Result<Runtime, String> {
        let engine = Engine::new(&engine::config_with_metering(allocation, &policy, metered))
            .map_err(|e| format!("cannot create the wasm engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        host::link(&mut linker).map_err(|e| format!("cannot link host functions: {e}"))?;
        let engine_hash =
            *blake3::hash(&[WASMTIME_VERSION.as_bytes(), &engine::config_hash(&policy)].concat())
                .as_bytes();
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("wasm-deadline".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1000 / TICKS_PER_SEC));
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| format!("cannot start the deadline ticker: {e}"))?;
        Ok(Runtime {
            engine,
            linker,
            policy: Arc::new(policy),
            engine_hash,
            modules: Mutex::new(BTreeMap::new()),
            loading: Mutex::new(()),
            stop_ticker,
            metered,
        })
    }

    /// The engine (for precompiling and artifact checks).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// blake3 of the wasmtime version and our configuration.
    pub fn engine_hash(&self) -> [u8; 32] {
        self.engine_hash
    }

    /// Validates and compiles `bytes` in this process (cached by hash).
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedModule>, LoadError> {
        let hash = Hash::of(bytes);
        if let Some(m) = self.cached(&hash) {
            return Ok(m);
        }
        let info = validate(bytes, &self.policy)?;
        let module =
            Module::new(&self.engine, bytes).map_err(|e| LoadError::Compile(e.to_string()))?;
        self.insert(hash, info, module)
    }

    pub(crate) fn cached(&self, hash: &Hash) -> Option<Arc<LoadedModule>> {
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }

    pub(crate) fn insert(
        &self,
        hash: Hash,
        info: ModuleInfo,
        module: Module,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile(e.to_string()))?;
        let loaded = Arc::new(LoadedModule { hash, info, pre });
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, loaded.clone());
        Ok(loaded)
    }

    /// Runs `entry` of `module` on `input` against a KV `snapshot` and `assets`.
    pub fn call(
        &self,
        module: &LoadedModule,
        entry: Entry,
        input: &EvalInput,
        snapshot: Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
        assets: Arc<Vec<Vec<u8>>>,
    ) -> Evaluation {
        let input = encode(input);
        let input_len = input.len() as i32;
        let mut store = Store::new(
            &self.engine,
            HostState {
                input,
                output: None,
                snapshot,
                writes: BTreeMap::new(),
                register: Vec::new(),
                logs: Vec::new(),
                log_bytes: 0,
                logs_dropped: 0,
                assets,
                policy: self.policy.clone(),
                memory: None,
                fault: None,
            },
        );
        store.limiter(|s| s);
        let fuel = self.policy.fuel;
        let result = (|| -> wasmtime::Result<i32> {
            if self.metered {
                store.set_fuel(fuel)?;
            }
            store.set_epoch_deadline(self.policy.deadline_ms * TICKS_PER_SEC / 1000 + 1);
            let instance = module.pre.instantiate(&mut store)?;
            let memory = instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| wasmtime::Error::msg("module has no memory export"))?;
            store.data_mut().memory = Some(memory);
            let name = match entry {
                Entry::Validate => "validate",
                Entry::Evaluate => "evaluate",
                Entry::Query => "query",
                Entry::Weights => "weights",
            };
            let f = instance.get_typed_func::<i32, i32>(&mut store, name)?;
            f.call(&mut store, input_len)
        })();
        let fuel_used = if self.metered {
            fuel - store.get_fuel().unwrap_or(0)
        } else {
            0
        };
        let state = store.into_data();
        let (outcome, error) = classify(&result, state.fault.as_ref(), entry);
        let mut eval = Evaluation {
            outcome,
            output: Vec::new(),
            score: None,
            write_set: Vec::new(),
            fuel_used,
            logs: state.logs,
            error,
            digest: Hash::ZERO,
        };
        if outcome == OutcomeClass::Ok && entry != Entry::Validate {
            let output = state.output.unwrap_or_default();
            match decode::<EvalOutput>(
                "evaluation output",
                &output,
                self.policy.max_output_bytes as usize,
            ) {
                Ok(out) => {
                    eval.score = Some(out.score);
                    eval.output = output;
                    if entry != Entry::Query {
                        eval.write_set = state.writes.into_iter().collect();
                    }
                }
                Err(e) => {
                    eval.outcome = OutcomeClass::InvalidOutput;
                    eval.error = Some(e.to_string());
                }
            }
        }
        eval.digest = self.digest(&eval);
        eval
    }

    fn digest(&self, e: &Evaluation) -> Hash {
        receipt_digest(
            e.outcome,
            &e.output,
            &e.write_set,
            e.fuel_used,
            self.engine_hash,
        )
    }

    /// A receipt for a module that failed static validation.
    pub fn rejected(&self, rejection: &Rejection) -> Evaluation {
        let mut e = Evaluation {
            outcome: OutcomeClass::Rejected,
            output: Vec::new(),
            score: None,
            write_set: Vec::new(),
            fuel_used: 0,
            logs: Vec::new(),
            error: Some(rejection.to_string()),
            digest: Hash::ZERO,
        };
        e.digest = self.digest(&e);
        e
    }

    /// Validates (if exported) then evaluates, as a committee member does.
    pub fn validate_and_evaluate(
        &self,
        module: &LoadedModule,
        input: &EvalInput,
        snapshot: Arc<BTreeMap<Vec<u8>, Vec<u8>>>,
        assets: Arc<Vec<Vec<u8>>>,
    ) -> (Option<Evaluation>, Evaluation, Duration) {
        let start = Instant::now();
        let validation = module.info.has_validate.then(|| {
            self.call(
                module,
                Entry::Validate,
                input,
                snapshot.clone(),
                assets.clone(),
            )
        });
        if let Some(v) = &validation
            && v.outcome != OutcomeClass::Ok
        {
            let mut refused = v.clone();
            if refused.outcome == OutcomeClass::Ok {
                refused.outcome = OutcomeClass::Invalid;
            }
            return (validation.clone(), refused, start.elapsed());
        }
        let evaluation = self.call(module, Entry::Evaluate, input, snapshot, assets);
        (validation, evaluation, start.elapsed())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn classify(
    result: &wasmtime::Result<i32>,
    fault: Option<&Fault>,
    entry: Entry,
) -> (OutcomeClass, Option<String>) {
    match (result, fault) {
        (Ok(0), _) => (OutcomeClass::Ok, None),
        (Ok(code), _) => (
            OutcomeClass::Invalid,
            Some(format!(
                "{} returned {code}",
                if entry == Entry::Validate {
                    "validate"
                } else {
                    "evaluate"
                }
            )),
        ),
        (Err(_), Some(f)) => match f {
            Fault::OutOfFuel => (
                OutcomeClass::OutOfFuel,
                Some("fuel ran out in a host call".into()),
            ),
            Fault::MemoryLimit => (
                OutcomeClass::MemoryLimit,
                Some("memory or table grew beyond the policy".into()),
            ),
            Fault::OutputTooLarge => (
                OutcomeClass::OutputTooLarge,
                Some("output larger than the policy allows".into()),
            ),
            Fault::OutputTwice => (
                OutcomeClass::OutputTooLarge,
                Some("output_write called twice".into()),
            ),
            Fault::OutOfBounds => (
                OutcomeClass::Trap,
                Some("a host call got a pointer outside memory".into()),
            ),
            Fault::KvLimit => (
                OutcomeClass::Trap,
                Some("KV key, value or write count beyond the policy".into()),
            ),
            Fault::Abort(msg) => (OutcomeClass::Trap, Some(format!("module aborted: {msg}"))),
        },
        (Err(e), None) => match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => (OutcomeClass::OutOfFuel, Some("fuel ran out".into())),
            Some(Trap::Interrupt) => (OutcomeClass::Deadline, Some("wall-clock deadline".into())),
            Some(t) => (OutcomeClass::Trap, Some(t.to_string())),
            None => (OutcomeClass::Trap, Some(e.to_string())),
        },
    }
}
