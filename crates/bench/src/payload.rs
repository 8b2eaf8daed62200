//! The benchmark payload: a string argument that carries its send time and sequence number.
//!
//! Every message the bench sends holds `dqb1|<send time, µs since the Unix epoch>|<seq>|`
//! followed by padding. Receivers find the tag with a substring search instead of decoding
//! the whole SignalR frame, so the hot path costs the same for JSON and MessagePack (a
//! MessagePack string carries its UTF-8 bytes verbatim) and the load generator stays cheap
//! next to the server it measures on the same cores.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem::Finder;

/// The marker that opens every bench payload.
pub const TAG: &[u8] = b"dqb1|";

/// Size in bytes of a JSON `Message` invocation frame around a payload of length 0:
/// `{"type":1,"target":"Message","arguments":[""]}` plus the record separator.
pub const JSON_MESSAGE_FRAME_OVERHEAD: usize = 47;

/// Microseconds since the Unix epoch; the clock all bench processes on one machine share.
pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Builds a payload of at least `len` bytes (the tag alone may be longer) for `seq`, sent at
/// `sent_micros`. Padding is `x`, which needs no escaping in JSON.
pub fn encode(seq: u64, sent_micros: u64, len: usize) -> String {
    let mut payload = format!("dqb1|{sent_micros}|{seq}|");
    if payload.len() < len {
        payload.extend(std::iter::repeat_n('x', len - payload.len()));
    }
    payload
}

/// The payload length that makes a JSON `Message` invocation frame `frame_len` bytes long.
pub fn payload_len_for_frame(frame_len: usize) -> usize {
    frame_len.saturating_sub(JSON_MESSAGE_FRAME_OVERHEAD)
}

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// When the sender built it, µs since the Unix epoch.
    pub sent_micros: u64,
    /// The sender's sequence number.
    pub seq: u64,
}

/// Finds bench payloads inside frames.
#[derive(Debug)]
pub struct StampFinder {
    finder: Finder<'static>,
    /// Where the tag was in the previous frame. The frames of a run share one layout, so
    /// looking there first mostly skips the search (a third of the bench's time otherwise).
    last_at: Cell<usize>,
}

impl Default for StampFinder {
    fn default() -> Self {
        Self { finder: Finder::new(TAG), last_at: Cell::new(0) }
    }
}

impl StampFinder {
    /// The stamp of the bench payload in `frame` (a frame carries one), or `None` if there is
    /// none or it is malformed (digits missing, or a number that overflows).
    pub fn find(&self, frame: &[u8]) -> Option<Stamp> {
        let at = self.last_at.get();
        let tag_at = if frame.get(at..at + TAG.len()) == Some(TAG) {
            at
        } else {
            let found = self.finder.find(frame)?;
            self.last_at.set(found);
            found
        };
        let start = tag_at + TAG.len();
        let (sent_micros, used) = parse_number(&frame[start..])?;
        let (seq, _) = parse_number(&frame[start + used..])?;
        Some(Stamp { sent_micros, seq })
    }
}

/// Parses decimal digits terminated by `|`; returns the value and the bytes consumed
/// (terminator included). At most 19 digits, so the value cannot overflow a `u64`. Runs twice
/// per received message, so eight digits at a time where there are eight.
fn parse_number(bytes: &[u8]) -> Option<(u64, usize)> {
    const MAX_DIGITS: usize = 19;
    let digits = bytes.iter().take(MAX_DIGITS + 1).position(|byte| !byte.is_ascii_digit())?;
    if digits == 0 || digits > MAX_DIGITS || bytes[digits] != b'|' {
        return None;
    }
    let mut value: u64 = 0;
    let mut rest = &bytes[..digits];
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        value = value * 100_000_000 + parse_eight_digits(*chunk);
        rest = tail;
    }
    for &byte in rest {
        value = value * 10 + u64::from(byte - b'0');
    }
    Some((value, digits + 1))
}

/// Eight ASCII digits to their value, with a few multiplications instead of eight dependent
/// steps: pairs of digits, then pairs of pairs, then the two halves (SWAR).
fn parse_eight_digits(chunk: [u8; 8]) -> u64 {
    // The first digit is the lowest byte; every byte is b'0'..=b'9' (checked by the caller).
    let mut v = u64::from_le_bytes(chunk) - 0x3030_3030_3030_3030;
    v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v * 10_000 + (v >> 32)) & 0x0000_0000_ffff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inside_a_json_frame() {
        let payload = encode(42, 1_700_000_000_123_456, 60);
        assert_eq!(payload.len(), 60);
        let frame = format!(r#"{{"type":1,"target":"Message","arguments":["{payload}"]}}"#);
        let stamp = StampFinder::default().find(frame.as_bytes()).unwrap();
        assert_eq!(stamp, Stamp { sent_micros: 1_700_000_000_123_456, seq: 42 });
    }

    #[test]
    fn a_short_length_keeps_the_whole_tag() {
        let payload = encode(7, 123, 1);
        assert_eq!(payload, "dqb1|123|7|");
    }

    #[test]
    fn frame_overhead_matches_the_json_invocation() {
        let payload = encode(1, 2, 53);
        let frame = format!("{{\"type\":1,\"target\":\"Message\",\"arguments\":[\"{payload}\"]}}\u{1e}");
        assert_eq!(frame.len(), 100);
        assert_eq!(payload_len_for_frame(100), 53);
    }

    #[test]
    fn a_frame_of_another_layout_is_searched_again() {
        let finder = StampFinder::default();
        let payload = encode(1, 100, 40);
        let short = format!(r#"{{"type":1,"target":"M","arguments":["{payload}"]}}"#);
        let long = format!(r#"{{"type":1,"target":"LongerTarget","arguments":["{payload}"]}}"#);
        for frame in [&short, &short, &long, &short, &long] {
            let stamp = finder.find(frame.as_bytes()).unwrap();
            assert_eq!(stamp, Stamp { sent_micros: 100, seq: 1 });
        }
        assert_eq!(finder.find(b"dqb1|12|3"), None);
    }

    #[test]
    fn numbers_of_up_to_nineteen_digits_parse() {
        assert_eq!(parse_number(b"9999999999999999999|"), Some((9_999_999_999_999_999_999, 20)));
        assert_eq!(parse_number(b"0|"), Some((0, 2)));
        assert_eq!(parse_number(b"10000000000000000000|"), None);
        assert_eq!(parse_number(b"|"), None);
        assert_eq!(parse_number(b"12"), None);
        assert_eq!(parse_number(b"1764250000123456|7|"), Some((1_764_250_000_123_456, 17)));
        assert_eq!(parse_number(b"12345678|"), Some((12_345_678, 9)));
        assert_eq!(parse_number(b"012345678912|"), Some((12_345_678_912, 13)));
        assert_eq!(parse_number(b"1234a678|"), None);
        for value in [0u64, 7, 10, 99_999_999, 100_000_000, 123_456_789_012_345, u64::MAX / 10] {
            let text = format!("{value}|");
            assert_eq!(parse_number(text.as_bytes()), Some((value, text.len())), "{value}");
        }
    }

    #[test]
    fn malformed_stamps_are_refused() {
        let finder = StampFinder::default();
        assert_eq!(finder.find(b"no tag here"), None);
        assert_eq!(finder.find(b"dqb1||3|"), None);
        assert_eq!(finder.find(b"dqb1|12a|3|"), None);
        assert_eq!(finder.find(b"dqb1|12|3"), None);
        assert_eq!(finder.find(b"dqb1|99999999999999999999999|3|"), None);
    }
}
