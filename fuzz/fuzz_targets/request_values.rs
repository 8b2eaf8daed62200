//! Other request values the application reads: forwarded headers (`X-Forwarded-*` and RFC 7239
//! `Forwarded`) behind trusted proxies, local-redirect checks of `returnUrl`, and the Kestrel
//! `Urls` and `TimeSpan` values of configuration.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use diquis::config::settings::parse_urls;
use diquis::config::time_span::parse_timespan;
use diquis::security::forwarded::{IpNetwork, ProxyHeaders};
use diquis::security::redirect::{is_local_url, local_or_root};
use diquis::security::settings::ForwardedSettings;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if is_local_url(&text) {
        assert!(text.starts_with('/') || text.starts_with("~/"), "{text:?}");
    }
    let target = local_or_root(&text);
    assert!(target == "/" || target == text);
    let _ = parse_urls(&text);
    let _ = parse_timespan(&text);
    let _ = IpNetwork::parse(&text);

    // Lines of the input as forwarding headers, every hop trusted.
    let mut headers = HeaderMap::new();
    let names = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"];
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(HeaderName::from_static(names[i % names.len()]), value);
        }
    }
    for kind in [ProxyHeaders::XForwarded, ProxyHeaders::Forwarded] {
        let settings = ForwardedSettings {
            headers: kind,
            trusted: vec![IpNetwork::parse("0.0.0.0/0").expect("network"), IpNetwork::parse("::/0").expect("network")],
            forward_limit: 3,
        };
        let _ = settings.resolve(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), &headers);
    }
});
