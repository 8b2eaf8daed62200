//! One client connection inside a worker: reads deliveries, pings, and sends Echo traffic.
//!
//! Workers run on a single-threaded runtime, so connections share their counters through
//! `Rc` and `Cell` without atomics or locks.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::{Instant, Sleep};

use crate::frames::{Incoming, Protocol};
use crate::hist;
use crate::ipc::{EchoParams, ErrorTally};
use crate::payload::{self, StampFinder};
use crate::ws::WsStream;

/// What the connections of a worker should be doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Hold the connection, read, ping.
    Hold,
    /// Send Echo invocations.
    Echo(EchoParams),
    /// Stop sending new invocations; keep reading.
    Drain,
    /// Close and end.
    Stop,
}

/// Per-connection counters the worker reads when it reports.
#[derive(Debug, Default)]
pub struct Slot {
    /// The connection is established and not dropped.
    pub open: Cell<bool>,
    /// Deliveries or echo replies received (in the measured phase).
    pub received: Cell<u64>,
    /// Echo invocations sent.
    pub sent: Cell<u64>,
    /// The connection's task, woken when the phase changes or a ping is due.
    waker: RefCell<Option<Waker>>,
    /// Set by [`ping_all`] when the connection should send a ping.
    ping_due: Cell<bool>,
}

impl Slot {
    /// Wakes the connection's task, if it waits.
    fn wake(&self) {
        if let Some(waker) = self.waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// Sequence numbers above this are not tracked one by one.
pub const SEQ_TRACKING_LIMIT: u64 = 1 << 20;

/// Counters and histograms shared by all connections of a worker.
#[derive(Debug)]
pub struct Shared {
    /// The hub protocol.
    pub protocol: Protocol,
    /// One slot per connection of this worker.
    pub slots: Vec<Slot>,
    /// Delivery latency, µs.
    pub latency: RefCell<Histogram<u64>>,
    /// Connections lost after establishment.
    pub dropped: Cell<u64>,
    /// Deliveries whose sequence number was not above the previous one.
    pub out_of_order: Cell<u64>,
    /// All deliveries so far.
    pub received_total: Cell<u64>,
    /// All echo invocations so far.
    pub sent_total: Cell<u64>,
    /// First and last delivery time, µs since the epoch.
    pub first_received: Cell<u64>,
    /// See `first_received`.
    pub last_received: Cell<u64>,
    /// Errors during the run.
    pub errors: RefCell<ErrorTally>,
    /// Whether deliveries count yet (false while connecting).
    pub measuring: Cell<bool>,
    /// Deliveries per sequence number (sequence numbers below [`SEQ_TRACKING_LIMIT`]), to
    /// name the messages that were lost.
    pub seq_counts: RefCell<Vec<u32>>,
    finder: StampFinder,
    /// What the connections should be doing; see [`Shared::set_phase`].
    phase: Cell<Phase>,
    /// Bumped on every phase change; each connection compares it with the last it saw.
    phase_generation: Cell<u64>,
    /// The read buffer all connections of the worker share: a connection reads into it and
    /// handles what it read before it yields.
    read_buf: RefCell<Box<[u8]>>,
}

impl Shared {
    /// Counters for `connections` connections, which share one read buffer of `read_buffer`
    /// bytes.
    pub fn new(protocol: Protocol, connections: usize, read_buffer: usize) -> Self {
        Self {
            protocol,
            slots: (0..connections).map(|_| Slot::default()).collect(),
            latency: RefCell::new(hist::new_latency()),
            dropped: Cell::new(0),
            out_of_order: Cell::new(0),
            received_total: Cell::new(0),
            sent_total: Cell::new(0),
            first_received: Cell::new(0),
            last_received: Cell::new(0),
            errors: RefCell::new(ErrorTally::default()),
            measuring: Cell::new(false),
            seq_counts: RefCell::new(Vec::new()),
            finder: StampFinder::default(),
            phase: Cell::new(Phase::Hold),
            phase_generation: Cell::new(0),
            read_buf: RefCell::new(vec![0; read_buffer.max(256)].into_boxed_slice()),
        }
    }

    /// Tells every connection to switch to `phase`, waking the idle ones.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.set(phase);
        self.phase_generation.set(self.phase_generation.get() + 1);
        for slot in &self.slots {
            slot.wake();
        }
    }

    /// Handles `data`, which arrived at `now` (µs) for connection `slot`, after the incomplete
    /// frame kept in `pending`; keeps a new incomplete tail in `pending`. Returns false when the
    /// server closed the connection or sent bytes that cannot be framed.
    pub fn on_data(&self, slot: usize, pending: &mut Vec<u8>, data: &[u8], last_seq: &mut Option<u64>, now: u64) -> bool {
        if pending.is_empty() {
            // The usual case: whole frames, read straight from the message without a copy.
            let (open, used) = self.on_frames(slot, data, last_seq, now);
            if open && used < data.len() {
                pending.extend_from_slice(&data[used..]);
            }
            return open;
        }
        pending.extend_from_slice(data);
        let (open, used) = self.on_frames(slot, pending, last_seq, now);
        if open {
            pending.drain(..used);
        } else {
            pending.clear();
        }
        open
    }

    /// Handles the complete frames at the front of `buf`: (still open, bytes consumed).
    fn on_frames(&self, slot: usize, buf: &[u8], last_seq: &mut Option<u64>, now: u64) -> (bool, usize) {
        let mut open = true;
        let result = self.protocol.split_frames(buf, |frame| {
            if let Some(stamp) = self.finder.find(frame) {
                self.on_delivery(slot, stamp, last_seq, now);
            } else {
                match self.protocol.decode(frame) {
                    Ok(Incoming::Completion { error: Some(error), .. }) => {
                        self.errors.borrow_mut().add(format!("completion error: {error}"));
                    }
                    Ok(Incoming::Close { error }) => {
                        self.errors.borrow_mut().add(format!("server closed: {}", error.unwrap_or_default()));
                        open = false;
                    }
                    Ok(_) => {}
                    Err(error) => self.errors.borrow_mut().add(error.to_string()),
                }
            }
        });
        match result {
            Ok(used) => (open, used),
            Err(error) => {
                self.errors.borrow_mut().add(error.to_string());
                (false, buf.len())
            }
        }
    }

    fn on_delivery(&self, slot: usize, stamp: payload::Stamp, last_seq: &mut Option<u64>, now: u64) {
        if !self.measuring.get() {
            return;
        }
        if last_seq.is_some_and(|last| stamp.seq <= last) {
            self.out_of_order.set(self.out_of_order.get() + 1);
        }
        *last_seq = Some(stamp.seq);
        let counters = &self.slots[slot];
        counters.received.set(counters.received.get() + 1);
        self.received_total.set(self.received_total.get() + 1);
        if self.first_received.get() == 0 {
            self.first_received.set(now);
        }
        self.last_received.set(now);
        hist::record(&mut self.latency.borrow_mut(), now.saturating_sub(stamp.sent_micros));
        if stamp.seq < SEQ_TRACKING_LIMIT {
            let mut counts = self.seq_counts.borrow_mut();
            let index = stamp.seq as usize;
            if counts.len() <= index {
                counts.resize(index + 1, 0);
            }
            counts[index] += 1;
        }
    }

    fn mark_dropped(&self, slot: usize, why: String) {
        if self.slots[slot].open.replace(false) {
            self.dropped.set(self.dropped.get() + 1);
            self.errors.borrow_mut().add(why);
        }
    }
}

/// How often [`ping_all`] looks for connections due for a ping, at most.
const PING_TICK: Duration = Duration::from_millis(100);

/// The slots [`ping_all`] pings at tick `tick`: every `ticks`-th slot, so that over `ticks`
/// consecutive ticks every slot comes once.
fn ping_window(slots: usize, ticks: usize, tick: usize) -> impl Iterator<Item = usize> {
    (tick % ticks..slots).step_by(ticks)
}

/// Has every open connection of the worker send a ping once per `interval`, spread evenly over
/// the interval (a slice of the connections every [`PING_TICK`]), so that the server, which
/// drops clients that send nothing for 30 s, keeps idle connections. One task per worker, so a
/// connection needs no timer of its own and its hot path only reads a flag.
pub async fn ping_all(shared: Rc<Shared>, interval: Duration) {
    let slots = shared.slots.len();
    if slots == 0 || interval.is_zero() {
        return;
    }
    let ticks = ((interval.as_micros() / PING_TICK.as_micros()) as usize).clamp(1, slots);
    let period = interval / ticks as u32;
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    // Burst, not Delay: on a saturated machine late ticks must catch up, or the lateness of
    // every tick adds up, the round through all connections stretches past the server's 30 s
    // client timeout and the server drops them (seen with 100,000 connections).
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for tick in 0.. {
        ticker.tick().await;
        for index in ping_window(slots, ticks, tick) {
            let slot = &shared.slots[index];
            if slot.open.get() {
                slot.ping_due.set(true);
                slot.wake();
            }
        }
    }
}

/// Why a connection's task woke up, when it was not only to read deliveries.
#[derive(Debug)]
enum Wake {
    /// The phase changed.
    Phase,
    /// A ping is due.
    Ping,
    /// The echo timer fired.
    Timer,
    /// The reply to the outstanding echo arrived: the next may be sent.
    EchoReply,
    /// Pongs wait to be written.
    Flush,
    /// The connection is lost; the reason.
    Dropped(String),
}

/// The receiving side of one connection: everything `poll_wake` needs.
struct Receiver {
    shared: Rc<Shared>,
    slot: usize,
    ws: WsStream,
    /// An incomplete SignalR frame carried over to the next read.
    pending: Vec<u8>,
    last_seq: Option<u64>,
    /// The phase generation this connection acted on last.
    seen_generation: u64,
    /// Waiting for the reply to an echo invocation.
    echo_waiting: bool,
    /// When the next echo goes out; created in the first echo phase.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer is aimed at an echo that is to be sent (echo phase, no reply outstanding).
    timer_active: bool,
    /// The timer holds this task's waker for its current deadline.
    timer_registered: bool,
}

impl Receiver {
    /// The hot path: handles what the socket has and returns `Pending` until something other
    /// than a delivery needs the connection's attention. One wake-up with data costs a phase
    /// check, a flag check, one `recv` (see [`WsStream::poll_read`]) and the parsing.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let shared = &*self.shared;
        let counters = &shared.slots[self.slot];
        if shared.phase_generation.get() != self.seen_generation {
            return Poll::Ready(Wake::Phase);
        }
        if counters.ping_due.get() {
            return Poll::Ready(Wake::Ping);
        }
        if self.timer_active
            && let Some(timer) = &self.timer
            && timer.is_elapsed()
        {
            return Poll::Ready(Wake::Timer);
        }
        loop {
            let mut buf = shared.read_buf.borrow_mut();
            let n = match self.ws.poll_read(cx, &mut buf) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Wake::Dropped("WebSocket closed by the server: end of stream without a close frame".into()));
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(Wake::Dropped(format!("WebSocket error: I/O: {error}")));
                }
            };
            let now = payload::now_micros();
            let before = counters.received.get();
            let (slot, pending, last_seq) = (self.slot, &mut self.pending, &mut self.last_seq);
            let fed = self.ws.feed(&buf[..n], |data| shared.on_data(slot, pending, data, last_seq, now));
            match fed {
                Ok(true) => {}
                Ok(false) => {
                    return Poll::Ready(Wake::Dropped("the server sent Close or unframeable bytes".into()));
                }
                Err(error) if error.is_close() => {
                    return Poll::Ready(Wake::Dropped(format!("WebSocket closed: {error}")));
                }
                Err(error) => {
                    return Poll::Ready(Wake::Dropped(format!("WebSocket error: {error}")));
                }
            }
            if self.ws.has_outgoing() {
                return Poll::Ready(Wake::Flush);
            }
            if self.echo_waiting && counters.received.get() > before {
                self.echo_waiting = false;
                return Poll::Ready(Wake::EchoReply);
            }
        }
        // Nothing more to read: make sure a phase change, a ping and the timer wake this task.
        {
            let mut waker = counters.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        if self.timer_active
            && !self.timer_registered
            && let Some(timer) = &mut self.timer
        {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            self.timer_registered = true;
        }
        Poll::Pending
    }

    /// Aims the echo timer at `deadline`, or turns it off.
    fn arm(&mut self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            self.timer_active = false;
            return;
        };
        match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline || timer.is_elapsed() {
                    timer.as_mut().reset(deadline);
                    self.timer_registered = false;
                }
            }
            None => {
                self.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
                self.timer_registered = false;
            }
        }
        self.timer_active = true;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The waker holds the task; let it go.
        self.shared.slots[self.slot].waker.take();
    }
}

/// Runs connection `slot` until the phase becomes [`Phase::Stop`] or the server drops it.
/// Pings come from [`ping_all`].
pub async fn run(shared: Rc<Shared>, slot: usize, ws: WsStream, leftover: Vec<u8>) {
    shared.slots[slot].open.set(true);
    let mut receiver = Receiver {
        shared: shared.clone(),
        slot,
        ws,
        pending: Vec::new(),
        last_seq: None,
        seen_generation: 0,
        echo_waiting: false,
        timer: None,
        timer_active: false,
        timer_registered: false,
    };
    if !leftover.is_empty() && !shared.on_data(slot, &mut receiver.pending, &leftover, &mut receiver.last_seq, payload::now_micros()) {
        shared.mark_dropped(slot, "closed right after the handshake".into());
        return;
    }
    drop(leftover);
    let protocol = shared.protocol;
    let mut echo: Option<EchoParams> = None;
    let mut echo_next = Instant::now();
    let mut echo_seq: u64 = 0;
    let mut out = Vec::new();
    loop {
        let wake = poll_fn(|cx| receiver.poll_wake(cx)).await;
        match wake {
            Wake::Dropped(why) => {
                shared.mark_dropped(slot, why);
                return;
            }
            Wake::Flush => {
                if let Err(error) = receiver.ws.flush().await {
                    shared.mark_dropped(slot, format!("pong failed: {error}"));
                    return;
                }
            }
            Wake::Ping => {
                shared.slots[slot].ping_due.set(false);
                out.clear();
                protocol.write_ping(&mut out);
                if let Err(error) = receiver.ws.send(&out).await {
                    shared.mark_dropped(slot, format!("ping failed: {error}"));
                    return;
                }
            }
            Wake::Phase => {
                receiver.seen_generation = shared.phase_generation.get();
                match shared.phase.get() {
                    Phase::Stop => {
                        // Boxed: a rare path that should not make every connection's future
                        // larger.
                        let close = Box::pin(receiver.ws.close());
                        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
                        shared.slots[slot].open.set(false);
                        return;
                    }
                    Phase::Echo(params) => {
                        echo = Some(params);
                        receiver.echo_waiting = false;
                        // Spread the first sends over one interval so connections do not align.
                        let spread = params.interval_micros * (slot as u64 % 1000) / 1000;
                        echo_next = Instant::now() + Duration::from_micros(spread);
                    }
                    Phase::Drain | Phase::Hold => echo = None,
                }
            }
            Wake::Timer | Wake::EchoReply => {
                let now = Instant::now();
                if let Some(params) = echo
                    && !receiver.echo_waiting
                    && now >= echo_next
                {
                    out.clear();
                    {
                        let text = payload::encode(echo_seq, payload::now_micros(), params.payload_len);
                        let id = echo_seq.to_string();
                        protocol.write_invocation(&mut out, Some(&id), "Echo", &[&text]);
                    }
                    echo_seq += 1;
                    receiver.echo_waiting = true;
                    echo_next += Duration::from_micros(params.interval_micros);
                    if echo_next < now {
                        echo_next = now;
                    }
                    let counters = &shared.slots[slot];
                    counters.sent.set(counters.sent.get() + 1);
                    shared.sent_total.set(shared.sent_total.get() + 1);
                    if let Err(error) = receiver.ws.send(&out).await {
                        shared.mark_dropped(slot, format!("send failed: {error}"));
                        return;
                    }
                }
            }
        }
        // Aim the timer at the next echo, if one is to be sent.
        let next_echo = (echo.is_some() && !receiver.echo_waiting).then_some(echo_next);
        receiver.arm(next_echo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(seq: u64, sent: u64) -> Vec<u8> {
        delivery_of(seq, sent, 60)
    }

    fn delivery_of(seq: u64, sent: u64, payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        Protocol::Json.write_invocation(&mut out, None, "Message", &[&payload::encode(seq, sent, payload_len)]);
        out
    }

    #[test]
    fn deliveries_count_only_while_measuring_and_record_latency() {
        let shared = Shared::new(Protocol::Json, 2, 4096);
        let mut last = None;
        let mut pending = Vec::new();
        assert!(shared.on_data(1, &mut pending, &delivery(0, 1_000), &mut last, 1_500));
        assert_eq!(shared.received_total.get(), 0, "not measuring yet");
        shared.measuring.set(true);
        let data = [delivery(1, 1_000), delivery(2, 2_000), b"{\"type\":6}\x1e{\"ty".to_vec()].concat();
        assert!(shared.on_data(1, &mut pending, &data, &mut last, 3_000));
        assert_eq!(pending, b"{\"ty", "the incomplete tail stays");
        // The rest of the split frame completes it; it carries no tag, so nothing is counted.
        assert!(shared.on_data(1, &mut pending, b"pe\":6}\x1e", &mut last, 3_000));
        assert!(pending.is_empty());
        assert_eq!(shared.slots[1].received.get(), 2);
        assert_eq!(shared.slots[0].received.get(), 0);
        assert_eq!(shared.latency.borrow().len(), 2);
        assert_eq!(shared.latency.borrow().max(), 2_000);
        assert_eq!(shared.first_received.get(), 3_000);
        assert_eq!(*shared.seq_counts.borrow(), vec![0, 1, 1]);
    }

    #[test]
    fn repeats_count_as_out_of_order() {
        let shared = Shared::new(Protocol::Json, 1, 4096);
        shared.measuring.set(true);
        let mut last = None;
        let data = [delivery(5, 1), delivery(5, 1), delivery(4, 1)].concat();
        assert!(shared.on_data(0, &mut Vec::new(), &data, &mut last, 10));
        assert_eq!(shared.out_of_order.get(), 2);
    }

    #[test]
    fn errors_and_closes_are_reported() {
        let shared = Shared::new(Protocol::Json, 1, 4096);
        let mut last = None;
        let mut pending = Vec::new();
        let error = b"{\"type\":3,\"invocationId\":\"1\",\"error\":\"Method does not exist.\"}\x1e";
        assert!(shared.on_data(0, &mut pending, error, &mut last, 1));
        assert!(!shared.on_data(0, &mut pending, b"{\"type\":7,\"error\":\"bye\"}\x1e", &mut last, 1));
        assert!(shared.on_data(0, &mut pending, b"not json\x1e", &mut last, 1));
        let errors = shared.errors.borrow().entries();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].0.contains("Method does not exist."));
    }

    #[test]
    fn the_ping_window_visits_every_slot_once_per_interval() {
        for (slots, ticks) in [(1, 1), (10, 3), (15_000, 150), (7, 7)] {
            let mut seen = vec![0; slots];
            for tick in 40..40 + ticks {
                for index in ping_window(slots, ticks, tick) {
                    seen[index] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{slots} slots, {ticks} ticks");
        }
    }

    /// A fake server end: reads client frames and answers with server frames.
    struct FakeServer {
        socket: tokio::net::TcpStream,
        got: Vec<u8>,
    }

    impl FakeServer {
        /// A connected pair: the fake server and a client WebSocket on the other end.
        async fn pair() -> (Self, WsStream) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (socket, _) = listener.accept().await.unwrap();
            let server = Self { socket, got: Vec::new() };
            (server, WsStream::for_tests(client))
        }

        /// The next client frame: (opcode, unmasked payload).
        async fn next_frame(&mut self) -> (u8, Vec<u8>) {
            use tokio::io::AsyncReadExt;
            loop {
                if self.got.len() >= 6 {
                    let len = usize::from(self.got[1] & 0x7F);
                    assert!(len < 126, "the test frames are short");
                    if self.got.len() >= 6 + len {
                        let mask: [u8; 4] = self.got[2..6].try_into().unwrap();
                        let mut payload = self.got[6..6 + len].to_vec();
                        crate::ws::apply_mask(&mut payload, mask);
                        let opcode = self.got[0] & 0x0F;
                        self.got.drain(..6 + len);
                        return (opcode, payload);
                    }
                }
                let mut chunk = [0u8; 1024];
                let n = tokio::time::timeout(Duration::from_secs(5), self.socket.read(&mut chunk))
                    .await
                    .expect("a client frame within 5 s")
                    .unwrap();
                assert!(n > 0, "the client closed");
                self.got.extend_from_slice(&chunk[..n]);
            }
        }

        /// Sends `payload` as one unmasked text frame, written in two pieces.
        async fn send_text(&mut self, payload: &[u8]) {
            use tokio::io::AsyncWriteExt;
            let mut frame = vec![0x81];
            if payload.len() < 126 {
                frame.push(payload.len() as u8);
            } else {
                frame.push(126);
                frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            frame.extend_from_slice(payload);
            let (first, second) = frame.split_at(frame.len() / 2);
            self.socket.write_all(first).await.unwrap();
            self.socket.flush().await.unwrap();
            tokio::task::yield_now().await;
            self.socket.write_all(second).await.unwrap();
        }
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_connection_counts_deliveries_pings_and_closes() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (mut server, ws) = FakeServer::pair().await;
                // The smallest read buffer (256 bytes), so one delivery needs several reads.
                let shared = Rc::new(Shared::new(Protocol::Json, 1, 0));
                shared.measuring.set(true);
                let task = tokio::task::spawn_local(run(shared.clone(), 0, ws, delivery(0, 1)));
                // Two deliveries in one frame, then one bigger than the read buffer.
                let two = [delivery(1, 1), delivery(2, 1)].concat();
                server.send_text(&two).await;
                server.send_text(&delivery_of(3, 1, 1000)).await;
                until("4 deliveries", || shared.slots[0].received.get() == 4).await;
                assert_eq!(*shared.seq_counts.borrow(), vec![1, 1, 1, 1]);
                // A ping when the pinger says so.
                shared.slots[0].ping_due.set(true);
                shared.slots[0].wake();
                assert_eq!(server.next_frame().await, (0x1, b"{\"type\":6}\x1e".to_vec()));
                assert!(!shared.slots[0].ping_due.get());
                // A WebSocket ping is answered.
                {
                    use tokio::io::AsyncWriteExt;
                    server.socket.write_all(&[0x89, 2, b'h', b'i']).await.unwrap();
                }
                assert_eq!(server.next_frame().await, (0xA, b"hi".to_vec()));
                // Stop: a close frame, then the task ends.
                shared.set_phase(Phase::Stop);
                assert_eq!(server.next_frame().await, (0x8, vec![0x03, 0xE8]));
                {
                    use tokio::io::AsyncWriteExt;
                    server.socket.write_all(&[0x88, 0]).await.unwrap();
                }
                tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
                assert!(!shared.slots[0].open.get());
                assert_eq!(shared.dropped.get(), 0);
                assert!(shared.slots[0].waker.borrow().is_none(), "the waker is let go");
            })
            .await;
    }

    #[tokio::test]
    async fn echo_sends_the_next_call_when_the_reply_arrives() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (mut server, ws) = FakeServer::pair().await;
                let shared = Rc::new(Shared::new(Protocol::Json, 1, 4096));
                shared.measuring.set(true);
                let _task = tokio::task::spawn_local(run(shared.clone(), 0, ws, Vec::new()));
                tokio::task::yield_now().await;
                shared.set_phase(Phase::Echo(EchoParams { interval_micros: 0, payload_len: 40 }));
                for seq in 0..3u64 {
                    let (opcode, payload) = server.next_frame().await;
                    assert_eq!(opcode, 0x1);
                    let text = String::from_utf8(payload).unwrap();
                    assert!(text.contains(&format!("\"invocationId\":\"{seq}\"")) && text.contains("\"target\":\"Echo\""), "{text}");
                    let stamp = payload::StampFinder::default().find(text.as_bytes()).unwrap();
                    assert_eq!(stamp.seq, seq);
                    let argument = &text[text.find("dqb1|").unwrap()..];
                    let argument = &argument[..argument.find('"').unwrap()];
                    let reply = format!("{{\"type\":3,\"invocationId\":\"{seq}\",\"result\":\"{argument}\"}}\u{1e}");
                    server.send_text(reply.as_bytes()).await;
                }
                let _ = server.next_frame().await; // the fourth call
                until("4 sent, 3 received", || shared.slots[0].sent.get() == 4 && shared.slots[0].received.get() == 3).await;
                // Drain: no more calls after the outstanding one is answered.
                shared.set_phase(Phase::Drain);
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(shared.slots[0].sent.get(), 4);
            })
            .await;
    }

    #[tokio::test]
    async fn a_server_close_counts_as_a_drop() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (mut server, ws) = FakeServer::pair().await;
                let shared = Rc::new(Shared::new(Protocol::Json, 1, 4096));
                let task = tokio::task::spawn_local(run(shared.clone(), 0, ws, Vec::new()));
                {
                    use tokio::io::AsyncWriteExt;
                    server.socket.write_all(&[0x88, 5, 0x03, 0xF1, b'b', b'y', b'e']).await.unwrap();
                }
                tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
                assert_eq!(shared.dropped.get(), 1);
                let errors = shared.errors.borrow().entries();
                assert!(errors[0].0.contains("code 1009: bye"), "{errors:?}");
            })
            .await;
    }

    #[tokio::test]
    async fn ping_all_flags_open_connections() {
        let shared = Rc::new(Shared::new(Protocol::Json, 6, 4096));
        for (index, slot) in shared.slots.iter().enumerate() {
            slot.open.set(index != 2);
        }
        let pinger = tokio::task::LocalSet::new();
        pinger.spawn_local(ping_all(shared.clone(), Duration::from_millis(30)));
        pinger
            .run_until(until("every open slot is due", || {
                shared.slots.iter().enumerate().all(|(index, slot)| slot.ping_due.get() == (index != 2))
            }))
            .await;
    }
}
