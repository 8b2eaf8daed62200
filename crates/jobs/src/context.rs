//! What a handler gets: the job's identity, its lease, cancellation, progress and logs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::db::{FailOutcome, JobDatabase};
use crate::error::JobError;
use crate::model::{JobId, JobState, Lease};
use crate::retry::RetryPolicy;
use crate::store::JobStore;
use crate::time::{dur_us, now_us, to_datetime};

/// The context of one execution of a job. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    lease: Lease,
    name: String,
    queue: String,
    attempt: u32,
    max_attempts: u32,
    policy: RetryPolicy,
    created_at: i64,
    cancel: CancellationToken,
    store: JobStore,
    worker_id: Arc<str>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job_id", &self.inner.lease.job_id)
            .field("name", &self.inner.name)
            .field("attempt", &self.inner.attempt)
            .finish()
    }
}

/// Decides where a failed execution goes: a retry (`Scheduled`) or `Failed`.
pub(crate) fn failure_outcome(policy: &RetryPolicy, max_attempts: u32, attempt: u32, error: &JobError, now: i64) -> FailOutcome {
    let message = error.to_string();
    if error.is_retryable() && attempt < max_attempts {
        let delay = policy.delay_after(attempt);
        FailOutcome {
            state: JobState::Scheduled,
            run_at: Some(now.saturating_add(dur_us(delay))),
            reason: format!("Retry attempt {attempt} of {} in {:?}: {message}", max_attempts - 1, delay),
            error: Some(message),
            refund_attempt: false,
        }
    } else {
        let reason = if error.is_retryable() {
            format!("Failed after {attempt} attempt(s): {message}")
        } else {
            format!("Failed permanently: {message}")
        };
        FailOutcome { state: JobState::Failed, run_at: None, error: Some(message), reason, refund_attempt: false }
    }
}

impl JobContext {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        lease: Lease,
        name: String,
        queue: String,
        attempt: u32,
        max_attempts: u32,
        policy: RetryPolicy,
        created_at: i64,
        cancel: CancellationToken,
        store: JobStore,
        worker_id: Arc<str>,
    ) -> Self {
        JobContext {
            inner: Arc::new(ContextInner { lease, name, queue, attempt, max_attempts, policy, created_at, cancel, store, worker_id }),
        }
    }

    /// The job id.
    pub fn job_id(&self) -> JobId {
        self.inner.lease.job_id
    }

    /// The job name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The queue it was claimed from.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This execution's number, 1-based.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// Total executions allowed.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// The fencing lease of this execution.
    pub fn lease(&self) -> Lease {
        self.inner.lease
    }

    /// The id of the worker running it.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// When the job was created.
    pub fn enqueued_at(&self) -> DateTime<Utc> {
        to_datetime(self.inner.created_at)
    }

    /// The store the job lives in.
    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    /// Fires when the job is cancelled (`JobStore::cancel`, deleted), its lease was lost, or the
    /// worker shuts down past its grace period. Stop and return an error (e.g.
    /// [`JobError::Cancelled`]) when it fires.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    /// Whether the cancellation token fired.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Resolves when the cancellation token fires.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    /// Reports progress in percent (clamped to 100), shown in the dashboard.
    /// Fails with [`JobError::LeaseLost`] if this execution no longer holds the job.
    pub async fn progress(&self, percent: u8) -> Result<(), JobError> {
        let lease = self.inner.lease;
        let pct = i32::from(percent.min(100));
        let held = self.inner.store.storage().worker().progress(lease, pct, now_us()).await?;
        if held { Ok(()) } else { Err(JobError::LeaseLost { job_id: lease.job_id, token: lease.token }) }
    }

    /// Appends a log line, shown in the dashboard.
    /// Fails with [`JobError::LeaseLost`] if this execution no longer holds the job.
    pub async fn log(&self, line: impl Into<String>) -> Result<(), JobError> {
        let lease = self.inner.lease;
        let line = line.into();
        let held = self.inner.store.storage().worker().log_line(lease, &line, now_us()).await?;
        if held { Ok(()) } else { Err(JobError::LeaseLost { job_id: lease.job_id, token: lease.token }) }
    }

    /// Marks the job `Succeeded` inside the caller's transaction, so the application's own rows
    /// and the job's final state commit (or roll back) together. Fenced: if this execution's
    /// lease is no longer current, nothing is written and [`JobError::LeaseLost`] is returned —
    /// roll the transaction back then. Call it first in the transaction: it locks the job row.
    pub async fn complete_in_tx<DB: JobDatabase>(&self, tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), JobError> {
        let lease = self.inner.lease;
        if DB::complete(&mut **tx, lease, &self.inner.worker_id, now_us()).await? {
            Ok(())
        } else {
            Err(JobError::LeaseLost { job_id: lease.job_id, token: lease.token })
        }
    }

    /// Records a failure of this execution inside the caller's transaction, applying the retry
    /// policy (`Scheduled` for a retry, or `Failed`). Fenced like [`JobContext::complete_in_tx`].
    pub async fn fail_in_tx<DB: JobDatabase>(&self, tx: &mut sqlx::Transaction<'_, DB>, error: &JobError) -> Result<(), JobError> {
        let lease = self.inner.lease;
        let now = now_us();
        let outcome = failure_outcome(&self.inner.policy, self.inner.max_attempts, self.inner.attempt, error, now);
        if DB::finish_failed(&mut **tx, lease, &outcome, &self.inner.worker_id, now).await? {
            Ok(())
        } else {
            Err(JobError::LeaseLost { job_id: lease.job_id, token: lease.token })
        }
    }

    /// Checks that this execution still holds the job, on the job store's own connections.
    /// Nothing stays locked afterwards, so this is the fence for writes to another database
    /// (call it just before committing them): a stale execution is refused, and the short
    /// window between this check and that commit must be covered by making the writes
    /// idempotent. With the job tables in the same database, prefer
    /// [`JobContext::check_lease_in_tx`] or [`JobContext::complete_in_tx`].
    pub async fn check_lease(&self) -> Result<(), JobError> {
        let lease = self.inner.lease;
        let held = self.inner.store.storage().worker().lease_held(lease).await?;
        if held { Ok(()) } else { Err(JobError::LeaseLost { job_id: lease.job_id, token: lease.token }) }
    }

    /// Checks, inside the caller's transaction, that this execution still holds the job, and
    /// locks the job row until the transaction ends so it cannot be re-claimed meanwhile. Use it
    /// to guard application writes made before the job finishes.
    pub async fn check_lease_in_tx<DB: JobDatabase>(&self, tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), JobError> {
        self.inner.lease.check_in_tx(tx).await
    }
}

impl Lease {
    /// Checks inside `tx` that this lease is still current (job `Processing` under this token)
    /// and locks the job row; [`JobError::LeaseLost`] otherwise.
    pub async fn check_in_tx<DB: JobDatabase>(&self, tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), JobError> {
        if DB::lock_lease(&mut **tx, *self).await? { Ok(()) } else { Err(JobError::LeaseLost { job_id: self.job_id, token: self.token }) }
    }

    /// Marks the job `Succeeded` inside `tx` under this lease (what
    /// [`JobContext::complete_in_tx`] does); refused with [`JobError::LeaseLost`] when stale.
    pub async fn complete_in_tx<DB: JobDatabase>(&self, tx: &mut sqlx::Transaction<'_, DB>, worker: &str) -> Result<(), JobError> {
        if DB::complete(&mut **tx, *self, worker, now_us()).await? {
            Ok(())
        } else {
            Err(JobError::LeaseLost { job_id: self.job_id, token: self.token })
        }
    }
}
