//! Durations in configuration, as .NET writes a `TimeSpan`: `[d.]hh:mm:ss[.fffffff]`.

use std::time::Duration;

use super::ConfigError;
use super::source::Configuration;

/// `key` as a `TimeSpan`, or `default` when it is absent or empty.
pub fn read(c: &Configuration, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    Ok(read_optional(c, key)?.unwrap_or(default))
}

/// `key` as a `TimeSpan`, `None` when it is absent or empty.
pub fn read_optional(c: &Configuration, key: &str) -> Result<Option<Duration>, ConfigError> {
    match c.get(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => parse_timespan(v)
            .map(Some)
            .ok_or_else(|| ConfigError::new(key, format!("is '{v}'; expected a TimeSpan like 00:00:30 ([d.]hh:mm:ss[.fffffff])"))),
    }
}

/// .NET's invariant `TimeSpan` format `[d.]hh:mm:ss[.fffffff]`, non-negative. A bare number is
/// refused: .NET reads `30` as thirty days, which is never what was meant here.
pub fn parse_timespan(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once(':') {
        Some((first, _)) => match first.split_once('.') {
            Some((days, _)) => (days.parse::<u64>().ok()?, &text[days.len() + 1..]),
            None => (0, text),
        },
        None => return None,
    };
    let mut parts = clock.split(':');
    let (hours, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    if !digits(hours) || !digits(minutes) || !digits(whole) || !(fraction.is_empty() || digits(fraction) && fraction.len() <= 7) {
        return None;
    }
    let (hours, minutes, whole): (u64, u64, u64) = (hours.parse().ok()?, minutes.parse().ok()?, whole.parse().ok()?);
    if hours > 23 || minutes > 59 || whole > 59 {
        return None;
    }
    let nanos = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse::<u32>().ok()? };
    let secs = days.checked_mul(86_400)?.checked_add(hours * 3600 + minutes * 60 + whole)?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_read_as_dotnet_writes_them() {
        assert_eq!(parse_timespan("00:00:30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timespan("00:02:10"), Some(Duration::from_secs(130)));
        assert_eq!(parse_timespan("1.00:00:00"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_timespan("00:00:00.25"), Some(Duration::from_millis(250)));
        for bad in ["30", "", "00:60:00", "0:0", "-00:00:01", "00:00:01.12345678", "a:b:c", "00:00:30:00"] {
            assert_eq!(parse_timespan(bad), None, "{bad}");
        }
    }
}
