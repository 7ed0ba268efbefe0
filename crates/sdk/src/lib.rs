//! The challenge SDK: what a challenge module needs to talk to Platform's runtime (ABI v1).
//!
//! ```ignore
//! use platform_challenge_sdk::{EvalInput, EvalOutput, challenge};
//!
//! fn evaluate(input: EvalInput) -> EvalOutput {
//!     EvalOutput { score: 1_000_000_000, details: Vec::new() }
//! }
//! fn validate(input: &EvalInput) -> bool { !input.payload.is_empty() }
//!
//! challenge!(evaluate: evaluate, validate: validate);
//! ```
//!
//! The macro exports `evaluate` (and `validate`), and emits the `challenge_abi` custom section.
//! The allocator hands out the module's initial memory before it calls `memory.grow`. A panic
//! ends the call through the host's `abort` with the panic message.
//!
//! Challenge modules are built for `wasm32-unknown-unknown`. On other targets the host calls are
//! stand-ins that panic, which lets challenge crates share pure code with host-side tools.
//! Like the runtime, this crate uses `unsafe`: for the imported host functions and the
//! allocator, nowhere else.

#![no_std]

extern crate alloc;

use alloc::vec::Vec;

pub use borsh;
use borsh::{BorshDeserialize, BorshSerialize};

/// The ABI version this SDK speaks.
pub const ABI_VERSION: u32 = 1;

/// The evaluation input (mirrors `platform_runtime::EvalInput`; both are golden-tested).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EvalInput {
    /// Deterministic seed.
    pub seed: u64,
    /// The miner's payload.
    pub payload: Vec<u8>,
}

/// The evaluation output (mirrors `platform_runtime::EvalOutput`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EvalOutput {
    /// Fixed-point score: 1_000_000_000 is 1.0.
    pub score: u64,
    /// Challenge-defined details.
    pub details: Vec<u8>,
}

/// One unit of score (1.0).
pub const SCORE_ONE: u64 = 1_000_000_000;

#[cfg(target_arch = "wasm32")]
mod sys {
    #[link(wasm_import_module = "challenge_v1")]
    unsafe extern "C" {
        pub fn input_read(ptr: *mut u8, offset: u32, len: u32) -> i32;
        pub fn output_write(ptr: *const u8, len: u32) -> i32;
        pub fn kv_get(key: *const u8, key_len: u32) -> i32;
        pub fn register_read(ptr: *mut u8, offset: u32, len: u32) -> i32;
        pub fn kv_put(key: *const u8, key_len: u32, value: *const u8, value_len: u32) -> i32;
        pub fn kv_delete(key: *const u8, key_len: u32) -> i32;
        pub fn log(ptr: *const u8, len: u32) -> i32;
        pub fn abort(ptr: *const u8, len: u32);
        pub fn asset_read(index: u32, ptr: *mut u8, offset: u32, len: u32) -> i32;
    }
}

/// Host stand-ins with the same signatures: challenge crates also build for the host (sample
/// generators, tests of pure code), where the runtime's imports do not exist.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod sys {
    fn host_only() -> ! {
        panic!("Platform challenge host calls exist only inside the wasm32 runtime")
    }
    pub unsafe fn input_read(_: *mut u8, _: u32, _: u32) -> i32 {
        host_only()
    }
    pub unsafe fn output_write(_: *const u8, _: u32) -> i32 {
        host_only()
    }
    pub unsafe fn kv_get(_: *const u8, _: u32) -> i32 {
        host_only()
    }
    pub unsafe fn register_read(_: *mut u8, _: u32, _: u32) -> i32 {
        host_only()
    }
    pub unsafe fn kv_put(_: *const u8, _: u32, _: *const u8, _: u32) -> i32 {
        host_only()
    }
    pub unsafe fn kv_delete(_: *const u8, _: u32) -> i32 {
        host_only()
    }
    pub unsafe fn log(_: *const u8, _: u32) -> i32 {
        0
    }
    pub unsafe fn abort(ptr: *const u8, len: u32) {
        // SAFETY: callers pass a live string.
        let msg = unsafe {
            core::str::from_utf8_unchecked(core::slice::from_raw_parts(ptr, len as usize))
        };
        panic!("{msg}")
    }
    pub unsafe fn asset_read(_: u32, _: *mut u8, _: u32, _: u32) -> i32 {
        host_only()
    }
}

#[cfg(target_arch = "wasm32")]
mod heap {
    //! A bump allocator: challenge calls are short-lived, so memory is never freed. It uses the
    //! initial memory above `__heap_base` first and grows memory only when that runs out.
    use core::alloc::{GlobalAlloc, Layout};
    use core::arch::wasm32::{memory_grow, memory_size};
    use core::cell::UnsafeCell;

    unsafe extern "C" {
        static __heap_base: u8;
    }

    pub struct Bump(UnsafeCell<(usize, usize)>);

    // SAFETY: wasm32 modules run single-threaded here (threads are disabled by the runtime).
    unsafe impl Sync for Bump {}

    #[global_allocator]
    static ALLOCATOR: Bump = Bump(UnsafeCell::new((0, 0)));

    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: single-threaded; the cell is only touched here.
            let state = unsafe { &mut *self.0.get() };
            if state.1 == 0 {
                state.0 = core::ptr::addr_of!(__heap_base) as usize;
                state.1 = memory_size(0) * 65_536;
            }
            let start = (state.0 + layout.align() - 1) & !(layout.align() - 1);
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > state.1 {
                let pages = (end - state.1).div_ceil(65_536);
                if memory_grow(0, pages) == usize::MAX {
                    return core::ptr::null_mut();
                }
                state.1 += pages * 65_536;
            }
            state.0 = end;
            start as *mut u8
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let message = alloc::format!("{info}");
        super::abort(&message)
    }
}

/// Reads the whole input (`len` as passed to the export) and decodes it.
pub fn read_input(len: i32) -> EvalInput {
    let mut buf = alloc::vec![0u8; len.max(0) as usize];
    // SAFETY: the buffer is `len` bytes long.
    unsafe { sys::input_read(buf.as_mut_ptr(), 0, buf.len() as u32) };
    match EvalInput::try_from_slice(&buf) {
        Ok(input) => input,
        Err(_) => abort("malformed evaluation input"),
    }
}

/// Writes the output (once per call).
pub fn write_output(output: &EvalOutput) {
    let bytes = borsh::to_vec(output).unwrap_or_default();
    // SAFETY: pointer and length describe `bytes`.
    unsafe { sys::output_write(bytes.as_ptr(), bytes.len() as u32) };
}

/// Appends a log line (kept up to the policy's caps; diagnostics only).
pub fn log(message: &str) {
    // SAFETY: pointer and length describe `message`.
    unsafe { sys::log(message.as_ptr(), message.len() as u32) };
}

/// Ends the call with a trap carrying `message`.
pub fn abort(message: &str) -> ! {
    // SAFETY: pointer and length describe `message`; abort does not return.
    unsafe { sys::abort(message.as_ptr(), message.len() as u32) };
    unreachable!("abort returned")
}

/// The challenge's key-value state: reads see this call's writes; writes are buffered by the
/// host and committed only if the call succeeds.
pub mod kv {
    use super::*;

    /// The value stored under `key`.
    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        // SAFETY: pointers and lengths describe live buffers.
        unsafe {
            let len = sys::kv_get(key.as_ptr(), key.len() as u32);
            if len < 0 {
                return None;
            }
            let mut value = alloc::vec![0u8; len as usize];
            sys::register_read(value.as_mut_ptr(), 0, len as u32);
            Some(value)
        }
    }

    /// Stores `value` under `key`.
    pub fn put(key: &[u8], value: &[u8]) {
        // SAFETY: pointers and lengths describe live buffers.
        unsafe {
            sys::kv_put(
                key.as_ptr(),
                key.len() as u32,
                value.as_ptr(),
                value.len() as u32,
            )
        };
    }

    /// Deletes `key`.
    pub fn delete(key: &[u8]) {
        // SAFETY: pointer and length describe `key`.
        unsafe { sys::kv_delete(key.as_ptr(), key.len() as u32) };
    }

    /// A Borsh value under `key` (`None` if absent or not decodable).
    pub fn get_borsh<T: BorshDeserialize>(key: &[u8]) -> Option<T> {
        get(key).and_then(|v| T::try_from_slice(&v).ok())
    }

    /// Stores a Borsh value under `key`.
    pub fn put_borsh<T: BorshSerialize>(key: &[u8], value: &T) {
        put(key, &borsh::to_vec(value).unwrap_or_default())
    }
}

/// Reads asset `index` (declared in the challenge metadata), or `None` if there is none.
pub fn asset(index: u32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = alloc::vec![0u8; 64 * 1024];
    loop {
        // SAFETY: the chunk buffer is valid for its length.
        let n = unsafe {
            sys::asset_read(
                index,
                chunk.as_mut_ptr(),
                out.len() as u32,
                chunk.len() as u32,
            )
        };
        if n < 0 {
            return None;
        }
        out.extend_from_slice(&chunk[..n as usize]);
        if (n as usize) < chunk.len() {
            return Some(out);
        }
    }
}

#[doc(hidden)]
pub fn __run_evaluate(len: i32, f: fn(EvalInput) -> EvalOutput) -> i32 {
    let output = f(read_input(len));
    write_output(&output);
    0
}

#[doc(hidden)]
pub fn __run_validate(len: i32, f: fn(&EvalInput) -> bool) -> i32 {
    if f(&read_input(len)) { 0 } else { 1 }
}

/// Exports the challenge's entry points and its `challenge_abi` section. `evaluate` is
/// required; `validate`, `query` (read-only questions) and `weights` (custom scoring at epoch
/// close) are optional and must appear in this order.
#[macro_export]
macro_rules! challenge {
    (
        evaluate: $evaluate:path
        $(, validate: $validate:path)?
        $(, query: $query:path)?
        $(, weights: $weights:path)?
        $(,)?
    ) => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(export_name = "evaluate")]
        pub extern "C" fn __platform_challenge_evaluate(len: i32) -> i32 {
            $crate::__run_evaluate(len, $evaluate)
        }
        $(
            #[cfg(target_arch = "wasm32")]
            #[unsafe(export_name = "validate")]
            pub extern "C" fn __platform_challenge_validate(len: i32) -> i32 {
                $crate::__run_validate(len, $validate)
            }
        )?
        $(
            #[cfg(target_arch = "wasm32")]
            #[unsafe(export_name = "query")]
            pub extern "C" fn __platform_challenge_query(len: i32) -> i32 {
                $crate::__run_evaluate(len, $query)
            }
        )?
        $(
            #[cfg(target_arch = "wasm32")]
            #[unsafe(export_name = "weights")]
            pub extern "C" fn __platform_challenge_weights(len: i32) -> i32 {
                $crate::__run_evaluate(len, $weights)
            }
        )?
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "challenge_abi")]
        #[used]
        static CHALLENGE_ABI: [u8; 4] = $crate::ABI_VERSION.to_le_bytes();
        // On the host the entry points are not exported; keep the functions referenced.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn($crate::EvalInput) -> $crate::EvalOutput = $evaluate;
        $(
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn(&$crate::EvalInput) -> bool = $validate;
        )?
        $(
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn($crate::EvalInput) -> $crate::EvalOutput = $query;
        )?
        $(
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn($crate::EvalInput) -> $crate::EvalOutput = $weights;
        )?
    };
}
