//! Handing jobs to the job storage, which may be another database than the application's.
//!
//! When `ConnectionStrings:HangfireConnection` names the application database (the default), a
//! job is enqueued in the transaction that writes the rows it is about. When it names another
//! database, no transaction spans both: the request is written to the `job_requests` outbox in
//! the application transaction instead, and the [`Relay`] of every Diquis process enqueues it
//! into the job storage with [`jobs::JobStore::enqueue_once`], keyed by the request id (so
//! relaying a row twice makes one job), then deletes the row. The relay is woken right after a
//! commit in its own process and sweeps periodically, so a request committed by a process that
//! died before relaying it is still run.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jobs::{JobError, JobStore, NewJob};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseTarget;
use crate::db::{Db, Tx};
use crate::outbox_loop::{Attempt, drain_until_shutdown};

/// Where the job storage is relative to the application database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStorage {
    /// The same database: jobs are enqueued and completed in the application's transactions.
    SameDatabase,
    /// Another database: jobs go through the outbox and the [`Relay`]; a job's result commits
    /// in the application database before the job is marked done in the job storage.
    SeparateDatabase,
}

impl JobStorage {
    /// Compares the two configured targets (`DefaultConnection`, `HangfireConnection`).
    pub fn of(database: &DatabaseTarget, job_storage: &DatabaseTarget) -> Self {
        let same = match (database, job_storage) {
            (DatabaseTarget::Postgres(x), DatabaseTarget::Postgres(y)) => x.host == y.host && x.port == y.port && x.database == y.database,
            (DatabaseTarget::Sqlite { path: x }, DatabaseTarget::Sqlite { path: y }) => {
                // Files that do not exist yet compare by the path as written.
                let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                canon(x) == canon(y)
            }
            _ => false,
        };
        if same { JobStorage::SameDatabase } else { JobStorage::SeparateDatabase }
    }
}

/// A job to hand over: everything needed to enqueue it later, in storable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// Unique id of the request; the relay's unique key is derived from it.
    pub request_id: String,
    /// Stable job name (with its payload version).
    pub name: String,
    /// Queue.
    pub queue: String,
    /// Payload JSON.
    pub payload: String,
    /// Jobs sharing this key never run concurrently.
    pub concurrency_key: Option<String>,
}

/// A fresh request id.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl JobRequest {
    /// A request for job `name` on `queue` with `payload` serialized to JSON.
    pub fn new(request_id: &str, name: &str, queue: &str, payload: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self {
            request_id: request_id.to_string(),
            name: name.to_string(),
            queue: queue.to_string(),
            payload: serde_json::to_string(payload)?,
            concurrency_key: None,
        })
    }

    /// Sets the concurrency key.
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.concurrency_key = Some(key.into());
        self
    }

    /// The job storage's unique key for this request.
    pub fn unique_key(&self) -> String {
        format!("diquis:request:{}", self.request_id)
    }

    /// The job to enqueue (the stored payload is passed through unchanged).
    pub fn to_job(&self) -> Result<NewJob, serde_json::Error> {
        let payload = serde_json::value::RawValue::from_string(self.payload.clone())?;
        let job = NewJob::new(self.name.clone(), payload).queue(self.queue.clone());
        Ok(match &self.concurrency_key {
            Some(key) => job.concurrency_key(key.clone()),
            None => job,
        })
    }
}

/// Why a job could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The stored payload is not JSON.
    #[error("job request {request_id} has a payload that is not JSON: {source}")]
    Payload {
        /// The request.
        request_id: String,
        /// The parser error.
        source: serde_json::Error,
    },
    /// Enqueueing into the job storage failed.
    #[error("job storage: {0}")]
    Jobs(#[from] JobError),
    /// Writing to or reading the application database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Hands `request` over inside the application transaction `tx`: enqueued in it when the job
/// storage is the same database, else written to the outbox. After committing, call
/// [`after_commit`].
pub async fn submit(tx: &mut Tx, storage: JobStorage, request: &JobRequest) -> Result<(), SubmitError> {
    match storage {
        JobStorage::SameDatabase => {
            let job = request.to_job().map_err(|source| SubmitError::Payload { request_id: request.request_id.clone(), source })?;
            tx.enqueue_job(job).await?;
        }
        JobStorage::SeparateDatabase => insert(tx, request).await?,
    }
    Ok(())
}

/// Wakes whoever runs a submitted job next: this process's workers (same database; PostgreSQL
/// workers elsewhere get NOTIFY at commit) or this process's relay.
pub fn after_commit(storage: JobStorage, jobs: &JobStore, relay_wake: &Notify) {
    match storage {
        JobStorage::SameDatabase => jobs.wake(),
        JobStorage::SeparateDatabase => relay_wake.notify_one(),
    }
}

/// Writes `request` to the outbox inside `tx`.
pub async fn insert(tx: &mut Tx, request: &JobRequest) -> Result<(), sqlx::Error> {
    tx.query(
        "INSERT INTO job_requests (request_id, name, queue, payload, concurrency_key, created_on) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&request.request_id)
    .bind(&request.name)
    .bind(&request.queue)
    .bind(&request.payload)
    .bind(&request.concurrency_key)
    .bind(Utc::now())
    .execute()
    .await?;
    Ok(())
}

/// Requests in the outbox, oldest first, after row `after` (at most `limit`), with their row ids.
pub async fn pending(db: &Db, after: i64, limit: i64) -> Result<Vec<(i64, JobRequest)>, sqlx::Error> {
    type Row = (i64, String, String, String, String, Option<String>);
    let rows: Vec<Row> = db
        .query_as("SELECT id, request_id, name, queue, payload, concurrency_key FROM job_requests WHERE id > $1 ORDER BY id LIMIT $2")
        .bind(after)
        .bind(limit)
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, request_id, name, queue, payload, concurrency_key)| {
            (id, JobRequest { request_id, name, queue, payload, concurrency_key })
        })
        .collect())
}

/// How many requests wait in the outbox.
pub async fn backlog(db: &Db) -> Result<i64, sqlx::Error> {
    db.query_scalar("SELECT COUNT(*) FROM job_requests").fetch_one().await
}

/// How often the outbox is swept for requests no wake-up announced (another process's, or one
/// committed just before a crash).
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);
const BATCH: i64 = 100;

/// Moves requests from the outbox into the job storage.
#[derive(Clone)]
pub struct Relay {
    db: Db,
    jobs: JobStore,
    wake: Arc<Notify>,
}

impl Relay {
    /// A relay from `db`'s outbox into `jobs`; `wake` is notified after a request commits here.
    pub fn new(db: Db, jobs: JobStore, wake: Arc<Notify>) -> Self {
        Self { db, jobs, wake }
    }

    /// Runs until `shutdown`: relays at start, when woken and every 2 s; backs off while the job
    /// storage or the database fails.
    pub async fn run(self, shutdown: CancellationToken) {
        drain_until_shutdown("relaying job requests", &self.wake, &shutdown, SWEEP_INTERVAL, || async {
            match self.relay_pending().await {
                Ok(_) => Attempt::Drained,
                Err(error) => Attempt::Failed(error),
            }
        })
        .await
    }

    /// Relays every request in the outbox, oldest first; returns how many were relayed. Stops at
    /// the first failure of the job storage or the database (the rest wait for the next attempt);
    /// a request whose payload is not JSON is left in place and reported.
    pub async fn relay_pending(&self) -> Result<usize, SubmitError> {
        let mut relayed = 0;
        let mut after = 0;
        loop {
            let batch = pending(&self.db, after, BATCH).await?;
            for (row_id, request) in &batch {
                after = *row_id;
                if self.relay(*row_id, request).await? {
                    relayed += 1;
                }
            }
            if (batch.len() as i64) < BATCH {
                return Ok(relayed);
            }
        }
    }

    /// Enqueues one request (at most once per request id, however often this runs) and deletes
    /// its row. Returns false for a request that cannot be enqueued (it stays in the outbox).
    pub async fn relay(&self, row_id: i64, request: &JobRequest) -> Result<bool, SubmitError> {
        let job = match request.to_job() {
            Ok(job) => job,
            Err(source) => {
                let e = SubmitError::Payload { request_id: request.request_id.clone(), source };
                tracing::error!(error = %e, "job request left in the outbox");
                return Ok(false);
            }
        };
        let job_id = self.jobs.enqueue_once(&request.unique_key(), job).await?;
        // A crash here leaves the row: the next sweep enqueues it again, which finds job_id.
        self.db.query("DELETE FROM job_requests WHERE id = $1").bind(row_id).execute().await?;
        metrics::counter!("diquis_job_requests_relayed_total").increment(1);
        tracing::debug!(request = %request.request_id, job = job_id, name = %request.name, "job request relayed");
        Ok(true)
    }
}
