//! Threads for evaluations, at a lower scheduling priority than the rest of the node.
//!
//! A burst of submissions means minutes of WebAssembly on every committee member. On tokio's
//! blocking pool that work competes on equal terms with the threads that persist votes and
//! drive consensus, and on a busy machine it stalled finalization (16 validators sharing two
//! cores: 40 s gaps while 1,920 evaluations ran). These threads run at nice 10, so the kernel
//! gives consensus the CPU first and evaluations whatever is left. Processes they start (the
//! module compiler) inherit the priority. Lowering a thread's priority cannot be undone without
//! privileges, so they are dedicated threads, never tokio's shared ones.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// How much nicer than the thread that starts them the workers are (nice values top out at
/// 19).
pub const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads; [`Workers::run`] hands one job to them.
pub struct Workers {
    jobs: SyncSender<Job>,
}

impl Workers {
    /// Starts `threads` workers. Jobs beyond what they can take at once wait in a queue of
    /// `queue`; a caller that would overflow it gets an error (callers bound their own
    /// concurrency, so that means a bug, not load).
    pub fn new(name: &str, threads: usize, queue: usize) -> std::io::Result<Workers> {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every sender is gone
                        }
                    }
                })?;
        }
        Ok(Workers { jobs: tx })
    }

    /// Runs `f` on a worker and waits for its result without blocking the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => anyhow::bail!("the evaluation queue is full"),
            Err(TrySendError::Disconnected(_)) => anyhow::bail!("the evaluation workers stopped"),
        }
        rx.await
            .map_err(|_| anyhow::anyhow!("an evaluation worker panicked"))
    }
}

/// Lowers the calling thread's scheduling priority by [`NICE`] (a new thread starts with its
/// creator's). On Linux the nice value belongs to the thread, not the process. Failure leaves
/// the priority as it was. The node's only unsafe code: two system calls without pointers.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid, getpriority and setpriority take no pointers; they act on the calling
    // thread only. getpriority can return -1 as a value, which is at worst a smaller step.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if libc::setpriority(libc::PRIO_PROCESS, tid, (current + NICE).min(19)) != 0 {
            tracing::debug!(
                "could not lower the evaluation thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread (Linux: per thread).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn own_nice() -> i32 {
        // SAFETY: as above.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn jobs_run_on_low_priority_threads_and_the_callers_keep_theirs() {
        let workers = Workers::new("test-eval", 2, 4).unwrap();
        let results: Vec<_> = (0..4u64).map(|i| workers.run(move || i * i)).collect();
        let mut out = Vec::new();
        for r in results {
            out.push(r.await.unwrap());
        }
        assert_eq!(out, vec![0, 1, 4, 9]);
        #[cfg(target_os = "linux")]
        {
            let caller = own_nice();
            let worker = workers.run(own_nice).await.unwrap();
            assert_eq!(worker, (caller + NICE).min(19), "caller at {caller}");
            assert_eq!(own_nice(), caller, "the caller's priority is untouched");
        }
    }
}
