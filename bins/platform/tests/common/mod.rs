//! Helpers shared by the binary's integration tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Polls `f` every 250 ms until it gives a value; panics after three minutes.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A `platform devnet` running in the background with the example challenges and payloads;
/// SIGTERM (it stops its validators and chain) when dropped.
pub struct Devnet(pub Child);

impl Devnet {
    /// Starts `platform devnet --data-dir dir` with `extra`, output discarded.
    pub fn start(dir: &Path, extra: &[&str]) -> Devnet {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Devnet(
            Command::new(env!("CARGO_BIN_EXE_platform"))
                .args(["devnet", "--data-dir"])
                .arg(dir)
                .arg("--challenges")
                .arg(repo.join("challenges/target/wasm32-unknown-unknown/release"))
                .arg("--payloads")
                .arg(repo.join("scenarios/payloads"))
                .args(extra)
                .env_remove("PLATFORM_DATA_DIR")
                .env_remove("PLATFORM_CHAIN")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// The HTTP API (`host:port`) of the validator named `name` (`alice`, …), once its
    /// config is written.
    pub fn api(dir: &Path, name: &str) -> String {
        wait_for(&format!("{name}'s config"), || {
            let text = std::fs::read_to_string(dir.join(name).join("config.toml")).ok()?;
            let line = text.lines().find(|l| l.starts_with("http ="))?;
            Some(line.split('"').nth(1)?.to_string())
        })
    }
}

/// A devnet that runs until dropped: epochs of `tempo` chain blocks of 500 ms, 200 ms blocks,
/// with `extra` arguments.
pub fn long_devnet(dir: &Path, tempo: &str, extra: &[&str]) -> Devnet {
    let mut args = vec![
        "--epochs",
        "1000",
        "--tempo",
        tempo,
        "--chain-block-ms",
        "500",
        "--block-ms",
        "200",
        "--timeout-secs",
        "600",
    ];
    args.extend(extra);
    Devnet::start(dir, &args)
}

/// The id of a running process whose command line contains `needle`.
pub fn process_id(needle: &str) -> Option<String> {
    std::fs::read_dir("/proc").unwrap().find_map(|e| {
        let e = e.ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(needle)
            .then(|| e.file_name().to_string_lossy().to_string())
    })
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
