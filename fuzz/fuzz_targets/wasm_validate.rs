//! Challenge modules from the owner: the static validation every module passes before it is
//! compiled, on raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_runtime::{Policy, validate::validate};

fuzz_target!(|data: &[u8]| {
    let _ = validate(data, &Policy::default());
});
