//! Jobs, states and the records the store returns.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::JobError;

/// A job's id: a database-generated, monotonically increasing integer.
pub type JobId = i64;

/// The queue a job goes to when none is given.
pub const DEFAULT_QUEUE: &str = "default";

/// Hangfire's job states. Every transition is recorded in the job's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum JobState {
    /// Waiting in its queue to be claimed by a worker.
    Enqueued,
    /// Waiting for its run time (delayed job or retry back-off).
    Scheduled,
    /// A continuation waiting for its parent job to succeed.
    Awaiting,
    /// Claimed by a worker that holds its lease.
    Processing,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error after its last attempt (or a permanent error).
    Failed,
    /// Deleted or cancelled; never runs again unless requeued.
    Deleted,
}

impl JobState {
    /// All states, in dashboard order.
    pub const ALL: [JobState; 7] = [
        JobState::Enqueued,
        JobState::Scheduled,
        JobState::Awaiting,
        JobState::Processing,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Deleted,
    ];

    /// The name stored in the database and shown in the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Enqueued => "Enqueued",
            JobState::Scheduled => "Scheduled",
            JobState::Awaiting => "Awaiting",
            JobState::Processing => "Processing",
            JobState::Succeeded => "Succeeded",
            JobState::Failed => "Failed",
            JobState::Deleted => "Deleted",
        }
    }

    /// Whether the job will not run again by itself.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Deleted)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a state name that is not one of [`JobState::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL.into_iter().find(|st| st.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// A job to enqueue: a stable name, a JSON payload, and options.
///
/// Name jobs by stable strings that carry the payload version, e.g. `"provision-tenant@1"`;
/// never by a Rust type name. Evolve a payload compatibly (new fields with `#[serde(default)]`);
/// for a breaking change register `"provision-tenant@2"` and keep the `@1` handler until its
/// jobs are drained.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) name: String,
    pub(crate) payload: Result<String, String>,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) delay: Option<Duration>,
    pub(crate) run_at: Option<DateTime<Utc>>,
    pub(crate) unique_key: Option<String>,
    pub(crate) concurrency_key: Option<String>,
    pub(crate) max_attempts: Option<u32>,
}

impl NewJob {
    /// A job named `name` with a serde-serializable payload, for the `default` queue.
    pub fn new(name: impl Into<String>, payload: impl Serialize) -> Self {
        let payload = serde_json::to_string(&payload).map_err(|e| e.to_string());
        NewJob {
            name: name.into(),
            payload,
            queue: DEFAULT_QUEUE.to_owned(),
            priority: 0,
            delay: None,
            run_at: None,
            unique_key: None,
            concurrency_key: None,
            max_attempts: None,
        }
    }

    /// The queue to put the job in (default `"default"`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Priority within its queue: higher runs first (default 0). Equal priorities run FIFO.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Run no earlier than `delay` from now (the job starts `Scheduled`).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Run no earlier than `at` (the job starts `Scheduled` if `at` is in the future).
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// At most one unfinished job (Enqueued, Scheduled, Awaiting or Processing) per key:
    /// enqueueing a second one returns the existing job's id instead.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Jobs sharing this key never run concurrently (Hangfire's `DisableConcurrentExecution`,
    /// without a lock timeout: the others simply wait in their queue, oldest first).
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.concurrency_key = Some(key.into());
        self
    }

    /// Total executions allowed (first run plus retries), overriding the handler's policy.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// The job name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn payload_json(&self) -> Result<&str, JobError> {
        self.payload.as_deref().map_err(|reason| JobError::PayloadSerialize { name: self.name.clone(), reason: reason.clone() })
    }

    /// The run time in µs if the job is delayed into the future, relative to `now`.
    pub(crate) fn scheduled_for(&self, now: i64) -> Option<i64> {
        let by_delay = self.delay.map(|d| now.saturating_add(crate::time::dur_us(d)));
        let by_time = self.run_at.map(|t| t.timestamp_micros());
        by_delay.into_iter().chain(by_time).max().filter(|&t| t > now)
    }
}

/// A job server: one running [`Worker`](crate::Worker), as Hangfire's Servers page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerRecord {
    /// The worker's id (`host:pid:random` unless configured).
    pub id: String,
    /// The queues it takes jobs from.
    pub queues: Vec<String>,
    /// Its concurrent executions, over all queues.
    pub workers: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

/// A stored job, as the dashboard and `JobStore::get` see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// Its stable name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// Its priority (higher first).
    pub priority: i32,
    /// The JSON payload as stored.
    pub payload: String,
    /// Its current state.
    pub state: JobState,
    /// When it may run (for Scheduled jobs), or when it was enqueued.
    pub run_at: DateTime<Utc>,
    /// Executions started so far.
    pub attempt: i32,
    /// Per-job override of the total attempts.
    pub max_attempts: Option<i32>,
    /// Uniqueness key.
    pub unique_key: Option<String>,
    /// Non-concurrency key.
    pub concurrency_key: Option<String>,
    /// Parent job of a continuation.
    pub parent_id: Option<JobId>,
    /// The recurring job that created it.
    pub recurring_id: Option<String>,
    /// The current fencing token (incremented on every claim).
    pub lease_token: i64,
    /// The worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease expires unless renewed by a heartbeat.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Whether cancellation was requested while it was processing.
    pub cancel_requested: bool,
    /// Progress in percent reported by the handler.
    pub progress: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One entry of a job's state history.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    /// The state entered.
    pub state: JobState,
    /// When.
    pub at: DateTime<Utc>,
    /// Which worker made the change, if a worker did.
    pub worker: Option<String>,
    /// Why (error message, retry note, "cancelled", ...).
    pub reason: Option<String>,
}

/// A log line written by a handler through `JobContext::log`.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The text.
    pub line: String,
}

/// A recurring job definition.
#[derive(Debug, Clone, Serialize)]
pub struct RecurringJob {
    /// Its stable id (chosen by the application).
    pub id: String,
    /// The cron expression (seconds field first, as the `cron` crate reads it; 5-field
    /// expressions get `0` seconds prepended).
    pub cron: String,
    /// IANA time zone the expression is evaluated in.
    pub timezone: String,
    /// Name of the job it creates.
    pub name: String,
    /// Queue of the job it creates.
    pub queue: String,
    /// Priority of the job it creates.
    pub priority: i32,
    /// Payload of the job it creates.
    pub payload: String,
    /// Per-job attempts override of the job it creates.
    pub max_attempts: Option<i32>,
    /// Next time it fires.
    pub next_run_at: DateTime<Utc>,
    /// Last time it fired.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The last job it created.
    pub last_job_id: Option<JobId>,
    /// Whether it is disabled (it does not fire until enabled; "Trigger now" still works).
    pub disabled: bool,
}

/// Which jobs a dashboard list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFilter {
    /// The state; `None` lists jobs in every state.
    pub state: Option<JobState>,
    /// Only jobs that already ran at least once (with `Scheduled`: Hangfire's Retries page).
    pub retries_only: bool,
    /// Only jobs with exactly this concurrency key (e.g. `tenant:acme`: one tenant's jobs in
    /// Diquis); read through the concurrency-key index.
    pub key: Option<String>,
    /// A job id (`42` or `#42`), or text the job's name, concurrency key or unique key contains
    /// (case-insensitive) among the newest [`TEXT_SEARCH_WINDOW`] jobs the other conditions
    /// select.
    pub search: Option<String>,
}

/// How many of the newest matching jobs a text search looks at. No index serves "contains"
/// on both backends, so an unbounded search for a rare name in a large state would read
/// every job in it; ids and keys (the key page) are exact and not bounded.
pub const TEXT_SEARCH_WINDOW: i64 = 10_000;

impl JobFilter {
    /// Every job in `state`.
    pub fn state(state: JobState) -> Self {
        JobFilter { state: Some(state), ..JobFilter::default() }
    }

    /// Every job with the concurrency key `key`, in any state.
    pub fn key(key: impl Into<String>) -> Self {
        JobFilter { key: Some(key.into()), ..JobFilter::default() }
    }
}

/// A queue's length and how many of its jobs run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Jobs waiting in it.
    pub enqueued: i64,
    /// Its jobs being processed.
    pub processing: i64,
}

/// Jobs that finished in one time bucket (a second or an hour), for the dashboard's graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Throughput {
    /// The start of the bucket.
    pub at: DateTime<Utc>,
    /// Jobs that succeeded in it.
    pub succeeded: i64,
    /// Jobs that failed in it (for good: retries are not counted).
    pub failed: i64,
}

/// The fencing lease a worker holds on a processing job: the job id and the token the claim
/// produced. Any write made under it is refused once the job was re-claimed or left `Processing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// The fencing token (the job's `lease_token` at claim time).
    pub token: i64,
}

/// What `JobStore::cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job had not started; it is now `Deleted`.
    Deleted,
    /// The job is running; its handler's cancellation token fires.
    Signalled,
}
