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
use crate::responses::{
    self, DELETE_NOT_LONG_POLLING, ID_REQUIRED, NO_CONNECTION, POST_ON_WEBSOCKET,
};
use crate::state::{ConnState, Manager, Status};
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
    let router = Router::new()
        .route("/", any(connection_request))
        .route("/negotiate", any(negotiate_request))
        .with_state(manager);
    match cors {
        Some(policy) => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(policy),
            crate::cors::cors,
        )),
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
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => responses::empty(StatusCode::UNAUTHORIZED),
            Refusal::IdRequired => responses::text(StatusCode::BAD_REQUEST, ID_REQUIRED),
            Refusal::NoConnection => responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
        }
    }
}

/// Authenticates a request (401 with an empty body and the standard reason phrase if refused).
fn authenticate(manager: &Manager, info: &RequestInfo) -> Result<Option<User>, Refusal> {
    let user = match &manager.options.authenticator {
        Some(authenticator) => {
            let bearer = bearer_token(info);
            authenticator
                .authenticate(info, bearer.as_deref())
                .map_err(|refused| {
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
    if let Err(refusal) = authenticate(&manager, &info) {
        return refusal.into_response();
    }
    negotiate::negotiate(&manager, &info.query)
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
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// Looks up the connection named by `id` for a request that must name one.
fn require_connection(manager: &Manager, info: &RequestInfo) -> Result<Arc<ConnState>, Refusal> {
    let Some(id) = query_value(&info.query, "id").filter(|id| !id.is_empty()) else {
        return Err(Refusal::IdRequired);
    };
    manager.get(id).ok_or(Refusal::NoConnection)
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
    let conn = match require_connection(&manager, &info) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.into_response(),
    };
    if event_stream {
        sse::handle(manager, conn, info, user).await
    } else {
        longpolling::handle(manager, conn, info, user).await
    }
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
            manager.create(0, false, true)
        }
        Some(id) => match manager.get(id) {
            Some(conn) => conn,
            None => return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION),
        },
    };
    websocket::handle(manager, conn, accepted, info, user)
}

async fn post(manager: Arc<Manager>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let too_long = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > manager.options.transport_max_buffer_size as u64);
    let info = request_info(&mut parts);
    if let Err(refusal) = authenticate(&manager, &info) {
        return refusal.into_response();
    }
    let conn = match require_connection(&manager, &info) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.into_response(),
    };
    match conn.shared.lock().transport {
        Some(TransportType::WebSockets) => {
            return responses::text(StatusCode::METHOD_NOT_ALLOWED, POST_ON_WEBSOCKET);
        }
        _ if too_long => return payload_too_large(&manager),
        _ => {}
    }
    let data = match axum::body::to_bytes(body, manager.options.transport_max_buffer_size).await {
        Ok(data) => data,
        Err(error) => {
            if error.into_inner().is::<http_body_util::LengthLimitError>() {
                return payload_too_large(&manager);
            }
            // The client aborted the body.
            return responses::text(StatusCode::BAD_REQUEST, "");
        }
    };
    // The application lock serialises concurrent POSTs on one connection, like .NET.
    let mut app = conn.app.lock().await;
    {
        let mut shared = conn.shared.lock();
        if shared.status == Status::Disposed {
            return responses::text(StatusCode::NOT_FOUND, NO_CONNECTION);
        }
        if app.is_none() {
            if !data.is_empty() {
                shared.pending_inbound.push(data);
            }
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

fn payload_too_large(manager: &Manager) -> Response {
    responses::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "The request body exceeds the limit of {} bytes.",
            manager.options.transport_max_buffer_size
        ),
    )
}

fn delete(manager: Arc<Manager>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let info = request_info(&mut parts);
    if let Err(refusal) = authenticate(&manager, &info) {
        return refusal.into_response();
    }
    let conn = match require_connection(&manager, &info) {
        Ok(conn) => conn,
        Err(refusal) => return refusal.into_response(),
    };
    if conn.shared.lock().transport != Some(TransportType::LongPolling) {
        return responses::text(StatusCode::BAD_REQUEST, DELETE_NOT_LONG_POLLING);
    }
    manager.dispose(&conn);
    responses::empty(StatusCode::ACCEPTED)
}
