//! Durable background jobs on PostgreSQL and SQLite — the Hangfire of Diquis.
//!
//! * [`JobStore`]: connect (migrations run at start) or share the application's pool; enqueue
//!   fire-and-forget, delayed ([`JobStore::schedule`]), recurring ([`JobStore::add_recurring`],
//!   cron + IANA time zone) and continuation jobs ([`JobStore::continue_with`]); cancel, requeue,
//!   delete; [`JobStore::enqueue_once`] to hand one request over at most once (relaying an
//!   outbox that lives in another database); the queries behind the dashboard.
//! * [`enqueue_in_tx`]: enqueue inside the caller's own sqlx transaction, so an application row
//!   and its job commit or roll back together.
//! * [`Worker`]: named queues with a worker count each, handlers registered by stable string
//!   name ([`handler_fn`]), leases renewed by heartbeats and guarded by fencing tokens, retries
//!   with Hangfire's policy or a per-type [`RetryPolicy`], cancellation, graceful shutdown,
//!   metrics.
//! * [`JobContext`]: job id, attempt, cancellation token, `progress`, `log`, and
//!   [`JobContext::complete_in_tx`] so the application's final writes and the job's final state
//!   commit together, refused if the lease is stale; [`JobContext::check_lease`] to fence
//!   writes to another database.
//! * [`dashboard::router`]: a server-rendered HTML dashboard to mount in an axum app.
//!
//! ## Job names and payload versions
//! A job is named by a stable string that carries its payload version — `"provision-tenant@1"` —
//! never by a Rust type name. Payloads are JSON; evolve them compatibly (`#[serde(default)]` on new
//! fields). For a breaking change, register `"provision-tenant@2"` and keep the `@1` handler until
//! its jobs are drained. A payload that no longer deserializes fails its job permanently with a
//! clear error; a name no handler knows fails permanently too.
//!
//! ## Delivery
//! At least once. A worker that dies loses its lease after `lease_duration`; the job runs again
//! and any late write of the dead execution (complete, fail, progress, log, `complete_in_tx`) is
//! refused by the fencing token. Make side effects idempotent, or do them in the same
//! transaction as [`JobContext::complete_in_tx`].

#![warn(missing_docs)]

mod context;
pub mod dashboard;
mod db;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod model;
mod retry;
mod store;
mod time;
mod worker;

pub use context::JobContext;
pub use db::JobDatabase;
pub use error::JobError;
pub use handler::{FnHandler, HandlerFuture, JobHandler, handler_fn};
pub use model::{
    CancelOutcome, DEFAULT_QUEUE, JobFilter, JobId, JobRecord, JobState, Lease, LogLine, NewJob, QueueStats, RecurringJob, ServerRecord,
    StateChange, TEXT_SEARCH_WINDOW, Throughput, UnknownState,
};
pub use retry::{RetryPolicy, hangfire_delay};
pub use store::{JobStore, StoreOptions};
pub use worker::{MetricsSnapshot, Worker, WorkerBuilder, WorkerConfig, WorkerHandle};

/// Enqueues `job` inside the caller's transaction (PostgreSQL or SQLite): it exists only if the
/// transaction commits. On PostgreSQL workers are woken by NOTIFY at commit; on SQLite call
/// [`JobStore::wake`] after committing (or workers find it at their next poll).
pub async fn enqueue_in_tx<DB: JobDatabase>(tx: &mut sqlx::Transaction<'_, DB>, job: NewJob) -> Result<JobId, JobError> {
    let now = time::now_us();
    let insert = db::prepare(&job, now)?;
    DB::insert_job(&mut **tx, &insert, now).await
}

/// Adds a continuation of job `parent` inside the caller's transaction (see
/// [`JobStore::continue_with`]).
pub async fn continue_with_in_tx<DB: JobDatabase>(
    tx: &mut sqlx::Transaction<'_, DB>,
    parent: JobId,
    job: NewJob,
) -> Result<JobId, JobError> {
    db::insert_continuation::<DB>(&mut **tx, parent, &job, time::now_us()).await
}
