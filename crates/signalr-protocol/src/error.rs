//! Errors raised while parsing or writing protocol messages.

/// What went wrong with a handshake or hub message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes are not valid JSON, or not the JSON shape a message needs.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The bytes are not valid MessagePack, or not the array layout a message needs.
    #[error("invalid MessagePack: {0}")]
    MessagePack(String),
    /// A required field is missing, e.g. `target` on an invocation.
    #[error("missing required property '{0}'")]
    MissingField(&'static str),
    /// A field has the wrong type, e.g. a numeric `target`.
    #[error("expected '{field}' to be {expected}")]
    WrongType {
        /// The field name.
        field: &'static str,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A completion carried both `result` and `error`.
    #[error("The 'error' and 'result' properties are mutually exclusive.")]
    ResultAndError,
    /// A message exceeded the configured maximum size.
    #[error("The maximum message size of {max}B was exceeded. The message size can be configured in AddHubOptions.")]
    MessageTooLarge {
        /// The configured limit in bytes.
        max: usize,
    },
    /// A varint length prefix longer than 5 bytes or above 2 GB.
    #[error("Messages bigger than 2GB are not supported.")]
    LengthPrefixTooLarge,
    /// A payload value could not be converted to or from a Rust type.
    #[error("payload value: {0}")]
    Value(String),
}
