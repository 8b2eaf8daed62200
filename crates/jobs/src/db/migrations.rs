//! Schema migrations, run by `JobStore` at start. The job engine keeps its own version table
//! (`bg_schema`) so it never touches the application's `_sqlx_migrations` when a pool is shared.

use sqlx::{PgPool, Row, SqlitePool};

use crate::error::JobError;

/// PostgreSQL migrations, in order.
const PG: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE bg_jobs (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  run_at BIGINT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER,
  unique_key TEXT,
  concurrency_key TEXT,
  parent_id BIGINT,
  recurring_id TEXT,
  lease_token BIGINT NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_expires_at BIGINT,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
  progress INTEGER,
  last_error TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX bg_jobs_claim ON bg_jobs (queue, priority DESC, id) WHERE state = 'Enqueued';
CREATE INDEX bg_jobs_scheduled ON bg_jobs (run_at) WHERE state = 'Scheduled';
CREATE INDEX bg_jobs_leases ON bg_jobs (lease_expires_at) WHERE state = 'Processing';
CREATE INDEX bg_jobs_state ON bg_jobs (state, id);
CREATE INDEX bg_jobs_parent ON bg_jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX bg_jobs_finished ON bg_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX bg_jobs_concurrency ON bg_jobs (concurrency_key, state) WHERE concurrency_key IS NOT NULL;
CREATE UNIQUE INDEX bg_jobs_unique ON bg_jobs (unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('Enqueued', 'Scheduled', 'Awaiting', 'Processing');
CREATE UNIQUE INDEX bg_jobs_nonconcurrent ON bg_jobs (concurrency_key)
  WHERE concurrency_key IS NOT NULL AND state = 'Processing';
CREATE TABLE bg_job_states (
  id BIGSERIAL PRIMARY KEY,
  job_id BIGINT NOT NULL,
  state TEXT NOT NULL,
  at BIGINT NOT NULL,
  worker TEXT,
  reason TEXT
);
CREATE INDEX bg_job_states_job ON bg_job_states (job_id, id);
CREATE TABLE bg_job_logs (
  id BIGSERIAL PRIMARY KEY,
  job_id BIGINT NOT NULL,
  at BIGINT NOT NULL,
  line TEXT NOT NULL
);
CREATE INDEX bg_job_logs_job ON bg_job_logs (job_id, id);
CREATE TABLE bg_recurring (
  id TEXT PRIMARY KEY,
  cron TEXT NOT NULL,
  timezone TEXT NOT NULL,
  name TEXT NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  max_attempts INTEGER,
  next_run_at BIGINT NOT NULL,
  last_run_at BIGINT,
  last_job_id BIGINT,
  created_at BIGINT NOT NULL
);
"#,
    ),
    (
        2,
        // Looks up a unique key in every state, for `JobStore::enqueue_once`.
        "CREATE INDEX bg_jobs_unique_key ON bg_jobs (unique_key) WHERE unique_key IS NOT NULL;",
    ),
    (
        3,
        // The job servers (worker processes) and their heartbeats, for the dashboard and health.
        "CREATE TABLE bg_servers (id TEXT PRIMARY KEY, queues TEXT NOT NULL, workers BIGINT NOT NULL, \
     started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL);",
    ),
    (
        4,
        // The dashboard: recurring jobs can be disabled; the graphs count state changes by time;
        // the Retries page lists scheduled jobs that already ran.
        "ALTER TABLE bg_recurring ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE; \
     CREATE INDEX bg_job_states_state_at ON bg_job_states (state, at); \
     CREATE INDEX bg_jobs_retries ON bg_jobs (id) WHERE state = 'Scheduled' AND attempt > 0;",
    ),
    (
        5,
        // Counts per state and finished jobs per hour for the dashboard, without counting a
        // million rows: each state change appends a delta row (no row is updated, so workers do
        // not contend), and maintenance folds them (see `fold_counts`). `hour` is the hour of
        // entering the state for +1 rows (the history graph), 0 for -1 rows and folded history.
        r#"
CREATE TABLE bg_state_counts (id BIGSERIAL PRIMARY KEY, state TEXT NOT NULL, hour BIGINT NOT NULL, n BIGINT NOT NULL);
CREATE FUNCTION bg_jobs_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO bg_state_counts (state, hour, n) VALUES (NEW.state, NEW.updated_at / 3600000000, 1);
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO bg_state_counts (state, hour, n) VALUES (OLD.state, 0, -1);
  ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
    INSERT INTO bg_state_counts (state, hour, n) VALUES (OLD.state, 0, -1), (NEW.state, NEW.updated_at / 3600000000, 1);
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER bg_jobs_count AFTER INSERT OR DELETE OR UPDATE OF state ON bg_jobs FOR EACH ROW EXECUTE FUNCTION bg_jobs_count();
INSERT INTO bg_state_counts (state, hour, n) SELECT state, 0, COUNT(*) FROM bg_jobs GROUP BY state;
"#,
    ),
    (
        6,
        // The folded counters move to their own table, one row per state and hour (hour 0: the
        // net count of everything older than the graph's week). The delta table is then empty
        // after every fold, so a burst of a million state changes leaves no live row behind the
        // dead ones and VACUUM can give its pages back.
        r#"
CREATE TABLE bg_state_totals (state TEXT NOT NULL, hour BIGINT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (state, hour));
WITH gone AS (DELETE FROM bg_state_counts RETURNING state, hour, n)
INSERT INTO bg_state_totals (state, hour, n)
SELECT state, CASE WHEN n > 0 THEN hour ELSE 0 END, SUM(n) FROM gone GROUP BY 1, 2;
"#,
    ),
];

/// SQLite migrations, in order.
const SQLITE: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE bg_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  run_at INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER,
  unique_key TEXT,
  concurrency_key TEXT,
  parent_id INTEGER,
  recurring_id TEXT,
  lease_token INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
  progress INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX bg_jobs_claim ON bg_jobs (queue, priority DESC, id) WHERE state = 'Enqueued';
CREATE INDEX bg_jobs_scheduled ON bg_jobs (run_at) WHERE state = 'Scheduled';
CREATE INDEX bg_jobs_leases ON bg_jobs (lease_expires_at) WHERE state = 'Processing';
CREATE INDEX bg_jobs_state ON bg_jobs (state, id);
CREATE INDEX bg_jobs_parent ON bg_jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX bg_jobs_finished ON bg_jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX bg_jobs_concurrency ON bg_jobs (concurrency_key, state) WHERE concurrency_key IS NOT NULL;
CREATE UNIQUE INDEX bg_jobs_unique ON bg_jobs (unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('Enqueued', 'Scheduled', 'Awaiting', 'Processing');
CREATE UNIQUE INDEX bg_jobs_nonconcurrent ON bg_jobs (concurrency_key)
  WHERE concurrency_key IS NOT NULL AND state = 'Processing';
CREATE TABLE bg_job_states (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  worker TEXT,
  reason TEXT
);
CREATE INDEX bg_job_states_job ON bg_job_states (job_id, id);
CREATE TABLE bg_job_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL,
  at INTEGER NOT NULL,
  line TEXT NOT NULL
);
CREATE INDEX bg_job_logs_job ON bg_job_logs (job_id, id);
CREATE TABLE bg_recurring (
  id TEXT PRIMARY KEY,
  cron TEXT NOT NULL,
  timezone TEXT NOT NULL,
  name TEXT NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  max_attempts INTEGER,
  next_run_at INTEGER NOT NULL,
  last_run_at INTEGER,
  last_job_id INTEGER,
  created_at INTEGER NOT NULL
);
"#,
    ),
    (
        2,
        // Looks up a unique key in every state, for `JobStore::enqueue_once`.
        "CREATE INDEX bg_jobs_unique_key ON bg_jobs (unique_key) WHERE unique_key IS NOT NULL;",
    ),
    (
        3,
        // The job servers (worker processes) and their heartbeats, for the dashboard and health.
        "CREATE TABLE bg_servers (id TEXT PRIMARY KEY, queues TEXT NOT NULL, workers INTEGER NOT NULL, \
     started_at INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL);",
    ),
    (
        4,
        // The dashboard: recurring jobs can be disabled; the graphs count state changes by time;
        // the Retries page lists scheduled jobs that already ran.
        "ALTER TABLE bg_recurring ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE; \
     CREATE INDEX bg_job_states_state_at ON bg_job_states (state, at); \
     CREATE INDEX bg_jobs_retries ON bg_jobs (id) WHERE state = 'Scheduled' AND attempt > 0;",
    ),
    (
        5,
        // See the PostgreSQL migration 5.
        r#"
CREATE TABLE bg_state_counts (id INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT NOT NULL, hour INTEGER NOT NULL, n INTEGER NOT NULL);
CREATE TRIGGER bg_jobs_count_insert AFTER INSERT ON bg_jobs BEGIN
  INSERT INTO bg_state_counts (state, hour, n) VALUES (NEW.state, NEW.updated_at / 3600000000, 1);
END;
CREATE TRIGGER bg_jobs_count_delete AFTER DELETE ON bg_jobs BEGIN
  INSERT INTO bg_state_counts (state, hour, n) VALUES (OLD.state, 0, -1);
END;
CREATE TRIGGER bg_jobs_count_update AFTER UPDATE OF state ON bg_jobs WHEN NEW.state IS NOT OLD.state BEGIN
  INSERT INTO bg_state_counts (state, hour, n) VALUES (OLD.state, 0, -1);
  INSERT INTO bg_state_counts (state, hour, n) VALUES (NEW.state, NEW.updated_at / 3600000000, 1);
END;
INSERT INTO bg_state_counts (state, hour, n) SELECT state, 0, COUNT(*) FROM bg_jobs GROUP BY state;
"#,
    ),
    (
        6,
        // See the PostgreSQL migration 6.
        r#"
CREATE TABLE bg_state_totals (state TEXT NOT NULL, hour INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (state, hour));
INSERT INTO bg_state_totals (state, hour, n)
SELECT state, CASE WHEN n > 0 THEN hour ELSE 0 END AS h, SUM(n) FROM bg_state_counts WHERE true GROUP BY state, h;
DELETE FROM bg_state_counts;
"#,
    ),
];

/// An arbitrary constant key for the advisory lock that serialises concurrent migrators.
const PG_MIGRATION_LOCK: i64 = 0x6267_6a6f_6273; // "bgjobs"

pub(crate) async fn migrate_pg(pool: &PgPool) -> Result<(), JobError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS bg_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM bg_schema")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("version"))
        .collect::<Result<_, _>>()?;
    for (version, sql) in PG {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|source| JobError::Migration { version: *version, source })?;
        sqlx::query("INSERT INTO bg_schema (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(crate::time::now_us())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), JobError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS bg_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM bg_schema")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("version"))
        .collect::<Result<_, _>>()?;
    for (version, sql) in SQLITE {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|source| JobError::Migration { version: *version, source })?;
        sqlx::query("INSERT INTO bg_schema (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(crate::time::now_us())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
