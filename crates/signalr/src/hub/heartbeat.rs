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

    /// Brings the coarse clock up to now and returns it. Deadlines are set from this one: the
    /// task starts with the first connection and only then ticks, so before that the coarse
    /// clock still reads the hub's start, and a handshake deadline counted from it would already
    /// have passed for the first connection to a hub that sat idle longer than the timeout.
    pub(crate) fn refresh_ms(&self) -> u64 {
        let now = Instant::now().saturating_duration_since(self.started_at).as_millis() as u64;
        self.clock_ms.fetch_max(now, Ordering::Relaxed).max(now)
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
        let now_instant = Instant::now();
        let now = now_instant.saturating_duration_since(self.started_at).as_millis() as u64;
        self.clock_ms.fetch_max(now, Ordering::Relaxed);
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
                            let written_ago = state
                                .connection
                                .last_write_started()
                                .map(|at| now_instant.saturating_duration_since(at).as_millis() as u64);
                            let (ping, next) = keep_alive_due(now, written_ago, keep_alive);
                            state.deadline_ms.store(next, Ordering::Relaxed);
                            if ping && let Some(frame) = shared.ping_frame(state.hub_protocol()) {
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

/// A connection's keep-alive is due at `now` (ms on the hub clock): whether to ping, and when
/// to look again. No ping when the transport wrote something `written_ago` ms ago, within the
/// interval: any message resets the client's server timeout (the protocol asks for pings only
/// when nothing else was sent), so a connection receiving broadcasts costs no extra write.
fn keep_alive_due(now: u64, written_ago: Option<u64>, keep_alive: u64) -> (bool, u64) {
    match written_ago {
        Some(ago) if ago < keep_alive => (false, now + (keep_alive - ago)),
        _ => (true, now + keep_alive),
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

#[cfg(test)]
mod tests {
    use super::{Heartbeat, keep_alive_due};

    #[test]
    fn the_clock_is_brought_up_to_now_before_the_task_has_ticked() {
        let heartbeat = Heartbeat::new(&[std::time::Duration::from_secs(15)]);
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(heartbeat.now_ms(), 0, "no tick yet");
        let now = heartbeat.refresh_ms();
        assert!(now >= 30, "refreshed clock reads {now} ms");
        assert_eq!(heartbeat.now_ms(), now);
    }

    #[test]
    fn an_idle_connection_is_pinged_every_interval() {
        assert_eq!(keep_alive_due(15_000, None, 15_000), (true, 30_000));
        // Last written exactly an interval ago, or longer: ping.
        assert_eq!(keep_alive_due(15_000, Some(15_000), 15_000), (true, 30_000));
        assert_eq!(keep_alive_due(40_000, Some(25_000), 15_000), (true, 55_000));
    }

    #[test]
    fn a_connection_written_to_recently_is_not_pinged_until_an_interval_after_that_write() {
        // Written 4 s ago: look again when that write is 15 s old.
        assert_eq!(keep_alive_due(15_000, Some(4_000), 15_000), (false, 26_000));
        assert_eq!(keep_alive_due(15_000, Some(0), 15_000), (false, 30_000));
        // Then, if nothing else was written, the ping goes out.
        assert_eq!(keep_alive_due(26_000, Some(15_000), 15_000), (true, 41_000));
    }
}
