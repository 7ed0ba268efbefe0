//! Consensus messages (votes, certificates, fetches) from validators.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_consensus::Message;
use platform_crypto::BlsSignature;
use platform_fuzz::round_trip;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = platform_primitives::decode::<Message<BlsSignature>>(
        "consensus message",
        data,
        platform_consensus::types::MAX_MESSAGE_BYTES,
    ) {
        round_trip("consensus message", data, &m);
        let _ = (m.epoch(), m.view());
    }
});
