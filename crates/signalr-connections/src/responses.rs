//! The plain responses of the connection endpoints (status codes and bodies of protocol §1.10).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

/// `Connection ID required`.
pub(crate) const ID_REQUIRED: &str = "Connection ID required";
/// `No Connection with that ID`.
pub(crate) const NO_CONNECTION: &str = "No Connection with that ID";
/// `Cannot change transports mid-connection`.
pub(crate) const CANNOT_CHANGE_TRANSPORT: &str = "Cannot change transports mid-connection";
/// `POST requests are not allowed for WebSocket connections.`
pub(crate) const POST_ON_WEBSOCKET: &str = "POST requests are not allowed for WebSocket connections.";
/// `Cannot terminate this connection using the DELETE endpoint.`
pub(crate) const DELETE_NOT_LONG_POLLING: &str = "Cannot terminate this connection using the DELETE endpoint.";

/// A request on a connection that another user negotiated.
pub(crate) const NOT_YOURS: &str = "The connection belongs to another user.";

/// A response with a `text/plain` body.
pub(crate) fn text(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// A response with no body and no content type (401, 409, 202).
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// `{Transport} transport not supported by this end point type` (404).
pub(crate) fn transport_not_supported(transport: crate::TransportType) -> Response {
    text(StatusCode::NOT_FOUND, format!("{} transport not supported by this end point type", transport.as_str()))
}
