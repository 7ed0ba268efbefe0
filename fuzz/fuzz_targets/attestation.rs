//! Attestations gossiped by committee members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;
use platform_node::evaluator::Evaluator;

fuzz_target!(|data: &[u8]| {
    if let Some(a) = Evaluator::decode(data) {
        round_trip("attestation", data, &a);
        let _ = a.result.digest();
    }
});
