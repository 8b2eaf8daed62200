//! The WebSocket frame codec (RFC 6455 §5), server side: decodes masked client frames and
//! encodes unmasked server frame headers. Pure: no I/O, no buffering policy beyond what a frame
//! needs.
//!
//! Data messages are not kept apart: their unmasked payloads are appended to one inbound buffer,
//! as .NET's WebSocket transport writes them into the application's pipe, because SignalR frames
//! its own messages (record separators, varint lengths). Only whole messages are handed on, so a
//! text message can be checked for UTF-8 once it is complete.

use bytes::{Bytes, BytesMut};

/// Continuation frame.
const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close frame.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping frame.
const OP_PING: u8 = 0x9;
/// Pong frame.
pub(crate) const OP_PONG: u8 = 0xA;

/// The largest server frame header: 2 bytes plus an 8-byte length (servers do not mask).
pub(crate) const MAX_HEADER: usize = 10;

/// Close code 1000: normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
/// Close code 1002: protocol error.
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code 1007: a text message that is not UTF-8.
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code 1009: message too big.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// Why the client's bytes cannot be read as WebSocket frames; each maps to a close code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The frames break RFC 6455 (unmasked, reserved bits, unknown opcode, bad fragmentation,
    /// oversized or fragmented control frame, malformed close payload).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A message longer than the inbound limit.
    #[error("WebSocket message larger than {limit} bytes")]
    TooBig {
        /// The inbound limit in bytes.
        limit: usize,
    },
    /// A text message that is not valid UTF-8.
    #[error("WebSocket text message is not valid UTF-8")]
    InvalidUtf8,
}

impl FrameError {
    /// The close code the server answers this error with.
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            FrameError::Protocol(_) => CLOSE_PROTOCOL_ERROR,
            FrameError::TooBig { .. } => CLOSE_TOO_BIG,
            FrameError::InvalidUtf8 => CLOSE_INVALID_DATA,
        }
    }
}

/// A control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// A ping; its payload goes back in a pong.
    Ping(Bytes),
    /// The client closes, with the code it gave (none for an empty close frame).
    Close(Option<u16>),
}

/// Decoder state that outlives one read: unmasked data not yet handed on, and the data message
/// being assembled.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message: usize,
    /// Unmasked payloads of data frames, in order; empty and unallocated when idle.
    inbound: BytesMut,
    /// How much of `inbound` holds whole messages.
    complete: usize,
    /// The opcode and start (in `inbound`) of a data message whose final frame has not arrived.
    open_message: Option<(u8, usize)>,
}

/// What one call to [`Decoder::decode`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Bytes of the input taken (whole frames only; the rest waits for more data).
    pub(crate) consumed: usize,
    /// A control frame, if one ended the call (decoding stops after each so that the caller
    /// answers it in order).
    pub(crate) control: Option<Control>,
    /// The header of the next, incomplete frame was read and the frame is this long in total:
    /// the caller can make room for it at once.
    pub(crate) next_frame_len: Option<usize>,
}

impl Decoder {
    /// A decoder refusing messages longer than `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> Self {
        Self { max_message, inbound: BytesMut::new(), complete: 0, open_message: None }
    }

    /// Takes the whole messages decoded so far, joined, if there are any.
    pub(crate) fn take_messages(&mut self) -> Option<Bytes> {
        if self.complete == 0 {
            return None;
        }
        let messages = if self.complete == self.inbound.len() {
            // Hand the buffer over whole so that the connection keeps no allocation.
            std::mem::take(&mut self.inbound)
        } else {
            self.inbound.split_to(self.complete)
        };
        if let Some((_, start)) = &mut self.open_message {
            *start -= self.complete;
        }
        self.complete = 0;
        Some(messages.freeze())
    }

    /// Whether a data message has begun and not ended.
    #[cfg(test)]
    pub(crate) fn in_message(&self) -> bool {
        self.open_message.is_some()
    }

    /// Decodes the whole frames at the start of `input`, keeping data payloads (unmasked) for
    /// [`Decoder::take_messages`]. Stops after a control frame. Never reads past a frame that is
    /// not all there.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Result<Decoded, FrameError> {
        let inbound = &mut self.inbound;
        let mut decoded = Decoded::default();
        loop {
            let rest = &input[decoded.consumed..];
            let Some(header) = parse_header(rest)? else {
                return Ok(decoded);
            };
            let payload_len = header.payload_len;
            let is_control = header.opcode & 0x8 != 0;
            if is_control {
                if !header.fin {
                    return Err(FrameError::Protocol("fragmented control frame"));
                }
                if payload_len > 125 {
                    return Err(FrameError::Protocol("control frame longer than 125 bytes"));
                }
            } else {
                match (header.opcode, self.open_message) {
                    (OP_CONTINUATION, None) => {
                        return Err(FrameError::Protocol("continuation frame outside a message"));
                    }
                    (OP_TEXT | OP_BINARY, Some(_)) => {
                        return Err(FrameError::Protocol("new message before the last one ended"));
                    }
                    _ => {}
                }
                let so_far = self.open_message.map_or(0, |(_, start)| inbound.len() - start);
                if (so_far as u64).saturating_add(payload_len) > self.max_message as u64 {
                    return Err(FrameError::TooBig { limit: self.max_message });
                }
            }
            // Bounded above: control frames by 125, data frames by `max_message`.
            let payload_len = payload_len as usize;
            let frame_len = header.header_len + payload_len;
            if rest.len() < frame_len {
                decoded.next_frame_len = Some(frame_len);
                return Ok(decoded);
            }
            let payload = &rest[header.header_len..frame_len];
            decoded.consumed += frame_len;
            match header.opcode {
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    let (opcode, start) = match self.open_message {
                        Some(open) => open,
                        None => (header.opcode, inbound.len()),
                    };
                    let at = inbound.len();
                    inbound.extend_from_slice(payload);
                    unmask(&mut inbound[at..], header.mask);
                    if header.fin {
                        self.open_message = None;
                        if opcode == OP_TEXT && std::str::from_utf8(&inbound[start..]).is_err() {
                            return Err(FrameError::InvalidUtf8);
                        }
                        self.complete = inbound.len();
                    } else {
                        self.open_message = Some((opcode, start));
                    }
                }
                OP_PING => {
                    let mut data = payload.to_vec();
                    unmask(&mut data, header.mask);
                    decoded.control = Some(Control::Ping(Bytes::from(data)));
                    return Ok(decoded);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    decoded.control = Some(Control::Close(close_code(payload, header.mask)?));
                    return Ok(decoded);
                }
                _ => return Err(FrameError::Protocol("unknown opcode")),
            }
        }
    }
}

/// A parsed client frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    payload_len: u64,
    header_len: usize,
}

/// Parses the header at the start of `input`; `None` when it is not all there yet.
fn parse_header(input: &[u8]) -> Result<Option<Header>, FrameError> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set (no extension was agreed)"));
    }
    let opcode = first & 0x0F;
    if !matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err(FrameError::Protocol("unknown opcode"));
    }
    if second & 0x80 == 0 {
        return Err(FrameError::Protocol("client frame is not masked"));
    }
    let (payload_len, length_bytes) = match second & 0x7F {
        126 => match input.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(FrameError::Protocol("payload length has its top bit set"));
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    let mask_at = 2 + length_bytes;
    let Some(mask) = input.get(mask_at..mask_at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header { fin: first & 0x80 != 0, opcode, mask: mask.try_into().expect("4 bytes"), payload_len, header_len: mask_at + 4 }))
}

/// The status code of a close frame's (masked) payload.
fn close_code(payload: &[u8], mask: [u8; 4]) -> Result<Option<u16>, FrameError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(FrameError::Protocol("close frame with a one-byte payload")),
        _ => {
            let mut data = payload.to_vec();
            unmask(&mut data, mask);
            if std::str::from_utf8(&data[2..]).is_err() {
                return Err(FrameError::InvalidUtf8);
            }
            let code = u16::from_be_bytes([data[0], data[1]]);
            let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !valid {
                return Err(FrameError::Protocol("invalid close code"));
            }
            Ok(Some(code))
        }
    }
}

/// Applies a client's masking key to a payload that starts at offset 0 of the frame.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    // Eight bytes at a time: the mask repeated twice, XORed as one word.
    let word = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// The header of an unmasked, final server frame carrying `payload_len` bytes: the bytes and how
/// many of them are used.
pub(crate) fn server_header(opcode: u8, payload_len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut header = [0u8; MAX_HEADER];
    header[0] = 0x80 | opcode;
    let used = if payload_len < 126 {
        header[1] = payload_len as u8;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    (header, used)
}

/// A whole unmasked server control frame (payload at most 125 bytes, longer ones are cut).
pub(crate) fn server_control_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let payload = &payload[..payload.len().min(125)];
    let (header, used) = server_header(opcode, payload.len());
    let mut frame = Vec::with_capacity(used + payload.len());
    frame.extend_from_slice(&header[..used]);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// A server close frame with `code` and no reason.
pub(crate) fn server_close_frame(code: u16) -> Bytes {
    server_control_frame(OP_CLOSE, &code.to_be_bytes())
}

/// A server close frame with `code` and a UTF-8 `reason` (at most 123 bytes, as the control
/// frame's payload limit leaves).
pub(crate) fn server_close_frame_with_reason(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    server_control_frame(OP_CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame, as a browser sends it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        let mut masked = payload.to_vec();
        unmask(&mut masked, MASK);
        frame.extend_from_slice(&masked);
        frame
    }

    /// Decodes `input`; returns the result, the whole messages and their length.
    fn decode_all(decoder: &mut Decoder, input: &[u8]) -> (Result<Decoded, FrameError>, Bytes, usize) {
        let result = decoder.decode(input);
        let messages = decoder.take_messages().unwrap_or_default();
        let len = messages.len();
        (result, messages, len)
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
        let input = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (result, inbound, complete) = decode_all(&mut Decoder::new(1024), &input);
        assert_eq!(result.unwrap().consumed, input.len());
        assert_eq!(&inbound[..], b"Hello");
        assert_eq!(complete, 5);
    }

    #[test]
    fn several_messages_in_one_read_are_joined() {
        let mut input = client_frame(true, OP_TEXT, b"{\"a\":1}\x1e");
        input.extend(client_frame(true, OP_TEXT, b"{\"b\":2}\x1e"));
        let (result, inbound, complete) = decode_all(&mut Decoder::new(1024), &input);
        assert_eq!(result.unwrap().consumed, input.len());
        assert_eq!(&inbound[..], b"{\"a\":1}\x1e{\"b\":2}\x1e");
        assert_eq!(complete, inbound.len());
    }

    #[test]
    fn lengths_of_every_width_round_trip() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let input = client_frame(true, OP_BINARY, &payload);
            let (result, inbound, complete) = decode_all(&mut Decoder::new(1 << 20), &input);
            assert_eq!(result.unwrap().consumed, input.len(), "len {len}");
            assert_eq!(&inbound[..], &payload[..], "len {len}");
            assert_eq!(complete, len);
        }
    }

    #[test]
    fn a_frame_split_anywhere_waits_for_the_rest() {
        let input = client_frame(true, OP_TEXT, &[b'x'; 300]);
        for cut in 0..input.len() {
            let mut decoder = Decoder::new(1024);
            let (result, inbound, complete) = decode_all(&mut decoder, &input[..cut]);
            let decoded = result.unwrap();
            assert_eq!(decoded.consumed, 0, "cut {cut}");
            assert!(inbound.is_empty());
            assert_eq!(complete, 0);
            if cut >= 8 {
                assert_eq!(decoded.next_frame_len, Some(input.len()), "cut {cut}");
            }
        }
    }

    #[test]
    fn fragmented_message_is_complete_only_at_its_final_frame() {
        let mut decoder = Decoder::new(1024);
        // A whole message first, then the first fragment of the next one.
        let mut input = client_frame(true, OP_BINARY, b"one");
        input.extend(client_frame(false, OP_TEXT, "h\u{e9}".as_bytes()));
        let decoded = decoder.decode(&input).unwrap();
        assert_eq!(decoded.consumed, input.len());
        assert_eq!(decoder.take_messages().as_deref(), Some(&b"one"[..]));
        assert!(decoder.in_message());
        assert_eq!(decoder.take_messages(), None);
        // A ping may arrive between fragments.
        let ping = client_frame(true, OP_PING, b"p");
        let decoded = decoder.decode(&ping).unwrap();
        assert_eq!(decoded.control, Some(Control::Ping(Bytes::from_static(b"p"))));
        let last = client_frame(true, OP_CONTINUATION, b"llo");
        decoder.decode(&last).unwrap();
        assert_eq!(decoder.take_messages().as_deref(), Some("h\u{e9}llo".as_bytes()));
        assert!(!decoder.in_message());
    }

    #[test]
    fn utf8_split_across_fragments_is_accepted() {
        let text = "\u{1F600}".as_bytes();
        let mut input = client_frame(false, OP_TEXT, &text[..2]);
        input.extend(client_frame(true, OP_CONTINUATION, &text[2..]));
        let (result, inbound, _) = decode_all(&mut Decoder::new(1024), &input);
        result.unwrap();
        assert_eq!(&inbound[..], text);
    }

    #[test]
    fn bad_frames_are_refused_with_the_right_close_code() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // Unmasked client frame.
            (vec![0x81, 0x01, b'a'], CLOSE_PROTOCOL_ERROR),
            // Reserved bit (compression was never agreed).
            (
                {
                    let mut f = client_frame(true, OP_TEXT, b"a");
                    f[0] |= 0x40;
                    f
                },
                CLOSE_PROTOCOL_ERROR,
            ),
            // Unknown opcodes.
            (client_frame(true, 0x3, b"a"), CLOSE_PROTOCOL_ERROR),
            (client_frame(true, 0xB, b"a"), CLOSE_PROTOCOL_ERROR),
            // Continuation with no message.
            (client_frame(true, OP_CONTINUATION, b"a"), CLOSE_PROTOCOL_ERROR),
            // Fragmented and oversized control frames.
            (client_frame(false, OP_PING, b"a"), CLOSE_PROTOCOL_ERROR),
            (client_frame(true, OP_PING, &[0; 126]), CLOSE_PROTOCOL_ERROR),
            // Close payloads: one byte, a reserved code, a reason that is not UTF-8.
            (client_frame(true, OP_CLOSE, &[3]), CLOSE_PROTOCOL_ERROR),
            (client_frame(true, OP_CLOSE, &1005u16.to_be_bytes()), CLOSE_PROTOCOL_ERROR),
            (client_frame(true, OP_CLOSE, &[0x03, 0xE8, 0xFF]), CLOSE_INVALID_DATA),
            // Text that is not UTF-8.
            (client_frame(true, OP_TEXT, &[0xC3, 0x28]), CLOSE_INVALID_DATA),
            // Over the limit, refused from the header alone.
            (client_frame(true, OP_BINARY, &[0; 2000])[..20].to_vec(), CLOSE_TOO_BIG),
        ];
        for (input, code) in cases {
            let (result, _, _) = decode_all(&mut Decoder::new(1024), &input);
            let error = result.expect_err("must be refused");
            assert_eq!(error.close_code(), code, "{error} for {input:02x?}");
        }
    }

    #[test]
    fn a_new_message_inside_a_fragmented_one_is_refused() {
        let mut input = client_frame(false, OP_TEXT, b"a");
        input.extend(client_frame(true, OP_TEXT, b"b"));
        let (result, _, _) = decode_all(&mut Decoder::new(1024), &input);
        assert!(matches!(result, Err(FrameError::Protocol(_))));
    }

    #[test]
    fn fragments_adding_up_past_the_limit_are_refused() {
        let mut input = client_frame(false, OP_BINARY, &[1; 600]);
        input.extend(client_frame(true, OP_CONTINUATION, &[1; 600]));
        let (result, _, _) = decode_all(&mut Decoder::new(1000), &input);
        assert_eq!(result.unwrap_err(), FrameError::TooBig { limit: 1000 });
    }

    #[test]
    fn a_64_bit_length_with_the_top_bit_is_refused() {
        let mut input = vec![0x82, 0xFF];
        input.extend_from_slice(&u64::MAX.to_be_bytes());
        input.extend_from_slice(&MASK);
        let (result, _, _) = decode_all(&mut Decoder::new(usize::MAX), &input);
        assert!(matches!(result, Err(FrameError::Protocol(_))));
    }

    #[test]
    fn close_frames_report_their_code() {
        let input = client_frame(true, OP_CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']);
        let (result, _, _) = decode_all(&mut Decoder::new(1024), &input);
        assert_eq!(result.unwrap().control, Some(Control::Close(Some(1000))));
        let input = client_frame(true, OP_CLOSE, &[]);
        let (result, _, _) = decode_all(&mut Decoder::new(1024), &input);
        assert_eq!(result.unwrap().control, Some(Control::Close(None)));
    }

    #[test]
    fn server_headers_use_the_shortest_length() {
        assert_eq!(server_header(OP_TEXT, 5), ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2));
        let (header, used) = server_header(OP_BINARY, 300);
        assert_eq!(&header[..used], &[0x82, 126, 0x01, 0x2C]);
        let (header, used) = server_header(OP_BINARY, 70_000);
        assert_eq!(&header[..used], &[0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]);
        assert_eq!(&server_close_frame(1009)[..], &[0x88, 2, 0x03, 0xF1]);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(0..64);
            let input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let mut decoder = Decoder::new(4096);
            let _ = decode_all(&mut decoder, &input);
        }
    }
}
