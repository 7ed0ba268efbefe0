//! Transactions from gossip, the API and blocks: `Tx::decode` never panics, and what it
//! accepts encodes back to the same bytes (one value, one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = platform_state::Tx::decode(data) {
        round_trip("transaction", data, &tx);
        let _ = tx.hash();
    }
});
