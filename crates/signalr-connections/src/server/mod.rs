//! The HTTP/1.1 server both SignalR servers run on: hyper, with Kestrel's limits and strictness.
//!
//! `axum::serve` has no limits to set: hyper alone accepts a bare LF as a line ending, a request
//! without `Host` or with two, a head of up to ~400 KB, and (without a timer) waits forever for
//! a head that never completes. [`serve`] accepts like `axum::serve` (TCP_NODELAY on every
//! connection, WebSocket upgrades, graceful shutdown, `ConnectInfo<SocketAddr>` in every
//! request) and adds, with Kestrel's defaults ([`HttpLimits::default`]):
//!
//! | limit | default | on violation |
//! |---|---|---|
//! | [`HttpLimits::request_headers_timeout`] | 30 s | 408, connection closed (silently if nothing arrived) |
//! | [`HttpLimits::keep_alive_timeout`] | 130 s | idle connection closed |
//! | [`HttpLimits::max_request_line_size`] | 8 KB | 414 |
//! | [`HttpLimits::max_request_headers_total_size`] | 32 KB | 431 |
//! | [`HttpLimits::max_concurrent_connections`] | none | new connections closed at accept |
//! | [`HttpLimits::min_request_body_data_rate`] | 240 B/s after 5 s | 408, connection closed |
//!
//! and refuses with 400 a bare LF (or bare CR) in a head, a missing `Host` on HTTP/1.1, two
//! `Host` headers, an invalid `Host` value, or an absolute-form target whose authority differs
//! from `Host`. How it works: `guard` (head checks and timers under hyper), `service` (Host
//! rules, answers for refused heads), `head` (the checks themselves).

mod body;
mod guard;
pub(crate) mod head;
mod service;
mod shared;

pub use body::RequestBodyTimeout;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use guard::SwitchedStream;
use guard::{ConnectionPermit, GuardedStream};
use service::ConnectionService;
use shared::ConnectionShared;

/// The limits an operator can set, named and defaulted as Kestrel's `KestrelServerLimits`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// `RequestHeadersTimeout`: the time a request head may take from its first byte (for a
    /// new connection: from the accept) to its last; then 408 and the connection is closed.
    pub request_headers_timeout: Duration,
    /// `KeepAliveTimeout`: how long a connection may stay idle between requests.
    pub keep_alive_timeout: Duration,
    /// `MaxRequestLineSize`: the request line's bytes with its CRLF; larger is 414.
    pub max_request_line_size: usize,
    /// `MaxRequestHeadersTotalSize`: the header lines' bytes with their CRLFs; larger is 431.
    pub max_request_headers_total_size: usize,
    /// `MaxConcurrentConnections`: open TCP connections (upgraded ones included) the node
    /// accepts; more are closed at once. `None`: no limit.
    pub max_concurrent_connections: Option<usize>,
    /// `MinRequestBodyDataRate`: the slowest a request body may arrive while the application
    /// reads it; slower is 408 and the connection is closed. `None`: no minimum.
    pub min_request_body_data_rate: Option<MinDataRate>,
}

/// Kestrel's `MinDataRate`: a rate enforced once a grace period has passed.
///
/// For a request body only the time the application spends waiting for body bytes counts (as
/// in Kestrel): a handler that has not started reading, or that is busy with what it read (a
/// SignalR POST waiting for room in its connection), is not timed. Once that waiting time
/// passes `grace_period`, the body's bytes so far divided by it must stay at least
/// `bytes_per_second`; the check runs at the exact moment it would fail, not on a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinDataRate {
    /// `BytesPerSecond`: the minimum rate; 0 enforces nothing.
    pub bytes_per_second: f64,
    /// `GracePeriod`: the waiting time before the rate is enforced.
    pub grace_period: Duration,
}

impl MinDataRate {
    /// Kestrel's default for request bodies: 240 bytes/s after a 5 s grace period.
    pub const REQUEST_BODY_DEFAULT: MinDataRate = MinDataRate { bytes_per_second: 240.0, grace_period: Duration::from_secs(5) };

    /// The waiting time after which a body of `bytes` so far is too slow.
    pub(crate) fn allowed_wait(&self, bytes: u64) -> Duration {
        let at_rate = Duration::try_from_secs_f64(bytes as f64 / self.bytes_per_second).unwrap_or(Duration::MAX);
        self.grace_period.max(at_rate)
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_headers_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(130),
            max_request_line_size: 8 * 1024,
            max_request_headers_total_size: 32 * 1024,
            max_concurrent_connections: None,
            min_request_body_data_rate: Some(MinDataRate::REQUEST_BODY_DEFAULT),
        }
    }
}

/// A limit that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A timeout of zero would close every connection at once.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// A size too small to hold any request.
    #[error("{name} is {value} bytes; it must be at least {minimum}")]
    TooSmall {
        /// The limit's Kestrel name.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The smallest value accepted.
        minimum: usize,
    },
    /// `MaxConcurrentConnections` of zero would refuse every connection.
    #[error("MaxConcurrentConnections must be at least 1 (leave it unset for no limit)")]
    NoConnections,
    /// `MinRequestBodyDataRate` with a negative or non-finite rate.
    #[error("MinRequestBodyDataRate:BytesPerSecond must be a finite number of at least 0")]
    BadDataRate,
    /// `MinRequestBodyDataRate` with a zero grace period would refuse every body that waits.
    #[error("MinRequestBodyDataRate:GracePeriod must be greater than zero (unset the rate for no minimum)")]
    NoGracePeriod,
}

impl HttpLimits {
    /// Checks that every limit can serve a request.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.request_headers_timeout.is_zero() {
            return Err(LimitsError::ZeroTimeout("RequestHeadersTimeout"));
        }
        if self.keep_alive_timeout.is_zero() {
            return Err(LimitsError::ZeroTimeout("KeepAliveTimeout"));
        }
        // Kestrel's own minimums: a request line needs room for "GET / HTTP/1.1\r\n".
        if self.max_request_line_size < 16 {
            return Err(LimitsError::TooSmall { name: "MaxRequestLineSize", value: self.max_request_line_size, minimum: 16 });
        }
        if self.max_request_headers_total_size < 64 {
            return Err(LimitsError::TooSmall {
                name: "MaxRequestHeadersTotalSize",
                value: self.max_request_headers_total_size,
                minimum: 64,
            });
        }
        if self.max_concurrent_connections == Some(0) {
            return Err(LimitsError::NoConnections);
        }
        if let Some(rate) = &self.min_request_body_data_rate {
            if !rate.bytes_per_second.is_finite() || rate.bytes_per_second < 0.0 {
                return Err(LimitsError::BadDataRate);
            }
            if rate.grace_period.is_zero() {
                return Err(LimitsError::NoGracePeriod);
            }
        }
        Ok(())
    }
}

/// hyper's default read-buffer limit (8 KB + 100 × 4 KB); raised when the head limits need more.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets every
/// connection finish its current request (idle ones close at once), and returns when all have.
/// Upgraded connections (WebSockets) are the application's: it closes them.
pub async fn serve<F>(listener: TcpListener, router: Router, limits: HttpLimits, shutdown: F) -> Result<(), LimitsError>
where
    F: Future<Output = ()> + Send + 'static,
{
    limits.validate()?;
    let limits = Arc::new(limits);
    let open = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    let stopping = CancellationToken::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The guard enforces the head limits and timers; hyper only needs room for a whole head.
    builder
        .header_read_timeout(None)
        .max_buf_size(HYPER_DEFAULT_MAX_BUF.max(limits.max_request_line_size + limits.max_request_headers_total_size + 1024));
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        let permit = match limits.max_concurrent_connections {
            None => None,
            Some(max) => {
                if open.fetch_add(1, Ordering::AcqRel) >= max {
                    open.fetch_sub(1, Ordering::AcqRel);
                    tracing::debug!(%remote, max, "connection refused: MaxConcurrentConnections reached");
                    continue;
                }
                Some(ConnectionPermit(open.clone()))
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            // The connection still works; only small writes may wait for an acknowledgement.
            tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
        }
        let shared = Arc::new(ConnectionShared::new());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let io = GuardedStream::new(stream, limits.clone(), shared.clone(), permit);
        let service = ConnectionService::new(router.clone(), shared, remote, limits.min_request_body_data_rate).with_descriptor(fd);
        let builder = builder.clone();
        let stopping = stopping.clone();
        tracker.spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::trace!(%remote, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stopping.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The stream of a connection [`serve`] accepted and hyper upgraded, without hyper's box and the
/// HTTP guard; gives back an upgrade from another server.
pub(crate) fn switched_stream(upgraded: hyper::upgrade::Upgraded) -> Result<SwitchedStream, hyper::upgrade::Upgraded> {
    let parts = upgraded.downcast::<TokioIo<GuardedStream>>()?;
    Ok(parts.io.into_inner().into_switched(parts.read_buf))
}

/// Like `axum::serve`: errors of one connection are skipped; others (out of file descriptors)
/// pause accepting for a second rather than spinning.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
