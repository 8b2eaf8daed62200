//! The coordinating process: starts the workers (this binary re-executed with `worker`),
//! drives the phases of a scenario, runs the sender, samples the server, and builds the report.

use std::cell::Cell;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::cli::{Common, Traffic};
use crate::connect::{ConnectError, Target};
use crate::hist::{self, LatencySummary};
use crate::ipc::{Command, ConnectSummary, EchoParams, ErrorTally, Event, Expected, Progress, WorkerConfig, WorkerReport};
use crate::payload;
use crate::plan;
use crate::procstat::{self, ProcError};
use crate::report::{ClientResult, ConnectResult, Machine, RunConfig, RunReport, ServerResult, TrafficResult};
use crate::sender::{self, SendKind, SenderConfig};

/// What can stop a run before it produces a report.
#[derive(Debug, Error)]
pub enum RunError {
    /// The options do not make a runnable scenario.
    #[error("invalid options: {0}")]
    Options(String),
    /// A hub URL is unusable.
    #[error(transparent)]
    Url(#[from] ConnectError),
    /// A worker process could not be started or talked to.
    #[error("worker process: {0}")]
    Worker(String),
    /// The server process could not be sampled.
    #[error("server sampling: {0}")]
    Server(#[from] ProcError),
    /// The sender could not connect.
    #[error("the sender could not connect: {0}")]
    Sender(String),
}

/// What a scenario does after connecting.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Hold the connections; settle this long before reading RSS.
    Idle {
        /// Seconds.
        settle: f64,
    },
    /// Only the connect phase.
    Connect,
    /// A sender and receivers (broadcast, cross-node: `group_size` none; group: some).
    Send {
        /// Traffic options.
        traffic: Traffic,
        /// The sender's hub URL.
        sender_url: String,
        /// Members per group, for the group scenario.
        group_size: Option<usize>,
    },
    /// Every connection echoes.
    Echo {
        /// Calls per second overall (0 = closed loop).
        rate: f64,
        /// Echoed string length.
        size: usize,
    },
}

/// A scenario ready to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Its name, for the report.
    pub name: &'static str,
    /// Common options.
    pub common: Common,
    /// What it does.
    pub kind: Kind,
}

/// The running worker processes and what they reported.
struct Fleet {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    events: mpsc::UnboundedReceiver<(usize, Option<Event>)>,
    progress: Vec<Progress>,
    connected: Vec<Option<ConnectSummary>>,
    reports: Vec<Option<WorkerReport>>,
    started: Vec<bool>,
    exited: Vec<bool>,
}

impl Fleet {
    async fn spawn(configs: Vec<WorkerConfig>) -> Result<Self, RunError> {
        let exe = std::env::current_exe().map_err(|e| RunError::Worker(format!("cannot find this binary: {e}")))?;
        let (tx, events) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for config in &configs {
            let mut child = tokio::process::Command::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| RunError::Worker(format!("cannot start worker {}: {e}", config.index)))?;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            let stdout = child.stdout.take().expect("stdout is piped");
            let line = serde_json::to_string(config).expect("configs serialise");
            stdin.write_all(format!("{line}\n").as_bytes()).await.map_err(|e| RunError::Worker(format!("worker {}: {e}", config.index)))?;
            let tx = tx.clone();
            let index = config.index;
            tokio::task::spawn_local(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let event =
                        serde_json::from_str::<Event>(&line).unwrap_or_else(|e| Event::Fatal(format!("unreadable line {line:?}: {e}")));
                    if tx.send((index, Some(event))).is_err() {
                        return;
                    }
                }
                let _ = tx.send((index, None));
            });
            children.push(child);
            stdins.push(stdin);
        }
        let n = configs.len();
        Ok(Self {
            children,
            stdins,
            events,
            progress: vec![Progress::default(); n],
            connected: vec![None; n],
            reports: vec![None; n],
            started: vec![false; n],
            exited: vec![false; n],
        })
    }

    async fn send_all(&mut self, command: &Command) -> Result<(), RunError> {
        let line = format!("{}\n", serde_json::to_string(command).expect("commands serialise"));
        for (index, stdin) in self.stdins.iter_mut().enumerate() {
            stdin.write_all(line.as_bytes()).await.map_err(|e| RunError::Worker(format!("worker {index}: {e}")))?;
            stdin.flush().await.map_err(|e| RunError::Worker(format!("worker {index}: {e}")))?;
        }
        Ok(())
    }

    fn handle(&mut self, index: usize, event: Option<Event>) -> Result<(), RunError> {
        match event {
            Some(Event::Progress(progress)) => self.progress[index] = progress,
            Some(Event::Connected(summary)) => self.connected[index] = Some(summary),
            Some(Event::Started) => self.started[index] = true,
            Some(Event::Report(report)) => self.reports[index] = Some(report),
            Some(Event::Fatal(message)) => {
                return Err(RunError::Worker(format!("worker {index}: {message}")));
            }
            None => {
                self.exited[index] = true;
                if self.reports[index].is_none() {
                    return Err(RunError::Worker(format!("worker {index} exited before reporting")));
                }
            }
        }
        Ok(())
    }

    fn total(&self) -> Progress {
        self.progress.iter().fold(Progress::default(), |mut sum, p| {
            sum.open += p.open;
            sum.failed += p.failed;
            sum.dropped += p.dropped;
            sum.received += p.received;
            sum.sent += p.sent;
            sum
        })
    }

    async fn stop(mut self) {
        let _ = self.send_all(&Command::Stop).await;
        drop(std::mem::take(&mut self.stdins));
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}

/// Progress on stderr and server samples, once a second.
struct Monitor {
    pids: Vec<u32>,
    quiet: bool,
    start: Instant,
    tick: Interval,
    phase: &'static str,
    last_received: u64,
    last_at: Instant,
    last_cpu: Option<f64>,
    peak_rss_kb: u64,
    samples: Vec<(f64, u64, f64)>,
    sender_sent: Rc<Cell<u64>>,
}

impl Monitor {
    fn new(pids: Vec<u32>, quiet: bool) -> Self {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let now = Instant::now();
        Self {
            pids,
            quiet,
            start: now,
            tick,
            phase: "connect",
            last_received: 0,
            last_at: now,
            last_cpu: None,
            peak_rss_kb: 0,
            samples: Vec::new(),
            sender_sent: Rc::new(Cell::new(0)),
        }
    }

    fn sample(&mut self) -> Result<Option<procstat::Sample>, RunError> {
        let sample = procstat::read_all(&self.pids)?;
        if let Some(sample) = sample {
            self.peak_rss_kb = self.peak_rss_kb.max(sample.rss_kb);
            self.samples.push((self.start.elapsed().as_secs_f64(), sample.rss_kb, sample.cpu_seconds));
        }
        Ok(sample)
    }

    fn report(&mut self, fleet: &Fleet) -> Result<(), RunError> {
        let sample = self.sample()?;
        let now = Instant::now();
        let total = fleet.total();
        let elapsed = now.duration_since(self.last_at).as_secs_f64().max(1e-6);
        let rate = total.received.saturating_sub(self.last_received) as f64 / elapsed;
        let server = match sample {
            Some(sample) => {
                let cpu = self.last_cpu.map(|last| (sample.cpu_seconds - last) / elapsed * 100.0);
                self.last_cpu = Some(sample.cpu_seconds);
                format!(
                    " | server cpu {} rss {:.1} MB",
                    cpu.map(|c| format!("{c:.0}%")).unwrap_or_else(|| "-".into()),
                    sample.rss_kb as f64 / 1024.0
                )
            }
            None => String::new(),
        };
        self.last_received = total.received;
        self.last_at = now;
        if !self.quiet {
            eprintln!(
                "[{:6.1}s] {:<8} open {} failed {} dropped {} | sent {} | received {} ({:.0}/s){server}",
                self.start.elapsed().as_secs_f64(),
                self.phase,
                total.open,
                total.failed,
                total.dropped,
                self.sender_sent.get().max(total.sent),
                total.received,
                rate
            );
        }
        Ok(())
    }

    /// Waits for one worker event or one progress tick.
    async fn pump(&mut self, fleet: &mut Fleet) -> Result<(), RunError> {
        tokio::select! {
            event = fleet.events.recv() => match event {
                Some((index, event)) => fleet.handle(index, event),
                None => Err(RunError::Worker("all workers are gone".into())),
            },
            _ = self.tick.tick() => self.report(fleet),
        }
    }

    /// Pumps until `done` holds.
    async fn until(&mut self, fleet: &mut Fleet, done: impl Fn(&Fleet) -> bool) -> Result<(), RunError> {
        while !done(fleet) {
            self.pump(fleet).await?;
        }
        Ok(())
    }

    /// Pumps for `duration`.
    async fn for_duration(&mut self, fleet: &mut Fleet, duration: Duration) -> Result<(), RunError> {
        let deadline = Instant::now() + duration;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                result = self.pump(fleet) => result?,
            }
        }
    }
}

fn secs(value: f64, what: &str) -> Result<Duration, RunError> {
    Duration::try_from_secs_f64(value).map_err(|_| RunError::Options(format!("{what} must be a non-negative number of seconds")))
}

/// Runs a scenario to its report.
pub async fn run(spec: RunSpec) -> Result<RunReport, RunError> {
    let common = &spec.common;
    if common.connections == 0 {
        return Err(RunError::Options("--connections must be at least 1".into()));
    }
    for url in &common.urls {
        Target::parse(url)?;
    }
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let workers = if common.workers > 0 { common.workers } else { plan::worker_count(common.connections, common.max_per_worker, nproc) };
    if common.connections.div_ceil(workers) > common.max_per_worker {
        return Err(RunError::Options(format!(
            "{} connections over {workers} workers exceed --max-per-worker {}",
            common.connections, common.max_per_worker
        )));
    }
    let source_count =
        if common.source_addrs > 0 { common.source_addrs } else { plan::source_count(common.connections, common.urls.len()) };
    let sources = plan::loopback_sources(source_count);
    let group_size = match &spec.kind {
        Kind::Send { group_size: Some(0), .. } => return Err(RunError::Options("--group-size must be at least 1".into())),
        Kind::Send { group_size, .. } => *group_size,
        _ => None,
    };
    let connect_timeout = secs(common.connect_timeout, "--connect-timeout")?;
    let duration = secs(common.duration, "--duration")?;
    let drain_timeout = secs(common.drain_timeout, "--drain-timeout")?;
    let ping_interval = secs(common.ping_interval, "--ping-interval")?;
    if ping_interval.is_zero() {
        return Err(RunError::Options("--ping-interval must be above zero".into()));
    }
    let sender_target = match &spec.kind {
        Kind::Send { sender_url, .. } => Some(Target::parse(sender_url)?),
        _ => None,
    };

    let mut report = RunReport {
        scenario: spec.name.to_owned(),
        command: std::env::args().collect(),
        started_unix: payload::now_micros() / 1_000_000,
        machine: Machine::current(),
        config: RunConfig {
            connections: common.connections,
            urls: common.urls.clone(),
            sender_url: match &spec.kind {
                Kind::Send { sender_url, .. } => Some(sender_url.clone()),
                _ => None,
            },
            protocol: common.protocol.name().to_owned(),
            workers,
            sources: source_count,
            connect_rate: common.connect_rate,
            group_size,
            duration_s: common.duration,
            read_pause_us: common.read_pause_us,
            ..RunConfig::default()
        },
        ..RunReport::default()
    };
    if let Kind::Send { traffic, .. } = &spec.kind {
        report.config.messages = traffic.messages;
        report.config.rate = traffic.rate;
        report.config.frame_bytes = traffic.size;
    }
    if let Kind::Echo { rate, size } = &spec.kind {
        report.config.rate = *rate;
        report.config.frame_bytes = *size;
    }

    let mut monitor = Monitor::new(common.server_pids.clone(), common.quiet);
    let before = monitor.sample()?;

    let configs = plan::worker_ranges(common.connections, workers)
        .into_iter()
        .enumerate()
        .map(|(index, range)| WorkerConfig {
            index,
            first: range.start,
            end: range.end,
            urls: common.urls.clone(),
            sources: sources.clone(),
            group_size,
            protocol: common.protocol,
            skip_negotiation: common.skip_negotiation,
            connect_rate: common.connect_rate / workers as f64,
            connect_concurrency: common.connect_concurrency,
            connect_timeout_ms: connect_timeout.as_millis() as u64,
            ping_interval_ms: ping_interval.as_millis() as u64,
            read_buffer: common.read_buffer,
            read_pause_us: common.read_pause_us,
        })
        .collect();
    let mut fleet = Fleet::spawn(configs).await?;

    let outcome = drive(&spec, &mut fleet, &mut monitor, &mut report, sender_target, sources[0], before, duration, drain_timeout).await;
    fleet.stop().await;
    outcome?;
    report.judge();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    spec: &RunSpec,
    fleet: &mut Fleet,
    monitor: &mut Monitor,
    report: &mut RunReport,
    sender_target: Option<Target>,
    sender_source: std::net::Ipv4Addr,
    before: Option<procstat::Sample>,
    duration: Duration,
    drain_timeout: Duration,
) -> Result<(), RunError> {
    let common = &spec.common;
    monitor.until(fleet, |f| f.connected.iter().all(Option::is_some)).await?;
    let connected_sample = monitor.sample()?;
    report.connect = connect_result(fleet, common.connections as u64);
    if !common.quiet {
        eprintln!(
            "connected {} of {} in {:.2} s ({:.0}/s), {} failed",
            report.connect.connected, report.connect.requested, report.connect.seconds, report.connect.per_second, report.connect.failed
        );
    }

    let client_pids: Vec<u32> = fleet.children.iter().filter_map(Child::id).chain(std::iter::once(std::process::id())).collect();
    let mut client_go = None;
    let mut settled = connected_sample;
    let go_sample;
    let go_micros;
    let mut traffic = None;
    match &spec.kind {
        Kind::Connect => {
            go_sample = monitor.sample()?;
            client_go = procstat::read_all(&client_pids).ok().flatten();
            go_micros = payload::now_micros();
            drain_all(fleet, monitor, Expected::Nothing, Duration::ZERO).await?;
        }
        Kind::Idle { settle } => {
            monitor.phase = "settle";
            monitor.for_duration(fleet, secs(*settle, "--settle")?).await?;
            settled = monitor.sample()?;
            go_sample = settled;
            go_micros = payload::now_micros();
            monitor.phase = "hold";
            monitor.for_duration(fleet, duration).await?;
            drain_all(fleet, monitor, Expected::Nothing, Duration::ZERO).await?;
        }
        Kind::Echo { rate, size } => {
            let per_connection = if *rate > 0.0 { common.connections as f64 / rate } else { 0.0 };
            let echo = EchoParams { interval_micros: (per_connection * 1e6) as u64, payload_len: *size };
            go_sample = monitor.sample()?;
            client_go = procstat::read_all(&client_pids).ok().flatten();
            go_micros = payload::now_micros();
            fleet.send_all(&Command::Go { echo: Some(echo) }).await?;
            monitor.phase = "echo";
            monitor.for_duration(fleet, duration).await?;
            monitor.phase = "drain";
            drain_all(fleet, monitor, Expected::EchoReplies, drain_timeout).await?;
            let reports: Vec<_> = fleet.reports.iter().flatten().cloned().collect();
            let sent = reports.iter().map(|r| r.sent).sum();
            traffic = Some(traffic_result(&reports, sent, 0, &ErrorTally::default(), go_micros));
        }
        Kind::Send { traffic: options, group_size, .. } => {
            let target = sender_target.expect("send scenarios have a sender target");
            let groups = group_size.map(|size| plan::group_count(common.connections, size));
            let config = SenderConfig {
                target,
                source: sender_source,
                protocol: common.protocol,
                skip_negotiation: common.skip_negotiation,
                kind: groups.map(SendKind::Groups).unwrap_or(SendKind::All),
                messages: options.messages,
                rate: options.rate,
                duration,
                payload_len: payload::payload_len_for_frame(options.size),
                inflight: options.inflight,
                completion_timeout: drain_timeout,
            };
            go_sample = monitor.sample()?;
            client_go = procstat::read_all(&client_pids).ok().flatten();
            go_micros = payload::now_micros();
            fleet.send_all(&Command::Go { echo: None }).await?;
            // Every worker must count before the first message goes out, or it would look lost.
            monitor.until(fleet, |f| f.started.iter().all(|&s| s)).await?;
            monitor.phase = "send";
            let sent_counter = monitor.sender_sent.clone();
            let mut sending = tokio::task::spawn_local(sender::run(config, sent_counter));
            let result = loop {
                tokio::select! {
                    joined = &mut sending => break joined.map_err(|e| RunError::Worker(format!("sender task: {e}")))?,
                    pumped = monitor.pump(fleet) => pumped?,
                }
            };
            let result = result.map_err(|e| RunError::Sender(crate::connect::describe(&e)))?;
            let expected = match groups {
                Some(_) => Expected::Groups(result.per_group.clone()),
                None => Expected::All(result.completed),
            };
            monitor.phase = "drain";
            drain_all(fleet, monitor, expected, drain_timeout).await?;
            let reports: Vec<_> = fleet.reports.iter().flatten().cloned().collect();
            let send_errors = result.errors.total();
            let start = if result.first_sent_micros > 0 { result.first_sent_micros } else { go_micros };
            let mut result_traffic = traffic_result(&reports, result.attempted, send_errors, &result.errors, start);
            result_traffic.call_latency = Some(result.call_latency);
            if groups.is_none() {
                let receivers = report.connect.connected.saturating_sub(fleet.reports.iter().flatten().map(|r| r.dropped).sum());
                result_traffic.incomplete_messages = incomplete_messages(&reports, result.attempted, receivers);
            }
            traffic = Some(result_traffic);
        }
    }
    let end = monitor.sample()?;
    let client_end = procstat::read_all(&client_pids).ok().flatten();
    report.connect.dropped = fleet.reports.iter().flatten().map(|r| r.dropped).sum();
    let mut errors = ErrorTally::default();
    errors.merge(&report.connect.errors);
    for worker in fleet.reports.iter().flatten() {
        errors.merge(&worker.errors);
    }
    if traffic.is_none() && errors.total() > 0 {
        report.connect.errors = errors.entries();
    }
    report.traffic = traffic;
    if let (Some(go), Some(end)) = (client_go, client_end) {
        let run_seconds = (payload::now_micros().saturating_sub(go_micros)) as f64 / 1e6;
        let cpu_run_s = end.cpu_seconds - go.cpu_seconds;
        report.client = Some(ClientResult { cpu_run_s, cpu_run_percent: cpu_run_s / run_seconds.max(1e-6) * 100.0 });
    }
    if let (Some(before), Some(connected), Some(go), Some(end)) = (before, settled, go_sample, end) {
        let run_seconds = (payload::now_micros().saturating_sub(go_micros)) as f64 / 1e6;
        let cpu_run_s = end.cpu_seconds - go.cpu_seconds;
        let messages = report.traffic.as_ref().map(|t| t.received).filter(|&n| n > 0);
        report.server = Some(ServerResult {
            pids: common.server_pids.clone(),
            rss_before_kb: before.rss_kb,
            rss_connected_kb: connected.rss_kb,
            rss_end_kb: end.rss_kb,
            rss_peak_kb: monitor.peak_rss_kb,
            kb_per_connection: (connected.rss_kb as f64 - before.rss_kb as f64) / report.connect.connected.max(1) as f64,
            cpu_connect_s: connected_sample.map(|c| c.cpu_seconds - before.cpu_seconds).unwrap_or(0.0),
            cpu_run_s,
            cpu_run_percent: cpu_run_s / run_seconds.max(1e-6) * 100.0,
            cpu_us_per_message: messages.map(|n| cpu_run_s * 1e6 / n as f64),
            samples: std::mem::take(&mut monitor.samples),
        });
    }
    Ok(())
}

async fn drain_all(fleet: &mut Fleet, monitor: &mut Monitor, expected: Expected, timeout: Duration) -> Result<(), RunError> {
    fleet.send_all(&Command::Drain { expected, timeout_ms: timeout.as_millis() as u64 }).await?;
    monitor.until(fleet, |f| f.reports.iter().all(Option::is_some)).await
}

fn connect_result(fleet: &Fleet, requested: u64) -> ConnectResult {
    let mut latency = hist::new_latency();
    let mut errors = ErrorTally::default();
    let (mut connected, mut failed, mut first, mut last) = (0, 0, u64::MAX, 0);
    for summary in fleet.connected.iter().flatten() {
        connected += summary.connected;
        failed += summary.failed;
        summary.latency.merge_into(&mut latency);
        errors.merge(&summary.errors);
        first = first.min(summary.first_started_micros);
        last = last.max(summary.last_finished_micros);
    }
    let seconds = last.saturating_sub(first) as f64 / 1e6;
    ConnectResult {
        requested,
        connected,
        failed,
        dropped: 0,
        seconds,
        per_second: if seconds > 0.0 { connected as f64 / seconds } else { 0.0 },
        latency: LatencySummary::of(&latency),
        errors: errors.entries(),
    }
}

/// The first broadcast sequence numbers below `sent` that fewer than `receivers` got.
fn incomplete_messages(reports: &[WorkerReport], sent: u64, receivers: u64) -> Vec<(u64, u64)> {
    let tracked = sent.min(crate::conn::SEQ_TRACKING_LIMIT) as usize;
    let mut totals = vec![0u64; tracked];
    for report in reports {
        for (seq, &count) in report.seq_counts.iter().enumerate().take(tracked) {
            totals[seq] += u64::from(count);
        }
    }
    totals.iter().enumerate().filter(|&(_, &got)| got < receivers).take(20).map(|(seq, &got)| (seq as u64, got)).collect()
}

fn traffic_result(reports: &[WorkerReport], sent: u64, send_errors: u64, sender_errors: &ErrorTally, start_micros: u64) -> TrafficResult {
    let mut latency = hist::new_latency();
    let mut errors = sender_errors.clone();
    let mut result = TrafficResult { sent, send_errors, ..TrafficResult::default() };
    let mut last = 0;
    for report in reports {
        result.expected += report.expected;
        result.received += report.received;
        result.lost += report.lost;
        result.duplicates += report.duplicates;
        result.out_of_order += report.out_of_order;
        report.latency.merge_into(&mut latency);
        errors.merge(&report.errors);
        last = last.max(report.last_received_micros);
    }
    result.seconds = last.saturating_sub(start_micros) as f64 / 1e6;
    result.per_second = if result.seconds > 0.0 { result.received as f64 / result.seconds } else { 0.0 };
    result.latency = LatencySummary::of(&latency);
    result.errors = errors.entries();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_sums_workers_and_measures_from_the_first_send() {
        let mut one = hist::new_latency();
        hist::record(&mut one, 1000);
        let worker = |received, lost, last| WorkerReport {
            expected: received + lost,
            received,
            lost,
            latency: crate::hist::HistData::from_histogram(&one),
            last_received_micros: last,
            ..WorkerReport::default()
        };
        let result = traffic_result(&[worker(100, 0, 2_000_000), worker(50, 2, 3_000_000)], 10, 0, &ErrorTally::default(), 1_000_000);
        assert_eq!(result.received, 150);
        assert_eq!(result.lost, 2);
        assert_eq!(result.expected, 152);
        assert!((result.seconds - 2.0).abs() < 1e-9);
        assert!((result.per_second - 75.0).abs() < 1e-9);
        assert_eq!(result.latency.count, 2);
    }

    #[test]
    fn incomplete_messages_are_named() {
        let worker = |counts: Vec<u32>| WorkerReport { seq_counts: counts, ..WorkerReport::default() };
        let reports = [worker(vec![2, 2, 1]), worker(vec![3, 2, 3, 3])];
        assert_eq!(incomplete_messages(&reports, 4, 5), vec![(1, 4), (2, 4), (3, 3)]);
        assert_eq!(incomplete_messages(&reports, 1, 5), vec![]);
    }
}
