//! Entry points for the coverage-guided fuzz targets in `fuzz/` (see `docs/fuzzing.md`).
//!
//! Not part of the crate's API: each function drives one of the crate's private parsers (the
//! WebSocket frame decoder, query-string, percent and cookie decoding, negotiate version
//! selection, connection ids, the HTTP request-head checks) exactly as the transports do, so a
//! fuzz target reaches the real code rather than a copy of it.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use crate::server::head::{BodyFraming, ChunkedScanner, HeadScanner, Scan, framing};
use crate::websocket::frame::{Control, Decoder};

/// One thing the WebSocket reader produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebSocketEvent {
    /// Whole data messages (their payloads joined, unmasked), as handed to the application.
    Data(Bytes),
    /// A ping, answered with a pong carrying this payload.
    Ping(Bytes),
    /// The client closed, with its close code if it gave one.
    Close(Option<u16>),
    /// The frames broke the protocol; the server closes with this code.
    Invalid(u16),
}

/// What [`websocket_read`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketRead {
    /// The events, in order; reading stops after a close or an error.
    pub events: Vec<WebSocketEvent>,
    /// The largest frame length the decoder asked the reader to make room for.
    pub largest_announced_frame: usize,
    /// The largest number of bytes the reader kept for an incomplete frame.
    pub largest_partial: usize,
}

/// Feeds `input` to the server's WebSocket frame decoder in reads of the given sizes (cycled;
/// `0` counts as 1; none: one read), keeping incomplete frames the way the socket does, with
/// messages limited to `max_message` bytes.
pub fn websocket_read(max_message: usize, input: &[u8], read_sizes: &[usize]) -> WebSocketRead {
    let mut decoder = Decoder::new(max_message);
    let mut read = WebSocketRead::default();
    let mut partial = BytesMut::new();
    let mut at = 0;
    let mut reads = read_sizes.iter().copied().cycle();
    while at < input.len() {
        let size = if read_sizes.is_empty() { input.len() } else { reads.next().unwrap_or(1).max(1) };
        let end = at.saturating_add(size).min(input.len());
        partial.extend_from_slice(&input[at..end]);
        at = end;
        // Decode what is whole, answering control frames in order, as the socket's `decode` does.
        loop {
            let decoded = match decoder.decode(&partial) {
                Ok(decoded) => decoded,
                Err(error) => {
                    if let Some(data) = decoder.take_messages() {
                        read.events.push(WebSocketEvent::Data(data));
                    }
                    read.events.push(WebSocketEvent::Invalid(error.close_code()));
                    return read;
                }
            };
            partial.advance(decoded.consumed);
            if let Some(len) = decoded.next_frame_len {
                read.largest_announced_frame = read.largest_announced_frame.max(len);
            }
            if let Some(data) = decoder.take_messages() {
                read.events.push(WebSocketEvent::Data(data));
            }
            match decoded.control {
                Some(Control::Ping(payload)) => read.events.push(WebSocketEvent::Ping(payload)),
                Some(Control::Close(code)) => {
                    read.events.push(WebSocketEvent::Close(code));
                    return read;
                }
                None => break,
            }
        }
        read.largest_partial = read.largest_partial.max(partial.len());
    }
    read
}

/// Decodes a query string into pairs, as every endpoint reads its request's query.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    crate::request::parse_query(query)
}

/// Reads the cookies of a request's `Cookie` headers (each value one header).
pub fn parse_cookies(values: &[&[u8]]) -> Vec<(String, String)> {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            headers.append(http::header::COOKIE, value);
        }
    }
    crate::request::parse_cookies(&headers)
}

/// Picks the negotiate version from a `negotiateVersion` query value (`Err` carries the message
/// the client is sent).
pub fn select_negotiate_version(requested: Option<&str>, minimum: u32) -> Result<u32, String> {
    crate::negotiate::select_version(requested, minimum).map_err(|error| error.to_string())
}

/// Reads a connection id or token a client sent (`id=` query value); `None` when it cannot be one.
pub fn parse_connection_id(text: &str) -> Option<String> {
    crate::ids::ShortId::parse(text).map(|id| id.as_str().to_owned())
}

/// What [`http_request_stream`] found in a connection's bytes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpStreamEvent {
    /// A head that passed the checks: its length, body framing and whether it asks to upgrade.
    Head {
        /// Bytes of the head, with its final empty line.
        len: usize,
        /// `Some(n)`: a body of `n` bytes; `None`: chunked.
        body_length: Option<u64>,
        /// The request asks for a protocol switch.
        wants_upgrade: bool,
    },
    /// The head was refused with this status.
    Refused(u16),
    /// A chunked body was malformed.
    BadChunkedBody,
}

/// Follows a connection's bytes the way the server's read guard does: skips empty lines between
/// requests, scans each head incrementally (reads of `read_size` bytes, at least 1) against the
/// limits, decides its body framing with httparse, and skips its body (by length or by chunk
/// framing) to the next head. Stops at the first refusal, an upgrade, or the end of the input.
pub fn http_request_stream(input: &[u8], read_size: usize, max_request_line: usize, max_headers_total: usize) -> Vec<HttpStreamEvent> {
    let read_size = read_size.max(1);
    let mut events = Vec::new();
    let mut rest = input;
    loop {
        while let Some(after) = rest.strip_prefix(b"\r\n") {
            rest = after;
        }
        if rest.is_empty() {
            return events;
        }
        let mut scanner = HeadScanner::new(max_request_line, max_headers_total);
        let mut head_len = None;
        let mut fed = 0;
        while fed < rest.len() {
            let end = (fed + read_size).min(rest.len());
            match scanner.feed(&rest[fed..end]) {
                Scan::Incomplete => fed = end,
                Scan::Complete(n) => {
                    head_len = Some(fed + n);
                    break;
                }
                Scan::Violation(violation) => {
                    events.push(HttpStreamEvent::Refused(violation.status().as_u16()));
                    return events;
                }
            }
        }
        let Some(head_len) = head_len else {
            return events;
        };
        let framed = match framing(&rest[..head_len]) {
            Ok(framed) => framed,
            Err(violation) => {
                events.push(HttpStreamEvent::Refused(violation.status().as_u16()));
                return events;
            }
        };
        let body_length = match framed.body {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::Chunked => None,
        };
        events.push(HttpStreamEvent::Head { len: head_len, body_length, wants_upgrade: framed.wants_upgrade });
        rest = &rest[head_len..];
        if framed.wants_upgrade {
            return events;
        }
        match framed.body {
            BodyFraming::Length(n) => {
                let skip = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                rest = &rest[skip..];
            }
            BodyFraming::Chunked => {
                let mut chunked = ChunkedScanner::default();
                let mut fed = 0;
                let mut ended = false;
                while fed < rest.len() {
                    let end = (fed + read_size).min(rest.len());
                    match chunked.feed(&rest[fed..end]) {
                        Ok(None) => fed = end,
                        Ok(Some(n)) => {
                            fed += n;
                            ended = true;
                            break;
                        }
                        Err(_) => {
                            events.push(HttpStreamEvent::BadChunkedBody);
                            return events;
                        }
                    }
                }
                if !ended {
                    return events;
                }
                rest = &rest[fed..];
            }
        }
    }
}
