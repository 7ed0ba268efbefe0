//! Crash safety of the audit log: a process appending from several threads is killed with
//! SIGKILL at random moments; after every kill the log must verify, reopen, and contain every
//! record whose append had returned.
//!
//! The appending process is this test binary itself, re-run with `AUDIT_CRASH_DIR` set. It
//! prints `ack <seq> <hash>` after each append returns; the parent counts only complete lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use platform_storage::audit::{self, AuditEntry, AuditLog};

const CHILD_ENV: &str = "AUDIT_CRASH_DIR";
const KILLS: u64 = 25;

/// Appends from four threads. Under the parent (env var set) it runs until killed; run on its
/// own it appends a bounded number of records and checks them.
#[test]
fn appender() {
    let (dir, bounded) = match std::env::var(CHILD_ENV) {
        Ok(d) => (std::path::PathBuf::from(d), None),
        Err(_) => (tempfile::tempdir().unwrap().keep(), Some(100u64)),
    };
    let log = AuditLog::open(&dir).unwrap();
    let start = log.len();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let log = &log;
            s.spawn(move || {
                let mut i = 0u64;
                while bounded.is_none_or(|n| i < n) {
                    let a = log
                        .append(AuditEntry::with_fields(
                            "crash.test",
                            "child",
                            &[("t", &t.to_string()), ("i", &i.to_string())],
                        ))
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {} {}", a.seq, a.hash).unwrap();
                    out.flush().unwrap();
                    i += 1;
                }
            });
        }
    });
    drop(log);
    if let Some(n) = bounded {
        assert_eq!(audit::verify(&dir).unwrap().records, start + 4 * n);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A small deterministic generator, so a failing run can be replayed from its printed seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn run_child_until_killed(dir: &Path, rng: &mut Rng) -> Vec<(u64, String)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "appender", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        // Only newline-terminated lines count: a partial line may be a kill mid-print.
        while lines.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ack "))
                && let Some((seq, hash)) = rest.split_once(' ')
            {
                let _ = tx.send((seq.parse::<u64>().unwrap(), hash.to_owned()));
            }
            line.clear();
        }
    });
    // Kill after a random number of acknowledged appends plus a random sub-millisecond delay,
    // so the kill lands at varying points of the append path.
    let wait_for = 1 + rng.below(60);
    let mut acked = Vec::new();
    while (acked.len() as u64) < wait_for {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => acked.push(a),
            Err(_) => panic!("the appending child made no progress for 60 s"),
        }
    }
    std::thread::sleep(Duration::from_micros(rng.below(800)));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    acked.extend(rx.try_iter());
    acked
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let seed = std::env::var("AUDIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_a0d1);
    println!("seed {seed} (set AUDIT_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut torn_seen = 0;
    for kill in 0..KILLS {
        for (seq, hash) in run_child_until_killed(dir.path(), &mut rng) {
            assert!(
                acknowledged.insert(seq, hash).is_none(),
                "seq {seq} acknowledged twice"
            );
        }
        let report = audit::verify(dir.path()).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        if report.torn_bytes > 0 {
            torn_seen += 1;
        }
        // Reopening recovers (cutting a torn tail if there is one) and keeps every ack.
        let log = AuditLog::open(dir.path()).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        let records = log.len();
        drop(log);
        let all = audit::tail(dir.path(), usize::MAX).unwrap();
        assert_eq!(all.len() as u64, records);
        let hashes: Vec<String> = {
            // Recompute each record's hash from its successor's `prev` link and the final hash.
            let mut h: Vec<String> = all.iter().skip(1).map(|r| r.prev.to_hex()).collect();
            h.push(
                audit::verify(dir.path())
                    .unwrap()
                    .last_hash
                    .map(|h| h.to_hex())
                    .unwrap_or_default(),
            );
            h
        };
        for (&seq, hash) in &acknowledged {
            assert!(
                seq < records,
                "kill {kill}: acknowledged record {seq} is missing (log has {records})"
            );
            assert_eq!(
                &hashes[seq as usize], hash,
                "kill {kill}: record {seq} changed"
            );
        }
    }
    println!(
        "{KILLS} kills, {} acknowledged records, {torn_seen} torn tails seen",
        acknowledged.len()
    );
    assert!(acknowledged.len() as u64 >= KILLS);
}
