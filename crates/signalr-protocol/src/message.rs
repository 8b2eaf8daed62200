//! The hub messages (HubProtocol.md types 1–9).

use std::collections::BTreeMap;

use crate::Value;

/// Message headers: string keys and values; empty when a message has none.
pub type Headers = BTreeMap<String, String>;

/// Types 1 (Invocation) and 4 (StreamInvocation) share this shape.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationMessage {
    /// Headers, written only when non-empty.
    pub headers: Headers,
    /// Absent for non-blocking sends; the caller's id otherwise.
    pub invocation_id: Option<String>,
    /// The method to call, as sent (matched case-insensitively by the server).
    pub target: String,
    /// The arguments, without the stream parameters.
    pub arguments: Vec<Value>,
    /// Ids of client-to-server streams passed to this call.
    pub stream_ids: Vec<String>,
}

/// Type 2: one item of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamItemMessage {
    /// Headers.
    pub headers: Headers,
    /// The invocation (or upload stream) id the item belongs to.
    pub invocation_id: String,
    /// The item; may be a null value.
    pub item: Value,
}

/// The outcome carried by a completion.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionResult {
    /// No result and no error: ends a stream (JSON without `result`; MessagePack kind 2).
    Void,
    /// A result value, possibly null (JSON `result`; MessagePack kind 3).
    Result(Value),
    /// An error text (JSON `error`; MessagePack kind 1).
    Error(String),
}

/// Type 3: the end of an invocation or stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionMessage {
    /// Headers.
    pub headers: Headers,
    /// The invocation being completed.
    pub invocation_id: String,
    /// Result, error or nothing.
    pub result: CompletionResult,
}

/// Type 5: the client cancels a stream it started.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelInvocationMessage {
    /// Headers.
    pub headers: Headers,
    /// The stream invocation to cancel.
    pub invocation_id: String,
}

/// Type 7: the sender is closing the connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CloseMessage {
    /// Why, if it was an error.
    pub error: Option<String>,
    /// Whether the client may reconnect automatically (written only when true).
    pub allow_reconnect: bool,
}

/// Any hub message.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1.
    Invocation(InvocationMessage),
    /// Type 2.
    StreamItem(StreamItemMessage),
    /// Type 3.
    Completion(CompletionMessage),
    /// Type 4.
    StreamInvocation(InvocationMessage),
    /// Type 5.
    CancelInvocation(CancelInvocationMessage),
    /// Type 6.
    Ping,
    /// Type 7.
    Close(CloseMessage),
    /// Type 8 (stateful reconnect only).
    Ack {
        /// Highest sequence id processed.
        sequence_id: u64,
    },
    /// Type 9 (stateful reconnect only).
    Sequence {
        /// The id of the next message the sender will (re)send.
        sequence_id: u64,
    },
}
