//! Secret URIs (config files, `--hotkey`) and Bittensor wallet key files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform_crypto::{WalletFile, parse_suri};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_suri(text);
    }
    let _ = WalletFile::load("fuzz", data);
});
