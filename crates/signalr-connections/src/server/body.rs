//! Kestrel's `MinRequestBodyDataRate` on the request body the application reads.
//!
//! The body is timed where the application waits for it, not at the socket: the clock runs
//! only from a poll that finds no data until the next poll, so a handler that has not started
//! reading, or is busy with what it has read (a SignalR POST waiting for room in its
//! connection, the backpressure it is allowed), costs the client nothing. Once too slow, the
//! body answers an error ([`RequestBodyTimeout`]) and tells the connection, whose service then
//! answers 408 with `Connection: close` in place of whatever the application made of the error.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::MinDataRate;
use super::shared::ConnectionShared;

/// The error a request body gives its reader once it arrives slower than
/// `MinRequestBodyDataRate`; the server answers the request with 408 and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body arrived slower than the minimum data rate (MinRequestBodyDataRate)")]
pub struct RequestBodyTimeout;

/// A request body timed against a [`MinDataRate`].
pub struct TimedBody {
    inner: Incoming,
    rate: MinDataRate,
    shared: Arc<ConnectionShared>,
    /// The request's number on its connection.
    number: u64,
    /// Body bytes handed to the application so far.
    received: u64,
    /// Time spent waiting for body bytes, up to the current wait.
    waited: Duration,
    /// When the current wait began: the last poll found no data.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl TimedBody {
    /// Times `inner`, request `number` of the connection `shared`.
    pub fn new(inner: Incoming, rate: MinDataRate, shared: Arc<ConnectionShared>, number: u64) -> Self {
        TimedBody { inner, rate, shared, number, received: 0, waited: Duration::ZERO, waiting_since: None, timer: None, timed_out: false }
    }

    fn time_out(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.timed_out = true;
        self.waiting_since = None;
        self.timer = None;
        self.shared.body_timed_out(self.number);
        tracing::debug!(received = self.received, waited = ?self.waited, "request body slower than MinRequestBodyDataRate");
        Poll::Ready(Some(Err(Box::new(RequestBodyTimeout))))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Some(Err(Box::new(RequestBodyTimeout))));
        }
        let now = Instant::now();
        if let Some(since) = this.waiting_since.take() {
            this.waited += now.saturating_duration_since(since);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(None) => {
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let allowed = this.rate.allowed_wait(this.received);
                let Some(left) = allowed.checked_sub(this.waited).filter(|left| !left.is_zero()) else {
                    return this.time_out();
                };
                this.waiting_since = Some(now);
                // An allowed wait too long for the clock (a zero rate) arms no timer.
                let Some(deadline) = now.checked_add(left) else { return Poll::Pending };
                let timer = match &mut this.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => this.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                if timer.as_mut().poll(cx).is_ready() {
                    // Counted at the next poll, which comes at once.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.timed_out && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
