//! The request-head checks the server runs before hyper parses a head, and the body framing it
//! follows to find where the next head starts.
//!
//! hyper (through httparse) accepts a bare LF as a line ending and has one size limit for the
//! whole head; Kestrel rejects bare LF with 400, a request line over `MaxRequestLineSize` with 414
//! and header lines over `MaxRequestHeadersTotalSize` with 431. [`HeadScanner`] checks exactly
//! that, incrementally (a head that trickles in byte by byte is scanned once, not once per read).
//! [`framing`] mirrors hyper's own rules for a request's body length (`Content-Length`,
//! `Transfer-Encoding: chunked`, upgrades), and [`ChunkedScanner`] mirrors hyper's chunked
//! decoder, so that both agree on where every pipelined request begins.

use http::StatusCode;

/// Why a request head is refused before it reaches hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadViolation {
    /// A line ends with LF alone, or a CR is not followed by LF (400).
    BareLineEnding,
    /// The request line, with its CRLF, is longer than `MaxRequestLineSize` (414).
    RequestLineTooLong,
    /// The header lines, with their CRLFs, are longer than `MaxRequestHeadersTotalSize`, or
    /// there are more than [`MAX_HEADER_COUNT`] of them (431).
    HeadersTooLarge,
    /// The head does not parse or its body framing is invalid (400).
    Malformed,
}

impl HeadViolation {
    /// The status Kestrel answers this with.
    pub fn status(self) -> StatusCode {
        match self {
            HeadViolation::BareLineEnding | HeadViolation::Malformed => StatusCode::BAD_REQUEST,
            HeadViolation::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            HeadViolation::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

/// hyper's (and Kestrel's `MaxRequestHeaderCount`) default limit on the number of headers.
pub const MAX_HEADER_COUNT: usize = 100;

/// The outcome of feeding bytes to a [`HeadScanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Every byte was consumed; the head goes on.
    Incomplete,
    /// The head ends after this many bytes of the slice just fed.
    Complete(usize),
    /// The head is refused.
    Violation(HeadViolation),
}

/// Checks a request head's line endings and sizes as its bytes arrive. Leading empty lines
/// (which Kestrel and httparse skip between requests) must be removed before feeding.
#[derive(Debug, Clone)]
pub struct HeadScanner {
    max_request_line: usize,
    max_headers_total: usize,
    /// Bytes of the current line so far, without its line ending.
    line_len: usize,
    in_request_line: bool,
    after_cr: bool,
    /// Bytes of the completed header lines, CRLFs included.
    header_bytes: usize,
}

impl HeadScanner {
    /// A scanner for one head with these limits (bytes).
    pub fn new(max_request_line: usize, max_headers_total: usize) -> Self {
        HeadScanner { max_request_line, max_headers_total, line_len: 0, in_request_line: true, after_cr: false, header_bytes: 0 }
    }

    /// Scans the next bytes of the head.
    pub fn feed(&mut self, bytes: &[u8]) -> Scan {
        let mut i = 0;
        while i < bytes.len() {
            if self.after_cr {
                if bytes[i] != b'\n' {
                    return Scan::Violation(HeadViolation::BareLineEnding);
                }
                self.after_cr = false;
                i += 1;
                if self.in_request_line {
                    self.in_request_line = false;
                } else if self.line_len == 0 {
                    return Scan::Complete(i);
                } else {
                    self.header_bytes += self.line_len + 2;
                }
                self.line_len = 0;
                continue;
            }
            let rest = &bytes[i..];
            let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
            self.line_len += run;
            if let Some(violation) = self.over_limit() {
                return Scan::Violation(violation);
            }
            i += run;
            if i == bytes.len() {
                break;
            }
            if bytes[i] == b'\n' {
                return Scan::Violation(HeadViolation::BareLineEnding);
            }
            self.after_cr = true;
            i += 1;
        }
        Scan::Incomplete
    }

    fn over_limit(&self) -> Option<HeadViolation> {
        // The line's CRLF is still to come: count it now so an over-long line is refused
        // without waiting for its end.
        if self.in_request_line {
            (self.line_len + 2 > self.max_request_line).then_some(HeadViolation::RequestLineTooLong)
        } else if self.line_len == 0 {
            // The empty line that ends the head is not counted.
            None
        } else {
            (self.header_bytes + self.line_len + 2 > self.max_headers_total).then_some(HeadViolation::HeadersTooLarge)
        }
    }
}

/// How a request's body is delimited, as hyper reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the rest of the connection carries after a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// The body that follows the head.
    pub body: BodyFraming,
    /// The request asks for a protocol switch (an `Upgrade` header on HTTP/1.1, or `CONNECT`):
    /// if the response switches, the bytes after the body are no longer HTTP.
    pub wants_upgrade: bool,
    /// The request is HTTP/1.1 (Host rules apply).
    pub is_http_11: bool,
}

/// Parses a complete, already scanned head and decides its framing the way hyper's request
/// parser does (`proto::h1::role::Server::parse`), so the two never disagree.
pub fn framing(head: &[u8]) -> Result<Framing, HeadViolation> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_COUNT];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadViolation::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadViolation::HeadersTooLarge),
        Err(_) => return Err(HeadViolation::Malformed),
    }
    let is_http_11 = request.version == Some(1);
    let mut wants_upgrade = request.method == Some("CONNECT");
    let mut is_te = false;
    let mut is_te_chunked = false;
    let mut content_length: Option<u64> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if !is_http_11 {
                return Err(HeadViolation::Malformed);
            }
            is_te = true;
            is_te_chunked = last_encoding_is_chunked(header.value);
        } else if header.name.eq_ignore_ascii_case("content-length") {
            if is_te {
                continue;
            }
            let length = decimal(header.value).ok_or(HeadViolation::Malformed)?;
            if content_length.is_some_and(|previous| previous != length) {
                return Err(HeadViolation::Malformed);
            }
            content_length = Some(length);
        } else if header.name.eq_ignore_ascii_case("upgrade") {
            wants_upgrade = is_http_11;
        }
    }
    if is_te && !is_te_chunked {
        return Err(HeadViolation::Malformed);
    }
    let body = if is_te_chunked { BodyFraming::Chunked } else { BodyFraming::Length(content_length.unwrap_or(0)) };
    Ok(Framing { body, wants_upgrade, is_http_11 })
}

/// hyper's `is_chunked_`: the value is visible ASCII and its last comma-separated encoding is
/// `chunked`.
fn last_encoding_is_chunked(value: &[u8]) -> bool {
    if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return false;
    }
    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// hyper's `from_digits`: one or more ASCII digits, no overflow.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// A chunked body is malformed (hyper fails the request on the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// Follows a chunked body byte for byte with the states of hyper's decoder, to find its end.
/// Trailer lines must end with CRLF (hyper would take a bare LF into the trailer).
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: ChunkState,
    size: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner { state: ChunkState::Start, size: 0 }
    }
}

impl ChunkedScanner {
    /// Consumes body bytes; `Ok(Some(n))`: the body ends after `n` bytes of `bytes`;
    /// `Ok(None)`: all of `bytes` belong to the body and it goes on.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ChunkedError> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            if self.state == Data {
                let take = usize::try_from(self.size).unwrap_or(usize::MAX).min(bytes.len() - i);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (Start | Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let digit = (b as char).to_digit(16).unwrap_or_default();
                    self.size = self.size.checked_mul(16).and_then(|s| s.checked_add(u64::from(digit))).ok_or(ChunkedError)?;
                    Size
                }
                (Size | SizeLws, b'\t' | b' ') => SizeLws,
                (Size | SizeLws, b';') => Extension,
                (Size | SizeLws | Extension, b'\r') => SizeLf,
                (Extension, b'\n') => return Err(ChunkedError),
                (Extension, _) => Extension,
                (SizeLf, b'\n') if self.size == 0 => EndCr,
                (SizeLf, b'\n') => Data,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Start,
                (EndCr, b'\r') => EndLf,
                (EndCr | Trailer, b'\n') => return Err(ChunkedError),
                (Trailer, b'\r') => TrailerLf,
                (EndCr | Trailer, _) => Trailer,
                (TrailerLf, b'\n') => EndCr,
                (EndLf, b'\n') => return Ok(Some(i)),
                _ => return Err(ChunkedError),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(head: &[u8], line: usize, headers: usize) -> Scan {
        HeadScanner::new(line, headers).feed(head)
    }

    #[test]
    fn a_crlf_head_completes_where_it_ends() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nnext";
        assert_eq!(scan_all(head, 8192, 32768), Scan::Complete(head.len() - 4));
    }

    #[test]
    fn byte_by_byte_gives_the_same_answer() {
        let head = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n";
        let mut scanner = HeadScanner::new(8192, 32768);
        for (i, b) in head.iter().enumerate() {
            let outcome = scanner.feed(std::slice::from_ref(b));
            if i + 1 == head.len() {
                assert_eq!(outcome, Scan::Complete(1));
            } else {
                assert_eq!(outcome, Scan::Incomplete, "byte {i}");
            }
        }
    }

    #[test]
    fn bare_lf_anywhere_is_refused() {
        for head in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        ] {
            assert_eq!(scan_all(head, 8192, 32768), Scan::Violation(HeadViolation::BareLineEnding), "{head:?}");
        }
    }

    #[test]
    fn sizes_are_kestrels() {
        // A request line of exactly the limit with its CRLF passes; one byte more is 414.
        let line = format!("GET /{} HTTP/1.1", "a".repeat(100 - 16));
        assert_eq!(line.len() + 2, 100);
        let head = format!("{line}\r\nHost: a\r\n\r\n");
        assert!(matches!(scan_all(head.as_bytes(), 100, 1000), Scan::Complete(_)));
        assert_eq!(scan_all(head.as_bytes(), 99, 1000), Scan::Violation(HeadViolation::RequestLineTooLong));
        // Header lines "Host: a\r\n" (9) + "X: bb\r\n" (7) = 16.
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: bb\r\n\r\n";
        assert!(matches!(scan_all(head, 100, 16), Scan::Complete(_)));
        assert_eq!(scan_all(head, 100, 15), Scan::Violation(HeadViolation::HeadersTooLarge));
        // An endless header line is refused before its end arrives.
        let mut scanner = HeadScanner::new(100, 1000);
        assert_eq!(scanner.feed(b"GET / HTTP/1.1\r\nX: "), Scan::Incomplete);
        assert_eq!(scanner.feed(&[b'a'; 2000]), Scan::Violation(HeadViolation::HeadersTooLarge));
    }

    #[test]
    fn framing_follows_hyper() {
        let f = |head: &str| framing(head.as_bytes());
        assert_eq!(f("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().body, BodyFraming::Length(0));
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap().body, BodyFraming::Length(12));
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").unwrap().body, BodyFraming::Length(3));
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), Err(HeadViolation::Malformed));
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n"), Err(HeadViolation::Malformed));
        assert_eq!(f("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().body, BodyFraming::Chunked);
        assert_eq!(f("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n").unwrap().body, BodyFraming::Chunked);
        assert_eq!(f("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), Err(HeadViolation::Malformed));
        assert_eq!(f("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(HeadViolation::Malformed));
        let ws = f("GET /hub HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
        assert!(ws.wants_upgrade && ws.is_http_11);
        assert!(!f("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n").unwrap().wants_upgrade);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(f(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Err(HeadViolation::HeadersTooLarge));
    }

    #[test]
    fn chunked_body_end_is_found_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n";
        let mut whole = body.to_vec();
        whole.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(ChunkedScanner::default().feed(&whole), Ok(Some(body.len())));
        for split in 1..body.len() {
            let mut scanner = ChunkedScanner::default();
            assert_eq!(scanner.feed(&body[..split]), Ok(None), "split {split}");
            assert_eq!(scanner.feed(&whole[split..]), Ok(Some(body.len() - split)), "split {split}");
        }
        assert_eq!(ChunkedScanner::default().feed(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(ChunkedScanner::default().feed(b"5\nhello"), Err(ChunkedError));
        assert_eq!(ChunkedScanner::default().feed(b"0\r\nX: y\n\r\n"), Err(ChunkedError));
        assert_eq!(ChunkedScanner::default().feed(b"zz\r\n"), Err(ChunkedError));
        assert_eq!(ChunkedScanner::default().feed(b"ffffffffffffffffff\r\n"), Err(ChunkedError));
    }
}
