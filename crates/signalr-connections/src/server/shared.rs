//! What a connection's byte guard and its request service tell each other.

use std::task::Waker;
use std::time::Instant;

use http::StatusCode;
use parking_lot::Mutex;

/// One per TCP connection, shared by its [`super::guard::GuardedStream`] and its service.
#[derive(Debug)]
pub struct ConnectionShared {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Requests whose response has not finished (its body not yet dropped).
    in_flight: usize,
    /// When `in_flight` last became 0 (or the connection was accepted).
    idle_since: Instant,
    /// The request number (1-based) the guard replaced by a stand-in, and the status to answer.
    rejection: Option<(u64, StatusCode)>,
    /// The latest request whose response is known: its number and whether it switched protocols.
    decided: Option<(u64, bool)>,
    /// The latest request whose body arrived slower than `MinRequestBodyDataRate`.
    body_timeout: Option<u64>,
    /// The guard's reader, woken when the service learns something the guard waits for.
    reader: Option<Waker>,
}

impl ConnectionShared {
    /// State for a connection accepted now.
    pub fn new() -> Self {
        ConnectionShared {
            inner: Mutex::new(Inner {
                in_flight: 0,
                idle_since: Instant::now(),
                rejection: None,
                decided: None,
                body_timeout: None,
                reader: None,
            }),
        }
    }

    /// `None` while a response is in progress; otherwise since when the connection is idle.
    pub fn idle_since(&self) -> Option<Instant> {
        let inner = self.inner.lock();
        (inner.in_flight == 0).then_some(inner.idle_since)
    }

    /// Remembers the reader to wake.
    pub fn park_reader(&self, waker: &Waker) {
        let mut inner = self.inner.lock();
        match &inner.reader {
            Some(existing) if existing.will_wake(waker) => {}
            _ => inner.reader = Some(waker.clone()),
        }
    }

    fn wake_reader(inner: &mut Inner) {
        if let Some(waker) = inner.reader.take() {
            waker.wake();
        }
    }

    /// The guard replaced request `number` by a stand-in that must be answered with `status`.
    pub fn reject(&self, number: u64, status: StatusCode) {
        self.inner.lock().rejection = Some((number, status));
    }

    /// The status to answer request `number` with, if the guard refused its head.
    pub fn rejection_for(&self, number: u64) -> Option<StatusCode> {
        self.inner.lock().rejection.filter(|(n, _)| *n == number).map(|(_, status)| status)
    }

    /// Request `number`'s body arrived too slowly: it is answered 408.
    pub fn body_timed_out(&self, number: u64) {
        self.inner.lock().body_timeout = Some(number);
    }

    /// Whether request `number`'s body arrived too slowly.
    pub fn is_body_timed_out(&self, number: u64) -> bool {
        self.inner.lock().body_timeout == Some(number)
    }

    /// Whether request `number` switched protocols, once its response is known.
    pub fn switched(&self, number: u64) -> Option<bool> {
        self.inner.lock().decided.filter(|(n, _)| *n == number).map(|(_, switched)| switched)
    }

    /// A request started: the connection is busy until the returned token is dropped.
    pub fn request_started(self: &std::sync::Arc<Self>) -> InFlight {
        self.inner.lock().in_flight += 1;
        InFlight(self.clone())
    }

    /// Request `number`'s response is ready; `switched`: it switches protocols.
    pub fn response_decided(&self, number: u64, switched: bool) {
        let mut inner = self.inner.lock();
        inner.decided = Some((number, switched));
        Self::wake_reader(&mut inner);
    }
}

impl Default for ConnectionShared {
    fn default() -> Self {
        Self::new()
    }
}

/// Held by a response's body: the connection counts as busy (no keep-alive or header timer
/// runs) until it is dropped.
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<ConnectionShared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.0.inner.lock();
        inner.in_flight -= 1;
        if inner.in_flight == 0 {
            inner.idle_since = Instant::now();
            // The guard may be waiting with no timer armed: let it arm one.
            ConnectionShared::wake_reader(&mut inner);
        }
    }
}
