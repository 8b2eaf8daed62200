#![warn(missing_docs)]
//! What the workspace's tests share. Tests synchronise on events; where the only event is a
//! state that can be read (a row, a status, a counter), they poll it with these helpers, which
//! fail with the awaited condition's name once a generous deadline passes. The deadline bounds
//! a hang; it is never a timing assertion.
//!
//! With the `databases` feature: a scratch database per test ([`ScratchDb`]) and
//! [`both_databases!`], which runs a test on PostgreSQL and on SQLite.

#[cfg(feature = "databases")]
mod databases;
#[cfg(feature = "databases")]
pub use databases::{SQLITE_FILE, ScratchDb, postgres_server, postgres_url, run};

use std::future::Future;
use std::time::Duration;

/// How long a condition may take before the test fails: long enough for a loaded 2-core CI
/// machine, short enough to end a hung test.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often a condition is read again.
const INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, and returns that value; panics naming `what` after
/// [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Polls a condition that needs no waiting to read until it holds; panics naming `what` after
/// [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(what, || std::future::ready(condition().then_some(()))).await
}

/// Takes the complete Server-Sent Events at the front of `raw` (what a stream delivered so far)
/// and returns their `data: ` lines joined by newlines; an incomplete last event stays in `raw`.
pub fn take_sse_data(raw: &mut String) -> String {
    let mut data = String::new();
    while let Some(end) = raw.find("\r\n\r\n") {
        let lines: Vec<&str> = raw[..end].split("\r\n").filter_map(|l| l.strip_prefix("data: ")).collect();
        data.push_str(&lines.join("\n"));
        raw.drain(..end + 4);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_check_gives() {
        let mut reads = 0;
        let value = wait_for("the third read", || {
            reads += 1;
            std::future::ready((reads == 3).then_some(reads))
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out waiting for a condition that never holds")]
    async fn fails_naming_the_condition_after_the_deadline() {
        eventually("a condition that never holds", || false).await;
    }
}
