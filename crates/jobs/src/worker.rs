//! The worker: per-queue dispatchers claiming in batches, executions guarded by leases, a
//! heartbeat, a batched completer, a maintenance loop (scheduled jobs, expired leases, recurring
//! jobs, retention) and a listener for wake-ups and cancellations from other processes (the
//! storage layer's: LISTEN on PostgreSQL, nothing on SQLite, where workers poll).

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::{JobContext, failure_outcome};
use crate::db::{ClaimedJob, FailOutcome, WakeListener, Wakeup};
use crate::error::JobError;
use crate::handler::JobHandler;
use crate::model::{DEFAULT_QUEUE, JobId, JobState, Lease, ServerRecord};
use crate::retry::RetryPolicy;
use crate::store::JobStore;
use crate::time::{dur_us, now_us};

/// Tuning of a worker. The defaults suit production; tests shorten the durations.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Id shown in the history and the dashboard (default `host:pid:random`).
    pub worker_id: Option<String>,
    /// How long a claim is valid without a heartbeat (default 30 s). A job whose worker died
    /// runs again after this.
    pub lease_duration: Duration,
    /// How often leases of running jobs are renewed (default 10 s; keep it well below
    /// `lease_duration`). Cancellation requests from other processes on SQLite are seen at this
    /// pace too.
    pub heartbeat_interval: Duration,
    /// How long an idle dispatcher waits before polling again when no wake-up came (default
    /// 1 s; PostgreSQL wakes workers at once with NOTIFY).
    pub poll_interval: Duration,
    /// How often due scheduled jobs, expired leases and recurring jobs are handled (default 1 s).
    pub maintenance_interval: Duration,
    /// How long shutdown waits for running jobs before handing them back (default 30 s).
    pub shutdown_timeout: Duration,
    /// How long `Succeeded` and `Deleted` jobs are kept (default 24 h). `Failed` jobs are kept.
    pub retention: Duration,
    /// Most jobs claimed by one query (default 100).
    pub claim_batch: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: None,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            maintenance_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            retention: Duration::from_secs(24 * 3600),
            claim_batch: 100,
        }
    }
}

/// Entry point: `Worker::builder(store)`.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// Starts building a worker on `store`.
    pub fn builder(store: JobStore) -> WorkerBuilder {
        WorkerBuilder { store, queues: Vec::new(), handlers: HashMap::new(), config: WorkerConfig::default() }
    }
}

/// Configures queues, handlers and tuning, then [`WorkerBuilder::start`]s.
pub struct WorkerBuilder {
    store: JobStore,
    queues: Vec<(String, usize)>,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    config: WorkerConfig,
}

impl WorkerBuilder {
    /// Processes `queue` with up to `workers` concurrent jobs. Without any call, the worker
    /// processes `"default"` with 4.
    pub fn queue(mut self, queue: impl Into<String>, workers: usize) -> Self {
        self.queues.push((queue.into(), workers.max(1)));
        self
    }

    /// Registers a handler under its name (a later registration of the same name replaces it).
    pub fn register(mut self, handler: impl JobHandler) -> Self {
        self.handlers.insert(handler.name().to_owned(), Arc::new(handler));
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the worker id.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.config.worker_id = Some(id.into());
        self
    }

    /// Sets the lease duration and a heartbeat interval of a third of it.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.config.lease_duration = lease;
        self.config.heartbeat_interval = lease / 3;
        self
    }

    /// Starts the worker and returns once it is ready: listening for wake-ups (PostgreSQL) and
    /// with its dispatchers running.
    pub async fn start(self) -> Result<WorkerHandle, JobError> {
        let WorkerBuilder { store, mut queues, handlers, config } = self;
        if queues.is_empty() {
            queues.push((DEFAULT_QUEUE.to_owned(), 4));
        }
        let worker_id: Arc<str> = config.worker_id.clone().unwrap_or_else(default_worker_id).into();
        let (completions_tx, completions_rx) = mpsc::unbounded_channel();
        let rt = Arc::new(Runtime {
            store: store.clone(),
            worker_id,
            handlers,
            config,
            queues: queues.iter().map(|(q, _)| q.clone()).collect(),
            stop_claiming: CancellationToken::new(),
            stop_background: CancellationToken::new(),
            in_flight: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            completions: Mutex::new(Some(completions_tx)),
            metrics: Metrics::default(),
        });

        let workers: i64 = queues.iter().map(|(_, n)| *n as i64).sum();
        let started_at = chrono::Utc::now();
        store.upsert_server(&server_record(&rt, workers, started_at)).await?;
        let mut background = Vec::new();
        let listener = store.storage().worker().wake_listener().await?;
        background.push(tokio::spawn(run_listener(rt.clone(), listener)));
        background.push(tokio::spawn(run_cancel_listener(rt.clone())));
        background.push(tokio::spawn(run_heartbeat(rt.clone(), workers, started_at)));
        background.push(tokio::spawn(run_maintenance(rt.clone())));
        let completer = tokio::spawn(run_completer(rt.clone(), completions_rx));
        let dispatchers = queues.into_iter().map(|(queue, workers)| tokio::spawn(run_dispatcher(rt.clone(), queue, workers))).collect();
        tracing::info!(worker = %rt.worker_id, backend = store.backend_name(), "jobs worker ready");
        Ok(WorkerHandle { rt, dispatchers, background, completer: Some(completer) })
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}:{:04x}", std::process::id(), rand::random::<u16>())
}

/// A server silent this long is taken for dead and removed from the list (Hangfire's
/// `ServerTimeout`).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(300);

/// The row this worker keeps in the servers list.
fn server_record(rt: &Runtime, workers: i64, started_at: chrono::DateTime<chrono::Utc>) -> ServerRecord {
    ServerRecord { id: rt.worker_id.to_string(), queues: rt.queues.clone(), workers, started_at, heartbeat_at: chrono::Utc::now() }
}

const REASON_NONE: u8 = 0;
const REASON_CANCELLED: u8 = 1;
const REASON_LEASE_LOST: u8 = 2;
const REASON_SHUTDOWN: u8 = 3;

struct InFlight {
    token: i64,
    cancel: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl InFlight {
    /// Fires the job's token; the first reason wins.
    fn stop(&self, reason: u8) {
        let _ = self.reason.compare_exchange(REASON_NONE, reason, Ordering::AcqRel, Ordering::Acquire);
        self.cancel.cancel();
    }
}

#[derive(Default)]
struct Metrics {
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    cancelled: AtomicU64,
    handed_back: AtomicU64,
    claims: AtomicU64,
    claim_latency_us: Mutex<Option<Histogram<u64>>>,
}

struct Runtime {
    store: JobStore,
    worker_id: Arc<str>,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    config: WorkerConfig,
    queues: Vec<String>,
    stop_claiming: CancellationToken,
    stop_background: CancellationToken,
    in_flight: Mutex<HashMap<JobId, InFlight>>,
    tracker: TaskTracker,
    completions: Mutex<Option<mpsc::UnboundedSender<Lease>>>,
    metrics: Metrics,
}

/// A snapshot of a worker's metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Executions finished (succeeded + failed + retried + cancelled).
    pub processed: u64,
    /// Executions that succeeded.
    pub succeeded: u64,
    /// Executions that ended the job in `Failed`.
    pub failed: u64,
    /// Executions that failed and were scheduled for a retry.
    pub retried: u64,
    /// Executions stopped by cancellation or deletion.
    pub cancelled: u64,
    /// Executions handed back to the queue at shutdown.
    pub handed_back: u64,
    /// Jobs running now.
    pub in_flight: usize,
    /// `Enqueued` jobs per queue this worker serves.
    pub queue_depths: Vec<(String, i64)>,
    /// Claim queries made.
    pub claims: u64,
    /// Median claim-query latency in microseconds.
    pub claim_latency_p50_us: u64,
    /// 99th-percentile claim-query latency in microseconds.
    pub claim_latency_p99_us: u64,
}

/// A running worker. Call [`WorkerHandle::shutdown`] to stop it gracefully; dropping it stops
/// claiming and leaves running jobs to finish or to lose their leases.
pub struct WorkerHandle {
    rt: Arc<Runtime>,
    dispatchers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    completer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").field("worker_id", &&*self.rt.worker_id).finish()
    }
}

impl WorkerHandle {
    /// The worker's id.
    pub fn worker_id(&self) -> &str {
        &self.rt.worker_id
    }

    /// The store it works on.
    pub fn store(&self) -> &JobStore {
        &self.rt.store
    }

    /// Current metrics, with the queue depths read from the database.
    pub async fn metrics(&self) -> Result<MetricsSnapshot, JobError> {
        let m = &self.rt.metrics;
        let mut queue_depths = Vec::with_capacity(self.rt.queues.len());
        for q in &self.rt.queues {
            queue_depths.push((q.clone(), self.rt.store.queue_depth(q).await?));
        }
        let (p50, p99) =
            m.claim_latency_us.lock().as_ref().map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99))).unwrap_or_default();
        let succeeded = m.succeeded.load(Ordering::Relaxed);
        let failed = m.failed.load(Ordering::Relaxed);
        let retried = m.retried.load(Ordering::Relaxed);
        let cancelled = m.cancelled.load(Ordering::Relaxed);
        Ok(MetricsSnapshot {
            processed: succeeded + failed + retried + cancelled,
            succeeded,
            failed,
            retried,
            cancelled,
            handed_back: m.handed_back.load(Ordering::Relaxed),
            in_flight: self.rt.in_flight.lock().len(),
            queue_depths,
            claims: m.claims.load(Ordering::Relaxed),
            claim_latency_p50_us: p50,
            claim_latency_p99_us: p99,
        })
    }

    /// Stops claiming, waits up to `shutdown_timeout` for running jobs, then fires their
    /// cancellation tokens and hands them back to their queue (`Enqueued`, attempt refunded),
    /// flushes completions and stops the background tasks.
    pub async fn shutdown(mut self) -> Result<(), JobError> {
        let rt = self.rt.clone();
        rt.stop_claiming.cancel();
        for d in self.dispatchers.drain(..) {
            let _ = d.await;
        }
        rt.tracker.close();
        if tokio::time::timeout(rt.config.shutdown_timeout, rt.tracker.wait()).await.is_err() {
            let running: Vec<(Lease, Arc<AtomicU8>)> = {
                let map = rt.in_flight.lock();
                map.iter()
                    .map(|(id, f)| {
                        f.stop(REASON_SHUTDOWN);
                        (Lease { job_id: *id, token: f.token }, f.reason.clone())
                    })
                    .collect()
            };
            for (lease, reason) in running {
                if reason.load(Ordering::Acquire) != REASON_SHUTDOWN {
                    continue;
                }
                let outcome = hand_back_outcome(&rt.worker_id);
                match finish_failed(&rt.store, lease, &outcome, &rt.worker_id).await {
                    Ok(true) => {
                        rt.metrics.handed_back.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(job = lease.job_id, error = %e, "could not hand back job at shutdown"),
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), rt.tracker.wait()).await;
        }
        rt.completions.lock().take();
        if let Some(c) = self.completer.take() {
            let _ = c.await;
        }
        rt.stop_background.cancel();
        for b in self.background.drain(..) {
            let _ = b.await;
        }
        if let Err(e) = rt.store.remove_servers(Some(&rt.worker_id), SERVER_TIMEOUT).await {
            tracing::warn!(error = %e, "could not remove this worker from the servers list");
        }
        rt.store.wake();
        tracing::info!(worker = %rt.worker_id, "jobs worker stopped");
        Ok(())
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.rt.stop_claiming.cancel();
        self.rt.stop_background.cancel();
    }
}

fn hand_back_outcome(worker: &str) -> FailOutcome {
    FailOutcome {
        state: JobState::Enqueued,
        run_at: None,
        error: None,
        reason: format!("Handed back: worker {worker} shut down"),
        refund_attempt: true,
    }
}

/// Fenced exit from `Processing` through the pool.
async fn finish_failed(store: &JobStore, lease: Lease, outcome: &FailOutcome, worker: &str) -> Result<bool, JobError> {
    let now = now_us();
    let written = store.storage().worker().finish_failed(lease, outcome, worker, now).await?;
    if written && outcome.state == JobState::Enqueued {
        store.wake();
    } else if written {
        store.changed();
    }
    Ok(written)
}

async fn run_dispatcher(rt: Arc<Runtime>, queue: String, workers: usize) {
    let slots = Arc::new(Semaphore::new(workers));
    let lease_us = dur_us(rt.config.lease_duration);
    let batch = rt.config.claim_batch.max(1);
    loop {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = rt.stop_claiming.cancelled() => return,
        };
        let mut permits = vec![first];
        while permits.len() < batch {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        // Register for wake-ups before claiming so an enqueue racing with an empty claim is not missed.
        let notified = rt.store.inner.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let started = Instant::now();
        let claimed = rt.store.storage().worker().claim(&queue, permits.len() as i64, &rt.worker_id, now_us(), lease_us).await;
        record_claim(&rt.metrics, started.elapsed());
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(queue = %queue, error = %e, "claim failed; retrying");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(rt.config.poll_interval) => {}
                    _ = rt.stop_claiming.cancelled() => return,
                }
                continue;
            }
        };
        if claimed.is_empty() {
            drop(permits);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(rt.config.poll_interval) => {}
                _ = rt.stop_claiming.cancelled() => return,
            }
            continue;
        }
        rt.store.changed();
        let mut permits = permits.into_iter();
        for job in claimed {
            let Some(permit) = permits.next() else { break };
            rt.in_flight.lock().insert(
                job.id,
                InFlight { token: job.lease_token, cancel: CancellationToken::new(), reason: Arc::new(AtomicU8::new(REASON_NONE)) },
            );
            rt.tracker.spawn(execute(rt.clone(), job, permit));
        }
    }
}

fn record_claim(metrics: &Metrics, elapsed: Duration) {
    metrics.claims.fetch_add(1, Ordering::Relaxed);
    let mut h = metrics.claim_latency_us.lock();
    let h = h.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds"));
    let _ = h.record((elapsed.as_micros() as u64).clamp(1, 60_000_000));
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

async fn execute(rt: Arc<Runtime>, job: ClaimedJob, permit: OwnedSemaphorePermit) {
    let lease = job.lease();
    let (cancel, reason) = {
        let map = rt.in_flight.lock();
        match map.get(&job.id) {
            Some(f) => (f.cancel.clone(), f.reason.clone()),
            None => (CancellationToken::new(), Arc::new(AtomicU8::new(REASON_NONE))),
        }
    };
    let handler = rt.handlers.get(&job.name).cloned();
    let policy = handler.as_ref().map(|h| h.retry_policy()).unwrap_or_else(RetryPolicy::none);
    let max_attempts = job.max_attempts.map(|n| n.max(1) as u32).unwrap_or(policy.max_attempts());
    let attempt = job.attempt.max(1) as u32;

    let result = match &handler {
        None => Err(JobError::UnknownJob { name: job.name.clone(), worker: rt.worker_id.to_string() }),
        Some(h) => {
            let ctx = JobContext::new(
                lease,
                job.name.clone(),
                job.queue.clone(),
                attempt,
                max_attempts,
                policy.clone(),
                job.created_at,
                cancel.clone(),
                rt.store.clone(),
                rt.worker_id.clone(),
            );
            match std::panic::catch_unwind(AssertUnwindSafe(|| h.run(ctx, &job.payload))) {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_else(|p| Err(JobError::Panicked(panic_message(p)))),
                Err(p) => Err(JobError::Panicked(panic_message(p))),
            }
        }
    };

    match result {
        Ok(()) => {
            rt.metrics.succeeded.fetch_add(1, Ordering::Relaxed);
            let sent = rt.completions.lock().as_ref().map(|tx| tx.send(lease).is_ok()).unwrap_or(false);
            if !sent {
                // The completer is gone (shutdown raced us): complete directly.
                let done = rt.store.storage().worker().complete_batch(&[lease], &rt.worker_id, now_us()).await;
                rt.store.changed();
                if let Err(e) = done {
                    tracing::warn!(job = job.id, error = %e, "could not record success; the job will run again after its lease");
                }
                rt.in_flight.lock().remove(&job.id);
            }
        }
        Err(err) => {
            let now = now_us();
            let outcome = match reason.load(Ordering::Acquire) {
                REASON_LEASE_LOST => None,
                REASON_CANCELLED => Some(FailOutcome {
                    state: JobState::Deleted,
                    run_at: None,
                    reason: format!("Cancelled: {err}"),
                    error: Some(err.to_string()),
                    refund_attempt: false,
                }),
                REASON_SHUTDOWN => Some(hand_back_outcome(&rt.worker_id)),
                _ => Some(failure_outcome(&policy, max_attempts, attempt, &err, now)),
            };
            if let Some(outcome) = outcome {
                match finish_failed(&rt.store, lease, &outcome, &rt.worker_id).await {
                    Ok(true) => {
                        let counter = match outcome.state {
                            JobState::Scheduled => &rt.metrics.retried,
                            JobState::Deleted => &rt.metrics.cancelled,
                            JobState::Enqueued => &rt.metrics.handed_back,
                            _ => &rt.metrics.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(job = job.id, state = %outcome.state, error = %err, "job execution failed");
                    }
                    Ok(false) => tracing::info!(job = job.id, "stale lease: failure of a re-claimed job not recorded"),
                    Err(e) => tracing::warn!(job = job.id, error = %e, "could not record failure; the job will run again after its lease"),
                }
            }
            rt.in_flight.lock().remove(&job.id);
        }
    }
    drop(permit);
}

async fn run_completer(rt: Arc<Runtime>, mut rx: mpsc::UnboundedReceiver<Lease>) {
    let mut batch: Vec<Lease> = Vec::with_capacity(1024);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(l) => batch.push(l),
                Err(_) => break,
            }
        }
        let result = rt.store.storage().worker().complete_batch(&batch, &rt.worker_id, now_us()).await;
        rt.store.changed();
        if let Err(e) = result {
            tracing::warn!(jobs = batch.len(), error = %e, "could not record successes; the jobs will run again after their leases");
        }
        {
            let mut map = rt.in_flight.lock();
            for l in &batch {
                map.remove(&l.job_id);
            }
        }
        batch.clear();
        // Completions may have released continuations.
        rt.store.wake();
    }
}

async fn run_heartbeat(rt: Arc<Runtime>, workers: i64, started_at: chrono::DateTime<chrono::Utc>) {
    let lease_us = dur_us(rt.config.lease_duration);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(rt.config.heartbeat_interval) => {}
            _ = rt.stop_background.cancelled() => return,
        }
        // The server's own heartbeat, busy or idle; registered again if it was taken for dead
        // (a long pause) and removed meanwhile.
        match rt.store.server_heartbeat(&rt.worker_id).await {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = rt.store.upsert_server(&server_record(&rt, workers, started_at)).await {
                    tracing::warn!(error = %e, "server registration failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "server heartbeat failed"),
        }
        let leases: Vec<Lease> = rt.in_flight.lock().iter().map(|(id, f)| Lease { job_id: *id, token: f.token }).collect();
        if leases.is_empty() {
            continue;
        }
        let expires = now_us().saturating_add(lease_us);
        let held = rt.store.storage().worker().heartbeat(&leases, expires).await;
        match held {
            Ok(held) => {
                let held_ids: HashSet<JobId> = held.iter().map(|(id, _)| *id).collect();
                let map = rt.in_flight.lock();
                for lease in &leases {
                    if !held_ids.contains(&lease.job_id)
                        && let Some(f) = map.get(&lease.job_id).filter(|f| f.token == lease.token)
                    {
                        f.stop(REASON_LEASE_LOST);
                    }
                }
                for (id, cancel_requested) in held {
                    if cancel_requested && let Some(f) = map.get(&id) {
                        f.stop(REASON_CANCELLED);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

async fn run_cancel_listener(rt: Arc<Runtime>) {
    let mut rx = rt.store.inner.cancels.subscribe();
    loop {
        let id = tokio::select! {
            r = rx.recv() => match r {
                Ok(id) => id,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            _ = rt.stop_background.cancelled() => return,
        };
        if let Some(f) = rt.in_flight.lock().get(&id) {
            f.stop(REASON_CANCELLED);
        }
    }
}

async fn run_listener(rt: Arc<Runtime>, mut listener: WakeListener) {
    loop {
        let msg = tokio::select! {
            m = listener.recv() => m,
            _ = rt.stop_background.cancelled() => return,
        };
        match msg {
            Ok(Wakeup::Cancel(id)) => {
                let _ = rt.store.inner.cancels.send(id);
            }
            Ok(Wakeup::Queue) => rt.store.wake(),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = rt.stop_background.cancelled() => return,
                }
                // Notifications may have been missed while disconnected.
                rt.store.wake();
            }
        }
    }
}

async fn run_maintenance(rt: Arc<Runtime>) {
    let mut last_purge: Option<Instant> = None;
    let mut last_fold: Option<Instant> = None;
    loop {
        let now = now_us();
        let maintenance = rt.store.storage().maintenance();
        let promoted = maintenance.promote_scheduled(now, &rt.worker_id).await;
        let reaped = maintenance.reap_expired(now, &rt.worker_id).await;
        match (&promoted, &reaped) {
            (Ok(p), Ok(r)) if p + r > 0 => rt.store.wake(),
            _ => {}
        }
        if let Err(e) = promoted {
            tracing::warn!(error = %e, "promoting scheduled jobs failed");
        }
        if let Ok(n) = &reaped
            && *n > 0
        {
            tracing::info!(jobs = n, "requeued jobs whose lease expired");
        }
        if let Err(e) = reaped {
            tracing::warn!(error = %e, "requeueing expired leases failed");
        }
        if let Err(e) = rt.store.fire_due_recurring().await {
            tracing::warn!(error = %e, "firing recurring jobs failed");
        }
        if last_fold.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            last_fold = Some(Instant::now());
            if let Err(e) = rt.store.fold_counts().await {
                tracing::warn!(error = %e, "folding the job counters failed");
            }
        }
        if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            last_purge = Some(Instant::now());
            if let Err(e) = rt.store.remove_servers(None, SERVER_TIMEOUT).await {
                tracing::warn!(error = %e, "removing dead servers failed");
            }
            if let Err(e) = rt.store.purge_finished(rt.config.retention).await {
                tracing::warn!(error = %e, "purging finished jobs failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(rt.config.maintenance_interval) => {}
            _ = rt.stop_background.cancelled() => return,
        }
    }
}
