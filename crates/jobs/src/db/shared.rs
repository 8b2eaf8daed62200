//! Operations whose SQL is the same on both databases, expanded into each backend's role impls.

/// The columns `decode_record!` reads, in order.
macro_rules! job_columns {
    () => {
        "id, name, queue, priority, payload, state, run_at, attempt, max_attempts, unique_key, \
         concurrency_key, parent_id, recurring_id, lease_token, lease_owner, lease_expires_at, \
         cancel_requested, progress, last_error, created_at, updated_at, finished_at"
    };
}

macro_rules! recurring_columns {
    () => {
        "id, cron, timezone, name, queue, priority, payload, max_attempts, next_run_at, last_run_at, last_job_id, disabled"
    };
}

macro_rules! decode_record {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let state: String = row.try_get("state")?;
        $crate::model::JobRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            queue: row.try_get("queue")?,
            priority: row.try_get("priority")?,
            payload: row.try_get("payload")?,
            state: $crate::db::parse_state(&state),
            run_at: $crate::time::to_datetime(row.try_get("run_at")?),
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            unique_key: row.try_get("unique_key")?,
            concurrency_key: row.try_get("concurrency_key")?,
            parent_id: row.try_get("parent_id")?,
            recurring_id: row.try_get("recurring_id")?,
            lease_token: row.try_get("lease_token")?,
            lease_owner: row.try_get("lease_owner")?,
            lease_expires_at: row.try_get::<Option<i64>, _>("lease_expires_at")?.map($crate::time::to_datetime),
            cancel_requested: row.try_get("cancel_requested")?,
            progress: row.try_get("progress")?,
            last_error: row.try_get("last_error")?,
            created_at: $crate::time::to_datetime(row.try_get("created_at")?),
            updated_at: $crate::time::to_datetime(row.try_get("updated_at")?),
            finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map($crate::time::to_datetime),
        }
    }};
}

macro_rules! decode_recurring {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        $crate::model::RecurringJob {
            id: row.try_get("id")?,
            cron: row.try_get("cron")?,
            timezone: row.try_get("timezone")?,
            name: row.try_get("name")?,
            queue: row.try_get("queue")?,
            priority: row.try_get("priority")?,
            payload: row.try_get("payload")?,
            max_attempts: row.try_get("max_attempts")?,
            next_run_at: $crate::time::to_datetime(row.try_get("next_run_at")?),
            last_run_at: row.try_get::<Option<i64>, _>("last_run_at")?.map($crate::time::to_datetime),
            last_job_id: row.try_get("last_job_id")?,
            disabled: row.try_get("disabled")?,
        }
    }};
}

/// The shared part of `impl TransactionOps`.
macro_rules! shared_transaction_ops {
    () => {
        async fn complete(conn: &mut Self::Connection, lease: Lease, worker: &str, now: i64) -> Result<bool, JobError> {
            use sqlx::Row as _;
            let done = sqlx::query(
                "UPDATE bg_jobs SET state = 'Succeeded', lease_owner = NULL, lease_expires_at = NULL, \
                 updated_at = $3, finished_at = $3 WHERE id = $1 AND lease_token = $2 AND state = 'Processing'",
            )
            .bind(lease.job_id)
            .bind(lease.token)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            history(&mut *conn, lease.job_id, JobState::Succeeded, now, Some(worker), None).await?;
            let released = sqlx::query(
                "UPDATE bg_jobs SET state = 'Enqueued', run_at = $2, updated_at = $2 \
                 WHERE parent_id = $1 AND state = 'Awaiting' RETURNING id, queue",
            )
            .bind(lease.job_id)
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
            for row in released {
                let id: i64 = row.try_get("id")?;
                let queue: String = row.try_get("queue")?;
                let reason = format!("Parent job {} succeeded", lease.job_id);
                history(&mut *conn, id, JobState::Enqueued, now, Some(worker), Some(&reason)).await?;
                Self::notify_queue(&mut *conn, &queue).await?;
            }
            Ok(true)
        }

        async fn finish_failed(
            conn: &mut Self::Connection,
            lease: Lease,
            outcome: &FailOutcome,
            worker: &str,
            now: i64,
        ) -> Result<bool, JobError> {
            use sqlx::Row as _;
            let finished = if outcome.state.is_final() { Some(now) } else { None };
            let row = sqlx::query(
                "UPDATE bg_jobs SET state = $3, run_at = COALESCE($4, run_at), last_error = COALESCE($5, last_error), \
                 attempt = attempt - $6, lease_owner = NULL, lease_expires_at = NULL, updated_at = $7, finished_at = $8 \
                 WHERE id = $1 AND lease_token = $2 AND state = 'Processing' RETURNING queue",
            )
            .bind(lease.job_id)
            .bind(lease.token)
            .bind(outcome.state.as_str())
            .bind(outcome.run_at)
            .bind(outcome.error.as_deref())
            .bind(if outcome.refund_attempt { 1_i32 } else { 0_i32 })
            .bind(now)
            .bind(finished)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(false) };
            history(&mut *conn, lease.job_id, outcome.state, now, Some(worker), Some(&outcome.reason)).await?;
            if outcome.state == JobState::Enqueued {
                let queue: String = row.try_get("queue")?;
                Self::notify_queue(&mut *conn, &queue).await?;
            }
            Ok(true)
        }

        async fn find_unique_key(conn: &mut Self::Connection, key: &str) -> Result<Option<JobId>, JobError> {
            use sqlx::Row as _;
            let row = sqlx::query("SELECT id FROM bg_jobs WHERE unique_key = $1 ORDER BY id DESC LIMIT 1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(match row {
                Some(row) => Some(row.try_get("id")?),
                None => None,
            })
        }
    };
}

/// The shared part of `impl WorkerOps`.
macro_rules! shared_worker_ops {
    () => {
        async fn lease_held(pool: &Pool<Self>, lease: Lease) -> Result<bool, JobError> {
            let row = sqlx::query("SELECT 1 AS one FROM bg_jobs WHERE id = $1 AND lease_token = $2 AND state = 'Processing'")
                .bind(lease.job_id)
                .bind(lease.token)
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        }

        async fn progress(pool: &Pool<Self>, lease: Lease, pct: i32, now: i64) -> Result<bool, JobError> {
            let r = sqlx::query(
                "UPDATE bg_jobs SET progress = $3, updated_at = $4 WHERE id = $1 AND lease_token = $2 AND state = 'Processing'",
            )
            .bind(lease.job_id)
            .bind(lease.token)
            .bind(pct)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        async fn log_line(pool: &Pool<Self>, lease: Lease, line: &str, now: i64) -> Result<bool, JobError> {
            let r = sqlx::query(
                "INSERT INTO bg_job_logs (job_id, at, line) SELECT $1, $3, $4 WHERE EXISTS \
                 (SELECT 1 FROM bg_jobs WHERE id = $1 AND lease_token = $2 AND state = 'Processing')",
            )
            .bind(lease.job_id)
            .bind(lease.token)
            .bind(now)
            .bind(line)
            .execute(pool)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        async fn upsert_server(pool: &Pool<Self>, server: &$crate::model::ServerRecord) -> Result<(), JobError> {
            sqlx::query(
                "INSERT INTO bg_servers (id, queues, workers, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET queues = excluded.queues, workers = excluded.workers, heartbeat_at = excluded.heartbeat_at",
            )
            .bind(&server.id)
            .bind(server.queues.join(","))
            .bind(server.workers)
            .bind(server.started_at.timestamp_micros())
            .bind(server.heartbeat_at.timestamp_micros())
            .execute(pool)
            .await?;
            Ok(())
        }

        async fn server_heartbeat(pool: &Pool<Self>, id: &str, now: i64) -> Result<bool, JobError> {
            let done = sqlx::query("UPDATE bg_servers SET heartbeat_at = $1 WHERE id = $2").bind(now).bind(id).execute(pool).await?;
            Ok(done.rows_affected() > 0)
        }
    };
}

/// The shared part of `impl MaintenanceOps`.
macro_rules! shared_maintenance_ops {
    () => {
        async fn purge_finished(pool: &Pool<Self>, finished_before: i64, limit: i64) -> Result<u64, JobError> {
            use sqlx::Row as _;
            let mut tx = Self::begin_write(pool).await?;
            let rows =
                sqlx::query("SELECT id FROM bg_jobs WHERE state IN ('Succeeded', 'Deleted') AND finished_at < $1 ORDER BY id LIMIT $2")
                    .bind(finished_before)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut purged = 0;
            for row in rows {
                let id: i64 = row.try_get("id")?;
                sqlx::query("DELETE FROM bg_job_states WHERE job_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM bg_job_logs WHERE job_id = $1").bind(id).execute(&mut *tx).await?;
                purged += sqlx::query("DELETE FROM bg_jobs WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(purged)
        }

        async fn remove_servers(pool: &Pool<Self>, id: Option<&str>, heartbeat_before: i64) -> Result<u64, JobError> {
            let done = sqlx::query("DELETE FROM bg_servers WHERE id = $1 OR heartbeat_at < $2")
                .bind(id)
                .bind(heartbeat_before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }
    };
}

/// The shared part of `impl AdminOps` (all of it).
macro_rules! shared_admin_ops {
    () => {
        async fn cancel(pool: &Pool<Self>, id: JobId, now: i64) -> Result<CancelOutcome, JobError> {
            let mut tx = Self::begin_write(pool).await?;
            let state = Self::lock_state(&mut *tx, id).await?.ok_or(JobError::NotFound(id))?;
            let outcome = match state {
                JobState::Enqueued | JobState::Scheduled | JobState::Awaiting => {
                    sqlx::query("UPDATE bg_jobs SET state = 'Deleted', updated_at = $2, finished_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    history(&mut *tx, id, JobState::Deleted, now, None, Some("Cancelled before it started")).await?;
                    CancelOutcome::Deleted
                }
                JobState::Processing => {
                    sqlx::query("UPDATE bg_jobs SET cancel_requested = TRUE, updated_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::notify_cancel(&mut *tx, id).await?;
                    CancelOutcome::Signalled
                }
                other => {
                    return Err(JobError::InvalidState { job_id: id, state: other.to_string(), action: "cancel" });
                }
            };
            tx.commit().await?;
            Ok(outcome)
        }

        async fn requeue(pool: &Pool<Self>, id: JobId, now: i64, reason: &str) -> Result<(), JobError> {
            use sqlx::Row as _;
            let mut tx = Self::begin_write(pool).await?;
            let state = Self::lock_state(&mut *tx, id).await?.ok_or(JobError::NotFound(id))?;
            if state == JobState::Processing {
                return Err(JobError::InvalidState { job_id: id, state: state.to_string(), action: "requeue" });
            }
            let row = sqlx::query(
                "UPDATE bg_jobs SET state = 'Enqueued', run_at = $2, attempt = 0, lease_owner = NULL, \
                 lease_expires_at = NULL, cancel_requested = FALSE, progress = NULL, updated_at = $2, \
                 finished_at = NULL WHERE id = $1 RETURNING queue",
            )
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let queue: String = row.try_get("queue")?;
            history(&mut *tx, id, JobState::Enqueued, now, None, Some(reason)).await?;
            Self::notify_queue(&mut *tx, &queue).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn delete(pool: &Pool<Self>, id: JobId, now: i64, reason: &str) -> Result<(), JobError> {
            let mut tx = Self::begin_write(pool).await?;
            let state = Self::lock_state(&mut *tx, id).await?.ok_or(JobError::NotFound(id))?;
            if state == JobState::Deleted {
                return Ok(());
            }
            // Deleting a running job: its worker's fenced writes are refused from now on, and its
            // next heartbeat (or the cancel notification) fires its cancellation token.
            sqlx::query(
                "UPDATE bg_jobs SET state = 'Deleted', lease_owner = NULL, lease_expires_at = NULL, \
                 updated_at = $2, finished_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            history(&mut *tx, id, JobState::Deleted, now, None, Some(reason)).await?;
            if state == JobState::Processing {
                Self::notify_cancel(&mut *tx, id).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn upsert_recurring(pool: &Pool<Self>, rec: &UpsertRecurring<'_>, now: i64) -> Result<(), JobError> {
            sqlx::query(
                "INSERT INTO bg_recurring (id, cron, timezone, name, queue, priority, payload, max_attempts, \
                 next_run_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
                 name = excluded.name, queue = excluded.queue, priority = excluded.priority, \
                 payload = excluded.payload, max_attempts = excluded.max_attempts, next_run_at = excluded.next_run_at",
            )
            .bind(rec.id)
            .bind(rec.cron)
            .bind(rec.timezone)
            .bind(rec.name)
            .bind(rec.queue)
            .bind(rec.priority)
            .bind(rec.payload)
            .bind(rec.max_attempts)
            .bind(rec.next_run_at)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        }

        async fn remove_recurring(pool: &Pool<Self>, id: &str) -> Result<bool, JobError> {
            let r = sqlx::query("DELETE FROM bg_recurring WHERE id = $1").bind(id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        }

        async fn set_recurring_disabled(pool: &Pool<Self>, id: &str, disabled: bool) -> Result<bool, JobError> {
            let r = sqlx::query("UPDATE bg_recurring SET disabled = $2 WHERE id = $1").bind(id).bind(disabled).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        }

        async fn fire_recurring(
            pool: &Pool<Self>,
            rec: &RecurringJob,
            expected_next: Option<(i64, i64)>,
            now: i64,
            reason: &str,
        ) -> Result<Option<JobId>, JobError> {
            let mut tx = Self::begin_write(pool).await?;
            if let Some((expected, next)) = expected_next {
                let moved = sqlx::query("UPDATE bg_recurring SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2")
                    .bind(&rec.id)
                    .bind(expected)
                    .bind(next)
                    .execute(&mut *tx)
                    .await?;
                if moved.rows_affected() != 1 {
                    return Ok(None);
                }
            }
            let job = InsertJob {
                name: &rec.name,
                queue: &rec.queue,
                priority: rec.priority,
                payload: &rec.payload,
                state: JobState::Enqueued,
                run_at: now,
                max_attempts: rec.max_attempts,
                unique_key: None,
                concurrency_key: None,
                parent_id: None,
                recurring_id: Some(&rec.id),
                reason: Some(reason.to_owned()),
            };
            let id = Self::insert_job(&mut *tx, &job, now).await?;
            sqlx::query("UPDATE bg_recurring SET last_run_at = $2, last_job_id = $3 WHERE id = $1")
                .bind(&rec.id)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(id))
        }
    };
}

/// The shared part of `impl MonitoringOps` (all of it).
macro_rules! shared_monitoring_ops {
    () => {
        async fn get(pool: &Pool<Self>, id: JobId) -> Result<Option<JobRecord>, JobError> {
            let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM bg_jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(decode_record!(&row)),
                None => None,
            })
        }

        async fn history(pool: &Pool<Self>, id: JobId) -> Result<Vec<StateChange>, JobError> {
            use sqlx::Row as _;
            let rows = sqlx::query("SELECT state, at, worker, reason FROM bg_job_states WHERE job_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let state: String = row.try_get("state")?;
                out.push(StateChange {
                    state: $crate::db::parse_state(&state),
                    at: $crate::time::to_datetime(row.try_get("at")?),
                    worker: row.try_get("worker")?,
                    reason: row.try_get("reason")?,
                });
            }
            Ok(out)
        }

        async fn logs(pool: &Pool<Self>, id: JobId) -> Result<Vec<LogLine>, JobError> {
            use sqlx::Row as _;
            let rows = sqlx::query("SELECT at, line FROM bg_job_logs WHERE job_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(LogLine { at: $crate::time::to_datetime(row.try_get("at")?), line: row.try_get("line")? });
            }
            Ok(out)
        }

        async fn counts(pool: &Pool<Self>) -> Result<Vec<(JobState, i64)>, JobError> {
            use sqlx::Row as _;
            // The folded totals plus the delta rows the triggers appended since the last fold
            // (migrations 5 and 6), not the jobs themselves.
            let rows = sqlx::query(
                "SELECT state, CAST(SUM(n) AS BIGINT) AS n FROM \
                 (SELECT state, n FROM bg_state_totals UNION ALL SELECT state, n FROM bg_state_counts) AS c GROUP BY state",
            )
            .fetch_all(pool)
            .await?;
            let mut out: Vec<(JobState, i64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
            for row in rows {
                let state: String = row.try_get("state")?;
                let n: i64 = row.try_get("n")?;
                let state = $crate::db::parse_state(&state);
                if let Some(slot) = out.iter_mut().find(|(s, _)| *s == state) {
                    slot.1 += n;
                }
            }
            Ok(out)
        }

        async fn list(pool: &Pool<Self>, state: JobState, offset: i64, limit: i64) -> Result<Vec<JobRecord>, JobError> {
            let rows = sqlx::query(concat!(
                "SELECT ",
                job_columns!(),
                " FROM bg_jobs WHERE state = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
            ))
            .bind(state.as_str())
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(decode_record!(row));
            }
            Ok(out)
        }

        async fn list_filtered(
            pool: &Pool<Self>,
            filter: &$crate::model::JobFilter,
            offset: i64,
            limit: i64,
        ) -> Result<Vec<JobRecord>, JobError> {
            // Each condition binds at most one value; `$n` numbers follow the binds' order.
            enum Bind {
                Text(String),
                Id(i64),
            }
            let mut conditions: Vec<String> = Vec::new();
            let mut binds: Vec<Bind> = Vec::new();
            if let Some(state) = filter.state {
                binds.push(Bind::Text(state.as_str().to_owned()));
                conditions.push(format!("state = ${}", binds.len()));
            }
            if filter.retries_only {
                conditions.push("attempt > 0".to_owned());
            }
            if let Some(key) = &filter.key {
                binds.push(Bind::Text(key.clone()));
                conditions.push(format!("concurrency_key = ${}", binds.len()));
            }
            let search = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
            let mut text_condition = None;
            match (search.and_then(|s| s.trim_start_matches('#').parse::<i64>().ok()), search) {
                (Some(id), _) => {
                    binds.push(Bind::Id(id));
                    conditions.push(format!("id = ${}", binds.len()));
                }
                (None, Some(text)) => {
                    let pattern = format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
                    binds.push(Bind::Text(pattern));
                    let n = binds.len();
                    text_condition = Some(format!(
                        " WHERE (LOWER(name) LIKE ${n} ESCAPE '\\' OR LOWER(concurrency_key) LIKE ${n} ESCAPE '\\' OR LOWER(unique_key) LIKE ${n} ESCAPE '\\')"
                    ));
                }
                (None, None) => {}
            }
            let filter_sql = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
            // Text is matched within the newest jobs only (see `TEXT_SEARCH_WINDOW`): the inner
            // query walks the index newest first and stops there.
            let source = match &text_condition {
                Some(matching) => format!(
                    "(SELECT * FROM bg_jobs{filter_sql} ORDER BY id DESC LIMIT {}) AS recent{matching}",
                    $crate::model::TEXT_SEARCH_WINDOW
                ),
                None => format!("bg_jobs{filter_sql}"),
            };
            let sql = format!(
                "SELECT {} FROM {source} ORDER BY id DESC LIMIT ${} OFFSET ${}",
                job_columns!(),
                binds.len() + 1,
                binds.len() + 2
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for bind in binds {
                query = match bind {
                    Bind::Text(t) => query.bind(t),
                    Bind::Id(i) => query.bind(i),
                };
            }
            let rows = query.bind(limit).bind(offset).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(decode_record!(row));
            }
            Ok(out)
        }

        async fn continuations(pool: &Pool<Self>, parent: JobId) -> Result<Vec<JobRecord>, JobError> {
            let rows = sqlx::query(concat!("SELECT ", job_columns!(), " FROM bg_jobs WHERE parent_id = $1 ORDER BY id LIMIT 100"))
                .bind(parent)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(decode_record!(row));
            }
            Ok(out)
        }

        async fn queue_stats(pool: &Pool<Self>) -> Result<Vec<$crate::model::QueueStats>, JobError> {
            use sqlx::Row as _;
            let rows = sqlx::query(
                // Two aggregates so that the enqueued side is an index-only scan of the claim
                // index (`queue` first, partial on Enqueued) rather than a visit to every row.
                "SELECT queue, 'Enqueued' AS state, COUNT(*) AS n FROM bg_jobs WHERE state = 'Enqueued' GROUP BY queue \
                 UNION ALL SELECT queue, 'Processing' AS state, COUNT(*) AS n FROM bg_jobs WHERE state = 'Processing' GROUP BY queue",
            )
            .fetch_all(pool)
            .await?;
            let mut out: Vec<$crate::model::QueueStats> = Vec::new();
            for row in rows {
                let queue: String = row.try_get("queue")?;
                let state: String = row.try_get("state")?;
                let n: i64 = row.try_get("n")?;
                let i = match out.iter().position(|q| q.name == queue) {
                    Some(i) => i,
                    None => {
                        out.push($crate::model::QueueStats { name: queue, enqueued: 0, processing: 0 });
                        out.len() - 1
                    }
                };
                if state == "Enqueued" {
                    out[i].enqueued += n;
                } else {
                    out[i].processing += n;
                }
            }
            Ok(out)
        }

        async fn queue_depth(pool: &Pool<Self>, queue: &str) -> Result<i64, JobError> {
            use sqlx::Row as _;
            let row = sqlx::query("SELECT COUNT(*) AS n FROM bg_jobs WHERE state = 'Enqueued' AND queue = $1")
                .bind(queue)
                .fetch_one(pool)
                .await?;
            Ok(row.try_get("n")?)
        }

        async fn throughput(pool: &Pool<Self>, since: i64, bucket_us: i64) -> Result<Vec<(i64, i64, i64)>, JobError> {
            use sqlx::Row as _;
            let rows = sqlx::query(
                "SELECT at / $2 AS b, state, COUNT(*) AS n FROM bg_job_states \
                 WHERE state IN ('Succeeded', 'Failed') AND at >= $1 GROUP BY at / $2, state",
            )
            .bind(since)
            .bind(bucket_us)
            .fetch_all(pool)
            .await?;
            $crate::db::fold_finished(rows.iter().map(|row| Ok((row.try_get("b")?, row.try_get("state")?, row.try_get("n")?))))
        }

        async fn finished_per_hour(pool: &Pool<Self>, since_hour: i64) -> Result<Vec<(i64, i64, i64)>, JobError> {
            use sqlx::Row as _;
            let rows = sqlx::query(
                // Totals at an hour of the graph's range only ever hold arrivals (n > 0).
                "SELECT hour, state, CAST(SUM(n) AS BIGINT) AS n FROM \
                 (SELECT state, hour, n FROM bg_state_totals WHERE hour >= $1 AND state IN ('Succeeded', 'Failed') \
                  UNION ALL SELECT state, hour, n FROM bg_state_counts WHERE n > 0 AND hour >= $1 AND state IN ('Succeeded', 'Failed')) AS c \
                 GROUP BY hour, state",
            )
            .bind(since_hour)
            .fetch_all(pool)
            .await?;
            $crate::db::fold_finished(rows.iter().map(|row| Ok((row.try_get("hour")?, row.try_get("state")?, row.try_get("n")?))))
        }

        async fn list_recurring(pool: &Pool<Self>) -> Result<Vec<RecurringJob>, JobError> {
            let rows = sqlx::query(concat!("SELECT ", recurring_columns!(), " FROM bg_recurring ORDER BY id"))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(decode_recurring!(row));
            }
            Ok(out)
        }

        async fn get_recurring(pool: &Pool<Self>, id: &str) -> Result<Option<RecurringJob>, JobError> {
            let row = sqlx::query(concat!("SELECT ", recurring_columns!(), " FROM bg_recurring WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(decode_recurring!(&row)),
                None => None,
            })
        }

        async fn list_servers(pool: &Pool<Self>) -> Result<Vec<$crate::model::ServerRecord>, JobError> {
            use sqlx::Row as _;
            let rows = sqlx::query("SELECT id, queues, workers, started_at, heartbeat_at FROM bg_servers ORDER BY id").fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let queues: String = row.try_get("queues")?;
                out.push($crate::model::ServerRecord {
                    id: row.try_get("id")?,
                    queues: queues.split(',').filter(|q| !q.is_empty()).map(str::to_owned).collect(),
                    workers: row.try_get("workers")?,
                    started_at: $crate::time::to_datetime(row.try_get("started_at")?),
                    heartbeat_at: $crate::time::to_datetime(row.try_get("heartbeat_at")?),
                });
            }
            Ok(out)
        }
    };
}
