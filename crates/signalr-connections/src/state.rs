//! Connection state shared by the transports, the connection table of an endpoint and the shared
//! heartbeat that sweeps inactive connections (one task per endpoint, like .NET's 1 s heartbeat;
//! no timer per connection).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::ids::ShortId;
use crate::options::HttpConnectionOptions;
use crate::prefetch::{PrefetchStep, prefetch_lines};
use crate::{
    Connection, ConnectionApplication, ConnectionHandler, ConnectionInner, ConnectionSendError, RequestInfo, TransferFormat, TransportType,
    User,
};

/// Slots a connection's outbound queue starts with when the first message arrives.
const QUEUE_START_CAPACITY: usize = 16;

/// Slots the queue of a WebSocket that lent its write side to flushes starts with, and keeps
/// between broadcasts: flushes write one message at a time, and a queue kept from one message
/// to the next spares a `malloc` on the sender's thread and a `free` on the flush's, which
/// contend for the same allocator arena (`websocket::flush`).
pub(crate) const LENT_QUEUE_CAPACITY: usize = 1;

/// How long a connection keeps an empty queue's allocation after its last write; then the
/// heartbeat's sweep drops it (an idle connection holds none).
const QUEUE_KEEP: Duration = Duration::from_secs(5);

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Negotiated; no transport request yet.
    Negotiated,
    /// A transport carries it.
    Active,
    /// Stateful reconnect: the WebSocket dropped; waiting for a new one.
    AwaitingReconnect,
    /// Ended and removed from the table.
    Disposed,
}

/// The mutable part of a connection, behind a short-held lock (never held across an await).
pub(crate) struct Shared {
    pub(crate) status: Status,
    pub(crate) transport: Option<TransportType>,
    pub(crate) format: TransferFormat,
    /// Whole messages queued by the application and not yet taken by the transport.
    pub(crate) queue: VecDeque<Bytes>,
    pub(crate) queued_bytes: usize,
    /// Bytes taken by the transport whose write has not finished.
    pub(crate) in_flight_bytes: usize,
    /// When the current write started; the heartbeat aborts writes older than the send timeout.
    pub(crate) write_started: Option<Instant>,
    /// When the last write started (kept after it ends): the hub's keep-alive skips pings to
    /// connections written to recently.
    pub(crate) last_write_started: Option<Instant>,
    /// The application asked for a graceful end.
    pub(crate) close_requested: bool,
    /// The connection must end at once (abort, slow consumer, send timeout).
    pub(crate) aborted: bool,
    /// Since when nothing carries the connection (negotiated, between polls, awaiting reconnect).
    pub(crate) inactive_since: Option<Instant>,
    /// Long polling: the generation of the newest poll; an older poll that sees a newer one ends
    /// with 204.
    pub(crate) poll_generation: u64,
    /// WebSockets: the number of the newest socket accepted for this connection. A task whose
    /// socket is older gives way (stateful reconnect); a number, not a flag, so that of two
    /// quick takeovers only the newest socket runs.
    pub(crate) newest_socket: u32,
    /// POST data that arrived before the application started.
    pub(crate) pending_inbound: Vec<Bytes>,
    /// The single task or body stream that writes for this connection (WebSockets, SSE).
    pub(crate) waker: Option<Waker>,
    /// The queue holds a reply the client waits for: write it without giving way first.
    pub(crate) prompt: bool,
    /// Bytes in `pending_inbound`, reserved from the endpoint's inbound budget.
    pub(crate) pending_inbound_bytes: usize,
    /// Tasks waiting for room in the outbound buffer ([`crate::Connection::send_space`]).
    pub(crate) space_waiters: Vec<Waker>,
    /// Why the connection was aborted, for the WebSocket close frame.
    pub(crate) abort_reason: Option<AbortReason>,
    /// WebSockets: the socket's descriptor while its task lives, if flushes may write to it
    /// (`websocket::flush`).
    pub(crate) raw_fd: Option<std::os::fd::RawFd>,
    /// WebSockets: the task is idle and lent its socket's write side: a flush may write whole
    /// frames while holding this lock. The task takes it back (under the lock) before it
    /// writes.
    pub(crate) write_lent: bool,
    /// A frame a flush started and the socket did not take whole: the task finishes it first.
    pub(crate) handoff: Option<Box<crate::websocket::Outgoing>>,
}

/// Why a connection was aborted; a WebSocket's close frame carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AbortReason {
    /// The application aborted it.
    Application,
    /// The client did not take what was sent fast enough (outbound buffer full).
    SlowConsumer,
    /// A write to the client took longer than the send timeout.
    SendTimeout,
}

impl AbortReason {
    /// The close code and reason of the WebSocket close frame.
    pub(crate) fn close(self) -> (u16, &'static str) {
        match self {
            // 1011: the server ends the connection on its side's decision.
            AbortReason::Application => (1011, "The connection was aborted by the server."),
            // 1008: policy violation, the client broke the flow-control contract.
            AbortReason::SlowConsumer => (1008, "The client did not read fast enough: outbound buffer full."),
            AbortReason::SendTimeout => (1008, "The client did not read: send timed out."),
        }
    }
}

impl Shared {
    /// Takes every queued message; returns them and their total length.
    pub(crate) fn take_queue(&mut self) -> (VecDeque<Bytes>, usize) {
        self.take_batch(usize::MAX, usize::MAX, VecDeque::new())
    }

    /// Takes at most `max_messages` queued messages while their total stays within `max_bytes`
    /// (always at least one); returns them and their total length.
    ///
    /// The usual case takes the whole queue by moving it (no element is copied) and puts
    /// `spare`, an emptied list of an earlier batch, in its place, so a busy connection reuses
    /// two allocations; a writer going idle drops both (idle memory).
    pub(crate) fn take_batch(&mut self, max_bytes: usize, max_messages: usize, spare: VecDeque<Bytes>) -> (VecDeque<Bytes>, usize) {
        let mut taken = 0;
        let mut count = 0;
        for next in &self.queue {
            if count > 0 && (taken + next.len() > max_bytes || count == max_messages) {
                break;
            }
            count += 1;
            taken += next.len();
        }
        self.queued_bytes -= taken;
        if !self.space_waiters.is_empty() && self.in_flight_bytes == 0 {
            // Long polling and SSE hand the bytes over here; WebSockets once written.
            self.wake_space_waiters();
        }
        let batch = if count == self.queue.len() {
            self.prompt = false;
            std::mem::replace(&mut self.queue, spare)
        } else {
            let rest = self.queue.split_off(count);
            std::mem::replace(&mut self.queue, rest)
        };
        (batch, taken)
    }

    /// Drops an empty queue's allocation once nothing was written for [`QUEUE_KEEP`].
    fn release_idle_queue(&mut self, now: Instant) {
        if self.queue.is_empty()
            && self.queue.capacity() > 0
            && self.last_write_started.is_none_or(|at| now.saturating_duration_since(at) > QUEUE_KEEP)
        {
            self.queue = VecDeque::new();
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Wakes the tasks waiting for room in the outbound buffer (bytes left it, or it ended).
    pub(crate) fn wake_space_waiters(&mut self) {
        for waker in self.space_waiters.drain(..) {
            waker.wake();
        }
        if self.space_waiters.capacity() > 0 {
            self.space_waiters = Vec::new();
        }
    }

    /// Bytes queued or being written.
    pub(crate) fn pending_outbound(&self) -> usize {
        self.queued_bytes + self.in_flight_bytes
    }

    /// Registers the writer's waker unless the same one is registered.
    pub(crate) fn register(&mut self, waker: &Waker) {
        match &self.waker {
            Some(current) if current.will_wake(waker) => {}
            _ => self.waker = Some(waker.clone()),
        }
    }
}

/// One connection: what [`Connection`] points to.
pub(crate) struct ConnState {
    pub(crate) id: ShortId,
    pub(crate) token: ShortId,
    pub(crate) negotiate_version: u32,
    pub(crate) stateful_reconnect: bool,
    pub(crate) outbound_limit: usize,
    pub(crate) shared: Mutex<Shared>,
    /// Where the next send will write, for [`ConnectionInner::prefetch`]; read without the lock.
    hints: SendHints,
    /// Wakes waiting long polls (several may wait: an old one and the one replacing it).
    pub(crate) notify: Notify,
    /// The application. Held for the whole life of a WebSocket task, and per request by POSTs,
    /// which serialises concurrent sends.
    pub(crate) app: tokio::sync::Mutex<Option<Box<dyn ConnectionApplication>>>,
    pub(crate) request: OnceLock<RequestInfo>,
    pub(crate) user: OnceLock<Option<User>>,
    manager: Weak<Manager>,
    /// This connection, for handing it to a flush from `&self`.
    me: Weak<ConnState>,
}

static EMPTY_REQUEST: OnceLock<RequestInfo> = OnceLock::new();

/// Addresses a send will touch beyond the connection state, kept outside the lock so a fan-out
/// can prefetch them a few receivers ahead. Only hints: a stale one costs a wasted prefetch.
#[derive(Default)]
struct SendHints {
    /// The queue slot the next message goes to.
    queue_slot: AtomicUsize,
    /// The writer task a send wakes (a waker's data pointer).
    writer: AtomicUsize,
}

impl SendHints {
    fn note_queue(&self, queue: &VecDeque<Bytes>) {
        let (front, back) = queue.as_slices();
        let next = if back.is_empty() { front.as_ptr_range().end } else { back.as_ptr_range().end };
        self.queue_slot.store(next as usize, Ordering::Relaxed);
    }
}

impl ConnState {
    #[allow(clippy::too_many_arguments)]
    fn new(
        manager: Weak<Manager>,
        me: Weak<ConnState>,
        id: ShortId,
        token: ShortId,
        negotiate_version: u32,
        stateful_reconnect: bool,
        outbound_limit: usize,
        user: Option<User>,
    ) -> Self {
        Self {
            manager,
            me,
            id,
            token,
            negotiate_version,
            stateful_reconnect,
            outbound_limit,
            shared: Mutex::new(Shared {
                status: Status::Negotiated,
                transport: None,
                format: TransferFormat::Text,
                queue: VecDeque::new(),
                queued_bytes: 0,
                in_flight_bytes: 0,
                write_started: None,
                last_write_started: None,
                close_requested: false,
                aborted: false,
                inactive_since: Some(Instant::now()),
                poll_generation: 0,
                newest_socket: 0,
                pending_inbound: Vec::new(),
                waker: None,
                prompt: false,
                pending_inbound_bytes: 0,
                space_waiters: Vec::new(),
                abort_reason: None,
                raw_fd: None,
                write_lent: false,
                handoff: None,
            }),
            hints: SendHints::default(),
            notify: Notify::new(),
            app: tokio::sync::Mutex::new(None),
            request: OnceLock::new(),
            user: OnceLock::from(user),
        }
    }

    /// Whether a request by `user` may use this connection: only its negotiating user may
    /// (anonymous only for an anonymous connection).
    pub(crate) fn belongs_to(&self, user: Option<&User>) -> bool {
        crate::same_caller(self.user.get().and_then(Option::as_ref), user)
    }

    /// Aborts the connection. A WebSocket task or a waiting long poll ends it when woken; when
    /// nothing is sure to run soon — between long polls, awaiting a reconnect, never connected,
    /// or an SSE body that hyper stops polling while the client does not read — it is ended here,
    /// so the application hears of it at once.
    fn abort_locked(&self, mut shared: parking_lot::MutexGuard<'_, Shared>, reason: AbortReason) {
        shared.aborted = true;
        shared.abort_reason.get_or_insert(reason);
        shared.wake_space_waiters();
        self.wake_all(&mut shared);
        let unattended = shared.status != Status::Active
            || shared.transport == Some(TransportType::ServerSentEvents)
            || (shared.transport == Some(TransportType::LongPolling) && shared.inactive_since.is_some());
        drop(shared);
        if unattended && let Some(manager) = self.manager.upgrade() {
            manager.dispose_token(self.token);
        }
    }

    /// Queues `data`; `prompt` marks a reply the client waits for (see `Shared::prompt`).
    fn enqueue(&self, data: Bytes, prompt: bool) -> Result<(), ConnectionSendError> {
        let mut shared = self.shared.lock();
        if shared.status == Status::Disposed || shared.aborted || shared.close_requested {
            return Err(ConnectionSendError::Closed);
        }
        if shared.status == Status::AwaitingReconnect {
            // The socket is gone; the application replays unacknowledged messages after the
            // reconnect, so bytes sent meanwhile are dropped rather than buffered twice.
            return Ok(());
        }
        let pending = shared.queued_bytes + shared.in_flight_bytes;
        if pending > 0 && pending + data.len() > self.outbound_limit {
            tracing::debug!(connection_id = self.id.as_str(), pending, "outbound buffer full; closing slow consumer");
            self.abort_locked(shared, AbortReason::SlowConsumer);
            return Err(ConnectionSendError::Full);
        }
        let was_empty = shared.queue.is_empty();
        if shared.queue.capacity() == 0 {
            // Room for a burst's batch at once rather than growing 4, 8, 16 (each a realloc);
            // one slot when a flush is to write it.
            let capacity = if shared.write_lent { LENT_QUEUE_CAPACITY } else { QUEUE_START_CAPACITY };
            shared.queue.reserve_exact(capacity);
        }
        shared.queued_bytes += data.len();
        shared.queue.push_back(data);
        shared.prompt |= prompt;
        self.hints.note_queue(&shared.queue);
        if was_empty {
            if shared.write_lent
                && !prompt
                && let Some(me) = self.me.upgrade()
            {
                // The task lent its write side: a flush writes this, with whatever else is
                // queued by the time it runs, and the task sleeps on (websocket::flush).
                if crate::websocket::flush::schedule(me).is_ok() {
                    return Ok(());
                }
            }
            if let Some(waker) = &shared.waker {
                self.hints.writer.store(waker.data() as usize, Ordering::Relaxed);
            }
            self.wake_all(&mut shared);
        }
        Ok(())
    }

    /// The address of the endpoint: which connections share a runtime.
    pub(crate) fn endpoint_address(&self) -> usize {
        self.manager.as_ptr() as usize
    }

    /// The runtime serving the endpoint, unless the endpoint is gone.
    pub(crate) fn endpoint_runtime(&self) -> Option<tokio::runtime::Handle> {
        self.manager.upgrade()?.runtime.get().cloned()
    }

    /// Records where the next message goes after the queue was replaced (a prefetch hint).
    pub(crate) fn note_queue(&self, shared: &Shared) {
        self.hints.note_queue(&shared.queue);
    }

    /// Wakes whoever writes for this connection: the WebSocket task or SSE body through the
    /// registered waker, waiting long polls through `notify` (only they wait on it).
    pub(crate) fn wake_all(&self, shared: &mut Shared) {
        shared.wake();
        if shared.transport == Some(TransportType::LongPolling) {
            self.notify.notify_waiters();
        }
    }
}

impl ConnectionInner for ConnState {
    fn prefetch(&self, step: PrefetchStep) {
        match step {
            // The lock, the queue header and the hints: what `send` reads and writes here.
            PrefetchStep::State => {
                prefetch_lines(&self.shared, std::mem::size_of::<Mutex<Shared>>().div_ceil(64));
                prefetch_lines(&self.hints, 1);
            }
            PrefetchStep::Targets => {
                prefetch_lines(self.hints.queue_slot.load(Ordering::Relaxed) as *const u8, 1);
                prefetch_lines(self.hints.writer.load(Ordering::Relaxed) as *const u8, 1);
            }
        }
    }

    fn last_write_started(&self) -> Option<Instant> {
        self.shared.lock().last_write_started
    }

    fn poll_send_space(&self, cx: &mut std::task::Context<'_>, bytes: usize) -> std::task::Poll<()> {
        let mut shared = self.shared.lock();
        let pending = shared.pending_outbound();
        if shared.status == Status::Disposed
            || shared.aborted
            || shared.close_requested
            || pending == 0
            || pending + bytes <= self.outbound_limit
        {
            return std::task::Poll::Ready(());
        }
        if !shared.space_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            shared.space_waiters.push(cx.waker().clone());
        }
        std::task::Poll::Pending
    }

    fn connection_id(&self) -> &str {
        self.id.as_str()
    }

    fn transport(&self) -> TransportType {
        self.shared.lock().transport.unwrap_or(TransportType::WebSockets)
    }

    fn request(&self) -> &RequestInfo {
        self.request.get().unwrap_or_else(|| EMPTY_REQUEST.get_or_init(RequestInfo::default))
    }

    fn user(&self) -> Option<&User> {
        self.user.get().and_then(Option::as_ref)
    }

    fn send(&self, data: Bytes) -> Result<(), ConnectionSendError> {
        self.enqueue(data, false)
    }

    fn send_promptly(&self, data: Bytes) -> Result<(), ConnectionSendError> {
        self.enqueue(data, true)
    }

    fn set_transfer_format(&self, format: TransferFormat) {
        self.shared.lock().format = format;
    }

    fn close(&self) {
        let mut shared = self.shared.lock();
        if shared.status == Status::Disposed {
            return;
        }
        shared.close_requested = true;
        shared.wake_space_waiters();
        self.wake_all(&mut shared);
        if shared.status == Status::AwaitingReconnect || shared.status == Status::Negotiated {
            // Nothing can carry the close; end now.
            drop(shared);
            if let Some(manager) = self.manager.upgrade() {
                manager.dispose_token(self.token);
            }
        }
    }

    fn abort(&self) {
        let shared = self.shared.lock();
        if shared.status == Status::Disposed {
            return;
        }
        self.abort_locked(shared, AbortReason::Application);
    }

    fn is_closed(&self) -> bool {
        let shared = self.shared.lock();
        shared.status == Status::Disposed || shared.aborted || shared.close_requested
    }

    fn stateful_reconnect(&self) -> bool {
        self.stateful_reconnect
    }

    fn negotiate_version(&self) -> u32 {
        self.negotiate_version
    }
}

/// A connection limit that refused a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitReached {
    /// The endpoint holds `max_connections`.
    #[error("The server holds its maximum number of connections.")]
    Node,
    /// The user holds `max_connections_per_user`.
    #[error("Too many connections for this user.")]
    User,
}

/// The connections of one endpoint, its options and its handler.
pub(crate) struct Manager {
    pub(crate) options: HttpConnectionOptions,
    pub(crate) handler: Arc<dyn ConnectionHandler>,
    connections: RwLock<HashMap<ShortId, Arc<ConnState>>>,
    /// Connections per user identifier (only users with connections are present).
    per_user: Mutex<HashMap<String, usize>>,
    /// Inbound bytes held across the endpoint (POST bodies, data waiting for a start).
    buffered_inbound: AtomicUsize,
    heartbeat_started: AtomicBool,
    /// The runtime serving the endpoint, so that a `send` or `abort` from any thread can end a
    /// connection (and run the application's `on_closed`) there.
    runtime: OnceLock<tokio::runtime::Handle>,
}

impl Manager {
    pub(crate) fn new(options: HttpConnectionOptions, handler: Arc<dyn ConnectionHandler>) -> Arc<Self> {
        Arc::new(Self {
            options,
            handler,
            connections: RwLock::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
            buffered_inbound: AtomicUsize::new(0),
            heartbeat_started: AtomicBool::new(false),
            runtime: OnceLock::new(),
        })
    }

    /// Creates and registers a connection of `user`, within the connection limits.
    /// `skip_negotiation` connections have id = token.
    pub(crate) fn create(
        self: &Arc<Self>,
        negotiate_version: u32,
        stateful_reconnect: bool,
        skip_negotiation: bool,
        user: Option<User>,
    ) -> Result<Arc<ConnState>, LimitReached> {
        self.ensure_heartbeat();
        let identifier = user.as_ref().and_then(|user| user.identifier.clone());
        let id = ShortId::random();
        let token = if negotiate_version == 0 || skip_negotiation { id } else { ShortId::random() };
        let conn = Arc::new_cyclic(|me| {
            ConnState::new(
                Arc::downgrade(self),
                me.clone(),
                id,
                token,
                negotiate_version,
                stateful_reconnect,
                self.options.outbound_buffer_limit,
                user,
            )
        });
        let mut connections = self.connections.write();
        if connections.len() >= self.options.max_connections {
            return Err(LimitReached::Node);
        }
        if let Some(identifier) = identifier {
            let mut per_user = self.per_user.lock();
            let count = per_user.entry(identifier).or_insert(0);
            if *count >= self.options.max_connections_per_user {
                return Err(LimitReached::User);
            }
            *count += 1;
        }
        connections.insert(token, conn.clone());
        Ok(conn)
    }

    /// Reserves `bytes` of the endpoint's inbound budget; false (nothing reserved) if they
    /// do not fit.
    pub(crate) fn reserve_inbound(&self, bytes: usize) -> bool {
        let limit = self.options.max_buffered_inbound_bytes;
        self.buffered_inbound
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| held.checked_add(bytes).filter(|total| *total <= limit))
            .is_ok()
    }

    /// Gives back `bytes` reserved with [`Manager::reserve_inbound`].
    pub(crate) fn release_inbound(&self, bytes: usize) {
        self.buffered_inbound.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The connection with this token, if it is still registered.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<ConnState>> {
        let token = ShortId::parse(token)?;
        self.connections.read().get(&token).cloned()
    }

    fn remove(&self, conn: &Arc<ConnState>) {
        let mut connections = self.connections.write();
        if connections.get(&conn.token).is_some_and(|current| Arc::ptr_eq(current, conn)) {
            connections.remove(&conn.token);
            drop(connections);
            let identifier = conn.user.get().and_then(Option::as_ref).and_then(|u| u.identifier.as_deref());
            if let Some(identifier) = identifier {
                let mut per_user = self.per_user.lock();
                if let Some(count) = per_user.get_mut(identifier) {
                    *count -= 1;
                    if *count == 0 {
                        per_user.remove(identifier);
                    }
                }
            }
        }
    }

    /// Marks a connection disposed and removes it. Returns false if it already was.
    pub(crate) fn mark_disposed(&self, conn: &Arc<ConnState>) -> bool {
        {
            let mut shared = conn.shared.lock();
            if shared.status == Status::Disposed {
                return false;
            }
            shared.status = Status::Disposed;
            shared.queue.clear();
            shared.queued_bytes = 0;
            shared.pending_inbound = Vec::new();
            self.release_inbound(std::mem::take(&mut shared.pending_inbound_bytes));
            shared.wake_space_waiters();
            conn.wake_all(&mut shared);
        }
        self.remove(conn);
        true
    }

    /// Disposes a connection whose application is not held by a running task: removes it and
    /// calls the application's `on_closed` once (after any POST in progress).
    pub(crate) fn dispose(&self, conn: &Arc<ConnState>) {
        if self.mark_disposed(conn) {
            let conn = conn.clone();
            let Some(runtime) = self.runtime.get() else {
                return;
            };
            runtime.spawn(async move {
                let app = conn.app.lock().await.take();
                if let Some(mut app) = app {
                    app.on_closed().await;
                }
            });
        }
    }

    /// Disposes the registered connection with this token (see [`Manager::dispose`]).
    pub(crate) fn dispose_token(&self, token: ShortId) {
        let conn = self.connections.read().get(&token).cloned();
        if let Some(conn) = conn {
            self.dispose(&conn);
        }
    }

    /// Creates the application (once) and hands it POST data that arrived before it existed.
    pub(crate) async fn start_app(&self, conn: &Arc<ConnState>, slot: &mut Option<Box<dyn ConnectionApplication>>) {
        if slot.is_some() {
            return;
        }
        let mut app = self.handler.on_connected(Connection::new(conn.clone()));
        let (early, early_bytes) = {
            let mut shared = conn.shared.lock();
            (std::mem::take(&mut shared.pending_inbound), std::mem::take(&mut shared.pending_inbound_bytes))
        };
        for data in early {
            app.on_data(data).await;
        }
        self.release_inbound(early_bytes);
        *slot = Some(app);
    }

    fn ensure_heartbeat(self: &Arc<Self>) {
        if self.heartbeat_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let runtime = self.runtime.get_or_init(tokio::runtime::Handle::current);
        runtime.spawn(heartbeat(Arc::downgrade(self)));
    }

    /// One heartbeat tick: disposes connections inactive for longer than the disconnect timeout
    /// and aborts writes stuck for longer than the send timeout.
    pub(crate) fn sweep(&self, now: Instant) {
        let disconnect_timeout = self.options.disconnect_timeout;
        let start_timeout = self.options.start_timeout;
        let send_timeout = self.options.transport_send_timeout;
        let mut expired = Vec::new();
        {
            let connections = self.connections.read();
            for conn in connections.values() {
                let mut shared = conn.shared.lock();
                // A connection that never started goes sooner, with what it buffered.
                let timeout = if shared.status == Status::Negotiated { start_timeout } else { disconnect_timeout };
                if let Some(since) = shared.inactive_since
                    && now.saturating_duration_since(since) > timeout
                {
                    expired.push(conn.clone());
                    continue;
                }
                if let Some(started) = shared.write_started
                    && now.saturating_duration_since(started) > send_timeout
                    && !shared.aborted
                {
                    tracing::debug!(connection_id = conn.id.as_str(), "send timed out; aborting");
                    shared.aborted = true;
                    shared.abort_reason.get_or_insert(AbortReason::SendTimeout);
                    shared.wake_space_waiters();
                    conn.wake_all(&mut shared);
                }
                shared.release_idle_queue(now);
            }
        }
        for conn in expired {
            tracing::debug!(connection_id = conn.id.as_str(), "inactive for the disconnect timeout; removing");
            self.dispose(&conn);
        }
    }
}

async fn heartbeat(manager: Weak<Manager>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(manager) = manager.upgrade() else {
            return;
        };
        manager.sweep(Instant::now());
    }
}

#[cfg(test)]
mod prompt_tests {
    use super::*;

    fn active_connection() -> ConnState {
        let conn = ConnState::new(Weak::new(), Weak::new(), ShortId::random(), ShortId::random(), 1, false, 1 << 20, None);
        {
            let mut shared = conn.shared.lock();
            shared.status = Status::Active;
            shared.transport = Some(TransportType::WebSockets);
        }
        conn
    }

    /// A reply marks the queue until the batch carrying it is taken; ordinary sends do not.
    #[test]
    fn a_prompt_send_marks_the_queue_until_everything_is_taken() {
        let conn = active_connection();
        conn.send(Bytes::from_static(b"broadcast")).unwrap();
        assert!(!conn.shared.lock().prompt);
        conn.send_promptly(Bytes::from_static(b"completion")).unwrap();
        assert!(conn.shared.lock().prompt);

        // A partial batch leaves the reply queued: the mark stays.
        let (first, _) = conn.shared.lock().take_batch(usize::MAX, 1, VecDeque::new());
        assert_eq!(first, [Bytes::from_static(b"broadcast")]);
        assert!(conn.shared.lock().prompt);
        let (rest, _) = conn.shared.lock().take_batch(usize::MAX, 63, VecDeque::new());
        assert_eq!(rest, [Bytes::from_static(b"completion")]);
        assert!(!conn.shared.lock().prompt);

        conn.send(Bytes::from_static(b"later")).unwrap();
        assert!(!conn.shared.lock().prompt);
    }

    /// A send to a connection that lent its write side to flushes queues in one slot, which
    /// the connection keeps for the next message until it is idle for `QUEUE_KEEP`.
    #[test]
    fn a_lent_connection_keeps_a_one_slot_queue_until_idle() {
        let conn = active_connection();
        conn.send(Bytes::from_static(b"to the task")).unwrap();
        assert_eq!(conn.shared.lock().queue.capacity(), QUEUE_START_CAPACITY);
        let conn = active_connection();
        conn.shared.lock().write_lent = true;
        conn.send(Bytes::from_static(b"to a flush")).unwrap();
        let mut shared = conn.shared.lock();
        assert_eq!(shared.queue.capacity(), LENT_QUEUE_CAPACITY);
        // Written as a flush does; the slot stays.
        assert_eq!(shared.queue.pop_front(), Some(Bytes::from_static(b"to a flush")));
        let written = Instant::now();
        shared.last_write_started = Some(written);
        shared.release_idle_queue(written + Duration::from_secs(1));
        assert_eq!(shared.queue.capacity(), LENT_QUEUE_CAPACITY);
        shared.release_idle_queue(written + QUEUE_KEEP + Duration::from_secs(1));
        assert_eq!(shared.queue.capacity(), 0);
    }

    /// A closed connection refuses a reply like any send, and marks nothing.
    #[test]
    fn a_prompt_send_to_a_closed_connection_is_refused() {
        let conn = active_connection();
        conn.close();
        assert!(matches!(conn.send_promptly(Bytes::from_static(b"completion")), Err(ConnectionSendError::Closed)));
        assert!(!conn.shared.lock().prompt);
        assert!(conn.shared.lock().queue.is_empty());
    }
}

#[cfg(test)]
mod size_tests {
    /// Per-connection memory is a headline target: keep the connection state small. (640: 600
    /// plus what writing from flushes needs, decision 0017.)
    #[test]
    fn connection_state_stays_small() {
        assert!(std::mem::size_of::<super::ConnState>() <= 640, "{}", std::mem::size_of::<super::ConnState>());
    }
}
