//! Resource policy: what a challenge module may declare and consume.

use borsh::{BorshDeserialize, BorshSerialize};

/// Limits for one challenge. Part of the challenge's signed metadata, so every validator
/// applies the same ones.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Policy {
    /// Largest module, bytes.
    pub max_module_bytes: u32,
    /// Largest declared memory maximum, in 64 KiB pages.
    pub max_memory_pages: u32,
    /// Largest declared table maximum.
    pub max_table_elements: u32,
    /// Most functions (defined and imported).
    pub max_functions: u32,
    /// Most locals in one function.
    pub max_locals: u32,
    /// Most parameters of one function type.
    pub max_params: u32,
    /// Most globals.
    pub max_globals: u32,
    /// Most data segments.
    pub max_data_segments: u32,
    /// Most exports.
    pub max_exports: u32,
    /// Fuel for one call.
    pub fuel: u64,
    /// Largest output, bytes.
    pub max_output_bytes: u32,
    /// Most log entries kept.
    pub max_log_entries: u32,
    /// Most log bytes kept.
    pub max_log_bytes: u32,
    /// Largest KV key, bytes.
    pub max_key_bytes: u32,
    /// Largest KV value, bytes.
    pub max_value_bytes: u32,
    /// Most KV writes (puts and deletes) in one call.
    pub max_kv_writes: u32,
    /// Wall-clock backstop for one call, milliseconds (local only; never consensus).
    pub deadline_ms: u64,
}

/// The slowest rate, in fuel per millisecond, at which an honest validator is assumed to run a
/// challenge (a fuel unit is about one wasm operator; compiled code runs hundreds of millions a
/// second on a current core, so this leaves a wide margin for slow or loaded machines).
pub const MIN_FUEL_PER_MS: u64 = 20_000;

/// The wall-clock backstop for a call with a budget of `fuel`: the time the slowest honest
/// validator needs to burn all of it, and at least 10 s. A validator whose backstop fires has
/// no result and abstains; it never attests a deadline.
pub fn deadline_for_fuel(fuel: u64) -> u64 {
    (fuel / MIN_FUEL_PER_MS).max(10_000)
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_module_bytes: 4 * 1024 * 1024,
            max_memory_pages: 512, // 32 MiB
            max_table_elements: 10_000,
            max_functions: 20_000,
            max_locals: 2_000,
            max_params: 64,
            max_globals: 1_000,
            max_data_segments: 1_000,
            max_exports: 64,
            fuel: 2_000_000_000,
            max_output_bytes: 64 * 1024,
            max_log_entries: 100,
            max_log_bytes: 16 * 1024,
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_kv_writes: 1_000,
            deadline_ms: deadline_for_fuel(2_000_000_000),
        }
    }
}
