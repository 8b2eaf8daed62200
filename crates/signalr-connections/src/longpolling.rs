//! The long-polling transport (receive half; sends arrive by POST, the end by DELETE), with the
//! ordering of .NET: first poll answered at once, data 200, timeout 200 empty, end 204.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::responses::{self, CANNOT_CHANGE_TRANSPORT, NO_CONNECTION};
use crate::state::{ConnState, Manager, Status};
use crate::{RequestInfo, TransportType};

fn add_no_cache(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
}

fn poll_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    add_no_cache(headers);
    response
}

fn ended() -> Response {
    poll_response(StatusCode::NO_CONTENT, "text/plain", Bytes::new())
}

/// Marks the connection inactive when a poll ends, also when the client abandons it.
struct PollGuard<'a> {
    conn: &'a ConnState,
    generation: u64,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let mut shared = self.conn.shared.lock();
        if shared.poll_generation == self.generation && shared.status == Status::Active {
            shared.inactive_since = Some(Instant::now());
        }
    }
}

/// Answers one poll of `conn`.
pub(crate) async fn handle(manager: Arc<Manager>, conn: Arc<ConnState>, info: RequestInfo) -> Response {
    if !manager.options.is_enabled(TransportType::LongPolling) {
        return responses::transport_not_supported(TransportType::LongPolling);
    }
    let first = {
        let mut shared = conn.shared.lock();
        match (shared.status, shared.transport) {
            (Status::Disposed, _) => return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
            (_, Some(transport)) if transport != TransportType::LongPolling => {
                return responses::text(StatusCode::BAD_REQUEST, CANNOT_CHANGE_TRANSPORT);
            }
            (Status::Negotiated, _) => {
                shared.transport = Some(TransportType::LongPolling);
                shared.status = Status::Active;
                // Between polls a connection is inactive.
                shared.inactive_since = Some(Instant::now());
                true
            }
            _ => false,
        }
    };
    if first {
        // The first poll starts the application and returns at once (the client waits for it
        // before it sends the handshake).
        let _ = conn.request.set(info);
        let mut slot = conn.app.lock().await;
        manager.start_app(&conn, &mut slot).await;
        return poll_response(StatusCode::OK, "application/octet-stream", Bytes::new());
    }

    let generation = {
        let mut shared = conn.shared.lock();
        shared.poll_generation += 1;
        shared.inactive_since = None;
        // An outstanding older poll ends with 204.
        conn.notify.notify_waiters();
        shared.poll_generation
    };
    let _guard = PollGuard { conn: &conn, generation };
    let timeout = tokio::time::sleep(manager.options.poll_timeout);
    tokio::pin!(timeout);
    loop {
        let notified = conn.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut shared = conn.shared.lock();
            if shared.poll_generation != generation || shared.status == Status::Disposed {
                return ended();
            }
            if shared.aborted {
                drop(shared);
                manager.dispose(&conn);
                return ended();
            }
            if !shared.queue.is_empty() {
                let (mut batch, total) = shared.take_queue();
                drop(shared);
                let body = if batch.len() == 1 {
                    batch.pop_front().expect("one element")
                } else {
                    let mut joined = BytesMut::with_capacity(total);
                    for part in batch {
                        joined.extend_from_slice(&part);
                    }
                    joined.freeze()
                };
                return poll_response(StatusCode::OK, "application/octet-stream", body);
            }
            if shared.close_requested {
                // Everything was delivered by earlier polls; now the end.
                drop(shared);
                manager.dispose(&conn);
                return ended();
            }
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = &mut timeout => return poll_response(StatusCode::OK, "text/plain", Bytes::new()),
        }
    }
}
