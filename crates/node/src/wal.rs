//! The consensus WAL's one writer.
//!
//! The engine releases a vote only once the safety state that records it is durable, and it
//! releases *every* vote up to the acknowledged token. That is sound only if the writes land
//! in the order the engine asked for them and are acknowledged in that order: two writes in
//! flight at once (a finalize in view `v`, a notarize in `v + 1`) that commit in the wrong order
//! would leave the older record on disk while both votes are out, and after `kill -9` the node
//! could sign a vote that conflicts with one it already sent.
//!
//! So one dedicated thread owns every write of the record, first in, first out:
//!
//! - **In order.** Requests are queued (bounded; the driver waits when the queue is full) and
//!   written one after the other. When several are queued the thread writes only the newest —
//!   each record contains everything the earlier ones did — and then acknowledges all of them.
//! - **Acknowledged in order, cumulatively.** The acknowledgement is the newest durable
//!   `(generation, token)`, published through a `watch` cell: it never blocks the writer and
//!   never loses the latest value, and the engine's `Persisted(t)` releases every vote up to
//!   `t` anyway.
//! - **Never backwards.** A record that would move the stored one back (an older epoch or view,
//!   or a view's votes forgotten) is refused and not acknowledged; neither is anything after a
//!   refused or failed write of the same engine generation, since acknowledging a later token
//!   would release the vote whose record never landed.
//! - **Off the async runtime.** The fsync runs on this thread, never on a tokio worker and never
//!   on the blocking pool that serves peers.

use std::sync::Arc;

use platform_consensus::SafetyState;
use platform_storage::DataDir;
use tokio::sync::{mpsc, watch};

use crate::store;

/// Requests waiting for the writer before the driver has to wait.
const QUEUE: usize = 256;

/// The newest durable write: `(engine generation, token)`.
pub type Acknowledged = Option<(u64, u64)>;

/// One write of the safety state, from the engine of `generation`.
#[derive(Debug)]
struct Request {
    generation: u64,
    token: u64,
    state: SafetyState,
}

/// The handle the driver writes through.
pub struct WalWriter {
    queue: mpsc::Sender<Request>,
    acknowledged: watch::Receiver<Acknowledged>,
}

/// Whether `next` may replace `stored` as the durable record: a later epoch, a later view of
/// the same epoch, or the same view with every vote `stored` records still recorded.
pub fn advances(stored: &SafetyState, next: &SafetyState) -> bool {
    match (next.epoch, next.view).cmp(&(stored.epoch, stored.view)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            (stored.notarized.is_none() || stored.notarized == next.notarized)
                && (!stored.nullified || next.nullified)
                && (stored.finalized.is_none() || stored.finalized == next.finalized)
        }
    }
}

impl WalWriter {
    /// Starts the writer thread over `dir`'s database; the record on disk is the starting
    /// point that every write must advance.
    pub fn spawn(dir: Arc<DataDir>) -> std::io::Result<WalWriter> {
        let stored = store::load_wal(dir.db()).map_err(std::io::Error::other)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let (ack, acknowledged) = watch::channel(None);
        std::thread::Builder::new()
            .name("consensus-wal".into())
            .spawn(move || {
                write_in_order(rx, stored, ack, |state| {
                    store::save_wal(dir.db(), state).map_err(|e| e.to_string())
                })
            })?;
        Ok(WalWriter {
            queue,
            acknowledged,
        })
    }

    /// Queues a write; waits while the queue is full. An error means the writer has stopped.
    pub async fn persist(
        &self,
        generation: u64,
        token: u64,
        state: SafetyState,
    ) -> Result<(), &'static str> {
        self.queue
            .send(Request {
                generation,
                token,
                state,
            })
            .await
            .map_err(|_| "the consensus WAL writer has stopped")
    }

    /// Waits for the next acknowledgement and returns the newest one (`None` once the writer
    /// has stopped).
    pub async fn acknowledged(&mut self) -> Option<(u64, u64)> {
        self.acknowledged.changed().await.ok()?;
        *self.acknowledged.borrow_and_update()
    }
}

/// The writer's loop: takes every queued request, refuses the ones that would move the record
/// back, writes the newest of the rest once, and acknowledges them.
fn write_in_order(
    mut rx: mpsc::Receiver<Request>,
    mut stored: SafetyState,
    ack: watch::Sender<Acknowledged>,
    mut write: impl FnMut(&SafetyState) -> Result<(), String>,
) {
    // The generation whose writes stopped being acknowledged (a refused or failed write).
    let mut stuck: Option<u64> = None;
    let mut batch = Vec::new();
    while rx.blocking_recv_many(&mut batch, QUEUE) > 0 {
        let mut newest: Option<SafetyState> = None;
        let mut last: Acknowledged = None;
        for r in batch.drain(..) {
            if stuck == Some(r.generation) {
                continue;
            }
            let base = newest.as_ref().unwrap_or(&stored);
            if !advances(base, &r.state) {
                tracing::error!(
                    token = r.token,
                    view = r.state.view.0,
                    stored_view = base.view.0,
                    "refusing a consensus WAL write that would move the record backwards; this \
                     engine's later votes are held"
                );
                stuck = Some(r.generation);
                continue;
            }
            newest = Some(r.state);
            last = Some((r.generation, r.token));
        }
        let Some(state) = newest else {
            continue;
        };
        match write(&state) {
            Ok(()) => {
                stored = state;
                if ack.send(last).is_err() {
                    return; // the driver is gone
                }
            }
            Err(e) => {
                // Without a durable record the votes are never released.
                tracing::error!("consensus WAL write failed: {e}; this engine's votes are held");
                stuck = last.map(|(g, _)| g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform_consensus::Proposal;
    use platform_primitives::{Epoch, Hash, Height, View};

    fn proposal(view: u64) -> Proposal {
        Proposal {
            epoch: Epoch(1),
            view: View(view),
            height: Height(view),
            parent: Hash::ZERO,
            payload: Hash([view as u8; 32]),
        }
    }

    fn notarized(view: u64) -> SafetyState {
        SafetyState {
            epoch: Epoch(1),
            view: View(view),
            notarized: Some(proposal(view)),
            nullified: false,
            finalized: None,
        }
    }

    fn finalized(view: u64) -> SafetyState {
        SafetyState {
            finalized: Some(proposal(view)),
            ..notarized(view)
        }
    }

    #[test]
    fn a_record_advances_only_forward() {
        assert!(advances(&notarized(3), &finalized(3)));
        assert!(advances(&finalized(3), &notarized(4)));
        assert!(!advances(&notarized(4), &finalized(3)), "an older view");
        assert!(!advances(&finalized(3), &notarized(3)), "a vote forgotten");
        let nullified = SafetyState {
            nullified: true,
            ..notarized(3)
        };
        assert!(advances(&notarized(3), &nullified));
        assert!(!advances(&nullified, &notarized(3)));
        let later_epoch = SafetyState {
            epoch: Epoch(2),
            view: View(1),
            ..SafetyState::default()
        };
        assert!(advances(&notarized(9), &later_epoch));
        assert!(!advances(&later_epoch, &notarized(9)));
    }

    /// Runs the writer loop over `requests` (all queued before it starts, as when writes pile
    /// up behind a slow fsync) with `write` as the disk; returns what was written and the last
    /// acknowledgement.
    fn run(requests: Vec<(u64, u64, SafetyState)>) -> (Vec<SafetyState>, Acknowledged) {
        let (tx, rx) = mpsc::channel(QUEUE);
        for (generation, token, state) in requests {
            tx.try_send(Request {
                generation,
                token,
                state,
            })
            .unwrap();
        }
        drop(tx);
        let (ack, seen) = watch::channel(None);
        let mut written = Vec::new();
        write_in_order(rx, SafetyState::default(), ack, |s| {
            written.push(*s);
            Ok(())
        });
        (written, *seen.borrow())
    }

    #[test]
    fn queued_writes_are_coalesced_to_the_newest_and_acknowledged_together() {
        let (written, ack) = run(vec![
            (0, 0, notarized(1)),
            (0, 1, finalized(1)),
            (0, 2, notarized(2)),
        ]);
        assert_eq!(written, vec![notarized(2)]);
        assert_eq!(ack, Some((0, 2)));
    }

    #[test]
    fn a_write_that_would_move_the_record_back_is_refused_and_holds_the_rest() {
        // The order two racing writes could land in: the newer view first.
        let (written, ack) = run(vec![
            (0, 0, notarized(2)),
            (0, 1, finalized(1)),
            (0, 2, finalized(2)),
        ]);
        assert_eq!(written, vec![notarized(2)]);
        // Token 1's record never landed, so token 2 (which would release it) is not
        // acknowledged either.
        assert_eq!(ack, Some((0, 0)));
    }

    #[test]
    fn a_failed_write_is_never_acknowledged_nor_are_later_ones_of_its_engine() {
        use std::sync::mpsc as std_mpsc;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (ack, seen) = watch::channel(None);
        // The disk: each write is reported, then waits for the outcome the test gives it.
        let (calls_tx, calls) = std_mpsc::channel::<SafetyState>();
        let (outcome, outcomes) = std_mpsc::channel::<Result<(), String>>();
        let writer = std::thread::spawn(move || {
            write_in_order(rx, SafetyState::default(), ack, move |s| {
                calls_tx.send(*s).unwrap();
                outcomes.recv().unwrap()
            })
        });
        let send = |generation, token, state| {
            tx.blocking_send(Request {
                generation,
                token,
                state,
            })
            .unwrap()
        };
        let written = |want: SafetyState| {
            let got = calls
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("a write");
            assert_eq!(got, want);
        };
        let mut acks = seen.clone();
        let mut next_ack = || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !acks.has_changed().unwrap() {
                assert!(std::time::Instant::now() < deadline, "no acknowledgement");
                std::thread::yield_now();
            }
            *acks.borrow_and_update()
        };
        send(0, 0, notarized(1));
        written(notarized(1));
        outcome.send(Ok(())).unwrap();
        assert_eq!(next_ack(), Some((0, 0)));
        send(0, 1, finalized(1));
        written(finalized(1));
        // Queued behind the failing write; must never be acknowledged.
        send(0, 2, notarized(2));
        outcome.send(Err("disk full".into())).unwrap();
        // A new engine (the next epoch) writes again, and only its write reaches the disk.
        let next = SafetyState {
            epoch: Epoch(2),
            view: View(1),
            ..SafetyState::default()
        };
        send(1, 0, next);
        written(next);
        outcome.send(Ok(())).unwrap();
        assert_eq!(
            next_ack(),
            Some((1, 0)),
            "nothing of generation 0 after the failure"
        );
        drop(tx);
        writer.join().unwrap();
        assert!(calls.try_recv().is_err(), "notarized(2) was never written");
    }

    #[test]
    fn the_writer_thread_persists_in_order_through_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = Arc::new(DataDir::open(dir.path()).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut w = WalWriter::spawn(data.clone()).unwrap();
            for (t, s) in [notarized(1), finalized(1), notarized(2)]
                .into_iter()
                .enumerate()
            {
                w.persist(0, t as u64, s).await.unwrap();
            }
            while w.acknowledged().await != Some((0, 2)) {}
        });
        assert_eq!(store::load_wal(data.db()).unwrap(), notarized(2));
    }
}
