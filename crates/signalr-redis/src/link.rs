//! The two Redis connections of a node and what keeps them alive.
//!
//! * **Publisher**: one multiplexed connection. Publishes go into a bounded queue; one task takes
//!   everything queued (up to [`MAX_BATCH`]) and sends it as one pipeline, so concurrent
//!   PUBLISHes share a round trip and keep their order. While Redis is away the queue fills
//!   (oldest dropped when full, counted) and drains once Redis is back.
//! * **Subscriber**: one RESP2 Pub/Sub connection. redis-rs's connection driver only reads the
//!   socket and hands messages to a channel; our reader task forwards them to the processing
//!   task's bounded queue without doing any work itself, so a slow hub never stops the socket
//!   from being drained (Redis drops subscribers whose output buffer fills).
//!   Subscription changes go through one ordered command queue owned by the subscriber task,
//!   which also re-issues every SUBSCRIBE after a reconnect.
//!
//! Both reconnect with capped, jittered exponential backoff. Construction never waits for Redis.
//!
//! On a Redis Cluster (found with `INFO cluster` before the first message goes out) there is one
//! such pair per shard (`ServerLink`), each channel going to the shard owning its hash slot
//! (see [`crate::cluster`]); with sharded Pub/Sub the subscriber speaks RESP3 and uses
//! `SSUBSCRIBE`, the publisher `SPUBLISH`. The slot → shard routing follows resharding while
//! running: see `ClusterRouter`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::SlotMove;
use crate::config::{Endpoint, RedisConfig};

/// Most PUBLISH commands sent in one pipeline.
pub const MAX_BATCH: usize = 1024;
/// Most channels named in one SUBSCRIBE when re-subscribing.
const SUBSCRIBE_CHUNK: usize = 1000;

/// How the node's Redis connections are doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Both connections are up.
    Healthy,
    /// At least one connection is down; local delivery goes on, cross-node traffic waits.
    Unhealthy,
}

/// A snapshot of the backplane's health, readable by the application (e.g. `/health/ready`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackplaneStatus {
    /// Healthy when both connections are up.
    pub health: Health,
    /// Whether the publishing connection is up.
    pub publisher_connected: bool,
    /// Whether the subscribing connection is up (and every subscription re-issued).
    pub subscriber_connected: bool,
    /// The last connection error, kept after recovery for diagnosis.
    pub last_error: Option<String>,
}

impl BackplaneStatus {
    fn starting() -> Self {
        Self { health: Health::Unhealthy, publisher_connected: false, subscriber_connected: false, last_error: Some("connecting".into()) }
    }

    /// Whether [`BackplaneStatus::health`] is [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        self.health == Health::Healthy
    }
}

/// Counters of the backplane since start, readable by the application (e.g. for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackplaneCounters {
    /// Messages PUBLISHed to Redis.
    pub published: u64,
    /// Messages received from Redis on subscribed channels.
    pub received: u64,
    /// Successful reconnections (of either connection) after a loss.
    pub reconnects: u64,
    /// Messages waiting in the publish queue right now.
    pub queued: u64,
    /// Messages dropped from the publish queue because it was full (oldest first), or refused
    /// by Redis.
    pub dropped: u64,
    /// Received messages dropped because the processing queue was full.
    pub receive_dropped: u64,
    /// Received messages that could not be read (garbage, truncated, unknown protocol) and were
    /// skipped.
    pub invalid: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub reconnects: AtomicU64,
    pub dropped: AtomicU64,
    pub receive_dropped: AtomicU64,
    pub invalid: AtomicU64,
}

/// Settings of the connection machinery.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Where and how to connect.
    pub config: RedisConfig,
    /// PEM root certificates to trust for TLS instead of the system's (e.g. a private CA).
    pub tls_root_certificates: Option<Vec<u8>>,
    /// Publishes held while Redis is away; the oldest is dropped when full.
    pub publish_queue_capacity: usize,
    /// Received messages waiting for the processing task; newer ones are dropped when full.
    pub receive_queue_capacity: usize,
    /// First reconnect delay.
    pub reconnect_min_delay: Duration,
    /// Longest reconnect delay.
    pub reconnect_max_delay: Duration,
    /// Idle time after which the subscriber connection is checked with a PING. A PING not
    /// answered within the command timeout marks the backplane unhealthy (a hung Redis, a
    /// network cut without RST), while the connection is kept in case the answer still comes.
    pub keepalive_interval: Duration,
    /// How long a subscriber connection whose PING got no answer is kept before it is replaced
    /// (kept, its subscriptions survive a short stall with no gap; replaced, a dead peer that
    /// never sends RST cannot hold the node forever).
    pub hung_connection_limit: Duration,
    /// After an outage, how long queued publishes wait for the other nodes to be subscribed
    /// again (Redis keeps nothing for a subscriber that is not there yet).
    pub resubscribe_grace: Duration,
    /// The channel every node subscribes to (the hub's `all` channel); its subscriber count
    /// tells when the fleet is back after an outage. Set by the lifetime manager.
    pub presence_channel: Option<String>,
    /// Sharded Pub/Sub (Redis 7+, `SSUBSCRIBE`/`SPUBLISH`, RESP3 subscriber connections): on a
    /// cluster, a message is handled only by the shard that owns its channel. Every node of the
    /// fleet must use it (a .NET node or a classic node does not see sharded messages).
    pub sharded: bool,
    /// On a cluster, how often each shard's primary is asked which slots it still serves (a
    /// slot migrated away is then followed); a `MOVED` reply or a server-side `sunsubscribe`
    /// makes it ask at once.
    pub slot_refresh_interval: Duration,
}

impl LinkOptions {
    /// Defaults for `config`: 10,000 queued publishes, 100,000 queued receptions, reconnect
    /// between 100 ms and 1 s (so that a node is back within ~1 s of Redis), PING every 5 s, a
    /// hung subscriber connection replaced after 30 s.
    pub fn new(config: RedisConfig) -> Self {
        Self {
            config,
            tls_root_certificates: None,
            publish_queue_capacity: 10_000,
            receive_queue_capacity: 100_000,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(5),
            hung_connection_limit: Duration::from_secs(30),
            resubscribe_grace: Duration::from_secs(5),
            presence_channel: None,
            sharded: false,
            slot_refresh_interval: Duration::from_secs(5),
        }
    }
}

/// A message received on a subscribed channel.
#[derive(Debug)]
pub(crate) struct Received {
    pub channel: String,
    pub payload: Bytes,
}

/// Why the backplane could not carry a message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackplaneFailure {
    /// Redis is not reachable now (the node reports itself unhealthy).
    #[error("Redis is unavailable")]
    Unavailable,
    /// The backplane was shut down.
    #[error("the backplane stopped")]
    Stopped,
    /// The publish queue was full and this message, the oldest, was dropped.
    #[error("dropped: the publish queue was full")]
    QueueFull,
    /// Redis answered the PUBLISH with an error (e.g. NOPERM for an ACL user).
    #[error("Redis refused the PUBLISH: {0}")]
    Refused(#[source] redis::RedisError),
    /// No configured hub protocol could encode the message.
    #[error("the message could not be encoded in any configured protocol")]
    Unencodable,
    /// A connection of this node could not take the message.
    #[error("cannot send to connection '{connection_id}'")]
    Connection {
        /// The connection.
        connection_id: String,
        /// Why it could not take it.
        #[source]
        source: signalr_core::SendError,
    },
}

impl From<BackplaneFailure> for signalr_core::LifetimeError {
    fn from(failure: BackplaneFailure) -> Self {
        Self::Backplane(Box::new(failure))
    }
}

/// A Redis server named in an error, with what it is to the node.
#[derive(Debug, Clone)]
pub(crate) enum Server {
    /// A server the node publishes to or subscribes on (one server, a primary).
    Redis(String),
    /// A sentinel asked for the primary.
    Sentinel(String),
    /// A cluster node asked for the slot map.
    ClusterNode(String),
}

impl Server {
    /// The server `client` connects to.
    fn of(client: &Client) -> Self {
        Self::Redis(client.get_connection_info().addr().to_string())
    }

    /// The server at `endpoint`.
    fn at(endpoint: &Endpoint) -> Self {
        Self::Redis(address(endpoint))
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis(address) => f.write_str(address),
            Self::Sentinel(address) => write!(f, "sentinel {address}"),
            Self::ClusterNode(address) => write!(f, "cluster node {address}"),
        }
    }
}

/// `host:port` of an endpoint.
fn address(endpoint: &Endpoint) -> String {
    format!("{}:{}", endpoint.host, endpoint.port)
}

/// Why no usable Redis server could be reached: finding the server (the sentinels' primary, the
/// cluster's slot map) or connecting to it failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReachError {
    /// The configuration names no server of the kind needed.
    #[error("no {0} configured")]
    NothingConfigured(&'static str),
    /// A client for the server could not be set up (e.g. unusable TLS settings).
    #[error("cannot set up a client for {server}")]
    Client {
        /// The server.
        server: Server,
        /// Redis's error.
        #[source]
        source: redis::RedisError,
    },
    /// The connection could not be opened (refused, unreachable, TLS or AUTH failed, timed out).
    #[error("cannot connect to {server}")]
    Connect {
        /// The server.
        server: Server,
        /// Redis's error.
        #[source]
        source: redis::RedisError,
    },
    /// A command was answered with an error, or the connection broke meanwhile.
    #[error("{command} on {server} failed")]
    Command {
        /// The server.
        server: Server,
        /// The command.
        command: &'static str,
        /// Redis's error.
        #[source]
        source: redis::RedisError,
    },
    /// The server did not answer in time.
    #[error("{server} did not answer within {} ms", .after.as_millis())]
    Timeout {
        /// The server.
        server: Server,
        /// How long the node waited.
        after: Duration,
    },
    /// A cluster node answered `CLUSTER SLOTS` with something that is no slot map.
    #[error("{server} answered CLUSTER SLOTS without a slot map")]
    NoSlotMap {
        /// The cluster node.
        server: Server,
    },
    /// The cluster's slot map gives this slot to no node.
    #[error("the cluster assigns slot {0} to no node")]
    UnassignedSlot(u16),
    /// Some slot of the cluster is served by no node yet (a cluster being set up).
    #[error("not every cluster slot is served yet")]
    UncoveredSlots,
    /// The sentinel does not monitor the configured service.
    #[error("{server} knows no primary for service '{service}'")]
    UnknownService {
        /// The sentinel.
        server: Server,
        /// The service (`serviceName=`).
        service: String,
    },
    /// The server is a replica (a primary being demoted, or not promoted yet).
    #[error("{server} is not a primary (yet)")]
    NotPrimary {
        /// The server.
        server: Server,
    },
}

/// Why a publisher or subscriber connection is down or has to be replaced.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// No usable server could be reached.
    #[error(transparent)]
    Unreachable(#[from] ReachError),
    /// The sentinels announced a failover.
    #[error("the sentinels switched the primary")]
    PrimarySwitched,
    /// The server became a replica (a failover whose announcement did not reach the node).
    #[error("the server is no longer the primary")]
    NoLongerPrimary,
    /// Publishes were redirected (`MOVED`) by a server that is no longer the primary.
    #[error("redirected (MOVED) by a server that is no longer the primary")]
    RedirectedByReplica,
    /// Redis closed the connection.
    #[error("connection closed by Redis")]
    Closed,
    /// A command was answered with an error, or the connection broke meanwhile.
    #[error("{what} failed")]
    Command {
        /// The command or check.
        what: &'static str,
        /// Redis's error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer in time.
    #[error("Redis did not answer {what} within {} ms", .after.as_millis())]
    Timeout {
        /// The command or check.
        what: &'static str,
        /// How long the node waited.
        after: Duration,
    },
}

/// `error` followed by its causes, each after a colon: what the status and the logs show. A cause
/// whose text ends the text so far is left out (Redis's errors print their own cause).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

/// The status text of a failure of the `connection` ("publisher" or "subscriber").
fn status_text(connection: &str, error: &dyn std::error::Error) -> String {
    format!("{connection}: {}", chain(error))
}

/// The number of subscribers that got a PUBLISH, or why it failed.
pub(crate) type PublishReply = Result<i64, BackplaneFailure>;

struct Outgoing {
    channel: Bytes,
    payload: Bytes,
    reply: Option<oneshot::Sender<PublishReply>>,
}

enum SubCommand {
    Subscribe(String, Option<oneshot::Sender<()>>),
    Unsubscribe(String),
    /// The wanted channels whose hash slot is in the (sorted) list: a slot move.
    List(Arc<Vec<u16>>, Option<oneshot::Sender<Vec<String>>>),
    /// Drops channels from the wanted set, with an `UNSUBSCRIBE` when `true` (classic); a
    /// sharded subscription of a slot that moved away was dropped by the server itself.
    Release(Vec<String>, bool),
}

/// What a cluster shard's connections report to the [`ClusterRouter`].
pub(crate) enum ClusterEvent {
    /// A publish was answered `MOVED`: the slot lives on `to` now.
    Moved { slot: u16, to: Endpoint },
    /// The server dropped a sharded subscription of ours (its slot moved away).
    Dropped,
}

struct Shared {
    queue: Mutex<VecDeque<Outgoing>>,
    queue_notify: Notify,
    capacity: usize,
    counters: Counters,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    last_error: Mutex<Option<String>>,
    status: watch::Sender<BackplaneStatus>,
    cancel: CancellationToken,
    /// Most subscribers seen on the presence channel (from PUBLISH replies and NUMSUB).
    presence_peak: AtomicU64,
    /// Cluster only: the primary the publisher is connected to (or will be).
    endpoint: Mutex<Option<Endpoint>>,
    /// Cluster only: publishes answered `MOVED` (their slot left this shard), oldest first, until
    /// the router hands them to the slot's new shard.
    redirected: Mutex<VecDeque<Outgoing>>,
    /// Held by the publisher while a batch is out, so that a slot move collects every publish
    /// of its slots: none is in flight while it takes them.
    sending: tokio::sync::Mutex<()>,
    /// Sharded cluster only: the subscriber count of each channel's last `SPUBLISH`, what the
    /// new shard must show before a moved slot's publishes go there.
    channel_counts: Mutex<HashMap<Bytes, i64>>,
    /// Cluster only: where `MOVED` replies and dropped subscriptions are reported.
    events: Option<mpsc::UnboundedSender<ClusterEvent>>,
}

/// Most channels whose last subscriber count is remembered (then the memory starts again).
const CHANNEL_COUNTS_MAX: usize = 10_000;

impl Shared {
    /// Records a connection's state and publishes the resulting status. Everything happens
    /// under the status channel's lock: computed outside it, the publisher's and the
    /// subscriber's tasks could each read the other's old state and the last one to send would
    /// leave a stale "unhealthy" behind for good.
    fn set_state(&self, publisher: Option<bool>, subscriber: Option<bool>, error: Option<String>) {
        self.status.send_if_modified(|current| {
            if let Some(up) = publisher {
                self.publisher_up.store(up, Ordering::SeqCst);
            }
            if let Some(up) = subscriber {
                self.subscriber_up.store(up, Ordering::SeqCst);
            }
            let mut last_error = self.last_error.lock();
            if let Some(error) = error {
                *last_error = Some(error);
            }
            let publisher_connected = self.publisher_up.load(Ordering::SeqCst);
            let subscriber_connected = self.subscriber_up.load(Ordering::SeqCst);
            let status = BackplaneStatus {
                health: if publisher_connected && subscriber_connected { Health::Healthy } else { Health::Unhealthy },
                publisher_connected,
                subscriber_connected,
                last_error: last_error.clone(),
            };
            if *current != status {
                *current = status;
                true
            } else {
                false
            }
        });
    }

    fn enqueue(&self, outgoing: Outgoing) {
        let dropped = {
            let mut queue = self.queue.lock();
            let dropped = if queue.len() >= self.capacity { queue.pop_front() } else { None };
            queue.push_back(outgoing);
            dropped
        };
        if let Some(dropped) = dropped {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("backplane publish queue full ({}); dropped the oldest message", self.capacity);
            if let Some(reply) = dropped.reply {
                let _ = reply.send(Err(BackplaneFailure::QueueFull));
            }
        }
        self.queue_notify.notify_one();
    }

    /// Remembers the subscriber count `channel`'s last publish reached (sharded cluster).
    fn record_count(&self, channel: &Bytes, count: i64) {
        let mut counts = self.channel_counts.lock();
        if counts.get(channel) != Some(&count) {
            if counts.len() >= CHANNEL_COUNTS_MAX {
                counts.clear();
            }
            counts.insert(channel.clone(), count);
        }
    }

    /// Up to [`MAX_BATCH`] queued publishes, oldest first. A publish whose caller stopped
    /// waiting for its acknowledgement is left out: that caller sends it again itself (an outbox
    /// row retried after a timeout), so sending the stale copy too would only add a repeat.
    fn take_batch(&self) -> Vec<Outgoing> {
        let mut queue = self.queue.lock();
        let n = queue.len().min(MAX_BATCH);
        queue.drain(..n).filter(|outgoing| !outgoing.reply.as_ref().is_some_and(|reply| reply.is_closed())).collect()
    }

    fn requeue_front(&self, batch: Vec<Outgoing>) {
        let mut queue = self.queue.lock();
        for outgoing in batch.into_iter().rev() {
            queue.push_front(outgoing);
        }
        while queue.len() > self.capacity {
            if let Some(dropped) = queue.pop_front() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = dropped.reply {
                    let _ = reply.send(Err(BackplaneFailure::QueueFull));
                }
            }
        }
    }
}

/// The connections to one Redis server (one server, the primary the sentinels name, or one
/// cluster shard's primary): a pipelined publisher and a subscriber with re-subscription.
pub(crate) struct ServerLink {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<SubCommand>,
}

impl ServerLink {
    /// Starts both connection tasks; returns at once, whether Redis is reachable or not.
    /// Received messages go to `received_tx`. `cluster`: the shard's primary and where to report
    /// slot moves.
    fn start(
        options: LinkOptions,
        topology: Topology,
        received_tx: mpsc::Sender<Received>,
        cluster: Option<(Endpoint, mpsc::UnboundedSender<ClusterEvent>)>,
    ) -> Self {
        let (status, _) = watch::channel(BackplaneStatus::starting());
        let (endpoint, events) = cluster.unzip();
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            queue_notify: Notify::new(),
            capacity: options.publish_queue_capacity.max(1),
            counters: Counters::default(),
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            last_error: Mutex::new(None),
            status,
            cancel: CancellationToken::new(),
            presence_peak: AtomicU64::new(0),
            endpoint: Mutex::new(endpoint),
            redirected: Mutex::new(VecDeque::new()),
            sending: tokio::sync::Mutex::new(()),
            channel_counts: Mutex::new(HashMap::new()),
            events,
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (switches, _) = watch::channel(0u64);
        if let Topology::Sentinel { sentinels, service } = &topology {
            tokio::spawn(watch_failovers(shared.clone(), sentinels.clone(), service.clone(), options.clone(), switches.clone()));
        }
        tokio::spawn(run_publisher(shared.clone(), topology.clone(), options.clone(), switches.subscribe()));
        tokio::spawn(run_subscriber(shared.clone(), topology, options, command_rx, received_tx, switches.subscribe()));
        Self { shared, commands }
    }

    /// Whether both connections are up now (cheap: two atomic loads, for the send path).
    pub fn is_healthy(&self) -> bool {
        self.shared.publisher_up.load(Ordering::SeqCst) && self.shared.subscriber_up.load(Ordering::SeqCst)
    }

    /// The current status.
    pub fn status(&self) -> BackplaneStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<BackplaneStatus> {
        self.shared.status.subscribe()
    }

    /// The counters.
    pub fn counters(&self) -> BackplaneCounters {
        let c = &self.shared.counters;
        BackplaneCounters {
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            queued: (self.shared.queue.lock().len() + self.shared.redirected.lock().len()) as u64,
            dropped: c.dropped.load(Ordering::Relaxed),
            receive_dropped: c.receive_dropped.load(Ordering::Relaxed),
            invalid: c.invalid.load(Ordering::Relaxed),
        }
    }

    /// Stops both connections.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }
}

impl Drop for ServerLink {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; either provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The node's Redis connections, whatever Redis is: one server or a Sentinel group (one
/// [`ServerLink`]), or a Redis Cluster (one [`ServerLink`] per shard, each channel sent to the
/// shard that owns its hash slot, as StackExchange.Redis does). A configuration without
/// `serviceName` is checked for a cluster (`INFO cluster`) before anything is sent; until then,
/// publishes and subscriptions wait here in order (publishes bounded like the publish queue).
pub(crate) struct RedisLink {
    facade: Arc<Facade>,
}

struct Facade {
    mode: std::sync::OnceLock<Mode>,
    /// Operations waiting for the kind of Redis to be known; `None` once it is.
    pending: Mutex<Option<Pending>>,
    status: watch::Sender<BackplaneStatus>,
    cancel: CancellationToken,
    capacity: usize,
    dropped: AtomicU64,
    invalid: AtomicU64,
}

#[derive(Default)]
struct Pending {
    ops: VecDeque<Op>,
    publishes: usize,
}

enum Op {
    Publish(Outgoing),
    Subscribe(String, Option<oneshot::Sender<()>>),
    Unsubscribe(String),
}

enum Mode {
    Single(ServerLink),
    Cluster(Arc<ClusterRouter>),
}

impl Mode {
    /// Calls `f` with every link (every shard's, on a cluster).
    fn each_link(&self, mut f: impl FnMut(&ServerLink)) {
        match self {
            Self::Single(link) => f(link),
            Self::Cluster(router) => router.routes.read().shards.iter().for_each(|shard| f(&shard.link)),
        }
    }

    fn apply(&self, op: Op) {
        match self {
            Self::Single(link) => match op {
                Op::Publish(outgoing) => link.shared.enqueue(outgoing),
                Op::Subscribe(channel, done) => {
                    let _ = link.commands.send(SubCommand::Subscribe(channel, done));
                }
                Op::Unsubscribe(channel) => {
                    let _ = link.commands.send(SubCommand::Unsubscribe(channel));
                }
            },
            Self::Cluster(router) => router.apply(op),
        }
    }

    /// The status of all links together: healthy when every shard is.
    fn status(&self) -> BackplaneStatus {
        let mut statuses: Vec<BackplaneStatus> = Vec::new();
        self.each_link(|link| statuses.push(link.status()));
        if let [only] = &statuses[..] {
            return only.clone();
        }
        let publisher_connected = statuses.iter().all(|s| s.publisher_connected);
        let subscriber_connected = statuses.iter().all(|s| s.subscriber_connected);
        let last_error = statuses
            .iter()
            .find(|s| !s.is_healthy() && s.last_error.is_some())
            .or_else(|| statuses.iter().find(|s| s.last_error.is_some()))
            .and_then(|s| s.last_error.clone());
        BackplaneStatus {
            health: if publisher_connected && subscriber_connected { Health::Healthy } else { Health::Unhealthy },
            publisher_connected,
            subscriber_connected,
            last_error,
        }
    }
}

/// [`Routes::moving`] of a slot that is not moving.
const NOT_MOVING: u8 = u8::MAX;

/// One shard of a cluster: its connections, and the slot they find its primary by.
struct Shard {
    link: ServerLink,
    /// A slot the shard owns; changed when that slot moves away.
    slot: Arc<AtomicU16>,
}

struct Routes {
    shards: Vec<Arc<Shard>>,
    /// Slot → index in `shards`.
    table: Vec<u8>,
    /// Slot → index of the shard it is moving to, or [`NOT_MOVING`].
    moving: Vec<u8>,
}

/// The slot → shard routing of a Redis Cluster, replaced while the node runs.
///
/// A supervisor task ([`supervise`]) asks each shard's primary every
/// [`LinkOptions::slot_refresh_interval`] which of its slots it still serves, and at once when a
/// publish is answered `MOVED` or the server drops a sharded subscription (Redis 7 sends
/// `sunsubscribe` when the channel's slot leaves). Only a primary's word about its own slots
/// counts ([`crate::cluster::slot_moves`]). A move of slots from shard A to B:
/// 1. new publishes of the slots wait here, in order; new subscriptions go to B;
/// 2. A's publishes of the slots (those answered `MOVED`, then those queued) are taken back
///    while none is in flight;
/// 3. the node's subscriptions of the slots are made on B, confirmed, then released on A
///    (classic: `UNSUBSCRIBE`; sharded: A dropped them already);
/// 4. sharded: the publishes wait until B shows as many subscribers of their channels as A
///    last counted (the other nodes move their subscriptions when they notice), at most
///    [`LinkOptions::resubscribe_grace`];
/// 5. they go to B's queue, oldest first, and the slots are routed to B.
///
/// A shard left with no slot closes its connections; a primary no shard had gets new ones.
pub(crate) struct ClusterRouter {
    routes: RwLock<Routes>,
    /// Publishes of moving slots, oldest first.
    held: Mutex<VecDeque<Outgoing>>,
    /// Bumped when shards come or go (the node's status follows the current set).
    generation: watch::Sender<u64>,
    nodes: Arc<Mutex<Vec<Endpoint>>>,
    options: LinkOptions,
    received_tx: mpsc::Sender<Received>,
    events: mpsc::UnboundedSender<ClusterEvent>,
    /// What the shards closed after losing every slot had counted (counters never go down).
    retired_counters: Mutex<BackplaneCounters>,
}

impl ClusterRouter {
    fn apply(&self, op: Op) {
        let routes = self.routes.read();
        let slot_of = |channel: &[u8]| usize::from(crate::cluster::slot(channel));
        match op {
            Op::Publish(outgoing) => {
                let slot = slot_of(&outgoing.channel);
                if routes.moving[slot] != NOT_MOVING {
                    self.held.lock().push_back(outgoing);
                } else {
                    routes.shards[usize::from(routes.table[slot])].link.shared.enqueue(outgoing);
                }
            }
            Op::Subscribe(channel, done) => {
                let slot = slot_of(channel.as_bytes());
                let index = if routes.moving[slot] != NOT_MOVING { routes.moving[slot] } else { routes.table[slot] };
                let _ = routes.shards[usize::from(index)].link.commands.send(SubCommand::Subscribe(channel, done));
            }
            Op::Unsubscribe(channel) => {
                let slot = slot_of(channel.as_bytes());
                if routes.moving[slot] != NOT_MOVING {
                    let _ = routes.shards[usize::from(routes.moving[slot])].link.commands.send(SubCommand::Unsubscribe(channel.clone()));
                }
                let _ = routes.shards[usize::from(routes.table[slot])].link.commands.send(SubCommand::Unsubscribe(channel));
            }
        }
    }

    fn start_shard(&self, primary: Endpoint, slot: u16) -> Arc<Shard> {
        let slot = Arc::new(AtomicU16::new(slot));
        let topology = Topology::ClusterShard { nodes: self.nodes.clone(), slot: slot.clone() };
        let link = ServerLink::start(self.options.clone(), topology, self.received_tx.clone(), Some((primary, self.events.clone())));
        Arc::new(Shard { link, slot })
    }

    /// Asks every shard's primary which of its slots it still serves and follows what moved
    /// (`hints`: `MOVED` replies).
    async fn refresh(&self, hints: &[(u16, Endpoint)]) {
        let (table, primaries) = {
            let routes = self.routes.read();
            let primaries: Vec<Option<Endpoint>> = routes.shards.iter().map(|shard| shard.link.shared.endpoint.lock().clone()).collect();
            (routes.table.clone(), primaries)
        };
        let asks = primaries.iter().enumerate().filter_map(|(index, primary)| {
            let primary = primary.clone()?;
            Some(async move { own_view(&primary, &self.options).await.map(|map| (index, primary, map)) })
        });
        let views: Vec<(usize, Endpoint, crate::cluster::SlotMap)> =
            futures_util::future::join_all(asks).await.into_iter().flatten().collect();
        {
            let mut nodes = self.nodes.lock();
            for node in views.iter().flat_map(|(_, _, map)| map.nodes()) {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        for slot_move in crate::cluster::slot_moves(&table, &primaries, &views, hints) {
            self.move_slots(slot_move).await;
        }
    }

    /// Moves `slots` from shard `from` to the shard of primary `to` (see the type's doc).
    async fn move_slots(&self, SlotMove { from, to, slots }: SlotMove) {
        let Some(&first) = slots.first() else { return };
        let (source, target, target_index) = {
            let mut routes = self.routes.write();
            if slots.iter().any(|&slot| usize::from(routes.table[usize::from(slot)]) != from) {
                return; // Moved meanwhile; the next refresh sees where.
            }
            let existing = routes.shards.iter().position(|shard| shard.link.shared.endpoint.lock().as_ref() == Some(&to));
            let index = match existing {
                Some(index) => index,
                None if routes.shards.len() < usize::from(NOT_MOVING) => {
                    tracing::info!(primary = %format!("{}:{}", to.host, to.port), "backplane: a cluster primary new to this node owns slots now; connecting");
                    routes.shards.push(self.start_shard(to.clone(), first));
                    self.generation.send_modify(|generation| *generation += 1);
                    routes.shards.len() - 1
                }
                None => {
                    tracing::error!("backplane: too many cluster shards; slots not followed");
                    return;
                }
            };
            if index == from {
                return;
            }
            for &slot in &slots {
                routes.moving[usize::from(slot)] = index as u8;
            }
            (routes.shards[from].clone(), routes.shards[index].clone(), index)
        };
        tracing::info!(
            slots = slots.len(),
            first,
            to = %format!("{}:{}", to.host, to.port),
            "backplane: cluster slots moved to another primary; following them"
        );
        let moving = |channel: &[u8]| slots.binary_search(&crate::cluster::slot(channel)).is_ok();
        let handed: Vec<Outgoing> = {
            let _sending = source.link.shared.sending.lock().await;
            let mut handed = take_matching(&mut source.link.shared.redirected.lock(), &moving);
            handed.extend(take_matching(&mut source.link.shared.queue.lock(), &moving));
            handed
        };
        let (reply, listed) = oneshot::channel();
        let _ = source.link.commands.send(SubCommand::List(Arc::new(slots.clone()), Some(reply)));
        let channels = listed.await.unwrap_or_default();
        let confirmations: Vec<oneshot::Receiver<()>> = channels
            .iter()
            .map(|channel| {
                let (done, confirmed) = oneshot::channel();
                let _ = target.link.commands.send(SubCommand::Subscribe(channel.clone(), Some(done)));
                confirmed
            })
            .collect();
        for confirmed in confirmations {
            let _ = confirmed.await;
        }
        let _ = source.link.commands.send(SubCommand::Release(channels, !self.options.sharded));
        if self.options.sharded {
            // A sharded message reaches only the subscribers on the shard it is published on.
            let wanted: HashMap<Bytes, i64> = {
                let counts = source.link.shared.channel_counts.lock();
                let held = self.held.lock();
                let presence = self.options.presence_channel.as_ref().map(|p| Bytes::from(p.clone().into_bytes()));
                handed
                    .iter()
                    .chain(held.iter().filter(|outgoing| moving(&outgoing.channel)))
                    .map(|outgoing| outgoing.channel.clone())
                    .chain(presence.filter(|p| moving(p)))
                    .filter_map(|channel| counts.get(&channel).map(|&count| (channel, count)))
                    .collect()
            };
            if !wanted.is_empty() {
                wait_for_subscribers(&self.options, &to, &wanted, &source.link.shared.cancel).await;
            }
            let mut counts = target.link.shared.channel_counts.lock();
            for (channel, count) in wanted {
                counts.insert(channel, count);
            }
        }
        let retired = {
            let mut routes = self.routes.write();
            let waiting = take_matching(&mut self.held.lock(), &moving);
            for outgoing in handed.into_iter().chain(waiting) {
                target.link.shared.enqueue(outgoing);
            }
            let Routes { shards, table, moving: moving_to } = &mut *routes;
            for &slot in &slots {
                table[usize::from(slot)] = target_index as u8;
                moving_to[usize::from(slot)] = NOT_MOVING;
            }
            match table.iter().position(|&index| usize::from(index) == from) {
                Some(kept) => {
                    if slots.binary_search(&source.slot.load(Ordering::Relaxed)).is_ok() {
                        source.slot.store(kept as u16, Ordering::Relaxed);
                    }
                    None
                }
                None => {
                    // No slot left (a primary emptied before it leaves the cluster).
                    let retired = shards.remove(from);
                    for index in table.iter_mut().chain(moving_to.iter_mut()) {
                        if *index != NOT_MOVING && usize::from(*index) > from {
                            *index -= 1;
                        }
                    }
                    self.generation.send_modify(|generation| *generation += 1);
                    Some(retired)
                }
            }
        };
        if let Some(retired) = retired {
            tracing::info!("backplane: a cluster primary owns no slot any more; closing its connections");
            retired.link.shutdown();
            let counters = retired.link.counters();
            let mut total = self.retired_counters.lock();
            total.published += counters.published;
            total.received += counters.received;
            total.reconnects += counters.reconnects;
            total.dropped += counters.dropped;
            total.receive_dropped += counters.receive_dropped;
        }
    }
}

/// Removes the publishes `moving` selects from `queue`, in order.
fn take_matching(queue: &mut VecDeque<Outgoing>, moving: &impl Fn(&[u8]) -> bool) -> Vec<Outgoing> {
    let mut taken = Vec::new();
    let mut kept = VecDeque::with_capacity(queue.len());
    for outgoing in queue.drain(..) {
        if moving(&outgoing.channel) {
            taken.push(outgoing);
        } else {
            kept.push_back(outgoing);
        }
    }
    *queue = kept;
    taken
}

/// A primary's own `CLUSTER SLOTS`; `None` when it cannot be asked or is no primary (a failover,
/// which the shard's connections follow by themselves).
async fn own_view(primary: &Endpoint, options: &LinkOptions) -> Option<crate::cluster::SlotMap> {
    let timeout = options.config.command_timeout;
    let ask = async {
        let client = build_client(options, primary, false).ok()?;
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let mut connection = client.get_multiplexed_async_connection_with_config(&config).await.ok()?;
        if !is_primary(&mut connection).await.ok()? {
            return None;
        }
        let reply: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut connection).await.ok()?;
        crate::cluster::SlotMap::from_cluster_slots(&reply, primary)
    };
    tokio::time::timeout(timeout.saturating_mul(3), ask).await.ok().flatten()
}

/// Waits until `at` shows at least the wanted number of sharded subscribers of each channel
/// (`PUBSUB SHARDNUMSUB`), or [`LinkOptions::resubscribe_grace`] passes.
async fn wait_for_subscribers(options: &LinkOptions, at: &Endpoint, wanted: &HashMap<Bytes, i64>, cancel: &CancellationToken) {
    let deadline = tokio::time::Instant::now() + options.resubscribe_grace;
    let timeout = options.config.command_timeout;
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    let client = build_client(options, at, false).ok();
    let mut connection: Option<MultiplexedConnection> = None;
    loop {
        if connection.is_none()
            && let Some(client) = &client
        {
            connection = client.get_multiplexed_async_connection_with_config(&config).await.ok();
        }
        if let Some(open) = &mut connection {
            let mut short = 0usize;
            for (channel, &count) in wanted {
                match redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(&channel[..]).query_async::<(Vec<u8>, i64)>(open).await {
                    Ok((_, now)) if now >= count => {}
                    Ok(_) => short += 1,
                    Err(_) => {
                        short += 1;
                        connection = None;
                        break;
                    }
                }
            }
            if short == 0 {
                return;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("backplane: sending a moved slot's publishes before every node subscribed on its new shard");
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Follows slot moves of a cluster: on every report of a shard and every
/// [`LinkOptions::slot_refresh_interval`].
async fn supervise(router: Arc<ClusterRouter>, mut events: mpsc::UnboundedReceiver<ClusterEvent>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(router.options.slot_refresh_interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let note = |event: ClusterEvent, hints: &mut Vec<(u16, Endpoint)>| {
        if let ClusterEvent::Moved { slot, to } = event {
            hints.push((slot, to));
        }
    };
    loop {
        let mut hints = Vec::new();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            event = events.recv() => match event {
                None => return,
                Some(event) => note(event, &mut hints),
            },
        }
        while let Ok(event) = events.try_recv() {
            note(event, &mut hints);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = router.refresh(&hints) => {}
        }
    }
}

impl Facade {
    fn submit(&self, op: Op) {
        if let Some(mode) = self.mode.get() {
            return mode.apply(op);
        }
        let mut pending = self.pending.lock();
        let Some(waiting) = pending.as_mut() else {
            drop(pending);
            return self.mode.get().expect("set before pending is cleared").apply(op);
        };
        if matches!(op, Op::Publish(_)) {
            if waiting.publishes >= self.capacity
                && let Some(index) = waiting.ops.iter().position(|op| matches!(op, Op::Publish(_)))
                && let Some(Op::Publish(dropped)) = waiting.ops.remove(index)
            {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = dropped.reply {
                    let _ = reply.send(Err(BackplaneFailure::QueueFull));
                }
                waiting.publishes -= 1;
            }
            waiting.publishes += 1;
        }
        waiting.ops.push_back(op);
    }

    /// The kind of Redis is known: everything waiting goes to `mode`, in order, and from now on
    /// everything goes there directly.
    fn settle(self: &Arc<Self>, mode: Mode) {
        let mut pending = self.pending.lock();
        if let Some(waiting) = pending.take() {
            for op in waiting.ops {
                mode.apply(op);
            }
        }
        if self.mode.set(mode).is_err() {
            return;
        }
        drop(pending);
        if self.cancel.is_cancelled() {
            if let Some(mode) = self.mode.get() {
                mode.each_link(ServerLink::shutdown);
            }
            return;
        }
        tokio::spawn(forward_status(self.clone()));
    }

    /// Redis could not be reached yet: subscribers stop waiting (the subscriptions are made
    /// once it is), and the status says why.
    fn not_reachable(&self, error: String) {
        if let Some(waiting) = self.pending.lock().as_mut() {
            for op in &mut waiting.ops {
                if let Op::Subscribe(_, done) = op
                    && let Some(done) = done.take()
                {
                    let _ = done.send(());
                }
            }
        }
        self.status.send_replace(BackplaneStatus {
            health: Health::Unhealthy,
            publisher_connected: false,
            subscriber_connected: false,
            last_error: Some(error),
        });
    }
}

/// Keeps the node's status equal to its links' combined status.
async fn forward_status(facade: Arc<Facade>) {
    let Some(mode) = facade.mode.get() else { return };
    let mut generation = match mode {
        Mode::Cluster(router) => Some(router.generation.subscribe()),
        Mode::Single(_) => None,
    };
    loop {
        // Watched before the status is read, so that no change falls in between.
        let mut receivers: Vec<watch::Receiver<BackplaneStatus>> = Vec::new();
        mode.each_link(|link| receivers.push(link.watch_status()));
        let status = mode.status();
        facade.status.send_if_modified(|current| {
            if *current != status {
                *current = status;
                true
            } else {
                false
            }
        });
        let shards_changed = async {
            match &mut generation {
                Some(generation) => {
                    if generation.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        let link_changed = async {
            if receivers.is_empty() {
                std::future::pending::<()>().await;
            }
            let changes: Vec<_> = receivers.iter_mut().map(|receiver| Box::pin(receiver.changed())).collect();
            // A closed link (one retired) is dropped from the set on the next round.
            let _ = futures_util::future::select_all(changes).await;
        };
        tokio::select! {
            _ = facade.cancel.cancelled() => return,
            _ = link_changed => {}
            _ = shards_changed => {}
        }
    }
}

/// Finds out whether the configured servers are a cluster, then starts the links.
async fn detect(facade: Arc<Facade>, clients: Vec<Client>, options: LinkOptions, received_tx: mpsc::Sender<Received>) {
    let mut backoff = Backoff::new(options.reconnect_min_delay, options.reconnect_max_delay);
    loop {
        let probe = tokio::select! {
            _ = facade.cancel.cancelled() => return,
            probe = is_cluster(&clients, &options) => probe,
        };
        let error = match probe {
            Ok(false) => {
                let link = ServerLink::start(options, Topology::Direct(clients), received_tx, None);
                facade.settle(Mode::Single(link));
                return;
            }
            Ok(true) => {
                let nodes = Arc::new(Mutex::new(options.config.endpoints.clone()));
                match ask_for_slots(&nodes, &options).await {
                    Ok(map) => match shard_table(&map) {
                        Some((shards, table)) => {
                            tracing::info!(
                                shards = shards.len(),
                                "backplane: Redis is a cluster; routing each channel to its slot's primary"
                            );
                            let (events, events_rx) = mpsc::unbounded_channel();
                            let router = Arc::new(ClusterRouter {
                                routes: RwLock::new(Routes {
                                    shards: Vec::new(),
                                    table,
                                    moving: vec![NOT_MOVING; usize::from(crate::cluster::SLOTS)],
                                }),
                                held: Mutex::new(VecDeque::new()),
                                generation: watch::channel(0).0,
                                nodes,
                                options: options.clone(),
                                received_tx,
                                events,
                                retired_counters: Mutex::new(BackplaneCounters::default()),
                            });
                            let links: Vec<Arc<Shard>> =
                                shards.into_iter().map(|(slot, primary)| router.start_shard(primary, slot)).collect();
                            router.routes.write().shards = links;
                            tokio::spawn(supervise(router.clone(), events_rx, facade.cancel.clone()));
                            facade.settle(Mode::Cluster(router));
                            return;
                        }
                        None => ReachError::UncoveredSlots,
                    },
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        let error = chain(&error);
        tracing::warn!(%error, "backplane: cannot reach Redis yet; retrying");
        facade.not_reachable(error);
        tokio::select! {
            _ = facade.cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// The shards (each named by its first slot, with its primary) and the slot → shard table.
type ShardTable = (Vec<(u16, Endpoint)>, Vec<u8>);

/// The shards (each named by its first slot, with its primary) and the slot → shard table, when
/// every slot is served.
fn shard_table(map: &crate::cluster::SlotMap) -> Option<ShardTable> {
    let shards = map.shards();
    if shards.len() >= usize::from(NOT_MOVING) {
        return None;
    }
    let mut table = vec![u8::MAX; usize::from(crate::cluster::SLOTS)];
    for range in &map.ranges {
        let index = shards.iter().position(|(_, primary)| *primary == range.primary)? as u8;
        table[usize::from(range.start)..=usize::from(range.end.min(crate::cluster::SLOTS - 1))].fill(index);
    }
    if table.contains(&u8::MAX) {
        return None;
    }
    Some((shards, table))
}

/// Whether the first server that answers runs in cluster mode (`cluster_enabled:1`). A server
/// that refuses `INFO` (an ACL) is taken for a single server.
async fn is_cluster(clients: &[Client], options: &LinkOptions) -> Result<bool, ReachError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.config.connect_timeout))
        .set_response_timeout(Some(options.config.command_timeout));
    let mut last = ReachError::NothingConfigured("endpoint");
    for client in clients {
        let server = Server::of(client);
        let mut connection = match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(connection) => connection,
            Err(source) => {
                last = ReachError::Connect { server, source };
                continue;
            }
        };
        match redis::cmd("INFO").arg("cluster").query_async::<String>(&mut connection).await {
            Ok(info) => return Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1")),
            Err(error) if is_server_refusal(&error) => return Ok(false),
            Err(source) => last = ReachError::Command { server, command: "INFO cluster", source },
        }
    }
    Err(last)
}

impl RedisLink {
    /// Starts the connections; returns at once, whether Redis is reachable or not. Received
    /// messages go to the returned receiver.
    pub fn start(options: LinkOptions) -> Result<(Self, mpsc::Receiver<Received>), redis::RedisError> {
        install_crypto_provider();
        let topology = Topology::new(&options)?;
        let (received_tx, received_rx) = mpsc::channel(options.receive_queue_capacity.max(1));
        let (status, _) = watch::channel(BackplaneStatus::starting());
        let facade = Arc::new(Facade {
            mode: std::sync::OnceLock::new(),
            pending: Mutex::new(Some(Pending::default())),
            status,
            cancel: CancellationToken::new(),
            capacity: options.publish_queue_capacity.max(1),
            dropped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
        });
        match topology {
            Topology::Direct(clients) => {
                tokio::spawn(detect(facade.clone(), clients, options, received_tx));
            }
            topology => {
                let link = ServerLink::start(options, topology, received_tx, None);
                facade.settle(Mode::Single(link));
            }
        }
        Ok((Self { facade }, received_rx))
    }

    /// Queues a PUBLISH; returns at once.
    pub fn publish(&self, channel: Bytes, payload: Bytes) {
        self.facade.submit(Op::Publish(Outgoing { channel, payload, reply: None }));
    }

    /// Queues a PUBLISH and resolves with the number of receivers once Redis answered.
    pub fn publish_with_reply(&self, channel: Bytes, payload: Bytes) -> oneshot::Receiver<PublishReply> {
        let (tx, rx) = oneshot::channel();
        self.facade.submit(Op::Publish(Outgoing { channel, payload, reply: Some(tx) }));
        rx
    }

    /// Records a subscription; the returned receiver fires once Redis confirmed it, or at once
    /// when Redis is away (the subscription is then made on reconnect).
    ///
    /// Commands are applied in the order they are given, so callers issue them while holding
    /// the lock that decided them and await outside it.
    pub fn subscribe(&self, channel: String) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.facade.submit(Op::Subscribe(channel, Some(tx)));
        rx
    }

    /// Drops a subscription (in order with [`RedisLink::subscribe`]).
    pub fn unsubscribe(&self, channel: String) {
        self.facade.submit(Op::Unsubscribe(channel));
    }

    /// Whether every connection is up now (cheap: a few atomic loads, for the send path).
    pub fn is_healthy(&self) -> bool {
        self.facade.mode.get().is_some_and(|mode| {
            let mut healthy = true;
            mode.each_link(|link| healthy &= link.is_healthy());
            healthy
        })
    }

    /// The current status.
    pub fn status(&self) -> BackplaneStatus {
        match self.facade.mode.get() {
            Some(mode) => mode.status(),
            None => self.facade.status.borrow().clone(),
        }
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<BackplaneStatus> {
        self.facade.status.subscribe()
    }

    /// The counters, summed over the shards of a cluster.
    pub fn counters(&self) -> BackplaneCounters {
        let mut total = BackplaneCounters {
            dropped: self.facade.dropped.load(Ordering::Relaxed),
            invalid: self.facade.invalid.load(Ordering::Relaxed),
            ..BackplaneCounters::default()
        };
        match self.facade.mode.get() {
            Some(mode) => {
                let mut add = |counters: BackplaneCounters| {
                    total.published += counters.published;
                    total.received += counters.received;
                    total.reconnects += counters.reconnects;
                    total.queued += counters.queued;
                    total.dropped += counters.dropped;
                    total.receive_dropped += counters.receive_dropped;
                };
                if let Mode::Cluster(router) = mode {
                    add(*router.retired_counters.lock());
                    add(BackplaneCounters { queued: router.held.lock().len() as u64, ..BackplaneCounters::default() });
                }
                mode.each_link(|link| add(link.counters()));
            }
            None => total.queued = self.facade.pending.lock().as_ref().map_or(0, |waiting| waiting.publishes as u64),
        }
        total
    }

    /// Counts a received message that could not be read.
    pub fn count_invalid(&self) {
        self.facade.invalid.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops every connection.
    pub fn shutdown(&self) {
        self.facade.cancel.cancel();
        if let Some(mode) = self.facade.mode.get() {
            mode.each_link(ServerLink::shutdown);
        }
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where the node's connections go.
#[derive(Clone)]
enum Topology {
    /// Fixed servers, tried in order (one server, or any node of a cluster in classic mode).
    Direct(Vec<Client>),
    /// Sentinels, asked on every connect for the current primary of `service`.
    Sentinel {
        /// One client per sentinel, tried in order.
        sentinels: Vec<Client>,
        /// The monitored service (`serviceName=`).
        service: String,
    },
    /// One shard of a Redis Cluster, named by a slot it owns: every connect asks the known
    /// nodes (`CLUSTER SLOTS`) which primary owns that slot now, so a failover is followed.
    ClusterShard {
        /// Nodes to ask, the configured ones first; grows with what the cluster reports.
        nodes: Arc<Mutex<Vec<crate::config::Endpoint>>>,
        /// A slot of the shard (another one once that slot moves away).
        slot: Arc<AtomicU16>,
    },
}

impl Topology {
    fn new(options: &LinkOptions) -> Result<Self, redis::RedisError> {
        let endpoints = &options.config.endpoints;
        match &options.config.service_name {
            None => Ok(Self::Direct(endpoints.iter().map(|endpoint| build_client(options, endpoint, false)).collect::<Result<_, _>>()?)),
            Some(service) => Ok(Self::Sentinel {
                sentinels: endpoints.iter().map(|endpoint| build_client(options, endpoint, true)).collect::<Result<_, _>>()?,
                service: service.clone(),
            }),
        }
    }

    /// Whether the server may stop being the primary under us (checked with `ROLE`).
    fn checks_role(&self) -> bool {
        matches!(self, Self::Sentinel { .. } | Self::ClusterShard { .. })
    }

    fn is_cluster(&self) -> bool {
        matches!(self, Self::ClusterShard { .. })
    }

    /// The servers to connect to now, in order: the fixed list, or the primary the first
    /// answering sentinel names.
    async fn servers(&self, options: &LinkOptions) -> Result<Vec<Client>, ReachError> {
        let (sentinels, service) = match self {
            Self::Direct(clients) => return Ok(clients.clone()),
            Self::Sentinel { sentinels, service } => (sentinels, service),
            Self::ClusterShard { nodes, slot } => {
                let slot = slot.load(Ordering::Relaxed);
                let map = ask_for_slots(nodes, options).await?;
                let Some(range) = map.range_of(slot) else { return Err(ReachError::UnassignedSlot(slot)) };
                let primary = build_client(options, &range.primary, false)
                    .map_err(|source| ReachError::Client { server: Server::at(&range.primary), source })?;
                return Ok(vec![primary]);
            }
        };
        let mut last = ReachError::NothingConfigured("sentinel");
        for sentinel in sentinels {
            let server = Server::Sentinel(sentinel.get_connection_info().addr().to_string());
            match tokio::time::timeout(options.config.connect_timeout, ask_for_primary(sentinel, &server, service, options)).await {
                Ok(Ok(Some((host, port)))) => {
                    let endpoint = Endpoint { host, port };
                    let primary = build_client(options, &endpoint, false)
                        .map_err(|source| ReachError::Client { server: Server::at(&endpoint), source })?;
                    return Ok(vec![primary]);
                }
                Ok(Ok(None)) => last = ReachError::UnknownService { server, service: service.clone() },
                Ok(Err(error)) => last = error,
                Err(_) => last = ReachError::Timeout { server, after: options.config.connect_timeout },
            }
        }
        Err(last)
    }
}

/// The cluster's slot map, from the first known node that answers `CLUSTER SLOTS`; the nodes it
/// names are remembered for the next time.
pub(crate) async fn ask_for_slots(
    nodes: &Mutex<Vec<crate::config::Endpoint>>,
    options: &LinkOptions,
) -> Result<crate::cluster::SlotMap, ReachError> {
    let known = nodes.lock().clone();
    let mut last = ReachError::NothingConfigured("cluster node");
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.config.connect_timeout))
        .set_response_timeout(Some(options.config.command_timeout));
    for endpoint in &known {
        let server = Server::ClusterNode(address(endpoint));
        let client = build_client(options, endpoint, false).map_err(|source| ReachError::Client { server: server.clone(), source })?;
        let mut connection = match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(connection) => connection,
            Err(source) => {
                last = ReachError::Connect { server, source };
                continue;
            }
        };
        match redis::cmd("CLUSTER").arg("SLOTS").query_async::<redis::Value>(&mut connection).await {
            Ok(reply) => match crate::cluster::SlotMap::from_cluster_slots(&reply, endpoint) {
                Some(map) if !map.ranges.is_empty() => {
                    let mut nodes = nodes.lock();
                    for node in map.nodes() {
                        if !nodes.contains(&node) {
                            nodes.push(node);
                        }
                    }
                    return Ok(map);
                }
                _ => last = ReachError::NoSlotMap { server },
            },
            Err(source) => last = ReachError::Command { server, command: "CLUSTER SLOTS", source },
        }
    }
    Err(last)
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME service`: the primary's address, or `None` when the
/// sentinel does not monitor that service.
async fn ask_for_primary(
    sentinel: &Client,
    server: &Server,
    service: &str,
    options: &LinkOptions,
) -> Result<Option<(String, u16)>, ReachError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.config.connect_timeout))
        .set_response_timeout(Some(options.config.command_timeout));
    let mut connection = sentinel
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|source| ReachError::Connect { server: server.clone(), source })?;
    redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(service)
        .query_async(&mut connection)
        .await
        .map_err(|source| ReachError::Command { server: server.clone(), command: "SENTINEL GET-MASTER-ADDR-BY-NAME", source })
}

/// Whether the server behind `connection` is a primary (`ROLE` answers `master`). After a
/// failover the old primary may come back as a replica: a node publishing there would reach
/// only that replica's subscribers.
async fn is_primary(connection: &mut MultiplexedConnection) -> Result<bool, redis::RedisError> {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(connection).await?;
    Ok(matches!(role.first(), Some(redis::Value::BulkString(name)) if name == b"master"))
}

pub(crate) fn build_client(options: &LinkOptions, endpoint: &crate::config::Endpoint, sentinel: bool) -> Result<Client, redis::RedisError> {
    let config = &options.config;
    let mut settings = RedisConnectionInfo::default();
    let (user, password) = if sentinel { (&config.sentinel_user, &config.sentinel_password) } else { (&config.user, &config.password) };
    if let Some(password) = password {
        settings = settings.set_password(password);
        if let Some(user) = user {
            settings = settings.set_username(user);
        }
    }
    if let (Some(db), false) = (config.default_database, sentinel) {
        settings = settings.set_db(db);
    }
    let addr = if config.ssl {
        ConnectionAddr::TcpTls { host: endpoint.host.clone(), port: endpoint.port, insecure: false, tls_params: None }
    } else {
        ConnectionAddr::Tcp(endpoint.host.clone(), endpoint.port)
    };
    // TCP_NODELAY, as StackExchange.Redis does: a publish or group command must not wait for
    // Redis to acknowledge the previous one (Nagle's algorithm).
    let info = addr
        .into_connection_info()?
        .set_redis_settings(settings)
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    match (&options.tls_root_certificates, config.ssl) {
        (Some(roots), true) => Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(roots.clone()) }),
        _ => Client::open(info),
    }
}

/// Follows failovers announced by the sentinels: each `+switch-master` for `service` bumps
/// `switches`, and both connection tasks then reconnect to the new primary. Missed
/// announcements (no sentinel reachable) are caught by the publisher's periodic `ROLE` check.
async fn watch_failovers(shared: Arc<Shared>, sentinels: Vec<Client>, service: String, options: LinkOptions, switches: watch::Sender<u64>) {
    let mut backoff = Backoff::new(options.reconnect_min_delay, options.reconnect_max_delay);
    let prefix = format!("{service} ");
    loop {
        for sentinel in &sentinels {
            let pubsub = tokio::select! {
                _ = shared.cancel.cancelled() => return,
                result = tokio::time::timeout(options.config.connect_timeout, sentinel.get_async_pubsub()) => result,
            };
            let Ok(Ok(mut pubsub)) = pubsub else { continue };
            if pubsub.subscribe("+switch-master").await.is_err() {
                continue;
            }
            backoff.reset();
            let mut messages = pubsub.on_message();
            loop {
                let message = tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    message = messages.next() => message,
                };
                let Some(message) = message else { break };
                let payload = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                if payload.starts_with(&prefix) {
                    tracing::warn!(announcement = %payload, "backplane: the sentinels switched the Redis primary; reconnecting");
                    switches.send_modify(|generation| *generation += 1);
                }
            }
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Capped exponential backoff with jitter (50–100 % of the nominal delay).
struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self { min, max: max.max(min), attempt: 0 }
    }

    fn next_delay(&mut self) -> Duration {
        let nominal = self.min.saturating_mul(1u32 << self.attempt.min(16)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        nominal.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A server that answered with an error (e.g. NOPERM) rather than a broken connection.
fn is_server_refusal(error: &redis::RedisError) -> bool {
    matches!(error.kind(), redis::ErrorKind::Server(_) | redis::ErrorKind::Extension) && !error.is_unrecoverable_error()
}

/// The address a client connects to.
fn endpoint_of(client: &Client) -> Option<Endpoint> {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => Some(Endpoint { host: host.clone(), port: *port }),
        _ => None,
    }
}

async fn connect_publisher(topology: &Topology, options: &LinkOptions) -> Result<(MultiplexedConnection, Option<Endpoint>), ReachError> {
    let mut last = ReachError::NothingConfigured("endpoint");
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.config.connect_timeout))
        .set_response_timeout(Some(options.config.command_timeout));
    for client in topology.servers(options).await? {
        let server = Server::of(&client);
        match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(mut connection) => {
                if topology.checks_role() {
                    match is_primary(&mut connection).await {
                        Ok(true) => {}
                        Ok(false) => {
                            last = ReachError::NotPrimary { server };
                            continue;
                        }
                        Err(source) => {
                            last = ReachError::Command { server, command: "ROLE", source };
                            continue;
                        }
                    }
                }
                if let Some(name) = &options.config.client_name {
                    let _: Result<(), _> = redis::cmd("CLIENT").arg("SETNAME").arg(name).query_async(&mut connection).await;
                }
                return Ok((connection, endpoint_of(&client)));
            }
            Err(source) => last = ReachError::Connect { server, source },
        }
    }
    Err(last)
}

async fn run_publisher(shared: Arc<Shared>, topology: Topology, options: LinkOptions, mut switches: watch::Receiver<u64>) {
    let mut backoff = Backoff::new(options.reconnect_min_delay, options.reconnect_max_delay);
    let mut ever_connected = false;
    'connect: loop {
        let connection = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            result = connect_publisher(&topology, &options) => result,
        };
        let mut connection = match connection {
            Ok((connection, endpoint)) => {
                if topology.is_cluster() {
                    *shared.endpoint.lock() = endpoint;
                }
                connection
            }
            Err(error) => {
                let error = status_text("publisher", &error);
                tracing::warn!(%error, "backplane: cannot connect the publisher to Redis; retrying");
                shared.set_state(Some(false), None, Some(error));
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => continue 'connect,
                }
            }
        };
        backoff.reset();
        switches.mark_unchanged();
        if ever_connected {
            shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("backplane: publisher reconnected to Redis");
        }
        let reconnected = ever_connected;
        ever_connected = true;
        shared.set_state(Some(true), None, None);
        if let Some(presence) = &options.presence_channel {
            // After an outage every publish waits for the fleet, not only the backlog: an
            // application that held its messages back until the backplane was healthy again
            // (an outbox) would otherwise publish before the other nodes have re-subscribed.
            if reconnected {
                wait_for_fleet(&shared, &mut connection, presence, topology.is_cluster(), options.resubscribe_grace).await;
            } else if let Some(count) = presence_count(&mut connection, presence, topology.is_cluster()).await {
                shared.presence_peak.fetch_max(count, Ordering::Relaxed);
            }
        }
        let presence = options.presence_channel.as_deref().map(str::as_bytes);
        // An idle publisher checks Redis every second (sampling the fleet's size on the presence
        // channel): a Redis that stopped answering (SIGSTOP, a network cut without RST) makes
        // the node unhealthy within the command timeout, not only a closed socket does. The
        // fleet's size is sampled while idle because a node that only sends to groups or users
        // never publishes on the presence channel, and must still know how many subscribers to
        // wait for after an outage.
        let mut health_check = tokio::time::interval(PRESENCE_REFRESH_INTERVAL);
        health_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (batch, sending) = loop {
                // Taken before the batch: a slot move waits for the batch to be answered.
                let sending = shared.sending.lock().await;
                let batch = shared.take_batch();
                if !batch.is_empty() {
                    break (batch, sending);
                }
                drop(sending);
                if !shared.queue.lock().is_empty() {
                    continue;
                }
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    _ = shared.queue_notify.notified() => {}
                    Ok(()) = switches.changed() => {
                        shared.set_state(Some(false), None, Some(status_text("publisher", &LinkError::PrimarySwitched)));
                        continue 'connect;
                    }
                    _ = health_check.tick() => {
                        let probe = health_probe(&mut connection, options.presence_channel.as_deref(), topology.checks_role(), topology.is_cluster());
                        let failure = match tokio::time::timeout(options.config.command_timeout, probe).await {
                            Ok(Ok(Some(count))) => {
                                shared.presence_peak.fetch_max(count, Ordering::Relaxed);
                                None
                            }
                            Ok(Ok(None)) => None,
                            Ok(Err(ProbeFailure::NotPrimary)) => Some(LinkError::NoLongerPrimary),
                            Ok(Err(ProbeFailure::Redis(error))) if is_server_refusal(&error) => None,
                            Ok(Err(ProbeFailure::Redis(source))) if !source.is_timeout() => {
                                Some(LinkError::Command { what: "health check", source })
                            }
                            Ok(Err(_)) | Err(_) => {
                                Some(LinkError::Timeout { what: "a health check", after: options.config.command_timeout })
                            }
                        };
                        if let Some(error) = failure {
                            let error = status_text("publisher", &error);
                            tracing::warn!(%error, "backplane: publisher connection unusable; reconnecting");
                            shared.set_state(Some(false), None, Some(error));
                            tokio::select! {
                                _ = shared.cancel.cancelled() => return,
                                _ = tokio::time::sleep(backoff.next_delay()) => continue 'connect,
                            }
                        }
                    }
                }
            };
            let mut pipe = redis::pipe();
            // Each command's own answer: on a cluster some may be redirected (`MOVED`) while the
            // others went out.
            pipe.ignore_errors();
            for outgoing in &batch {
                pipe.cmd(if options.sharded { "SPUBLISH" } else { "PUBLISH" }).arg(&outgoing.channel[..]).arg(&outgoing.payload[..]);
            }
            let record_counts = options.sharded && shared.events.is_some();
            match pipe.query_async::<Vec<redis::RedisResult<i64>>>(&mut connection).await {
                Ok(results) => {
                    let mut redirected = Vec::new();
                    let mut refused = 0u64;
                    let mut published = 0u64;
                    for (outgoing, result) in batch.into_iter().zip(results) {
                        match result {
                            Ok(count) => {
                                published += 1;
                                if Some(&outgoing.channel[..]) == presence {
                                    shared.presence_peak.fetch_max(count.max(0) as u64, Ordering::Relaxed);
                                }
                                if record_counts {
                                    shared.record_count(&outgoing.channel, count);
                                }
                                if let Some(reply) = outgoing.reply {
                                    let _ = reply.send(Ok(count));
                                }
                            }
                            Err(error) if error.redirect_node().is_some() => redirected.push((outgoing, error)),
                            Err(error) => {
                                if refused == 0 {
                                    tracing::error!(%error, "backplane: Redis refused PUBLISH; message dropped");
                                }
                                refused += 1;
                                if let Some(reply) = outgoing.reply {
                                    let _ = reply.send(Err(BackplaneFailure::Refused(error)));
                                }
                            }
                        }
                    }
                    shared.counters.published.fetch_add(published, Ordering::Relaxed);
                    shared.counters.dropped.fetch_add(refused, Ordering::Relaxed);
                    if !redirected.is_empty()
                        && let Err(error) = follow_redirects(&shared, &options, &mut connection, redirected).await
                    {
                        drop(sending);
                        let error = status_text("publisher", &error);
                        tracing::warn!(%error, "backplane: publisher connection unusable; reconnecting");
                        shared.set_state(Some(false), None, Some(error));
                        tokio::select! {
                            _ = shared.cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff.next_delay()) => continue 'connect,
                        }
                    }
                }
                Err(error) => {
                    // The batch may or may not have reached Redis; it is sent again after the
                    // reconnect (at-least-once for the batch in flight at the moment of loss).
                    drop(sending);
                    shared.requeue_front(batch);
                    let error = if error.is_timeout() {
                        LinkError::Timeout { what: "PUBLISH", after: options.config.command_timeout }
                    } else {
                        LinkError::Command { what: "PUBLISH", source: error }
                    };
                    let error = status_text("publisher", &error);
                    tracing::warn!(%error, "backplane: publisher lost its Redis connection; reconnecting");
                    shared.set_state(Some(false), None, Some(error));
                    tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => continue 'connect,
                    }
                }
            }
        }
    }
}

/// Publishes a server redirected. `ASK` (a slot being imported): sent once to the named node
/// after `ASKING`. `MOVED` from a primary (the slot left this shard): kept, oldest first, for
/// the cluster router to hand to the slot's new shard, which it is told of. `MOVED` from a
/// server that is no primary any more (a failover), or outside a cluster: back to the front of
/// the queue, and `Err`: the connection must be replaced.
async fn follow_redirects(
    shared: &Shared,
    options: &LinkOptions,
    connection: &mut MultiplexedConnection,
    redirected: Vec<(Outgoing, redis::RedisError)>,
) -> Result<(), LinkError> {
    let mut moved = Vec::new();
    for (outgoing, error) in redirected {
        let asked = matches!(error.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::Ask));
        let target = error.redirect_node().and_then(|(address, slot)| Some((slot, crate::cluster::parse_address(address)?)));
        match target {
            Some((_, target)) if asked && shared.events.is_some() => {
                if let Err((outgoing, slot)) = publish_asking(options, &target, outgoing).await {
                    moved.push((outgoing, Some((slot, target))));
                }
            }
            Some((slot, target)) => moved.push((outgoing, Some((slot, target)))),
            // An address not understood: the periodic refresh finds where the slot went.
            None => moved.push((outgoing, None)),
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    let primary = shared.events.is_some() && is_primary(connection).await.unwrap_or(false);
    let Some(events) = shared.events.as_ref().filter(|_| primary) else {
        shared.requeue_front(moved.into_iter().map(|(outgoing, _)| outgoing).collect());
        return Err(LinkError::RedirectedByReplica);
    };
    tracing::debug!(count = moved.len(), "backplane: publishes answered MOVED; they follow their slot to its new shard");
    let mut reported: Vec<u16> = Vec::new();
    let mut redirected = shared.redirected.lock();
    for (outgoing, target) in moved {
        redirected.push_back(outgoing);
        if let Some((slot, to)) = target
            && !reported.contains(&slot)
        {
            reported.push(slot);
            let _ = events.send(ClusterEvent::Moved { slot, to });
        }
    }
    Ok(())
}

/// `ASKING` then the publish, on the node a slot is being imported to. `Err` gives the publish
/// back (with its slot) when that fails.
async fn publish_asking(options: &LinkOptions, target: &Endpoint, outgoing: Outgoing) -> Result<(), (Outgoing, u16)> {
    let slot = crate::cluster::slot(&outgoing.channel);
    let timeout = options.config.command_timeout;
    let server = Server::at(target);
    let answer: Result<i64, ReachError> = async {
        let client = build_client(options, target, false).map_err(|source| ReachError::Client { server: server.clone(), source })?;
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|source| ReachError::Connect { server: server.clone(), source })?;
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING").ignore();
        pipe.cmd(if options.sharded { "SPUBLISH" } else { "PUBLISH" }).arg(&outgoing.channel[..]).arg(&outgoing.payload[..]);
        let (count,): (i64,) = pipe.query_async(&mut connection).await.map_err(|source| ReachError::Command {
            server: server.clone(),
            command: "ASKING and PUBLISH",
            source,
        })?;
        Ok(count)
    }
    .await;
    match answer {
        Ok(count) => {
            if let Some(reply) = outgoing.reply {
                let _ = reply.send(Ok(count));
            }
            Ok(())
        }
        Err(error) => {
            tracing::debug!(error = %chain(&error), "backplane: ASK redirection not followed; the slot map is asked again");
            Err((outgoing, slot))
        }
    }
}

/// One health check of the publishing connection: `PUBSUB NUMSUB` of the presence channel (its
/// subscriber count), or a PING when there is none. With Sentinel, also that the server is still
/// the primary.
async fn health_probe(
    connection: &mut MultiplexedConnection,
    presence: Option<&str>,
    check_role: bool,
    cluster: bool,
) -> Result<Option<u64>, ProbeFailure> {
    if check_role && !is_primary(connection).await? {
        return Err(ProbeFailure::NotPrimary);
    }
    match presence {
        Some(_) if cluster => Ok(Some(subscribed_clients(connection).await?)),
        Some(channel) => {
            let (_, count): (String, u64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(connection).await?;
            Ok(Some(count))
        }
        None => {
            let _: redis::Value = redis::cmd("PING").query_async(connection).await?;
            Ok(None)
        }
    }
}

/// Why a health check failed.
enum ProbeFailure {
    /// Redis answered with an error, or not at all.
    Redis(redis::RedisError),
    /// The server became a replica (a failover the sentinels' announcement did not reach us for).
    NotPrimary,
}

impl From<redis::RedisError> for ProbeFailure {
    fn from(error: redis::RedisError) -> Self {
        Self::Redis(error)
    }
}

/// How many nodes are subscribed: on one server, the subscribers of the presence channel
/// (every node subscribes to it); on a cluster shard, which sees only the channels whose slots
/// it owns, the clients subscribed to at least one channel there.
async fn presence_count(connection: &mut MultiplexedConnection, channel: &str, cluster: bool) -> Option<u64> {
    count_presence(connection, channel, cluster).await.ok()
}

/// [`presence_count`], with Redis's error (an ACL refusing `CLIENT LIST` or `PUBSUB`).
async fn count_presence(connection: &mut MultiplexedConnection, channel: &str, cluster: bool) -> Result<u64, redis::RedisError> {
    if cluster {
        return subscribed_clients(connection).await;
    }
    let (_, count): (String, u64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(connection).await?;
    Ok(count)
}

/// `CLIENT LIST TYPE pubsub`: the connections subscribed to at least one channel or shard
/// channel of this server.
async fn subscribed_clients(connection: &mut MultiplexedConnection) -> Result<u64, redis::RedisError> {
    let list: String = redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub").query_async(connection).await?;
    Ok(count_subscribed_clients(&list))
}

fn count_subscribed_clients(list: &str) -> u64 {
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| matches!(field.split_once('='), Some(("sub" | "ssub", count)) if count.parse::<u64>().is_ok_and(|n| n > 0)))
        })
        .count() as u64
}

/// How often an idle publisher checks Redis (and samples the number of nodes subscribed to the
/// presence channel).
const PRESENCE_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// How long the backlog is held after an outage when Redis refuses to count the subscribers.
pub(crate) const FIXED_HOLD: Duration = Duration::from_secs(1);

/// Whether the refusal to count subscribers was logged (once per process).
static COUNT_REFUSAL_WARNED: AtomicBool = AtomicBool::new(false);

/// Holds the backlog until as many nodes are subscribed again as before the outage, or until
/// `grace` passes (a node that left for good must not hold the backlog forever).
///
/// When Redis refuses to count the subscribers (an ACL without `CLIENT LIST`, or without
/// `PUBSUB` on one server), the node cannot know when the others are back: it warns once per
/// process and holds the backlog for [`FIXED_HOLD`] (or `grace` if shorter) instead.
async fn wait_for_fleet(shared: &Shared, connection: &mut MultiplexedConnection, presence: &str, cluster: bool, grace: Duration) {
    let wanted = shared.presence_peak.load(Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    let deadline = start + grace;
    loop {
        let count = match count_presence(connection, presence, cluster).await {
            Ok(count) => count,
            Err(error) if is_server_refusal(&error) => {
                if !COUNT_REFUSAL_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        hold_ms = FIXED_HOLD.min(grace).as_millis() as u64,
                        "backplane: Redis refuses to count the subscribed nodes (grant CLIENT LIST and PUBSUB); after an outage the backlog is held for a fixed time instead"
                    );
                }
                tokio::select! {
                    _ = shared.cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(start + FIXED_HOLD.min(grace)) => {}
                }
                return;
            }
            Err(_) => 0,
        };
        if count >= wanted || tokio::time::Instant::now() >= deadline {
            if count < wanted {
                tracing::warn!(count, wanted, "backplane: sending the backlog before every node is back");
            }
            return;
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// The subscribing side of a subscriber connection: classic (RESP2 `SUBSCRIBE`) or sharded
/// (RESP3 `SSUBSCRIBE`, one command per channel so that each is answered by one confirmation).
enum SubSink {
    Classic(PubSubSink),
    Sharded(MultiplexedConnection),
}

/// The receiving side of a subscriber connection.
enum SubStream {
    Classic(redis::aio::PubSubStream),
    Sharded(mpsc::UnboundedReceiver<redis::PushInfo>),
}

impl SubSink {
    async fn subscribe(&mut self, channels: &[&str]) -> Result<(), redis::RedisError> {
        match self {
            Self::Classic(sink) => sink.subscribe(channels).await,
            Self::Sharded(connection) => Self::sharded(connection, "SSUBSCRIBE", channels).await,
        }
    }

    async fn unsubscribe(&mut self, channels: &[&str]) -> Result<(), redis::RedisError> {
        match self {
            Self::Classic(sink) => sink.unsubscribe(channels).await,
            Self::Sharded(connection) => Self::sharded(connection, "SUNSUBSCRIBE", channels).await,
        }
    }

    async fn sharded(connection: &mut MultiplexedConnection, command: &str, channels: &[&str]) -> Result<(), redis::RedisError> {
        let mut pipe = redis::pipe();
        for channel in channels {
            pipe.cmd(command).arg(*channel);
        }
        let _: Vec<redis::Value> = pipe.query_async(connection).await?;
        Ok(())
    }

    async fn ping(&mut self) -> Result<redis::Value, redis::RedisError> {
        match self {
            Self::Classic(sink) => sink.ping().await,
            Self::Sharded(connection) => redis::cmd("PING").query_async(connection).await,
        }
    }
}

async fn connect_subscriber(topology: &Topology, options: &LinkOptions) -> Result<(SubSink, SubStream), ReachError> {
    let mut last = ReachError::NothingConfigured("endpoint");
    for client in topology.servers(options).await? {
        let server = Server::of(&client);
        if options.sharded {
            let info = client.get_connection_info().clone();
            let settings = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
            let resp3 =
                Client::open(info.set_redis_settings(settings)).map_err(|source| ReachError::Client { server: server.clone(), source })?;
            let (push_tx, push_rx) = mpsc::unbounded_channel();
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(options.config.connect_timeout))
                .set_response_timeout(None)
                .set_push_sender(push_tx);
            match resp3.get_multiplexed_async_connection_with_config(&config).await {
                Ok(connection) => return Ok((SubSink::Sharded(connection), SubStream::Sharded(push_rx))),
                Err(source) => last = ReachError::Connect { server, source },
            }
            continue;
        }
        match tokio::time::timeout(options.config.connect_timeout, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                let (sink, stream) = pubsub.split();
                return Ok((SubSink::Classic(sink), SubStream::Classic(stream)));
            }
            Ok(Err(source)) => last = ReachError::Connect { server, source },
            Err(_) => last = ReachError::Timeout { server, after: options.config.connect_timeout },
        }
    }
    Err(last)
}

/// Applies a subscribe or unsubscribe to the wanted set; returns whether Redis must be told.
fn apply(desired: &mut HashSet<String>, command: &SubCommand) -> bool {
    match command {
        SubCommand::Subscribe(channel, _) => desired.insert(channel.clone()),
        SubCommand::Unsubscribe(channel) => desired.remove(channel),
        SubCommand::List(..) | SubCommand::Release(..) => false,
    }
}

/// The wanted channels whose slot is in `slots` (sorted).
fn channels_in(desired: &HashSet<String>, slots: &[u16]) -> Vec<String> {
    desired.iter().filter(|channel| slots.binary_search(&crate::cluster::slot(channel.as_bytes())).is_ok()).cloned().collect()
}

/// Applies a command to the wanted set alone (no connection, or the connection failed) and
/// answers whoever waits for it; Redis gets the wanted set on the next connect.
fn apply_offline(desired: &mut HashSet<String>, command: SubCommand) {
    apply(desired, &command);
    match command {
        SubCommand::Subscribe(_, Some(done)) => {
            let _ = done.send(());
        }
        SubCommand::List(slots, Some(reply)) => {
            let _ = reply.send(channels_in(desired, &slots));
        }
        SubCommand::Release(channels, _) => {
            for channel in &channels {
                desired.remove(channel);
            }
        }
        _ => {}
    }
}

async fn run_subscriber(
    shared: Arc<Shared>,
    topology: Topology,
    options: LinkOptions,
    mut commands: mpsc::UnboundedReceiver<SubCommand>,
    received: mpsc::Sender<Received>,
    mut switches: watch::Receiver<u64>,
) {
    let mut desired: HashSet<String> = HashSet::new();
    let mut backoff = Backoff::new(options.reconnect_min_delay, options.reconnect_max_delay);
    let mut ever_connected = false;
    loop {
        let pubsub = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            result = connect_subscriber(&topology, &options) => result,
        };
        let (mut sink, stream) = match pubsub {
            Ok(pubsub) => pubsub,
            Err(error) => {
                let error = status_text("subscriber", &error);
                tracing::warn!(%error, "backplane: cannot connect the subscriber to Redis; retrying");
                shared.set_state(None, Some(false), Some(error));
                // Keep taking subscription changes while waiting, so callers never block.
                let delay = tokio::time::sleep(backoff.next_delay());
                tokio::pin!(delay);
                loop {
                    tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        _ = &mut delay => break,
                        command = commands.recv() => match command {
                            None => return,
                            Some(command) => apply_offline(&mut desired, command),
                        }
                    }
                }
                continue;
            }
        };
        // Re-issue every subscription before reporting the connection healthy.
        let all: Vec<&str> = desired.iter().map(String::as_str).collect();
        let mut failed = None;
        for chunk in all.chunks(SUBSCRIBE_CHUNK) {
            let result = tokio::time::timeout(options.config.command_timeout, sink.subscribe(chunk)).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    failed = Some(LinkError::Command { what: "SUBSCRIBE", source });
                    break;
                }
                Err(_) => {
                    failed = Some(LinkError::Timeout { what: "SUBSCRIBE", after: options.config.command_timeout });
                    break;
                }
            }
        }
        if let Some(error) = failed {
            let error = status_text("subscriber", &error);
            tracing::warn!(%error, "backplane: re-subscribing failed; reconnecting");
            shared.set_state(None, Some(false), Some(error));
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => continue,
            }
        }
        backoff.reset();
        switches.mark_unchanged();
        if ever_connected {
            shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(channels = desired.len(), "backplane: subscriber reconnected; subscriptions re-issued");
        }
        ever_connected = true;
        shared.set_state(None, Some(true), None);

        let (closed_tx, mut closed_rx) = oneshot::channel::<()>();
        let (dropped_tx, mut dropped_rx) = mpsc::unbounded_channel::<String>();
        let reader = tokio::spawn(read_messages(shared.clone(), stream, received.clone(), closed_tx, dropped_tx));
        let mut connection = Subscribed { sink: &mut sink, closed: &mut closed_rx, dropped: &mut dropped_rx };
        let error = serve_subscriptions(&shared, &options, &mut connection, &mut commands, &mut desired, &mut switches).await;
        reader.abort();
        match error {
            None => return,
            Some(error) => {
                let error = status_text("subscriber", &error);
                tracing::warn!(%error, "backplane: subscriber lost its Redis connection; reconnecting");
                shared.set_state(None, Some(false), Some(error));
            }
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// A connected subscriber: where commands go, and what its reader reports.
struct Subscribed<'a> {
    sink: &'a mut SubSink,
    /// Fires when the connection closed.
    closed: &'a mut oneshot::Receiver<()>,
    /// Channels the server unsubscribed us from (sharded: `sunsubscribe` pushes).
    dropped: &'a mut mpsc::UnboundedReceiver<String>,
}

/// Applies subscription commands while connected. Returns `None` on shutdown, or why the
/// connection must be replaced.
async fn serve_subscriptions(
    shared: &Shared,
    options: &LinkOptions,
    connection: &mut Subscribed<'_>,
    commands: &mut mpsc::UnboundedReceiver<SubCommand>,
    desired: &mut HashSet<String>,
    switches: &mut watch::Receiver<u64>,
) -> Option<LinkError> {
    let timeout = options.config.command_timeout;
    let Subscribed { sink, closed, dropped } = connection;
    loop {
        let idle = tokio::time::sleep(options.keepalive_interval);
        let command = tokio::select! {
            _ = shared.cancel.cancelled() => return None,
            _ = &mut **closed => return Some(LinkError::Closed),
            Ok(()) = switches.changed() => return Some(LinkError::PrimarySwitched),
            _ = idle => {
                match keepalive(shared, options, sink, closed).await {
                    Ok(()) => continue,
                    Err(error) => return error,
                }
            }
            Some(channel) = dropped.recv() => {
                // Still wanted: not our own SUNSUBSCRIBE's confirmation but the server's doing
                // (Redis 7 drops a slot's sharded subscribers when the slot moves away).
                if desired.contains(&channel)
                    && let Some(events) = &shared.events
                {
                    tracing::info!(%channel, "backplane: the server dropped a sharded subscription (its slot moved)");
                    let _ = events.send(ClusterEvent::Dropped);
                }
                continue;
            }
            command = commands.recv() => match command {
                None => return None,
                Some(command) => command,
            },
        };
        // Take what else is waiting, so a burst of connects costs a few round trips.
        let mut batch = vec![command];
        while batch.len() < SUBSCRIBE_CHUNK {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let mut start = 0;
        while start < batch.len() {
            // A slot move's commands, in their place in the order.
            match &mut batch[start] {
                SubCommand::List(slots, reply) => {
                    if let Some(reply) = reply.take() {
                        let _ = reply.send(channels_in(desired, slots));
                    }
                    start += 1;
                    continue;
                }
                SubCommand::Release(channels, unsubscribe) => {
                    let released: Vec<String> = channels.drain(..).filter(|channel| desired.remove(channel)).collect();
                    if *unsubscribe && !released.is_empty() {
                        let names: Vec<&str> = released.iter().map(String::as_str).collect();
                        let failure = match tokio::time::timeout(timeout, sink.unsubscribe(&names)).await {
                            Ok(Ok(())) => None,
                            Ok(Err(source)) => Some(LinkError::Command { what: "UNSUBSCRIBE", source }),
                            Err(_) => Some(LinkError::Timeout { what: "UNSUBSCRIBE", after: timeout }),
                        };
                        if let Some(error) = failure {
                            // Applying a command twice changes nothing: the whole batch goes to
                            // the wanted set, which the reconnect makes real.
                            for command in batch.drain(..) {
                                apply_offline(desired, command);
                            }
                            return Some(error);
                        }
                    }
                    start += 1;
                    continue;
                }
                _ => {}
            }
            let subscribing = matches!(batch[start], SubCommand::Subscribe(..));
            let mut end = start;
            while end < batch.len()
                && matches!(batch[end], SubCommand::Subscribe(..) | SubCommand::Unsubscribe(..))
                && matches!(batch[end], SubCommand::Subscribe(..)) == subscribing
            {
                end += 1;
            }
            let changed: Vec<&str> = batch[start..end]
                .iter()
                .filter(|command| apply(desired, command))
                .filter_map(|command| match command {
                    SubCommand::Subscribe(channel, _) | SubCommand::Unsubscribe(channel) => Some(channel.as_str()),
                    SubCommand::List(..) | SubCommand::Release(..) => None,
                })
                .collect();
            if !changed.is_empty() {
                let result = if subscribing {
                    tokio::time::timeout(timeout, sink.subscribe(&changed)).await
                } else {
                    tokio::time::timeout(timeout, sink.unsubscribe(&changed)).await
                };
                let what = if subscribing { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
                let error = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(source)) => Some(LinkError::Command { what, source }),
                    Err(_) => Some(LinkError::Timeout { what, after: timeout }),
                };
                if let Some(error) = error {
                    // The wanted set takes the whole batch (applying a command twice changes
                    // nothing); the reconnect makes it real.
                    for command in batch.drain(..) {
                        apply_offline(desired, command);
                    }
                    return Some(error);
                }
            }
            start = end;
        }
        for command in batch {
            if let SubCommand::Subscribe(_, Some(done)) = command {
                let _ = done.send(());
            }
        }
    }
}

/// PINGs the subscriber connection. No answer within the command timeout marks the subscriber
/// unhealthy (`/health/ready` shows a hung Redis), but the connection is kept while the answer
/// may still come, up to [`LinkOptions::hung_connection_limit`]: a Redis that resumes (SIGCONT,
/// a network that heals) answers, and every subscription is still there with no message missed.
/// `Err(None)` on shutdown, `Err(Some(reason))` when the connection must be replaced.
async fn keepalive(
    shared: &Shared,
    options: &LinkOptions,
    sink: &mut SubSink,
    closed: &mut oneshot::Receiver<()>,
) -> Result<(), Option<LinkError>> {
    let timeout = options.config.command_timeout;
    // A subscribed RESP2 connection answers PING with `["pong", ""]`.
    let ping = sink.ping();
    tokio::pin!(ping);
    let mut hung = false;
    let give_up = tokio::time::sleep(timeout.max(options.hung_connection_limit));
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return Err(None),
            _ = &mut *closed => return Err(Some(LinkError::Closed)),
            answer = &mut ping => {
                return match answer {
                    Ok(_) => {
                        if hung {
                            tracing::info!("backplane: Redis answers the subscriber again");
                            shared.set_state(None, Some(true), None);
                        }
                        Ok(())
                    }
                    Err(source) => Err(Some(LinkError::Command { what: "PING", source })),
                };
            }
            _ = tokio::time::sleep(timeout), if !hung => {
                hung = true;
                let error = status_text("subscriber", &LinkError::Timeout { what: "PING", after: timeout });
                tracing::warn!(%error, "backplane: Redis is not answering; keeping the connection while it may recover");
                shared.set_state(None, Some(false), Some(error));
            }
            _ = &mut give_up => {
                return Err(Some(LinkError::Timeout { what: "PING", after: timeout.max(options.hung_connection_limit) }));
            }
        }
    }
}

/// Only reads and hands off: never decodes, never waits on the hub.
async fn read_messages(
    shared: Arc<Shared>,
    mut stream: SubStream,
    received: mpsc::Sender<Received>,
    closed: oneshot::Sender<()>,
    dropped: mpsc::UnboundedSender<String>,
) {
    loop {
        let item = match &mut stream {
            SubStream::Classic(stream) => match stream.next().await {
                Some(message) => Received {
                    channel: message.get_channel_name().to_owned(),
                    payload: Bytes::copy_from_slice(message.get_payload_bytes()),
                },
                None => break,
            },
            SubStream::Sharded(pushes) => match pushes.recv().await {
                None => break,
                Some(push) if push.kind == redis::PushKind::Disconnection => break,
                Some(push) if push.kind == redis::PushKind::SMessage || push.kind == redis::PushKind::Message => {
                    let mut data = push.data.into_iter();
                    let (Some(redis::Value::BulkString(channel)), Some(redis::Value::BulkString(payload))) = (data.next(), data.next())
                    else {
                        continue;
                    };
                    Received { channel: String::from_utf8_lossy(&channel).into_owned(), payload: Bytes::from(payload) }
                }
                Some(push) if push.kind == redis::PushKind::SUnsubscribe => {
                    // Ours, or the server's when the channel's slot moved: the subscriber tells.
                    if let Some(redis::Value::BulkString(channel)) = push.data.into_iter().next() {
                        let _ = dropped.send(String::from_utf8_lossy(&channel).into_owned());
                    }
                    continue;
                }
                // Confirmations of our own subscriptions.
                Some(_) => continue,
            },
        };
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::TrySendError::Full(_)) = received.try_send(item) {
            let dropped = shared.counters.receive_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "backplane: processing queue full; dropping received messages");
            }
        }
    }
    let _ = closed.send(());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_connects_with_nodelay() {
        let config = RedisConfig::parse("localhost:6379,127.0.0.1:7000,password=secret").unwrap();
        let Topology::Direct(clients) = Topology::new(&LinkOptions::new(config)).unwrap() else { panic!("no serviceName: direct") };
        assert_eq!(clients.len(), 2);
        for client in &clients {
            assert!(client.get_connection_info().tcp_settings().nodelay(), "Nagle would delay publishes");
        }
    }

    #[test]
    fn subscribed_clients_are_counted_from_client_list() {
        let list = "id=3 addr=127.0.0.1:5 name= db=0 sub=12 psub=0 ssub=0 multi=-1 cmd=subscribe\n\
                    id=4 addr=127.0.0.1:6 name= db=0 sub=0 psub=0 ssub=3 multi=-1 cmd=ssubscribe\n\
                    id=5 addr=127.0.0.1:7 name= db=0 sub=0 psub=0 ssub=0 multi=-1 cmd=unsubscribe\n";
        assert_eq!(count_subscribed_clients(list), 2, "a connection with no channel left is not a node");
        assert_eq!(count_subscribed_clients(""), 0);
    }

    #[test]
    fn every_slot_goes_to_the_shard_that_owns_it() {
        use crate::cluster::{SlotMap, SlotRange, slot};
        let endpoint = |port| crate::config::Endpoint { host: "127.0.0.1".into(), port };
        let range = |start, end, port| SlotRange { start, end, primary: endpoint(port), replicas: vec![] };
        let map = SlotMap { ranges: vec![range(0, 99, 7000), range(100, 10922, 7001), range(10923, 16383, 7000)] };
        let (shards, table) = shard_table(&map).unwrap();
        assert_eq!(
            shards.iter().map(|(first, _)| *first).collect::<Vec<_>>(),
            vec![0, 100],
            "one shard per primary, named by its lowest slot"
        );
        assert_eq!(table[usize::from(slot(b"foo"))], 0, "slot 12182 is served by 7000");
        assert_eq!(table[5000], 1);
        let gap = SlotMap { ranges: vec![range(0, 99, 7000), range(101, 16383, 7001)] };
        assert!(shard_table(&gap).is_none(), "a slot that no node serves: not ready");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[19] >= Duration::from_secs(1));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    /// Link state with an outgoing queue of `capacity`, not connected.
    fn shared_with_capacity(capacity: usize) -> Shared {
        let (status, _) = watch::channel(BackplaneStatus::starting());
        Shared {
            queue: Mutex::new(VecDeque::new()),
            queue_notify: Notify::new(),
            capacity,
            counters: Counters::default(),
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            last_error: Mutex::new(None),
            status,
            cancel: CancellationToken::new(),
            presence_peak: AtomicU64::new(0),
            endpoint: Mutex::new(None),
            redirected: Mutex::new(VecDeque::new()),
            sending: tokio::sync::Mutex::new(()),
            channel_counts: Mutex::new(HashMap::new()),
            events: None,
        }
    }

    /// An ACL that refuses `CLIENT LIST`: the hold after an outage warns and ends after the
    /// fixed hold instead of waiting for a count that never comes (or skipping the hold).
    #[tokio::test]
    async fn a_refused_subscriber_count_falls_back_to_the_fixed_hold() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("signalr-redis-acl-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        struct Server(std::process::Child);
        impl Drop for Server {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _server = Server(
            std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--dir"])
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server on PATH"),
        );
        let client = Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut connection = test_support::wait_for("the redis-server to answer PING", || async {
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING").query_async::<String>(&mut connection).await.ok()?;
            Some(connection)
        })
        .await;
        let _: String = redis::cmd("ACL").arg("SETUSER").arg("default").arg("-client").query_async(&mut connection).await.unwrap();
        let refused = subscribed_clients(&mut connection).await.expect_err("CLIENT LIST refused by the ACL");
        assert!(is_server_refusal(&refused), "{refused:?}");

        let shared = shared_with_capacity(10);
        shared.presence_peak.store(3, Ordering::Relaxed);
        // A grace far longer than the test's guard: only the fixed hold can end the wait.
        let wait = wait_for_fleet(&shared, &mut connection, "presence", true, Duration::from_secs(3600));
        tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the hold ends after the fixed hold");
        assert!(COUNT_REFUSAL_WARNED.load(Ordering::Relaxed), "the refusal is reported");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn both_connections_coming_up_at_once_always_end_healthy() {
        for _ in 0..30_000 {
            let shared = Arc::new(shared_with_capacity(1));
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = [(Some(true), None), (None, Some(true))]
                .into_iter()
                .map(|(publisher, subscriber)| {
                    let (shared, barrier) = (shared.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        shared.set_state(publisher, subscriber, None);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert!(shared.status.borrow().is_healthy(), "a stale status was published last: {:?}", *shared.status.borrow());
        }
    }

    #[test]
    fn a_refused_publish_keeps_redis_error_as_its_cause() {
        use std::error::Error as _;
        let refusal =
            redis::RedisError::from((redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm), "no permission", "PUBLISH".into()));
        let error = signalr_core::LifetimeError::from(BackplaneFailure::Refused(refusal));
        let failure = error.source().and_then(|cause| cause.downcast_ref::<BackplaneFailure>()).expect("the backplane's failure");
        assert!(matches!(failure, BackplaneFailure::Refused(_)));
        // What the app logs (`%error`) names Redis's reason, e.g. NOPERM for an ACL user.
        assert!(failure.to_string().contains("no permission"), "{failure}");
        let redis_error = failure.source().and_then(|cause| cause.downcast_ref::<redis::RedisError>()).expect("Redis's own error");
        assert!(redis_error.to_string().contains("no permission"), "{redis_error}");
    }

    #[test]
    fn a_connection_failure_keeps_redis_error_and_shows_the_whole_chain() {
        use std::error::Error as _;
        let refused = redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
        let error = LinkError::from(ReachError::Connect { server: Server::Redis("127.0.0.1:1".into()), source: refused });
        let cause = error.source().and_then(|cause| cause.downcast_ref::<redis::RedisError>()).expect("Redis's own error");
        assert_eq!(cause.kind(), redis::ErrorKind::Io);
        // Redis's error prints its I/O cause itself: the chain shows it once.
        assert_eq!(status_text("publisher", &error), "publisher: cannot connect to 127.0.0.1:1: connection refused");

        let map = ReachError::NoSlotMap { server: Server::ClusterNode("10.0.0.1:7000".into()) };
        assert_eq!(chain(&map), "cluster node 10.0.0.1:7000 answered CLUSTER SLOTS without a slot map");
        let silent = LinkError::Timeout { what: "PING", after: Duration::from_secs(5) };
        assert_eq!(status_text("subscriber", &silent), "subscriber: Redis did not answer PING within 5000 ms");
    }

    #[test]
    fn a_publish_whose_sender_stopped_waiting_is_not_sent() {
        let shared = shared_with_capacity(10);
        let (abandoned, gave_up) = oneshot::channel();
        let (awaited, _waiting) = oneshot::channel();
        shared.enqueue(Outgoing { channel: Bytes::from_static(b"c"), payload: Bytes::from_static(b"abandoned"), reply: Some(abandoned) });
        shared.enqueue(Outgoing { channel: Bytes::from_static(b"c"), payload: Bytes::from_static(b"awaited"), reply: Some(awaited) });
        shared.enqueue(Outgoing { channel: Bytes::from_static(b"c"), payload: Bytes::from_static(b"fire-and-forget"), reply: None });
        drop(gave_up);
        let batch: Vec<Bytes> = shared.take_batch().into_iter().map(|o| o.payload).collect();
        assert_eq!(batch, vec![Bytes::from_static(b"awaited"), Bytes::from_static(b"fire-and-forget")]);
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts() {
        let shared = shared_with_capacity(2);
        let (tx, mut rx) = oneshot::channel();
        shared.enqueue(Outgoing { channel: Bytes::from_static(b"c"), payload: Bytes::from_static(b"1"), reply: Some(tx) });
        for payload in [&b"2"[..], b"3"] {
            shared.enqueue(Outgoing { channel: Bytes::from_static(b"c"), payload: Bytes::copy_from_slice(payload), reply: None });
        }
        assert_eq!(shared.counters.dropped.load(Ordering::Relaxed), 1);
        assert!(rx.try_recv().unwrap().is_err());
        let batch = shared.take_batch();
        assert_eq!(batch.iter().map(|o| o.payload.clone()).collect::<Vec<_>>(), vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")]);
        shared.requeue_front(batch);
        assert_eq!(shared.queue.lock().front().unwrap().payload, Bytes::from_static(b"2"));
    }
}
