//! SignalR's connection layer, the Rust counterpart of ASP.NET Core's `Http.Connections`.
//!
//! It knows nothing of hubs: it negotiates connections, runs the WebSockets, Server-Sent Events
//! and long-polling transports, authenticates requests, and hands each connection's bytes to a
//! [`ConnectionHandler`]. The hub layer (crate `signalr`) is one such handler; the raw `/echo`
//! endpoint of the test server is another.
//!
//! Contract used by the layers above (keep these names stable):
//! * [`ConnectionHandler`] / [`ConnectionApplication`]: the application side of a connection.
//! * [`Connection`]: the handle an application uses to send, switch transfer format and abort.
//! * [`HttpConnectionOptions`]: per-endpoint options with .NET's defaults.
//! * [`Authenticator`] and [`User`]: who is calling (token from `Authorization: Bearer` or the
//!   `access_token` query parameter, cookies, or anything else the application checks).
//! * [`RequestInfo`]: headers, query and cookies of the HTTP request that carries the connection.
//! * [`endpoint`]: an axum router for one endpoint path; [`case_insensitive_paths`] makes paths
//!   match case-insensitively and with a trailing slash, like ASP.NET routing.
//! * [`server::serve`]: the HTTP/1.1 server to run on, with Kestrel's limits ([`server::HttpLimits`])
//!   and strict parsing (bare LF, missing or duplicate `Host`: 400).
//! * [`listener::bind_nodelay`]: the listener for `axum::serve` in tests (`TCP_NODELAY` on every connection, so
//!   small pushes do not wait for the client's delayed acknowledgement).
//!
//! Transports and options are described in `docs/transports.md`; the WebSocket design (one task
//! per connection, coalesced writes, buffer sizes) in `docs/decisions/0003-websocket-transport.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::Router;
//! use bytes::Bytes;
//! use signalr_connections::{
//!     Connection, ConnectionApplication, ConnectionHandler, CorsPolicy, HttpConnectionOptions,
//!     case_insensitive_paths, endpoint,
//! };
//!
//! /// Echoes every byte back.
//! struct Echo;
//! struct EchoApp(Connection);
//!
//! impl ConnectionHandler for Echo {
//!     fn on_connected(&self, connection: Connection) -> Box<dyn ConnectionApplication> {
//!         Box::new(EchoApp(connection))
//!     }
//! }
//!
//! #[async_trait::async_trait]
//! impl ConnectionApplication for EchoApp {
//!     async fn on_data(&mut self, data: Bytes) {
//!         let _ = self.0.send(data);
//!     }
//!     async fn on_closed(&mut self) {}
//! }
//!
//! # async fn run() {
//! let options = HttpConnectionOptions::default().cors(CorsPolicy::any_origin());
//! let app = case_insensitive_paths(Router::new().nest("/echo", endpoint(options, Arc::new(Echo))));
//! let listener = signalr_connections::listener::bind_nodelay("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

#![warn(missing_docs)]

mod cors;
mod dispatch;
#[doc(hidden)]
pub mod fuzzing;
mod ids;
pub mod listener;
mod longpolling;
mod negotiate;
mod options;
mod paths;
pub mod prefetch;
mod request;
mod responses;
pub mod server;
mod sse;
mod state;
mod websocket;

use std::sync::Arc;

pub use dispatch::endpoint;
pub use options::{AllowedOrigins, CorsPolicy, HttpConnectionOptions};
pub use paths::case_insensitive_paths;

use async_trait::async_trait;
use bytes::Bytes;

/// A transport, as named in the negotiate response and by `GetActiveTransportName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// `WebSockets`.
    WebSockets,
    /// `ServerSentEvents`.
    ServerSentEvents,
    /// `LongPolling`.
    LongPolling,
}

impl TransportType {
    /// The exact wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportType::WebSockets => "WebSockets",
            TransportType::ServerSentEvents => "ServerSentEvents",
            TransportType::LongPolling => "LongPolling",
        }
    }
}

/// The format of the bytes an application sends: decides WebSocket Text or Binary frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text (WebSocket Text frames).
    Text,
    /// Bytes (WebSocket Binary frames); not possible over Server-Sent Events.
    Binary,
}

/// An authenticated caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The user identifier used for `Clients.User(...)` (.NET: the NameIdentifier claim).
    pub identifier: Option<String>,
    /// Every claim as (type, value); a type may repeat (e.g. several roles).
    pub claims: Vec<(String, String)>,
}

/// Claim types that differ between two tokens of the same user (times and token ids), left out
/// when deciding whether two requests come from the same user.
const VOLATILE_CLAIMS: [&str; 5] = ["exp", "iat", "nbf", "jti", "auth_time"];

impl User {
    /// Whether `self` and `other` are the same user: the same identifier and the same claims
    /// (in any order), ignoring the claims that change with every token issued (`exp`, `iat`,
    /// `nbf`, `jti`, `auth_time`), so a refreshed token still names the same user.
    pub fn is_same_user(&self, other: &User) -> bool {
        fn stable(user: &User) -> Vec<(&str, &str)> {
            let mut claims: Vec<(&str, &str)> = user
                .claims
                .iter()
                .filter(|(kind, _)| !VOLATILE_CLAIMS.contains(&kind.as_str()))
                .map(|(kind, value)| (kind.as_str(), value.as_str()))
                .collect();
            claims.sort_unstable();
            claims
        }
        self.identifier == other.identifier && stable(self) == stable(other)
    }
}

/// Whether two requests' callers are the same: both anonymous, or the same user
/// ([`User::is_same_user`]).
pub fn same_caller(a: Option<&User>, b: Option<&User>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.is_same_user(b),
        _ => false,
    }
}

/// The HTTP request that carries a connection (the WebSocket upgrade, the SSE GET, or the first
/// long poll), as seen by the application.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Request headers.
    pub headers: http::HeaderMap,
    /// Query parameters in order, as decoded pairs.
    pub query: Vec<(String, String)>,
    /// Cookies sent with the request (name, value).
    pub cookies: Vec<(String, String)>,
    /// The request path.
    pub path: String,
}

/// Decides who a request is from. Called for negotiate and for every transport request.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(Some(user))` for a known caller, `Ok(None)` for an anonymous one, `Err` to answer 401.
    ///
    /// `bearer` is the token from `Authorization: Bearer …`, or else from `access_token=` in
    /// the query string.
    fn authenticate(&self, request: &RequestInfo, bearer: Option<&str>) -> Result<Option<User>, Unauthorized>;
}

/// The request carries credentials that are missing, invalid or expired.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unauthorized: {0}")]
pub struct Unauthorized(pub String);

/// Why bytes could not be queued on a connection.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionSendError {
    /// The connection is closed.
    #[error("connection is closed")]
    Closed,
    /// The outbound buffer is full; the connection is being closed as a slow consumer.
    #[error("outbound buffer is full")]
    Full,
}

/// The application side of a connection, created once the transport is up.
#[async_trait]
pub trait ConnectionApplication: Send + 'static {
    /// Bytes from the client, in order, in whatever chunks they arrived. The transport reads no
    /// more until this returns, which is how inbound backpressure works, so it must not wait for
    /// anything that needs further input.
    async fn on_data(&mut self, data: Bytes);
    /// The connection ended (client closed, transport failed, timed out or aborted). Called once.
    async fn on_closed(&mut self);
    /// Stateful reconnect only: a new WebSocket took over this connection after the previous one
    /// dropped. Bytes queued but unsent on the old socket were discarded; the application resends
    /// what the client has not acknowledged (the hub layer sends `Sequence` and replays). Called
    /// before any new bytes are read.
    async fn on_reconnected(&mut self) {}
}

/// Creates the application for every new connection of an endpoint.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// A connection's transport is up. The returned application receives its bytes.
    fn on_connected(&self, connection: Connection) -> Box<dyn ConnectionApplication>;
}

/// A live connection, as the application sees it. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<dyn ConnectionInner>,
}

/// What a transport implements behind [`Connection`]; not for applications.
pub trait ConnectionInner: Send + Sync + 'static {
    /// See [`Connection::connection_id`].
    fn connection_id(&self) -> &str;
    /// See [`Connection::transport`].
    fn transport(&self) -> TransportType;
    /// See [`Connection::request`].
    fn request(&self) -> &RequestInfo;
    /// See [`Connection::user`].
    fn user(&self) -> Option<&User>;
    /// See [`Connection::send`].
    fn send(&self, data: Bytes) -> Result<(), ConnectionSendError>;
    /// See [`Connection::send_promptly`]. The same as `send` by default.
    fn send_promptly(&self, data: Bytes) -> Result<(), ConnectionSendError> {
        self.send(data)
    }
    /// See [`Connection::set_transfer_format`].
    fn set_transfer_format(&self, format: TransferFormat);
    /// See [`Connection::close`].
    fn close(&self);
    /// See [`Connection::abort`].
    fn abort(&self);
    /// See [`Connection::is_closed`].
    fn is_closed(&self) -> bool;
    /// See [`Connection::stateful_reconnect`].
    fn stateful_reconnect(&self) -> bool {
        false
    }
    /// See [`Connection::negotiate_version`].
    fn negotiate_version(&self) -> u32 {
        0
    }
    /// See [`Connection::prefetch`].
    fn prefetch(&self, step: prefetch::PrefetchStep) {
        let _ = step;
    }
    /// See [`Connection::last_write_started`]. `None` (not tracked) by default.
    fn last_write_started(&self) -> Option<std::time::Instant> {
        None
    }
    /// See [`Connection::send_space`]: `Ready` once `bytes` more fit in the outbound buffer
    /// (or it is empty, or the connection is closed); otherwise registers `cx`'s waker, woken
    /// when the transport takes queued bytes. Always ready by default.
    fn poll_send_space(&self, cx: &mut std::task::Context<'_>, bytes: usize) -> std::task::Poll<()> {
        let _ = (cx, bytes);
        std::task::Poll::Ready(())
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("connection_id", &self.connection_id())
            .field("transport", &self.transport())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Wraps a transport's connection state.
    pub fn new(inner: Arc<dyn ConnectionInner>) -> Self {
        Self { inner }
    }
    /// The public connection id (not the secret token).
    pub fn connection_id(&self) -> &str {
        self.inner.connection_id()
    }
    /// The transport in use.
    pub fn transport(&self) -> TransportType {
        self.inner.transport()
    }
    /// The HTTP request that carries the connection.
    pub fn request(&self) -> &RequestInfo {
        self.inner.request()
    }
    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&User> {
        self.inner.user()
    }
    /// Queues bytes for the client without waiting. Bytes queued together may leave in one
    /// write; each call's bytes must be whole protocol messages.
    pub fn send(&self, data: Bytes) -> Result<(), ConnectionSendError> {
        self.inner.send(data)
    }
    /// Queues bytes the client is waiting for (a reply), to be written as soon as the transport
    /// can: a WebSocket writer otherwise gives way once before writing, so that messages from
    /// other tasks (a burst of broadcasts) join the same write.
    pub fn send_promptly(&self, data: Bytes) -> Result<(), ConnectionSendError> {
        self.inner.send_promptly(data)
    }
    /// Chooses Text or Binary WebSocket frames for what is sent from now on.
    pub fn set_transfer_format(&self, format: TransferFormat) {
        self.inner.set_transfer_format(format)
    }
    /// Ends the connection gracefully after what is queued has been sent (WebSocket close 1000,
    /// SSE stream end, long polling 200 then 204).
    pub fn close(&self) {
        self.inner.close()
    }
    /// Ends the connection at once.
    pub fn abort(&self) {
        self.inner.abort()
    }
    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
    /// When the transport last started writing to the client, where it keeps track (the
    /// WebSockets transport does; `None` otherwise). The hub skips a keep-alive ping when
    /// something was written within the keep-alive interval: the client's timeout is reset by
    /// any message, and a busy server need not spend a write per connection on pings.
    pub fn last_write_started(&self) -> Option<std::time::Instant> {
        self.inner.last_write_started()
    }
    /// Waits until `bytes` more fit in the outbound buffer without making the connection a
    /// slow consumer: the buffer holds at most `bytes` less than its limit, or nothing (a
    /// larger message may then go alone), or the connection ended. An application that
    /// answers what it reads waits here before reading on, so a client that pipelines
    /// requests is read no faster than it takes the replies.
    pub async fn send_space(&self, bytes: usize) {
        std::future::poll_fn(|cx| self.inner.poll_send_space(cx, bytes)).await
    }
    /// Whether stateful reconnect was negotiated (client asked, endpoint allows, WebSockets):
    /// the connection then survives an ungraceful socket drop for the disconnect timeout and
    /// [`ConnectionApplication::on_reconnected`] is called when a new socket takes over.
    pub fn stateful_reconnect(&self) -> bool {
        self.inner.stateful_reconnect()
    }
    /// The negotiate version of the connection (0, or 1; 0 for skipNegotiation WebSockets).
    pub fn negotiate_version(&self) -> u32 {
        self.inner.negotiate_version()
    }
    /// Hints the CPU to load what [`Connection::send`] will touch; a fan-out calls it a few
    /// receivers ahead, each [`prefetch::PrefetchStep`] in turn (see [`prefetch`]).
    #[inline]
    pub fn prefetch(&self, step: prefetch::PrefetchStep) {
        self.inner.prefetch(step)
    }
}
