//! Helpers shared by the binary's integration tests.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `platform` with `args` (and no `PLATFORM_DATA_DIR` or `PLATFORM_CHAIN` from the
/// environment) and collects its output.
pub fn platform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platform"))
        .args(args)
        .env_remove("PLATFORM_DATA_DIR")
        .env_remove("PLATFORM_CHAIN")
        .output()
        .unwrap()
}

/// stdout as JSON; on failure, panics with stdout and stderr.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}
