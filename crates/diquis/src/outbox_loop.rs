//! The loop that drains an outbox table in the background: the notification publisher's and
//! the job-request relay's. It drains at start, when woken (a row committed in this process),
//! and every `interval` (rows of other processes, or committed just before a crash); after a
//! failure it retries with a delay that doubles up to [`MAX_RETRY_DELAY`].

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The first retry delay after a failed attempt.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// The longest wait between attempts while they fail.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// How one attempt to drain the outbox ended.
pub enum Attempt<E> {
    /// Everything that could be sent was: wait for a wake-up or the interval.
    Drained,
    /// It failed: retry after the backoff delay.
    Failed(E),
}

/// A retry delay that doubles on each failure, up to [`MAX_RETRY_DELAY`], and starts over after
/// a success.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_RETRY_DELAY }
    }
}

impl Backoff {
    /// The delay before retrying after a failure.
    pub fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(MAX_RETRY_DELAY);
        delay
    }

    /// An attempt succeeded: the next failure waits the first delay again.
    pub fn succeeded(&mut self) {
        self.next = FIRST_RETRY_DELAY;
    }
}

/// Runs `attempt` until `shutdown`: at once, then whenever `wake` is notified or `interval`
/// passes, and after a failure (logged as "`what` failed") after the backoff delay.
pub async fn drain_until_shutdown<E, F, Fut>(
    what: &'static str,
    wake: &Notify,
    shutdown: &CancellationToken,
    interval: Duration,
    mut attempt: F,
) where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<E>>,
{
    let mut backoff = Backoff::default();
    loop {
        let wait = match attempt().await {
            Attempt::Drained => {
                backoff.succeeded();
                interval
            }
            Attempt::Failed(error) => {
                let delay = backoff.failed();
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "{what} failed; will retry");
                delay
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_the_cap_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| backoff.failed().as_millis() as u64).collect();
        assert_eq!(delays, [200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(200));
    }

    /// Attempts run at start and on every wake-up, and the loop ends on shutdown.
    #[tokio::test]
    async fn drains_when_woken_and_stops_on_shutdown() {
        let wake = std::sync::Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let (attempts, mut seen) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let mut count = 0;
        let task = tokio::spawn({
            let wake = wake.clone();
            let shutdown = shutdown.clone();
            async move {
                drain_until_shutdown("test drain", &wake, &shutdown, Duration::from_secs(3600), move || {
                    count += 1;
                    let _ = attempts.send(count);
                    async move { if count == 2 { Attempt::Failed("refused") } else { Attempt::Drained } }
                })
                .await
            }
        });
        assert_eq!(seen.recv().await, Some(1));
        wake.notify_one();
        assert_eq!(seen.recv().await, Some(2));
        // The second attempt failed: the third comes after the first retry delay, unasked.
        assert_eq!(seen.recv().await, Some(3));
        wake.notify_one();
        assert_eq!(seen.recv().await, Some(4));
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(seen.recv().await, None, "no attempt after shutdown");
    }
}
