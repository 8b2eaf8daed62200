//! Cron expressions and time zones of recurring jobs: parsing and the next fire time never panic
//! or hang, and a next fire time is strictly later.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (expression, timezone) = text.split_once('\n').unwrap_or((text, "UTC"));
    if jobs::fuzzing::parse_cron(expression).is_err() {
        return;
    }
    let after: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01");
    if let Ok(next) = jobs::fuzzing::next_fire(expression, timezone, after) {
        assert!(next > after);
    }
});
