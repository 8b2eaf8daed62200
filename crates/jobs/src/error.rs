//! The error type of the job engine.

use crate::model::JobId;

/// Everything that can go wrong in the job engine, named by what went wrong.
///
/// Handlers return it too: [`JobError::failed`] is a retryable failure, [`JobError::fatal`] a
/// permanent one that skips the remaining retries.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database rejected a statement or the connection failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration of the job tables failed.
    #[error("job schema migration {version} failed: {source}")]
    Migration {
        /// The migration version that failed.
        version: i64,
        /// The database error.
        source: sqlx::Error,
    },
    /// `JobStore::connect` got something that is neither a PostgreSQL URL nor a SQLite path/URL.
    #[error("invalid job store location {location:?}: {reason}")]
    InvalidLocation {
        /// The string passed to `connect`.
        location: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A job payload could not be serialized to JSON when enqueuing.
    #[error("job payload of {name:?} does not serialize to JSON: {reason}")]
    PayloadSerialize {
        /// The job name.
        name: String,
        /// The serde error.
        reason: String,
    },
    /// A stored payload no longer deserializes into the handler's payload type.
    #[error("payload of job {job_id} ({name:?}) does not deserialize: {reason}")]
    PayloadMismatch {
        /// The job.
        job_id: JobId,
        /// The job name.
        name: String,
        /// The serde error.
        reason: String,
    },
    /// No handler is registered for the job's name on the worker that claimed it.
    #[error("no handler registered for job name {name:?} on worker {worker:?}")]
    UnknownJob {
        /// The job name.
        name: String,
        /// The worker that claimed it.
        worker: String,
    },
    /// A cron expression did not parse.
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidCron {
        /// The expression.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// A time-zone name is not in the IANA database.
    #[error("unknown time zone {0:?}")]
    InvalidTimeZone(String),
    /// A job id does not exist (anymore).
    #[error("job {0} not found")]
    NotFound(JobId),
    /// A recurring job id does not exist.
    #[error("recurring job {0:?} not found")]
    RecurringNotFound(String),
    /// The fencing token no longer matches: the lease expired and the job was re-claimed, or the
    /// job already left `Processing`. The write was refused.
    #[error("lease {token} of job {job_id} is no longer held; write refused")]
    LeaseLost {
        /// The job.
        job_id: JobId,
        /// The stale fencing token.
        token: i64,
    },
    /// The requested action is not allowed in the job's current state.
    #[error("job {job_id} is {state}; cannot {action}")]
    InvalidState {
        /// The job.
        job_id: JobId,
        /// Its current state.
        state: String,
        /// The refused action.
        action: &'static str,
    },
    /// A handler failed; the job is retried according to its retry policy.
    #[error("{0}")]
    Failed(String),
    /// A handler failed permanently; no retry.
    #[error("{0}")]
    Fatal(String),
    /// The handler observed its cancellation token and stopped.
    #[error("job was cancelled")]
    Cancelled,
    /// The handler panicked.
    #[error("job handler panicked: {0}")]
    Panicked(String),
}

impl JobError {
    /// A retryable handler failure with a message.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        JobError::Failed(message.to_string())
    }

    /// A permanent handler failure: the job goes to `Failed` without further retries.
    pub fn fatal(message: impl std::fmt::Display) -> Self {
        JobError::Fatal(message.to_string())
    }

    /// Whether a job that failed with this error may be retried.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, JobError::Fatal(_) | JobError::PayloadMismatch { .. } | JobError::UnknownJob { .. } | JobError::Cancelled)
    }
}
