//! Writing a broadcast without a task round per receiver.
//!
//! A broadcast queues one message on thousands of idle WebSockets. Waking each connection's task
//! to write it costs a task round per delivery (wake, schedule, poll, tokio's readiness
//! bookkeeping for the socket), a fifth of the server's CPU per delivery (docs/benchmarks.md,
//! "Where the server's time goes"). So a task going idle *lends* its socket's write side
//! (`Shared::write_lent`), and a send to such a connection puts it in the thread's open
//! [`Flush`] instead of waking the task: up to [`FLUSH_SIZE`] connections that one spawned task
//! visits in turn, writing each one's message as a frame with one `sendmsg` on its descriptor,
//! under the connection's lock.
//!
//! A flush gives way once before it writes, so the flushes of a long sweep spread over the
//! worker threads while the sweep goes on, and what more was queued by then leaves in the same
//! write. A connection with a backlog by then gets messages faster than flushes write them one
//! by one: its task takes over for what follows, joining more messages per write, until its
//! writes carry single messages again (decision 0017). The task
//! takes the write side back under the lock before it writes anything itself (a pong, a close,
//! a reply the client waits for, a burst's batch); a frame the socket does not take whole is
//! handed to the task (`Shared::handoff`), which finishes it through tokio.
//!
//! The descriptor is used only under the connection's lock and only while `Shared::raw_fd`
//! holds it: the task clears it before its socket closes ([`DirectWrites`]), so a flush never
//! writes to a descriptor number the kernel gave to another connection.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::socket::Outgoing;
use super::take_frame;
use crate::state::{ConnState, LENT_QUEUE_CAPACITY, Shared, Status};

/// The most connections one flush writes: large enough that a sweep spawns few tasks (one per
/// 128 receivers instead of one wake each), small enough that a sweep's flushes spread over the
/// worker threads and the first receivers are written while the sweep goes on.
const FLUSH_SIZE: usize = 128;

/// How many writes in a row of a single message the connection's task makes before it lends
/// the write side to flushes again, after a flush found a backlog (see [`write_queued`]).
pub(crate) const LEND_AFTER_SINGLES: u8 = 4;

/// The descriptor of an accepted TCP connection, put in each request's extensions by the
/// server ([`crate::server::serve`]) so that a WebSocket upgraded from it can be written from
/// a flush. Requests from other servers do not have it; their WebSockets write from their task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSocket(pub(crate) RawFd);

/// Connections of one endpoint with queued messages, written by one task.
struct Flush {
    /// The endpoint (its address): a flush runs on the endpoint's runtime, so it takes only
    /// that endpoint's connections.
    endpoint: usize,
    /// `None` once the task took the list: later sends start a new flush.
    connections: Mutex<Option<Vec<Arc<ConnState>>>>,
}

thread_local! {
    /// The flush this thread's sends are filling.
    static OPEN: RefCell<Option<Arc<Flush>>> = const { RefCell::new(None) };
}

/// Adds `conn`, whose queue just stopped being empty, to this thread's open flush, starting one
/// on the runtime serving its endpoint if there is none, it is full or it is another endpoint's.
/// Gives `conn` back if the endpoint is gone.
pub(crate) fn schedule(conn: Arc<ConnState>) -> Result<(), Arc<ConnState>> {
    let endpoint = conn.endpoint_address();
    let previous = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let conn = match open.as_ref() {
            Some(flush) if flush.endpoint == endpoint => match flush.add(conn) {
                Ok(()) => return Ok(None),
                Err(conn) => conn,
            },
            _ => conn,
        };
        let Some(runtime) = conn.endpoint_runtime() else {
            return Err(conn);
        };
        let mut list = Vec::with_capacity(16);
        list.push(conn);
        let flush = Arc::new(Flush { endpoint, connections: Mutex::new(Some(list)) });
        drop(runtime.spawn(Unrun(flush.clone()).run()));
        Ok(open.replace(flush))
    })?;
    // Dropped outside the thread-local's borrow.
    drop(previous);
    Ok(())
}

impl Flush {
    fn add(&self, conn: Arc<ConnState>) -> Result<(), Arc<ConnState>> {
        match self.connections.lock().as_mut() {
            Some(list) if list.len() < FLUSH_SIZE => {
                list.push(conn);
                Ok(())
            }
            _ => Err(conn),
        }
    }
}

/// A flush's task. If the task is dropped before it ran (its runtime shut down), the flush's
/// connections are left to their tasks and the flush takes no more.
struct Unrun(Arc<Flush>);

impl Unrun {
    /// Gives way once, as the connection task did before a batch, so that the broadcasts
    /// already scheduled queue more first; then writes the connections' queues.
    async fn run(self) {
        tokio::task::yield_now().await;
        let connections = self.0.connections.lock().take().unwrap_or_default();
        for conn in connections {
            write_queued(&conn);
        }
    }
}

impl Drop for Unrun {
    fn drop(&mut self) {
        let connections = self.0.connections.lock().take().unwrap_or_default();
        for conn in connections {
            let mut shared = conn.shared.lock();
            conn.wake_all(&mut shared);
        }
    }
}

/// Writes what `conn` has queued if its task lent the write side, in frames as the task would
/// ([`take_frame`]); otherwise
/// leaves it to the task, as it does the rest of a frame the socket does not take at once.
///
/// More than one message queued by now means messages come faster than flushes write them one
/// by one (a burst, or a node behind): the backlog is written at once, and the write side goes
/// back to the task for what follows. The task waits longer before a write (it gives way behind
/// every other task of the node), so one write carries more messages, and it lends the write
/// side again once its own last [`LEND_AFTER_SINGLES`] writes each carried a single message, so a
/// connection does not flip between the two on every message. Without that hysteresis, and
/// when the backlog itself was handed to the task, cross-node's tail grew to seconds; with
/// flushes never giving the write side back, a burst lost a fifth of its throughput
/// (docs/benchmarks.md, "Experiments not kept").
fn write_queued(conn: &ConnState) {
    let mut shared = conn.shared.lock();
    if shared.queue.is_empty() {
        // The task took it (and may be reusing the queue's allocation).
        return;
    }
    let backlog = shared.queue.len() > 1;
    let mut spare = VecDeque::new();
    while !shared.queue.is_empty() {
        let Some(fd) = lent_descriptor(&shared) else {
            conn.wake_all(&mut shared);
            return;
        };
        let (mut out, bytes, _) = take_frame(conn, &mut shared, std::mem::take(&mut spare));
        let now = Instant::now();
        shared.last_write_started = Some(now);
        if !write_some(fd, &mut out) {
            // The socket's buffer is full (or the socket failed): the task finishes the frame
            // through tokio, which waits for room, or ends the connection on the error.
            shared.in_flight_bytes = bytes;
            shared.write_started = Some(now);
            shared.write_lent = false;
            shared.handoff = Some(Box::new(out));
            conn.wake_all(&mut shared);
            return;
        }
        spare = out.into_spare();
    }
    if backlog {
        shared.write_lent = false;
    }
    // The next message reuses a one-slot queue, allocated on the sender's thread, instead of
    // this thread freeing it now (see `LENT_QUEUE_CAPACITY`); the heartbeat drops it when the
    // connection stays idle. Anything larger goes now: an idle connection keeps no more.
    if shared.queue.capacity() == 0 && spare.capacity() <= LENT_QUEUE_CAPACITY && !backlog {
        shared.queue = spare;
    } else if shared.queue.capacity() > LENT_QUEUE_CAPACITY {
        shared.queue = VecDeque::new();
    }
}

/// The descriptor a flush may write to now: the task lent its write side and nothing asks the
/// task to act (a close, an abort; a newer socket takes the write side back when it comes).
fn lent_descriptor(shared: &Shared) -> Option<RawFd> {
    let usable = shared.write_lent && shared.status == Status::Active && !shared.aborted && !shared.close_requested;
    if usable { shared.raw_fd } else { None }
}

/// Writes as much of `out` as the socket takes without waiting; true when all of it went.
///
/// `sendmsg` rather than `writev`: the socket call skips the file layer's checks, which at
/// 100,000 connections cost a cache miss per write (and it never raises `SIGPIPE`).
fn write_some(fd: RawFd, out: &mut Outgoing) -> bool {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); super::socket::MAX_SLICES];
        let count = out.slices(&mut slices);
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // `IoSlice` is ABI-compatible with `iovec` on Unix (documented by std).
        message.msg_iov = slices.as_mut_ptr().cast::<libc::iovec>();
        message.msg_iovlen = count as _;
        // SAFETY: the caller holds the connection's lock and `Shared::raw_fd` names this
        // descriptor, so the socket that owns it is open (its task clears `raw_fd` under the lock
        // before closing it); `message` points at `count` live slices.
        let sent = unsafe { send_message(fd, &message) };
        match sent {
            0 => return false,
            n if n > 0 => out.advance(n as usize),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
    true
}

/// `sendmsg(2)` without waiting and without `SIGPIPE`. On Linux the system call itself, not
/// glibc's wrapper: that one is a thread cancellation point, which costs two calls around every
/// write (2 % of a paced broadcast's time).
///
/// # Safety
/// `fd` must be an open socket and `message` must point at live buffers.
#[cfg(target_os = "linux")]
unsafe fn send_message(fd: RawFd, message: &libc::msghdr) -> isize {
    let flags = libc::c_long::from(libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
    // SAFETY: as the caller promises.
    let sent = unsafe { libc::syscall(libc::SYS_sendmsg, libc::c_long::from(fd), std::ptr::from_ref(message), flags) };
    sent as isize
}

/// `sendmsg(2)` without waiting and without `SIGPIPE`.
///
/// # Safety
/// `fd` must be an open socket and `message` must point at live buffers.
#[cfg(not(target_os = "linux"))]
unsafe fn send_message(fd: RawFd, message: &libc::msghdr) -> isize {
    // SAFETY: as the caller promises.
    unsafe { libc::sendmsg(fd, message, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
}

/// Takes the write side back from flushes for good when the task's socket goes away, also when
/// the task is dropped without finishing (runtime shut down): the descriptor is forgotten before
/// the socket closes it. Must be dropped before the socket.
pub(crate) struct DirectWrites<'a> {
    conn: &'a ConnState,
    fd: Option<RawFd>,
}

impl<'a> DirectWrites<'a> {
    /// Lets flushes write to `fd` (if any) for `conn` while its task lends the write side.
    pub(crate) fn new(conn: &'a ConnState, shared: &mut Shared, fd: Option<RawFd>) -> Self {
        shared.raw_fd = fd;
        shared.write_lent = false;
        shared.handoff = None;
        Self { conn, fd }
    }

    /// Ends direct writes; returns a frame a flush started and did not finish, which the task
    /// must finish before anything else it writes.
    pub(crate) fn end(&self, shared: &mut Shared) -> Option<Outgoing> {
        if self.fd.is_none() || shared.raw_fd != self.fd {
            // A newer socket's task (stateful reconnect) owns the fields now.
            return None;
        }
        shared.raw_fd = None;
        shared.write_lent = false;
        shared.handoff.take().map(|out| *out)
    }
}

impl Drop for DirectWrites<'_> {
    fn drop(&mut self) {
        let mut shared = self.conn.shared.lock();
        self.end(&mut shared);
    }
}
