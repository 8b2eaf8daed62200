//! A server WebSocket over any byte stream, made for many idle connections and shared outbound
//! bytes:
//!
//! * reads go into a buffer per thread; a connection keeps bytes of its own only while a frame
//!   is incomplete, so an idle connection holds no read buffer;
//! * a data frame is written with one vectored write of its header and the queued messages'
//!   `Bytes` as they are (a broadcast's one encoding is shared by every receiver), so there is no
//!   write buffer either.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Control, Decoder, FrameError, MAX_HEADER};

/// Size of the per-thread read buffer: the most one read can take.
const SCRATCH_SIZE: usize = 64 * 1024;
/// The most slices given to one vectored write.
pub(crate) const MAX_SLICES: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// What reading found.
#[derive(Debug)]
pub(crate) enum ReadEvent {
    /// Whole data messages, joined.
    Data(Bytes),
    /// A ping was answered (a pong is queued): give the writer a turn.
    PongQueued,
    /// The client sent a close frame with this code.
    Close(Option<u16>),
    /// The stream ended without a close frame.
    Eof,
    /// The client's bytes broke the protocol; close with the error's code.
    Invalid(FrameError),
    /// Reading failed.
    Failed(io::Error),
}

/// The frame being written: a header and the parts of its payload, or a whole control frame.
#[derive(Default)]
pub(crate) struct Outgoing {
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// The queue taken from the connection, moved here whole.
    parts: VecDeque<Bytes>,
    total: usize,
    sent: usize,
}

impl Outgoing {
    /// A data frame carrying `parts` in order (`total` bytes).
    pub(crate) fn data(opcode: u8, parts: VecDeque<Bytes>, total: usize) -> Self {
        let (header, header_len) = frame::server_header(opcode, total);
        Self { header, header_len, parts, total: header_len + total, sent: 0 }
    }

    /// Whether everything was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.sent == self.total
    }

    /// Fills `slices` with what is left to write, in order; returns how many it filled.
    pub(crate) fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut count = 0;
        let mut skip = self.sent;
        let header = &self.header[..self.header_len];
        for chunk in std::iter::once(header).chain(self.parts.iter().map(|p| &p[..])) {
            if skip >= chunk.len() {
                skip -= chunk.len();
                continue;
            }
            slices[count] = IoSlice::new(&chunk[skip..]);
            skip = 0;
            count += 1;
            if count == MAX_SLICES {
                break;
            }
        }
        count
    }

    /// Notes that `written` more bytes went out.
    pub(crate) fn advance(&mut self, written: usize) {
        self.sent += written;
    }

    /// The frame's emptied part list, to hold the connection's next messages.
    pub(crate) fn into_spare(mut self) -> VecDeque<Bytes> {
        self.parts.clear();
        self.parts
    }

    fn clear(&mut self) {
        // The part list is kept for the connection's next queue (`WsSocket::take_spare`), so a
        // busy connection does not allocate one per write; `release_spare` drops it when idle.
        self.parts.clear();
        self.header_len = 0;
        self.total = 0;
        self.sent = 0;
    }
}

/// A server-side WebSocket over `S`.
pub(crate) struct WsSocket<S> {
    io: S,
    decoder: Decoder,
    /// The start of a frame that is not all there yet; unallocated otherwise.
    partial: BytesMut,
    /// The length of the frame in `partial`, once its header was read.
    partial_frame_len: Option<usize>,
    read_chunk: usize,
    out: Outgoing,
    /// A control frame (pong, close) waiting for the current data frame to finish.
    control: Option<Bytes>,
    /// The client's close frame, once read; nothing is read after it.
    peer_close: Option<Option<u16>>,
    read_done: bool,
    /// A close frame was queued: the last frame this side sends.
    closing: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsSocket<S> {
    /// Wraps an upgraded stream. Messages over `max_message` bytes are refused; at most
    /// `read_chunk` bytes are read per call.
    pub(crate) fn new(io: S, max_message: usize, read_chunk: usize) -> Self {
        Self {
            io,
            decoder: Decoder::new(max_message),
            partial: BytesMut::new(),
            partial_frame_len: None,
            read_chunk: read_chunk.clamp(1, SCRATCH_SIZE),
            out: Outgoing::default(),
            control: None,
            peer_close: None,
            read_done: false,
            closing: false,
        }
    }

    /// Whether nothing is being written or waiting to be.
    pub(crate) fn send_idle(&self) -> bool {
        self.out.is_empty() && self.control.is_none()
    }

    /// The emptied part list of the last write, to become the connection's next queue.
    pub(crate) fn take_spare(&mut self) -> VecDeque<Bytes> {
        debug_assert!(self.send_idle());
        std::mem::take(&mut self.out.parts)
    }

    /// Drops the emptied part list: the connection is idle, and an idle connection holds none.
    pub(crate) fn release_spare(&mut self) {
        if self.send_idle() {
            self.out.parts = VecDeque::new();
        }
    }

    /// Starts writing the data frame `frame`.
    /// Call only when [`WsSocket::send_idle`].
    pub(crate) fn start_data(&mut self, frame: Outgoing) {
        debug_assert!(self.send_idle());
        self.out = frame;
    }

    /// Takes over a data frame a flush started and did not finish; it is written before any
    /// control frame queued meanwhile. Call only while no data frame is being written.
    pub(crate) fn resume_data(&mut self, out: Outgoing) {
        debug_assert!(self.out.is_empty());
        self.out = out;
    }

    /// Queues a control frame behind the data frame being written (a newer one replaces an
    /// older one that has not started). Nothing is queued after a close frame.
    pub(crate) fn queue_control(&mut self, frame: Bytes) {
        if self.closing {
            return;
        }
        self.closing = frame.first() == Some(&(0x80 | frame::OP_CLOSE));
        self.control = Some(frame);
    }

    /// Writes what is pending; ready when everything was written.
    pub(crate) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.out.is_empty() {
                ready!(self.poll_write_out(cx))?;
                self.out.clear();
                ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            }
            match self.control.take() {
                Some(frame) => {
                    self.out.total = frame.len();
                    self.out.sent = 0;
                    self.out.parts.push_back(frame);
                }
                None => return Poll::Ready(Ok(())),
            }
        }
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let out = &mut self.out;
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = out.slices(&mut slices);
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            out.advance(written);
        }
        Poll::Ready(Ok(()))
    }

    /// After a protocol error: ends this side's writing (TCP FIN) once everything queued (the
    /// close frame) is written, then reads and drops bytes until the client ends its side, so
    /// that unread data does not turn the close into a reset that could lose the close frame.
    pub(crate) fn poll_fail(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
        loop {
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut buf = ReadBuf::new(&mut scratch[..]);
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok::<_, io::Error>(buf.filled().len()))
            });
            if ready!(read)? == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Reads until whole messages, a control frame, the end or an error.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<ReadEvent> {
        loop {
            if let Some(data) = self.decoder.take_messages() {
                return Poll::Ready(ReadEvent::Data(data));
            }
            if let Some(code) = self.peer_close.take() {
                self.read_done = true;
                return Poll::Ready(ReadEvent::Close(code));
            }
            if self.read_done {
                return Poll::Pending;
            }
            let control_before = self.control.is_some();
            let result = if self.partial.is_empty() { self.poll_read_scratch(cx) } else { self.poll_read_partial(cx) };
            match result {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => {
                    self.read_done = true;
                    return Poll::Ready(ReadEvent::Eof);
                }
                Poll::Ready(Err(ReadError::Frame(error))) => {
                    self.read_done = true;
                    return Poll::Ready(ReadEvent::Invalid(error));
                }
                Poll::Ready(Err(ReadError::Io(error))) => {
                    self.read_done = true;
                    return Poll::Ready(ReadEvent::Failed(error));
                }
            }
            if !control_before && self.control.is_some() {
                return Poll::Ready(ReadEvent::PongQueued);
            }
        }
    }

    /// Reads into the thread's buffer and decodes from there; keeps an incomplete frame's bytes.
    /// Ready(Ok(false)) at the end of the stream.
    fn poll_read_scratch(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ReadError>> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..self.read_chunk]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).map_err(ReadError::Io)?;
            let filled = buf.filled();
            if filled.is_empty() {
                return Poll::Ready(Ok(false));
            }
            let consumed = self.decode(filled)?;
            if consumed < filled.len() && self.peer_close.is_none() {
                let rest = &filled[consumed..];
                self.partial.reserve(self.partial_frame_len.unwrap_or(rest.len()).max(rest.len()));
                self.partial.extend_from_slice(rest);
            }
            Poll::Ready(Ok(true))
        })
    }

    /// Reads more of an incomplete frame into its own buffer and decodes what is whole.
    fn poll_read_partial(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ReadError>> {
        let want = self.partial_frame_len.map_or(self.read_chunk, |len| len.saturating_sub(self.partial.len())).max(1);
        self.partial.reserve(want);
        let read = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.partial)).map_err(ReadError::Io)?;
        if read == 0 {
            return Poll::Ready(Ok(false));
        }
        let partial = std::mem::take(&mut self.partial);
        let consumed = self.decode(&partial);
        let mut partial = partial;
        match consumed {
            Ok(consumed) if consumed < partial.len() && self.peer_close.is_none() => {
                partial.advance(consumed);
                self.partial = partial;
            }
            // Everything was used: let the allocation go.
            Ok(_) => {}
            Err(error) => return Poll::Ready(Err(error)),
        }
        Poll::Ready(Ok(true))
    }

    /// Decodes whole frames from `input`, answering pings and noting a close; returns the bytes
    /// used.
    fn decode(&mut self, input: &[u8]) -> Result<usize, ReadError> {
        let mut consumed = 0;
        loop {
            let decoded = self.decoder.decode(&input[consumed..])?;
            consumed += decoded.consumed;
            self.partial_frame_len = decoded.next_frame_len;
            match decoded.control {
                Some(Control::Ping(payload)) => {
                    self.queue_control(frame::server_control_frame(frame::OP_PONG, &payload));
                }
                Some(Control::Close(code)) => {
                    self.peer_close = Some(code);
                    return Ok(consumed);
                }
                None => return Ok(consumed),
            }
        }
    }
}

/// Why a read ended the stream.
enum ReadError {
    Frame(FrameError),
    Io(io::Error),
}

impl From<FrameError> for ReadError {
    fn from(error: FrameError) -> Self {
        ReadError::Frame(error)
    }
}
