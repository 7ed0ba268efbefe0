//! Modules for benchmarks and smoke tests of the sandbox itself.

/// Returns 0 at once: the cost of instantiation plus one call.
pub const TRIVIAL_WAT: &str = r#"(module (memory (export "memory") 1 1)
  (func (export "evaluate") (param i32) (result i32) (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

/// A full ABI round trip: reads a 64-byte input, gets and puts a KV entry, writes the output.
pub const FULL_ABI_WAT: &str = r#"(module
  (import "challenge_v1" "input_read" (func $in (param i32 i32 i32) (result i32)))
  (import "challenge_v1" "output_write" (func $out (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_get" (func $get (param i32 i32) (result i32)))
  (import "challenge_v1" "kv_put" (func $put (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "counter")
  (func (export "evaluate") (param $len i32) (result i32)
    (drop (call $in (i32.const 64) (i32.const 0) (local.get $len)))
    (drop (call $get (i32.const 0) (i32.const 7)))
    (drop (call $put (i32.const 0) (i32.const 7) (i32.const 64) (i32.const 8)))
    (i64.store (i32.const 256) (i64.const 1))
    (i32.store (i32.const 264) (i32.const 0))
    (drop (call $out (i32.const 256) (i32.const 12)))
    (i32.const 0))
  (@custom "challenge_abi" "\01\00\00\00"))"#;

/// An input that encodes to exactly 64 bytes (8-byte seed, 4-byte length, 52 bytes).
pub fn input_64() -> crate::EvalInput {
    crate::EvalInput {
        seed: 7,
        payload: vec![1; 52],
    }
}

/// A challenge's assets as its source folder holds them (`<dir>/assets/`, every file in name
/// order; none when there is no such folder): what its owner pins in the metadata and what
/// `asset_read` serves by index.
pub fn challenge_assets(dir: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    let folder = dir.join("assets");
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = std::fs::read_dir(&folder)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    files.sort();
    files.iter().map(std::fs::read).collect()
}
