//! The byte stream hyper reads a connection through: every request head is held back until it
//! is complete and has passed [`HeadScanner`] and [`framing`], and the timers of the
//! connection's idle and head-reading phases run here.
//!
//! A refused head never reaches hyper. In its place hyper reads [`STAND_IN`], a fixed valid
//! request that the connection's service recognises by its number (a client cannot forge
//! it: the decision is in [`ConnectionShared`], not in the bytes) and answers with the refusal's
//! status and `Connection: close`. hyper so answers requests strictly in order, even when the
//! refused head was pipelined behind a request still being answered.
//!
//! Bodies pass through without copies: the guard only counts them (`Content-Length`) or follows
//! their chunk framing, so it knows where the next head starts. After a request that asks for
//! a protocol switch the guard waits for the response; once it switches (a WebSocket's 101)
//! every later byte passes through untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::HttpLimits;
use super::head::{BodyFraming, ChunkedScanner, HeadScanner, Scan, framing};
use super::shared::ConnectionShared;

/// The request hyper parses in place of a refused head.
pub const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nHost: refused\r\n\r\n";

/// Counts a connection in `MaxConcurrentConnections` until dropped (with the socket, which an
/// upgrade keeps).
#[derive(Debug)]
pub struct ConnectionPermit(pub Arc<AtomicUsize>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a head; `started`: when its first byte arrived.
    Head { scanner: HeadScanner, scanned: usize, started: Option<Instant> },
    /// Handing a checked head (at the front of `pending`) to hyper.
    Deliver { remaining: usize, body: BodyFraming, wants_upgrade: bool },
    /// A body of this many bytes still to pass.
    Length { remaining: u64, wants_upgrade: bool },
    /// A chunked body still to pass.
    Chunked { scanner: ChunkedScanner, wants_upgrade: bool },
    /// Request `number` asked to switch protocols; its response is not known yet.
    AwaitSwitch { number: u64 },
    /// The protocol switched: bytes pass untouched.
    PassThrough,
    /// Handing [`STAND_IN`] to hyper from this offset.
    StandIn { offset: usize },
    /// Nothing more reaches hyper (it closes after answering the stand-in).
    Stalled,
    /// The connection ends here (an idle timeout): every read sees end of stream.
    Eof,
}

/// A TCP stream seen by hyper through the head checks and timers.
#[derive(Debug)]
pub struct GuardedStream {
    /// Given back at the shutdown of the write side or, first field, before the socket closes:
    /// the count is down before the peer can see the close.
    permit: Option<ConnectionPermit>,
    inner: TcpStream,
    limits: Arc<HttpLimits>,
    shared: Arc<ConnectionShared>,
    state: State,
    /// Bytes read from the socket and not yet handed to hyper.
    pending: BytesMut,
    /// Heads handed to hyper so far (stand-ins included): hyper calls the service once for each.
    requests: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// What a timer's expiry does.
enum Expired {
    /// Answer 408 in place of the partial head.
    RequestTimeout,
    /// Close: nothing of a request arrived.
    Close,
}

impl GuardedStream {
    /// Wraps an accepted stream.
    pub fn new(inner: TcpStream, limits: Arc<HttpLimits>, shared: Arc<ConnectionShared>, permit: Option<ConnectionPermit>) -> Self {
        let state = Self::fresh_head(&limits);
        GuardedStream { permit, inner, limits, shared, state, pending: BytesMut::new(), requests: 0, timer: None }
    }

    fn fresh_head(limits: &HttpLimits) -> State {
        State::Head {
            scanner: HeadScanner::new(limits.max_request_line_size, limits.max_request_headers_total_size),
            scanned: 0,
            started: None,
        }
    }

    fn after_body(&mut self, wants_upgrade: bool) -> State {
        if wants_upgrade { State::AwaitSwitch { number: self.requests } } else { Self::fresh_head(&self.limits) }
    }

    fn refuse(&mut self, status: StatusCode) {
        self.requests += 1;
        self.shared.reject(self.requests, status);
        self.pending = BytesMut::new();
        self.timer = None;
        self.state = State::StandIn { offset: 0 };
        tracing::debug!(%status, "request head refused before parsing");
    }

    /// Frees what an idle or switched connection no longer needs. An emptied `pending` still
    /// holds its allocation (its `capacity` counts only what lies past the bytes handed on), so
    /// it is replaced whenever it is empty: kept, a WebSocket held its upgrade request's bytes
    /// for life (0.5–0.6 KB per idle connection).
    fn release_buffers(&mut self) {
        if self.pending.is_empty() {
            self.pending = BytesMut::new();
        }
    }

    /// The deadline of the head being waited for, if one runs now, and what its expiry does.
    fn head_deadline(&self, started: Option<Instant>) -> Option<(Instant, Expired)> {
        // While a response is in progress the server, not the client, holds the connection.
        let idle_since = self.shared.idle_since()?;
        let limits = &self.limits;
        let expired = if started.is_some() { Expired::RequestTimeout } else { Expired::Close };
        let deadline = if self.requests == 0 {
            // A new connection must send its whole first head within the headers timeout of
            // being accepted (Kestrel would wait the keep-alive timeout for its first byte).
            idle_since + limits.request_headers_timeout
        } else {
            match started {
                Some(first_byte) => first_byte.max(idle_since) + limits.request_headers_timeout,
                None => idle_since + limits.keep_alive_timeout,
            }
        };
        Some((deadline, expired))
    }

    /// Polls the timer of the current head; `Ready` when it has expired.
    fn poll_head_timer(&mut self, cx: &mut Context<'_>, started: Option<Instant>) -> Poll<Expired> {
        let Some((deadline, expired)) = self.head_deadline(started) else {
            // Woken by the service once the response finishes.
            self.shared.park_reader(cx.waker());
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(expired),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads from the socket into `buf`'s free space and moves what was read into `pending`;
    /// `Ok(false)`: end of stream.
    fn read_into_pending(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<bool>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let got = &buf.filled()[before..];
        if got.is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.pending.extend_from_slice(got);
        buf.set_filled(before);
        Poll::Ready(Ok(true))
    }

    /// Hands up to `limit` bytes of `pending` to hyper.
    fn give_pending(&mut self, buf: &mut ReadBuf<'_>, limit: usize) -> usize {
        let n = limit.min(self.pending.len()).min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        n
    }

    /// Reads body bytes straight into hyper's buffer (no copy); the caller gives back what lies
    /// past the body's end. Returns the bytes read, 0 at end of stream.
    fn read_direct(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<usize>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        Poll::Ready(Ok(buf.filled().len() - before))
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match &mut this.state {
                State::Head { scanner, scanned, started } => {
                    if *scanned == 0 {
                        // Empty lines between requests are skipped, as Kestrel and httparse do.
                        let blank = this.pending.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
                        this.pending.advance(blank);
                    }
                    if *scanned < this.pending.len() {
                        started.get_or_insert_with(Instant::now);
                        match scanner.feed(&this.pending[*scanned..]) {
                            Scan::Incomplete => *scanned = this.pending.len(),
                            Scan::Violation(violation) => {
                                this.refuse(violation.status());
                                continue;
                            }
                            Scan::Complete(n) => {
                                let head_len = *scanned + n;
                                match framing(&this.pending[..head_len]) {
                                    Ok(f) => {
                                        this.requests += 1;
                                        this.state = State::Deliver { remaining: head_len, body: f.body, wants_upgrade: f.wants_upgrade };
                                    }
                                    Err(violation) => this.refuse(violation.status()),
                                }
                                continue;
                            }
                        }
                    }
                    let started = *started;
                    if let Poll::Ready(expired) = this.poll_head_timer(cx, started) {
                        match expired {
                            Expired::RequestTimeout => {
                                tracing::debug!("request headers timeout");
                                this.refuse(StatusCode::REQUEST_TIMEOUT);
                                continue;
                            }
                            Expired::Close => {
                                tracing::trace!("idle connection closed");
                                this.pending = BytesMut::new();
                                this.timer = None;
                                this.state = State::Eof;
                                return Poll::Ready(Ok(()));
                            }
                        }
                    }
                    if !ready!(this.read_into_pending(cx, buf))? {
                        // The client closed (maybe mid-head): hyper sees the end of the stream.
                        this.state = State::Eof;
                        return Poll::Ready(Ok(()));
                    }
                }
                State::Deliver { remaining, body, wants_upgrade } => {
                    let given = {
                        let n = (*remaining).min(this.pending.len()).min(buf.remaining());
                        buf.put_slice(&this.pending[..n]);
                        this.pending.advance(n);
                        n
                    };
                    *remaining -= given;
                    if *remaining == 0 {
                        let wants_upgrade = *wants_upgrade;
                        this.state = match *body {
                            BodyFraming::Length(0) => this.after_body(wants_upgrade),
                            BodyFraming::Length(remaining) => State::Length { remaining, wants_upgrade },
                            BodyFraming::Chunked => State::Chunked { scanner: ChunkedScanner::default(), wants_upgrade },
                        };
                        this.release_buffers();
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Length { remaining, wants_upgrade } => {
                    if *remaining == 0 {
                        let wants_upgrade = *wants_upgrade;
                        this.state = this.after_body(wants_upgrade);
                        continue;
                    }
                    let limit = usize::try_from(*remaining).unwrap_or(usize::MAX);
                    if !this.pending.is_empty() {
                        let n = this.give_pending(buf, limit);
                        if let State::Length { remaining, .. } = &mut this.state {
                            *remaining -= n as u64;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    let before = buf.filled().len();
                    let got = ready!(this.read_direct(cx, buf))?;
                    if got > limit {
                        // The next request arrived with the body's end: it waits for its check.
                        this.pending.extend_from_slice(&buf.filled()[before + limit..]);
                        buf.set_filled(before + limit);
                    }
                    if let State::Length { remaining, .. } = &mut this.state {
                        *remaining -= got.min(limit) as u64;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Chunked { scanner, .. } => {
                    let before = buf.filled().len();
                    let from_pending = !this.pending.is_empty();
                    let available = if from_pending {
                        let n = this.pending.len().min(buf.remaining());
                        buf.put_slice(&this.pending[..n]);
                        this.pending.advance(n);
                        n
                    } else {
                        // Split borrow: the scanner stays in `this.state` while reading.
                        let got = ready!(Pin::new(&mut this.inner).poll_read(cx, buf)).map(|()| buf.filled().len() - before)?;
                        if got == 0 {
                            return Poll::Ready(Ok(()));
                        }
                        got
                    };
                    let fed = scanner.feed(&buf.filled()[before..before + available]);
                    match fed {
                        Err(_) => {
                            return Poll::Ready(Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "malformed chunked request body",
                            )));
                        }
                        Ok(None) => return Poll::Ready(Ok(())),
                        Ok(Some(end)) => {
                            // Bytes after the body's end go back in front of `pending`.
                            let excess = &buf.filled()[before + end..before + available];
                            if !excess.is_empty() {
                                let mut back = BytesMut::with_capacity(excess.len() + this.pending.len());
                                back.extend_from_slice(excess);
                                back.extend_from_slice(&this.pending);
                                this.pending = back;
                            }
                            buf.set_filled(before + end);
                            let State::Chunked { wants_upgrade, .. } = this.state else { unreachable!("in the chunked state") };
                            this.state = this.after_body(wants_upgrade);
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
                State::AwaitSwitch { number } => {
                    let number = *number;
                    let decided = match this.shared.switched(number) {
                        Some(switched) => Some(switched),
                        None => {
                            this.shared.park_reader(cx.waker());
                            this.shared.switched(number)
                        }
                    };
                    match decided {
                        None => return Poll::Pending,
                        Some(true) => {
                            this.state = State::PassThrough;
                            this.timer = None;
                            this.release_buffers();
                        }
                        Some(false) => this.state = Self::fresh_head(&this.limits),
                    }
                }
                State::PassThrough => {
                    if !this.pending.is_empty() {
                        this.give_pending(buf, usize::MAX);
                        this.release_buffers();
                        return Poll::Ready(Ok(()));
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                State::StandIn { offset } => {
                    let n = (STAND_IN.len() - *offset).min(buf.remaining());
                    buf.put_slice(&STAND_IN[*offset..*offset + n]);
                    *offset += n;
                    if *offset == STAND_IN.len() {
                        this.state = State::Stalled;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Stalled => {
                    // Drain what the client still sends, so that closing after the answer
                    // sends a FIN, not a reset that could destroy the answer in flight.
                    let before = buf.filled().len();
                    loop {
                        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                        let got = buf.filled().len() - before;
                        buf.set_filled(before);
                        if got == 0 {
                            return Poll::Pending;
                        }
                    }
                }
                State::Eof => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Writes go straight to the socket (`inner`); shutting the write side down gives back the
/// connection's `permit` first.
macro_rules! write_to_socket {
    ($stream:ty) => {
        impl AsyncWrite for $stream {
            fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, data)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                self.permit = None;
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

write_to_socket!(GuardedStream);

/// A connection whose protocol switched, taken back from hyper: the socket, its place in
/// `MaxConcurrentConnections`, and the bytes read before the switch that the new protocol has
/// not seen. The guard's state, buffers and [`ConnectionShared`] are gone: a WebSocket lives
/// for hours, and they were a third of an idle one's memory besides hyper's box.
#[derive(Debug)]
pub struct SwitchedStream {
    /// First field: given back before the socket closes (see [`GuardedStream`]).
    permit: Option<ConnectionPermit>,
    inner: TcpStream,
    /// Bytes the client sent behind its upgrade request (boxed: seldom any).
    early: Option<Box<Bytes>>,
}

impl GuardedStream {
    /// The stream of a connection that switched protocols; `read_buf` is what hyper read and
    /// did not parse, which came before what the guard still holds.
    pub fn into_switched(self, read_buf: Bytes) -> SwitchedStream {
        let early = if self.pending.is_empty() {
            read_buf
        } else if read_buf.is_empty() {
            self.pending.freeze()
        } else {
            let mut joined = BytesMut::with_capacity(read_buf.len() + self.pending.len());
            joined.extend_from_slice(&read_buf);
            joined.extend_from_slice(&self.pending);
            joined.freeze()
        };
        SwitchedStream { permit: self.permit, inner: self.inner, early: (!early.is_empty()).then(|| Box::new(early)) }
    }
}

impl AsyncRead for SwitchedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if let Some(early) = self.early.as_mut() {
            let n = early.len().min(buf.remaining());
            buf.put_slice(&early[..n]);
            early.advance(n);
            if early.is_empty() {
                self.early = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

write_to_socket!(SwitchedStream);
