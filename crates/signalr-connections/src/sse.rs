//! The Server-Sent Events transport (receive half; sends arrive by POST): the exact headers of
//! .NET, the `:\r\n` comment flushed at once, one event per batch of queued bytes.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use http::{HeaderValue, StatusCode, header};

use crate::responses::{self, CANNOT_CHANGE_TRANSPORT, NO_CONNECTION};
use crate::state::{ConnState, Manager, Status};
use crate::{RequestInfo, TransportType};

/// Formats `payload` as one SSE event: a `data: ` line per `\n`-separated line (a `\r` before the
/// `\n` dropped), then an empty line; an empty payload is just `\r\n`.
pub(crate) fn format_event(out: &mut BytesMut, payload: &[u8]) {
    if payload.is_empty() {
        out.put_slice(b"\r\n");
        return;
    }
    out.reserve(payload.len() + 16);
    for line in payload.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Starts an SSE response for `conn`.
pub(crate) async fn handle(manager: Arc<Manager>, conn: Arc<ConnState>, info: RequestInfo) -> Response {
    if !manager.options.is_enabled(TransportType::ServerSentEvents) {
        return responses::transport_not_supported(TransportType::ServerSentEvents);
    }
    {
        let mut shared = conn.shared.lock();
        match (shared.status, shared.transport) {
            (Status::Disposed, _) => return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
            (_, Some(transport)) if transport != TransportType::ServerSentEvents => {
                return responses::text(StatusCode::BAD_REQUEST, CANNOT_CHANGE_TRANSPORT);
            }
            (Status::Negotiated, _) => {
                shared.transport = Some(TransportType::ServerSentEvents);
                shared.status = Status::Active;
                shared.inactive_since = None;
            }
            _ => return responses::empty(StatusCode::CONFLICT),
        }
    }
    let _ = conn.request.set(info);
    {
        let mut slot = conn.app.lock().await;
        manager.start_app(&conn, &mut slot).await;
    }

    let stream = EventStream { conn, manager, sent_comment: false, done: false };
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache,no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("identity"));
    response
}

/// The response body: polled by hyper, woken by sends. Dropping it (client gone or stream
/// ended) ends the connection.
struct EventStream {
    conn: Arc<ConnState>,
    manager: Arc<Manager>,
    sent_comment: bool,
    done: bool,
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if !this.sent_comment {
            this.sent_comment = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(b":\r\n"))));
        }
        let mut shared = this.conn.shared.lock();
        if shared.aborted || shared.status == Status::Disposed {
            this.done = true;
            return Poll::Ready(None);
        }
        if !shared.queue.is_empty() {
            let (batch, total) = shared.take_queue();
            drop(shared);
            let mut payload = BytesMut::with_capacity(total);
            for part in batch {
                payload.extend_from_slice(&part);
            }
            let mut event = BytesMut::new();
            format_event(&mut event, &payload);
            return Poll::Ready(Some(Ok(event.freeze())));
        }
        if shared.close_requested {
            this.done = true;
            return Poll::Ready(None);
        }
        shared.register(cx.waker());
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.manager.dispose(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        format_event(&mut out, payload);
        out.to_vec()
    }

    #[test]
    fn formats_events_like_dotnet() {
        assert_eq!(event(b"Hello"), b"data: Hello\r\n\r\n");
        assert_eq!(event(b"Hello\nWorld"), b"data: Hello\r\ndata: World\r\n\r\n");
        assert_eq!(event(b"Hello\r\nWorld"), b"data: Hello\r\ndata: World\r\n\r\n");
        assert_eq!(event(b"Hello\n"), b"data: Hello\r\ndata: \r\n\r\n");
        assert_eq!(event(b""), b"\r\n");
    }
}
