//! One heartbeat task per hub: keep-alive pings, client timeouts, handshake deadlines and
//! stateful-reconnect acks for every connection, so that connections own no timer or task.
//!
//! It also keeps a coarse clock (milliseconds since the hub started) that the receive path
//! reads instead of the system clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use signalr_protocol::HubMessage;

use super::connection::{HubConnectionState, Phase};
use super::error;
use super::service::HubShared;

/// The registry and clock the heartbeat task works on.
pub(crate) struct Heartbeat {
    started_at: Instant,
    clock_ms: AtomicU64,
    period: Duration,
    next_key: AtomicU64,
    registry: Mutex<HashMap<u64, Arc<HubConnectionState>>>,
    running: AtomicBool,
}

enum Due {
    HandshakeTimeout,
    ClientTimeout,
}

impl Heartbeat {
    /// A heartbeat ticking often enough for the given intervals (at most every second, as .NET).
    pub(crate) fn new(intervals: &[Duration]) -> Self {
        let shortest = intervals.iter().copied().min().unwrap_or(Duration::from_secs(1));
        let period = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        Self {
            started_at: Instant::now(),
            clock_ms: AtomicU64::new(0),
            period,
            next_key: AtomicU64::new(1),
            registry: Mutex::new(HashMap::new()),
            running: AtomicBool::new(false),
        }
    }

    /// The coarse clock, in milliseconds since the hub started.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }

    /// A key for a new connection.
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts the task on first use (from inside the runtime).
    pub(crate) fn ensure_running(&self, shared: &Arc<HubShared>) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(shared);
        let period = self.period;
        tokio::spawn(run(weak, period));
    }

    pub(crate) fn register(&self, state: Arc<HubConnectionState>) {
        self.registry.lock().insert(state.heartbeat_key, state);
    }

    pub(crate) fn unregister(&self, key: u64) {
        let mut registry = self.registry.lock();
        registry.remove(&key);
        if registry.is_empty() && registry.capacity() > 64 {
            registry.shrink_to_fit();
        }
    }

    /// One pass over every connection.
    fn tick(&self, shared: &HubShared) {
        let now = self.started_at.elapsed().as_millis() as u64;
        self.clock_ms.store(now, Ordering::Relaxed);
        let keep_alive = shared.options.keep_alive_interval.as_millis() as u64;
        let client_timeout = shared.options.client_timeout_interval.as_millis() as u64;
        let mut due = Vec::new();
        {
            let registry = self.registry.lock();
            for state in registry.values() {
                match state.phase() {
                    Phase::Handshaking => {
                        if now >= state.deadline_ms.load(Ordering::Relaxed) {
                            due.push((state.clone(), Due::HandshakeTimeout));
                        }
                    }
                    Phase::Connected => {
                        // Long polling has no keep-alive: neither pings nor the client timeout.
                        // (`pings()` takes the transport's lock: asked only when something is due.)
                        if state.client_pinged.load(Ordering::Relaxed)
                            && now.saturating_sub(state.last_received_ms.load(Ordering::Relaxed)) > client_timeout
                            && state.pings()
                        {
                            due.push((state.clone(), Due::ClientTimeout));
                            continue;
                        }
                        if now >= state.deadline_ms.load(Ordering::Relaxed) && state.pings() {
                            state.deadline_ms.store(now + keep_alive, Ordering::Relaxed);
                            if let Some(frame) = shared.ping_frame(state.hub_protocol()) {
                                let _ = state.connection.send(frame);
                            }
                        }
                        if let Some(replay) = state.replay.get()
                            && let Some(sequence_id) = replay.ack_due()
                        {
                            state.send_control(&HubMessage::Ack { sequence_id });
                        }
                    }
                    Phase::Closed => {}
                }
            }
        }
        for (state, what) in due {
            match what {
                Due::HandshakeTimeout => super::dispatcher::fail_handshake(&state, error::HANDSHAKE_CANCELED),
                Due::ClientTimeout => {
                    tracing::debug!(connection_id = state.connection.connection_id(), "client timeout");
                    state.close_with(Some(error::CLOSED_WITH_ERROR.to_owned()), true);
                }
            }
        }
    }
}

async fn run(shared: Weak<HubShared>, period: Duration) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        shared.heartbeat.tick(&shared);
    }
}
