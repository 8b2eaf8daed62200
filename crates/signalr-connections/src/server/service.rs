//! The per-connection service hyper calls: answers stand-ins for refused heads, refuses bad
//! `Host` headers as Kestrel does, and tells the guard when responses finish or switch
//! protocols.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version, header};
use hyper::body::{Frame, Incoming, SizeHint};
use tower::ServiceExt;

use super::MinDataRate;
use super::body::TimedBody;
use super::shared::{ConnectionShared, InFlight};

/// Calls the application's router for each request of one connection.
#[derive(Debug)]
pub struct ConnectionService {
    router: Router,
    shared: Arc<ConnectionShared>,
    remote: SocketAddr,
    /// `MinRequestBodyDataRate`; `None` (or a zero rate): bodies are not timed.
    min_body_rate: Option<MinDataRate>,
    requests: AtomicU64,
    /// The connection's descriptor, for the WebSocket transport's flushes.
    raw: Option<crate::websocket::RawSocket>,
}

impl ConnectionService {
    /// The service of a connection from `remote`.
    pub fn new(router: Router, shared: Arc<ConnectionShared>, remote: SocketAddr, min_body_rate: Option<MinDataRate>) -> Self {
        let min_body_rate = min_body_rate.filter(|rate| rate.bytes_per_second > 0.0);
        ConnectionService { router, shared, remote, min_body_rate, requests: AtomicU64::new(0), raw: None }
    }

    /// Lets a WebSocket upgraded on this connection be written from flushes, straight to `fd`,
    /// the accepted socket's descriptor, which must stay open as long as the connection's I/O.
    pub(crate) fn with_descriptor(mut self, fd: std::os::fd::RawFd) -> Self {
        self.raw = Some(crate::websocket::RawSocket(fd));
        self
    }
}

/// A response with no body that closes the connection, as Kestrel answers a bad request.
fn refusal(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    response.headers_mut().insert(header::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    response
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let number = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let in_flight = self.shared.request_started();
        let shared = self.shared.clone();
        let refused = self.shared.rejection_for(number).or_else(|| {
            host_problem(&request).map(|problem| {
                tracing::debug!(problem, "request refused");
                StatusCode::BAD_REQUEST
            })
        });
        if let Some(status) = refused {
            shared.response_decided(number, false);
            return Box::pin(std::future::ready(Ok(refusal(status))));
        }
        request.extensions_mut().insert(ConnectInfo(self.remote));
        if let Some(raw) = self.raw {
            request.extensions_mut().insert(raw);
        }
        let is_connect = request.method() == Method::CONNECT;
        let router = self.router.clone();
        let request = match self.min_body_rate {
            // A body already known to be empty needs no timing.
            Some(rate) if !hyper::body::Body::is_end_stream(request.body()) => {
                let shared = self.shared.clone();
                request.map(|body| Body::new(TimedBody::new(body, rate, shared, number)))
            }
            _ => request.map(Body::new),
        };
        Box::pin(async move {
            let Ok(mut response) = router.oneshot(request).await;
            if shared.is_body_timed_out(number) {
                // Whatever the application made of the body's error: Kestrel's 408, and the
                // rest of the body is never read.
                response = refusal(StatusCode::REQUEST_TIMEOUT);
            }
            let status = response.status();
            let switched = status == StatusCode::SWITCHING_PROTOCOLS || (is_connect && status.is_success());
            shared.response_decided(number, switched);
            Ok(response.map(|body| Body::new(TrackedBody { body, _in_flight: in_flight })))
        })
    }
}

/// A response body that keeps its connection counted as busy until hyper drops it.
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Kestrel's Host rules: HTTP/1.1 needs exactly one `Host`; no version may send two; its value
/// must be a valid `host[:port]` and, for an absolute-form target, equal the target's authority.
fn host_problem<B>(request: &Request<B>) -> Option<&'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some("more than one Host header");
    }
    let Some(host) = first else {
        return (request.version() == Version::HTTP_11).then_some("no Host header on HTTP/1.1");
    };
    if !is_valid_host(host.as_bytes()) {
        return Some("invalid Host header");
    }
    if let Some(authority) = request.uri().authority()
        && !authority.as_str().as_bytes().eq_ignore_ascii_case(host.as_bytes())
    {
        return Some("Host differs from the absolute request target");
    }
    None
}

/// `host[:port]` with `host` a registered name, an IPv4 address or a bracketed IPv6 address;
/// empty is valid (RFC 9112 §3.2, and Kestrel).
fn is_valid_host(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    let (host, rest) = if value[0] == b'[' {
        let Some(end) = value.iter().position(|&b| b == b']') else { return false };
        let inside = &value[1..end];
        if inside.is_empty() || !inside.iter().all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')) {
            return false;
        }
        (&value[..=end], &value[end + 1..])
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let host = &value[..end];
        let reg_name = |b: &u8| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b'%'
                )
        };
        if host.is_empty() || !host.iter().all(reg_name) {
            return false;
        }
        (host, &value[end..])
    };
    debug_assert!(!host.is_empty());
    match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri(uri);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn host_rules_are_kestrels() {
        assert_eq!(host_problem(&request(Version::HTTP_11, "/", &["a.example:80"])), None);
        assert_eq!(host_problem(&request(Version::HTTP_11, "/", &[""])), None);
        assert_eq!(host_problem(&request(Version::HTTP_11, "/", &["[::1]:5000"])), None);
        assert_eq!(host_problem(&request(Version::HTTP_10, "/", &[])), None);
        assert!(host_problem(&request(Version::HTTP_11, "/", &[])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, "/", &["a", "a"])).is_some());
        assert!(host_problem(&request(Version::HTTP_10, "/", &["a", "b"])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, "/", &["a b"])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, "/", &["a/b"])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, "/", &["a:8x"])).is_some());
        assert!(host_problem(&request(Version::HTTP_11, "/", &["[zz]"])).is_some());
        assert_eq!(host_problem(&request(Version::HTTP_11, "http://a.example/x", &["A.example"])), None);
        assert!(host_problem(&request(Version::HTTP_11, "http://a.example/x", &["b.example"])).is_some());
    }
}
