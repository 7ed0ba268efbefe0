//! The one wasmtime `Engine`, configured for determinism. Every flag we rely on is set
//! explicitly, because defaults change between releases.

use wasmparser::WasmFeatures;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OperatorCost, OptLevel, PoolingAllocationConfig,
    Strategy,
};

use crate::policy::Policy;

/// How instances get their memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// Pre-reserved slots, reused across evaluations (fast instantiation).
    Pooling,
    /// Fresh mappings per instance (used to check that results do not depend on the allocator).
    OnDemand,
}

/// Maximum wasm stack, bytes: deep recursion traps deterministically at the same depth.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// The operator cost table: wasmtime's per-operator table, made explicit here, plus costs for
/// work proportional to a runtime operand, so a `memory.fill` of 16 MiB is not one unit of fuel.
pub fn operator_cost() -> OperatorCost {
    let mut cost = OperatorCost::new();
    cost.variable.memory_copy_per_byte = 1;
    cost.variable.memory_fill_per_byte = 1;
    cost.variable.memory_init_per_byte = 1;
    cost.variable.memory_grow_per_page = 64;
    cost.variable.table_copy_per_element = 1;
    cost.variable.table_fill_per_element = 1;
    cost.variable.table_init_per_element = 1;
    cost.variable.table_grow_per_element = 1;
    cost
}

/// Every WebAssembly feature flag and whether challenge modules may use it.
pub fn feature_flags() -> Vec<(WasmFeatures, bool)> {
    let allowed = crate::validate::features();
    WasmFeatures::all()
        .iter()
        .map(|flag| (flag, allowed.contains(flag)))
        .collect()
}

/// The deterministic configuration shared by compilation and execution.
pub fn config(allocation: Allocation, policy: &Policy) -> Config {
    config_with_metering(allocation, policy, true)
}

/// The configuration, optionally without fuel. Unmetered engines exist only to measure what
/// metering costs (`platform bench runtime`); their results are never valid evaluations.
pub fn config_with_metering(allocation: Allocation, policy: &Policy, metered: bool) -> Config {
    let mut c = Config::new();
    // Cranelift only: one code generator, so one behaviour.
    c.strategy(Strategy::Cranelift);
    c.cranelift_opt_level(OptLevel::Speed);
    // Fuel makes execution length a deterministic function of the module and input.
    c.consume_fuel(metered);
    c.operator_cost(operator_cost());
    // Floating-point NaNs take one canonical bit pattern on every CPU.
    c.cranelift_nan_canonicalization(true);
    // Wall-clock backstop (local only): epoch interruption, never consulted for results.
    c.epoch_interruption(true);
    // Fixed stack: recursion depth limits do not depend on the host.
    c.max_wasm_stack(MAX_WASM_STACK);
    // Feature set: exactly what rustc emits for wasm32-unknown-unknown (the same set the
    // static validator uses), each flag set explicitly; every other proposal is off. Threads and
    // relaxed SIMD are non-deterministic; the rest is surface we do not need.
    for (flag, enable) in feature_flags() {
        c.wasm_features(flag, enable);
    }
    // Linear memories are reserved up to the policy maximum, so growth never moves them.
    let max_memory = u64::from(policy.max_memory_pages) * 65_536;
    c.memory_reservation(max_memory);
    c.memory_guard_size(64 * 1024 * 1024);
    if allocation == Allocation::Pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_memories(64);
        pool.total_tables(64);
        pool.total_core_instances(64);
        pool.max_memory_size(max_memory as usize);
        pool.table_elements(policy.max_table_elements as usize);
        // Return memory to the kernel in batches: each madvise takes the process-wide
        // memory-map lock, which serializes evaluations running on different threads.
        pool.decommit_batch_size(64);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    } else {
        c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    }
    c
}

/// Builds the engine.
pub fn engine(allocation: Allocation, policy: &Policy) -> Result<Engine, String> {
    Engine::new(&config(allocation, policy))
        .map_err(|e| format!("cannot create the wasm engine: {e}"))
}

/// A digest of our configuration (the cost table and settings above), part of artifact cache
/// keys and evaluation receipts.
pub fn config_hash(policy: &Policy) -> [u8; 32] {
    let description = format!(
        "{:?}|stack={MAX_WASM_STACK}|mem_pages={}|features={:?}",
        operator_cost(),
        policy.max_memory_pages,
        crate::validate::features()
    );
    *blake3::hash(description.as_bytes()).as_bytes()
}
