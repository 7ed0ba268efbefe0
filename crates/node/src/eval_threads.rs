//! The evaluation threads: a fixed set of threads, at a lower scheduling priority than the
//! rest of the node, that run challenge code.
//!
//! An epoch's first burst of submissions gives every committee member seconds of CPU work per
//! submission. On the blocking pool that work competed with consensus as an equal: on a
//! machine running many validators it stalled finalization for tens of seconds and let API
//! requests time out. Here it runs on `[evaluation] workers` threads whose nice value is
//! raised to `[evaluation] nice` (`platform_runtime::priority`), so the scheduler gives
//! consensus, the network and the API the CPU first and evaluations what is left (modules are
//! loaded — compiled on first use — before, at the node's own priority). Results do
//! not depend on speed (fuel, not time, bounds a module); only the wall-clock backstop does,
//! and it is sized for the slowest honest validator.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Why a job did not run to its end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    /// The threads have stopped.
    #[error("the evaluation threads have stopped")]
    Stopped,
    /// The job panicked (its thread lives on).
    #[error("the evaluation panicked")]
    Panicked,
}

/// A fixed set of low-priority threads.
pub struct EvalThreads {
    jobs: SyncSender<Job>,
    /// One permit per thread: a job holds one from before it is queued until it ends, so
    /// the queue never holds more jobs than there are threads.
    slots: Arc<Semaphore>,
}

impl EvalThreads {
    /// Starts `threads` threads (at least one) at nice value `nice`.
    pub fn start(threads: usize, nice: u8) -> std::io::Result<EvalThreads> {
        let threads = threads.max(1);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("evaluation-{i}"))
                .spawn(move || work(&queue, nice))?;
        }
        Ok(EvalThreads {
            jobs,
            slots: Arc::new(Semaphore::new(threads)),
        })
    }

    /// Runs `f` on one of the threads once one is free; its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::Stopped)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
            // The permit goes back when the job ends, even if its caller stopped waiting.
            drop(permit);
            let _ = done.send(outcome);
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            // Cannot be full: every queued or running job holds one of `threads` permits.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                return Err(JobError::Stopped);
            }
        }
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(JobError::Panicked),
            Err(_) => Err(JobError::Stopped),
        }
    }
}

fn work(queue: &Mutex<Receiver<Job>>, nice: u8) {
    if let Err(e) = platform_runtime::priority::lower_this_thread(nice) {
        tracing::warn!("evaluation thread: cannot lower its priority to nice {nice}: {e}");
    }
    loop {
        let job = queue.lock().expect("evaluation queue lock poisoned").recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn every_job_runs_on_a_lowered_evaluation_thread() {
        let threads = Arc::new(EvalThreads::start(2, 5).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        // More jobs than threads and queue slots together: the rest wait for permits.
        for _ in 0..8 {
            let (t, ran) = (threads.clone(), ran.clone());
            jobs.push(tokio::spawn(async move {
                t.run(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    (
                        std::thread::current().name().map(str::to_string),
                        platform_runtime::priority::this_thread_nice(),
                    )
                })
                .await
            }));
        }
        for job in jobs {
            let (name, nice) = job.await.unwrap().unwrap();
            assert!(name.unwrap().starts_with("evaluation-"));
            if cfg!(target_os = "linux") {
                assert!(nice.unwrap() >= 5);
            }
        }
        assert_eq!(ran.load(Ordering::SeqCst), 8);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_its_thread_lives_on() {
        let threads = EvalThreads::start(1, 0).unwrap();
        assert_eq!(
            threads.run(|| panic!("deliberate")).await,
            Err::<(), _>(JobError::Panicked)
        );
        assert_eq!(threads.run(|| 7).await, Ok(7));
    }
}
