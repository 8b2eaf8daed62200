//! Connection strings from configuration: StackExchange.Redis (`host:port,password=…,ssl=…` and
//! `redis://` URLs) and Npgsql (`Host=…;Username=…`, `postgres://` URLs, SQLite paths), plus the
//! redaction used in every message about them.
#![no_main]

use diquis::config::DatabaseTarget;
use diquis::config::connection_string::{parse_database, redact};
use libfuzzer_sys::fuzz_target;
use signalr_redis::RedisConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = RedisConfig::parse(text) {
        let _ = config.channel_prefix_or_empty();
        assert!(!config.endpoints.is_empty(), "a parsed Redis configuration has an endpoint");
    }
    match parse_database(text) {
        Ok(DatabaseTarget::Postgres(target)) => {
            let _ = target.connect_options();
            let _ = target.with_database("other").connect_options();
        }
        Ok(_) | Err(_) => {}
    }
    let redacted = redact(text);
    // In a keyword string (not a URL), every `Password=` / `Pwd=` keyword comes out hidden.
    if !text.contains("://") {
        for part in redacted.split(';') {
            if let Some((key, value)) = part.split_once('=') {
                let key: String = key.trim().to_ascii_lowercase().chars().filter(|c| *c != ' ').collect();
                if key == "password" || key == "pwd" {
                    assert_eq!(value, "***", "{redacted}");
                }
            }
        }
    }
});
