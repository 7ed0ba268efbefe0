//! Bounded retries of chain calls: transient failures (an unreachable endpoint, a lost
//! connection) are retried with exponential backoff a bounded number of times; the chain's
//! verdicts are returned at once.

use std::future::Future;
use std::time::Duration;

use crate::ChainError;

/// How transient failures are retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
        }
    }
}

impl Retry {
    /// Runs `op` until it succeeds, fails with a non-transient error, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, ChainError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let mut delay = self.base;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(ChainError::Unreachable { url, reason }) if attempt < self.attempts.max(1) => {
                    tracing::warn!(%url, %reason, attempt, "chain unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
