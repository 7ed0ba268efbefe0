//! Crash safety of the consensus WAL through the node's own persist path (`WalWriter` over the
//! data directory's database): a process voting as the engine does — a finalize in view `v`
//! and a notarize in `v + 1` queued back to back, votes released only when acknowledged — is
//! killed with SIGKILL at random moments, including between a write and its acknowledgement.
//! After every kill the record on disk must cover every acknowledged vote, so the safety rules
//! restarted from it refuse to sign anything that conflicts with a vote that left.
//!
//! The voting process is this test binary itself, re-run with `WAL_CRASH_DIR` set. It prints
//! `ack <view> <notarized payload byte> <finalized 0|1>` for each vote released.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use platform_consensus::{MacScheme, Proposal, SafetyRules, SafetyState};
use platform_node::{store, wal::WalWriter};
use platform_primitives::{Epoch, Hash, Height, NetUid, View};
use platform_storage::DataDir;

const CHILD_ENV: &str = "WAL_CRASH_DIR";
const KILLS: u64 = 20;
const NETUID: NetUid = NetUid(1);
const EPOCH: Epoch = Epoch(1);

fn proposal(view: u64, payload: u8) -> Proposal {
    Proposal {
        epoch: EPOCH,
        view: View(view),
        height: Height(view),
        parent: Hash::ZERO,
        payload: Hash([payload; 32]),
    }
}

/// Votes until killed (under the parent) or for 200 views (on its own), continuing from the
/// record on disk as a restarted engine does.
#[test]
fn voter() {
    let (dir, bounded) = match std::env::var(CHILD_ENV) {
        Ok(d) => (std::path::PathBuf::from(d), None),
        Err(_) => (tempfile::tempdir().unwrap().keep(), Some(200u64)),
    };
    let data = Arc::new(DataDir::open(&dir).unwrap());
    let start = store::load_wal(data.db()).unwrap();
    let scheme = MacScheme::new(7, 4, Some(0));
    let mut rules = SafetyRules::new(NETUID, EPOCH, 0, start);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut wal = WalWriter::spawn(data.clone()).unwrap();
        let mut token = 0u64;
        // The newest acknowledged token seen.
        let mut seen = 0u64;
        // Votes waiting for their acknowledgement: (token, what to print).
        let mut unreleased: Vec<(u64, String)> = Vec::new();
        let mut view = start.view.0 + 1;
        let pending = |token: &mut u64, state: SafetyState| {
            let line = format!(
                "ack {} {} {}",
                state.view.0,
                state.notarized.map_or(0, |p| p.payload.0[0]),
                u8::from(state.finalized.is_some())
            );
            *token += 1;
            (*token - 1, state, line)
        };
        while bounded.is_none_or(|n| view <= start.view.0 + n) {
            let payload = (view % 251) as u8 + 1;
            let (_, notarize) = rules.notarize(&scheme, proposal(view, payload)).unwrap();
            let (_, finalize) = rules.finalize(&scheme, proposal(view, payload)).unwrap();
            // The finalize of this view and (next turn) the notarize of the next are both in
            // flight before either is acknowledged.
            for state in [notarize, finalize] {
                let (t, state, line) = pending(&mut token, state);
                wal.persist(0, t, state).await.unwrap();
                unreleased.push((t, line));
            }
            if view.is_multiple_of(2) {
                let Some((_, acked)) = wal.acknowledged().await else {
                    panic!("the WAL writer stopped");
                };
                seen = acked;
                let mut out = std::io::stdout().lock();
                for (_, line) in unreleased.iter().filter(|(t, _)| *t <= acked) {
                    writeln!(out, "{line}").unwrap();
                }
                out.flush().unwrap();
                unreleased.retain(|(t, _)| *t > acked);
            }
            view += 1;
        }
        // On its own: wait until the last write is durable before reading the record back
        // (the writer acknowledges asynchronously; the loop above waits only on even views).
        if bounded.is_some() {
            let last = token - 1;
            while seen < last {
                let Some((_, acked)) = wal.acknowledged().await else {
                    panic!("the WAL writer stopped");
                };
                seen = acked;
            }
        }
    });
    if bounded.is_some() {
        let last = store::load_wal(data.db()).unwrap();
        assert!(last.view.0 >= start.view.0 + 199, "{last:?}");
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

/// Released votes of one run: (view, notarized payload byte, finalized).
fn run_child_until_killed(dir: &Path, rng: &mut Rng) -> Vec<(u64, u8, bool)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "voter", "--nocapture", "--test-threads=1"])
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
            if let Some(rest) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ack ")) {
                let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                let _ = tx.send((f[0], f[1] as u8, f[2] == 1));
            }
            line.clear();
        }
    });
    let wait_for = 1 + rng.below(80);
    let mut released = Vec::new();
    while (released.len() as u64) < wait_for {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => released.push(a),
            Err(_) => panic!("the voting child made no progress for 60 s"),
        }
    }
    std::thread::sleep(Duration::from_micros(rng.below(3000)));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    released.extend(rx.try_iter());
    released
}

#[test]
fn sigkill_at_random_moments_never_lets_a_restarted_node_sign_a_conflicting_vote() {
    let seed = std::env::var("WAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x3a1_c0de);
    println!("seed {seed} (set WAL_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let scheme = MacScheme::new(7, 4, Some(0));
    let mut checked = 0;
    for kill in 0..KILLS {
        let released = run_child_until_killed(dir.path(), &mut rng);
        // The process is dead (waited for above): what it left on disk is all there is.
        let stored = {
            let data = DataDir::open(dir.path()).unwrap();
            store::load_wal(data.db()).unwrap()
        };
        let Some(&(view, payload, finalized)) = released.iter().max() else {
            continue;
        };
        assert!(
            stored.view.0 >= view,
            "kill {kill}: the record is at view {} but a vote of view {view} left",
            stored.view.0
        );
        // The rules restarted from the record refuse a second notarize in that view (a view
        // the record is past is closed altogether), and a nullify after a finalize.
        let mut rules = SafetyRules::new(NETUID, EPOCH, 0, stored);
        let other = if payload == 255 { 1 } else { payload + 1 };
        assert!(
            rules.notarize(&scheme, proposal(view, other)).is_none(),
            "kill {kill}: a second notarize in view {view} was signed"
        );
        if finalized {
            assert!(
                rules.nullify(&scheme, View(view)).is_none(),
                "kill {kill}: a nullify after a finalize in view {view} was signed"
            );
        }
        checked += 1;
    }
    assert!(
        checked > KILLS / 2,
        "only {checked} kills came after a released vote"
    );
    println!("{KILLS} kills, {checked} checked against the last released vote");
}
