//! [`RedisHubLifetimeManager`]: the hub lifetime manager that reaches every node through Redis,
//! interoperating with ASP.NET Core's `RedisHubLifetimeManager<THub>` (wire reference §5.3).
//!
//! Like .NET it delivers broadcast, group and user sends when they come back from Redis (never
//! short-circuited locally, so the format needs no origin field), writes a send to a single
//! local connection directly, and does group changes of local connections without Redis.
//!
//! Unlike .NET, local delivery never waits for Redis: while the backplane is unhealthy a
//! broadcast, group or user send is written to this node's own recipients at once and queued
//! for Redis with their connection ids added to the excluded ids, so the copy that comes back
//! after the outage reaches only the other nodes' connections (each recipient gets it once).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use signalr_core::{
    ClientResultsManager, Fanout, HubConnection, HubConnectionStore, HubLifetimeManager, LifetimeError, LocalConnections,
    SerializedMessage, excluding,
};
use signalr_protocol::{
    CompletionMessage, CompletionResult, Headers, HubMessage, HubProtocol, InvocationMessage, JsonHubProtocol, MessagePackHubProtocol,
    Value,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::channels::{ChannelKind, RedisChannels};
use crate::config::{ConfigError, RedisConfig};
use crate::link::{BackplaneCounters, BackplaneFailure, BackplaneStatus, LinkOptions, Received, RedisLink};
use crate::protocol::{self, EnvelopeError, GroupAction, GroupCommand};

/// The error text .NET sends when a connection goes away before answering a client result.
pub use signalr_core::CONNECTION_DISCONNECTED;

/// Everything a [`RedisHubLifetimeManager`] needs.
#[derive(Debug, Clone)]
pub struct RedisBackplaneOptions {
    /// Connections, queues and reconnect timing.
    pub link: LinkOptions,
    /// The hub's wire name: the .NET full type name of the hub class on .NET nodes, e.g.
    /// `Diquis.Infrastructure.Hubs.NotificationHub`.
    pub hub_name: String,
    /// StackExchange.Redis's `ChannelPrefix` (e.g. `Diquis`); empty for none.
    pub channel_prefix: String,
    /// This node's name in group commands and its ack/return channels; unique per process.
    pub server_name: String,
    /// The protocols written into every published message's map, in order. Defaults to
    /// `json` and `messagepack`, so clients of either protocol on any .NET node can be served.
    pub protocols: Vec<Arc<dyn HubProtocol>>,
    /// How long a group change of a connection on another node waits for its ack (30 s, as .NET).
    pub ack_timeout: Duration,
    /// Largest completion frame accepted from another node.
    pub max_message_size: usize,
}

impl RedisBackplaneOptions {
    /// Options for `config` and `hub_name`, with the channel prefix taken from the connection
    /// string's `channelPrefix=` (empty when absent).
    pub fn new(config: RedisConfig, hub_name: impl Into<String>) -> Self {
        let channel_prefix = config.channel_prefix_or_empty().to_string();
        Self {
            link: LinkOptions::new(config),
            hub_name: hub_name.into(),
            channel_prefix,
            server_name: default_server_name(),
            protocols: vec![Arc::new(JsonHubProtocol), Arc::new(MessagePackHubProtocol)],
            ack_timeout: Duration::from_secs(30),
            max_message_size: 32 * 1024 * 1024,
        }
    }

    /// Parses a StackExchange.Redis connection string or `redis://` URL, see [`RedisConfig`].
    pub fn from_connection_string(connection_string: &str, hub_name: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(Self::new(RedisConfig::parse(connection_string)?, hub_name))
    }

    /// Sets the channel prefix (overrides `channelPrefix=` of the connection string).
    pub fn with_channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.channel_prefix = prefix.into();
        self
    }

    /// Sets the protocols written into published messages.
    pub fn with_protocols(mut self, protocols: Vec<Arc<dyn HubProtocol>>) -> Self {
        self.protocols = protocols;
        self
    }

    /// Sets the publish queue capacity used while Redis is away.
    pub fn with_publish_queue_capacity(mut self, capacity: usize) -> Self {
        self.link.publish_queue_capacity = capacity;
        self
    }

    /// Sharded Pub/Sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7+): on a Redis Cluster each message is
    /// handled by the shard owning its channel only. The channel names stay .NET's, but every
    /// node of the fleet must use it (the .NET backplane cannot).
    pub fn with_sharded_pub_sub(mut self, sharded: bool) -> Self {
        self.link.sharded = sharded;
        self
    }

    /// Trusts these PEM root certificates for TLS instead of the system's.
    pub fn with_tls_root_certificates(mut self, pem: Vec<u8>) -> Self {
        self.link.tls_root_certificates = Some(pem);
        self
    }
}

/// `{hostname}_{32 hex digits}`, like .NET's `{MachineName}_{Guid:N}`.
pub fn default_server_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "rust".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4().simple())
}

/// Why a manager could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BackplaneError {
    /// The Redis client could not be configured (e.g. an unreadable TLS root certificate).
    #[error("Redis client configuration: {0}")]
    Client(#[from] redis::RedisError),
    /// No protocol to publish with.
    #[error("at least one hub protocol must be configured for the backplane")]
    NoProtocols,
    /// Created outside a tokio runtime; the connection tasks need one.
    #[error("the Redis backplane must be created inside a tokio runtime")]
    NoRuntime,
}

struct RemoteInvocation {
    connection_id: String,
    /// The origin's return channel, with our prefix added.
    return_channel: String,
}

struct Inner {
    command_timeout: Duration,
    channels: RedisChannels,
    server_name: String,
    protocols: Vec<Arc<dyn HubProtocol>>,
    ack_timeout: Duration,
    max_message_size: usize,
    link: RedisLink,
    all_channel: Bytes,
    group_management_channel: Bytes,
    return_channel_unprefixed: String,
    /// This node's connections, groups and users (the store the default manager uses too).
    local: HubConnectionStore,
    next_ack_id: AtomicI32,
    acks: Mutex<HashMap<i32, oneshot::Sender<()>>>,
    /// Client results this node invoked and waits for.
    outgoing_results: ClientResultsManager,
    /// Client results other nodes invoked on this node's connections, with where to answer.
    incoming_results: Mutex<HashMap<String, RemoteInvocation>>,
}

/// A [`HubLifetimeManager`] that delivers through a Redis shared with other Rust or ASP.NET Core
/// nodes. Also usable with no local connections at all, as the publisher of a process that
/// hosts no hub (see [`crate::RedisPublisher`]).
///
/// Created with [`RedisHubLifetimeManager::new`] inside a tokio runtime; it returns at once and
/// connects in the background, so a node starts and serves its local clients while Redis is
/// away. [`RedisHubLifetimeManager::status`] tells whether Redis is reachable.
pub struct RedisHubLifetimeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisHubLifetimeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHubLifetimeManager")
            .field("channels", &self.inner.channels)
            .field("server_name", &self.inner.server_name)
            .finish_non_exhaustive()
    }
}

impl RedisHubLifetimeManager {
    /// Starts the backplane: subscribes to `all`, `internal:groups`, `internal:ack:{self}` and
    /// `internal:return:{self}` as soon as Redis is reachable. Must be called within a tokio
    /// runtime. Never waits for Redis.
    pub fn new(options: RedisBackplaneOptions) -> Result<Self, BackplaneError> {
        if options.protocols.is_empty() {
            return Err(BackplaneError::NoProtocols);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BackplaneError::NoRuntime);
        }
        let channels = RedisChannels::new(options.channel_prefix.clone(), options.hub_name.clone());
        let mut link_options = options.link.clone();
        link_options.presence_channel = Some(channels.all());
        let (link, received) = RedisLink::start(link_options)?;
        for channel in
            [channels.all(), channels.group_management(), channels.ack(&options.server_name), channels.return_results(&options.server_name)]
        {
            drop(link.subscribe(channel));
        }
        let inner = Arc::new(Inner {
            command_timeout: options.link.config.command_timeout,
            all_channel: Bytes::from(channels.all()),
            group_management_channel: Bytes::from(channels.group_management()),
            return_channel_unprefixed: channels.return_results_unprefixed(&options.server_name),
            channels,
            server_name: options.server_name,
            protocols: options.protocols,
            ack_timeout: options.ack_timeout,
            max_message_size: options.max_message_size,
            link,
            local: HubConnectionStore::new(),
            next_ack_id: AtomicI32::new(0),
            acks: Mutex::new(HashMap::new()),
            outgoing_results: ClientResultsManager::new(),
            incoming_results: Mutex::new(HashMap::new()),
        });
        tokio::spawn(process_received(inner.clone(), received));
        Ok(Self { inner })
    }

    /// Parses `connection_string` and starts a manager for `hub_name` with default options.
    pub fn connect(connection_string: &str, hub_name: &str) -> Result<Self, ConnectError> {
        let options = RedisBackplaneOptions::from_connection_string(connection_string, hub_name)?;
        Ok(Self::new(options)?)
    }

    /// Whether Redis is reachable now, and the last connection error.
    pub fn status(&self) -> BackplaneStatus {
        self.inner.link.status()
    }

    /// A receiver that sees every status change (for health endpoints and alerts).
    pub fn watch_status(&self) -> watch::Receiver<BackplaneStatus> {
        self.inner.link.watch_status()
    }

    /// Waits until both connections are up, or `timeout` passes. Returns whether healthy.
    pub async fn wait_until_healthy(&self, timeout: Duration) -> bool {
        let mut status = self.watch_status();
        tokio::time::timeout(timeout, status.wait_for(|s| s.is_healthy())).await.is_ok_and(|r| r.is_ok())
    }

    /// Counters since start: published, received, reconnects, queued, dropped, invalid.
    pub fn counters(&self) -> BackplaneCounters {
        self.inner.link.counters()
    }

    /// This node's server name (used in group commands and its ack/return channels).
    pub fn server_name(&self) -> &str {
        &self.inner.server_name
    }

    /// The channel names of this hub.
    pub fn channels(&self) -> &RedisChannels {
        &self.inner.channels
    }

    /// Number of connections on this node.
    pub fn local_connection_count(&self) -> usize {
        self.inner.local.len()
    }

    /// Publishes `message` to `audience` and waits until Redis has acknowledged the PUBLISH;
    /// returns how many subscribers (nodes) Redis handed it to.
    ///
    /// For senders that keep the message durably until it is acknowledged (an outbox): nothing
    /// is delivered locally ahead of Redis, and while the backplane is unhealthy it fails at once
    /// instead of queueing, so a crash never loses a message that was reported sent. With no
    /// acknowledgement within `timeout` it fails and the queued copy is withdrawn if it has not
    /// left yet; it may still have reached Redis, so the caller's retry can repeat it
    /// (at-least-once: receivers drop repeats by the message's own id).
    pub async fn send_acknowledged(
        &self,
        audience: Recipients<'_>,
        message: &SerializedMessage,
        timeout: Duration,
    ) -> Result<u64, LifetimeError> {
        let inner = &self.inner;
        if !inner.link.is_healthy() {
            return Err(BackplaneFailure::Unavailable.into());
        }
        let channel = match audience {
            Recipients::All => inner.all_channel.clone(),
            Recipients::Group(group) => Bytes::from(inner.channels.group(group)),
            Recipients::User(user) => Bytes::from(inner.channels.user(user)),
        };
        let payload = inner.invocation_payload(message, &[], None)?;
        let reply = inner.link.publish_with_reply(channel, payload);
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(Ok(receivers))) => Ok(receivers.max(0) as u64),
            Ok(Ok(Err(error))) => Err(error.into()),
            Ok(Err(_)) => Err(BackplaneFailure::Stopped.into()),
            Err(_) => Err(LifetimeError::Timeout("Redis to acknowledge the PUBLISH")),
        }
    }

    /// The command timeout of the connection string (`syncTimeout=`), a fitting wait for
    /// [`RedisHubLifetimeManager::send_acknowledged`].
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// Stops the Redis connections; later sends are queued and never sent.
    pub fn shutdown(&self) {
        self.inner.link.shutdown();
    }
}

impl Drop for RedisHubLifetimeManager {
    fn drop(&mut self) {
        self.inner.link.shutdown();
    }
}

/// Who an acknowledged send ([`RedisHubLifetimeManager::send_acknowledged`]) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// Every connection (`Clients.All`).
    All,
    /// The members of a group.
    Group(&'a str),
    /// The connections of a user.
    User(&'a str),
}

/// Why [`RedisHubLifetimeManager::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connection string is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The manager could not start.
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}

/// A fresh client-result invocation id: 16 random bytes, standard Base64 without `==`, like .NET.
fn new_invocation_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// Builds the invocation envelope of `message` with one map entry per protocol in `protocols`
/// (each encoding made at most once, cached in the message), as a .NET node would publish it.
///
/// `client_result` is `(invocation id, return channel without prefix)` for the 4-item form.
/// Protocols the message cannot be encoded in are left out; none at all is an error.
pub fn serialize_invocation(
    message: &SerializedMessage,
    protocols: &[Arc<dyn HubProtocol>],
    excluded: &[String],
    client_result: Option<(&str, &str)>,
) -> Result<Vec<u8>, LifetimeError> {
    let entries: Vec<(&'static str, Bytes)> =
        protocols.iter().filter_map(|protocol| message.encoded(protocol.as_ref()).map(|frame| (protocol.name(), frame))).collect();
    if entries.is_empty() {
        return Err(BackplaneFailure::Unencodable.into());
    }
    let borrowed: Vec<(&str, &[u8])> = entries.iter().map(|(name, frame)| (*name, frame.as_ref())).collect();
    Ok(protocol::write_invocation(excluded, &borrowed, client_result))
}

impl Inner {
    fn invocation_payload(
        &self,
        message: &SerializedMessage,
        excluded: &[String],
        client_result: Option<(&str, &str)>,
    ) -> Result<Bytes, LifetimeError> {
        serialize_invocation(message, &self.protocols, excluded, client_result).map(Bytes::from)
    }

    fn publish_invocation(
        &self,
        channel: Bytes,
        target: Target<'_>,
        message: &SerializedMessage,
        excluded: &[String],
    ) -> Result<(), LifetimeError> {
        let delivered_here;
        let excluded = match self.deliver_locally_while_unhealthy(target, message, excluded) {
            Some(ids) => {
                delivered_here = ids;
                &delivered_here[..]
            }
            None => excluded,
        };
        let payload = self.invocation_payload(message, excluded, None)?;
        self.link.publish(channel, payload);
        Ok(())
    }

    /// While Redis is away, writes `message` to this node's recipients of `target` at once and
    /// returns the excluded ids to publish with (the caller's plus every local recipient), so
    /// the copy sent after the outage skips them. `None` when healthy: delivery on receipt.
    fn deliver_locally_while_unhealthy(&self, target: Target<'_>, message: &SerializedMessage, excluded: &[String]) -> Option<Vec<String>> {
        if self.link.is_healthy() || matches!(target, Target::Connection(_)) {
            return None;
        }
        let mut excluded_now = excluded.to_vec();
        deliver_locally(&self.local.read(), target, excluded, message, Some(&mut excluded_now));
        Some(excluded_now)
    }

    fn local_connection(&self, connection_id: &str) -> Option<Arc<dyn HubConnection>> {
        self.local.get(connection_id)
    }

    /// Adds a local connection to a group; subscribes the group channel for its first member.
    /// Returns false when the connection is not on this node.
    async fn local_add_to_group(&self, connection_id: &str, group: &str) -> bool {
        match self.begin_local_add(connection_id, group) {
            None => false,
            Some(subscribed) => {
                if let Some(done) = subscribed {
                    let _ = done.await;
                }
                true
            }
        }
    }

    /// The state change of [`Inner::local_add_to_group`], made at once: `None` when the
    /// connection is not local, else the SUBSCRIBE confirmation to wait for, if one was needed.
    fn begin_local_add(&self, connection_id: &str, group: &str) -> Option<Option<oneshot::Receiver<()>>> {
        // Subscribed under the store's lock, so a concurrent last leave cannot unsubscribe after.
        let mut local = self.local.write();
        let first_member = local.add_to_group(connection_id, group)?;
        Some(first_member.then(|| self.link.subscribe(self.channels.group(group))))
    }

    /// Removes a local connection from a group; unsubscribes after its last member.
    fn local_remove_from_group(&self, connection_id: &str, group: &str) -> bool {
        let mut local = self.local.write();
        let Some(emptied) = local.remove_from_group(connection_id, group) else { return false };
        if emptied {
            self.link.unsubscribe(self.channels.group(group));
        }
        true
    }

    async fn remote_group_command(&self, connection_id: &str, group: &str, action: GroupAction) -> Result<(), LifetimeError> {
        let id = self.next_ack_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, tx);
        let payload = protocol::write_group_command(&GroupCommand {
            id,
            server_name: self.server_name.clone(),
            action,
            group_name: group.to_string(),
            connection_id: connection_id.to_string(),
        });
        self.link.publish(self.group_management_channel.clone(), Bytes::from(payload));
        let outcome = tokio::time::timeout(self.ack_timeout, rx).await;
        self.acks.lock().remove(&id);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(BackplaneFailure::Stopped.into()),
            Err(_) => Err(LifetimeError::Timeout("the group acknowledgement")),
        }
    }

    // ---- receiving ---------------------------------------------------------------------------

    fn handle(self: &Arc<Self>, received: Received) {
        let Some(kind) = self.channels.classify(&received.channel) else {
            tracing::debug!(channel = %received.channel, "backplane: message on an unexpected channel ignored");
            return;
        };
        let outcome = match kind {
            ChannelKind::All => self.on_invocation(&received.payload, Target::All),
            ChannelKind::Group(group) => self.on_invocation(&received.payload, Target::Group(group)),
            ChannelKind::User(user) => self.on_invocation(&received.payload, Target::User(user)),
            ChannelKind::Connection(id) => self.on_invocation(&received.payload, Target::Connection(id)),
            ChannelKind::GroupManagement => self.on_group_command(&received.payload),
            ChannelKind::Ack(_) => protocol::read_ack(&received.payload).map_err(ReceiveError::from).map(|ack| {
                if let Some(waiter) = self.acks.lock().remove(&ack.id) {
                    let _ = waiter.send(());
                }
            }),
            ChannelKind::Return(_) => self.on_completion(&received.payload),
        };
        if let Err(error) = outcome {
            self.link.count_invalid();
            tracing::warn!(channel = %received.channel, error = %crate::link::chain(&error), "backplane: unreadable message skipped");
        }
    }

    fn on_invocation(&self, payload: &Bytes, target: Target<'_>) -> Result<(), ReceiveError> {
        let invocation = protocol::read_invocation(payload)?;
        if let (Target::Connection(connection_id), Some(route)) = (target, &invocation.client_result)
            && self.local.contains(connection_id)
        {
            self.incoming_results.lock().insert(
                route.invocation_id.clone(),
                RemoteInvocation {
                    connection_id: connection_id.to_string(),
                    return_channel: self.channels.prefixed(&route.return_channel),
                },
            );
        }
        let excluded = &invocation.excluded_connection_ids;
        let message = SerializedMessage::from_encoded(invocation.messages);
        deliver_locally(&self.local.read(), target, excluded, &message, None);
        Ok(())
    }

    fn on_group_command(self: &Arc<Self>, payload: &Bytes) -> Result<(), ReceiveError> {
        let command = protocol::read_group_command(payload)?;
        if !self.local.contains(&command.connection_id) {
            return Ok(());
        }
        // Apply in arrival order; only waiting for the SUBSCRIBE and the ack run on their own.
        let inner = self.clone();
        match command.action {
            GroupAction::Remove => {
                self.local_remove_from_group(&command.connection_id, &command.group_name);
                inner.ack(&command);
            }
            GroupAction::Add => match self.begin_local_add(&command.connection_id, &command.group_name) {
                Some(Some(subscribed)) => {
                    // Ack once the group channel is subscribed, so the caller's next send lands.
                    tokio::spawn(async move {
                        let _ = subscribed.await;
                        inner.ack(&command);
                    });
                }
                _ => inner.ack(&command),
            },
            GroupAction::Unknown(action) => {
                tracing::warn!(action, "backplane: group command with an unknown action acknowledged without effect");
                inner.ack(&command);
            }
        }
        Ok(())
    }

    fn ack(&self, command: &GroupCommand) {
        let channel = self.channels.ack(&command.server_name);
        self.link.publish(Bytes::from(channel), Bytes::from(protocol::write_ack(command.id)));
    }

    fn on_completion(&self, payload: &Bytes) -> Result<(), ReceiveError> {
        let forwarded = protocol::read_completion(payload)?;
        let completion = parse_completion(&forwarded.protocol_name, &forwarded.frame, self.max_message_size)?;
        let invocation_id = completion.invocation_id.clone();
        if !self.outgoing_results.complete(completion) {
            tracing::debug!(%invocation_id, "backplane: completion for an unknown or abandoned client result ignored");
        }
        Ok(())
    }

    /// Sends a local connection's completion to the node that invoked it.
    fn forward_completion(&self, connection: &dyn HubConnection, route: RemoteInvocation, completion: &CompletionMessage) {
        let protocol = connection.protocol();
        let mut frame = Vec::with_capacity(128);
        if let Err(error) = protocol.write_message(&HubMessage::Completion(completion.clone()), &mut frame) {
            tracing::warn!(%error, "backplane: cannot encode a client result for forwarding");
            return;
        }
        let payload = protocol::write_completion(protocol.name(), &frame);
        self.link.publish(Bytes::from(route.return_channel), Bytes::from(payload));
    }
}

#[derive(Clone, Copy)]
enum Target<'a> {
    All,
    Group(&'a str),
    User(&'a str),
    Connection(&'a str),
}

/// Writes `message` to the local connections `target` names, skipping `excluded` ones (on
/// `all`, group and user channels; .NET never writes exclusions on user channels, and the ones
/// this node writes there after an outage name only its own connections). With `record`, the
/// ids of those it reached are added to it.
fn deliver_locally(
    local: &LocalConnections,
    target: Target<'_>,
    excluded: &[String],
    message: &SerializedMessage,
    record: Option<&mut Vec<String>>,
) {
    // One fan-out per kind of target, each over its own iterator type: no dynamic dispatch
    // and no chained iterators in the per-receiver loop.
    fn deliver<'a>(
        message: &SerializedMessage,
        recipients: impl Iterator<Item = (&'a str, &'a dyn HubConnection)> + Clone,
        record: Option<&mut Vec<String>>,
    ) {
        if let Some(record) = record {
            record.extend(recipients.clone().map(|(id, _)| id.to_string()));
        }
        Fanout::new(message).deliver_all(recipients.map(|(_, connection)| connection));
    }
    match target {
        Target::All => deliver(message, excluding(local.all(), excluded), record),
        Target::Group(group) => {
            if let Some(members) = local.group(group) {
                deliver(message, excluding(members, excluded), record);
            }
        }
        Target::User(user) => {
            if let Some(connections) = local.user(user) {
                deliver(message, excluding(connections, excluded), record);
            }
        }
        Target::Connection(id) => {
            let single = local.get(id).map(|connection| (id, connection.as_ref()));
            deliver(message, excluding(single.into_iter(), excluded), record);
        }
    }
}

/// Why a message received on one of the hub's channels was skipped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveError {
    /// The .NET envelope around the message could not be read.
    #[error("malformed envelope")]
    MalformedEnvelope(#[from] EnvelopeError),
    /// The envelope is fine but the client result it forwards could not be read.
    #[error("unreadable forwarded completion")]
    UnreadableCompletion(#[from] CompletionError),
}

/// Why a client result forwarded by another node (`internal:return:{server}`) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    /// The frame is not a valid hub message in its protocol.
    #[error("the {protocol} frame cannot be read")]
    Decode {
        /// The hub protocol the frame is in (`json` or `messagepack`).
        protocol: &'static str,
        /// The protocol decoder's error.
        #[source]
        source: signalr_protocol::ProtocolError,
    },
    /// The frame is in a protocol this node does not speak.
    #[error("completion in unknown protocol '{0}'")]
    UnknownProtocol(String),
    /// The frame is a hub message of another kind.
    #[error("forwarded message is not a completion")]
    NotACompletion,
    /// The frame holds no message, or one of a type the protocol does not know.
    #[error("forwarded completion is empty or of an unknown type")]
    Empty,
}

/// Parses a forwarded completion frame. Also accepts frames without their framing (no JSON
/// record separator, no MessagePack length prefix), as in .NET's own test vectors.
pub(crate) fn parse_completion(protocol_name: &str, frame: &Bytes, max: usize) -> Result<CompletionMessage, CompletionError> {
    let message = match protocol_name {
        "json" => {
            let mut buf = BytesMut::from(&frame[..]);
            if buf.last() != Some(&signalr_protocol::RECORD_SEPARATOR) {
                buf.extend_from_slice(&[signalr_protocol::RECORD_SEPARATOR]);
            }
            JsonHubProtocol.parse_message(&mut buf, max).map_err(|source| CompletionError::Decode { protocol: "json", source })?
        }
        "messagepack" => {
            let mut buf = BytesMut::from(&frame[..]);
            match MessagePackHubProtocol.parse_message(&mut buf, max) {
                Ok(Some(message)) if buf.is_empty() => Some(message),
                _ => MessagePackHubProtocol::parse_body(frame)
                    .map_err(|source| CompletionError::Decode { protocol: "messagepack", source })?,
            }
        }
        other => return Err(CompletionError::UnknownProtocol(other.to_string())),
    };
    match message {
        Some(HubMessage::Completion(completion)) => Ok(completion),
        Some(_) => Err(CompletionError::NotACompletion),
        None => Err(CompletionError::Empty),
    }
}

async fn process_received(inner: Arc<Inner>, mut received: mpsc::Receiver<Received>) {
    while let Some(message) = received.recv().await {
        inner.handle(message);
    }
}

#[async_trait]
impl HubLifetimeManager for RedisHubLifetimeManager {
    fn local_connections(&self) -> &HubConnectionStore {
        &self.inner.local
    }

    fn client_results(&self) -> &ClientResultsManager {
        &self.inner.outgoing_results
    }

    async fn on_connected(&self, connection: Arc<dyn HubConnection>) -> Result<(), LifetimeError> {
        let inner = &self.inner;
        let connection_id = connection.connection_id().to_string();
        let user = connection.user_identifier().filter(|u| !u.is_empty()).map(str::to_string);
        let waits = {
            // Subscribed under the store's lock, so a concurrent last leave cannot unsubscribe after.
            let mut local = inner.local.write();
            let mut waits = vec![inner.link.subscribe(inner.channels.connection(&connection_id))];
            if local.insert(connection)
                && let Some(user) = &user
            {
                waits.push(inner.link.subscribe(inner.channels.user(user)));
            }
            waits
        };
        for done in waits {
            let _ = done.await;
        }
        Ok(())
    }

    async fn on_disconnected(&self, connection_id: &str) -> Result<(), LifetimeError> {
        let inner = &self.inner;
        let removed = {
            let mut local = inner.local.write();
            let removed = local.remove(connection_id);
            if let Some(removed) = &removed {
                inner.link.unsubscribe(inner.channels.connection(connection_id));
                for group in &removed.emptied_groups {
                    inner.link.unsubscribe(inner.channels.group(group));
                }
                if removed.emptied_user
                    && let Some(user) = removed.connection.user_identifier()
                {
                    inner.link.unsubscribe(inner.channels.user(user));
                }
            }
            removed
        };
        // Client results this connection owed.
        inner.outgoing_results.cancel_connection(connection_id);
        let forwarded: Vec<(String, RemoteInvocation)> = {
            let mut incoming = inner.incoming_results.lock();
            let ids: Vec<String> = incoming.iter().filter(|(_, r)| r.connection_id == connection_id).map(|(id, _)| id.clone()).collect();
            ids.into_iter().filter_map(|id| incoming.remove(&id).map(|r| (id, r))).collect()
        };
        if let Some(removed) = removed {
            for (invocation_id, route) in forwarded {
                let completion = CompletionMessage {
                    headers: Headers::new(),
                    invocation_id,
                    result: CompletionResult::Error(CONNECTION_DISCONNECTED.to_string()),
                };
                inner.forward_completion(removed.connection.as_ref(), route, &completion);
            }
        }
        Ok(())
    }

    async fn send_all(&self, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        self.inner.publish_invocation(self.inner.all_channel.clone(), Target::All, &message, &[])
    }

    async fn send_all_except(&self, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError> {
        self.inner.publish_invocation(self.inner.all_channel.clone(), Target::All, &message, excluded)
    }

    async fn send_connection(&self, connection_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        if let Some(connection) = self.inner.local_connection(connection_id) {
            if let Err(error) = connection.send(&message) {
                tracing::debug!(connection_id, %error, "message not delivered to a local connection");
            }
            return Ok(());
        }
        let channel = Bytes::from(self.inner.channels.connection(connection_id));
        self.inner.publish_invocation(channel, Target::Connection(connection_id), &message, &[])
    }

    async fn send_connections(&self, connection_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        if !self.inner.link.is_healthy() {
            // Redis is away: local connections are written directly, the others wait for it.
            for id in connection_ids {
                self.send_connection(id, message.clone()).await?;
            }
            return Ok(());
        }
        // Like .NET: one publish per id, local ones included; the payload is built once.
        let payload = self.inner.invocation_payload(&message, &[], None)?;
        for id in connection_ids {
            self.inner.link.publish(Bytes::from(self.inner.channels.connection(id)), payload.clone());
        }
        Ok(())
    }

    async fn send_group(&self, group: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let channel = Bytes::from(self.inner.channels.group(group));
        self.inner.publish_invocation(channel, Target::Group(group), &message, &[])
    }

    async fn send_groups(&self, groups: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        if !self.inner.link.is_healthy() {
            // Redis is away: local members get it now (one payload per group, see the module doc).
            for group in groups.iter().filter(|g| !g.is_empty()) {
                self.send_group(group, message.clone()).await?;
            }
            return Ok(());
        }
        let payload = self.inner.invocation_payload(&message, &[], None)?;
        for group in groups.iter().filter(|g| !g.is_empty()) {
            self.inner.link.publish(Bytes::from(self.inner.channels.group(group)), payload.clone());
        }
        Ok(())
    }

    async fn send_group_except(&self, group: &str, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError> {
        let channel = Bytes::from(self.inner.channels.group(group));
        self.inner.publish_invocation(channel, Target::Group(group), &message, excluded)
    }

    async fn send_user(&self, user_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let channel = Bytes::from(self.inner.channels.user(user_id));
        self.inner.publish_invocation(channel, Target::User(user_id), &message, &[])
    }

    async fn send_users(&self, user_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        if !self.inner.link.is_healthy() {
            // Redis is away: local connections of these users get it now (see the module doc).
            for user in user_ids.iter().filter(|u| !u.is_empty()) {
                self.send_user(user, message.clone()).await?;
            }
            return Ok(());
        }
        let payload = self.inner.invocation_payload(&message, &[], None)?;
        for user in user_ids.iter().filter(|u| !u.is_empty()) {
            self.inner.link.publish(Bytes::from(self.inner.channels.user(user)), payload.clone());
        }
        Ok(())
    }

    async fn add_to_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        if self.inner.local_add_to_group(connection_id, group).await {
            return Ok(());
        }
        self.inner.remote_group_command(connection_id, group, GroupAction::Add).await
    }

    async fn remove_from_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        if self.inner.local_remove_from_group(connection_id, group) {
            return Ok(());
        }
        self.inner.remote_group_command(connection_id, group, GroupAction::Remove).await
    }

    async fn invoke_connection(&self, connection_id: &str, target: &str, arguments: Vec<Value>) -> Result<Value, LifetimeError> {
        let inner = &self.inner;
        let pending = inner.outgoing_results.add(new_invocation_id(), connection_id);
        let invocation_id = pending.invocation_id();
        let message = SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
            headers: Headers::new(),
            invocation_id: Some(invocation_id.to_string()),
            target: target.to_string(),
            arguments,
            stream_ids: Vec::new(),
        }));
        if let Some(connection) = inner.local_connection(connection_id) {
            connection
                .send(&message)
                .map_err(|source| BackplaneFailure::Connection { connection_id: connection_id.to_string(), source })?;
        } else {
            let payload = inner.invocation_payload(&message, &[], Some((invocation_id, &inner.return_channel_unprefixed)))?;
            let receivers = inner.link.publish_with_reply(Bytes::from(inner.channels.connection(connection_id)), payload);
            match receivers.await {
                Ok(Ok(0)) => return Err(LifetimeError::UnknownConnection(connection_id.to_string())),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(error.into()),
                Err(_) => return Err(BackplaneFailure::Stopped.into()),
            }
        }
        pending.wait().await
    }

    async fn set_connection_result(&self, connection_id: &str, completion: CompletionMessage) -> bool {
        let inner = &self.inner;
        // A result another node asked for first; invocation ids are random, so one of this
        // node's own can never be taken for it.
        let route = {
            let mut incoming = inner.incoming_results.lock();
            match incoming.get(&completion.invocation_id) {
                Some(r) if r.connection_id == connection_id => incoming.remove(&completion.invocation_id),
                _ => None,
            }
        };
        match (route, inner.local_connection(connection_id)) {
            (Some(route), Some(connection)) => {
                inner.forward_completion(connection.as_ref(), route, &completion);
                true
            }
            (Some(_), None) => false,
            (None, _) => inner.outgoing_results.try_complete(connection_id, completion),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_construction_is_an_error_not_a_panic() {
        let config = RedisConfig::parse("localhost").unwrap();
        let options = RedisBackplaneOptions::new(config.clone(), "H");
        assert!(matches!(RedisHubLifetimeManager::new(options), Err(BackplaneError::NoRuntime)));
        let options = RedisBackplaneOptions::new(config, "H").with_protocols(vec![]);
        assert!(matches!(RedisHubLifetimeManager::new(options), Err(BackplaneError::NoProtocols)));
        assert!(matches!(
            RedisHubLifetimeManager::connect("localhost,bogus=1", "H"),
            Err(ConnectError::Config(ConfigError::UnknownOption(_)))
        ));
    }

    #[test]
    fn unreadable_messages_keep_the_decoder_error_as_their_cause() {
        use std::error::Error as _;
        let garbage = parse_completion("json", &Bytes::from_static(b"garbage"), 1 << 20).unwrap_err();
        assert!(matches!(garbage, CompletionError::Decode { protocol: "json", .. }), "{garbage:?}");
        let cause = garbage.source().and_then(|cause| cause.downcast_ref::<signalr_protocol::ProtocolError>());
        assert!(matches!(cause, Some(signalr_protocol::ProtocolError::Json(_))), "{cause:?}");

        let skipped = ReceiveError::from(garbage);
        let chain = crate::link::chain(&skipped);
        assert!(chain.starts_with("unreadable forwarded completion: the json frame cannot be read: invalid JSON"), "{chain}");

        let truncated = ReceiveError::from(protocol::read_ack(&Bytes::from_static(&[0x91])).unwrap_err());
        let cause = truncated.source().and_then(|cause| cause.downcast_ref::<EnvelopeError>());
        assert!(matches!(cause, Some(EnvelopeError::Truncated { .. })), "{cause:?}");
    }

    #[test]
    fn invocation_ids_look_like_dotnet_ones() {
        let id = new_invocation_id();
        assert_eq!(id.len(), 22);
        assert!(!id.ends_with('='));
        assert_ne!(id, new_invocation_id());
    }

    #[test]
    fn server_names_are_unique_host_and_hex() {
        let name = default_server_name();
        let (host, hex) = name.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(name, default_server_name());
    }

    #[test]
    fn completions_parse_with_and_without_framing() {
        let json = Bytes::from_static(br#"{"type":3,"invocationId":"1","result":1}"#);
        let completion = parse_completion("json", &json, 1 << 20).unwrap();
        assert_eq!(completion.invocation_id, "1");
        assert_eq!(completion.result, CompletionResult::Result(Value::Json(serde_json::json!(1))));
        let framed = Bytes::from_static(b"{\"type\":3,\"invocationId\":\"2\",\"error\":\"boom\"}\x1e");
        assert_eq!(parse_completion("json", &framed, 1 << 20).unwrap().result, CompletionResult::Error("boom".into()));
        let body = Bytes::from_static(&[0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x03, 0x2a]);
        let completion = parse_completion("messagepack", &body, 1 << 20).unwrap();
        assert_eq!(completion.invocation_id, "xyz");
        let mut prefixed = vec![0x09];
        prefixed.extend_from_slice(&body);
        assert_eq!(parse_completion("messagepack", &Bytes::from(prefixed), 1 << 20).unwrap().invocation_id, "xyz");
        assert!(matches!(
            parse_completion("blazorpack", &body, 1 << 20),
            Err(CompletionError::UnknownProtocol(name)) if name == "blazorpack"
        ));
        assert!(parse_completion("json", &Bytes::from_static(b"garbage"), 1 << 20).is_err());
        assert!(matches!(parse_completion("json", &Bytes::from_static(br#"{"type":6}"#), 1 << 20), Err(CompletionError::NotACompletion)));
    }
}
