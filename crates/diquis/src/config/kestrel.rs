//! `Kestrel:Limits:*`: the HTTP server's limits, under the keys and in the formats of ASP.NET
//! Core's `KestrelServerLimits` (timeouts are .NET `TimeSpan`s such as `00:00:30`).

use signalr_connections::server::{HttpLimits, LimitsError, MinDataRate};

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
/// `Kestrel:Limits:MinRequestBodyDataRate`: empty (JSON `null`) turns the minimum off.
pub const MIN_REQUEST_BODY_DATA_RATE: &str = "Kestrel:Limits:MinRequestBodyDataRate";
/// `Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond`.
pub const MIN_REQUEST_BODY_BYTES_PER_SECOND: &str = "Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond";
/// `Kestrel:Limits:MinRequestBodyDataRate:GracePeriod`.
pub const MIN_REQUEST_BODY_GRACE_PERIOD: &str = "Kestrel:Limits:MinRequestBodyDataRate:GracePeriod";

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
        min_request_body_data_rate: min_request_body_data_rate(c)?,
    };
    limits.validate().map_err(|error| {
        let key = match error {
            LimitsError::ZeroTimeout("KeepAliveTimeout") => KEEP_ALIVE_TIMEOUT,
            LimitsError::ZeroTimeout(_) => REQUEST_HEADERS_TIMEOUT,
            LimitsError::TooSmall { name: "MaxRequestLineSize", .. } => MAX_REQUEST_LINE_SIZE,
            LimitsError::TooSmall { .. } => MAX_REQUEST_HEADERS_TOTAL_SIZE,
            LimitsError::NoConnections => MAX_CONCURRENT_CONNECTIONS,
            LimitsError::BadDataRate => MIN_REQUEST_BODY_BYTES_PER_SECOND,
            LimitsError::NoGracePeriod => MIN_REQUEST_BODY_GRACE_PERIOD,
        };
        ConfigError { key: key.to_string(), problem: format!("is not usable: {error}") }
    })?;
    Ok(limits)
}

/// Kestrel's `MinDataRate` under its property names; the section set to `null` (an empty value
/// with neither property) turns the minimum off, as `MinRequestBodyDataRate = null` does.
fn min_request_body_data_rate(c: &Configuration) -> Result<Option<MinDataRate>, ConfigError> {
    let bytes_per_second = match c.get(MIN_REQUEST_BODY_BYTES_PER_SECOND).map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(v.parse::<f64>().ok().filter(|rate| rate.is_finite() && *rate >= 0.0).ok_or_else(|| ConfigError {
            key: MIN_REQUEST_BODY_BYTES_PER_SECOND.to_string(),
            problem: format!("is '{v}', not a number of bytes per second of at least 0"),
        })?),
    };
    let grace_period = super::time_span::read_optional(c, MIN_REQUEST_BODY_GRACE_PERIOD)?;
    let section_null = c.get(MIN_REQUEST_BODY_DATA_RATE).is_some_and(|v| v.trim().is_empty());
    if section_null && bytes_per_second.is_none() && grace_period.is_none() {
        return Ok(None);
    }
    let default = MinDataRate::REQUEST_BODY_DEFAULT;
    Ok(Some(MinDataRate {
        bytes_per_second: bytes_per_second.unwrap_or(default.bytes_per_second),
        grace_period: grace_period.unwrap_or(default.grace_period),
    }))
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
        assert_eq!(set.min_request_body_data_rate, Some(MinDataRate::REQUEST_BODY_DEFAULT));
    }

    #[test]
    fn the_minimum_body_data_rate_is_kestrels_and_null_turns_it_off() {
        let default = limits(&[]).unwrap().min_request_body_data_rate.unwrap();
        assert_eq!((default.bytes_per_second, default.grace_period), (240.0, Duration::from_secs(5)));
        let set = limits(&[(MIN_REQUEST_BODY_BYTES_PER_SECOND, "100.5"), (MIN_REQUEST_BODY_GRACE_PERIOD, "00:00:00.25")]).unwrap();
        assert_eq!(set.min_request_body_data_rate, Some(MinDataRate { bytes_per_second: 100.5, grace_period: Duration::from_millis(250) }));
        let one = limits(&[(MIN_REQUEST_BODY_GRACE_PERIOD, "00:00:10")]).unwrap();
        assert_eq!(one.min_request_body_data_rate, Some(MinDataRate { bytes_per_second: 240.0, grace_period: Duration::from_secs(10) }));
        assert_eq!(limits(&[(MIN_REQUEST_BODY_DATA_RATE, "")]).unwrap().min_request_body_data_rate, None);
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
            (MIN_REQUEST_BODY_BYTES_PER_SECOND, "-1"),
            (MIN_REQUEST_BODY_BYTES_PER_SECOND, "fast"),
            (MIN_REQUEST_BODY_GRACE_PERIOD, "5"),
            (MIN_REQUEST_BODY_GRACE_PERIOD, "00:00:00"),
        ] {
            let error = limits(&[(key, value)]).unwrap_err();
            assert_eq!(error.key, key, "{key}={value}: {error}");
        }
    }
}
