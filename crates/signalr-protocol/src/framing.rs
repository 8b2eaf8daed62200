//! Message framing: the record separator of text protocols and the varint length prefix of
//! binary ones (`BinaryMessageFormat`).
//!
//! Both readers are incremental: they look at what has arrived so far and say whether a whole
//! frame is there. The maximum message size is checked as soon as the size is known, so an
//! oversized message is refused before its bytes arrive.

use crate::{ProtocolError, RECORD_SEPARATOR};

/// The largest message length a varint prefix may announce (2 GB − 1).
pub const MAX_VARINT_LENGTH: u64 = 0x7FFF_FFFF;

/// Where a complete frame lies in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the first payload byte (after a length prefix).
    pub payload_start: usize,
    /// Offset one past the last payload byte.
    pub payload_end: usize,
    /// Bytes the whole frame occupies, separator or prefix included.
    pub frame_len: usize,
}

impl Frame {
    /// The payload range within the buffer the frame was found in.
    pub fn payload(&self) -> std::ops::Range<usize> {
        self.payload_start..self.payload_end
    }
}

/// Finds the first record-separated frame in `buf`.
///
/// Returns `Ok(None)` when no separator has arrived yet and the bytes so far are within
/// `max_message_size`; a payload longer than `max_message_size` is an error.
pub fn find_text_frame(buf: &[u8], max_message_size: usize) -> Result<Option<Frame>, ProtocolError> {
    // SIMD search: this runs over every byte a text connection receives.
    match memchr::memchr(RECORD_SEPARATOR, buf) {
        Some(end) if end > max_message_size => Err(ProtocolError::MessageTooLarge { max: max_message_size }),
        Some(end) => Ok(Some(Frame { payload_start: 0, payload_end: end, frame_len: end + 1 })),
        None if buf.len() > max_message_size => Err(ProtocolError::MessageTooLarge { max: max_message_size }),
        None => Ok(None),
    }
}

/// Appends the record separator that ends a text frame.
pub fn write_text_terminator(out: &mut Vec<u8>) {
    out.push(RECORD_SEPARATOR);
}

/// Reads a varint length prefix from the front of `buf`.
///
/// Returns `Ok(Some((length, prefix_len)))` once the prefix is complete, `Ok(None)` while more
/// bytes are needed, and [`ProtocolError::LengthPrefixTooLarge`] for a prefix of more than five
/// bytes or a value above 2 GB (a fifth byte greater than 7).
pub fn read_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut length: u64 = 0;
    for (index, &byte) in buf.iter().enumerate().take(5) {
        if index == 4 && byte > 7 {
            return Err(ProtocolError::LengthPrefixTooLarge);
        }
        length |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            let length = usize::try_from(length).map_err(|_| ProtocolError::LengthPrefixTooLarge)?;
            return Ok(Some((length, index + 1)));
        }
    }
    Ok(None)
}

/// Finds the first varint-length-prefixed frame in `buf`.
///
/// A length above `max_message_size` is an error as soon as the prefix is complete.
pub fn find_binary_frame(buf: &[u8], max_message_size: usize) -> Result<Option<Frame>, ProtocolError> {
    let Some((length, prefix_len)) = read_varint(buf)? else {
        return Ok(None);
    };
    if length > max_message_size {
        return Err(ProtocolError::MessageTooLarge { max: max_message_size });
    }
    let end = prefix_len + length;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame { payload_start: prefix_len, payload_end: end, frame_len: end }))
}

/// Encodes `length` as a varint into `prefix`, returning how many bytes it took (1–5).
///
/// Lengths above [`MAX_VARINT_LENGTH`] are an error.
pub fn encode_varint(length: usize, prefix: &mut [u8; 5]) -> Result<usize, ProtocolError> {
    if length as u64 > MAX_VARINT_LENGTH {
        return Err(ProtocolError::LengthPrefixTooLarge);
    }
    let mut remaining = length;
    let mut used = 0;
    loop {
        let mut byte = (remaining & 0x7F) as u8;
        remaining >>= 7;
        if remaining != 0 {
            byte |= 0x80;
        }
        prefix[used] = byte;
        used += 1;
        if remaining == 0 {
            return Ok(used);
        }
    }
}

/// Appends the varint length prefix for `length` to `out`.
pub fn write_varint(length: usize, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let mut prefix = [0u8; 5];
    let used = encode_varint(length, &mut prefix)?;
    out.extend_from_slice(&prefix[..used]);
    Ok(())
}

/// Writes a binary frame whose body is produced by `write_body`, directly into `out`.
///
/// The body is written after a 5-byte gap, then moved next to its real prefix, so no
/// temporary buffer is needed.
pub fn write_binary_frame(
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; 5]);
    let body_start = start + 5;
    if let Err(error) = write_body(out) {
        out.truncate(start);
        return Err(error);
    }
    let body_len = out.len() - body_start;
    let mut prefix = [0u8; 5];
    let used = match encode_varint(body_len, &mut prefix) {
        Ok(used) => used,
        Err(error) => {
            out.truncate(start);
            return Err(error);
        }
    };
    out[start..start + used].copy_from_slice(&prefix[..used]);
    if used < 5 {
        out.copy_within(body_start.., start + used);
        out.truncate(start + used + body_len);
    }
    Ok(())
}
