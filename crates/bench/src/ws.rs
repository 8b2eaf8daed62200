//! A small WebSocket client (RFC 6455) for the bench's connections.
//!
//! The bench holds up to 15,000 sockets per worker process on a single-threaded runtime that
//! shares the machine's cores with the server it measures, so the client must cost little per
//! socket and per wake-up:
//!
//! * the upgrade is a hand-written HTTP/1.1 request; the response head is checked for `101` and
//!   the `Sec-WebSocket-Accept` of our key;
//! * server frames are decoded as a stream ([`Decoder`]): the payload of a data frame is handed
//!   on in pieces as it arrives, straight from the read buffer, because SignalR frames its own
//!   messages (record separators, length prefixes) and the bench reassembles those. The decoder
//!   keeps at most a partial frame header (≤ 14 bytes) and a partial control payload (≤ 125
//!   bytes) between reads, so a connection needs no read buffer of its own;
//! * [`WsStream::poll_read`] reads once per wake-up into a buffer the caller provides (one per
//!   worker) and takes a short read as "drained", so a wake-up costs one `recv`, not two;
//! * client frames are masked with a random key and written at once.

use std::io;
use std::task::{Context, Poll, ready};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// Close code 1000: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;

/// The GUID RFC 6455 appends to the key to compute `Sec-WebSocket-Accept`.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The longest upgrade response head the client reads.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header a server sends: 2 bytes and an 8-byte length (servers do not mask).
const MAX_SERVER_HEADER: usize = 10;

/// What went wrong on a WebSocket.
#[derive(Debug, Error)]
pub enum WsError {
    /// The socket failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The server did not accept the upgrade.
    #[error("upgrade refused: {0}")]
    Upgrade(String),
    /// The server's bytes are not valid WebSocket frames.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The server sent a close frame.
    #[error("the server closed the WebSocket{}", describe_close(*.code, .reason))]
    Closed {
        /// The close code, if the frame had one.
        code: Option<u16>,
        /// The close reason (lossy UTF-8).
        reason: String,
    },
    /// The server closed the TCP connection without a close frame.
    #[error("the server closed the TCP connection without a close frame")]
    Eof,
}

impl WsError {
    /// Whether the server ended the connection (close frame or end of stream).
    pub fn is_close(&self) -> bool {
        matches!(self, WsError::Closed { .. } | WsError::Eof)
    }
}

fn describe_close(code: Option<u16>, reason: &str) -> String {
    match (code, reason.is_empty()) {
        (None, _) => String::new(),
        (Some(code), true) => format!(" (code {code})"),
        (Some(code), false) => format!(" (code {code}: {reason})"),
    }
}

// ---------------------------------------------------------------------------------------------
// The upgrade handshake.

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
pub fn new_key() -> String {
    BASE64.encode(rand::random::<[u8; 16]>())
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with.
pub fn accept_for(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// The upgrade request for `target` (path and query) on `host` (`host:port`).
pub fn upgrade_request(host: &str, target: &str, key: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

/// Reads the upgrade response head at the front of `buf`: `Ok(None)` while it is incomplete,
/// `Ok(Some(head length))` for a `101` that accepted `key`, an error otherwise.
pub fn read_upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, WsError> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(WsError::Upgrade(format!("response head longer than {MAX_RESPONSE_HEAD} bytes")));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(WsError::Upgrade(format!("not an HTTP/1 response: {status_line:?}")));
    }
    if status != "101" {
        let body = &buf[end + 4..];
        let body = String::from_utf8_lossy(&body[..body.len().min(200)]);
        return Err(WsError::Upgrade(format!(
            "the server answered {status_line:?} instead of 101{}",
            if body.is_empty() { String::new() } else { format!(": {body}") }
        )));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= value.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value.to_owned());
        }
    }
    if !upgrade {
        return Err(WsError::Upgrade("no `Upgrade: websocket` header".into()));
    }
    if !connection {
        return Err(WsError::Upgrade("no `Connection: upgrade` header".into()));
    }
    let expected = accept_for(key);
    match accept {
        Some(accept) if accept == expected => Ok(Some(end + 4)),
        Some(accept) => Err(WsError::Upgrade(format!("Sec-WebSocket-Accept is {accept:?}, expected {expected:?}"))),
        None => Err(WsError::Upgrade("no Sec-WebSocket-Accept header".into())),
    }
}

// ---------------------------------------------------------------------------------------------
// Client frames.

/// Appends one final (FIN) client frame of `opcode` carrying `payload`, masked with `mask`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// XORs `data` with the repeating `mask` (masking and unmasking are the same).
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

/// A random masking key.
fn new_mask() -> [u8; 4] {
    rand::random()
}

// ---------------------------------------------------------------------------------------------
// Server frames.

/// Decodes server frames as a stream; see the module documentation.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Header bytes of the next frame, when a read ended inside the header.
    header: [u8; MAX_SERVER_HEADER],
    header_len: u8,
    /// Inside a frame's payload (its header is read).
    in_frame: bool,
    /// The opcode of the frame being read.
    opcode: u8,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// A fragmented data message is open: the next data frame must be a continuation.
    message_open: bool,
    /// The payload of the control frame being read; empty and unallocated otherwise.
    control: Vec<u8>,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
}

/// Parses the frame header at the front of `bytes`: `Ok(None)` if more bytes are needed,
/// else the header and its length.
fn parse_header(bytes: &[u8]) -> Result<Option<(Header, usize)>, WsError> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set (no extension was negotiated)"));
    }
    if b1 & 0x80 != 0 {
        return Err(WsError::Protocol("the server masked a frame"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let (len, header_len) = match b1 & 0x7F {
        126 => {
            let Some(ext) = bytes.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
        }
        127 => {
            let Some(ext) = bytes.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(ext.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(WsError::Protocol("64-bit payload length with the high bit set"));
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin {
                return Err(WsError::Protocol("fragmented control frame"));
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(WsError::Protocol("control frame longer than 125 bytes"));
            }
        }
        _ => return Err(WsError::Protocol("unknown opcode")),
    }
    Ok(Some((Header { fin, opcode, len }, header_len)))
}

impl Decoder {
    /// Decodes `input`, the next bytes from the server: calls `on_data` with every piece of
    /// data-message payload (text or binary, in order; pieces of one message may come in
    /// several calls) and appends a masked pong to `replies` for every ping. Returns
    /// `Ok(false)` as soon as `on_data` returns false (the rest of `input` is dropped),
    /// `Ok(true)` once all of `input` is consumed, [`WsError::Closed`] for a close frame and
    /// [`WsError::Protocol`] for bytes that are not valid server frames.
    pub fn feed(&mut self, mut input: &[u8], replies: &mut Vec<u8>, mut on_data: impl FnMut(&[u8]) -> bool) -> Result<bool, WsError> {
        loop {
            if !self.in_frame {
                if input.is_empty() {
                    return Ok(true);
                }
                let (header, used) = if self.header_len == 0 {
                    match parse_header(input)? {
                        Some(found) => found,
                        None => {
                            self.stash_header(input);
                            return Ok(true);
                        }
                    }
                } else {
                    let had = usize::from(self.header_len);
                    let take = (MAX_SERVER_HEADER - had).min(input.len());
                    self.header[had..had + take].copy_from_slice(&input[..take]);
                    match parse_header(&self.header[..had + take])? {
                        Some((header, len)) => {
                            self.header_len = 0;
                            (header, len - had)
                        }
                        None => {
                            self.header_len = (had + take) as u8;
                            return Ok(true);
                        }
                    }
                };
                input = &input[used..];
                self.start_frame(header)?;
            }
            let take = self.remaining.min(input.len() as u64) as usize;
            let (piece, rest) = input.split_at(take);
            input = rest;
            self.remaining -= take as u64;
            let control = self.opcode >= OP_CLOSE;
            if control {
                self.control.extend_from_slice(piece);
            } else if !piece.is_empty() && !on_data(piece) {
                return Ok(false);
            }
            if self.remaining > 0 {
                return Ok(true);
            }
            self.in_frame = false;
            if control {
                self.end_control(replies)?;
            }
        }
    }

    fn stash_header(&mut self, input: &[u8]) {
        // `parse_header` needs at most MAX_SERVER_HEADER bytes, so a header it could not
        // parse is shorter than that.
        self.header[..input.len()].copy_from_slice(input);
        self.header_len = input.len() as u8;
    }

    fn start_frame(&mut self, header: Header) -> Result<(), WsError> {
        match header.opcode {
            OP_CONTINUATION => {
                if !self.message_open {
                    return Err(WsError::Protocol("continuation frame without a message to continue"));
                }
                self.message_open = !header.fin;
            }
            OP_TEXT | OP_BINARY => {
                if self.message_open {
                    return Err(WsError::Protocol("new data message before the previous one ended"));
                }
                self.message_open = !header.fin;
            }
            _ => self.control.clear(),
        }
        self.opcode = header.opcode;
        self.remaining = header.len;
        self.in_frame = true;
        Ok(())
    }

    fn end_control(&mut self, replies: &mut Vec<u8>) -> Result<(), WsError> {
        let payload = std::mem::take(&mut self.control);
        match self.opcode {
            OP_PING => encode_frame(replies, OP_PONG, &payload, new_mask()),
            OP_CLOSE => {
                return Err(match payload.len() {
                    0 => WsError::Closed { code: None, reason: String::new() },
                    1 => WsError::Protocol("close frame with a 1-byte payload"),
                    _ => WsError::Closed {
                        code: Some(u16::from_be_bytes([payload[0], payload[1]])),
                        reason: String::from_utf8_lossy(&payload[2..]).into_owned(),
                    },
                });
            }
            _ => {} // a pong: nothing to do
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The connection.

/// An open client WebSocket.
#[derive(Debug)]
pub struct WsStream {
    stream: TcpStream,
    decoder: Decoder,
    /// Opcode of the data frames this client sends.
    data_opcode: u8,
    /// Encoded frames not written yet (pongs, or the frame being sent).
    outgoing: Vec<u8>,
}

impl WsStream {
    /// Upgrades `stream` to a WebSocket: `host` is `host:port`, `target` the path and query.
    /// Data messages go out as Binary frames if `binary`, else as Text. Returns the stream and
    /// any data payload bytes that arrived right after the upgrade response.
    pub async fn connect(mut stream: TcpStream, host: &str, target: &str, binary: bool) -> Result<(Self, Vec<u8>), WsError> {
        let key = new_key();
        stream.write_all(upgrade_request(host, target, &key).as_bytes()).await?;
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        let used = loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(WsError::Upgrade("the server closed the connection before answering".into()));
            }
            head.extend_from_slice(&chunk[..n]);
            if let Some(used) = read_upgrade_response(&head, &key)? {
                break used;
            }
        };
        let mut ws =
            Self { stream, decoder: Decoder::default(), data_opcode: if binary { OP_BINARY } else { OP_TEXT }, outgoing: Vec::new() };
        let mut data = Vec::new();
        ws.feed(&head[used..], |piece| {
            data.extend_from_slice(piece);
            true
        })?;
        ws.flush().await?;
        Ok((ws, data))
    }

    /// A WebSocket over `stream` as if the upgrade had been done (text frames).
    #[cfg(test)]
    pub fn for_tests(stream: TcpStream) -> Self {
        Self { stream, decoder: Decoder::default(), data_opcode: OP_TEXT, outgoing: Vec::new() }
    }

    /// Decodes `input` read from this socket; see [`Decoder::feed`]. Pongs are queued for
    /// [`WsStream::flush`].
    pub fn feed(&mut self, input: &[u8], on_data: impl FnMut(&[u8]) -> bool) -> Result<bool, WsError> {
        self.decoder.feed(input, &mut self.outgoing, on_data)
    }

    /// Whether frames wait for [`WsStream::flush`].
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Writes the queued frames.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.outgoing.is_empty() {
            self.stream.write_all(&self.outgoing).await?;
            self.outgoing.clear();
        }
        Ok(())
    }

    /// Sends `payload` as one data message (Text or Binary, as chosen at connect).
    pub async fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        encode_frame(&mut self.outgoing, self.data_opcode, payload, new_mask());
        self.flush().await
    }

    /// Waits until the socket may have bytes to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Reads once into `buf` when the socket is readable: the byte count, 0 at end of stream.
    ///
    /// A read that does not fill `buf` drained the socket, so it also clears the readiness
    /// tokio keeps for it: the next call waits for the next epoll edge instead of making a
    /// `recv` that would only return `EAGAIN`. (Tokio clears readiness only if no new event
    /// arrived since it was observed, so data that lands meanwhile still wakes the task.)
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            let capacity = buf.len();
            let mut short = 0;
            let result = self.stream.try_io(Interest::READABLE, || {
                let n = self.stream.try_read(buf)?;
                if n > 0 && n < capacity {
                    short = n;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match result {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if short > 0 {
                        return Poll::Ready(Ok(short));
                    }
                    // Readiness is cleared; poll again to register for the next edge.
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Reads what the socket has without waiting and appends the data payload bytes to `data`;
    /// queues pongs for [`WsStream::flush`]. For the connection-setup and sender paths.
    pub fn read_available(&mut self, data: &mut Vec<u8>) -> Result<(), WsError> {
        let mut chunk = [0u8; 16 * 1024];
        // Bounded, so one busy socket cannot hold the thread; readiness stays set if it stops
        // early, so the next `readable` returns at once.
        for _ in 0..16 {
            let n = match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(WsError::Eof),
                Ok(n) => n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            self.feed(&chunk[..n], |piece| {
                data.extend_from_slice(piece);
                true
            })?;
        }
        Ok(())
    }

    /// Waits for data and appends its payload bytes to `data` (at least one byte unless an
    /// error ends the connection). Answers pings.
    pub async fn read_data(&mut self, data: &mut Vec<u8>) -> Result<(), WsError> {
        let before = data.len();
        while data.len() == before {
            self.readable().await?;
            self.read_available(data)?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends a normal close frame and waits for the server's close frame or end of stream,
    /// discarding data meanwhile. Bound it with a timeout.
    pub async fn close(&mut self) {
        encode_frame(&mut self.outgoing, OP_CLOSE, &CLOSE_NORMAL.to_be_bytes(), new_mask());
        if self.flush().await.is_err() {
            return;
        }
        let mut discard = Vec::new();
        while self.read_data(&mut discard).await.is_ok() {
            discard.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked) with explicit first byte.
    fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        let len = payload.len();
        if len < 126 {
            out.push(len as u8);
        } else if len <= 0xFFFF {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        raw_frame(0x80 | opcode, payload)
    }

    /// Feeds `input` in pieces at the given cut points; returns the data, the replies and the
    /// final result.
    fn feed_split(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>, Result<bool, WsError>) {
        let mut decoder = Decoder::default();
        let (mut data, mut replies) = (Vec::new(), Vec::new());
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let result = decoder.feed(&input[start..cut], &mut replies, |piece| {
                assert!(!piece.is_empty());
                data.extend_from_slice(piece);
                true
            });
            start = cut;
            match result {
                Ok(true) => {}
                other => return (data, replies, other),
            }
        }
        (data, replies, Ok(true))
    }

    fn feed_all(input: &[u8]) -> (Vec<u8>, Vec<u8>, Result<bool, WsError>) {
        feed_split(input, &[])
    }

    /// Decodes one masked client frame: (fin, opcode, unmasked payload, frame length).
    fn decode_client_frame(bytes: &[u8]) -> (bool, u8, Vec<u8>, usize) {
        assert_eq!(bytes[1] & 0x80, 0x80, "client frames are masked");
        let (len, mut at) = match bytes[1] & 0x7F {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        let mask: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        at += 4;
        let mut payload = bytes[at..at + len].to_vec();
        apply_mask(&mut payload, mask);
        (bytes[0] & 0x80 != 0, bytes[0] & 0x0F, payload, at + len)
    }

    #[test]
    fn accept_matches_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_for("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let key = new_key();
        assert_eq!(BASE64.decode(&key).unwrap().len(), 16);
        assert_ne!(key, new_key());
    }

    #[test]
    fn upgrade_request_has_the_required_headers() {
        let request = upgrade_request("127.0.0.1:5000", "/hub?id=a%2Bb", "KEY");
        assert!(request.starts_with("GET /hub?id=a%2Bb HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n"));
        for header in ["Upgrade: websocket\r\n", "Connection: Upgrade\r\n", "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Key: KEY\r\n"] {
            assert!(request.contains(header), "{header}");
        }
        assert!(request.ends_with("\r\n\r\n"));
    }

    #[test]
    fn upgrade_response_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        let head = ok.len() - 4;
        assert_eq!(read_upgrade_response(ok, key).unwrap(), Some(head));
        for cut in 0..head {
            assert_eq!(read_upgrade_response(&ok[..cut], key).unwrap(), None);
        }
        let wrong_accept =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        let error = read_upgrade_response(wrong_accept, key).unwrap_err();
        assert!(error.to_string().contains("Sec-WebSocket-Accept"), "{error}");
        let no_accept = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert!(read_upgrade_response(no_accept, key).is_err());
        let no_upgrade =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(read_upgrade_response(no_upgrade, key).is_err());
        let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNo such h";
        let error = read_upgrade_response(refused, key).unwrap_err().to_string();
        assert!(error.contains("404 Not Found") && error.contains("No such h"), "{error}");
        assert!(read_upgrade_response(b"SSH-2.0\r\n\r\n", key).is_err());
        let endless = vec![b'a'; MAX_RESPONSE_HEAD + 1];
        assert!(read_upgrade_response(&endless, key).is_err());
    }

    #[test]
    fn client_frames_are_masked_with_every_length_width() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OP_BINARY, &payload, [1, 2, 3, 4]);
            let (fin, opcode, unmasked, used) = decode_client_frame(&out);
            assert!(fin);
            assert_eq!(opcode, OP_BINARY);
            assert_eq!(unmasked, payload, "len {len}");
            assert_eq!(used, out.len());
            let header = match len {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), header + 4 + len, "len {len}");
            if len >= 4 {
                assert_ne!(&out[header + 4..header + 8], &payload[..4], "masked");
            }
        }
    }

    #[test]
    fn masking_matches_the_bytewise_definition() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..20 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask);
            let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn server_frames_of_every_length_width() {
        for len in [0, 1, 125, 126, 127, 1000, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let input = frame(OP_TEXT, &payload);
            let (data, replies, result) = feed_all(&input);
            assert!(result.unwrap());
            assert_eq!(data, payload, "len {len}");
            assert!(replies.is_empty());
        }
    }

    #[test]
    fn fragmented_messages_are_joined_and_interleaved_controls_answered() {
        let mut input = raw_frame(OP_TEXT, b"hel"); // FIN clear
        input.extend(frame(OP_PING, b"p1"));
        input.extend(raw_frame(OP_CONTINUATION, b"lo "));
        input.extend(frame(OP_PONG, b""));
        input.extend(frame(OP_CONTINUATION, b"world"));
        input.extend(frame(OP_BINARY, b"!"));
        let (data, replies, result) = feed_all(&input);
        assert!(result.unwrap());
        assert_eq!(data, b"hello world!");
        let (fin, opcode, payload, used) = decode_client_frame(&replies);
        assert!(fin);
        assert_eq!((opcode, payload.as_slice(), used), (OP_PONG, &b"p1"[..], replies.len()));
    }

    #[test]
    fn a_stream_split_at_every_byte_decodes_the_same() {
        let mut input = frame(OP_TEXT, b"first\x1e");
        input.extend(raw_frame(OP_BINARY, &[7u8; 300])); // 16-bit length, FIN clear
        input.extend(frame(OP_PING, b"are you there"));
        input.extend(frame(OP_CONTINUATION, &[9u8; 70_000])); // 64-bit length
        input.extend(frame(OP_TEXT, b""));
        input.extend(frame(OP_TEXT, b"last"));
        input.extend(frame(OP_CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']));
        let mut expected = b"first\x1e".to_vec();
        expected.extend([7u8; 300]);
        expected.extend([9u8; 70_000]);
        expected.extend(b"last");
        let check = |(data, replies, result): (Vec<u8>, Vec<u8>, Result<bool, WsError>)| {
            assert_eq!(data, expected);
            let (_, opcode, payload, _) = decode_client_frame(&replies);
            assert_eq!((opcode, payload.as_slice()), (OP_PONG, &b"are you there"[..]));
            match result {
                Err(WsError::Closed { code, reason }) => {
                    assert_eq!((code, reason.as_str()), (Some(1000), "bye"));
                }
                other => panic!("{other:?}"),
            }
        };
        check(feed_all(&input));
        // One cut anywhere in the headers and the first 400 bytes, then two cuts.
        for cut in 0..400.min(input.len()) {
            check(feed_split(&input, &[cut]));
        }
        for cut in (0..input.len()).step_by(97) {
            check(feed_split(&input, &[cut / 2, cut]));
        }
        // Byte by byte.
        let every: Vec<usize> = (1..input.len()).collect();
        check(feed_split(&input, &every));
    }

    #[test]
    fn close_frames_report_their_code_and_reason() {
        match feed_all(&frame(OP_CLOSE, b"")).2 {
            Err(WsError::Closed { code: None, reason }) => assert!(reason.is_empty()),
            other => panic!("{other:?}"),
        }
        let error = feed_all(&frame(OP_CLOSE, &[0x03, 0xF0, b'x'])).2.unwrap_err();
        assert_eq!(error.to_string(), "the server closed the WebSocket (code 1008: x)");
        assert!(error.is_close());
        // Data after a close frame is not handed on.
        let mut input = frame(OP_CLOSE, &[0x03, 0xE8]);
        input.extend(frame(OP_TEXT, b"late"));
        let (data, _, result) = feed_all(&input);
        assert!(data.is_empty());
        assert!(result.unwrap_err().is_close());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (raw_frame(0x80 | 0x40 | OP_TEXT, b"x"), "reserved"),
            (raw_frame(0x80 | 0x10 | OP_TEXT, b"x"), "reserved"),
            (frame(0x3, b"x"), "unknown opcode"),
            (frame(0xB, b""), "unknown opcode"),
            (frame(OP_CONTINUATION, b"x"), "continuation"),
            (raw_frame(OP_PING, b""), "fragmented control"),
            (frame(OP_PING, &[0; 126]), "longer than 125"),
            (frame(OP_CLOSE, &[3]), "1-byte"),
            ([raw_frame(OP_TEXT, b"a"), frame(OP_TEXT, b"b")].concat(), "before the previous one ended"),
            (vec![0x81, 0x85, 1, 2, 3, 4, b'x'], "masked"),
            ([&[0x82, 127, 0x80][..], &[0; 7][..]].concat(), "high bit set"),
        ];
        for (input, expected) in cases {
            for cut in 0..input.len() {
                let (_, _, result) = feed_split(&input, &[cut]);
                match result {
                    Err(WsError::Protocol(message)) => {
                        assert!(message.contains(expected), "{message} vs {expected}")
                    }
                    other => panic!("{input:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (state % 64) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = feed_all(&input);
            let _ = feed_split(&input, &[len / 3]);
        }
    }

    #[test]
    fn on_data_can_stop_decoding() {
        let input = [frame(OP_TEXT, b"one"), frame(OP_TEXT, b"two")].concat();
        let mut decoder = Decoder::default();
        let mut seen = Vec::new();
        let result = decoder.feed(&input, &mut Vec::new(), |piece| {
            seen.push(piece.to_vec());
            false
        });
        assert!(!result.unwrap());
        assert_eq!(seen, vec![b"one".to_vec()]);
    }

    #[tokio::test]
    async fn talks_to_a_server_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while memchr::memmem::find(&request, b"\r\n\r\n").is_none() {
                let n = socket.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
            }
            let text = String::from_utf8(request).unwrap();
            assert!(text.starts_with("GET /hub?id=x HTTP/1.1\r\n"), "{text}");
            let key = text.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
            let mut response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept_for(key)
            )
            .into_bytes();
            // Data right behind the head, and a ping.
            response.extend(frame(OP_TEXT, b"early"));
            response.extend(frame(OP_PING, b"pp"));
            socket.write_all(&response).await.unwrap();
            // Expect the pong, then a text frame, then a close.
            let mut got = Vec::new();
            let mut frames = Vec::new();
            while frames.len() < 3 {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
                while got.len() >= 2 {
                    let len = (got[1] & 0x7F) as usize;
                    if got.len() < 6 + len {
                        break;
                    }
                    let (_, opcode, payload, used) = decode_client_frame(&got);
                    frames.push((opcode, payload));
                    got.drain(..used);
                }
            }
            assert_eq!(frames[0], (OP_PONG, b"pp".to_vec()));
            assert_eq!(frames[1], (OP_TEXT, b"hello".to_vec()));
            assert_eq!(frames[2], (OP_CLOSE, vec![0x03, 0xE8]));
            socket.write_all(&frame(OP_CLOSE, &[0x03, 0xE8])).await.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut ws, early) = WsStream::connect(stream, &addr.to_string(), "/hub?id=x", false).await.unwrap();
        assert_eq!(early, b"early");
        ws.send(b"hello").await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), ws.close()).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn poll_read_takes_a_short_read_as_drained() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let ws = WsStream::for_tests(client);
        let mut buf = [0u8; 8];
        server.write_all(b"abc").await.unwrap();
        let n = std::future::poll_fn(|cx| ws.poll_read(cx, &mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"abc");
        // Readiness was cleared: nothing is ready now, and more data wakes the reader again.
        let pending = std::future::poll_fn(|cx| Poll::Ready(ws.poll_read(cx, &mut buf))).await;
        assert!(pending.is_pending());
        server.write_all(b"0123456789").await.unwrap();
        let n = std::future::poll_fn(|cx| ws.poll_read(cx, &mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"01234567", "a full read");
        let n = std::future::poll_fn(|cx| ws.poll_read(cx, &mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"89");
        drop(server);
        let n = std::future::poll_fn(|cx| ws.poll_read(cx, &mut buf)).await.unwrap();
        assert_eq!(n, 0, "end of stream");
    }
}
