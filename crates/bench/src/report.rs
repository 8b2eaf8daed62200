//! The result of a run: the JSON document, the table printed at the end, and the verdict.

use std::fmt::Write as _;

use serde::Serialize;

use crate::hist::LatencySummary;

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// `MemTotal` from /proc/meminfo, KiB.
    pub mem_total_kb: u64,
    /// `uname -r`-like kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the current machine.
    pub fn current() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_default(),
            mem_total_kb: field(&meminfo, "MemTotal").and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok())).unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        }
    }
}

/// The value after `name:` on the first line that starts with `name`.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find(|line| line.starts_with(name)).and_then(|line| line.split_once(':')).map(|(_, value)| value.trim().to_owned())
}

/// Settings that shape the figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunConfig {
    /// Receiving connections requested.
    pub connections: usize,
    /// Hub URLs the connections spread over.
    pub urls: Vec<String>,
    /// The sender's hub URL, if there is a sender.
    pub sender_url: Option<String>,
    /// `json` or `messagepack`.
    pub protocol: String,
    /// Worker processes.
    pub workers: usize,
    /// Source addresses.
    pub sources: usize,
    /// Requested connection rate, per second (0 = unlimited).
    pub connect_rate: f64,
    /// Messages requested (0 = bounded by duration).
    pub messages: u64,
    /// Requested send rate, per second (0 = unlimited).
    pub rate: f64,
    /// JSON frame size of one delivery, bytes.
    pub frame_bytes: usize,
    /// Members per group.
    pub group_size: Option<usize>,
    /// Bound of the measured phase, seconds.
    pub duration_s: f64,
    /// Workers' pause between rounds of reads while measuring, µs (0: woken per packet).
    pub read_pause_us: u64,
}

/// The connect phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ConnectResult {
    /// Connections requested.
    pub requested: u64,
    /// Connections established.
    pub connected: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Established connections lost later.
    pub dropped: u64,
    /// From the first attempt to the last completion, seconds.
    pub seconds: f64,
    /// Established connections per second over that span.
    pub per_second: f64,
    /// Time per connection: negotiate + WebSocket + handshake (+ group join).
    pub latency: LatencySummary,
    /// Error texts with counts.
    pub errors: Vec<(String, u64)>,
}

/// The measured message phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TrafficResult {
    /// Calls the sender (or the echo connections) made.
    pub sent: u64,
    /// Calls the server refused or never completed.
    pub send_errors: u64,
    /// Deliveries or replies that should have arrived.
    pub expected: u64,
    /// That did arrive (once each).
    pub received: u64,
    /// That never arrived.
    pub lost: u64,
    /// Arrived more often than expected.
    pub duplicates: u64,
    /// Arrived with a sequence number lower than one before.
    pub out_of_order: u64,
    /// From the first send to the last delivery, seconds.
    pub seconds: f64,
    /// Deliveries (or replies) per second over that span.
    pub per_second: f64,
    /// Time from the sender's timestamp to arrival.
    pub latency: LatencySummary,
    /// Sender scenarios: time from a call to its completion (a call completes once the server
    /// has queued its message for every receiver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_latency: Option<LatencySummary>,
    /// Error texts with counts.
    pub errors: Vec<(String, u64)>,
    /// For broadcasts: the first sequence numbers that did not reach every receiver, with how
    /// many receivers got them.
    pub incomplete_messages: Vec<(u64, u64)>,
}

/// The server processes, read from /proc.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerResult {
    /// The pids sampled (summed).
    pub pids: Vec<u32>,
    /// RSS before any bench connection, KiB.
    pub rss_before_kb: u64,
    /// RSS once every connection was open (after the settle time for idle), KiB.
    pub rss_connected_kb: u64,
    /// RSS at the end, KiB.
    pub rss_end_kb: u64,
    /// Highest RSS seen, KiB.
    pub rss_peak_kb: u64,
    /// (connected − before) / connections, KiB.
    pub kb_per_connection: f64,
    /// CPU seconds during the connect phase.
    pub cpu_connect_s: f64,
    /// CPU seconds during the measured phase.
    pub cpu_run_s: f64,
    /// CPU of the measured phase as a percentage of one core.
    pub cpu_run_percent: f64,
    /// Server CPU µs per delivery (or reply) in the measured phase.
    pub cpu_us_per_message: Option<f64>,
    /// Readings once a second: seconds since start, RSS KiB, cumulative CPU seconds.
    pub samples: Vec<(f64, u64, f64)>,
}

/// The load generator's own CPU (all its processes) during the measured phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ClientResult {
    /// CPU seconds.
    pub cpu_run_s: f64,
    /// As a percentage of one core.
    pub cpu_run_percent: f64,
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunReport {
    /// The scenario name.
    pub scenario: String,
    /// The command line.
    pub command: Vec<String>,
    /// Unix seconds at start.
    pub started_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// The settings.
    pub config: RunConfig,
    /// Connect phase.
    pub connect: ConnectResult,
    /// Message phase, when the scenario has one.
    pub traffic: Option<TrafficResult>,
    /// Server readings, with `--server-pid`.
    pub server: Option<ServerResult>,
    /// The load generator's CPU.
    pub client: Option<ClientResult>,
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
    /// No failures.
    pub passed: bool,
}

impl RunReport {
    /// Fills `failures` and `passed` from the counts.
    pub fn judge(&mut self) {
        let mut failures = Vec::new();
        let c = &self.connect;
        if c.failed > 0 {
            failures.push(format!("{} connection attempts failed", c.failed));
        }
        if c.dropped > 0 {
            failures.push(format!("{} connections were dropped", c.dropped));
        }
        if c.connected == 0 && c.requested > 0 {
            failures.push("no connection was established".into());
        }
        if let Some(t) = &self.traffic {
            if t.lost > 0 {
                failures.push(format!("{} of {} messages lost", t.lost, t.expected));
            }
            if t.send_errors > 0 {
                failures.push(format!("{} sends failed", t.send_errors));
            }
            if t.sent == 0 {
                failures.push("nothing was sent".into());
            }
        }
        self.failures.extend(failures);
        self.passed = self.failures.is_empty();
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.connect;
        let _ = writeln!(out, "\n== diquis-bench {} ==", self.scenario);
        let _ = writeln!(
            out,
            "machine      {} x {}, {:.1} GiB",
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.mem_total_kb as f64 / 1024.0 / 1024.0
        );
        let _ = writeln!(
            out,
            "setup        {} connections over {} node(s), {} worker(s), {} source address(es), {}{}",
            self.config.connections,
            self.config.urls.len(),
            self.config.workers,
            self.config.sources,
            self.config.protocol,
            match self.config.read_pause_us {
                0 => String::new(),
                pause => format!(", reads paced every {pause} µs"),
            }
        );
        let _ = writeln!(
            out,
            "connect      {}/{} ok, {} failed, {} dropped; {:.2} s = {:.0} conn/s; latency ms p50 {:.2} p99 {:.2} max {:.2}",
            c.connected, c.requested, c.failed, c.dropped, c.seconds, c.per_second, c.latency.p50_ms, c.latency.p99_ms, c.latency.max_ms
        );
        for (text, count) in &c.errors {
            let _ = writeln!(out, "  connect error x{count}: {text}");
        }
        if let Some(t) = &self.traffic {
            let _ = writeln!(
                out,
                "messages     sent {} ({} errors); expected {}, received {}, lost {}, duplicates {}, out of order {}",
                t.sent, t.send_errors, t.expected, t.received, t.lost, t.duplicates, t.out_of_order
            );
            let _ = writeln!(out, "throughput   {:.0} /s over {:.2} s", t.per_second, t.seconds);
            let l = &t.latency;
            let _ = writeln!(
                out,
                "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}  (n={})",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms, l.count
            );
            if let Some(c) = &t.call_latency {
                let _ = writeln!(
                    out,
                    "calls ms     p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (sent to completion, n={})",
                    c.p50_ms, c.p90_ms, c.p99_ms, c.max_ms, c.count
                );
            }
            for (text, count) in &t.errors {
                let _ = writeln!(out, "  error x{count}: {text}");
            }
            if !t.incomplete_messages.is_empty() {
                let list: Vec<String> = t.incomplete_messages.iter().map(|(seq, got)| format!("#{seq} ({got})")).collect();
                let _ = writeln!(out, "  messages not delivered to every receiver (receivers that got them): {}", list.join(", "));
            }
        }
        if let Some(s) = &self.server {
            let mb = |kb: u64| kb as f64 / 1024.0;
            let _ = writeln!(
                out,
                "server rss   before {:.1} MB, connected {:.1} MB, end {:.1} MB, peak {:.1} MB; {:.2} KB per connection",
                mb(s.rss_before_kb),
                mb(s.rss_connected_kb),
                mb(s.rss_end_kb),
                mb(s.rss_peak_kb),
                s.kb_per_connection
            );
            let per = s.cpu_us_per_message.map(|v| format!("; {v:.2} µs per message")).unwrap_or_default();
            let _ = writeln!(
                out,
                "server cpu   connect {:.2} s; run {:.2} s = {:.0}% of a core{per}",
                s.cpu_connect_s, s.cpu_run_s, s.cpu_run_percent
            );
        }
        if let Some(c) = &self.client {
            let _ = writeln!(out, "bench cpu    run {:.2} s = {:.0}% of a core", c.cpu_run_s, c.cpu_run_percent);
        }
        let _ =
            writeln!(out, "result       {}", if self.passed { "PASS".to_owned() } else { format!("FAIL: {}", self.failures.join("; ")) });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_failed_connections_and_errors_fail_the_run() {
        let mut report = RunReport {
            connect: ConnectResult { requested: 10, connected: 10, ..Default::default() },
            traffic: Some(TrafficResult { sent: 5, expected: 50, received: 50, ..Default::default() }),
            ..Default::default()
        };
        report.judge();
        assert!(report.passed, "{:?}", report.failures);
        for broken in [
            |r: &mut RunReport| r.connect.failed = 1,
            |r: &mut RunReport| r.connect.dropped = 1,
            |r: &mut RunReport| r.traffic.as_mut().unwrap().lost = 1,
            |r: &mut RunReport| r.traffic.as_mut().unwrap().send_errors = 1,
            |r: &mut RunReport| r.traffic.as_mut().unwrap().sent = 0,
        ] {
            let mut bad = report.clone();
            bad.failures.clear();
            broken(&mut bad);
            bad.judge();
            assert!(!bad.passed);
            assert!(bad.table().contains("FAIL"));
        }
    }

    #[test]
    fn call_round_trips_are_shown_and_written_only_for_sender_scenarios() {
        let mut traffic = TrafficResult { sent: 3, expected: 3, received: 3, ..Default::default() };
        let mut report = RunReport { traffic: Some(traffic.clone()), ..Default::default() };
        assert!(!report.table().contains("calls ms"));
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["traffic"].get("call_latency").is_none());

        let mut histogram = crate::hist::new_latency();
        for micros in [1_000, 2_000, 40_000] {
            crate::hist::record(&mut histogram, micros);
        }
        traffic.call_latency = Some(LatencySummary::of(&histogram));
        report.traffic = Some(traffic);
        let table = report.table();
        let line = table.lines().find(|line| line.starts_with("calls ms")).expect(&table);
        assert!(line.contains("max 40."), "{line}");
        assert!(line.contains("n=3"), "{line}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["traffic"]["call_latency"]["count"], 3);
    }

    #[test]
    fn machine_fields_are_read() {
        assert_eq!(field("model name\t: Intel Xeon\nflags: x", "model name").as_deref(), Some("Intel Xeon"));
        let machine = Machine::current();
        assert!(machine.nproc >= 1);
        assert!(machine.mem_total_kb > 0);
    }
}
