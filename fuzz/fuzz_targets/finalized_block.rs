//! Finalized blocks served by peers at sync (block, proposal, certificate, seals).
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;
use platform_node::store::FinalizedBlock;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) =
        platform_primitives::decode::<FinalizedBlock>("finalized block", data, data.len())
    {
        round_trip("finalized block", data, &f);
    }
});
