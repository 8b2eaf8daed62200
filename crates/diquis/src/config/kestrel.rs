//! `Kestrel:Limits:*`: the HTTP server's limits, under the keys and in the formats of ASP.NET
//! Core's `KestrelServerLimits` (timeouts are .NET `TimeSpan`s such as `00:00:30`).

use signalr_connections::server::HttpLimits;

use super::settings::ConfigError;
use super::source::Configuration;

/// `Kestrel:Limits:RequestHeadersTimeout`.
pub const REQUEST_HEADERS_TIMEOUT: &str = "Kestrel:Limits:RequestHeadersTimeout";
/// `Kestrel:Limits:KeepAliveTimeout`.
pub const KEEP_ALIVE_TIMEOUT: &str = "Kestrel:Limits:KeepAliveTimeout";
/// `Kestrel:Limits:MaxRequestLineSize`.
pub const MAX_REQUEST_LINE_SIZE: &str = "Kestrel:Limits:MaxRequestLineSize";
/// `Kestrel:Limits:MaxRequestHeadersTotalSize`.
pub const MAX_REQUEST_HEADERS_TOTAL_SIZE: &str = "Kestrel:Limits:MaxRequestHeadersTotalSize";
/// `Kestrel:Limits:MaxConcurrentConnections`.
pub const MAX_CONCURRENT_CONNECTIONS: &str = "Kestrel:Limits:MaxConcurrentConnections";

/// Reads the limits; absent keys keep Kestrel's defaults.
pub fn http_limits(c: &Configuration) -> Result<HttpLimits, ConfigError> {
    let defaults = HttpLimits::default();
    let limits = HttpLimits {
        request_headers_timeout: super::time_span::read_optional(c, REQUEST_HEADERS_TIMEOUT)?.unwrap_or(defaults.request_headers_timeout),
        keep_alive_timeout: super::time_span::read_optional(c, KEEP_ALIVE_TIMEOUT)?.unwrap_or(defaults.keep_alive_timeout),
        max_request_line_size: size(c, MAX_REQUEST_LINE_SIZE)?.unwrap_or(defaults.max_request_line_size),
        max_request_headers_total_size: size(c, MAX_REQUEST_HEADERS_TOTAL_SIZE)?.unwrap_or(defaults.max_request_headers_total_size),
        // Like Kestrel, an empty value (JSON null) means no limit.
        max_concurrent_connections: size(c, MAX_CONCURRENT_CONNECTIONS)?,
    };
    limits.validate().map_err(|error| {
        let key = match error {
            signalr_connections::server::LimitsError::ZeroTimeout("KeepAliveTimeout") => KEEP_ALIVE_TIMEOUT,
            signalr_connections::server::LimitsError::ZeroTimeout(_) => REQUEST_HEADERS_TIMEOUT,
            signalr_connections::server::LimitsError::TooSmall { name: "MaxRequestLineSize", .. } => MAX_REQUEST_LINE_SIZE,
            signalr_connections::server::LimitsError::TooSmall { .. } => MAX_REQUEST_HEADERS_TOTAL_SIZE,
            signalr_connections::server::LimitsError::NoConnections => MAX_CONCURRENT_CONNECTIONS,
        };
        ConfigError { key: key.to_string(), problem: format!("is not usable: {error}") }
    })?;
    Ok(limits)
}

fn size(c: &Configuration, key: &str) -> Result<Option<usize>, ConfigError> {
    match c.get(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(Some)
            .map_err(|_| ConfigError { key: key.to_string(), problem: format!("is '{v}', not a whole number of bytes") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(pairs: &[(&str, &str)]) -> Result<HttpLimits, ConfigError> {
        let mut c = Configuration::new();
        for (k, v) in pairs {
            c.set(k, *v, "test");
        }
        http_limits(&c)
    }

    #[test]
    fn defaults_are_kestrels_and_keys_override_them() {
        assert_eq!(limits(&[]).unwrap(), HttpLimits::default());
        let set = limits(&[
            (REQUEST_HEADERS_TIMEOUT, "00:00:05"),
            (KEEP_ALIVE_TIMEOUT, "00:01:00"),
            (MAX_REQUEST_LINE_SIZE, "4096"),
            (MAX_REQUEST_HEADERS_TOTAL_SIZE, "16384"),
            (MAX_CONCURRENT_CONNECTIONS, "5000"),
        ])
        .unwrap();
        assert_eq!(set.request_headers_timeout, Duration::from_secs(5));
        assert_eq!(set.keep_alive_timeout, Duration::from_secs(60));
        assert_eq!((set.max_request_line_size, set.max_request_headers_total_size), (4096, 16384));
        assert_eq!(set.max_concurrent_connections, Some(5000));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            (REQUEST_HEADERS_TIMEOUT, "30"),
            (REQUEST_HEADERS_TIMEOUT, "00:00:00"),
            (KEEP_ALIVE_TIMEOUT, "soon"),
            (MAX_REQUEST_LINE_SIZE, "8"),
            (MAX_REQUEST_HEADERS_TOTAL_SIZE, "-1"),
            (MAX_CONCURRENT_CONNECTIONS, "0"),
        ] {
            let error = limits(&[(key, value)]).unwrap_err();
            assert_eq!(error.key, key, "{key}={value}: {error}");
        }
    }
}
