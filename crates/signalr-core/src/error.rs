//! Why a send or a lifetime-manager operation failed.

/// Why a message could not be handed to a connection.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed or closing.
    #[error("connection is closed")]
    Closed,
    /// The connection's outbound buffer is full; it is being disconnected as a slow consumer.
    #[error("outbound buffer is full")]
    Full,
    /// The message has no encoding in the connection's protocol.
    #[error("message has no encoding for protocol '{0}'")]
    NoEncoding(&'static str),
}

/// Why a lifetime-manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifetimeError {
    /// No connection with this id exists (on any node).
    #[error("Connection '{0}' does not exist.")]
    UnknownConnection(String),
    /// The connection went away before answering a client-result invocation.
    #[error("Connection '{0}' disconnected.")]
    Disconnected(String),
    /// The client answered a client-result invocation with an error; the text is the client's.
    #[error("{0}")]
    ClientError(String),
    /// A cross-node operation got no answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The backplane could not carry the message; the boxed error says why (for the Redis
    /// backplane, a `signalr_redis::BackplaneFailure` keeping Redis's own error as its source).
    #[error("backplane: {0}")]
    Backplane(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}
