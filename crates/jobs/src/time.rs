//! Timestamps are stored as microseconds since the Unix epoch (BIGINT on both databases).

use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// Converts stored microseconds to a `DateTime<Utc>`.
pub(crate) fn to_datetime(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// A duration in microseconds, saturating.
pub(crate) fn dur_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
