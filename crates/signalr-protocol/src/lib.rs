//! Pure, I/O-free codecs for the ASP.NET Core SignalR protocol.
//!
//! * [`handshake`]: the handshake request and response (always JSON, record-separator framed).
//! * [`message`]: the hub messages of types 1–9 and the [`Value`] that carries their payloads.
//! * [`json`] and [`msgpack`]: the two hub protocols, behind the [`HubProtocol`] trait.
//! * [`framing`]: record-separator (text) and varint-length (binary) framing.
//! * [`serde_helpers`]: payload types whose wire form differs per protocol (binary, timestamps).
//!
//! Every parser is incremental: it takes what has arrived so far, returns `Ok(None)` when a
//! message is incomplete, and never panics on bad input.

#![warn(missing_docs)]

pub mod error;
pub mod framing;
pub mod handshake;
pub mod json;
pub mod message;
pub mod msgpack;
pub mod protocol;
mod rmpv_serde;
pub mod serde_helpers;
pub mod value;

pub use error::ProtocolError;
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use json::JsonHubProtocol;
pub use message::{
    CancelInvocationMessage, CloseMessage, CompletionMessage, CompletionResult, Headers, HubMessage, InvocationMessage, StreamItemMessage,
};
pub use msgpack::MessagePackHubProtocol;
pub use protocol::{HubProtocol, TransferFormat};
pub use value::Value;

/// The record separator (0x1E) that ends every JSON message and the handshake.
pub const RECORD_SEPARATOR: u8 = 0x1e;
