//! The stateful-reconnect state of one connection (protocol reference §5.3): outgoing numbered
//! messages kept until acknowledged, incoming numbering with duplicate detection, and the
//! `Sequence` + replay after a new socket takes over.
//!
//! Allocated only for connections that negotiated stateful reconnect with handshake version 2;
//! every other connection pays one empty pointer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Outgoing half: what was sent and not yet acknowledged.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The sequence id the next numbered message gets (starts at 1, never reset).
    pub(crate) next_id: u64,
    /// Unacknowledged frames with their ids, oldest first.
    pub(crate) frames: VecDeque<(u64, Bytes)>,
    /// Sum of the frames' lengths.
    pub(crate) bytes: usize,
}

/// Per-connection stateful-reconnect state.
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    /// Byte limit of unacknowledged frames before awaiting senders wait.
    pub(crate) limit: usize,
    /// Held while a frame is numbered *and* queued on the transport, so that wire order equals
    /// numbering order.
    pub(crate) outgoing: Mutex<Outgoing>,
    /// Woken when an Ack frees space.
    pub(crate) space: Notify,
    /// Id of the last numbered message seen from the client (duplicates included).
    current_received: AtomicU64,
    /// Highest numbered message processed (what we acknowledge).
    latest_received: AtomicU64,
    /// The last id sent in an Ack.
    last_ack_sent: AtomicU64,
}

/// What to do with an incoming numbered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// New: process it.
    Process,
    /// Already processed before a reconnect: drop it.
    Duplicate,
}

/// `Sequence ID greater than amount of messages we've received.`
pub(crate) const SEQUENCE_TOO_HIGH: &str = "Sequence ID greater than amount of messages we've received.";

impl ReplayBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            outgoing: Mutex::new(Outgoing { next_id: 1, frames: VecDeque::new(), bytes: 0 }),
            space: Notify::new(),
            current_received: AtomicU64::new(0),
            latest_received: AtomicU64::new(0),
            last_ack_sent: AtomicU64::new(0),
        }
    }

    /// Whether the buffer is at or over its limit (awaiting senders should wait).
    pub(crate) fn is_full(&self) -> bool {
        self.outgoing.lock().bytes >= self.limit
    }

    /// The client acknowledged every message up to `sequence_id`.
    pub(crate) fn ack(&self, sequence_id: u64) {
        let mut outgoing = self.outgoing.lock();
        while let Some((id, frame)) = outgoing.frames.front() {
            if *id > sequence_id {
                break;
            }
            outgoing.bytes -= frame.len();
            outgoing.frames.pop_front();
        }
        if outgoing.frames.is_empty() {
            // Release the deque's memory once everything is acknowledged.
            outgoing.frames = VecDeque::new();
        }
        drop(outgoing);
        self.space.notify_waiters();
    }

    /// Counts an incoming numbered message (Invocation, StreamItem, Completion,
    /// StreamInvocation, CancelInvocation).
    pub(crate) fn on_incoming(&self) -> Incoming {
        let id = self.current_received.fetch_add(1, Ordering::AcqRel) + 1;
        if id <= self.latest_received.load(Ordering::Acquire) {
            Incoming::Duplicate
        } else {
            self.latest_received.store(id, Ordering::Release);
            Incoming::Process
        }
    }

    /// The client's `Sequence{sequence_id}` after a reconnect: its next message has this id.
    pub(crate) fn on_sequence(&self, sequence_id: u64) -> Result<(), &'static str> {
        let latest = self.latest_received.load(Ordering::Acquire);
        if sequence_id > latest + 1 {
            return Err(SEQUENCE_TOO_HIGH);
        }
        self.current_received.store(sequence_id.saturating_sub(1), Ordering::Release);
        Ok(())
    }

    /// The id to acknowledge, when it changed since the last Ack.
    pub(crate) fn ack_due(&self) -> Option<u64> {
        let latest = self.latest_received.load(Ordering::Acquire);
        let sent = self.last_ack_sent.load(Ordering::Acquire);
        if latest > sent {
            self.last_ack_sent.store(latest, Ordering::Release);
            Some(latest)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_after_sequence_are_dropped() {
        let buffer = ReplayBuffer::new(100);
        assert_eq!(buffer.on_incoming(), Incoming::Process); // 1
        assert_eq!(buffer.on_incoming(), Incoming::Process); // 2
        // The client did not see our ack of 2 and resends from 2.
        buffer.on_sequence(2).unwrap();
        assert_eq!(buffer.on_incoming(), Incoming::Duplicate); // 2 again
        assert_eq!(buffer.on_incoming(), Incoming::Process); // 3
        assert_eq!(buffer.on_sequence(5), Err(SEQUENCE_TOO_HIGH));
    }

    #[test]
    fn acks_free_space() {
        let buffer = ReplayBuffer::new(10);
        {
            let mut out = buffer.outgoing.lock();
            for id in 1..=3 {
                out.frames.push_back((id, Bytes::from_static(b"12345")));
                out.bytes += 5;
            }
        }
        assert!(buffer.is_full());
        buffer.ack(2);
        assert!(!buffer.is_full());
        assert_eq!(buffer.outgoing.lock().frames.front().map(|f| f.0), Some(3));
    }

    #[test]
    fn ack_due_only_when_changed() {
        let buffer = ReplayBuffer::new(10);
        assert_eq!(buffer.ack_due(), None);
        buffer.on_incoming();
        assert_eq!(buffer.ack_due(), Some(1));
        assert_eq!(buffer.ack_due(), None);
    }
}
