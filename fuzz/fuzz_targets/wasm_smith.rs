//! Challenge modules from the owner, as `wasm-smith` generates them (valid modules of every
//! shape, far past what random bytes reach): the static validation decides on each without
//! panicking, and a module it accepts declares no more memory than the policy allows.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use platform_runtime::{Policy, validate::validate};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // Mostly within the features challenge modules may use, so that generated modules get past
    // the first checks; the rest are left to chance through `arbitrary` bytes.
    let config = wasm_smith::Config {
        exceptions_enabled: false,
        gc_enabled: false,
        memory64_enabled: false,
        relaxed_simd_enabled: false,
        simd_enabled: false,
        tail_call_enabled: false,
        threads_enabled: false,
        wide_arithmetic_enabled: false,
        extended_const_enabled: false,
        max_imports: 4,
        max_memory32_bytes: 64 << 20,
        ..wasm_smith::Config::default()
    };
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        return;
    };
    let bytes = module.to_bytes();
    let policy = Policy::default();
    if validate(&bytes, &policy).is_err() {
        return;
    }
    // Accepted: every memory it defines has a maximum within the policy.
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let Ok(wasmparser::Payload::MemorySection(memories)) = payload {
            for memory in memories.into_iter().flatten() {
                let max = memory.maximum.expect("accepted memories declare a maximum");
                assert!(
                    max <= u64::from(policy.max_memory_pages),
                    "accepted a memory of {max} pages"
                );
            }
        }
    }
});
