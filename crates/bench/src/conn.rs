//! One client connection inside a worker: reads deliveries, pings, and sends Echo traffic.
//!
//! Workers run on a single-threaded runtime, so connections share their counters through
//! `Rc` and `Cell` without atomics or locks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{Ws, protocol_message};
use crate::frames::{Incoming, Protocol};
use crate::hist;
use crate::ipc::{EchoParams, ErrorTally};
use crate::payload::{self, StampFinder};

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
}

impl Shared {
    /// Counters for `connections` connections.
    pub fn new(protocol: Protocol, connections: usize) -> Self {
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
        }
    }

    /// Handles `data`, which arrived at `now` (µs) for connection `slot`, after the incomplete
    /// frame kept in `pending`; keeps a new incomplete tail in `pending`. Returns false when the
    /// server closed the connection or sent bytes that cannot be framed.
    pub fn on_data(
        &self,
        slot: usize,
        pending: &mut Vec<u8>,
        data: &[u8],
        last_seq: &mut Option<u64>,
        now: u64,
    ) -> bool {
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
    fn on_frames(
        &self,
        slot: usize,
        buf: &[u8],
        last_seq: &mut Option<u64>,
        now: u64,
    ) -> (bool, usize) {
        let mut open = true;
        let result = self.protocol.split_frames(buf, |frame| {
            if let Some(stamp) = self.finder.find(frame) {
                self.on_delivery(slot, stamp, last_seq, now);
            } else {
                match self.protocol.decode(frame) {
                    Ok(Incoming::Completion {
                        error: Some(error), ..
                    }) => {
                        self.errors
                            .borrow_mut()
                            .add(format!("completion error: {error}"));
                    }
                    Ok(Incoming::Close { error }) => {
                        self.errors
                            .borrow_mut()
                            .add(format!("server closed: {}", error.unwrap_or_default()));
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

    fn on_delivery(
        &self,
        slot: usize,
        stamp: payload::Stamp,
        last_seq: &mut Option<u64>,
        now: u64,
    ) {
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
        hist::record(
            &mut self.latency.borrow_mut(),
            now.saturating_sub(stamp.sent_micros),
        );
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

/// Runs connection `slot` until the phase becomes [`Phase::Stop`] or the server drops it.
pub async fn run(
    shared: Rc<Shared>,
    slot: usize,
    mut ws: Ws,
    mut buf: Vec<u8>,
    mut phase: watch::Receiver<Phase>,
    ping_interval: Duration,
) {
    let protocol = shared.protocol;
    shared.slots[slot].open.set(true);
    let mut last_seq = None;
    let leftover = std::mem::take(&mut buf);
    if !leftover.is_empty()
        && !shared.on_data(
            slot,
            &mut buf,
            &leftover,
            &mut last_seq,
            payload::now_micros(),
        )
    {
        shared.mark_dropped(slot, "closed right after the handshake".into());
        return;
    }
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ping_frame = {
        let mut frame = Vec::new();
        protocol.write_ping(&mut frame);
        Bytes::from(frame)
    };
    let mut echo: Option<EchoParams> = None;
    let mut echo_waiting = false;
    let mut echo_next = Instant::now();
    let mut echo_seq: u64 = 0;
    let mut out = Vec::new();
    // One timer for the whole connection, reset when the next echo is due, so the hot read
    // path does not build a new timer per message.
    let echo_timer = tokio::time::sleep_until(echo_next);
    tokio::pin!(echo_timer);
    loop {
        let echo_ready = echo.is_some() && !echo_waiting;
        tokio::select! {
            biased;
            changed = phase.changed() => {
                let current = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Stop };
                match current {
                    Phase::Stop => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                        shared.slots[slot].open.set(false);
                        return;
                    }
                    Phase::Echo(params) => {
                        echo = Some(params);
                        // Spread the first sends over one interval so connections do not align.
                        let spread = params.interval_micros * (slot as u64 % 1000) / 1000;
                        echo_next = Instant::now() + Duration::from_micros(spread);
                        echo_timer.as_mut().reset(echo_next);
                    }
                    Phase::Drain | Phase::Hold => echo = None,
                }
            }
            message = ws.next() => {
                let now = payload::now_micros();
                let before = shared.slots[slot].received.get();
                let open = match message {
                    Some(Ok(Message::Text(text))) => shared.on_data(slot, &mut buf, text.as_bytes(), &mut last_seq, now),
                    Some(Ok(Message::Binary(data))) => shared.on_data(slot, &mut buf, &data, &mut last_seq, now),
                    Some(Ok(Message::Close(_))) | None => {
                        shared.mark_dropped(slot, "WebSocket closed by the server".into());
                        return;
                    }
                    Some(Ok(_)) => true,
                    Some(Err(error)) => {
                        shared.mark_dropped(slot, format!("WebSocket error: {error}"));
                        return;
                    }
                };
                if !open {
                    shared.mark_dropped(slot, "the server sent Close or unframeable bytes".into());
                    return;
                }
                if echo_waiting && shared.slots[slot].received.get() > before {
                    echo_waiting = false;
                }
            }
            _ = &mut echo_timer, if echo_ready => {
                let params = echo.expect("echo_ready implies echo is set");
                out.clear();
                let text = payload::encode(echo_seq, payload::now_micros(), params.payload_len);
                let id = echo_seq.to_string();
                protocol.write_invocation(&mut out, Some(&id), "Echo", &[&text]);
                echo_seq += 1;
                echo_waiting = true;
                echo_next += Duration::from_micros(params.interval_micros);
                let now = Instant::now();
                if echo_next < now {
                    echo_next = now;
                }
                echo_timer.as_mut().reset(echo_next);
                let counters = &shared.slots[slot];
                counters.sent.set(counters.sent.get() + 1);
                shared.sent_total.set(shared.sent_total.get() + 1);
                if let Err(error) = ws.send(protocol_message(protocol, Bytes::copy_from_slice(&out))).await {
                    shared.mark_dropped(slot, format!("send failed: {error}"));
                    return;
                }
            }
            _ = ping.tick() => {
                if let Err(error) = ws.send(protocol_message(protocol, ping_frame.clone())).await {
                    shared.mark_dropped(slot, format!("ping failed: {error}"));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(seq: u64, sent: u64) -> Vec<u8> {
        let mut out = Vec::new();
        Protocol::Json.write_invocation(
            &mut out,
            None,
            "Message",
            &[&payload::encode(seq, sent, 60)],
        );
        out
    }

    #[test]
    fn deliveries_count_only_while_measuring_and_record_latency() {
        let shared = Shared::new(Protocol::Json, 2);
        let mut last = None;
        let mut pending = Vec::new();
        assert!(shared.on_data(1, &mut pending, &delivery(0, 1_000), &mut last, 1_500));
        assert_eq!(shared.received_total.get(), 0, "not measuring yet");
        shared.measuring.set(true);
        let data = [
            delivery(1, 1_000),
            delivery(2, 2_000),
            b"{\"type\":6}\x1e{\"ty".to_vec(),
        ]
        .concat();
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
        let shared = Shared::new(Protocol::Json, 1);
        shared.measuring.set(true);
        let mut last = None;
        let data = [delivery(5, 1), delivery(5, 1), delivery(4, 1)].concat();
        assert!(shared.on_data(0, &mut Vec::new(), &data, &mut last, 10));
        assert_eq!(shared.out_of_order.get(), 2);
    }

    #[test]
    fn errors_and_closes_are_reported() {
        let shared = Shared::new(Protocol::Json, 1);
        let mut last = None;
        let mut pending = Vec::new();
        let error = b"{\"type\":3,\"invocationId\":\"1\",\"error\":\"Method does not exist.\"}\x1e";
        assert!(shared.on_data(0, &mut pending, error, &mut last, 1));
        assert!(!shared.on_data(
            0,
            &mut pending,
            b"{\"type\":7,\"error\":\"bye\"}\x1e",
            &mut last,
            1
        ));
        assert!(shared.on_data(0, &mut pending, b"not json\x1e", &mut last, 1));
        let errors = shared.errors.borrow().entries();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].0.contains("Method does not exist."));
    }
}
