//! The body of `POST /api/v1/submissions`, from anyone on the internet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_fuzz::round_trip;
use platform_node::api::SubmissionRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) =
        platform_primitives::decode::<SubmissionRequest>("submission request", data, data.len())
    {
        round_trip("submission request", data, &r);
    }
});
