//! PostgreSQL: `FOR UPDATE SKIP LOCKED` claims in batches, LISTEN/NOTIFY wake-ups, and
//! single-round-trip CTEs on the hot path (enqueue, claim, complete).

use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Pool, Postgres, Row};

use super::{AdminOps, MaintenanceOps, MonitoringOps, TransactionOps, WorkerOps};
use super::{ClaimedJob, FailOutcome, InsertJob, UpsertRecurring, Wakeup};
use crate::error::JobError;
use crate::model::{CancelOutcome, JobId, JobRecord, JobState, Lease, LogLine, RecurringJob, StateChange};

/// NOTIFY channel that wakes workers; the payload is the queue name.
const WAKE_CHANNEL: &str = "bg_jobs";
/// NOTIFY channel that cancels a running job; the payload is the job id.
const CANCEL_CHANNEL: &str = "bg_jobs_cancel";

/// A LISTEN connection on both channels.
pub(super) async fn listen(pool: &Pool<Postgres>) -> Result<PgListener, JobError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([WAKE_CHANNEL, CANCEL_CHANNEL]).await?;
    Ok(listener)
}

/// The next wake-up from `listener`; a cancellation whose payload is not a job id is skipped.
pub(super) async fn next_wakeup(listener: &mut PgListener) -> Result<Wakeup, JobError> {
    loop {
        let notification = listener.recv().await?;
        if notification.channel() != CANCEL_CHANNEL {
            return Ok(Wakeup::Queue);
        }
        if let Ok(id) = notification.payload().parse::<JobId>() {
            return Ok(Wakeup::Cancel(id));
        }
    }
}

async fn history(
    conn: &mut PgConnection,
    id: JobId,
    state: JobState,
    at: i64,
    worker: Option<&str>,
    reason: Option<&str>,
) -> Result<(), JobError> {
    sqlx::query("INSERT INTO bg_job_states (job_id, state, at, worker, reason) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(state.as_str())
        .bind(at)
        .bind(worker)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

const CLAIM_SQL: &str = "\
WITH c AS (
  SELECT j.id FROM bg_jobs j
  WHERE j.state = 'Enqueued' AND j.queue = $1
    AND (j.concurrency_key IS NULL OR (
      NOT EXISTS (SELECT 1 FROM bg_jobs p WHERE p.concurrency_key = j.concurrency_key AND p.state = 'Processing')
      AND j.id = (SELECT min(e.id) FROM bg_jobs e WHERE e.concurrency_key = j.concurrency_key AND e.state = 'Enqueued')))
  ORDER BY j.priority DESC, j.id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE bg_jobs j SET state = 'Processing', attempt = j.attempt + 1,
    lease_token = GREATEST(j.lease_token + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::int8),
    lease_owner = $3, lease_expires_at = $4, updated_at = $5, cancel_requested = FALSE, progress = NULL
  FROM c WHERE j.id = c.id
  RETURNING j.id, j.name, j.queue, j.payload, j.attempt, j.max_attempts, j.lease_token, j.created_at, j.run_at, j.priority
), h AS (
  INSERT INTO bg_job_states (job_id, state, at, worker, reason) SELECT id, 'Processing', $5, $3, NULL FROM u
)
SELECT * FROM u";

const COMPLETE_BATCH_SQL: &str = "\
WITH d AS (
  SELECT * FROM unnest($1::int8[], $2::int8[]) AS d(id, token)
), done AS (
  UPDATE bg_jobs j SET state = 'Succeeded', lease_owner = NULL, lease_expires_at = NULL, updated_at = $3, finished_at = $3
  FROM d WHERE j.id = d.id AND j.lease_token = d.token AND j.state = 'Processing'
  RETURNING j.id
), h AS (
  INSERT INTO bg_job_states (job_id, state, at, worker, reason) SELECT id, 'Succeeded', $3, $4, NULL FROM done
), cont AS (
  UPDATE bg_jobs c SET state = 'Enqueued', run_at = $3, updated_at = $3
  FROM done WHERE c.parent_id = done.id AND c.state = 'Awaiting'
  RETURNING c.id, c.queue, c.parent_id
), h2 AS (
  INSERT INTO bg_job_states (job_id, state, at, worker, reason)
  SELECT id, 'Enqueued', $3, $4, 'Parent job ' || parent_id || ' succeeded' FROM cont
), n AS (
  SELECT pg_notify('bg_jobs', q) FROM (SELECT DISTINCT queue AS q FROM cont) x
)
SELECT (SELECT count(*) FROM done) AS done, (SELECT count(*) FROM n) AS notified";

const INSERT_SQL: &str = "\
WITH j AS (
  INSERT INTO bg_jobs (name, queue, priority, payload, state, run_at, max_attempts, unique_key, concurrency_key,
    parent_id, recurring_id, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
  ON CONFLICT DO NOTHING
  RETURNING id, queue, state
), h AS (
  INSERT INTO bg_job_states (job_id, state, at, worker, reason) SELECT id, state, $12, NULL, $13 FROM j
), n AS (
  SELECT pg_notify('bg_jobs', queue) FROM j WHERE state = 'Enqueued'
)
SELECT id, (SELECT count(*) FROM n) AS notified FROM j";

const PROMOTE_SQL: &str = "\
WITH d AS (
  SELECT id FROM bg_jobs WHERE state = 'Scheduled' AND run_at <= $1 ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE bg_jobs j SET state = 'Enqueued', updated_at = $1 FROM d WHERE j.id = d.id RETURNING j.id, j.queue
), h AS (
  INSERT INTO bg_job_states (job_id, state, at, worker, reason) SELECT id, 'Enqueued', $1, $2, 'Scheduled time reached' FROM u
), n AS (
  SELECT pg_notify('bg_jobs', q) FROM (SELECT DISTINCT queue AS q FROM u) x
)
SELECT (SELECT count(*) FROM u) AS moved, (SELECT count(*) FROM n) AS notified";

const REAP_SQL: &str = "\
WITH d AS (
  SELECT id, lease_owner AS owner FROM bg_jobs WHERE state = 'Processing' AND lease_expires_at < $1
  ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE bg_jobs j SET state = 'Enqueued', lease_owner = NULL, lease_expires_at = NULL, cancel_requested = FALSE,
    updated_at = $1
  FROM d WHERE j.id = d.id RETURNING j.id, j.queue, d.owner
), h AS (
  INSERT INTO bg_job_states (job_id, state, at, worker, reason)
  SELECT id, 'Enqueued', $1, $2, 'Lease of worker ' || COALESCE(owner, '?') || ' expired; requeued' FROM u
), n AS (
  SELECT pg_notify('bg_jobs', q) FROM (SELECT DISTINCT queue AS q FROM u) x
)
SELECT (SELECT count(*) FROM u) AS moved, (SELECT count(*) FROM n) AS notified";

/// First half of the advisory lock key of `enqueue_once` ("bgju").
const UNIQUE_KEY_LOCK_CLASS: i32 = 0x6267_6a75;

/// Advisory lock key held while folding the state counters ("bgfold").
const FOLD_LOCK: i64 = 0x6267_666f_6c64;

/// Deleted delta rows from which a fold vacuums the delta table at once.
const VACUUM_AFTER_ROWS: i64 = 10_000;

impl TransactionOps for Postgres {
    async fn begin_write(pool: &Pool<Self>) -> Result<sqlx::Transaction<'static, Self>, JobError> {
        Ok(pool.begin().await?)
    }

    async fn insert_job(conn: &mut PgConnection, job: &InsertJob<'_>, now: i64) -> Result<JobId, JobError> {
        let row = sqlx::query(INSERT_SQL)
            .bind(job.name)
            .bind(job.queue)
            .bind(job.priority)
            .bind(job.payload)
            .bind(job.state.as_str())
            .bind(job.run_at)
            .bind(job.max_attempts)
            .bind(job.unique_key)
            .bind(job.concurrency_key)
            .bind(job.parent_id)
            .bind(job.recurring_id)
            .bind(now)
            .bind(job.reason.as_deref())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = row {
            return Ok(row.try_get("id")?);
        }
        // ON CONFLICT: an unfinished job holds the unique key.
        let existing = sqlx::query(
            "SELECT id FROM bg_jobs WHERE unique_key = $1 \
             AND state IN ('Enqueued', 'Scheduled', 'Awaiting', 'Processing') ORDER BY id LIMIT 1",
        )
        .bind(job.unique_key)
        .fetch_one(&mut *conn)
        .await?;
        Ok(existing.try_get("id")?)
    }

    async fn lock_state(conn: &mut PgConnection, id: JobId) -> Result<Option<JobState>, JobError> {
        let row = sqlx::query("SELECT state FROM bg_jobs WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(conn).await?;
        Ok(match row {
            Some(row) => Some(super::parse_state(row.try_get::<&str, _>("state")?)),
            None => None,
        })
    }

    async fn notify_queue(conn: &mut PgConnection, queue: &str) -> Result<(), JobError> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(WAKE_CHANNEL).bind(queue).execute(conn).await?;
        Ok(())
    }

    async fn notify_cancel(conn: &mut PgConnection, id: JobId) -> Result<(), JobError> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CANCEL_CHANNEL).bind(id.to_string()).execute(conn).await?;
        Ok(())
    }

    async fn lock_lease(conn: &mut PgConnection, lease: Lease) -> Result<bool, JobError> {
        let row = sqlx::query("SELECT 1 AS one FROM bg_jobs WHERE id = $1 AND lease_token = $2 AND state = 'Processing' FOR UPDATE")
            .bind(lease.job_id)
            .bind(lease.token)
            .fetch_optional(conn)
            .await?;
        Ok(row.is_some())
    }

    async fn lock_unique_key(conn: &mut PgConnection, key: &str) -> Result<(), JobError> {
        // The two-integer form keeps these locks apart from single-bigint advisory locks.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))").bind(UNIQUE_KEY_LOCK_CLASS).bind(key).execute(conn).await?;
        Ok(())
    }

    shared_transaction_ops!();
}

impl WorkerOps for Postgres {
    async fn claim(pool: &Pool<Self>, queue: &str, limit: i64, worker: &str, now: i64, lease_us: i64) -> Result<Vec<ClaimedJob>, JobError> {
        let mut tries = 0;
        loop {
            let result = async {
                // Asynchronous commit keeps an fsync off the enqueue→start path. A claim lost in
                // a database crash only returns the job to Enqueued (it runs again: at least
                // once); fencing tokens stay unique because they never go below the database
                // clock in microseconds, which moves past the lost claim's token.
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
                let rows = sqlx::query(CLAIM_SQL)
                    .bind(queue)
                    .bind(limit)
                    .bind(worker)
                    .bind(now.saturating_add(lease_us))
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(rows)
            }
            .await;
            match result {
                Ok(rows) => {
                    let mut jobs = Vec::with_capacity(rows.len());
                    let mut order = Vec::with_capacity(rows.len());
                    for row in rows {
                        order.push(row.try_get::<i32, _>("priority")?);
                        jobs.push(ClaimedJob {
                            id: row.try_get("id")?,
                            name: row.try_get("name")?,
                            queue: row.try_get("queue")?,
                            payload: row.try_get("payload")?,
                            attempt: row.try_get("attempt")?,
                            max_attempts: row.try_get("max_attempts")?,
                            lease_token: row.try_get("lease_token")?,
                            created_at: row.try_get("created_at")?,
                        });
                    }
                    let mut paired: Vec<_> = order.into_iter().zip(jobs).collect();
                    paired.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
                    return Ok(paired.into_iter().map(|(_, j)| j).collect());
                }
                // Two claimers raced for two jobs sharing a concurrency key; the unique index
                // refused the second. Claim again: the first is now visible as Processing.
                Err(e) if is_unique_violation(&e) && tries < 5 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn complete_batch(pool: &Pool<Self>, leases: &[Lease], worker: &str, now: i64) -> Result<u64, JobError> {
        let ids: Vec<i64> = leases.iter().map(|l| l.job_id).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token).collect();
        // Asynchronous commit is safe here: a completion lost in a database crash leaves the
        // job Processing under the same token, so it runs again after its lease (at least
        // once) and no token is ever reused. It takes an fsync off the hot path.
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        let row = sqlx::query(COMPLETE_BATCH_SQL).bind(&ids).bind(&tokens).bind(now).bind(worker).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(row.try_get::<i64, _>("done")? as u64)
    }

    async fn heartbeat(pool: &Pool<Self>, leases: &[Lease], expires_at: i64) -> Result<Vec<(JobId, bool)>, JobError> {
        let ids: Vec<i64> = leases.iter().map(|l| l.job_id).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token).collect();
        let rows = sqlx::query(
            "UPDATE bg_jobs j SET lease_expires_at = $3 FROM unnest($1::int8[], $2::int8[]) AS d(id, token) \
             WHERE j.id = d.id AND j.lease_token = d.token AND j.state = 'Processing' RETURNING j.id, j.cancel_requested",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(expires_at)
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((row.try_get("id")?, row.try_get("cancel_requested")?));
        }
        Ok(out)
    }

    shared_worker_ops!();
}

impl MaintenanceOps for Postgres {
    async fn promote_scheduled(pool: &Pool<Self>, now: i64, worker: &str) -> Result<u64, JobError> {
        let row = sqlx::query(PROMOTE_SQL).bind(now).bind(worker).fetch_one(pool).await?;
        Ok(row.try_get::<i64, _>("moved")? as u64)
    }

    async fn reap_expired(pool: &Pool<Self>, now: i64, worker: &str) -> Result<u64, JobError> {
        let row = sqlx::query(REAP_SQL).bind(now).bind(worker).fetch_one(pool).await?;
        Ok(row.try_get::<i64, _>("moved")? as u64)
    }

    async fn fold_counts(pool: &Pool<Self>, keep_from_hour: i64) -> Result<(), JobError> {
        let mut tx = pool.begin().await?;
        // One folder at a time (every worker runs maintenance); the others skip this round
        // rather than wait or deadlock on the same total rows.
        let folding: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(FOLD_LOCK).fetch_one(&mut *tx).await?;
        if !folding {
            return Ok(());
        }
        // One snapshot: every delta row deleted is added; rows committed meanwhile wait for
        // the next fold.
        let moved: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM bg_state_counts RETURNING state, hour, n), \
             added AS (INSERT INTO bg_state_totals (state, hour, n) \
               SELECT state, CASE WHEN n > 0 AND hour >= $1 THEN hour ELSE 0 END, SUM(n) FROM gone GROUP BY 1, 2 \
               ON CONFLICT (state, hour) DO UPDATE SET n = bg_state_totals.n + EXCLUDED.n) \
             SELECT COUNT(*) FROM gone",
        )
        .bind(keep_from_hour)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "WITH aged AS (DELETE FROM bg_state_totals WHERE hour > 0 AND hour < $1 RETURNING state, n) \
             INSERT INTO bg_state_totals (state, hour, n) SELECT state, 0, SUM(n) FROM aged GROUP BY state \
             ON CONFLICT (state, hour) DO UPDATE SET n = bg_state_totals.n + EXCLUDED.n",
        )
        .bind(keep_from_hour)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if moved >= VACUUM_AFTER_ROWS {
            // The delta table is empty now: vacuuming it at once gives its pages back, so
            // reading the counts does not scan a burst's dead rows until autovacuum comes.
            sqlx::raw_sql("VACUUM bg_state_counts").execute(pool).await?;
        }
        Ok(())
    }

    shared_maintenance_ops!();
}

impl AdminOps for Postgres {
    shared_admin_ops!();
}

impl MonitoringOps for Postgres {
    shared_monitoring_ops!();

    async fn count_retries(pool: &Pool<Self>) -> Result<i64, JobError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM bg_jobs WHERE state = 'Scheduled' AND attempt > 0").fetch_one(pool).await?)
    }
}
