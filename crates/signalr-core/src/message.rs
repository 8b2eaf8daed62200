//! [`SerializedMessage`]: a hub message and its encodings, each made at most once.

use bytes::Bytes;
use parking_lot::Mutex;
use signalr_protocol::{HubMessage, HubProtocol};

/// A hub message together with its encodings, each made at most once per protocol.
///
/// A broadcast to 10,000 connections is encoded once per protocol in use, and every connection
/// gets a clone of the same [`Bytes`]. A message received from a backplane arrives already
/// encoded ([`SerializedMessage::from_encoded`]) and is written out unchanged.
#[derive(Debug)]
pub struct SerializedMessage {
    message: Option<HubMessage>,
    /// The same message with payload values in MessagePack form, written by binary protocols
    /// (so that byte arrays and timestamps keep their MessagePack types).
    binary_variant: Option<HubMessage>,
    /// (protocol name, framed bytes); a short list, one entry per protocol.
    encoded: Mutex<Vec<(&'static str, Bytes)>>,
    /// Encodings received from elsewhere under names that may not be `'static`.
    foreign: Vec<(String, Bytes)>,
}

impl SerializedMessage {
    /// Wraps a message to be encoded lazily, per protocol.
    pub fn new(message: HubMessage) -> Self {
        Self { message: Some(message), binary_variant: None, encoded: Mutex::new(Vec::new()), foreign: Vec::new() }
    }

    /// Wraps a message built twice from the same Rust values: `text` with JSON payload values
    /// (used by text protocols and returned by [`SerializedMessage::message`]) and `binary` with
    /// MessagePack payload values (used by binary protocols). The hub layer builds sends this way.
    pub fn with_variants(text: HubMessage, binary: HubMessage) -> Self {
        Self { message: Some(text), binary_variant: Some(binary), encoded: Mutex::new(Vec::new()), foreign: Vec::new() }
    }

    /// A message that exists only as framed bytes per protocol name (e.g. from Redis).
    pub fn from_encoded(encodings: Vec<(String, Bytes)>) -> Self {
        Self { message: None, binary_variant: None, encoded: Mutex::new(Vec::new()), foreign: encodings }
    }

    /// The decoded message, when this one was built from a [`HubMessage`].
    pub fn message(&self) -> Option<&HubMessage> {
        self.message.as_ref()
    }

    /// The framed bytes of this message in `protocol`, encoding it on first use.
    ///
    /// Returns `None` when the message came pre-encoded without this protocol, or when it
    /// cannot be encoded in it (the error is for the caller to log).
    pub fn encoded(&self, protocol: &dyn HubProtocol) -> Option<Bytes> {
        let name = protocol.name();
        if let Some((_, bytes)) = self.foreign.iter().find(|(n, _)| n == name) {
            return Some(bytes.clone());
        }
        let message = match (&self.binary_variant, protocol.transfer_format()) {
            (Some(binary), signalr_protocol::TransferFormat::Binary) => binary,
            _ => self.message.as_ref()?,
        };
        let mut cache = self.encoded.lock();
        if let Some((_, bytes)) = cache.iter().find(|(n, _)| *n == name) {
            return Some(bytes.clone());
        }
        let mut out = Vec::with_capacity(128);
        protocol.write_message(message, &mut out).ok()?;
        let bytes = Bytes::from(out);
        cache.push((name, bytes.clone()));
        Some(bytes)
    }
}
