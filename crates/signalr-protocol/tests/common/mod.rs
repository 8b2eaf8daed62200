//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::BytesMut;
use signalr_protocol::{HubMessage, HubProtocol, ProtocolError};

/// Parses a hex dump such as `"0d 96 01"` (whitespace ignored).
pub fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex length");
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit")).collect()
}

/// Parses every complete message in `bytes`, failing on the first error.
pub fn parse_all(protocol: &dyn HubProtocol, bytes: &[u8], max: usize) -> Result<Vec<HubMessage>, ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    let mut messages = Vec::new();
    while let Some(message) = protocol.parse_message(&mut buf, max)? {
        messages.push(message);
    }
    assert!(buf.is_empty(), "bytes left over: {:?}", &buf[..]);
    Ok(messages)
}

/// Parses exactly one message from `bytes`.
pub fn parse_one(protocol: &dyn HubProtocol, bytes: &[u8]) -> Result<HubMessage, ProtocolError> {
    let mut messages = parse_all(protocol, bytes, 1 << 20)?;
    assert_eq!(messages.len(), 1, "expected one message, got {messages:?}");
    Ok(messages.remove(0))
}

/// Writes one message.
pub fn write(protocol: &dyn HubProtocol, message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    protocol.write_message(message, &mut out).expect("write");
    out
}
