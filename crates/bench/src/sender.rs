//! The sending connection of the broadcast, group and cross-node scenarios.
//!
//! It calls `SendToAll(payload)` or `SendToGroup(group, payload)` with an invocation id, keeps
//! at most `inflight` calls outstanding, and counts only calls the server completed without
//! error, so receivers are never blamed for messages the server refused. Each call's time to
//! its completion is recorded: when it nears `inflight` divided by the throughput, the window,
//! not the server, bounds the scenario.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use crate::connect::{ConnectError, Connector, Target};
use crate::frames::{Incoming, Protocol};
use crate::hist::{self, LatencySummary};
use crate::ipc::ErrorTally;
use crate::payload;
use crate::worker::group_name;

/// Where messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// `SendToAll`.
    All,
    /// `SendToGroup`, message `s` to group `s % groups`.
    Groups(usize),
}

/// How the sender sends.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The hub the sender connects to.
    pub target: Target,
    /// The source address it binds.
    pub source: Ipv4Addr,
    /// The hub protocol.
    pub protocol: Protocol,
    /// Connect without negotiating.
    pub skip_negotiation: bool,
    /// What to call.
    pub kind: SendKind,
    /// Stop after this many calls (0: only the duration bounds the run).
    pub messages: u64,
    /// Calls per second (0: as fast as `inflight` allows).
    pub rate: f64,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Length of the payload string.
    pub payload_len: usize,
    /// Outstanding calls at most.
    pub inflight: usize,
    /// How long to wait for the last completions.
    pub completion_timeout: Duration,
}

/// What the sender did.
#[derive(Debug, Clone, Default)]
pub struct SenderResult {
    /// Calls made.
    pub attempted: u64,
    /// Calls completed without error.
    pub completed: u64,
    /// Completed calls per group (`SendKind::Groups`), else one entry.
    pub per_group: Vec<u64>,
    /// Errors (error completions, missing completions, a lost connection).
    pub errors: ErrorTally,
    /// When the first call was sent, µs since the epoch.
    pub first_sent_micros: u64,
    /// When the last call was sent.
    pub last_sent_micros: u64,
    /// From sending a call to reading its completion (completed calls only).
    pub call_latency: LatencySummary,
}

/// Connects and sends; `sent` is updated as calls go out, for progress display.
pub async fn run(config: SenderConfig, sent: Rc<Cell<u64>>) -> Result<SenderResult, ConnectError> {
    let connector = Connector::new(config.protocol, config.skip_negotiation, &[config.source])?;
    let (mut ws, mut buf) = connector.connect(&config.target, config.source).await?;
    let protocol = config.protocol;
    let groups = match config.kind {
        SendKind::All => 1,
        SendKind::Groups(n) => n.max(1),
    };
    let mut result = SenderResult { per_group: vec![0; groups], ..SenderResult::default() };
    let start = Instant::now();
    let stop_sending_at = start + config.duration;
    let mut next_send = start;
    let mut inflight = 0usize;
    let mut out = Vec::new();
    let mut last_sent_at = start;
    let limit = if config.messages == 0 { u64::MAX } else { config.messages };
    let send_timer = tokio::time::sleep_until(next_send);
    tokio::pin!(send_timer);
    let stop_timer = tokio::time::sleep_until(stop_sending_at);
    tokio::pin!(stop_timer);
    let mut stopped = false;
    // Calls in flight by sequence number (at most `inflight` entries), and their round trips.
    let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(config.inflight);
    let mut round_trips = hist::new_latency();
    loop {
        let more = !stopped && result.attempted < limit;
        if !more && inflight == 0 {
            break;
        }
        if !more && last_sent_at.elapsed() > config.completion_timeout {
            result.errors.add(format!("{inflight} calls never completed"));
            break;
        }
        let can_send = more && inflight < config.inflight.max(1);
        tokio::select! {
            biased;
            readable = ws.readable() => {
                let read = match readable {
                    Ok(()) => ws.read_available(&mut buf),
                    Err(error) => Err(error.into()),
                };
                match read {
                    Ok(()) => {}
                    Err(error) if error.is_close() => {
                        result.errors.add(format!("the sender's connection was closed: {error}"));
                        break;
                    }
                    Err(error) => {
                        result.errors.add(format!("the sender's connection failed: {error}"));
                        break;
                    }
                }
                if let Err(error) = ws.flush().await {
                    result.errors.add(format!("the sender's connection failed: {error}"));
                    break;
                }
                let mut closed = false;
                let split = protocol.split_frames(&buf, |frame| {
                    if frame.windows(payload::TAG.len()).any(|w| w == payload::TAG) {
                        return; // its own broadcast coming back
                    }
                    match protocol.decode(frame) {
                        Ok(Incoming::Completion { invocation_id, error }) => {
                            inflight = inflight.saturating_sub(1);
                            match (error, invocation_id.parse::<u64>()) {
                                (None, Ok(seq)) => {
                                    if let Some(sent) = sent_at.remove(&seq) {
                                        hist::record(&mut round_trips, sent.elapsed().as_micros() as u64);
                                    }
                                    result.completed += 1;
                                    result.per_group[(seq % groups as u64) as usize] += 1;
                                }
                                (Some(error), _) => result.errors.add(format!("completion error: {error}")),
                                (None, Err(_)) => result.errors.add(format!("completion for unknown id {invocation_id:?}")),
                            }
                        }
                        Ok(Incoming::Close { error }) => {
                            result.errors.add(format!("server closed the sender: {}", error.unwrap_or_default()));
                            closed = true;
                        }
                        Ok(_) => {}
                        Err(error) => result.errors.add(error.to_string()),
                    }
                });
                match split {
                    Ok(used) => { buf.drain(..used); }
                    Err(error) => { result.errors.add(error.to_string()); break; }
                }
                if closed {
                    break;
                }
            }
            _ = &mut stop_timer, if !stopped => stopped = true,
            _ = &mut send_timer, if can_send => {
                let seq = result.attempted;
                let now_micros = payload::now_micros();
                let text = payload::encode(seq, now_micros, config.payload_len);
                let id = seq.to_string();
                out.clear();
                match config.kind {
                    SendKind::All => protocol.write_invocation(&mut out, Some(&id), "SendToAll", &[&text]),
                    SendKind::Groups(_) => {
                        let group = group_name((seq % groups as u64) as usize);
                        protocol.write_invocation(&mut out, Some(&id), "SendToGroup", &[&group, &text]);
                    }
                }
                if let Err(error) = ws.send(&out).await {
                    result.errors.add(format!("sending failed: {error}"));
                    break;
                }
                if result.attempted == 0 {
                    result.first_sent_micros = now_micros;
                }
                result.last_sent_micros = now_micros;
                result.attempted += 1;
                inflight += 1;
                sent.set(result.attempted);
                last_sent_at = Instant::now();
                sent_at.insert(seq, last_sent_at);
                if config.rate > 0.0 {
                    next_send = start + Duration::from_secs_f64(result.attempted as f64 / config.rate);
                    send_timer.as_mut().reset(next_send);
                }
            }
            // Wake up to notice a completion timeout while waiting for the last replies.
            _ = tokio::time::sleep(Duration::from_millis(100)), if !more => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close()).await;
    result.call_latency = LatencySummary::of(&round_trips);
    Ok(result)
}
