//! Per-endpoint options ([`HttpConnectionOptions`]) with ASP.NET Core's defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::{Authenticator, TransportType};

/// Which browser origins may call an endpoint with credentials (CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Every origin; the request's `Origin` is echoed (never `*`, which browsers refuse with
    /// credentials).
    Any,
    /// Only these origins (compared case-insensitively, e.g. `https://app.example.com`).
    List(Vec<String>),
}

/// The CORS policy of an endpoint: answers preflight `OPTIONS` requests and adds
/// `Access-Control-Allow-Origin` (the request's `Origin`) to the responses of allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// The origins allowed to call.
    pub origins: AllowedOrigins,
    /// Whether to send `Access-Control-Allow-Credentials: true` (the official client sends
    /// credentials by default). Default true.
    pub allow_credentials: bool,
}

impl CorsPolicy {
    /// Allows every origin, with credentials (what the JS functional-test server does).
    pub fn any_origin() -> Self {
        Self { origins: AllowedOrigins::Any, allow_credentials: true }
    }

    /// Allows only the given origins, with credentials.
    pub fn origins<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { origins: AllowedOrigins::List(origins.into_iter().map(Into::into).collect()), allow_credentials: true }
    }

    /// Sets whether `Access-Control-Allow-Credentials: true` is sent.
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.allow_credentials = allow;
        self
    }

    /// Whether `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        match &self.origins {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => {
                list.iter().any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/')))
            }
        }
    }
}

/// Options of one connection endpoint (.NET `HttpConnectionDispatcherOptions` plus the
/// transport options). [`Default`] gives .NET's defaults.
#[derive(Clone)]
pub struct HttpConnectionOptions {
    /// Transports offered in negotiate and accepted, in the fixed order WebSockets,
    /// ServerSentEvents, LongPolling. Default: all three.
    pub transports: Vec<TransportType>,
    /// The most bytes one WebSocket read takes, at most 64 KiB. Reads go into a buffer per
    /// thread, not per connection: a connection holds bytes of its own only while a frame is
    /// incomplete. Default 16 KiB.
    pub websocket_read_buffer_size: usize,
    /// Outbound limit per connection in bytes (.NET `TransportMaxBufferSize`, data written by
    /// the application): when the bytes queued and not yet written exceed it, the connection
    /// is closed as a slow consumer. Default 64 KiB.
    pub outbound_buffer_limit: usize,
    /// Inbound limit in bytes: the largest WebSocket message and the largest POST body accepted
    /// (larger POST bodies get 413). Default 64 KiB.
    pub transport_max_buffer_size: usize,
    /// How long a long poll waits for data before answering 200 with an empty body. Default 90 s.
    pub poll_timeout: Duration,
    /// How long an inactive connection is kept: negotiated but never connected, between long
    /// polls, or a WebSocket that dropped while stateful reconnect is on. Default 15 s.
    pub disconnect_timeout: Duration,
    /// How long the server waits for the client's close frame after sending its own. Default 5 s.
    pub websocket_close_timeout: Duration,
    /// A write to the client that takes longer than this aborts the connection. Default 10 s.
    pub transport_send_timeout: Duration,
    /// Whether clients that ask (`useStatefulReconnect=true`) get stateful reconnect on
    /// WebSockets. Default false.
    pub allow_stateful_reconnects: bool,
    /// The lowest negotiate version accepted (0 or 1). Default 0.
    pub minimum_negotiate_version: u32,
    /// Decides who each request is from; `None` makes every caller anonymous.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Whether anonymous callers get 401 (like `[Authorize]` on a hub). Default false.
    pub require_authentication: bool,
    /// CORS policy; `None` (default) adds no CORS headers and answers `OPTIONS` with 405.
    pub cors: Option<CorsPolicy>,
    /// How long a negotiated connection may wait for its first transport request before it is
    /// removed with whatever it buffered. Default 10 s.
    pub start_timeout: Duration,
    /// Inbound bytes a connection may hold for its application (.NET
    /// `ApplicationMaxBufferSize`): POST data sent before the transport started the
    /// application (more gets 429). Once started, a POST is read only after the previous one
    /// was taken by the application, and the application reads no faster than it can answer.
    /// Default 64 KiB.
    pub application_max_buffer_size: usize,
    /// Node-wide cap on inbound bytes held by the endpoint: POST bodies being read or
    /// delivered and data waiting for an application to start. A POST that would pass it gets
    /// 503. Default 64 MiB.
    pub max_buffered_inbound_bytes: usize,
    /// Connections the endpoint holds at once, negotiated or running; more get 503. Default
    /// 100,000.
    pub max_connections: usize,
    /// Connections one authenticated user (by [`crate::User::identifier`]) holds at once; more
    /// get 429. Anonymous connections count only against `max_connections`. Default 100.
    pub max_connections_per_user: usize,
    /// Bytes of the connection request kept for the application's lifetime
    /// ([`crate::Connection::request`]): headers, then cookies, then query values, each kept
    /// whole while the total stays within it. Credentials (`Authorization`, the `Cookie`
    /// header, which is kept parsed as cookies, and `access_token`) are never kept.
    /// Default 4 KiB.
    pub max_retained_request_bytes: usize,
}

impl std::fmt::Debug for HttpConnectionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConnectionOptions")
            .field("transports", &self.transports)
            .field("websocket_read_buffer_size", &self.websocket_read_buffer_size)
            .field("outbound_buffer_limit", &self.outbound_buffer_limit)
            .field("transport_max_buffer_size", &self.transport_max_buffer_size)
            .field("poll_timeout", &self.poll_timeout)
            .field("disconnect_timeout", &self.disconnect_timeout)
            .field("websocket_close_timeout", &self.websocket_close_timeout)
            .field("transport_send_timeout", &self.transport_send_timeout)
            .field("allow_stateful_reconnects", &self.allow_stateful_reconnects)
            .field("minimum_negotiate_version", &self.minimum_negotiate_version)
            .field("authenticator", &self.authenticator.is_some())
            .field("require_authentication", &self.require_authentication)
            .field("cors", &self.cors)
            .field("start_timeout", &self.start_timeout)
            .field("application_max_buffer_size", &self.application_max_buffer_size)
            .field("max_buffered_inbound_bytes", &self.max_buffered_inbound_bytes)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_retained_request_bytes", &self.max_retained_request_bytes)
            .finish()
    }
}

impl Default for HttpConnectionOptions {
    fn default() -> Self {
        Self {
            transports: vec![TransportType::WebSockets, TransportType::ServerSentEvents, TransportType::LongPolling],
            websocket_read_buffer_size: 16 * 1024,
            outbound_buffer_limit: 64 * 1024,
            transport_max_buffer_size: 64 * 1024,
            poll_timeout: Duration::from_secs(90),
            disconnect_timeout: Duration::from_secs(15),
            websocket_close_timeout: Duration::from_secs(5),
            transport_send_timeout: Duration::from_secs(10),
            allow_stateful_reconnects: false,
            minimum_negotiate_version: 0,
            authenticator: None,
            require_authentication: false,
            cors: None,
            start_timeout: Duration::from_secs(10),
            application_max_buffer_size: 64 * 1024,
            max_buffered_inbound_bytes: 64 * 1024 * 1024,
            max_connections: 100_000,
            max_connections_per_user: 100,
            max_retained_request_bytes: 4 * 1024,
        }
    }
}

impl HttpConnectionOptions {
    /// Same as [`Default::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the enabled transports (order does not matter; negotiate always lists them as
    /// WebSockets, ServerSentEvents, LongPolling).
    pub fn transports<I: IntoIterator<Item = TransportType>>(mut self, transports: I) -> Self {
        self.transports = transports.into_iter().collect();
        self
    }

    /// Whether `transport` is enabled.
    pub fn is_enabled(&self, transport: TransportType) -> bool {
        self.transports.contains(&transport)
    }

    /// Sets the most bytes one WebSocket read takes (clamped to 1 byte – 64 KiB); reads go into
    /// a buffer per thread, so this is no memory per connection.
    pub fn websocket_read_buffer_size(mut self, bytes: usize) -> Self {
        self.websocket_read_buffer_size = bytes;
        self
    }

    /// Sets the outbound buffer limit in bytes (slow-consumer threshold).
    pub fn outbound_buffer_limit(mut self, bytes: usize) -> Self {
        self.outbound_buffer_limit = bytes;
        self
    }

    /// Sets the inbound limit in bytes (largest WebSocket message and POST body).
    pub fn transport_max_buffer_size(mut self, bytes: usize) -> Self {
        self.transport_max_buffer_size = bytes;
        self
    }

    /// Sets the long-poll timeout.
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Sets the disconnect timeout for inactive connections.
    pub fn disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.disconnect_timeout = timeout;
        self
    }

    /// Sets how long to wait for the client's close frame.
    pub fn websocket_close_timeout(mut self, timeout: Duration) -> Self {
        self.websocket_close_timeout = timeout;
        self
    }

    /// Sets the transport send timeout.
    pub fn transport_send_timeout(mut self, timeout: Duration) -> Self {
        self.transport_send_timeout = timeout;
        self
    }

    /// Allows or forbids stateful reconnect.
    pub fn allow_stateful_reconnects(mut self, allow: bool) -> Self {
        self.allow_stateful_reconnects = allow;
        self
    }

    /// Sets the lowest accepted negotiate version.
    pub fn minimum_negotiate_version(mut self, version: u32) -> Self {
        self.minimum_negotiate_version = version;
        self
    }

    /// Sets the authenticator.
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Requires an authenticated user (anonymous callers get 401).
    pub fn require_authentication(mut self, require: bool) -> Self {
        self.require_authentication = require;
        self
    }

    /// Sets the CORS policy.
    pub fn cors(mut self, policy: CorsPolicy) -> Self {
        self.cors = Some(policy);
        self
    }

    /// Sets how long a negotiated connection waits for its transport.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Sets the inbound bytes held per connection for its application.
    pub fn application_max_buffer_size(mut self, bytes: usize) -> Self {
        self.application_max_buffer_size = bytes;
        self
    }

    /// Sets the node-wide cap on buffered inbound bytes.
    pub fn max_buffered_inbound_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_inbound_bytes = bytes;
        self
    }

    /// Sets the most connections the endpoint holds.
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = count;
        self
    }

    /// Sets the most connections one user holds.
    pub fn max_connections_per_user(mut self, count: usize) -> Self {
        self.max_connections_per_user = count;
        self
    }

    /// Sets the bytes of the connection request kept for the connection's life.
    pub fn max_retained_request_bytes(mut self, bytes: usize) -> Self {
        self.max_retained_request_bytes = bytes;
        self
    }
}
