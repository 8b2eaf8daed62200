//! The lifetime-manager seam: where hub sends leave the process (or don't).
//!
//! Like ASP.NET Core's `HubLifetimeManager<THub>`: the hub layer hands every send, group change
//! and client-result call to a [`HubLifetimeManager`]. [`crate::hub::DefaultHubLifetimeManager`]
//! delivers within this process; `signalr_redis::RedisHubLifetimeManager` delivers through Redis
//! to every node. Hub code never knows which one it runs on.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use signalr_connections::prefetch::PrefetchStep;
use signalr_protocol::{CompletionMessage, HubMessage, HubProtocol, Value};

/// A hub message together with its encodings, each made at most once per protocol.
///
/// A broadcast to 10,000 connections is encoded once per protocol in use, and every connection
/// gets a clone of the same [`Bytes`]. A message received from a backplane arrives already
/// encoded ([`SerializedMessage::from_encoded`]) and is written out unchanged.
#[derive(Debug)]
pub struct SerializedMessage {
    message: Option<HubMessage>,
    /// The same message with payload values in MessagePack form, written by binary protocols
    /// (so that byte arrays and timestamps keep their MessagePack types).
    binary_variant: Option<HubMessage>,
    /// (protocol name, framed bytes); a short list, one entry per protocol.
    encoded: Mutex<Vec<(&'static str, Bytes)>>,
    /// Encodings received from elsewhere under names that may not be `'static`.
    foreign: Vec<(String, Bytes)>,
}

impl SerializedMessage {
    /// Wraps a message to be encoded lazily, per protocol.
    pub fn new(message: HubMessage) -> Self {
        Self { message: Some(message), binary_variant: None, encoded: Mutex::new(Vec::new()), foreign: Vec::new() }
    }

    /// Wraps a message built twice from the same Rust values: `text` with JSON payload values
    /// (used by text protocols and returned by [`SerializedMessage::message`]) and `binary` with
    /// MessagePack payload values (used by binary protocols). The hub layer builds sends this way.
    pub fn with_variants(text: HubMessage, binary: HubMessage) -> Self {
        Self { message: Some(text), binary_variant: Some(binary), encoded: Mutex::new(Vec::new()), foreign: Vec::new() }
    }

    /// A message that exists only as framed bytes per protocol name (e.g. from Redis).
    pub fn from_encoded(encodings: Vec<(String, Bytes)>) -> Self {
        Self { message: None, binary_variant: None, encoded: Mutex::new(Vec::new()), foreign: encodings }
    }

    /// The decoded message, when this one was built from a [`HubMessage`].
    pub fn message(&self) -> Option<&HubMessage> {
        self.message.as_ref()
    }

    /// The framed bytes of this message in `protocol`, encoding it on first use.
    ///
    /// Returns `None` when the message came pre-encoded without this protocol, or when it
    /// cannot be encoded in it (the error is for the caller to log).
    pub fn encoded(&self, protocol: &dyn HubProtocol) -> Option<Bytes> {
        let name = protocol.name();
        if let Some((_, bytes)) = self.foreign.iter().find(|(n, _)| n == name) {
            return Some(bytes.clone());
        }
        let message = match (&self.binary_variant, protocol.transfer_format()) {
            (Some(binary), signalr_protocol::TransferFormat::Binary) => binary,
            _ => self.message.as_ref()?,
        };
        let mut cache = self.encoded.lock();
        if let Some((_, bytes)) = cache.iter().find(|(n, _)| *n == name) {
            return Some(bytes.clone());
        }
        let mut out = Vec::with_capacity(128);
        protocol.write_message(message, &mut out).ok()?;
        let bytes = Bytes::from(out);
        cache.push((name, bytes.clone()));
        Some(bytes)
    }
}

/// Why a message could not be handed to a connection.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed or closing.
    #[error("connection is closed")]
    Closed,
    /// The connection's outbound buffer is full; it is being disconnected as a slow consumer.
    #[error("outbound buffer is full")]
    Full,
    /// The message has no encoding in the connection's protocol.
    #[error("message has no encoding for protocol '{0}'")]
    NoEncoding(&'static str),
}

/// Why a lifetime-manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifetimeError {
    /// No connection with this id exists (on any node).
    #[error("Connection '{0}' does not exist.")]
    UnknownConnection(String),
    /// The connection went away before answering a client-result invocation.
    #[error("Connection '{0}' disconnected.")]
    Disconnected(String),
    /// The client answered a client-result invocation with an error; the text is the client's.
    #[error("{0}")]
    ClientError(String),
    /// A cross-node operation got no answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The backplane could not carry the message; the boxed error says why (for the Redis
    /// backplane, a `signalr_redis::BackplaneFailure` keeping Redis's own error as its source).
    #[error("backplane: {0}")]
    Backplane(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A connection as the lifetime manager sees it: an id, an optional user, a protocol, and a
/// non-blocking way to hand it encoded messages.
///
/// Implemented by the hub layer's connection; a lifetime manager keeps `Arc<dyn HubConnection>`
/// for the connections that live on this node.
pub trait HubConnection: Send + Sync + 'static {
    /// The public connection id (`Context.ConnectionId`).
    fn connection_id(&self) -> &str;
    /// The user identifier (`Context.UserIdentifier`), if the connection is authenticated.
    fn user_identifier(&self) -> Option<&str>;
    /// The hub protocol this connection speaks.
    fn protocol(&self) -> &dyn HubProtocol;
    /// Queues an already-encoded frame (in [`HubConnection::protocol`]) without waiting.
    ///
    /// Frames passed here are hub Invocations; with stateful reconnect they are numbered and
    /// kept for replay until the client acknowledges them.
    fn send_encoded(&self, frame: Bytes) -> Result<(), SendError>;
    /// Queues `message` in this connection's protocol without waiting.
    fn send(&self, message: &SerializedMessage) -> Result<(), SendError> {
        let protocol = self.protocol();
        match message.encoded(protocol) {
            Some(frame) => self.send_encoded(frame),
            None => Err(SendError::NoEncoding(protocol.name())),
        }
    }
    /// Closes the connection from the server side.
    fn abort(&self);
    /// Hints the CPU to load the state [`HubConnection::send_encoded`] will touch beyond this
    /// value itself (the transport's queue); see [`Fanout::deliver_all`]. Does nothing by default.
    fn prefetch(&self, step: PrefetchStep) {
        let _ = step;
    }
}

/// How many receivers ahead [`Fanout::deliver_all`] asks for a receiver's own value, its
/// transport state, and what that state points to. Each step reads what the one before
/// loaded; the distances are far enough to hide a memory round trip behind the work on the
/// receivers in between, near enough that the lines are still cached when used.
const PREFETCH_VALUE: usize = 9;
const PREFETCH_STATE: usize = 6;
const PREFETCH_TARGETS: usize = 3;

/// Delivers one message to many connections, looking its encoding up once per protocol rather
/// than once per receiver: the hot loop of every broadcast, group and user send.
pub struct Fanout<'a> {
    message: &'a SerializedMessage,
    /// The protocol name and encoding of the previous receiver; receivers mostly share one.
    last: Option<(&'static str, Option<Bytes>)>,
}

impl<'a> Fanout<'a> {
    /// A fan-out of `message`.
    pub fn new(message: &'a SerializedMessage) -> Self {
        Self { message, last: None }
    }

    /// Queues the message on `connection`: [`HubConnection::send`] with the encoding reused.
    pub fn deliver(&mut self, connection: &dyn HubConnection) -> Result<(), SendError> {
        let protocol = connection.protocol();
        let name = protocol.name();
        let frame = match &self.last {
            Some((last, frame)) if *last == name => frame.clone(),
            _ => {
                let frame = self.message.encoded(protocol);
                self.last = Some((name, frame.clone()));
                frame
            }
        };
        match frame {
            Some(frame) => connection.send_encoded(frame),
            None => Err(SendError::NoEncoding(name)),
        }
    }

    /// Queues the message on every connection of `connections`; a receiver that cannot take it
    /// (closed, slow consumer) is logged at debug level and skipped.
    ///
    /// While one receiver is served, the state of receivers a few places ahead is loaded into
    /// the CPU cache ([`HubConnection::prefetch`]): with thousands of receivers their state is
    /// rarely cached, and waiting for each in turn was most of a broadcast's cost.
    pub fn deliver_all<'c, I>(&mut self, connections: I)
    where
        I: Iterator<Item = &'c dyn HubConnection> + Clone,
    {
        let mut values = connections.clone();
        let mut states = connections.clone();
        let mut targets = connections.clone();
        values.by_ref().take(PREFETCH_VALUE).for_each(prefetch_value);
        states.by_ref().take(PREFETCH_STATE).for_each(|c| c.prefetch(PrefetchStep::State));
        targets.by_ref().take(PREFETCH_TARGETS).for_each(|c| c.prefetch(PrefetchStep::Targets));
        for connection in connections {
            if let Some(ahead) = values.next() {
                prefetch_value(ahead);
            }
            if let Some(ahead) = states.next() {
                ahead.prefetch(PrefetchStep::State);
            }
            if let Some(ahead) = targets.next() {
                ahead.prefetch(PrefetchStep::Targets);
            }
            if let Err(error) = self.deliver(connection) {
                tracing::debug!(connection_id = connection.connection_id(), %error, "message not delivered");
            }
        }
    }
}

/// Loads the connection value itself (what `protocol` and `send_encoded` read first).
#[inline(always)]
fn prefetch_value(connection: &dyn HubConnection) {
    let lines = std::mem::size_of_val(connection).div_ceil(64) + 1;
    signalr_connections::prefetch::prefetch_lines(connection as *const dyn HubConnection, lines);
}

/// Routes hub sends, group membership and client results; the backplane seam.
///
/// All send methods take the message already wrapped, so that it is encoded at most once per
/// protocol, whatever the number of receivers or nodes.
#[async_trait]
pub trait HubLifetimeManager: Send + Sync + 'static {
    /// A connection finished its handshake on this node.
    async fn on_connected(&self, connection: Arc<dyn HubConnection>) -> Result<(), LifetimeError>;
    /// A connection on this node is gone; drop its groups, user and pending results.
    async fn on_disconnected(&self, connection_id: &str) -> Result<(), LifetimeError>;

    /// Every connection of the hub.
    async fn send_all(&self, message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;
    /// Every connection except `excluded` (connection ids).
    async fn send_all_except(&self, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError>;
    /// One connection.
    async fn send_connection(&self, connection_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;
    /// Several connections.
    async fn send_connections(&self, connection_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;
    /// The members of a group.
    async fn send_group(&self, group: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;
    /// The members of several groups (a connection in two of them gets the message twice, as in .NET).
    async fn send_groups(&self, groups: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;
    /// The members of a group except `excluded` (connection ids).
    async fn send_group_except(&self, group: &str, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError>;
    /// Every connection of a user.
    async fn send_user(&self, user_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;
    /// Every connection of several users.
    async fn send_users(&self, user_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError>;

    /// Adds a connection (on any node) to a group.
    async fn add_to_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError>;
    /// Removes a connection (on any node) from a group.
    async fn remove_from_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError>;

    /// Invokes `target` on one client (on any node) and waits for its result.
    ///
    /// `invocation` carries no id; the manager assigns one from its own namespace.
    async fn invoke_connection(&self, connection_id: &str, target: &str, arguments: Vec<Value>) -> Result<Value, LifetimeError>;
    /// A client on this node answered a client-result invocation. Returns false when the id is
    /// not a pending client result (the caller then ignores the completion, as .NET does).
    async fn set_connection_result(&self, connection_id: &str, completion: CompletionMessage) -> bool;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use signalr_protocol::{InvocationMessage, JsonHubProtocol, MessagePackHubProtocol};

    use super::*;

    /// Records what it is sent and how often it is asked to prefetch; refuses when `closed`.
    struct Receiver {
        protocol: &'static dyn HubProtocol,
        closed: bool,
        frames: Mutex<Vec<Bytes>>,
        prefetches: AtomicUsize,
    }

    impl HubConnection for Receiver {
        fn connection_id(&self) -> &str {
            "receiver"
        }
        fn user_identifier(&self) -> Option<&str> {
            None
        }
        fn protocol(&self) -> &dyn HubProtocol {
            self.protocol
        }
        fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
            if self.closed {
                return Err(SendError::Closed);
            }
            self.frames.lock().push(frame);
            Ok(())
        }
        fn abort(&self) {}
        fn prefetch(&self, _step: PrefetchStep) {
            self.prefetches.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn receivers(count: usize) -> Vec<Receiver> {
        (0..count)
            .map(|index| Receiver {
                protocol: if index % 3 == 0 { &MessagePackHubProtocol } else { &JsonHubProtocol },
                closed: index % 7 == 5,
                frames: Mutex::new(Vec::new()),
                prefetches: AtomicUsize::new(0),
            })
            .collect()
    }

    fn message() -> SerializedMessage {
        SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
            invocation_id: None,
            target: "Send".into(),
            arguments: vec![Value::Json(serde_json::json!("hi"))],
            stream_ids: Vec::new(),
            headers: Default::default(),
        }))
    }

    /// Fewer, as many and more receivers than the look-ahead distances: each open receiver gets
    /// the message once in its own protocol, closed ones are skipped, and every receiver is
    /// asked for both prefetch steps once.
    #[test]
    fn deliver_all_reaches_every_receiver_once_whatever_the_count() {
        let message = message();
        let json = message.encoded(&JsonHubProtocol).unwrap();
        let msgpack = message.encoded(&MessagePackHubProtocol).unwrap();
        assert_ne!(json, msgpack);
        for count in [0, 1, 2, PREFETCH_TARGETS, PREFETCH_STATE, PREFETCH_VALUE, PREFETCH_VALUE + 1, 100] {
            let all = receivers(count);
            Fanout::new(&message).deliver_all(all.iter().map(|r| r as &dyn HubConnection));
            for (index, receiver) in all.iter().enumerate() {
                let frames = receiver.frames.lock();
                if receiver.closed {
                    assert!(frames.is_empty(), "{count} receivers: #{index} is closed");
                } else {
                    let expected = if index % 3 == 0 { &msgpack } else { &json };
                    assert_eq!(frames.as_slice(), std::slice::from_ref(expected), "{count} receivers: #{index}");
                }
                assert_eq!(receiver.prefetches.load(Ordering::Relaxed), 2, "{count} receivers: #{index}");
            }
        }
    }

    #[test]
    fn deliver_reports_a_missing_encoding() {
        let message = SerializedMessage::from_encoded(vec![("json".into(), Bytes::from_static(b"{}\x1e"))]);
        let receiver = &receivers(1)[0];
        assert_eq!(receiver.protocol.name(), "messagepack");
        assert_eq!(Fanout::new(&message).deliver(receiver), Err(SendError::NoEncoding("messagepack")));
    }
}
