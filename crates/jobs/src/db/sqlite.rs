//! SQLite, the embedded default: WAL, a busy timeout, and `BEGIN IMMEDIATE` write transactions.
//! SQLite has one writer at a time, so a claim is a plain `UPDATE … RETURNING` of the first
//! `limit` enqueued rows: no two claimers can take the same row.

use sqlx::sqlite::SqliteConnection;
use sqlx::{Pool, Row, Sqlite};

use super::{AdminOps, MaintenanceOps, MonitoringOps, TransactionOps, WorkerOps};
use super::{ClaimedJob, FailOutcome, InsertJob, UpsertRecurring};
use crate::error::JobError;
use crate::model::{CancelOutcome, JobId, JobRecord, JobState, Lease, LogLine, RecurringJob, StateChange};

async fn history(
    conn: &mut SqliteConnection,
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

const CLAIM_SQL: &str = "\
UPDATE bg_jobs SET state = 'Processing', attempt = attempt + 1, lease_token = MAX(lease_token + 1, $5),
  lease_owner = $3, lease_expires_at = $4, updated_at = $5, cancel_requested = FALSE, progress = NULL
WHERE id IN (
  SELECT j.id FROM bg_jobs j
  WHERE j.state = 'Enqueued' AND j.queue = $1
    AND (j.concurrency_key IS NULL OR (
      NOT EXISTS (SELECT 1 FROM bg_jobs p WHERE p.concurrency_key = j.concurrency_key AND p.state = 'Processing')
      AND j.id = (SELECT min(e.id) FROM bg_jobs e WHERE e.concurrency_key = j.concurrency_key AND e.state = 'Enqueued')))
  ORDER BY j.priority DESC, j.id
  LIMIT $2)
RETURNING id, name, queue, payload, attempt, max_attempts, lease_token, created_at, run_at, priority";

impl TransactionOps for Sqlite {
    async fn begin_write(pool: &Pool<Self>) -> Result<sqlx::Transaction<'static, Self>, JobError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn insert_job(conn: &mut SqliteConnection, job: &InsertJob<'_>, now: i64) -> Result<JobId, JobError> {
        let row = sqlx::query(
            "INSERT INTO bg_jobs (name, queue, priority, payload, state, run_at, max_attempts, unique_key, \
             concurrency_key, parent_id, recurring_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) ON CONFLICT DO NOTHING RETURNING id",
        )
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
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => {
                let id: i64 = row.try_get("id")?;
                history(&mut *conn, id, job.state, now, None, job.reason.as_deref()).await?;
                Ok(id)
            }
            None => {
                let existing = sqlx::query(
                    "SELECT id FROM bg_jobs WHERE unique_key = $1 \
                     AND state IN ('Enqueued', 'Scheduled', 'Awaiting', 'Processing') ORDER BY id LIMIT 1",
                )
                .bind(job.unique_key)
                .fetch_one(&mut *conn)
                .await?;
                Ok(existing.try_get("id")?)
            }
        }
    }

    async fn lock_state(conn: &mut SqliteConnection, id: JobId) -> Result<Option<JobState>, JobError> {
        let row = sqlx::query("SELECT state FROM bg_jobs WHERE id = $1").bind(id).fetch_optional(conn).await?;
        Ok(match row {
            Some(row) => Some(super::parse_state(row.try_get::<&str, _>("state")?)),
            None => None,
        })
    }

    async fn notify_queue(_conn: &mut SqliteConnection, _queue: &str) -> Result<(), JobError> {
        // No cross-process notifications in SQLite: the store wakes its own process's workers,
        // other processes poll.
        Ok(())
    }

    async fn notify_cancel(_conn: &mut SqliteConnection, _id: JobId) -> Result<(), JobError> {
        Ok(())
    }

    async fn lock_lease(conn: &mut SqliteConnection, lease: Lease) -> Result<bool, JobError> {
        // A no-op write takes SQLite's write lock, so nothing can re-claim the job before the
        // caller's transaction ends.
        let r = sqlx::query("UPDATE bg_jobs SET updated_at = updated_at WHERE id = $1 AND lease_token = $2 AND state = 'Processing'")
            .bind(lease.job_id)
            .bind(lease.token)
            .execute(conn)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn lock_unique_key(_conn: &mut SqliteConnection, _key: &str) -> Result<(), JobError> {
        // The caller's transaction began with BEGIN IMMEDIATE: it is the only writer already.
        Ok(())
    }

    shared_transaction_ops!();
}

impl WorkerOps for Sqlite {
    async fn claim(pool: &Pool<Self>, queue: &str, limit: i64, worker: &str, now: i64, lease_us: i64) -> Result<Vec<ClaimedJob>, JobError> {
        let mut tx = Self::begin_write(pool).await?;
        let rows = sqlx::query(CLAIM_SQL)
            .bind(queue)
            .bind(limit)
            .bind(worker)
            .bind(now.saturating_add(lease_us))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let mut paired = Vec::with_capacity(rows.len());
        for row in rows {
            let priority: i32 = row.try_get("priority")?;
            paired.push((
                priority,
                ClaimedJob {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    queue: row.try_get("queue")?,
                    payload: row.try_get("payload")?,
                    attempt: row.try_get("attempt")?,
                    max_attempts: row.try_get("max_attempts")?,
                    lease_token: row.try_get("lease_token")?,
                    created_at: row.try_get("created_at")?,
                },
            ));
        }
        for (_, job) in &paired {
            history(&mut tx, job.id, JobState::Processing, now, Some(worker), None).await?;
        }
        tx.commit().await?;
        paired.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        Ok(paired.into_iter().map(|(_, j)| j).collect())
    }

    async fn complete_batch(pool: &Pool<Self>, leases: &[Lease], worker: &str, now: i64) -> Result<u64, JobError> {
        let mut tx = Self::begin_write(pool).await?;
        let mut done = 0;
        for lease in leases {
            if Self::complete(&mut *tx, *lease, worker, now).await? {
                done += 1;
            }
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn heartbeat(pool: &Pool<Self>, leases: &[Lease], expires_at: i64) -> Result<Vec<(JobId, bool)>, JobError> {
        let mut tx = Self::begin_write(pool).await?;
        let mut out = Vec::with_capacity(leases.len());
        for lease in leases {
            let row = sqlx::query(
                "UPDATE bg_jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_token = $2 AND state = 'Processing' \
                 RETURNING cancel_requested",
            )
            .bind(lease.job_id)
            .bind(lease.token)
            .bind(expires_at)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                out.push((lease.job_id, row.try_get("cancel_requested")?));
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    shared_worker_ops!();
}

impl MaintenanceOps for Sqlite {
    async fn promote_scheduled(pool: &Pool<Self>, now: i64, worker: &str) -> Result<u64, JobError> {
        let mut tx = Self::begin_write(pool).await?;
        let rows = sqlx::query(
            "UPDATE bg_jobs SET state = 'Enqueued', updated_at = $1 WHERE id IN \
             (SELECT id FROM bg_jobs WHERE state = 'Scheduled' AND run_at <= $1 ORDER BY run_at LIMIT 1000) RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            history(&mut tx, id, JobState::Enqueued, now, Some(worker), Some("Scheduled time reached")).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn reap_expired(pool: &Pool<Self>, now: i64, worker: &str) -> Result<u64, JobError> {
        let mut tx = Self::begin_write(pool).await?;
        let rows =
            sqlx::query("SELECT id, lease_owner FROM bg_jobs WHERE state = 'Processing' AND lease_expires_at < $1 ORDER BY id LIMIT 1000")
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let owner: Option<String> = row.try_get("lease_owner")?;
            sqlx::query(
                "UPDATE bg_jobs SET state = 'Enqueued', lease_owner = NULL, lease_expires_at = NULL, \
                 cancel_requested = FALSE, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let reason = format!("Lease of worker {} expired; requeued", owner.as_deref().unwrap_or("?"));
            history(&mut tx, id, JobState::Enqueued, now, Some(worker), Some(&reason)).await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn fold_counts(pool: &Pool<Self>, keep_from_hour: i64) -> Result<(), JobError> {
        // The write transaction keeps every other writer (and so every trigger) out meanwhile.
        let mut tx = Self::begin_write(pool).await?;
        // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
        sqlx::query(
            "INSERT INTO bg_state_totals (state, hour, n) \
             SELECT state, CASE WHEN n > 0 AND hour >= $1 THEN hour ELSE 0 END AS h, SUM(n) FROM bg_state_counts WHERE true GROUP BY state, h \
             ON CONFLICT (state, hour) DO UPDATE SET n = n + excluded.n",
        )
        .bind(keep_from_hour)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM bg_state_counts").execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO bg_state_totals (state, hour, n) \
             SELECT state, 0, SUM(n) FROM bg_state_totals WHERE hour > 0 AND hour < $1 GROUP BY state \
             ON CONFLICT (state, hour) DO UPDATE SET n = n + excluded.n",
        )
        .bind(keep_from_hour)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM bg_state_totals WHERE hour > 0 AND hour < $1").bind(keep_from_hour).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    shared_maintenance_ops!();
}

impl AdminOps for Sqlite {
    shared_admin_ops!();
}

impl MonitoringOps for Sqlite {
    shared_monitoring_ops!();

    async fn count_retries(pool: &Pool<Self>) -> Result<i64, JobError> {
        // SQLite's planner prefers `bg_jobs_state` and filters every scheduled job (30 ms
        // with 30,000 of them); the partial index holds exactly the retries.
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM bg_jobs INDEXED BY bg_jobs_retries WHERE state = 'Scheduled' AND attempt > 0")
            .fetch_one(pool)
            .await?)
    }
}
