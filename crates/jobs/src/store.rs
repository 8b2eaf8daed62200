//! `JobStore`: the one API over PostgreSQL and SQLite.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{Notify, broadcast};

use crate::db::{Storage, UpsertRecurring, prepare};
use crate::error::JobError;
use crate::model::{CancelOutcome, JobId, JobRecord, JobState, LogLine, NewJob, RecurringJob, StateChange};
use crate::time::{now_us, to_datetime};

pub(crate) struct StoreInner {
    /// The database, by role (`crate::db::Storage`): the one place that picks the backend.
    pub(crate) storage: Storage,
    /// Wakes this process's dispatchers (enqueues made through this store, NOTIFY on PostgreSQL).
    pub(crate) wake: Notify,
    /// Cancellation requests seen by this process (local `cancel` calls, NOTIFY on PostgreSQL).
    pub(crate) cancels: broadcast::Sender<JobId>,
    /// Job changes made by this process (see [`JobStore::subscribe_changes`]).
    pub(crate) changes: broadcast::Sender<()>,
}

/// The job store: enqueue, schedule, recurring definitions, continuations, cancellation and the
/// queries behind the dashboard, on PostgreSQL or SQLite. Cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    pub(crate) inner: Arc<StoreInner>,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore").field("backend", &self.backend_name()).finish()
    }
}

/// Connection options for [`JobStore::connect_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size (PostgreSQL default 10, SQLite default 4; `:memory:` always 1).
    pub max_connections: Option<u32>,
    /// SQLite busy timeout (default 10 s).
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: None, sqlite_busy_timeout: Duration::from_secs(10) }
    }
}

/// Parses a cron expression; five-field expressions (minute first) get a `0` seconds field.
pub(crate) fn parse_cron(expression: &str) -> Result<cron::Schedule, JobError> {
    let trimmed = expression.trim();
    let full = if trimmed.split_whitespace().count() == 5 { format!("0 {trimmed}") } else { trimmed.to_owned() };
    cron::Schedule::from_str(&full).map_err(|e| JobError::InvalidCron { expression: expression.to_owned(), reason: e.to_string() })
}

/// Parses an IANA time-zone name.
pub(crate) fn parse_tz(timezone: &str) -> Result<chrono_tz::Tz, JobError> {
    chrono_tz::Tz::from_str(timezone).map_err(|_| JobError::InvalidTimeZone(timezone.to_owned()))
}

/// The first fire time strictly after `after`, evaluated in `timezone`.
pub(crate) fn next_fire(expression: &str, timezone: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, JobError> {
    let schedule = parse_cron(expression)?;
    let tz = parse_tz(timezone)?;
    schedule
        .after(&after.with_timezone(&tz))
        .next()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| JobError::InvalidCron { expression: expression.to_owned(), reason: "never fires again".to_owned() })
}

impl JobStore {
    /// Connects to `location` and runs the migrations: a PostgreSQL URL (`postgres://…`,
    /// `postgresql://…`), a SQLite URL (`sqlite:…`), or a path to a SQLite file (created if
    /// missing, WAL mode, 10 s busy timeout).
    pub async fn connect(location: &str) -> Result<JobStore, JobError> {
        JobStore::connect_with(location, StoreOptions::default()).await
    }

    /// [`JobStore::connect`] with pool options.
    pub async fn connect_with(location: &str, options: StoreOptions) -> Result<JobStore, JobError> {
        let invalid = |reason: String| JobError::InvalidLocation { location: location.to_owned(), reason };
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            let pool = PgPoolOptions::new().max_connections(options.max_connections.unwrap_or(10)).connect(location).await?;
            return JobStore::from_pg_pool(pool).await;
        }
        if location.trim().is_empty() {
            return Err(invalid("empty location".to_owned()));
        }
        let memory = location.contains(":memory:") || location.contains("mode=memory");
        let base = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location).map_err(|e| invalid(e.to_string()))?
        } else if location.contains("://") {
            return Err(invalid("expected postgres://, postgresql://, sqlite: or a file path".to_owned()));
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let connect = base
            .create_if_missing(true)
            .journal_mode(if memory { SqliteJournalMode::Memory } else { SqliteJournalMode::Wal })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.sqlite_busy_timeout);
        let max = if memory { 1 } else { options.max_connections.unwrap_or(4) };
        let pool = SqlitePoolOptions::new().max_connections(max).connect_with(connect).await?;
        JobStore::from_sqlite_pool(pool).await
    }

    /// Uses the application's PostgreSQL pool (runs the migrations).
    pub async fn from_pg_pool(pool: PgPool) -> Result<JobStore, JobError> {
        Ok(JobStore::new(Storage::postgres(pool).await?))
    }

    /// Uses the application's SQLite pool (runs the migrations). Configure it with WAL and a
    /// busy timeout, as [`JobStore::connect`] does.
    pub async fn from_sqlite_pool(pool: SqlitePool) -> Result<JobStore, JobError> {
        Ok(JobStore::new(Storage::sqlite(pool).await?))
    }

    fn new(storage: Storage) -> JobStore {
        let (cancels, _) = broadcast::channel(1024);
        let (changes, _) = broadcast::channel(16);
        JobStore { inner: Arc::new(StoreInner { storage, wake: Notify::new(), cancels, changes }) }
    }

    /// The database behind this store, by role.
    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.storage.backend_name()
    }

    /// The PostgreSQL pool, if this store is on PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        self.inner.storage.pg_pool()
    }

    /// The SQLite pool, if this store is on SQLite.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        self.inner.storage.sqlite_pool()
    }

    /// Wakes this process's workers so they claim at once. Enqueues through the store do this
    /// themselves; call it after committing a transaction that used [`crate::enqueue_in_tx`] on
    /// SQLite (PostgreSQL is woken by NOTIFY at commit).
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
        self.changed();
    }

    /// A signal each time this process changed jobs (enqueued, claimed, finished, retried,
    /// requeued, deleted, promoted or reaped them); for live dashboards. Changes made by other
    /// processes are signalled there: publish the signal to every node (e.g. through a hub
    /// backplane) to see them all. Signals may be coalesced; a lagging receiver just missed some.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<()> {
        self.inner.changes.subscribe()
    }

    /// Signals a change to [`JobStore::subscribe_changes`] receivers.
    pub(crate) fn changed(&self) {
        let _ = self.inner.changes.send(());
    }

    /// Enqueues a job (fire-and-forget, or `Scheduled` if it has a delay). Returns its id, or,
    /// with a unique key held by an unfinished job, that job's id.
    pub async fn enqueue(&self, job: NewJob) -> Result<JobId, JobError> {
        let now = now_us();
        let insert = prepare(&job, now)?;
        let id = self.storage().admin().insert(&insert, now).await?;
        self.wake();
        Ok(id)
    }

    /// Enqueues `job` with unique key `key` unless a job with that key exists in any state,
    /// finished ones included (until [`JobStore::purge_finished`] removes them); returns the id
    /// of the job that holds the key. Unlike [`NewJob::unique_key`], which only guards unfinished
    /// jobs, this makes a repeated hand-over of one request — e.g. relaying a row of another
    /// database's outbox twice, after a crash before the row was deleted — create one job, even
    /// when the first one already ran.
    pub async fn enqueue_once(&self, key: &str, job: NewJob) -> Result<JobId, JobError> {
        let job = job.unique_key(key);
        let now = now_us();
        let insert = prepare(&job, now)?;
        let id = self.storage().admin().insert_once(key, &insert, now).await?;
        self.wake();
        Ok(id)
    }

    /// Enqueues many jobs in one transaction.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, JobError> {
        let now = now_us();
        let inserts = jobs.iter().map(|j| prepare(j, now)).collect::<Result<Vec<_>, _>>()?;
        let ids = self.storage().admin().insert_many(&inserts, now).await?;
        self.wake();
        Ok(ids)
    }

    /// Enqueues `job` to run after `delay` (state `Scheduled` until then).
    pub async fn schedule(&self, job: NewJob, delay: Duration) -> Result<JobId, JobError> {
        self.enqueue(job.delay(delay)).await
    }

    /// Adds a continuation: `job` waits (`Awaiting`) until job `parent` succeeds, then is
    /// enqueued. If the parent already succeeded it is enqueued at once.
    pub async fn continue_with(&self, parent: JobId, job: NewJob) -> Result<JobId, JobError> {
        let now = now_us();
        let id = self.storage().admin().continue_with(parent, &job, now).await?;
        self.wake();
        Ok(id)
    }

    /// Creates or replaces the recurring job `id`: `job` is enqueued at every time `cron`
    /// matches in `timezone` (IANA name, e.g. `"Europe/Paris"`). `cron` has 5 fields
    /// (minute first) or 6–7 (seconds first, optional year). Missed fire times while no worker
    /// ran are fired once, not replayed.
    pub async fn add_recurring(&self, id: &str, cron: &str, timezone: &str, job: NewJob) -> Result<(), JobError> {
        let next = next_fire(cron, timezone, Utc::now())?;
        let payload = job.payload_json()?;
        let rec = UpsertRecurring {
            id,
            cron,
            timezone,
            name: &job.name,
            queue: &job.queue,
            priority: job.priority,
            payload,
            max_attempts: job.max_attempts.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            next_run_at: next.timestamp_micros(),
        };
        self.storage().admin().upsert_recurring(&rec, now_us()).await
    }

    /// Removes a recurring job definition (jobs it already created stay). Returns whether it existed.
    pub async fn remove_recurring(&self, id: &str) -> Result<bool, JobError> {
        self.storage().admin().remove_recurring(id).await
    }

    /// All recurring job definitions.
    pub async fn recurring_jobs(&self) -> Result<Vec<RecurringJob>, JobError> {
        self.storage().monitoring().list_recurring().await
    }

    /// Enqueues the recurring job's job now, without changing its schedule.
    pub async fn trigger_recurring(&self, id: &str) -> Result<JobId, JobError> {
        let rec = self.storage().monitoring().get_recurring(id).await?.ok_or_else(|| JobError::RecurringNotFound(id.to_owned()))?;
        let reason = format!("Triggered manually from recurring job {id}");
        let created = self.storage().admin().fire_recurring(&rec, None, now_us(), &reason).await?;
        self.wake();
        created.ok_or_else(|| JobError::RecurringNotFound(id.to_owned()))
    }

    /// Fires every recurring job whose time has come (called by workers' maintenance loop).
    pub(crate) async fn fire_due_recurring(&self) -> Result<usize, JobError> {
        let now = Utc::now();
        let mut fired = 0;
        for rec in self.recurring_jobs().await? {
            if rec.disabled || rec.next_run_at > now {
                continue;
            }
            let next = match next_fire(&rec.cron, &rec.timezone, now) {
                Ok(t) => t.timestamp_micros(),
                Err(e) => {
                    tracing::warn!(recurring = %rec.id, error = %e, "recurring job has an invalid schedule");
                    continue;
                }
            };
            let expected = (rec.next_run_at.timestamp_micros(), next);
            let reason = format!("Triggered by recurring job {}", rec.id);
            let created = self.storage().admin().fire_recurring(&rec, Some(expected), now.timestamp_micros(), &reason).await?;
            if created.is_some() {
                fired += 1;
            }
        }
        if fired > 0 {
            self.wake();
        }
        Ok(fired)
    }

    /// Cancels a job: one that has not started becomes `Deleted`; a running one gets its
    /// cancellation token fired (its handler decides how to stop; if it returns an error the
    /// job becomes `Deleted`, not retried).
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, JobError> {
        let outcome = self.storage().admin().cancel(id, now_us()).await?;
        if outcome == CancelOutcome::Signalled {
            let _ = self.inner.cancels.send(id);
        }
        self.changed();
        Ok(outcome)
    }

    /// Enqueues a finished, failed, deleted or scheduled job again (attempts reset to 0).
    pub async fn requeue(&self, id: JobId) -> Result<(), JobError> {
        self.storage().admin().requeue(id, now_us(), "Requeued").await?;
        self.wake();
        Ok(())
    }

    /// Moves a job to `Deleted`. A running job's worker can no longer write its result and
    /// gets its cancellation token fired.
    pub async fn delete(&self, id: JobId) -> Result<(), JobError> {
        self.storage().admin().delete(id, now_us(), "Deleted").await?;
        let _ = self.inner.cancels.send(id);
        self.changed();
        Ok(())
    }

    /// A job by id.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobError> {
        self.storage().monitoring().get(id).await
    }

    /// A job's state history, oldest first.
    pub async fn history(&self, id: JobId) -> Result<Vec<StateChange>, JobError> {
        self.storage().monitoring().history(id).await
    }

    /// A job's log lines, oldest first.
    pub async fn logs(&self, id: JobId) -> Result<Vec<LogLine>, JobError> {
        self.storage().monitoring().logs(id).await
    }

    /// Job counts per state (every state listed, zero included).
    pub async fn counts(&self) -> Result<Vec<(JobState, i64)>, JobError> {
        self.storage().monitoring().counts().await
    }

    /// Jobs in `state`, newest first, `offset`/`limit` paging.
    pub async fn list(&self, state: JobState, offset: i64, limit: i64) -> Result<Vec<JobRecord>, JobError> {
        self.storage().monitoring().list(state, offset.max(0), limit.clamp(1, 1000)).await
    }

    /// Jobs matching `filter` (state, retries only, id or name search), newest first,
    /// `offset`/`limit` paging.
    pub async fn list_filtered(&self, filter: &crate::model::JobFilter, offset: i64, limit: i64) -> Result<Vec<JobRecord>, JobError> {
        self.storage().monitoring().list_filtered(filter, offset.max(0), limit.clamp(1, 1000)).await
    }

    /// The continuations of job `parent` (at most 100), oldest first.
    pub async fn continuations(&self, parent: JobId) -> Result<Vec<JobRecord>, JobError> {
        self.storage().monitoring().continuations(parent).await
    }

    /// How many `Scheduled` jobs already ran (waiting for a retry).
    pub async fn count_retries(&self) -> Result<i64, JobError> {
        self.storage().monitoring().count_retries().await
    }

    /// Every queue with enqueued or processing jobs, by name.
    pub async fn queues(&self) -> Result<Vec<crate::model::QueueStats>, JobError> {
        let mut queues = self.storage().monitoring().queue_stats().await?;
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(queues)
    }

    /// Jobs that succeeded and failed per `bucket` over the last `span`, one entry per bucket
    /// (zeros included), oldest first. From the state history, so purged jobs no longer count.
    pub async fn throughput(&self, span: Duration, bucket: Duration) -> Result<Vec<crate::model::Throughput>, JobError> {
        let bucket_us = crate::time::dur_us(bucket).max(1);
        let now = now_us();
        let last = now / bucket_us;
        let buckets = (crate::time::dur_us(span) / bucket_us).clamp(1, 10_000);
        let first = last - buckets + 1;
        let rows = self.storage().monitoring().throughput(first * bucket_us, bucket_us).await?;
        let mut out: Vec<crate::model::Throughput> =
            (first..=last).map(|b| crate::model::Throughput { at: to_datetime(b * bucket_us), succeeded: 0, failed: 0 }).collect();
        for (b, succeeded, failed) in rows {
            if let Some(slot) = usize::try_from(b - first).ok().and_then(|i| out.get_mut(i)) {
                slot.succeeded += succeeded;
                slot.failed += failed;
            }
        }
        Ok(out)
    }

    /// Jobs that succeeded and failed per hour over the last `hours` hours (at most 8 days),
    /// one entry per hour (zeros included), oldest first. From counters kept as jobs change
    /// state, so this costs the same with a million jobs; jobs purged later still count.
    pub async fn finished_per_hour(&self, hours: i64) -> Result<Vec<crate::model::Throughput>, JobError> {
        const HOUR_US: i64 = 3_600_000_000;
        let last = now_us() / HOUR_US;
        let first = last - hours.clamp(1, 8 * 24) + 1;
        let rows = self.storage().monitoring().finished_per_hour(first).await?;
        let mut out: Vec<crate::model::Throughput> =
            (first..=last).map(|h| crate::model::Throughput { at: to_datetime(h * HOUR_US), succeeded: 0, failed: 0 }).collect();
        for (h, succeeded, failed) in rows {
            if let Some(slot) = usize::try_from(h - first).ok().and_then(|i| out.get_mut(i)) {
                slot.succeeded += succeeded;
                slot.failed += failed;
            }
        }
        Ok(out)
    }

    /// Folds the counter rows behind [`JobStore::counts`] and [`JobStore::finished_per_hour`]
    /// (workers do this in their maintenance loop).
    pub async fn fold_counts(&self) -> Result<(), JobError> {
        let keep_from_hour = now_us() / 3_600_000_000 - 8 * 24;
        self.storage().maintenance().fold_counts(keep_from_hour).await
    }

    /// Disables (or enables again) the recurring job `id`: a disabled one does not fire.
    pub async fn set_recurring_disabled(&self, id: &str, disabled: bool) -> Result<(), JobError> {
        let found = self.storage().admin().set_recurring_disabled(id, disabled).await?;
        if found { Ok(()) } else { Err(JobError::RecurringNotFound(id.to_owned())) }
    }

    /// Every registered job server (running worker), with its last heartbeat. A server that
    /// stopped gracefully is gone; one that died stays until it has been silent for
    /// five minutes (the worker's `SERVER_TIMEOUT`).
    pub async fn servers(&self) -> Result<Vec<crate::model::ServerRecord>, JobError> {
        self.storage().monitoring().list_servers().await
    }

    pub(crate) async fn upsert_server(&self, server: &crate::model::ServerRecord) -> Result<(), JobError> {
        self.storage().worker().upsert_server(server).await
    }

    pub(crate) async fn server_heartbeat(&self, id: &str) -> Result<bool, JobError> {
        let now = now_us();
        self.storage().worker().server_heartbeat(id, now).await
    }

    /// Removes server `id` (if given) and every server silent for longer than `timeout`.
    pub(crate) async fn remove_servers(&self, id: Option<&str>, timeout: Duration) -> Result<u64, JobError> {
        let before = now_us().saturating_sub(crate::time::dur_us(timeout));
        self.storage().maintenance().remove_servers(id, before).await
    }

    /// Number of `Enqueued` jobs in `queue`.
    pub async fn queue_depth(&self, queue: &str) -> Result<i64, JobError> {
        self.storage().monitoring().queue_depth(queue).await
    }

    /// Deletes `Succeeded` and `Deleted` jobs (with their history and logs) that finished more
    /// than `older_than` ago; returns how many. Workers run this with their retention setting.
    pub async fn purge_finished(&self, older_than: Duration) -> Result<u64, JobError> {
        let cutoff = now_us().saturating_sub(crate::time::dur_us(older_than));
        let mut total = 0;
        loop {
            let n = self.storage().maintenance().purge_finished(cutoff, 500).await?;
            total += n;
            if n < 500 {
                return Ok(total);
            }
        }
    }
}
