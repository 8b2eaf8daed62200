//! Entry points for the coverage-guided fuzz targets in `fuzz/` (see `docs/fuzzing.md`).
//!
//! Not part of the crate's API: the envelope codec is public in [`crate::protocol`]; this module
//! adds the private step that reads a forwarded client result's hub message.

use bytes::Bytes;
use signalr_protocol::CompletionMessage;

/// Reads the completion frame of a forwarded client result (`internal:return:{server}`) in its
/// protocol, as the invoking node does; `Err` says why it is skipped.
pub fn parse_forwarded_completion(
    protocol_name: &str,
    frame: &Bytes,
    max_message_size: usize,
) -> Result<CompletionMessage, crate::manager::CompletionError> {
    crate::manager::parse_completion(protocol_name, frame, max_message_size)
}
