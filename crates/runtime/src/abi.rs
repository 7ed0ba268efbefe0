//! Challenge ABI v1: the host functions a module may import, and the input and output formats.
//!
//! The module exports `memory` and `evaluate(input_len: i32) -> i32` (0 = success), and may
//! export `validate`, `query` and `weights` with the same shape. The host never calls into the
//! guest during a host call. Inputs and outputs are Borsh.

use borsh::{BorshDeserialize, BorshSerialize};
use wasmparser::ValType;

/// The import module name.
pub const HOST_MODULE: &str = "challenge_v1";
/// The custom section that declares the ABI version.
pub const ABI_SECTION: &str = "challenge_abi";
/// This ABI's version, stored little-endian in the section.
pub const ABI_VERSION: u32 = 1;

/// Fuel charged by every host call before it does any work.
pub const HOST_CALL_FUEL: u64 = 200;
/// Fuel charged per byte a host call moves.
pub const HOST_BYTE_FUEL: u64 = 1;

/// The parameter and result types of each host function, or `None` if it is not part of v1.
pub fn host_signature(name: &str) -> Option<(Vec<ValType>, Vec<ValType>)> {
    use ValType::I32;
    let (params, results): (&[ValType], &[ValType]) = match name {
        // (dst_ptr, offset, len) -> bytes copied
        "input_read" => (&[I32, I32, I32], &[I32]),
        // (ptr, len) -> 0
        "output_write" => (&[I32, I32], &[I32]),
        // (key_ptr, key_len) -> value length, or -1 if absent; the value goes to the register
        "kv_get" => (&[I32, I32], &[I32]),
        // (dst_ptr, offset, len) -> bytes copied from the register
        "register_read" => (&[I32, I32, I32], &[I32]),
        // (key_ptr, key_len, value_ptr, value_len) -> 0
        "kv_put" => (&[I32, I32, I32, I32], &[I32]),
        // (key_ptr, key_len) -> 0
        "kv_delete" => (&[I32, I32], &[I32]),
        // (ptr, len) -> 0 (kept), 1 (dropped: log caps reached)
        "log" => (&[I32, I32], &[I32]),
        // (ptr, len): ends the call with a trap
        "abort" => (&[I32, I32], &[]),
        // (asset_index, dst_ptr, offset, len) -> bytes copied, or -1 if there is no such asset
        "asset_read" => (&[I32, I32, I32, I32], &[I32]),
        _ => return None,
    };
    Some((params.to_vec(), results.to_vec()))
}

/// What `evaluate` and `validate` read with `input_read`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EvalInput {
    /// Deterministic seed (derived from the block beacon and submission id on the network).
    pub seed: u64,
    /// The miner's payload.
    pub payload: Vec<u8>,
}

/// What `evaluate` writes with `output_write`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EvalOutput {
    /// The score (fixed point, `platform_primitives::Score`).
    pub score: u64,
    /// Challenge-defined details.
    pub details: Vec<u8>,
}
