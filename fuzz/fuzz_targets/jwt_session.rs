//! Access tokens (JWT, HS256) as they arrive in `Authorization`, the `access_token` query value or
//! the session cookie, and the session cookies themselves: validation answers an error for any
//! forged, malformed or foreign token, never panics; a token the service issued validates.
#![no_main]

use diquis::auth::Identity;
use diquis::auth::jwt::JwtService;
use diquis::auth::session::{AUTH_COOKIE, REFRESH_COOKIE, cookie, secrets_equal};
use diquis::config::settings::JwtSettings;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static SERVICE: LazyLock<JwtService> = LazyLock::new(|| {
    let settings = JwtSettings { key: None, issuer: "Diquis".into(), audience: "Diquis".into(), expiry_minutes: 60, refresh_days: 7 };
    JwtService::new(b"fuzzing-key-fuzzing-key-fuzzing-key!", &settings)
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = SERVICE.validate(&text);
    // The same bytes as a Cookie header.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, value);
        if let Some(token) = cookie(&headers, AUTH_COOKIE) {
            let _ = SERVICE.validate(&token);
        }
        if let Some(refresh) = cookie(&headers, REFRESH_COOKIE) {
            let _ = secrets_equal(&refresh, &text);
        }
    }
    // A token issued for an identity made of the input validates back to it.
    if data.len() < 200 {
        let identity = Identity {
            user_id: format!("u{text}"),
            user_name: text.to_string(),
            email: text.to_string(),
            tenant: format!("t{text}"),
            roles: vec![text.to_string()],
            csrf: Some(text.to_string()),
            security_stamp: format!("s{text}"),
            session_id: format!("i{text}"),
        };
        let token = SERVICE.issue(&identity);
        assert_eq!(SERVICE.validate(&token).expect("an issued token validates"), identity);
    }
});
