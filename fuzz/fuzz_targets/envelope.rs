//! Gossip envelopes, the first thing ingress decodes from any peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;
use platform_network::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = platform_primitives::decode::<Envelope>("gossip envelope", data, data.len()) {
        round_trip("gossip envelope", data, &env);
    }
});
