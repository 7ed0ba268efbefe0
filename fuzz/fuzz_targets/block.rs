//! Blocks fetched from peers: `Block::decode` never panics and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = platform_state::Block::decode(data) {
        round_trip("block", data, &block);
        let _ = block.header.hash();
    }
});
