//! A worker process: opens its share of the connections, then follows the coordinator's
//! commands (stdin) and reports events (stdout), one JSON object per line.

use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;
use tokio::task::LocalSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::conn::{self, Phase, Shared};
use crate::connect::{ConnectError, Connector, Target};
use crate::frames::{Incoming, Protocol};
use crate::hist::{self, HistData};
use crate::ipc::{Command, ConnectSummary, ErrorTally, Event, Expected, Progress, WorkerConfig, WorkerReport};
use crate::payload;
use crate::plan::Layout;
use crate::ws::{WsError, WsStream};

/// Writes one event line to stdout.
fn emit(event: &Event) {
    let line = serde_json::to_string(event).expect("events serialise");
    let mut stdout = std::io::stdout().lock();
    // The coordinator reads every line; if it is gone there is nobody to report to.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Runs a worker on a single-threaded runtime; returns the process exit code.
pub fn main() -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            emit(&Event::Fatal(format!("cannot start a runtime: {error}")));
            return 2;
        }
    };
    let local = LocalSet::new();
    match local.block_on(&runtime, run()) {
        Ok(()) => 0,
        Err(message) => {
            emit(&Event::Fatal(message));
            2
        }
    }
}

/// While measuring, pauses the worker's thread for `pause` once per round of its ready tasks.
///
/// Blocking the thread is the point: the runtime is never idle while this task is ready, so it
/// checks its sockets without sleeping in `epoll_wait`, once per round, and reads whatever
/// arrived during the pause, instead of being woken for every packet (`--read-pause-us`).
fn spawn_read_pacer(shared: Rc<Shared>, pause: Duration) {
    tokio::task::spawn_local(async move {
        while shared.measuring.get() {
            std::thread::sleep(pause);
            tokio::task::yield_now().await;
        }
    });
}

async fn run() -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines.next_line().await.map_err(|e| format!("reading the config: {e}"))?;
    let config: WorkerConfig = serde_json::from_str(first.as_deref().unwrap_or("")).map_err(|e| format!("bad worker config: {e}"))?;
    let targets = config.urls.iter().map(|u| Target::parse(u)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let connector = Rc::new(Connector::new(config.protocol, config.skip_negotiation, &config.sources).map_err(|e| e.to_string())?);
    let count = config.end.saturating_sub(config.first);
    let shared = Rc::new(Shared::new(config.protocol, count, config.read_buffer));
    let connect_done = Rc::new(ConnectTracker::default());

    let progress_shared = shared.clone();
    let progress_connect = connect_done.clone();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            emit(&Event::Progress(progress(&progress_shared, &progress_connect)));
        }
    });

    tokio::task::spawn_local(conn::ping_all(shared.clone(), Duration::from_millis(config.ping_interval_ms)));

    let connecting = tokio::task::spawn_local(open_all(config.clone(), targets, connector, shared.clone(), connect_done.clone()));

    let mut connected_reported = false;
    let mut connecting = Some(connecting);
    loop {
        tokio::select! {
            summary = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                let summary = summary.map_err(|e| format!("connect phase failed: {e}"))?;
                emit(&Event::Connected(summary));
                connected_reported = true;
            }
            line = lines.next_line() => {
                let line = line.map_err(|e| format!("reading a command: {e}"))?;
                let Some(line) = line else { break };
                let command: Command = serde_json::from_str(&line).map_err(|e| format!("bad command {line:?}: {e}"))?;
                match command {
                    Command::Go { echo } => {
                        shared.measuring.set(true);
                        if config.read_pause_us > 0 {
                            spawn_read_pacer(shared.clone(), Duration::from_micros(config.read_pause_us));
                        }
                        shared.set_phase(match echo { Some(params) => Phase::Echo(params), None => Phase::Hold });
                        emit(&Event::Started);
                    }
                    Command::Drain { expected, timeout_ms } => {
                        shared.set_phase(Phase::Drain);
                        let report = drain(&config, &shared, &expected, Duration::from_millis(timeout_ms)).await;
                        emit(&Event::Report(report));
                    }
                    Command::Stop => break,
                }
            }
        }
    }
    if !connected_reported {
        // Stopped before connecting finished: the coordinator is gone or gave up.
        return Ok(());
    }
    shared.set_phase(Phase::Stop);
    // Give the connections a moment to send their close frames, then leave.
    let deadline = Instant::now() + Duration::from_secs(2);
    while shared.slots.iter().any(|s| s.open.get()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Counts finished connection attempts.
#[derive(Debug, Default)]
struct ConnectTracker {
    failed: std::cell::Cell<u64>,
}

fn progress(shared: &Shared, connect: &ConnectTracker) -> Progress {
    Progress {
        open: shared.slots.iter().filter(|s| s.open.get()).count() as u64,
        failed: connect.failed.get(),
        dropped: shared.dropped.get(),
        received: shared.received_total.get(),
        sent: shared.sent_total.get(),
    }
}

/// Opens every connection of this worker at the configured pace and concurrency, starting
/// each connection's task as soon as it is up.
async fn open_all(
    config: WorkerConfig,
    targets: Vec<Target>,
    connector: Rc<Connector>,
    shared: Rc<Shared>,
    tracker: Rc<ConnectTracker>,
) -> ConnectSummary {
    let layout = Layout { urls: targets.len(), sources: config.sources.len(), group_size: config.group_size };
    let targets = Rc::new(targets);
    let permits = std::sync::Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let summary = Rc::new(std::cell::RefCell::new((hist::new_latency(), ErrorTally::default(), 0u64, 0u64)));
    let started = payload::now_micros();
    let mut pace = (config.connect_rate > 0.0).then(|| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / config.connect_rate));
        interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
        interval
    });
    let mut attempts = Vec::with_capacity(config.end - config.first);
    for global in config.first..config.end {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let slot = global - config.first;
        let target_index = layout.url_of(global);
        let source = config.sources[layout.source_of(global)];
        let group = layout.group_of(global);
        let (targets, connector, shared, summary, tracker) =
            (targets.clone(), connector.clone(), shared.clone(), summary.clone(), tracker.clone());
        let timeout = Duration::from_millis(config.connect_timeout_ms);
        let protocol = config.protocol;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        attempts.push(done_rx);
        tokio::task::spawn_local(async move {
            let began = Instant::now();
            let attempt = async {
                let (mut ws, leftover) = connector.connect(&targets[target_index], source).await?;
                let leftover = match group {
                    Some(group) => join_group(&mut ws, protocol, group, leftover).await?,
                    None => leftover,
                };
                Ok::<_, ConnectError>((ws, leftover))
            };
            let outcome = match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result.map_err(|e| crate::connect::describe(&e)),
                Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
            };
            drop(permit);
            {
                let mut summary = summary.borrow_mut();
                match &outcome {
                    Ok(_) => {
                        hist::record(&mut summary.0, began.elapsed().as_micros() as u64);
                        summary.2 += 1;
                    }
                    Err(error) => {
                        summary.1.add(error.clone());
                        summary.3 += 1;
                        tracker.failed.set(tracker.failed.get() + 1);
                    }
                }
            }
            if let Ok((ws, leftover)) = outcome {
                // A task of its own, so the connection's future holds only what it needs
                // while it runs, not the state of the connect attempt.
                shared.slots[slot].open.set(true);
                tokio::task::spawn_local(conn::run(shared, slot, ws, leftover));
            }
            let _ = done_tx.send(());
        });
    }
    for attempt in attempts {
        let _ = attempt.await;
    }
    let finished = payload::now_micros();
    let summary = summary.borrow();
    ConnectSummary {
        connected: summary.2,
        failed: summary.3,
        errors: summary.1.entries(),
        latency: HistData::from_histogram(&summary.0),
        first_started_micros: started,
        last_finished_micros: finished,
    }
}

/// Sends `JoinGroup("g<group>")` and waits for its completion; returns bytes that arrived
/// after it.
async fn join_group(ws: &mut WsStream, protocol: Protocol, group: usize, mut buf: Vec<u8>) -> Result<Vec<u8>, ConnectError> {
    let mut frame = Vec::new();
    protocol.write_invocation(&mut frame, Some("join"), "JoinGroup", &[&group_name(group)]);
    ws.send(&frame).await.map_err(WsError::from)?;
    let mut failed = None;
    loop {
        let mut outcome = None;
        let used = protocol.split_frames(&buf, |body| {
            if outcome.is_none()
                && let Ok(Incoming::Completion { invocation_id, error }) = protocol.decode(body)
                && invocation_id == "join"
            {
                outcome = Some(error);
            }
        })?;
        if let Some(error) = outcome {
            return match error {
                Some(error) => Err(ConnectError::JoinGroup(error)),
                None => {
                    buf.drain(..used);
                    Ok(buf)
                }
            };
        }
        // Checked after the frames that came with it: a refusal arrives before the close.
        if let Some(error) = failed {
            return Err(ConnectError::WebSocket(error));
        }
        failed = ws.read_data(&mut buf).await.err();
    }
}

/// The name of group `index`.
pub fn group_name(index: usize) -> String {
    format!("g{index}")
}

/// What connection `global` should have received, under `expected`.
fn expected_for(config: &WorkerConfig, expected: &Expected, global: usize, sent: u64) -> u64 {
    match expected {
        Expected::Nothing => 0,
        Expected::All(count) => *count,
        Expected::Groups(counts) => {
            let layout = Layout { urls: config.urls.len(), sources: config.sources.len(), group_size: config.group_size };
            layout.group_of(global).and_then(|g| counts.get(g).copied()).unwrap_or(0)
        }
        Expected::EchoReplies => sent,
    }
}

/// Waits until every established connection has what it should, or `timeout`; then reports.
async fn drain(config: &WorkerConfig, shared: &Shared, expected: &Expected, timeout: Duration) -> WorkerReport {
    let deadline = Instant::now() + timeout;
    let tally = |shared: &Shared| {
        let (mut expected_total, mut received, mut lost, mut extra) = (0, 0, 0, 0);
        for (slot, counters) in shared.slots.iter().enumerate() {
            // A connection that never opened was counted as a failed connection, not as loss.
            if !counters.open.get() && counters.received.get() == 0 && counters.sent.get() == 0 {
                continue;
            }
            let want = expected_for(config, expected, config.first + slot, counters.sent.get());
            let got = counters.received.get();
            expected_total += want;
            received += got.min(want);
            lost += want.saturating_sub(got);
            extra += got.saturating_sub(want);
        }
        (expected_total, received, lost, extra)
    };
    loop {
        let (_, _, lost, _) = tally(shared);
        if lost == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.measuring.set(false);
    let (expected_total, received, lost, duplicates) = tally(shared);
    WorkerReport {
        expected: expected_total,
        received,
        lost,
        duplicates,
        out_of_order: shared.out_of_order.get(),
        dropped: shared.dropped.get(),
        sent: shared.sent_total.get(),
        errors: shared.errors.borrow().entries(),
        latency: HistData::from_histogram(&shared.latency.borrow()),
        first_received_micros: shared.first_received.get(),
        last_received_micros: shared.last_received.get(),
        seq_counts: shared.seq_counts.borrow().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig {
            index: 0,
            first: 20,
            end: 40,
            urls: vec!["http://127.0.0.1:1/h".into()],
            sources: vec![std::net::Ipv4Addr::LOCALHOST],
            group_size: Some(10),
            protocol: Protocol::Json,
            skip_negotiation: false,
            connect_rate: 0.0,
            connect_concurrency: 1,
            connect_timeout_ms: 1,
            ping_interval_ms: 1,
            read_buffer: 4096,
            read_pause_us: 0,
        }
    }

    #[test]
    fn expectations_follow_groups_and_echo_counts() {
        let config = config();
        assert_eq!(expected_for(&config, &Expected::All(7), 25, 0), 7);
        assert_eq!(expected_for(&config, &Expected::Groups(vec![1, 2, 3, 4]), 25, 0), 3);
        assert_eq!(expected_for(&config, &Expected::Groups(vec![1, 2, 3, 4]), 31, 0), 4);
        assert_eq!(expected_for(&config, &Expected::Groups(vec![1]), 31, 0), 0);
        assert_eq!(expected_for(&config, &Expected::EchoReplies, 31, 9), 9);
        assert_eq!(expected_for(&config, &Expected::Nothing, 31, 9), 0);
    }

    #[tokio::test]
    async fn drain_counts_loss_and_extras_per_connection() {
        let config = config();
        let shared = Shared::new(Protocol::Json, 20, 4096);
        for (slot, counters) in shared.slots.iter().enumerate() {
            counters.open.set(slot != 19);
            counters.received.set(if slot == 0 {
                1
            } else if slot == 1 {
                3
            } else {
                2
            });
        }
        shared.slots[19].received.set(0);
        let report = drain(&config, &shared, &Expected::All(2), Duration::from_millis(30)).await;
        // Slot 19 never opened and received nothing: a failed connection, not loss.
        assert_eq!(report.expected, 38);
        assert_eq!(report.lost, 1);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.received, 37);
    }
}
