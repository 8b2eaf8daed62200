//! Query strings (percent and `+` decoding), `Cookie` headers, the negotiate version and the
//! connection ids a client sends: never panic; decoding is total and keeps what it cannot decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr_connections::fuzzing::{parse_connection_id, parse_cookies, parse_query, select_negotiate_version};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs = parse_query(&text);
    // Decoding never makes a pair longer than its text.
    for (key, value) in &pairs {
        assert!(key.len() + value.len() <= text.len() * 3);
    }
    for (_, value) in pairs.iter().filter(|(key, _)| key.eq_ignore_ascii_case("negotiateVersion")) {
        let _ = select_negotiate_version(Some(value), 0);
        let _ = select_negotiate_version(Some(value), 1);
    }
    let _ = select_negotiate_version(Some(&text), 1);
    if let Some(id) = parse_connection_id(&text) {
        assert_eq!(id, text);
    }
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for (name, _) in parse_cookies(&values) {
        assert!(!name.is_empty());
    }
});
