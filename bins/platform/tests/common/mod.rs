//! Helpers shared by the binary's integration tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

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

/// A plain HTTP GET of a node's API (`host:port`); the body as JSON, or `None` if the node
/// does not answer with 200.
pub fn get(api: &str, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&get_text(api, path)?).ok()
}

/// A plain HTTP GET of a node's API (`host:port`); the body as text, or `None` if the node
/// does not answer with 200.
pub fn get_text(api: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(api).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
