//! The connection loop of a hub (.NET `HubConnectionHandler` + `DefaultHubDispatcher`): the
//! handshake, parsing, and dispatching of every message type.
//!
//! The transport calls [`ConnectionApplication::on_data`] with whatever bytes arrived; the
//! receive path never waits for a hub method, so upload items, cancellations and client-result
//! completions keep flowing while methods run.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use signalr_connections::{Connection, ConnectionApplication, ConnectionHandler, TransferFormat as WireFormat, TransportType};
use signalr_protocol::{CompletionResult, HandshakeRequest, HandshakeResponse, HubMessage, ProtocolError, TransferFormat};

use super::connection::{HubConnectionState, Phase};
use super::context::{HubCallContext, HubCallerContext};
use super::error::{self, HubError, build_error_message};
use super::invocation;
use super::reconnect::{Incoming, ReplayBuffer};
use super::service::HubShared;

/// Room kept in a connection's outbound buffer before the next call is dispatched: the call's
/// reply (usually a Completion of a few dozen bytes) must fit without making the connection a
/// slow consumer. With a smaller buffer the dispatcher waits until the buffer is empty.
const REPLY_RESERVE: usize = 16 * 1024;

/// Creates a [`HubConnectionApp`] per connection of a hub.
pub(crate) struct HubConnectionHandler {
    shared: Arc<HubShared>,
}

impl HubConnectionHandler {
    pub(crate) fn new(shared: Arc<HubShared>) -> Self {
        Self { shared }
    }
}

impl ConnectionHandler for HubConnectionHandler {
    fn on_connected(&self, connection: Connection) -> Box<dyn ConnectionApplication> {
        let heartbeat = &self.shared.heartbeat;
        heartbeat.ensure_running(&self.shared);
        let state = Arc::new(HubConnectionState::new(connection, self.shared.clone(), heartbeat.next_key(), heartbeat.refresh_ms()));
        heartbeat.register(state.clone());
        Box::new(HubConnectionApp { state, buffer: BytesMut::new() })
    }
}

/// The application side of one hub connection.
struct HubConnectionApp {
    state: Arc<HubConnectionState>,
    /// Bytes received and not yet parsed; released whenever it is empty.
    buffer: BytesMut,
}

/// Writes a handshake error response and closes the connection (heartbeat or receive path).
pub(crate) fn fail_handshake(state: &HubConnectionState, message: &str) {
    if !state.transition(Phase::Handshaking, Phase::Closed) {
        return;
    }
    let mut out = Vec::with_capacity(message.len() + 16);
    HandshakeResponse::write_error(message, &mut out);
    let _ = state.connection.send(Bytes::from(out));
    state.connection.close();
}

impl HubConnectionApp {
    /// Tries to complete the handshake with what is buffered. Returns true once connected.
    async fn handshake(&mut self) -> bool {
        let shared = self.state.shared.clone();
        let max = shared.options.maximum_receive_message_size;
        let request = match HandshakeRequest::parse(&mut self.buffer, max) {
            Ok(Some(request)) => request,
            Ok(None) => return false,
            Err(ProtocolError::MessageTooLarge { .. }) => {
                fail_handshake(&self.state, error::HANDSHAKE_CANCELED);
                return false;
            }
            Err(parse_error) => {
                let error = HubError::exception("InvalidDataException", parse_error.to_string());
                let text = build_error_message(error::HANDSHAKE_UNEXPECTED, &error, shared.options.enable_detailed_errors);
                fail_handshake(&self.state, &text);
                return false;
            }
        };
        let Some(protocol) = shared.protocol(&request.protocol).cloned() else {
            fail_handshake(&self.state, &format!("The protocol '{}' is not supported.", request.protocol));
            return false;
        };
        if !protocol.is_version_supported(request.version) {
            fail_handshake(
                &self.state,
                &format!("The server does not support version {} of the '{}' protocol.", request.version, request.protocol),
            );
            return false;
        }
        let connection = &self.state.connection;
        if protocol.transfer_format() == TransferFormat::Binary && connection.transport() == TransportType::ServerSentEvents {
            fail_handshake(
                &self.state,
                &format!(
                    "Cannot use the '{}' protocol on the current transport. The transport does not support 'Binary' transfer format.",
                    request.protocol
                ),
            );
            return false;
        }
        if !self.state.transition(Phase::Handshaking, Phase::Connected) {
            return false; // the heartbeat timed the handshake out first
        }
        self.state.set_protocol(protocol.clone());
        if connection.stateful_reconnect() && request.version >= 2 {
            let _ = self.state.replay.set(Box::new(ReplayBuffer::new(shared.options.stateful_reconnect_buffer_size)));
        }
        // The handshake response is the first thing on the wire; a binary protocol's response
        // already goes in a binary frame.
        if protocol.transfer_format() == TransferFormat::Binary {
            connection.set_transfer_format(WireFormat::Binary);
        }
        let mut out = Vec::with_capacity(3);
        HandshakeResponse::write_success(&mut out);
        let _ = connection.send(Bytes::from(out));
        let keep_alive = shared.options.keep_alive_interval.as_millis() as u64;
        self.state.deadline_ms.store(shared.heartbeat.now_ms() + keep_alive, Ordering::Relaxed);

        if let Err(error) = shared.lifetime.on_connected(self.state.clone()).await {
            tracing::error!(%error, "lifetime manager refused the connection");
            self.state.close_with(Some(error::CLOSED_WITH_ERROR.to_owned()), false);
            return false;
        }
        if let Some(hook) = shared.hub.inner.on_connected.clone() {
            let context = HubCallContext::new(self.state.clone(), None);
            let result = match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(hook(context))).await {
                Ok(result) => result,
                Err(_) => Err(HubError::exception("Exception", "on_connected panicked")),
            };
            if let Err(error) = result {
                let text = build_error_message(error::CLOSED_WITH_ERROR, &error, shared.options.enable_detailed_errors);
                self.state.close_with(Some(text), false);
                return false;
            }
        }
        true
    }

    /// Parses and dispatches every complete message in the buffer.
    async fn process(&mut self) {
        let max = self.state.shared.options.maximum_receive_message_size;
        loop {
            if self.state.phase() != Phase::Connected {
                self.buffer.clear();
                return;
            }
            let message = match self.state.hub_protocol().parse_message(&mut self.buffer, max) {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(parse_error) => {
                    tracing::debug!(connection_id = self.state.connection.connection_id(), %parse_error, "bad message");
                    let error = HubError::exception("InvalidDataException", parse_error.to_string());
                    let text = build_error_message(error::CLOSED_WITH_ERROR, &error, self.state.shared.options.enable_detailed_errors);
                    self.state.close_with(Some(text), false);
                    self.buffer.clear();
                    return;
                }
            };
            if matches!(message, HubMessage::Invocation(_) | HubMessage::StreamInvocation(_)) {
                // Pacing: a client that pipelines calls is read no faster than it takes the
                // replies, instead of being dropped as a slow consumer once they pile up.
                self.state.connection.send_space(REPLY_RESERVE).await;
            }
            self.dispatch(message).await;
        }
    }

    async fn dispatch(&mut self, message: HubMessage) {
        let state = &self.state;
        if let Some(replay) = state.replay.get()
            && matches!(
                message,
                HubMessage::Invocation(_)
                    | HubMessage::StreamItem(_)
                    | HubMessage::Completion(_)
                    | HubMessage::StreamInvocation(_)
                    | HubMessage::CancelInvocation(_)
            )
            && replay.on_incoming() == Incoming::Duplicate
        {
            return;
        }
        match message {
            HubMessage::Invocation(invocation) => {
                if invocation::queue_is_full(state) {
                    invocation::wait_for_queue_space(state).await;
                }
                invocation::dispatch(state, invocation, false);
            }
            HubMessage::StreamInvocation(invocation) => invocation::dispatch(state, invocation, true),
            HubMessage::StreamItem(item) => {
                let sender = state.invocations(|i| i.uploads.get(&item.invocation_id).cloned());
                if let Some(sender) = sender {
                    // Waits while the method has `stream_buffer_capacity` items unread: the
                    // server then stops reading from this client, as .NET does.
                    let _ = sender.send(Ok(item.item)).await;
                }
            }
            HubMessage::Completion(completion) => {
                let upload = state.invocations(|i| i.uploads.remove(&completion.invocation_id));
                match upload {
                    Some(sender) => {
                        if let CompletionResult::Error(error) = completion.result {
                            let _ = sender.send(Err(error)).await;
                        }
                    }
                    None => {
                        let id = state.connection.connection_id().to_owned();
                        if !state.shared.lifetime.set_connection_result(&id, completion).await {
                            tracing::debug!(connection_id = %id, "completion for an unknown invocation ignored");
                        }
                    }
                }
            }
            HubMessage::CancelInvocation(cancel) => {
                if let Some(token) = state.invocations(|i| i.streams.get(&cancel.invocation_id).cloned()) {
                    token.cancel();
                }
            }
            HubMessage::Ping => {
                state.client_pinged.store(true, Ordering::Relaxed);
            }
            HubMessage::Close(close) => {
                state.invocations(|i| i.close_error = close.error);
                // .NET answers a client's Close with an empty Close, then closes.
                state.close_with(None, false);
            }
            HubMessage::Ack { sequence_id } => {
                if let Some(replay) = state.replay.get() {
                    replay.ack(sequence_id);
                }
            }
            HubMessage::Sequence { sequence_id } => {
                if let Some(replay) = state.replay.get()
                    && let Err(text) = replay.on_sequence(sequence_id)
                {
                    let error = HubError::exception("InvalidOperationException", text);
                    let text = build_error_message(error::CLOSED_WITH_ERROR, &error, state.shared.options.enable_detailed_errors);
                    state.close_with(Some(text), false);
                }
            }
        }
    }
}

#[async_trait]
impl ConnectionApplication for HubConnectionApp {
    async fn on_data(&mut self, data: Bytes) {
        let now = self.state.shared.heartbeat.now_ms();
        self.state.last_received_ms.store(now, Ordering::Relaxed);
        match self.state.phase() {
            Phase::Closed => return,
            Phase::Handshaking => {
                self.buffer.extend_from_slice(&data);
                if !self.handshake().await {
                    if self.state.phase() == Phase::Closed {
                        self.buffer = BytesMut::new();
                    }
                    return;
                }
            }
            Phase::Connected => {
                if self.buffer.is_empty() {
                    self.buffer = BytesMut::from(&data[..]);
                } else {
                    self.buffer.extend_from_slice(&data);
                }
            }
        }
        self.process().await;
        if self.buffer.is_empty() {
            // An idle connection keeps no receive buffer.
            self.buffer = BytesMut::new();
        }
    }

    async fn on_reconnected(&mut self) {
        self.state.replay_after_reconnect();
    }

    async fn on_closed(&mut self) {
        let state = self.state.clone();
        let shared = state.shared.clone();
        let previous = state.mark_closed();
        shared.heartbeat.unregister(state.heartbeat_key);
        self.buffer = BytesMut::new();
        let close_error = state.invocations(|invocations| {
            for token in invocations.streams.values() {
                token.cancel();
            }
            invocations.uploads.clear();
            invocations.queued.clear();
            invocations.close_error.take()
        });
        if let Some(replay) = state.replay.get() {
            replay.space.notify_waiters();
        }
        shared.queue_space.notify_waiters();
        // Phase was already Closed when the server closed it after the handshake; whether the
        // connection ever joined the lifetime manager is what matters.
        let joined = previous == Phase::Connected || state.protocol_chosen();
        if !joined {
            return;
        }
        if let Some(hook) = shared.hub.inner.on_disconnected.clone() {
            let context = HubCallerContext { state: state.clone() };
            let _ = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(hook(context, close_error))).await;
        }
        let id = state.connection.connection_id().to_owned();
        if let Err(error) = shared.lifetime.on_disconnected(&id).await {
            tracing::warn!(connection_id = %id, %error, "lifetime manager failed on disconnect");
        }
    }
}
