//! Entry points for the coverage-guided fuzz targets in `fuzz/` (see `docs/fuzzing.md`).
//!
//! Not part of the crate's API: they drive the private cron and time-zone parsing of recurring
//! jobs exactly as [`crate::JobStore::add_recurring`] and the scheduler do.

use chrono::{DateTime, Utc};

/// Parses a recurring job's cron expression (five fields get a `0` seconds field); `Err` carries
/// the message the caller is given.
pub fn parse_cron(expression: &str) -> Result<(), String> {
    crate::store::parse_cron(expression).map(drop).map_err(|error| error.to_string())
}

/// The first fire time of `expression` in `timezone` strictly after `after`, as the scheduler
/// computes it.
pub fn next_fire(expression: &str, timezone: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    crate::store::next_fire(expression, timezone, after).map_err(|error| error.to_string())
}
