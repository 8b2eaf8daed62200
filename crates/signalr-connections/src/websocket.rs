//! The WebSockets transport: one task per connection (the one axum spawns for the upgrade) that
//! reads the socket, drives the application and writes the outbound queue, all from one
//! `poll_fn`, so no split halves, no extra task and no timer per connection.
//!
//! Writes are coalesced: everything queued when the socket can take more goes out as one
//! WebSocket message (whole protocol messages concatenated, as .NET's transport does with its
//! pipe buffer), so a burst costs one `write` per connection per batch.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;

use crate::responses::{self, CANNOT_CHANGE_TRANSPORT, NO_CONNECTION};
use crate::state::{ConnState, Manager, Status};
use crate::{RequestInfo, TransferFormat, TransportType, User};

/// Close code 1000 (normal closure).
const NORMAL_CLOSURE: u16 = 1000;
/// Close code 1009 (message too big).
const MESSAGE_TOO_BIG: u16 = 1009;
/// Batches and queues with more capacity than this are not kept after use (idle memory).
const KEEP_CAPACITY: usize = 16;
/// The most bytes joined into one WebSocket message (unless a single message is larger).
/// tungstenite keeps its write buffer at the largest size it ever held, so this also bounds what
/// a connection retains after a burst; 4 KiB still carries ~40 small messages per `write`
/// (bursts measured ~15 per `write` on average).
const MAX_BATCH_BYTES: usize = 4 * 1024;

/// Validates a WebSocket request for `conn` and upgrades it.
pub(crate) fn handle(
    manager: Arc<Manager>,
    conn: Arc<ConnState>,
    upgrade: WebSocketUpgrade,
    info: RequestInfo,
    user: Option<User>,
) -> Response {
    if !manager.options.is_enabled(TransportType::WebSockets) {
        return responses::transport_not_supported(TransportType::WebSockets);
    }
    let takeover = {
        let mut shared = conn.shared.lock();
        match (shared.status, shared.transport) {
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
            (Status::Active, _)
                if conn.stateful_reconnect && !shared.close_requested && !shared.aborted =>
            {
                // The client saw its socket die before we did: retire the old one.
                shared.superseded = true;
                conn.wake_all(&mut shared);
                true
            }
            (Status::Active, _) => return responses::empty(StatusCode::CONFLICT),
        }
    };
    let _ = conn.request.set(info);
    let _ = conn.user.set(user);

    let options = &manager.options;
    let limit = options.transport_max_buffer_size;
    let failed = (manager.clone(), conn.clone());
    upgrade
        .read_buffer_size(options.websocket_read_buffer_size)
        // Each coalesced batch is written at once; the queue bounds what waits.
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(move |error| {
            tracing::debug!(%error, "WebSocket upgrade failed");
            failed.0.dispose(&failed.1);
        })
        .on_upgrade(move |socket| run(manager, conn, socket, takeover))
}

/// What ended a wait of the connection task.
enum Event {
    /// Bytes from the client.
    Data(Bytes),
    /// The client sent a close frame.
    ClientClose,
    /// The socket ended without a close frame, or failed.
    Dropped,
    /// A message over the inbound limit.
    TooBig,
    /// The application or the heartbeat aborted the connection.
    Aborted,
    /// The application closed the connection and everything queued was written.
    Finished,
    /// A newer socket took over (stateful reconnect).
    Superseded,
}

/// The writing half of the task's state: the message being written, if any.
#[derive(Default)]
struct Writer {
    out: Option<Message>,
    flushing: bool,
    /// The last write finished; its bookkeeping is cleared with the next lock.
    written: bool,
    /// This wake-up already gave way once (see [`Writer::poll_event`]).
    deferred: bool,
    batch: Vec<Bytes>,
}

impl Writer {
    fn idle(&self) -> bool {
        self.out.is_none() && !self.flushing
    }

    /// Drives writing and, if `read`, reading, until something needs the task's attention.
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        conn: &ConnState,
        socket: &mut WebSocket,
        read: bool,
    ) -> Poll<Event> {
        loop {
            if self.out.is_some() {
                match socket.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        let message = self.out.take().expect("checked above");
                        if socket.start_send_unpin(message).is_err() {
                            return Poll::Ready(Event::Dropped);
                        }
                        self.flushing = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Dropped),
                    Poll::Pending => {}
                }
            }
            if self.flushing {
                match socket.poll_flush_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        self.flushing = false;
                        self.written = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Dropped),
                    Poll::Pending => {}
                }
            }
            {
                // One lock per turn: clears the finished write and takes the next batch.
                let mut shared = conn.shared.lock();
                if self.written {
                    self.written = false;
                    shared.in_flight_bytes = 0;
                    shared.write_started = None;
                }
                if shared.aborted || shared.status == Status::Disposed {
                    return Poll::Ready(Event::Aborted);
                }
                if shared.superseded {
                    return Poll::Ready(Event::Superseded);
                }
                if self.idle() {
                    if !shared.queue.is_empty() && !self.deferred && !shared.close_requested {
                        // Give way once before taking a batch: tasks already scheduled (other
                        // broadcasts, the sender's next invocation) run first and queue more,
                        // so a burst leaves in fewer, fuller writes. Costs one extra poll per
                        // wake-up, far less than a `write`.
                        self.deferred = true;
                        shared.register(cx.waker());
                        drop(shared);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if !shared.queue.is_empty() {
                        self.deferred = false;
                        let bytes = shared.take_batch(&mut self.batch, MAX_BATCH_BYTES);
                        let format = shared.format;
                        if bytes > 0 {
                            shared.in_flight_bytes = bytes;
                            shared.write_started = Some(Instant::now());
                        }
                        drop(shared);
                        if bytes > 0 {
                            self.out = Some(build_message(&mut self.batch, bytes, format));
                        }
                        self.batch.clear();
                        if self.batch.capacity() > KEEP_CAPACITY {
                            self.batch = Vec::new();
                        }
                        continue;
                    }
                    if shared.close_requested {
                        return Poll::Ready(Event::Finished);
                    }
                }
                shared.register(cx.waker());
            }
            if read {
                match socket.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(Message::Text(text)))) => {
                        return Poll::Ready(Event::Data(text.into()));
                    }
                    Poll::Ready(Some(Ok(Message::Binary(data)))) => {
                        return Poll::Ready(Event::Data(data));
                    }
                    Poll::Ready(Some(Ok(Message::Close(_)))) => {
                        return Poll::Ready(Event::ClientClose);
                    }
                    // tungstenite answers pings itself.
                    Poll::Ready(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                    Poll::Ready(Some(Err(error))) => {
                        tracing::debug!(%error, "WebSocket read failed");
                        if error.to_string().contains("Space limit exceeded") {
                            return Poll::Ready(Event::TooBig);
                        }
                        return Poll::Ready(Event::Dropped);
                    }
                    Poll::Ready(None) => return Poll::Ready(Event::Dropped),
                    Poll::Pending => {}
                }
            }
            return Poll::Pending;
        }
    }
}

/// One WebSocket message holding every queued protocol message, in order.
fn build_message(batch: &mut Vec<Bytes>, total: usize, format: TransferFormat) -> Message {
    let payload = if batch.len() == 1 {
        batch.pop().expect("one element")
    } else {
        let mut joined = BytesMut::with_capacity(total);
        for part in batch.drain(..) {
            joined.extend_from_slice(&part);
        }
        joined.freeze()
    };
    match format {
        TransferFormat::Binary => Message::Binary(payload),
        TransferFormat::Text => match Utf8Bytes::try_from(payload.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => {
                tracing::warn!("text-format data is not UTF-8; sending it in a Binary frame");
                Message::Binary(payload)
            }
        },
    }
}

async fn run(manager: Arc<Manager>, conn: Arc<ConnState>, mut socket: WebSocket, takeover: bool) {
    // Waits for the previous socket's task to let go of the application (stateful reconnect).
    // Cold-path futures are boxed so the task, which lives as long as the connection, stays
    // small (idle memory).
    let mut slot = Box::pin(conn.app.lock()).await;
    {
        let mut shared = conn.shared.lock();
        if shared.status == Status::Disposed {
            return;
        }
        shared.superseded = false;
        if takeover {
            // What the old socket did not write is replayed by the application from its own
            // buffer of unacknowledged messages.
            shared.queue.clear();
            shared.queued_bytes = 0;
            shared.in_flight_bytes = 0;
            shared.write_started = None;
        }
    }
    let reconnected = slot.is_some();
    Box::pin(manager.start_app(&conn, &mut slot)).await;
    let Some(app) = slot.as_mut() else { return };
    if reconnected {
        app.on_reconnected().await;
    }

    let mut writer = Writer::default();
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

    let close_timeout = manager.options.websocket_close_timeout;
    match end {
        Event::Superseded => return,
        Event::Dropped if conn.stateful_reconnect => {
            let mut shared = conn.shared.lock();
            if shared.superseded {
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
        Event::Finished => {
            let _ = Box::pin(tokio::time::timeout(
                close_timeout,
                close_handshake(&mut socket, NORMAL_CLOSURE),
            ))
            .await;
        }
        Event::TooBig => {
            let _ = Box::pin(tokio::time::timeout(
                close_timeout,
                close_handshake(&mut socket, MESSAGE_TOO_BIG),
            ))
            .await;
        }
        Event::ClientClose => {
            // tungstenite queued the reply to the client's close frame; write it.
            let _ = Box::pin(tokio::time::timeout(close_timeout, socket.flush())).await;
        }
        Event::Dropped | Event::Aborted | Event::Data(_) => {}
    }
    drop(socket);
    manager.mark_disposed(&conn);
    if let Some(mut app) = slot.take() {
        app.on_closed().await;
    }
}

/// Sends a close frame with an empty reason and waits for the client's.
async fn close_handshake(socket: &mut WebSocket, code: u16) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.next().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}
