//! The opening handshake (RFC 6455 §4.2) on HTTP/1.1: checks the request, takes hyper's upgrade
//! handle and builds the `101 Switching Protocols` answer.

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to the client's key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a request cannot become a WebSocket; answered with its status and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// Only HTTP/1.1 upgrades are served (browsers use them on plain HTTP and behind proxies).
    #[error("WebSocket upgrades need HTTP/1.1")]
    NotHttp11,
    /// The method is not GET.
    #[error("Request method must be `GET`")]
    MethodNotGet,
    /// `Connection` lacks `upgrade`.
    #[error("Connection header did not include 'upgrade'")]
    ConnectionHeader,
    /// `Upgrade` is not `websocket`.
    #[error("`Upgrade` header did not include 'websocket'")]
    UpgradeHeader,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("`Sec-WebSocket-Version` header did not include '13'")]
    VersionHeader,
    /// `Sec-WebSocket-Key` is missing.
    #[error("`Sec-WebSocket-Key` header missing")]
    KeyMissing,
    /// The server connection cannot be taken over (not served by hyper, or already taken).
    #[error("WebSocket request couldn't be upgraded since no upgrade state was present")]
    NotUpgradable,
}

impl HandshakeError {
    /// The answer to a request refused for this reason.
    pub(crate) fn into_response(self) -> Response {
        let status = match self {
            HandshakeError::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            HandshakeError::VersionHeader => StatusCode::BAD_REQUEST,
            HandshakeError::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = Response::new(Body::from(self.to_string()));
        *response.status_mut() = status;
        response
    }
}

/// A request accepted for upgrade: hyper's handle to the connection and the 101 answer.
pub(crate) struct Accepted {
    /// Resolves to the raw connection once the 101 answer is written.
    pub(crate) on_upgrade: OnUpgrade,
    /// The `101 Switching Protocols` answer.
    pub(crate) response: Response,
}

/// Checks `parts` as a WebSocket opening handshake and takes its upgrade handle.
pub(crate) fn accept(parts: &mut Parts) -> Result<Accepted, HandshakeError> {
    if parts.version != Version::HTTP_11 {
        return Err(HandshakeError::NotHttp11);
    }
    if parts.method != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::ConnectionHeader);
    }
    if !header_has_token(&parts.headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::UpgradeHeader);
    }
    let version = parts.headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.is_none_or(|v| v.as_bytes().trim_ascii() != b"13") {
        return Err(HandshakeError::VersionHeader);
    }
    let key = parts.headers.get(header::SEC_WEBSOCKET_KEY).ok_or(HandshakeError::KeyMissing)?;
    let accept_key = accept_key(key.as_bytes());
    let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(HandshakeError::NotUpgradable)?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_key);
    Ok(Accepted { on_upgrade, response })
}

/// `Sec-WebSocket-Accept` for a client's key.
fn accept_key(key: &[u8]) -> HeaderValue {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    let encoded = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
    HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
}

/// Whether a comma-separated header holds `token` (case-insensitive), as in
/// `Connection: keep-alive, Upgrade`.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|value| value.as_bytes().split(|&b| b == b',').any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's opening handshake, changed by `edit`.
    fn request(edit: impl FnOnce(&mut Parts)) -> Parts {
        let mut parts = http::Request::builder()
            .method(Method::GET)
            .uri("/hub")
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        edit(&mut parts);
        parts
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn bad_handshakes_are_named() {
        let mut parts = request(|p| p.method = Method::POST);
        assert_eq!(accept(&mut parts).err(), Some(HandshakeError::MethodNotGet));
        let mut parts = request(|p| {
            p.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        });
        assert_eq!(accept(&mut parts).err(), Some(HandshakeError::ConnectionHeader));
        let mut parts = request(|p| {
            p.headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        });
        assert_eq!(accept(&mut parts).err(), Some(HandshakeError::UpgradeHeader));
        let mut parts = request(|p| {
            p.headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        });
        assert_eq!(accept(&mut parts).err(), Some(HandshakeError::VersionHeader));
        let mut parts = request(|p| {
            p.headers.remove(header::SEC_WEBSOCKET_KEY);
        });
        assert_eq!(accept(&mut parts).err(), Some(HandshakeError::KeyMissing));
        // A well-formed request that hyper cannot hand over.
        let mut parts = request(|_| {});
        assert!(accept(&mut request(|p| p.version = Version::HTTP_10)).is_err());
        assert_eq!(accept(&mut parts).err(), Some(HandshakeError::NotUpgradable));
    }
}
