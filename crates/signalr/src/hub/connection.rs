//! [`HubConnectionState`]: one hub connection's shared state, small on purpose.
//!
//! It is what lifetime managers hold (as `Arc<dyn HubConnection>`), what the shared heartbeat
//! scans, and what running invocations send through. An idle connection owns no task and no
//! timer: pings, client timeouts, handshake deadlines and stateful-reconnect acks are all driven
//! by the hub's single heartbeat task ([`super::heartbeat`]).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use signalr_connections::prefetch::PrefetchStep;
use signalr_connections::{Connection, ConnectionSendError, TransportType};
use signalr_core::hint::PrefetchStep as FanoutStep;
use signalr_protocol::value::ValueKind;
use signalr_protocol::{CloseMessage, HubMessage, HubProtocol, TransferFormat};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::invocation::QueuedCall;
use super::lifetime::{HubConnection, SendError};
use super::reconnect::ReplayBuffer;
use super::service::HubShared;
use super::upload::UploadItem;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Waiting for the handshake request.
    Handshaking = 0,
    /// Handshake done; hub messages flow.
    Connected = 1,
    /// Closing or closed: nothing more is dispatched.
    Closed = 2,
}

/// Invocation bookkeeping. It exists only while something is running, queued, streaming or
/// uploading: an idle connection holds an empty slot (see [`HubConnectionState::invocations`]).
#[derive(Default)]
pub(crate) struct Invocations {
    /// Non-streaming invocations running now (bounded by the parallel-invocations option).
    pub(crate) running: usize,
    /// Non-streaming invocations waiting for a slot, in arrival order.
    pub(crate) queued: VecDeque<QueuedCall>,
    /// Server-to-client streams by invocation id, with the token that cancels them.
    pub(crate) streams: HashMap<String, CancellationToken>,
    /// Client-to-server streams by stream id.
    pub(crate) uploads: HashMap<String, mpsc::Sender<UploadItem>>,
    /// The error the client's Close message carried, for `on_disconnected`.
    pub(crate) close_error: Option<String>,
}

impl Invocations {
    fn is_idle(&self) -> bool {
        self.running == 0 && self.queued.is_empty() && self.streams.is_empty() && self.uploads.is_empty() && self.close_error.is_none()
    }
}

type Items = HashMap<String, Box<dyn Any + Send + Sync>>;

/// The shared state of one hub connection. Implements [`HubConnection`] for lifetime managers.
pub struct HubConnectionState {
    pub(crate) connection: Connection,
    pub(crate) shared: Arc<HubShared>,
    /// Key in the heartbeat registry.
    pub(crate) heartbeat_key: u64,
    /// Chosen by the handshake.
    protocol: OnceLock<Arc<dyn HubProtocol>>,
    phase: AtomicU8,
    /// Milliseconds on the hub clock: handshake deadline while handshaking, next ping after.
    pub(crate) deadline_ms: AtomicU64,
    /// Hub clock when data last arrived from the client.
    pub(crate) last_received_ms: AtomicU64,
    /// The client has pinged once: from now on the client timeout applies.
    pub(crate) client_pinged: AtomicBool,
    invocations: Mutex<Option<Box<Invocations>>>,
    items: Mutex<Option<Box<Items>>>,
    /// Set when stateful reconnect is active (negotiated and handshake version 2).
    pub(crate) replay: OnceLock<Box<ReplayBuffer>>,
}

impl std::fmt::Debug for HubConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnectionState")
            .field("connection_id", &self.connection.connection_id())
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl HubConnectionState {
    pub(crate) fn new(connection: Connection, shared: Arc<HubShared>, heartbeat_key: u64, now_ms: u64) -> Self {
        let handshake_ms = shared.options.handshake_timeout.as_millis() as u64;
        Self {
            connection,
            shared,
            heartbeat_key,
            protocol: OnceLock::new(),
            phase: AtomicU8::new(Phase::Handshaking as u8),
            deadline_ms: AtomicU64::new(now_ms.saturating_add(handshake_ms)),
            last_received_ms: AtomicU64::new(now_ms),
            client_pinged: AtomicBool::new(false),
            invocations: Mutex::new(None),
            items: Mutex::new(None),
            replay: OnceLock::new(),
        }
    }

    /// The transport connection underneath.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Handshaking,
            1 => Phase::Connected,
            _ => Phase::Closed,
        }
    }

    /// Moves from `from` to `to`; false when another party changed the phase first.
    pub(crate) fn transition(&self, from: Phase, to: Phase) -> bool {
        self.phase.compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Marks the connection closed; returns the previous phase.
    pub(crate) fn mark_closed(&self) -> Phase {
        match self.phase.swap(Phase::Closed as u8, Ordering::AcqRel) {
            0 => Phase::Handshaking,
            1 => Phase::Connected,
            _ => Phase::Closed,
        }
    }

    pub(crate) fn set_protocol(&self, protocol: Arc<dyn HubProtocol>) {
        let _ = self.protocol.set(protocol);
    }

    /// Whether the handshake chose a protocol (the connection joined the lifetime manager).
    pub(crate) fn protocol_chosen(&self) -> bool {
        self.protocol.get().is_some()
    }

    /// The negotiated protocol (JSON until the handshake chose one).
    pub(crate) fn hub_protocol(&self) -> &dyn HubProtocol {
        match self.protocol.get() {
            Some(protocol) => protocol.as_ref(),
            None => &signalr_protocol::JsonHubProtocol,
        }
    }

    /// Which value form payloads for this connection are built in.
    pub(crate) fn value_kind(&self) -> ValueKind {
        value_kind_of(self.hub_protocol())
    }

    /// Encodes a message in this connection's protocol.
    pub(crate) fn encode(&self, message: &HubMessage) -> Option<Bytes> {
        let mut out = Vec::with_capacity(64);
        match self.hub_protocol().write_message(message, &mut out) {
            Ok(()) => Some(Bytes::from(out)),
            Err(error) => {
                tracing::error!(connection_id = self.connection.connection_id(), %error, "cannot encode hub message");
                None
            }
        }
    }

    /// Sends a message that is never numbered (Ping, Close, Ack, Sequence).
    pub(crate) fn send_control(&self, message: &HubMessage) {
        if let Some(frame) = self.encode(message) {
            let _ = self.connection.send(frame);
        }
    }

    /// Sends `Close` (with an error and reconnect hint when given) and closes the transport
    /// gracefully once it is written.
    pub(crate) fn close_with(&self, error: Option<String>, allow_reconnect: bool) {
        self.mark_closed();
        self.send_control(&HubMessage::Close(CloseMessage { error, allow_reconnect }));
        self.connection.close();
    }

    /// Queues a numbered frame (Invocation, StreamItem, Completion) without waiting. With
    /// stateful reconnect the frame is kept for replay until acknowledged.
    pub(crate) fn send_numbered(&self, frame: Bytes, pace: Pace) -> Result<(), SendError> {
        let Some(replay) = self.replay.get() else {
            return self.queue(frame, pace).map_err(map_send_error);
        };
        let mut outgoing = replay.outgoing.lock();
        if outgoing.bytes > replay.limit.saturating_mul(4) {
            // Nobody acknowledges: treat like a slow consumer instead of growing without bound.
            drop(outgoing);
            self.close_with(Some(super::error::CLOSED_WITH_ERROR.to_owned()), true);
            return Err(SendError::Full);
        }
        let id = outgoing.next_id;
        outgoing.next_id += 1;
        outgoing.bytes += frame.len();
        outgoing.frames.push_back((id, frame.clone()));
        // While the socket is down the send fails; the frame is replayed after the reconnect.
        match self.queue(frame, pace) {
            Err(ConnectionSendError::Full) => Err(SendError::Full),
            _ => Ok(()),
        }
    }

    fn queue(&self, frame: Bytes, pace: Pace) -> Result<(), ConnectionSendError> {
        match pace {
            Pace::Batch => self.connection.send(frame),
            Pace::Prompt => self.connection.send_promptly(frame),
        }
    }

    /// Sends a hub message from a running invocation; with stateful reconnect, waits while
    /// the replay buffer is full. A Completion, which the caller waits for, goes out promptly.
    pub(crate) async fn send_from_invocation(&self, message: &HubMessage) -> Result<(), SendError> {
        if let Some(replay) = self.replay.get() {
            loop {
                let notified = replay.space.notified();
                if !replay.is_full() || self.phase() == Phase::Closed {
                    break;
                }
                notified.await;
            }
        }
        if self.phase() == Phase::Closed && self.connection.is_closed() {
            return Err(SendError::Closed);
        }
        let pace = match message {
            HubMessage::Completion(_) => Pace::Prompt,
            _ => Pace::Batch,
        };
        match self.encode(message) {
            Some(frame) => {
                // Waits while the client has not taken what was sent before (pacing, not a
                // slow-consumer close); a closed connection does not wait.
                self.connection.send_space(frame.len()).await;
                self.send_numbered(frame, pace)
            }
            None => Err(SendError::NoEncoding(self.hub_protocol().name())),
        }
    }

    /// Sends `Sequence` and replays every unacknowledged frame on a new socket.
    pub(crate) fn replay_after_reconnect(&self) {
        let Some(replay) = self.replay.get() else { return };
        let outgoing = replay.outgoing.lock();
        let first = outgoing.frames.front().map(|(id, _)| *id).unwrap_or(outgoing.next_id);
        if let Some(frame) = self.encode(&HubMessage::Sequence { sequence_id: first }) {
            let _ = self.connection.send(frame);
        }
        for (_, frame) in &outgoing.frames {
            if self.connection.send(frame.clone()).is_err() {
                break;
            }
        }
    }

    /// Runs `f` on the invocation bookkeeping under its lock (never held across an await),
    /// creating it on demand and releasing it again once nothing is in flight.
    pub(crate) fn invocations<R>(&self, f: impl FnOnce(&mut Invocations) -> R) -> R {
        let mut slot = self.invocations.lock();
        let invocations = slot.get_or_insert_with(Default::default);
        let result = f(invocations);
        if invocations.is_idle() {
            *slot = None;
        }
        result
    }

    /// Runs `f` on the items map, creating it on first use.
    pub(crate) fn with_items<R>(&self, f: impl FnOnce(&mut Items) -> R) -> R {
        let mut items = self.items.lock();
        f(items.get_or_insert_with(Default::default))
    }

    /// Whether the transport sends keep-alive pings (not long polling).
    pub(crate) fn pings(&self) -> bool {
        self.connection.transport() != TransportType::LongPolling
    }
}

/// How soon a queued frame should leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// May wait a moment so that other messages join its write (broadcasts, stream items).
    Batch,
    /// The client waits for it (a Completion): written as soon as the transport can.
    Prompt,
}

/// The value form that fits a protocol: text protocols take JSON values, binary ones MessagePack.
pub(crate) fn value_kind_of(protocol: &dyn HubProtocol) -> ValueKind {
    match protocol.transfer_format() {
        TransferFormat::Text => ValueKind::Json,
        TransferFormat::Binary => ValueKind::MsgPack,
    }
}

fn map_send_error(error: ConnectionSendError) -> SendError {
    match error {
        ConnectionSendError::Closed => SendError::Closed,
        ConnectionSendError::Full => SendError::Full,
    }
}

impl HubConnection for HubConnectionState {
    fn connection_id(&self) -> &str {
        self.connection.connection_id()
    }
    fn user_identifier(&self) -> Option<&str> {
        self.connection.user().and_then(|user| user.identifier.as_deref())
    }
    fn protocol(&self) -> &dyn HubProtocol {
        self.hub_protocol()
    }
    fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
        if self.phase() != Phase::Connected {
            return Err(SendError::Closed);
        }
        self.send_numbered(frame, Pace::Batch)
    }
    fn abort(&self) {
        if self.phase() != Phase::Closed {
            self.close_with(None, false);
        }
    }
    fn prefetch(&self, step: FanoutStep) {
        // The core's hint, which cannot name the transport's, maps onto it one to one.
        self.connection.prefetch(match step {
            FanoutStep::State => PrefetchStep::State,
            FanoutStep::Targets => PrefetchStep::Targets,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-connection footprint is a design goal (≤ 4 KB RSS per idle WebSocket overall,
    /// transport included): the hub's share must stay a few hundred bytes.
    #[test]
    fn idle_state_is_small() {
        let size = std::mem::size_of::<HubConnectionState>();
        println!("HubConnectionState: {size} bytes");
        assert!(size <= 192, "HubConnectionState grew to {size} bytes");
    }
}
