//! Retry policies, Hangfire's by default.

use rand::Rng;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait before the retry after failed attempt `n` (1-based).
#[derive(Clone)]
enum Backoff {
    /// `(n−1)^4 + 15 + rand(0..30)·n` seconds (Hangfire's `AutomaticRetryAttribute`).
    Hangfire,
    /// A fixed delay.
    Fixed(Duration),
    /// Any function of the attempt number.
    Custom(Arc<dyn Fn(u32) -> Duration + Send + Sync>),
}

/// A per-job-type retry policy: how many executions in total, and the back-off between them.
///
/// The default is Hangfire's: 10 retries (11 executions in total, like Hangfire's
/// `Attempts = 10`, which counts retries) with a delay of `(n−1)^4 + 15 + rand(0..30)·n` seconds.
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backoff = match &self.backoff {
            Backoff::Hangfire => "hangfire".to_owned(),
            Backoff::Fixed(d) => format!("fixed {d:?}"),
            Backoff::Custom(_) => "custom".to_owned(),
        };
        f.debug_struct("RetryPolicy").field("max_attempts", &self.max_attempts).field("backoff", &backoff).finish()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::hangfire()
    }
}

impl RetryPolicy {
    /// Hangfire's default: 10 retries with `(n−1)^4 + 15 + rand(0..30)·n` seconds between them.
    pub fn hangfire() -> Self {
        RetryPolicy { max_attempts: 11, backoff: Backoff::Hangfire }
    }

    /// No retries: the first failure is final.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, backoff: Backoff::Fixed(Duration::ZERO) }
    }

    /// `max_attempts` executions in total, `delay` apart.
    pub fn fixed(max_attempts: u32, delay: Duration) -> Self {
        RetryPolicy { max_attempts: max_attempts.max(1), backoff: Backoff::Fixed(delay) }
    }

    /// `max_attempts` executions in total; `delay(n)` after failed attempt `n` (1-based).
    pub fn custom(max_attempts: u32, delay: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        RetryPolicy { max_attempts: max_attempts.max(1), backoff: Backoff::Custom(Arc::new(delay)) }
    }

    /// The same back-off with a different total number of executions.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// Total executions allowed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the retry that follows failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        match &self.backoff {
            Backoff::Hangfire => hangfire_delay(attempt, rand::rng().random_range(0..30)),
            Backoff::Fixed(d) => *d,
            Backoff::Custom(f) => f(attempt),
        }
    }
}

/// Hangfire's formula with the random term given: `(n−1)^4 + 15 + random·n` seconds.
pub fn hangfire_delay(attempt: u32, random: u32) -> Duration {
    let n = u64::from(attempt.max(1));
    Duration::from_secs((n - 1).pow(4) + 15 + u64::from(random) * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangfire_formula_matches_reference_values() {
        assert_eq!(hangfire_delay(1, 0), Duration::from_secs(15));
        assert_eq!(hangfire_delay(2, 0), Duration::from_secs(16));
        assert_eq!(hangfire_delay(3, 29), Duration::from_secs(16 + 15 + 87));
        assert_eq!(hangfire_delay(10, 5), Duration::from_secs(6561 + 15 + 50));
        let p = RetryPolicy::hangfire();
        assert_eq!(p.max_attempts(), 11);
        for n in 1..=10 {
            let d = p.delay_after(n).as_secs();
            let base = u64::from(n - 1).pow(4) + 15;
            assert!(d >= base && d < base + 30 * u64::from(n), "attempt {n}: {d}");
        }
    }
}
