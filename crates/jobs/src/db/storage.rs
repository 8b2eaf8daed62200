//! Backend dispatch: [`Storage`] is the one place that matches on PostgreSQL or SQLite. Each
//! role handle ([`Storage::worker`], [`Storage::maintenance`], [`Storage::admin`],
//! [`Storage::monitoring`]) matches once per operation and calls that backend's implementation
//! of the role; operations made of several steps in one transaction are written once, generic
//! over the database, and instantiated for both.

use sqlx::postgres::{PgListener, PgPool};
use sqlx::sqlite::SqlitePool;
use sqlx::{Pool, Postgres, Sqlite};

use super::{
    AdminOps, ClaimedJob, FailOutcome, InsertJob, MaintenanceOps, MonitoringOps, TransactionOps, UpsertRecurring, WorkerOps, migrations, pg,
};
use crate::error::JobError;
use crate::model::{
    CancelOutcome, JobFilter, JobId, JobRecord, JobState, Lease, LogLine, NewJob, QueueStats, RecurringJob, ServerRecord, StateChange,
};

/// The database behind a job store (Hangfire's `JobStorage`): a PostgreSQL or SQLite pool.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    /// PostgreSQL: `FOR UPDATE SKIP LOCKED` claims, LISTEN/NOTIFY wake-ups.
    Postgres(PgPool),
    /// SQLite: one writer, workers poll.
    Sqlite(SqlitePool),
}

impl Storage {
    /// Migrates the job tables on `pool`.
    pub(crate) async fn postgres(pool: PgPool) -> Result<Storage, JobError> {
        migrations::migrate_pg(&pool).await?;
        Ok(Storage::Postgres(pool))
    }

    /// Migrates the job tables on `pool`.
    pub(crate) async fn sqlite(pool: SqlitePool) -> Result<Storage, JobError> {
        migrations::migrate_sqlite(&pool).await?;
        Ok(Storage::Sqlite(pool))
    }

    /// `"postgres"` or `"sqlite"`.
    pub(crate) fn backend_name(&self) -> &'static str {
        match self {
            Storage::Postgres(_) => "postgres",
            Storage::Sqlite(_) => "sqlite",
        }
    }

    /// The PostgreSQL pool, if on PostgreSQL.
    pub(crate) fn pg_pool(&self) -> Option<&PgPool> {
        match self {
            Storage::Postgres(p) => Some(p),
            Storage::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, if on SQLite.
    pub(crate) fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match self {
            Storage::Sqlite(p) => Some(p),
            Storage::Postgres(_) => None,
        }
    }

    /// What a worker does with the jobs it runs.
    pub(crate) fn worker(&self) -> WorkerStorage<'_> {
        WorkerStorage(self)
    }

    /// The sweeps of the workers' maintenance loop.
    pub(crate) fn maintenance(&self) -> MaintenanceStorage<'_> {
        MaintenanceStorage(self)
    }

    /// Jobs created and changed on request (enqueue, cancel, requeue, delete, recurring).
    pub(crate) fn admin(&self) -> AdminStorage<'_> {
        AdminStorage(self)
    }

    /// Read-only queries for the dashboard and metrics.
    pub(crate) fn monitoring(&self) -> MonitoringApi<'_> {
        MonitoringApi(self)
    }
}

/// What a worker does with the jobs it runs: [`WorkerOps`] on the store's backend.
#[derive(Clone, Copy)]
pub(crate) struct WorkerStorage<'s>(&'s Storage);

impl WorkerStorage<'_> {
    /// Wake-ups from other processes: a LISTEN connection on PostgreSQL; on SQLite, which has
    /// no notifications, a listener that never fires (workers poll).
    pub(crate) async fn wake_listener(&self) -> Result<WakeListener, JobError> {
        Ok(match self.0 {
            Storage::Postgres(pool) => WakeListener(Some(pg::listen(pool).await?)),
            Storage::Sqlite(_) => WakeListener(None),
        })
    }

    /// Claims up to `limit` enqueued jobs of `queue` for `worker`.
    pub(crate) async fn claim(&self, queue: &str, limit: i64, worker: &str, now: i64, lease_us: i64) -> Result<Vec<ClaimedJob>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::claim(p, queue, limit, worker, now, lease_us).await,
            Storage::Sqlite(p) => Sqlite::claim(p, queue, limit, worker, now, lease_us).await,
        }
    }

    /// Completes many jobs at once; returns how many were still held.
    pub(crate) async fn complete_batch(&self, leases: &[Lease], worker: &str, now: i64) -> Result<u64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::complete_batch(p, leases, worker, now).await,
            Storage::Sqlite(p) => Sqlite::complete_batch(p, leases, worker, now).await,
        }
    }

    /// Fenced exit from `Processing` other than success, in a transaction of its own.
    pub(crate) async fn finish_failed(&self, lease: Lease, outcome: &FailOutcome, worker: &str, now: i64) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => finish_failed(p, lease, outcome, worker, now).await,
            Storage::Sqlite(p) => finish_failed(p, lease, outcome, worker, now).await,
        }
    }

    /// Extends leases; returns `(id, cancel_requested)` for each lease still held.
    pub(crate) async fn heartbeat(&self, leases: &[Lease], expires_at: i64) -> Result<Vec<(JobId, bool)>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::heartbeat(p, leases, expires_at).await,
            Storage::Sqlite(p) => Sqlite::heartbeat(p, leases, expires_at).await,
        }
    }

    /// Whether the job is still `Processing` under this token.
    pub(crate) async fn lease_held(&self, lease: Lease) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::lease_held(p, lease).await,
            Storage::Sqlite(p) => Sqlite::lease_held(p, lease).await,
        }
    }

    /// Fenced progress report; false when the lease is stale.
    pub(crate) async fn progress(&self, lease: Lease, pct: i32, now: i64) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::progress(p, lease, pct, now).await,
            Storage::Sqlite(p) => Sqlite::progress(p, lease, pct, now).await,
        }
    }

    /// Fenced log line; false when the lease is stale.
    pub(crate) async fn log_line(&self, lease: Lease, line: &str, now: i64) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::log_line(p, lease, line, now).await,
            Storage::Sqlite(p) => Sqlite::log_line(p, lease, line, now).await,
        }
    }

    /// Registers a job server (or refreshes its row).
    pub(crate) async fn upsert_server(&self, server: &ServerRecord) -> Result<(), JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::upsert_server(p, server).await,
            Storage::Sqlite(p) => Sqlite::upsert_server(p, server).await,
        }
    }

    /// A server's heartbeat; false when its row is gone.
    pub(crate) async fn server_heartbeat(&self, id: &str, now: i64) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::server_heartbeat(p, id, now).await,
            Storage::Sqlite(p) => Sqlite::server_heartbeat(p, id, now).await,
        }
    }
}

/// What wakes a worker besides its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wakeup {
    /// Jobs became ready in some queue.
    Queue,
    /// A running job is to be cancelled.
    Cancel(JobId),
}

/// Wake-ups from other processes (see [`WorkerStorage::wake_listener`]).
pub(crate) struct WakeListener(Option<PgListener>);

impl WakeListener {
    /// The next wake-up. After an error, wake-ups may have been missed; the next call
    /// reconnects. Never resolves on SQLite.
    pub(crate) async fn recv(&mut self) -> Result<Wakeup, JobError> {
        match &mut self.0 {
            Some(listener) => pg::next_wakeup(listener).await,
            None => std::future::pending().await,
        }
    }
}

/// The sweeps of the workers' maintenance loop: [`MaintenanceOps`] on the store's backend.
#[derive(Clone, Copy)]
pub(crate) struct MaintenanceStorage<'s>(&'s Storage);

impl MaintenanceStorage<'_> {
    /// Moves due `Scheduled` jobs to `Enqueued`.
    pub(crate) async fn promote_scheduled(&self, now: i64, worker: &str) -> Result<u64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::promote_scheduled(p, now, worker).await,
            Storage::Sqlite(p) => Sqlite::promote_scheduled(p, now, worker).await,
        }
    }

    /// Moves `Processing` jobs whose lease expired back to `Enqueued`.
    pub(crate) async fn reap_expired(&self, now: i64, worker: &str) -> Result<u64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::reap_expired(p, now, worker).await,
            Storage::Sqlite(p) => Sqlite::reap_expired(p, now, worker).await,
        }
    }

    /// Folds the counter delta rows into the totals.
    pub(crate) async fn fold_counts(&self, keep_from_hour: i64) -> Result<(), JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::fold_counts(p, keep_from_hour).await,
            Storage::Sqlite(p) => Sqlite::fold_counts(p, keep_from_hour).await,
        }
    }

    /// Deletes up to `limit` jobs that finished before `finished_before`.
    pub(crate) async fn purge_finished(&self, finished_before: i64, limit: i64) -> Result<u64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::purge_finished(p, finished_before, limit).await,
            Storage::Sqlite(p) => Sqlite::purge_finished(p, finished_before, limit).await,
        }
    }

    /// Removes server `id` and every server silent since `heartbeat_before`.
    pub(crate) async fn remove_servers(&self, id: Option<&str>, heartbeat_before: i64) -> Result<u64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::remove_servers(p, id, heartbeat_before).await,
            Storage::Sqlite(p) => Sqlite::remove_servers(p, id, heartbeat_before).await,
        }
    }
}

/// Jobs created and changed on request: [`TransactionOps`] in transactions of the store's own,
/// and [`AdminOps`], on the store's backend.
#[derive(Clone, Copy)]
pub(crate) struct AdminStorage<'s>(&'s Storage);

impl AdminStorage<'_> {
    /// Inserts one job.
    pub(crate) async fn insert(&self, insert: &InsertJob<'_>, now: i64) -> Result<JobId, JobError> {
        match self.0 {
            // One statement (job, history and NOTIFY in a CTE): no transaction needed.
            Storage::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                Postgres::insert_job(&mut conn, insert, now).await
            }
            // Several statements: a transaction, so no worker sees the job before its history.
            Storage::Sqlite(pool) => insert_one(pool, insert, now).await,
        }
    }

    /// Inserts `insert` unless a job with unique key `key` exists in any state; returns the id
    /// of the job holding the key.
    pub(crate) async fn insert_once(&self, key: &str, insert: &InsertJob<'_>, now: i64) -> Result<JobId, JobError> {
        match self.0 {
            Storage::Postgres(p) => insert_once(p, key, insert, now).await,
            Storage::Sqlite(p) => insert_once(p, key, insert, now).await,
        }
    }

    /// Inserts many jobs in one transaction.
    pub(crate) async fn insert_many(&self, inserts: &[InsertJob<'_>], now: i64) -> Result<Vec<JobId>, JobError> {
        match self.0 {
            Storage::Postgres(p) => insert_many(p, inserts, now).await,
            Storage::Sqlite(p) => insert_many(p, inserts, now).await,
        }
    }

    /// Adds a continuation of `parent`.
    pub(crate) async fn continue_with(&self, parent: JobId, job: &NewJob, now: i64) -> Result<JobId, JobError> {
        match self.0 {
            Storage::Postgres(p) => continue_with(p, parent, job, now).await,
            Storage::Sqlite(p) => continue_with(p, parent, job, now).await,
        }
    }

    /// Deletes a job that has not started, or signals a running one.
    pub(crate) async fn cancel(&self, id: JobId, now: i64) -> Result<CancelOutcome, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::cancel(p, id, now).await,
            Storage::Sqlite(p) => Sqlite::cancel(p, id, now).await,
        }
    }

    /// Enqueues a job that is not running again.
    pub(crate) async fn requeue(&self, id: JobId, now: i64, reason: &str) -> Result<(), JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::requeue(p, id, now, reason).await,
            Storage::Sqlite(p) => Sqlite::requeue(p, id, now, reason).await,
        }
    }

    /// Moves a job to `Deleted`.
    pub(crate) async fn delete(&self, id: JobId, now: i64, reason: &str) -> Result<(), JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::delete(p, id, now, reason).await,
            Storage::Sqlite(p) => Sqlite::delete(p, id, now, reason).await,
        }
    }

    /// Creates or replaces a recurring definition.
    pub(crate) async fn upsert_recurring(&self, rec: &UpsertRecurring<'_>, now: i64) -> Result<(), JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::upsert_recurring(p, rec, now).await,
            Storage::Sqlite(p) => Sqlite::upsert_recurring(p, rec, now).await,
        }
    }

    /// Removes a recurring definition; false when it did not exist.
    pub(crate) async fn remove_recurring(&self, id: &str) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::remove_recurring(p, id).await,
            Storage::Sqlite(p) => Sqlite::remove_recurring(p, id).await,
        }
    }

    /// Disables or enables a recurring job; false when it does not exist.
    pub(crate) async fn set_recurring_disabled(&self, id: &str, disabled: bool) -> Result<bool, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::set_recurring_disabled(p, id, disabled).await,
            Storage::Sqlite(p) => Sqlite::set_recurring_disabled(p, id, disabled).await,
        }
    }

    /// Creates the job of a recurring definition (see [`AdminOps::fire_recurring`]).
    pub(crate) async fn fire_recurring(
        &self,
        rec: &RecurringJob,
        expected_next: Option<(i64, i64)>,
        now: i64,
        reason: &str,
    ) -> Result<Option<JobId>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::fire_recurring(p, rec, expected_next, now, reason).await,
            Storage::Sqlite(p) => Sqlite::fire_recurring(p, rec, expected_next, now, reason).await,
        }
    }
}

/// Read-only queries (Hangfire's `IMonitoringApi`): [`MonitoringOps`] on the store's backend.
#[derive(Clone, Copy)]
pub(crate) struct MonitoringApi<'s>(&'s Storage);

impl MonitoringApi<'_> {
    /// A job by id.
    pub(crate) async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::get(p, id).await,
            Storage::Sqlite(p) => Sqlite::get(p, id).await,
        }
    }

    /// A job's state history, oldest first.
    pub(crate) async fn history(&self, id: JobId) -> Result<Vec<StateChange>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::history(p, id).await,
            Storage::Sqlite(p) => Sqlite::history(p, id).await,
        }
    }

    /// A job's log lines, oldest first.
    pub(crate) async fn logs(&self, id: JobId) -> Result<Vec<LogLine>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::logs(p, id).await,
            Storage::Sqlite(p) => Sqlite::logs(p, id).await,
        }
    }

    /// Job counts per state.
    pub(crate) async fn counts(&self) -> Result<Vec<(JobState, i64)>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::counts(p).await,
            Storage::Sqlite(p) => Sqlite::counts(p).await,
        }
    }

    /// Jobs in `state`, newest first.
    pub(crate) async fn list(&self, state: JobState, offset: i64, limit: i64) -> Result<Vec<JobRecord>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::list(p, state, offset, limit).await,
            Storage::Sqlite(p) => Sqlite::list(p, state, offset, limit).await,
        }
    }

    /// Jobs matching `filter`, newest first.
    pub(crate) async fn list_filtered(&self, filter: &JobFilter, offset: i64, limit: i64) -> Result<Vec<JobRecord>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::list_filtered(p, filter, offset, limit).await,
            Storage::Sqlite(p) => Sqlite::list_filtered(p, filter, offset, limit).await,
        }
    }

    /// The continuations of `parent` (at most 100).
    pub(crate) async fn continuations(&self, parent: JobId) -> Result<Vec<JobRecord>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::continuations(p, parent).await,
            Storage::Sqlite(p) => Sqlite::continuations(p, parent).await,
        }
    }

    /// Scheduled jobs that already ran.
    pub(crate) async fn count_retries(&self) -> Result<i64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::count_retries(p).await,
            Storage::Sqlite(p) => Sqlite::count_retries(p).await,
        }
    }

    /// Enqueued and processing jobs per queue.
    pub(crate) async fn queue_stats(&self) -> Result<Vec<QueueStats>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::queue_stats(p).await,
            Storage::Sqlite(p) => Sqlite::queue_stats(p).await,
        }
    }

    /// `Enqueued` jobs of `queue`.
    pub(crate) async fn queue_depth(&self, queue: &str) -> Result<i64, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::queue_depth(p, queue).await,
            Storage::Sqlite(p) => Sqlite::queue_depth(p, queue).await,
        }
    }

    /// `(bucket, succeeded, failed)` per `bucket_us` since `since`.
    pub(crate) async fn throughput(&self, since: i64, bucket_us: i64) -> Result<Vec<(i64, i64, i64)>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::throughput(p, since, bucket_us).await,
            Storage::Sqlite(p) => Sqlite::throughput(p, since, bucket_us).await,
        }
    }

    /// `(hour, succeeded, failed)` per hour since `since_hour`.
    pub(crate) async fn finished_per_hour(&self, since_hour: i64) -> Result<Vec<(i64, i64, i64)>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::finished_per_hour(p, since_hour).await,
            Storage::Sqlite(p) => Sqlite::finished_per_hour(p, since_hour).await,
        }
    }

    /// Every recurring definition.
    pub(crate) async fn list_recurring(&self) -> Result<Vec<RecurringJob>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::list_recurring(p).await,
            Storage::Sqlite(p) => Sqlite::list_recurring(p).await,
        }
    }

    /// One recurring definition.
    pub(crate) async fn get_recurring(&self, id: &str) -> Result<Option<RecurringJob>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::get_recurring(p, id).await,
            Storage::Sqlite(p) => Sqlite::get_recurring(p, id).await,
        }
    }

    /// Every registered server.
    pub(crate) async fn list_servers(&self) -> Result<Vec<ServerRecord>, JobError> {
        match self.0 {
            Storage::Postgres(p) => Postgres::list_servers(p).await,
            Storage::Sqlite(p) => Sqlite::list_servers(p).await,
        }
    }
}

// Operations of several steps in one transaction, written once for both databases.

async fn finish_failed<DB: TransactionOps>(
    pool: &Pool<DB>,
    lease: Lease,
    outcome: &FailOutcome,
    worker: &str,
    now: i64,
) -> Result<bool, JobError> {
    let mut tx = DB::begin_write(pool).await?;
    let written = DB::finish_failed(&mut *tx, lease, outcome, worker, now).await?;
    tx.commit().await?;
    Ok(written)
}

async fn insert_one<DB: TransactionOps>(pool: &Pool<DB>, insert: &InsertJob<'_>, now: i64) -> Result<JobId, JobError> {
    let mut tx = DB::begin_write(pool).await?;
    let id = DB::insert_job(&mut *tx, insert, now).await?;
    tx.commit().await?;
    Ok(id)
}

async fn insert_once<DB: TransactionOps>(pool: &Pool<DB>, key: &str, insert: &InsertJob<'_>, now: i64) -> Result<JobId, JobError> {
    let mut tx = DB::begin_write(pool).await?;
    DB::lock_unique_key(&mut *tx, key).await?;
    let id = match DB::find_unique_key(&mut *tx, key).await? {
        Some(existing) => existing,
        None => DB::insert_job(&mut *tx, insert, now).await?,
    };
    tx.commit().await?;
    Ok(id)
}

async fn insert_many<DB: TransactionOps>(pool: &Pool<DB>, inserts: &[InsertJob<'_>], now: i64) -> Result<Vec<JobId>, JobError> {
    let mut tx = DB::begin_write(pool).await?;
    let mut ids = Vec::with_capacity(inserts.len());
    for insert in inserts {
        ids.push(DB::insert_job(&mut *tx, insert, now).await?);
    }
    tx.commit().await?;
    Ok(ids)
}

async fn continue_with<DB: TransactionOps>(pool: &Pool<DB>, parent: JobId, job: &NewJob, now: i64) -> Result<JobId, JobError> {
    let mut tx = DB::begin_write(pool).await?;
    let id = super::insert_continuation::<DB>(&mut *tx, parent, job, now).await?;
    tx.commit().await?;
    Ok(id)
}
