//! The WebSockets transport: one task per connection (spawned when hyper hands the connection
//! over) that reads the socket, drives the application and writes the outbound queue, all from
//! one `poll_fn`, so no split halves, no extra task and no timer per connection.
//!
//! The WebSocket protocol itself is ours ([`frame`], [`socket`]; docs/decisions/0008 says why):
//! an idle connection holds no read or write buffer, and writes are coalesced: everything queued
//! when the socket can take more goes out as one WebSocket message (whole protocol messages
//! concatenated, as .NET's transport does with its pipe buffer) in one vectored write of the
//! queued `Bytes` themselves, so a burst costs one `write` per connection per batch and no copy.

pub(crate) mod flush;
pub(crate) mod frame;
mod handshake;
mod socket;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_util::either::Either;

use self::flush::DirectWrites;
use self::frame::{CLOSE_NORMAL, OP_BINARY, OP_TEXT};
use self::socket::{ReadEvent, WsSocket};
use crate::responses::{self, CANNOT_CHANGE_TRANSPORT, NO_CONNECTION};
use crate::server::{SwitchedStream, switched_stream};
use crate::state::{ConnState, Manager, Shared, Status};
use crate::{RequestInfo, TransferFormat, TransportType};

pub(crate) use self::flush::RawSocket;
pub(crate) use self::handshake::{Accepted, accept};
pub(crate) use self::socket::Outgoing;

/// The upgraded connection as this transport reads and writes it: the TCP stream itself when
/// our server ([`crate::server::serve`]) accepted it (no box, no HTTP guard: idle memory),
/// hyper's upgraded stream from any other server.
type Socket = WsSocket<Either<SwitchedStream, TokioIo<Upgraded>>>;

/// The most bytes joined into one WebSocket frame (unless a single message is larger).
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// The most messages joined into one frame: with the header they fill one vectored write.
const MAX_BATCH_MESSAGES: usize = 63;

/// Validates a WebSocket request for `conn` and upgrades it. `raw` is the TCP connection's
/// descriptor when the server gave it (then broadcasts write from flushes, [`flush`]).
pub(crate) fn handle(
    manager: Arc<Manager>,
    conn: Arc<ConnState>,
    accepted: Accepted,
    info: RequestInfo,
    raw: Option<RawSocket>,
) -> Response {
    if !manager.options.is_enabled(TransportType::WebSockets) {
        return responses::transport_not_supported(TransportType::WebSockets);
    }
    let (takeover, number) = {
        let mut shared = conn.shared.lock();
        let takeover = match (shared.status, shared.transport) {
            (Status::Disposed, _) => return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
            (_, Some(transport)) if transport != TransportType::WebSockets => {
                return responses::text(StatusCode::BAD_REQUEST, CANNOT_CHANGE_TRANSPORT);
            }
            (Status::Negotiated, _) => {
                shared.transport = Some(TransportType::WebSockets);
                shared.status = Status::Active;
                shared.inactive_since = None;
                false
            }
            (Status::AwaitingReconnect, _) => {
                shared.status = Status::Active;
                shared.inactive_since = None;
                true
            }
            (Status::Active, _) if conn.stateful_reconnect && !shared.close_requested && !shared.aborted => {
                // The client saw its socket die before we did: retire the old one. Its task
                // sees a newer number, and flushes stop writing to its socket.
                shared.write_lent = false;
                conn.wake_all(&mut shared);
                true
            }
            (Status::Active, _) => return responses::empty(StatusCode::CONFLICT),
        };
        shared.newest_socket = shared.newest_socket.wrapping_add(1);
        (takeover, shared.newest_socket)
    };
    let _ = conn.request.set(info);

    let Accepted { on_upgrade, response } = accepted;
    tokio::spawn(run(manager, conn, on_upgrade, takeover, number, raw.map(|raw| raw.0)));
    response
}

/// What ended a wait of the connection task.
enum Event {
    /// Bytes from the client.
    Data(Bytes),
    /// The client sent a close frame, with this code.
    ClientClose(Option<u16>),
    /// The socket ended without a close frame, or failed.
    Dropped,
    /// The client broke the protocol (or sent a message over the inbound limit): close with
    /// this code.
    Invalid(u16),
    /// The application or the heartbeat aborted the connection.
    Aborted,
    /// The application closed the connection and everything queued was written.
    Finished,
    /// A newer socket took over (stateful reconnect).
    Superseded,
}

/// The writing half of the task's state.
#[derive(Default)]
struct Writer {
    /// A data frame from the queue is being written (its bytes count as in flight).
    data_in_flight: bool,
    /// This wake-up already gave way once (see [`Writer::poll_event`]).
    deferred: bool,
    /// Flushes may write to the socket's descriptor while the task is idle.
    direct: bool,
    /// The write side is lent to flushes (`Shared::write_lent` as this task last set it).
    lent: bool,
    /// This socket's number (`Shared::newest_socket` when it was accepted).
    number: u32,
    /// Writes in a row (up to 255) of this task that carried a single message; the write side
    /// is lent to flushes only after [`flush::LEND_AFTER_SINGLES`] (see `flush::write_queued`).
    singles: u8,
}

impl Writer {
    /// Takes the socket's write side back from flushes, with a frame one of them left
    /// unfinished (written first).
    fn take_back(&mut self, shared: &mut Shared, socket: &mut Socket) {
        shared.write_lent = false;
        self.lent = false;
        if let Some(out) = shared.handoff.take() {
            socket.resume_data(*out);
            self.data_in_flight = true;
        }
    }

    /// Drives writing and, if `read`, reading, until something needs the task's attention.
    fn poll_event(&mut self, cx: &mut Context<'_>, conn: &ConnState, socket: &mut Socket, read: bool) -> Poll<Event> {
        loop {
            if self.lent && !socket.send_idle() {
                // A pong was queued: take the write side back from flushes before writing it.
                let mut shared = conn.shared.lock();
                self.take_back(&mut shared, socket);
            }
            let mut written = false;
            match socket.poll_send(cx) {
                Poll::Ready(Ok(())) => {
                    written = std::mem::take(&mut self.data_in_flight);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Event::Dropped),
                Poll::Pending => {}
            }
            {
                // One lock per turn: clears the finished write and takes the next batch.
                let mut shared = conn.shared.lock();
                if shared.handoff.is_some() {
                    // A flush left a frame half written: finish it before anything else.
                    self.take_back(&mut shared, socket);
                    continue;
                }
                if written {
                    shared.in_flight_bytes = 0;
                    shared.write_started = None;
                    shared.wake_space_waiters();
                }
                if shared.aborted || shared.status == Status::Disposed {
                    return Poll::Ready(Event::Aborted);
                }
                if shared.newest_socket != self.number {
                    return Poll::Ready(Event::Superseded);
                }
                if socket.send_idle() {
                    if !shared.queue.is_empty() && !self.deferred && !shared.close_requested && !shared.prompt {
                        // Give way once before taking a batch: tasks already scheduled (other
                        // broadcasts, the sender's next invocation) run first and queue more,
                        // so a burst leaves in fewer, fuller writes. Costs one extra poll per
                        // wake-up, far less than a `write`. Not for a reply the client waits
                        // for (a completion): it would wait for a whole round of the node's
                        // tasks, and the client's next call with it.
                        self.deferred = true;
                        shared.register(cx.waker());
                        drop(shared);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if !shared.queue.is_empty() {
                        self.deferred = false;
                        shared.write_lent = false;
                        self.lent = false;
                        // The last write's emptied list becomes the queue: no allocation per write.
                        let (frame, bytes, messages) = take_frame(conn, &mut shared, socket.take_spare());
                        self.singles = if messages > 1 { 0 } else { self.singles.saturating_add(1) };
                        shared.in_flight_bytes = bytes;
                        let now = Instant::now();
                        shared.write_started = Some(now);
                        shared.last_write_started = Some(now);
                        drop(shared);
                        socket.start_data(frame);
                        self.data_in_flight = true;
                        continue;
                    }
                    if shared.close_requested {
                        return Poll::Ready(Event::Finished);
                    }
                    // Going idle: an idle connection keeps no queue allocation, and unless
                    // messages came in batches lately, the next one is written by a flush
                    // without waking this task.
                    if shared.queue.capacity() > 0 {
                        shared.queue = VecDeque::new();
                    }
                    socket.release_spare();
                    self.lent = self.direct && self.singles >= flush::LEND_AFTER_SINGLES;
                    shared.write_lent = self.lent;
                }
                shared.register(cx.waker());
            }
            if read {
                match socket.poll_read(cx) {
                    Poll::Ready(ReadEvent::Data(data)) => return Poll::Ready(Event::Data(data)),
                    Poll::Ready(ReadEvent::PongQueued) => continue,
                    Poll::Ready(ReadEvent::Close(code)) => {
                        return Poll::Ready(Event::ClientClose(code));
                    }
                    Poll::Ready(ReadEvent::Eof) => return Poll::Ready(Event::Dropped),
                    Poll::Ready(ReadEvent::Invalid(error)) => {
                        tracing::debug!(%error, "WebSocket protocol error; closing");
                        return Poll::Ready(Event::Invalid(error.close_code()));
                    }
                    Poll::Ready(ReadEvent::Failed(error)) => {
                        tracing::debug!(%error, "WebSocket read failed");
                        return Poll::Ready(Event::Dropped);
                    }
                    Poll::Pending => {}
                }
            }
            return Poll::Pending;
        }
    }
}

/// Takes the next frame's worth of `conn`'s queue (at most [`MAX_BATCH_MESSAGES`] messages and
/// [`MAX_BATCH_BYTES`] bytes, or one larger message) as a data frame in the connection's
/// transfer format; returns it with its payload's bytes and messages. `spare` becomes the queue
/// if all of it is taken. The task and flushes write what this gives them.
pub(crate) fn take_frame(conn: &ConnState, shared: &mut Shared, spare: VecDeque<Bytes>) -> (Outgoing, usize, usize) {
    let (batch, bytes) = shared.take_batch(MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, spare);
    conn.note_queue(shared);
    let messages = batch.len();
    let opcode = match shared.format {
        // The application sends UTF-8 on a text connection (the hub protocols do); like .NET,
        // the bytes are not checked again here.
        TransferFormat::Text => OP_TEXT,
        TransferFormat::Binary => OP_BINARY,
    };
    (Outgoing::data(opcode, batch, bytes), bytes, messages)
}

/// The connection's task: waits for the protocol switch, then serves the socket until it ends.
///
/// A function returning an `async move` block, not an `async fn`, and one future for the
/// upgrade and the socket: an `async fn` keeps a second copy of every argument in its state
/// (rust-lang/rust#62958), and a future awaiting another keeps its own captures beside it. The
/// task lives as long as the connection, so each copy was idle memory (the socket alone is
/// about 300 bytes).
#[expect(clippy::manual_async_fn, reason = "an `async fn` would double its arguments' size (rust-lang/rust#62958)")]
fn run(
    manager: Arc<Manager>,
    conn: Arc<ConnState>,
    on_upgrade: OnUpgrade,
    takeover: bool,
    number: u32,
    fd: Option<RawFd>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                manager.dispose(&conn);
                return;
            }
        };
        let mut socket: Socket = WsSocket::new(
            match switched_stream(upgraded) {
                Ok(switched) => Either::Left(switched),
                Err(upgraded) => Either::Right(TokioIo::new(upgraded)),
            },
            manager.options.transport_max_buffer_size,
            manager.options.websocket_read_buffer_size,
        );
        // Waits for the previous socket's task to let go of the application (stateful reconnect).
        // Cold-path futures are boxed so the task, which lives as long as the connection, stays
        // small (idle memory).
        let mut slot = Box::pin(conn.app.lock()).await;
        let direct = {
            let mut shared = conn.shared.lock();
            if shared.status == Status::Disposed || shared.newest_socket != number {
                // Closed, or a newer socket came while this one waited: it takes over instead.
                return;
            }
            // Dropped before `socket`, which is declared earlier: the descriptor is forgotten
            // before the socket closes it.
            let direct = DirectWrites::new(&conn, &mut shared, fd);
            if takeover {
                // What the old socket did not write is replayed by the application from its own
                // buffer of unacknowledged messages.
                shared.queue.clear();
                shared.queued_bytes = 0;
                shared.in_flight_bytes = 0;
                shared.write_started = None;
            }
            direct
        };
        let reconnected = slot.is_some();
        Box::pin(manager.start_app(&conn, &mut slot)).await;
        let Some(app) = slot.as_mut() else { return };
        if reconnected {
            app.on_reconnected().await;
        }

        let mut writer = Writer { direct: fd.is_some(), number, singles: flush::LEND_AFTER_SINGLES, ..Writer::default() };
        let end = loop {
            let event = poll_fn(|cx| writer.poll_event(cx, &conn, &mut socket, true)).await;
            let Event::Data(data) = event else {
                break event;
            };
            // Inbound backpressure: nothing more is read until the application took these bytes,
            // but what it sends meanwhile is still written.
            let mut delivery = app.on_data(data);
            let interrupted = poll_fn(|cx| {
                if delivery.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                match writer.poll_event(cx, &conn, &mut socket, false) {
                    // The application closed during this call: let the call finish first; the
                    // close follows on the next turn of the loop.
                    Poll::Ready(Event::Finished) => Poll::Pending,
                    other => other.map(Some),
                }
            })
            .await;
            if let Some(event) = interrupted {
                break event;
            }
        };
        {
            // Whatever follows (a close frame, the socket's end) is the task's alone.
            let mut shared = conn.shared.lock();
            if let Some(out) = direct.end(&mut shared) {
                socket.resume_data(out);
            }
        }

        let close_timeout = manager.options.websocket_close_timeout;
        match end {
            Event::Superseded => return,
            Event::Dropped if conn.stateful_reconnect => {
                let mut shared = conn.shared.lock();
                if shared.newest_socket != number {
                    return;
                }
                if !shared.close_requested && !shared.aborted && shared.status == Status::Active {
                    // Keep the application for the disconnect timeout; a new socket may take over.
                    shared.status = Status::AwaitingReconnect;
                    shared.inactive_since = Some(Instant::now());
                    shared.queue.clear();
                    shared.queued_bytes = 0;
                    shared.in_flight_bytes = 0;
                    shared.write_started = None;
                    return;
                }
            }
            Event::Finished => Box::pin(close_handshake(&mut socket, frame::server_close_frame(CLOSE_NORMAL), close_timeout)).await,
            Event::Aborted => {
                // Tell the client why (slow consumer, send timeout, the application's abort);
                // what was queued and not yet written is dropped. Bounded by the close timeout
                // also when the client reads nothing.
                let reason = conn.shared.lock().abort_reason;
                if let Some(reason) = reason {
                    let (code, text) = reason.close();
                    // No wait for the client's reply: an abort ends the connection at once.
                    socket.queue_control(frame::server_close_frame_with_reason(code, text));
                    let _ = Box::pin(tokio::time::timeout(close_timeout, poll_fn(|cx| socket.poll_send(cx)))).await;
                }
            }
            Event::Invalid(code) => {
                socket.queue_control(frame::server_close_frame(code));
                let _ = Box::pin(tokio::time::timeout(close_timeout, poll_fn(|cx| socket.poll_fail(cx)))).await;
            }
            Event::ClientClose(code) => {
                // Answer the client's close frame with its code; it closes the TCP connection then.
                socket.queue_control(frame::server_close_frame(code.unwrap_or(CLOSE_NORMAL)));
                let _ = Box::pin(tokio::time::timeout(close_timeout, poll_fn(|cx| socket.poll_send(cx)))).await;
            }
            Event::Dropped | Event::Data(_) => {}
        }
        drop(socket);
        manager.mark_disposed(&conn);
        if let Some(mut app) = slot.take() {
            app.on_closed().await;
        }
    }
}

/// Sends the close frame `close`, then waits (at most `timeout`) for the client's close frame
/// or the end of the stream.
async fn close_handshake(socket: &mut Socket, close: Bytes, timeout: std::time::Duration) {
    socket.queue_control(close);
    let mut peer_done = false;
    let handshake = poll_fn(|cx| {
        let sent = match socket.poll_send(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => false,
        };
        while !peer_done {
            match socket.poll_read(cx) {
                // Data after our close frame is dropped, as RFC 6455 §1.4 allows.
                Poll::Ready(ReadEvent::Data(_) | ReadEvent::PongQueued) => {}
                Poll::Ready(_) => peer_done = true,
                Poll::Pending => break,
            }
        }
        if sent && peer_done { Poll::Ready(()) } else { Poll::Pending }
    });
    let _ = Box::pin(tokio::time::timeout(timeout, handshake)).await;
}

#[cfg(test)]
mod size_tests {
    /// The size of the future `f` returns, without calling it.
    fn returned_size<A, B, C, D, E, G, F>(_: fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A WebSocket's task lives as long as its connection, so its size is idle memory. tokio
    /// puts a task in a cell aligned to 128 bytes with 112 bytes of its own: up to 528 bytes of
    /// future, the cell takes 640 (1,152 when `run` was an `async fn`, 2026-12-06).
    #[test]
    fn the_connection_task_stays_small() {
        let size = returned_size(super::run);
        assert!(size <= 528, "{size}");
    }
}
