//! The weights host a validator runs epoch closes with: the implementation of the state's
//! [`WeightsHost`] over this node's blob store and the wasm runtime.
//!
//! It owns the compiled modules (cached by module hash and resource policy) and is the only
//! place where closing an epoch touches local disk or the clock: a module whose bytes are not
//! here, or whose run hits the wall-clock backstop, is [`ModuleShares::Unavailable`] — "this
//! validator cannot tell yet" — which the driver answers by fetching the module and waiting,
//! never by refusing the block or stopping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use platform_primitives::{Hash, decode, encode};
use platform_runtime::{
    Allocation, Entry, EvalInput, LoadedModule, ModuleLoader, OutcomeClass, Runtime,
};
use platform_state::{ChallengeMeta, ModuleShares, WeightsHost, WeightsInput, WeightsOutput};
use platform_storage::DataDir;

use crate::driver::MAX_MODULE_BYTES;

type Loaded = (Arc<Runtime>, Arc<LoadedModule>);

/// Where [`RuntimeWeights`] finds a module's bytes, by their blake3.
pub type ModuleSource = Box<dyn Fn(&Hash) -> Option<Vec<u8>> + Send + Sync>;

/// Runs `weights` exports in the wasm runtime, with each challenge's resource policy.
pub struct RuntimeWeights {
    source: ModuleSource,
    loader: ModuleLoader,
    /// Compiled modules by (module hash, encoded resources).
    loaded: Mutex<BTreeMap<(Hash, Vec<u8>), Loaded>>,
    /// Runs still to report as unavailable (the `stall-weights` test fault).
    stalls: AtomicU32,
}

impl RuntimeWeights {
    /// A host over module bytes (keyed by their blake3).
    pub fn new(modules: impl IntoIterator<Item = Vec<u8>>) -> RuntimeWeights {
        let modules: BTreeMap<Hash, Vec<u8>> =
            modules.into_iter().map(|b| (Hash::of(&b), b)).collect();
        RuntimeWeights::with_source(Box::new(move |h| modules.get(h).cloned()))
    }

    /// A host that reads modules from `source` (a blob store) when first needed. Bytes that do
    /// not hash to the requested module are treated as missing.
    pub fn with_source(source: ModuleSource) -> RuntimeWeights {
        RuntimeWeights {
            source,
            loader: ModuleLoader::in_process(),
            loaded: Mutex::new(BTreeMap::new()),
            stalls: AtomicU32::new(0),
        }
    }

    /// Reports the next `runs` runs as unavailable, as runs over the wall-clock backstop
    /// would be ([`crate::config::Fault::StallWeights`]).
    pub fn with_stalls(self, runs: u32) -> RuntimeWeights {
        self.stalls.store(runs, Ordering::Relaxed);
        self
    }

    /// Compiles modules with `loader` (validators: a bounded child process) instead of in
    /// this process.
    pub fn with_loader(mut self, loader: ModuleLoader) -> RuntimeWeights {
        self.loader = loader;
        self
    }

    /// Whether `meta`'s module is compiled and ready (running it will not compile).
    pub fn is_loaded(&self, meta: &ChallengeMeta) -> bool {
        let key = (meta.wasm_hash, encode(&meta.resources));
        let cache = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        cache.contains_key(&key)
    }

    /// Compiles `meta`'s module if its bytes are at hand; `false` when they are not.
    pub fn preload(&self, meta: &ChallengeMeta) -> bool {
        self.load(meta).is_some()
    }

    fn load(&self, meta: &ChallengeMeta) -> Option<Loaded> {
        let policy_key = encode(&meta.resources);
        let key = (meta.wasm_hash, policy_key);
        {
            let cache = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&key) {
                return Some(hit.clone());
            }
        }
        let bytes = (self.source)(&meta.wasm_hash).filter(|b| Hash::of(b) == meta.wasm_hash)?;
        let rt = Arc::new(Runtime::new(meta.resources.policy(), Allocation::OnDemand).ok()?);
        let module = self.loader.load(&rt, &bytes).ok()?;
        let mut cache = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, (rt.clone(), module.clone()));
        Some((rt, module))
    }
}

impl WeightsHost for RuntimeWeights {
    fn run(&self, meta: &ChallengeMeta, input: &WeightsInput) -> ModuleShares {
        let Some((rt, module)) = self.load(meta) else {
            return ModuleShares::Unavailable;
        };
        let stalled = self
            .stalls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if stalled.is_ok() {
            return ModuleShares::Unavailable;
        }
        if !module.info.exports.iter().any(|e| e == "weights") {
            return ModuleShares::Failed;
        }
        let eval = rt.call(
            &module,
            Entry::Weights,
            &EvalInput {
                seed: input.epoch.0,
                payload: encode(input),
            },
            Arc::new(BTreeMap::new()),
            Arc::new(Vec::new()),
        );
        match eval.outcome {
            OutcomeClass::Ok => {}
            OutcomeClass::Deadline => return ModuleShares::Unavailable,
            _ => return ModuleShares::Failed,
        }
        let Ok(out) =
            decode::<platform_runtime::EvalOutput>("weights output", &eval.output, usize::MAX)
        else {
            return ModuleShares::Failed;
        };
        match decode::<WeightsOutput>("weights shares", &out.details, out.details.len()) {
            Ok(shares) => ModuleShares::Shares(shares),
            Err(_) => ModuleShares::Failed,
        }
    }
}

/// The weights host of a validator: challenge modules read from the data directory's blob
/// store when first needed, compiled by `loader`.
pub fn weights_host(dir: Arc<DataDir>, loader: ModuleLoader) -> RuntimeWeights {
    RuntimeWeights::with_source(Box::new(move |h| {
        dir.blobs().get(h, MAX_MODULE_BYTES).ok().flatten()
    }))
    .with_loader(loader)
}
