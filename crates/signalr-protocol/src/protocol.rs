//! The hub protocol abstraction shared by the JSON and MessagePack protocols.

use bytes::BytesMut;

use crate::{HubMessage, ProtocolError};

/// How a protocol's bytes travel: as text (WebSocket Text frames, SSE) or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text; the only format Server-Sent Events can carry.
    Text,
    /// Arbitrary bytes.
    Binary,
}

impl TransferFormat {
    /// The name used in the negotiate response (`"Text"` or `"Binary"`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }
}

/// A SignalR hub protocol (`json`, `messagepack`): parses and writes framed hub messages.
pub trait HubProtocol: Send + Sync + std::fmt::Debug + 'static {
    /// The protocol name as sent in the handshake and used as the Redis map key (case-sensitive).
    fn name(&self) -> &'static str;
    /// The highest protocol version supported (2 for both built-in protocols).
    fn version(&self) -> u32;
    /// The transfer format this protocol needs.
    fn transfer_format(&self) -> TransferFormat;
    /// Whether a client asking for `version` in its handshake can be served.
    fn is_version_supported(&self, version: u32) -> bool {
        version <= self.version()
    }
    /// Parses one framed message from the front of `buf`, removing its bytes.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete message yet. Messages of an unknown type
    /// are skipped (their bytes removed) and parsing continues with the next one. A message
    /// larger than `max_message_size` bytes is an error, detected as soon as its size is known.
    fn parse_message(&self, buf: &mut BytesMut, max_message_size: usize) -> Result<Option<HubMessage>, ProtocolError>;
    /// Appends `message`, framed (RS-terminated JSON or varint-prefixed MessagePack), to `out`.
    fn write_message(&self, message: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError>;
}
