//! The storage layer, by role: the write transaction ([`TransactionOps`]), what a worker does
//! ([`WorkerOps`]), its maintenance sweeps ([`MaintenanceOps`]), administrators' state changes
//! ([`AdminOps`]) and the read-only monitoring queries ([`MonitoringOps`]), each implemented for
//! PostgreSQL and SQLite. [`Storage`] is the one place that picks the backend (see
//! docs/decisions/0014-storage-by-role.md).
//!
//! Most SQL is shared (sqlx binds `$1`-style parameters on SQLite too); the claim, the batched
//! completion, heartbeats and the maintenance sweeps differ because PostgreSQL has
//! `FOR UPDATE SKIP LOCKED`, arrays and LISTEN/NOTIFY, while SQLite has a single writer.

#[macro_use]
mod shared;
mod migrations;
mod pg;
mod sqlite;
mod storage;

use sqlx::{Pool, Postgres, Sqlite};

pub(crate) use storage::{Storage, WakeListener, Wakeup};

use crate::error::JobError;
use crate::model::{CancelOutcome, JobId, JobRecord, JobState, Lease, LogLine, NewJob, RecurringJob, StateChange};
use crate::time::to_datetime;

/// A database the job tables can live in: [`sqlx::Postgres`] or [`sqlx::Sqlite`] (sealed).
///
/// It is the bound of [`crate::enqueue_in_tx`] and of the transactional methods of
/// [`crate::JobContext`], so they accept `&mut sqlx::Transaction<'_, Postgres>` and
/// `&mut sqlx::Transaction<'_, Sqlite>` alike.
pub trait JobDatabase: private::TransactionOps {}
impl JobDatabase for Postgres {}
impl JobDatabase for Sqlite {}

/// A job row about to be inserted.
#[derive(Debug)]
pub struct InsertJob<'a> {
    pub name: &'a str,
    pub queue: &'a str,
    pub priority: i32,
    pub payload: &'a str,
    pub state: JobState,
    pub run_at: i64,
    pub max_attempts: Option<i32>,
    pub unique_key: Option<&'a str>,
    pub concurrency_key: Option<&'a str>,
    pub parent_id: Option<JobId>,
    pub recurring_id: Option<&'a str>,
    pub reason: Option<String>,
}

/// A job a worker just claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: JobId,
    pub name: String,
    pub queue: String,
    pub payload: String,
    pub attempt: i32,
    pub max_attempts: Option<i32>,
    pub lease_token: i64,
    pub created_at: i64,
}

impl ClaimedJob {
    pub fn lease(&self) -> Lease {
        Lease { job_id: self.id, token: self.lease_token }
    }
}

/// How a processing job leaves `Processing` other than by succeeding.
#[derive(Debug, Clone)]
pub struct FailOutcome {
    /// Scheduled (retry), Failed, Deleted (cancelled) or Enqueued (handed back).
    pub state: JobState,
    /// New run time for a retry.
    pub run_at: Option<i64>,
    /// The error to keep in `last_error`.
    pub error: Option<String>,
    /// The history note.
    pub reason: String,
    /// Give the attempt back (hand-back on shutdown).
    pub refund_attempt: bool,
}

/// A recurring definition to upsert.
#[derive(Debug)]
pub struct UpsertRecurring<'a> {
    pub id: &'a str,
    pub cron: &'a str,
    pub timezone: &'a str,
    pub name: &'a str,
    pub queue: &'a str,
    pub priority: i32,
    pub payload: &'a str,
    pub max_attempts: Option<i32>,
    pub next_run_at: i64,
}

pub(crate) mod private {
    use super::*;

    /// The write transaction (Hangfire's write-only transaction): state changes on one open
    /// connection, usually inside a transaction the caller (or the store) began. Sealed: the
    /// supertrait of the public [`JobDatabase`](super::JobDatabase), so the application's own
    /// transactions can carry these writes.
    #[allow(async_fn_in_trait)]
    pub trait TransactionOps: sqlx::Database + Sized {
        /// Starts a transaction that writes (SQLite: `BEGIN IMMEDIATE`).
        async fn begin_write(pool: &Pool<Self>) -> Result<sqlx::Transaction<'static, Self>, JobError>;
        /// Inserts a job with its first history entry and wakes workers. Returns the id, or
        /// the id of the unfinished job holding the same unique key.
        async fn insert_job(conn: &mut Self::Connection, job: &InsertJob<'_>, now: i64) -> Result<JobId, JobError>;
        /// The job's state, locking its row on PostgreSQL.
        async fn lock_state(conn: &mut Self::Connection, id: JobId) -> Result<Option<JobState>, JobError>;
        /// Wakes workers of a queue (PostgreSQL: NOTIFY at commit).
        async fn notify_queue(conn: &mut Self::Connection, queue: &str) -> Result<(), JobError>;
        /// Tells the worker running `id` to cancel it (PostgreSQL: NOTIFY at commit).
        async fn notify_cancel(conn: &mut Self::Connection, id: JobId) -> Result<(), JobError>;
        /// Fenced: the job is still `Processing` under this token; locks its row.
        async fn lock_lease(conn: &mut Self::Connection, lease: Lease) -> Result<bool, JobError>;
        /// Serialises `enqueue_once` for `key` until the transaction ends (PostgreSQL: an
        /// advisory lock; SQLite: the transaction's `BEGIN IMMEDIATE` already does).
        async fn lock_unique_key(conn: &mut Self::Connection, key: &str) -> Result<(), JobError>;
        /// The newest job with this unique key, in any state.
        async fn find_unique_key(conn: &mut Self::Connection, key: &str) -> Result<Option<JobId>, JobError>;
        /// Fenced success with history and continuation release.
        async fn complete(conn: &mut Self::Connection, lease: Lease, worker: &str, now: i64) -> Result<bool, JobError>;
        /// Fenced exit from `Processing` other than success.
        async fn finish_failed(
            conn: &mut Self::Connection,
            lease: Lease,
            outcome: &FailOutcome,
            worker: &str,
            now: i64,
        ) -> Result<bool, JobError>;
    }
}

pub(crate) use private::TransactionOps;

/// What a worker does with the jobs it runs (Hangfire's storage connection): claim, renew
/// leases, complete, report progress and logs, keep its server row.
#[allow(async_fn_in_trait)]
pub(crate) trait WorkerOps: TransactionOps {
    /// Claims up to `limit` enqueued jobs of `queue`.
    async fn claim(pool: &Pool<Self>, queue: &str, limit: i64, worker: &str, now: i64, lease_us: i64) -> Result<Vec<ClaimedJob>, JobError>;
    /// Completes many jobs at once; returns how many were still held.
    async fn complete_batch(pool: &Pool<Self>, leases: &[Lease], worker: &str, now: i64) -> Result<u64, JobError>;
    /// Extends leases; returns `(id, cancel_requested)` for each lease still held.
    async fn heartbeat(pool: &Pool<Self>, leases: &[Lease], expires_at: i64) -> Result<Vec<(JobId, bool)>, JobError>;
    /// Whether the job is still `Processing` under this token, without locking anything.
    async fn lease_held(pool: &Pool<Self>, lease: Lease) -> Result<bool, JobError>;
    /// Fenced progress report.
    async fn progress(pool: &Pool<Self>, lease: Lease, pct: i32, now: i64) -> Result<bool, JobError>;
    /// Fenced log line.
    async fn log_line(pool: &Pool<Self>, lease: Lease, line: &str, now: i64) -> Result<bool, JobError>;
    /// Registers a job server (or refreshes its row).
    async fn upsert_server(pool: &Pool<Self>, server: &crate::model::ServerRecord) -> Result<(), JobError>;
    /// A server's heartbeat; false when its row is gone (removed as dead meanwhile).
    async fn server_heartbeat(pool: &Pool<Self>, id: &str, now: i64) -> Result<bool, JobError>;
}

/// The sweeps workers run in their maintenance loop (Hangfire's storage components: the
/// delayed-job scheduler, the expiration manager, the counters aggregator).
#[allow(async_fn_in_trait)]
pub(crate) trait MaintenanceOps: TransactionOps {
    /// Moves due `Scheduled` jobs to `Enqueued`.
    async fn promote_scheduled(pool: &Pool<Self>, now: i64, worker: &str) -> Result<u64, JobError>;
    /// Moves `Processing` jobs whose lease expired back to `Enqueued`.
    async fn reap_expired(pool: &Pool<Self>, now: i64, worker: &str) -> Result<u64, JobError>;
    /// Folds the delta rows into `bg_state_totals` (one row per state and per hour of the
    /// last 8 days for the history); hours before `keep_from_hour` fold into hour 0.
    async fn fold_counts(pool: &Pool<Self>, keep_from_hour: i64) -> Result<(), JobError>;
    /// Deletes up to `limit` finished jobs (with history and logs) finished before the cut-off.
    async fn purge_finished(pool: &Pool<Self>, finished_before: i64, limit: i64) -> Result<u64, JobError>;
    /// Removes server `id` and every server silent since `heartbeat_before`.
    async fn remove_servers(pool: &Pool<Self>, id: Option<&str>, heartbeat_before: i64) -> Result<u64, JobError>;
}

/// State changes asked for by clients and administrators (the dashboard's buttons, the
/// application): cancel, requeue, delete, recurring definitions and firing them.
#[allow(async_fn_in_trait)]
pub(crate) trait AdminOps: TransactionOps {
    /// Deletes a job that has not started, or signals a running one.
    async fn cancel(pool: &Pool<Self>, id: JobId, now: i64) -> Result<CancelOutcome, JobError>;
    /// Enqueues a job that is not running again.
    async fn requeue(pool: &Pool<Self>, id: JobId, now: i64, reason: &str) -> Result<(), JobError>;
    /// Moves a job to `Deleted`.
    async fn delete(pool: &Pool<Self>, id: JobId, now: i64, reason: &str) -> Result<(), JobError>;
    /// Creates or replaces a recurring definition.
    async fn upsert_recurring(pool: &Pool<Self>, rec: &UpsertRecurring<'_>, now: i64) -> Result<(), JobError>;
    /// Removes a recurring definition; false when it did not exist.
    async fn remove_recurring(pool: &Pool<Self>, id: &str) -> Result<bool, JobError>;
    /// Disables or enables a recurring job; false when it does not exist.
    async fn set_recurring_disabled(pool: &Pool<Self>, id: &str, disabled: bool) -> Result<bool, JobError>;
    /// Creates the job of a recurring definition. With `expected_next`, only if the
    /// definition still fires at that time (so two schedulers fire it once), moving it to
    /// `next_run_at`.
    async fn fire_recurring(
        pool: &Pool<Self>,
        rec: &RecurringJob,
        expected_next: Option<(i64, i64)>,
        now: i64,
        reason: &str,
    ) -> Result<Option<JobId>, JobError>;
}

/// Read-only queries behind the dashboard and the metrics (Hangfire's `IMonitoringApi`).
#[allow(async_fn_in_trait)]
pub(crate) trait MonitoringOps: sqlx::Database + Sized {
    /// A job by id.
    async fn get(pool: &Pool<Self>, id: JobId) -> Result<Option<JobRecord>, JobError>;
    /// A job's state history, oldest first.
    async fn history(pool: &Pool<Self>, id: JobId) -> Result<Vec<StateChange>, JobError>;
    /// A job's log lines, oldest first.
    async fn logs(pool: &Pool<Self>, id: JobId) -> Result<Vec<LogLine>, JobError>;
    /// Job counts per state, from the counter rows.
    async fn counts(pool: &Pool<Self>) -> Result<Vec<(JobState, i64)>, JobError>;
    /// Jobs in `state`, newest first.
    async fn list(pool: &Pool<Self>, state: JobState, offset: i64, limit: i64) -> Result<Vec<JobRecord>, JobError>;
    /// Jobs matching a dashboard filter, newest first.
    async fn list_filtered(
        pool: &Pool<Self>,
        filter: &crate::model::JobFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<JobRecord>, JobError>;
    /// The continuations of a job (at most 100).
    async fn continuations(pool: &Pool<Self>, parent: JobId) -> Result<Vec<JobRecord>, JobError>;
    /// Scheduled jobs that already ran (waiting for a retry).
    async fn count_retries(pool: &Pool<Self>) -> Result<i64, JobError>;
    /// Enqueued and processing jobs per queue.
    async fn queue_stats(pool: &Pool<Self>) -> Result<Vec<crate::model::QueueStats>, JobError>;
    /// `Enqueued` jobs of one queue.
    async fn queue_depth(pool: &Pool<Self>, queue: &str) -> Result<i64, JobError>;
    /// `(bucket, succeeded, failed)` per `bucket_us` since `since`, oldest first.
    async fn throughput(pool: &Pool<Self>, since: i64, bucket_us: i64) -> Result<Vec<(i64, i64, i64)>, JobError>;
    /// `(hour, succeeded, failed)` per hour since `since_hour` (hours since the epoch), from
    /// the counter rows.
    async fn finished_per_hour(pool: &Pool<Self>, since_hour: i64) -> Result<Vec<(i64, i64, i64)>, JobError>;
    /// Every recurring definition, by id.
    async fn list_recurring(pool: &Pool<Self>) -> Result<Vec<RecurringJob>, JobError>;
    /// One recurring definition.
    async fn get_recurring(pool: &Pool<Self>, id: &str) -> Result<Option<RecurringJob>, JobError>;
    /// Every registered server.
    async fn list_servers(pool: &Pool<Self>) -> Result<Vec<crate::model::ServerRecord>, JobError>;
}

/// Builds the insert for a new job.
pub(crate) fn prepare<'a>(job: &'a NewJob, now: i64) -> Result<InsertJob<'a>, JobError> {
    let payload = job.payload_json()?;
    let (state, run_at, reason) = match job.scheduled_for(now) {
        Some(at) => (JobState::Scheduled, at, Some(format!("Scheduled for {}", to_datetime(at).to_rfc3339()))),
        None => (JobState::Enqueued, now, None),
    };
    Ok(InsertJob {
        name: &job.name,
        queue: &job.queue,
        priority: job.priority,
        payload,
        state,
        run_at,
        max_attempts: job.max_attempts.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        unique_key: job.unique_key.as_deref(),
        concurrency_key: job.concurrency_key.as_deref(),
        parent_id: None,
        recurring_id: None,
        reason,
    })
}

/// Inserts a continuation on an open connection/transaction.
pub(crate) async fn insert_continuation<DB: TransactionOps>(
    conn: &mut DB::Connection,
    parent: JobId,
    job: &NewJob,
    now: i64,
) -> Result<JobId, JobError> {
    let mut insert = prepare(job, now)?;
    let parent_state = DB::lock_state(&mut *conn, parent).await?.ok_or(JobError::NotFound(parent))?;
    insert.parent_id = Some(parent);
    if parent_state == JobState::Succeeded {
        insert.state = JobState::Enqueued;
        insert.run_at = now;
        insert.reason = Some(format!("Parent job {parent} already succeeded"));
    } else {
        insert.state = JobState::Awaiting;
        insert.reason = Some(format!("Awaiting job {parent}"));
    }
    DB::insert_job(conn, &insert, now).await
}

/// Parses a stored state name; unknown names (from a newer schema) read as `Deleted`.
pub(crate) fn parse_state(s: &str) -> JobState {
    s.parse().unwrap_or(JobState::Deleted)
}

/// Folds rows `(bucket, state, count)` of finished jobs into `(bucket, succeeded, failed)`, one
/// per bucket, sorted by bucket: the dashboard's throughput and per-hour graphs. A state other
/// than `Succeeded` counts as failed (their queries select those two only).
pub(crate) fn fold_finished(
    rows: impl IntoIterator<Item = Result<(i64, String, i64), sqlx::Error>>,
) -> Result<Vec<(i64, i64, i64)>, JobError> {
    let mut out: Vec<(i64, i64, i64)> = Vec::new();
    for row in rows {
        let (bucket, state, n) = row?;
        let i = match out.iter().position(|x| x.0 == bucket) {
            Some(i) => i,
            None => {
                out.push((bucket, 0, 0));
                out.len() - 1
            }
        };
        if state == "Succeeded" {
            out[i].1 += n;
        } else {
            out[i].2 += n;
        }
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_rows_fold_into_sorted_buckets() {
        let rows = [(7, "Failed", 2), (3, "Succeeded", 5), (7, "Succeeded", 1), (3, "Failed", 4), (7, "Failed", 3)];
        let folded = fold_finished(rows.map(|(b, s, n)| Ok((b, s.to_string(), n)))).unwrap();
        assert_eq!(folded, [(3, 5, 4), (7, 1, 5)]);
        assert!(fold_finished([]).unwrap().is_empty());
    }

    #[test]
    fn a_row_that_cannot_be_read_is_an_error() {
        let rows = [Ok((1, "Succeeded".to_string(), 1)), Err(sqlx::Error::RowNotFound)];
        assert!(matches!(fold_finished(rows), Err(JobError::Database(_))));
    }
}
