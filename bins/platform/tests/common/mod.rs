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

/// A node's server-sent status events (`GET /api/v1/events`): each is its status as JSON,
/// sent whenever it changes.
pub struct StatusEvents(std::io::BufReader<TcpStream>);

impl StatusEvents {
    /// Opens the stream of the node at `api` (`host:port`).
    pub fn open(api: &str) -> StatusEvents {
        let mut s = TcpStream::connect(api).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
        StatusEvents(std::io::BufReader::new(s))
    }

    /// Blocks until the next status arrives.
    pub fn next(&mut self) -> serde_json::Value {
        use std::io::BufRead;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .0
                .read_line(&mut line)
                .expect("the node's status events");
            assert!(n > 0, "the node closed its status events");
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(v) = serde_json::from_str(data.trim())
            {
                return v;
            }
        }
    }
}

/// Waits until the node at `api` reports a status for which `f` gives a value, re-checking on
/// each of its status events; panics after three minutes.
pub fn wait_for_status<T>(
    api: &str,
    what: &str,
    mut f: impl FnMut(&serde_json::Value) -> Option<T>,
) -> T {
    let end = Instant::now() + Duration::from_secs(180);
    let mut events = StatusEvents::open(api);
    loop {
        if let Some(v) = f(&events.next()) {
            return v;
        }
        assert!(Instant::now() < end, "gave up waiting for {what}");
    }
}

/// A `platform devnet` running in the background with the example challenges and payloads;
/// SIGTERM (it stops its validators and chain) when dropped.
pub struct Devnet {
    child: Child,
    /// The validators' API addresses (`host:port`), in the order the devnet printed them.
    apis: std::sync::mpsc::Receiver<String>,
    known: Vec<String>,
}

impl Devnet {
    /// Starts `platform devnet --data-dir dir` with `extra`; its output is read for the
    /// validators' addresses and otherwise discarded.
    pub fn start(dir: &Path, extra: &[&str]) -> Devnet {
        use std::io::BufRead;
        let mut child = devnet_command(dir, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, apis) = std::sync::mpsc::channel();
        // Reads every line (so the devnet never blocks on a full pipe) until it exits.
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(i) = line.find("http://127.0.0.1:")
                    && let Some(end) = line[i..].find("/api/v1/status")
                {
                    let _ = tx.send(line[i + 7..i + end].to_string());
                }
            }
        });
        Devnet {
            child,
            apis,
            known: Vec::new(),
        }
    }

    /// The HTTP API (`host:port`) of the validator named `name` (`alice`, `bob`, `charlie`,
    /// `dave`), as the devnet prints it once its validators are up.
    pub fn api(&mut self, name: &str) -> String {
        let i = ["alice", "bob", "charlie", "dave"]
            .iter()
            .position(|n| *n == name)
            .expect("a dev validator's name");
        while self.known.len() <= i {
            let api = self
                .apis
                .recv_timeout(Duration::from_secs(180))
                .unwrap_or_else(|_| panic!("the devnet never printed {name}'s address"));
            self.known.push(api);
        }
        self.known[i].clone()
    }
}

/// `platform devnet --data-dir dir` with the example challenges and payloads and `extra`, no
/// `PLATFORM_DATA_DIR` or `PLATFORM_CHAIN` from the environment, and no stdin.
pub fn devnet_command(dir: &Path, extra: &[&str]) -> Command {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c = Command::new(env!("CARGO_BIN_EXE_platform"));
    c.args(["devnet", "--data-dir"])
        .arg(dir)
        .arg("--challenges")
        .arg(repo.join("challenges/target/wasm32-unknown-unknown/release"))
        .arg("--payloads")
        .arg(repo.join("scenarios/payloads"))
        .args(extra)
        .env_remove("PLATFORM_DATA_DIR")
        .env_remove("PLATFORM_CHAIN")
        .stdin(Stdio::null());
    c
}

/// Sends SIGKILL to process `pid`.
pub fn sigkill(pid: &str) {
    assert!(
        Command::new("kill")
            .args(["-KILL", pid])
            .status()
            .unwrap()
            .success(),
        "kill -KILL {pid}"
    );
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

impl Devnet {
    /// Sends SIGTERM and waits up to `deadline` for the devnet to exit; whether it did (if
    /// not, it is killed).
    pub fn terminate(&mut self, deadline: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let (exited, wait) = std::sync::mpsc::channel::<()>();
        let child = &mut self.child;
        std::thread::scope(|s| {
            s.spawn(move || {
                let _ = child.wait();
                let _ = exited.send(());
            });
            let in_time = wait.recv_timeout(deadline).is_ok();
            if !in_time {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            in_time
        })
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // A watchdog kills it if it has not exited 30 s after SIGTERM.
        let (done, exited) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if exited.recv_timeout(Duration::from_secs(30)).is_err() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        });
        let _ = self.child.wait();
        let _ = done.send(());
        let _ = watchdog.join();
    }
}
