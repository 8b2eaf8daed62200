//! Messages between the coordinating process and its worker processes: one JSON object per
//! line, commands on the worker's stdin, events on its stdout.

use serde::{Deserialize, Serialize};

use crate::frames::Protocol;
use crate::hist::HistData;

/// Everything a worker needs to open its share of the connections (its first stdin line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerConfig {
    /// The worker's number, for messages.
    pub index: usize,
    /// The global connection indices this worker opens.
    pub first: usize,
    /// One past the last global index.
    pub end: usize,
    /// Hub URLs (`http://host:port/path`), one per node.
    pub urls: Vec<String>,
    /// Source addresses to bind before connecting.
    pub sources: Vec<std::net::Ipv4Addr>,
    /// Members per group; each connection joins its group after the handshake.
    pub group_size: Option<usize>,
    /// The hub protocol.
    pub protocol: Protocol,
    /// Connect straight to the WebSocket without negotiating.
    pub skip_negotiation: bool,
    /// New connections per second for this worker; 0 = as fast as `connect_concurrency` allows.
    pub connect_rate: f64,
    /// Connection attempts in flight at once.
    pub connect_concurrency: usize,
    /// Give up on one connection attempt after this long.
    pub connect_timeout_ms: u64,
    /// Send a SignalR ping this often, so the server's client timeout never fires.
    pub ping_interval_ms: u64,
    /// The read buffer the worker's connections share, bytes.
    pub read_buffer: usize,
    /// Pause between rounds of reads while measuring, microseconds (0: none); see the CLI.
    #[serde(default)]
    pub read_pause_us: u64,
}

/// What the coordinator tells workers after they are connected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// Start the measured phase; `echo` makes every connection send Echo invocations.
    Go {
        /// Echo traffic, for the echo scenario.
        echo: Option<EchoParams>,
    },
    /// Stop sending; wait until every connection got what it should, or the timeout.
    Drain {
        /// What each connection should have received.
        expected: Expected,
        /// How long to wait for stragglers.
        timeout_ms: u64,
    },
    /// Close everything and exit.
    Stop,
}

/// Echo traffic per connection.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct EchoParams {
    /// Time between two sends of one connection, µs; 0 = the next as soon as the reply is in.
    pub interval_micros: u64,
    /// Payload length, bytes.
    pub payload_len: usize,
}

/// What each connection should have received by the end of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Expected {
    /// Nothing (idle).
    Nothing,
    /// Every connection: this many broadcasts.
    All(u64),
    /// Connections of group `g`: `counts[g]` messages.
    Groups(Vec<u64>),
    /// One reply per Echo the connection sent.
    EchoReplies,
}

/// What a worker reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Event {
    /// Once a second.
    Progress(Progress),
    /// Every connection attempt has finished.
    Connected(ConnectSummary),
    /// The worker counts deliveries from now on (the answer to `Go`).
    Started,
    /// The drain is over.
    Report(WorkerReport),
    /// The worker cannot go on.
    Fatal(String),
}

/// Running counters of one worker.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Progress {
    /// Connections open now.
    pub open: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Connections lost after they were established.
    pub dropped: u64,
    /// Messages received (deliveries or echo replies).
    pub received: u64,
    /// Echo invocations sent.
    pub sent: u64,
}

/// The result of the connect phase of one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnectSummary {
    /// Established connections.
    pub connected: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Distinct error texts with their counts (at most a few).
    pub errors: Vec<(String, u64)>,
    /// Time from starting an attempt to the handshake response (and group join), µs.
    pub latency: HistData,
    /// When the first attempt started, µs since the epoch.
    pub first_started_micros: u64,
    /// When the last attempt finished, µs since the epoch.
    pub last_finished_micros: u64,
}

/// The result of the measured phase of one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerReport {
    /// Messages that should have arrived.
    pub expected: u64,
    /// Messages that arrived (each counted once).
    pub received: u64,
    /// Expected messages that never arrived.
    pub lost: u64,
    /// Messages that arrived twice, or more than expected.
    pub duplicates: u64,
    /// Deliveries whose sequence number went backwards.
    pub out_of_order: u64,
    /// Connections lost during the run.
    pub dropped: u64,
    /// Echo invocations sent.
    pub sent: u64,
    /// Errors seen during the run (completions with errors, closes), with counts.
    pub errors: Vec<(String, u64)>,
    /// Latency of each delivery, µs.
    pub latency: HistData,
    /// First delivery, µs since the epoch (0 if none).
    pub first_received_micros: u64,
    /// Last delivery, µs since the epoch (0 if none).
    pub last_received_micros: u64,
    /// Deliveries per sequence number (index), for naming lost messages.
    pub seq_counts: Vec<u32>,
}

/// Counts distinct error texts, keeping at most `limit` of them.
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    entries: Vec<(String, u64)>,
}

impl ErrorTally {
    /// Distinct texts kept; further new texts are counted under "other errors".
    const LIMIT: usize = 8;

    /// Counts one occurrence of `text`.
    pub fn add(&mut self, text: impl Into<String>) {
        let text = text.into();
        if let Some(entry) = self.entries.iter_mut().find(|(t, _)| *t == text) {
            entry.1 += 1;
        } else if self.entries.len() < Self::LIMIT {
            self.entries.push((text, 1));
        } else {
            self.add_other();
        }
    }

    fn add_other(&mut self) {
        const OTHER: &str = "(other errors)";
        match self.entries.iter_mut().find(|(t, _)| t == OTHER) {
            Some(entry) => entry.1 += 1,
            None => {
                if let Some(last) = self.entries.last_mut() {
                    // Replace the last distinct text to make room for the catch-all.
                    *last = (OTHER.to_owned(), last.1 + 1);
                }
            }
        }
    }

    /// Adds counted entries from another tally.
    pub fn merge(&mut self, entries: &[(String, u64)]) {
        for (text, count) in entries {
            for _ in 0..*count {
                self.add(text.clone());
            }
        }
    }

    /// The entries.
    pub fn entries(&self) -> Vec<(String, u64)> {
        self.entries.clone()
    }

    /// Total occurrences.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_events_survive_a_line_of_json() {
        let command = Command::Drain { expected: Expected::Groups(vec![3, 2]), timeout_ms: 5 };
        let line = serde_json::to_string(&command).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Command>(&line).unwrap(), command);
        let event = Event::Progress(Progress { open: 1, failed: 2, dropped: 3, received: 4, sent: 5 });
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
    }

    #[test]
    fn error_tally_counts_and_caps_distinct_texts() {
        let mut tally = ErrorTally::default();
        tally.add("a");
        tally.add("a");
        for i in 0..20 {
            tally.add(format!("e{i}"));
        }
        assert_eq!(tally.total(), 22);
        assert_eq!(tally.entries().len(), ErrorTally::LIMIT);
        assert_eq!(tally.entries()[0], ("a".to_owned(), 2));
        let mut merged = ErrorTally::default();
        merged.merge(&tally.entries());
        assert_eq!(merged.total(), 22);
    }
}
