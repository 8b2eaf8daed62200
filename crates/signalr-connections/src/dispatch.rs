//! The endpoint router (.NET `HttpConnectionDispatcher`): negotiate, the transport GETs, POST
//! sends, DELETE, and the status codes of protocol §1.10.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};

use crate::request::{bearer_token, query_value, request_info};
use crate::responses::{self, DELETE_NOT_LONG_POLLING, ID_REQUIRED, NO_CONNECTION, NOT_YOURS, POST_ON_WEBSOCKET};
use crate::state::{ConnState, LimitReached, Manager, Status};
use crate::{ConnectionHandler, HttpConnectionOptions, RequestInfo, TransportType, User};
use crate::{longpolling, negotiate, sse, websocket};

/// An axum router serving one connection endpoint at its root: `POST /negotiate`, and on `/`
/// the WebSocket upgrade, Server-Sent Events (by `Accept: text/event-stream`), long polling (any
/// other GET), POST sends, DELETE and CORS preflights. Nest it at the endpoint's path:
/// `Router::new().nest("/chat", endpoint(options, handler))`, and wrap the whole app in
/// [`case_insensitive_paths`](crate::case_insensitive_paths) for ASP.NET-style matching.
pub fn endpoint(options: HttpConnectionOptions, handler: Arc<dyn ConnectionHandler>) -> Router {
    let cors = options.cors.clone();
    let manager = Manager::new(options, handler);
    let router = Router::new().route("/", any(connection_request)).route("/negotiate", any(negotiate_request)).with_state(manager);
    match cors {
        Some(policy) => router.layer(axum::middleware::from_fn_with_state(Arc::new(policy), crate::cors::cors)),
        None => router,
    }
}

/// Why a request is refused before it reaches a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    /// Credentials missing, invalid or refused: 401 with an empty body.
    #[error("unauthorized")]
    Unauthorized,
    /// No `id` query parameter: 400.
    #[error("{ID_REQUIRED}")]
    IdRequired,
    /// No connection has this token: 404.
    #[error("{NO_CONNECTION}")]
    NoConnection,
    /// The connection belongs to another user (or to a user, and the caller is anonymous, or
    /// the other way round): 403, and nothing changes.
    #[error("{NOT_YOURS}")]
    NotYours,
    /// A connection limit is reached: 503 for the node's, 429 for the user's.
    #[error("{0}")]
    Limit(LimitReached),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => responses::empty(StatusCode::UNAUTHORIZED),
            Refusal::IdRequired => responses::text(StatusCode::BAD_REQUEST, ID_REQUIRED),
            Refusal::NoConnection => responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
            Refusal::NotYours => responses::text(StatusCode::FORBIDDEN, NOT_YOURS),
            Refusal::Limit(limit) => {
                let status = match limit {
                    LimitReached::Node => StatusCode::SERVICE_UNAVAILABLE,
                    LimitReached::User => StatusCode::TOO_MANY_REQUESTS,
                };
                responses::text(status, limit.to_string())
            }
        }
    }
}

/// Authenticates a request (401 with an empty body and the standard reason phrase if refused).
fn authenticate(manager: &Manager, info: &RequestInfo) -> Result<Option<User>, Refusal> {
    let user = match &manager.options.authenticator {
        Some(authenticator) => {
            let bearer = bearer_token(info);
            authenticator.authenticate(info, bearer.as_deref()).map_err(|refused| {
                tracing::debug!(reason = %refused, "request refused by the authenticator");
                Refusal::Unauthorized
            })?
        }
        None => None,
    };
    if manager.options.require_authentication && user.is_none() {
        return Err(Refusal::Unauthorized);
    }
    Ok(user)
}

async fn negotiate_request(State(manager): State<Arc<Manager>>, request: Request) -> Response {
    if request.method() != Method::POST {
        return negotiate::method_not_allowed();
    }
    // The body (empty from the JS client, anything from others) is ignored, never read.
    let (mut parts, _body) = request.into_parts();
    let info = request_info(&mut parts);
    let user = match authenticate(&manager, &info) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    negotiate::negotiate(&manager, &info.query, user)
}

async fn connection_request(State(manager): State<Arc<Manager>>, request: Request) -> Response {
    match *request.method() {
        Method::GET => get(manager, request).await,
        Method::POST => post(manager, request).await,
        Method::DELETE => delete(manager, request),
        _ => responses::text(StatusCode::METHOD_NOT_ALLOWED, ""),
    }
}

fn is_websocket_request(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream")))
}

/// Looks up the connection named by `id` for a request that must name one, and checks that
/// the caller is the user who negotiated it.
fn require_connection(manager: &Manager, info: &RequestInfo, user: Option<&User>) -> Result<Arc<ConnState>, Refusal> {
    let Some(id) = query_value(&info.query, "id").filter(|id| !id.is_empty()) else {
        return Err(Refusal::IdRequired);
    };
    let conn = manager.get(id).ok_or(Refusal::NoConnection)?;
    owned_by(conn, user)
}

/// `conn` if `user` is the user who negotiated it, else 403.
fn owned_by(conn: Arc<ConnState>, user: Option<&User>) -> Result<Arc<ConnState>, Refusal> {
    if conn.belongs_to(user) {
        Ok(conn)
    } else {
        tracing::debug!(connection_id = conn.id.as_str(), "request on a connection of another user refused");
        Err(Refusal::NotYours)
    }
}

async fn get(manager: Arc<Manager>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    if is_websocket_request(&parts.headers) {
        return websocket_get(manager, parts).await;
    }
    let event_stream = accepts_event_stream(&parts.headers);
    let info = request_info(&mut parts);
    let user = match authenticate(&manager, &info) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    let conn = match require_connection(&manager, &info, user.as_ref()) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.into_response(),
    };
    let info = info.retained(manager.options.max_retained_request_bytes);
    if event_stream { sse::handle(manager, conn, info).await } else { longpolling::handle(manager, conn, info).await }
}

async fn websocket_get(manager: Arc<Manager>, mut parts: Parts) -> Response {
    let accepted = match websocket::accept(&mut parts) {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.into_response(),
    };
    let info = request_info(&mut parts);
    let user = match authenticate(&manager, &info) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    let conn = match query_value(&info.query, "id").filter(|id| !id.is_empty()) {
        // skipNegotiation: the connection is created now, id = token, negotiate version 0.
        None => {
            if !manager.options.is_enabled(TransportType::WebSockets) {
                return responses::transport_not_supported(TransportType::WebSockets);
            }
            match manager.create(0, false, true, user) {
                Ok(conn) => conn,
                Err(limit) => return Refusal::Limit(limit).into_response(),
            }
        }
        Some(id) => match manager.get(id).map(|conn| owned_by(conn, user.as_ref())) {
            Some(Ok(conn)) => conn,
            Some(Err(refusal)) => return refusal.into_response(),
            None => return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
        },
    };
    let info = info.retained(manager.options.max_retained_request_bytes);
    let raw = parts.extensions.get::<websocket::RawSocket>().copied();
    websocket::handle(manager, conn, accepted, info, raw)
}

async fn post(manager: Arc<Manager>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let max_body = manager.options.transport_max_buffer_size;
    let declared_length = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let too_long = declared_length.is_some_and(|length| length > max_body as u64);
    let info = request_info(&mut parts);
    let user = match authenticate(&manager, &info) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    let conn = match require_connection(&manager, &info, user.as_ref()) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.into_response(),
    };
    drop(info);
    match conn.shared.lock().transport {
        Some(TransportType::WebSockets) => {
            return responses::text(StatusCode::METHOD_NOT_ALLOWED, POST_ON_WEBSOCKET);
        }
        _ if too_long => return payload_too_large(&manager),
        _ => {}
    }
    // The application lock serialises concurrent POSTs on one connection, like .NET, and a
    // body is read only once the previous one was delivered: a connection holds at most one
    // body, however many POSTs its client sends at once.
    let mut app = conn.app.lock().await;
    if conn.shared.lock().status == Status::Disposed {
        return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION);
    }
    // Room for the body in the node's budget before reading it.
    let reserved = declared_length.map_or(max_body, |length| length as usize);
    if !manager.reserve_inbound(reserved) {
        tracing::debug!(connection_id = conn.id.as_str(), "inbound budget exhausted; POST refused");
        return responses::text(StatusCode::SERVICE_UNAVAILABLE, INBOUND_BUDGET_EXHAUSTED);
    }
    let mut reservation = InboundReservation { manager: &manager, bytes: reserved };
    // A client that stops sending its body does not hold the connection for long.
    let read = tokio::time::timeout(manager.options.disconnect_timeout, axum::body::to_bytes(body, max_body));
    let data = match read.await {
        Ok(Ok(data)) => data,
        Ok(Err(error)) => {
            if error.into_inner().is::<http_body_util::LengthLimitError>() {
                return payload_too_large(&manager);
            }
            // The client aborted the body.
            return responses::text(StatusCode::BAD_REQUEST, "");
        }
        Err(_elapsed) => return responses::text(StatusCode::REQUEST_TIMEOUT, ""),
    };
    reservation.shrink_to(data.len());
    {
        let mut shared = conn.shared.lock();
        if shared.status == Status::Disposed {
            return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION);
        }
        if app.is_none() {
            if data.is_empty() {
                return responses::text(StatusCode::OK, "");
            }
            // Held until the transport starts the application, within the per-connection limit.
            if shared.pending_inbound_bytes + data.len() > manager.options.application_max_buffer_size {
                return responses::text(StatusCode::TOO_MANY_REQUESTS, APPLICATION_BUFFER_FULL);
            }
            shared.pending_inbound_bytes += data.len();
            shared.pending_inbound.push(data);
            reservation.keep();
            return responses::text(StatusCode::OK, "");
        }
    }
    if !data.is_empty()
        && let Some(app) = app.as_mut()
    {
        app.on_data(data).await;
    }
    responses::text(StatusCode::OK, "")
}

/// The body of a POST sent before the application started would pass the connection's
/// `application_max_buffer_size`.
const APPLICATION_BUFFER_FULL: &str = "The connection's inbound buffer is full; start the transport before sending more.";
/// The node-wide cap on buffered inbound bytes is reached.
const INBOUND_BUDGET_EXHAUSTED: &str = "The server's inbound buffers are full; try again later.";

/// Bytes reserved from the endpoint's inbound budget, given back when dropped unless kept.
struct InboundReservation<'a> {
    manager: &'a Manager,
    bytes: usize,
}

impl InboundReservation<'_> {
    /// Keeps only `bytes` (the body turned out shorter than reserved).
    fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.manager.release_inbound(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// The bytes stay reserved (held by the connection, released when it lets go of them).
    fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for InboundReservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.manager.release_inbound(self.bytes);
        }
    }
}

fn payload_too_large(manager: &Manager) -> Response {
    responses::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The request body exceeds the limit of {} bytes.", manager.options.transport_max_buffer_size),
    )
}

fn delete(manager: Arc<Manager>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let info = request_info(&mut parts);
    let user = match authenticate(&manager, &info) {
        Ok(user) => user,
        Err(refusal) => return refusal.into_response(),
    };
    let conn = match require_connection(&manager, &info, user.as_ref()) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.into_response(),
    };
    if conn.shared.lock().transport != Some(TransportType::LongPolling) {
        return responses::text(StatusCode::BAD_REQUEST, DELETE_NOT_LONG_POLLING);
    }
    manager.dispose(&conn);
    responses::empty(StatusCode::ACCEPTED)
}
