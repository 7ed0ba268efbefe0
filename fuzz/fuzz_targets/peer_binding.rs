//! The peer binding every connecting peer sends (`Hello`): decode, round trip, and the
//! signature check on whatever decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;
use platform_network::PeerBinding;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = platform_primitives::decode::<PeerBinding>("peer binding", data, data.len()) {
        round_trip("peer binding", data, &b);
    }
});
