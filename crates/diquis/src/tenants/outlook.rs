//! What a tenant's status means for the person looking at it: a deactivated tenant is Inactive,
//! and a Failed one is either Retrying (its job waits for its next attempt) or Failed for good
//! (no attempt left). The job storage knows which; the tenant row names the job.

use chrono::{DateTime, Utc};
use jobs::{JobRecord, JobState, JobStore};
use serde::Serialize;

use super::model::{TenantRow, TenantStatus};

/// The status shown for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// The stored status as it is.
    Status(TenantStatus),
    /// Active but deactivated: its users cannot sign in.
    Inactive,
    /// Failed; its job runs again: `attempt` of `max_attempts`, at `at` (`None`: now).
    Retrying {
        /// The coming attempt's number.
        attempt: i32,
        /// Attempts in all.
        max_attempts: i32,
        /// When it is due; `None` when it is queued or running already.
        at: Option<DateTime<Utc>>,
    },
    /// Failed with no attempt left (or its job is gone): an operator must act.
    GaveUp,
}

impl Shown {
    /// The badge's word (and its CSS class suffix).
    pub fn label(&self) -> &'static str {
        match self {
            Shown::Status(s) => s.as_str(),
            Shown::Inactive => "Inactive",
            Shown::Retrying { .. } => "Retrying",
            Shown::GaveUp => "Failed",
        }
    }

    /// A line under the badge, when there is more to say.
    pub fn detail(&self) -> Option<String> {
        match self {
            Shown::Retrying { attempt, max_attempts, at: Some(at) } => {
                Some(format!("attempt {attempt} of {max_attempts} at {} UTC", at.format("%Y-%m-%d %H:%M:%S")))
            }
            Shown::Retrying { attempt, max_attempts, at: None } => Some(format!("attempt {attempt} of {max_attempts} now")),
            Shown::GaveUp => Some("no attempt left: fix the cause, then Requeue its job in Jobs".into()),
            _ => None,
        }
    }
}

/// [`Shown`] as the API answers it (`outlook` of a tenant): `state` is the badge's word;
/// `attempt`, `maxAttempts` and `nextAttemptAt` are set while it is Retrying (`nextAttemptAt`
/// `null` when the attempt is queued or running now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlookDto {
    /// `Pending`, `Provisioning`, `Active`, `Updating`, `Inactive`, `Retrying` or `Failed`.
    pub state: &'static str,
    /// The coming attempt's number (Retrying only).
    pub attempt: Option<i32>,
    /// Attempts in all (Retrying only).
    pub max_attempts: Option<i32>,
    /// When the coming attempt is due (Retrying only; `null`: now).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The line the page shows under the badge, if any.
    pub detail: Option<String>,
}

impl From<&Shown> for OutlookDto {
    fn from(s: &Shown) -> Self {
        let (attempt, max_attempts, next_attempt_at) = match s {
            Shown::Retrying { attempt, max_attempts, at } => (Some(*attempt), Some(*max_attempts), *at),
            _ => (None, None, None),
        };
        OutlookDto { state: s.label(), attempt, max_attempts, next_attempt_at, detail: s.detail() }
    }
}

/// What to show for `tenant`, given its failed job (`None`: unknown or gone) and the configured
/// attempts of tenant jobs (`Jobs:TenantRetry:Attempts`, for a job that does not name its own).
pub fn shown(tenant: &TenantRow, failed_job: Option<&JobRecord>, default_attempts: u32) -> Shown {
    let status = TenantStatus::parse(&tenant.status).unwrap_or(TenantStatus::Failed);
    match status {
        TenantStatus::Active if !tenant.is_active => Shown::Inactive,
        TenantStatus::Failed => match failed_job {
            Some(job) => {
                let max_attempts = job.max_attempts.unwrap_or(default_attempts as i32);
                match job.state {
                    JobState::Scheduled => Shown::Retrying { attempt: job.attempt + 1, max_attempts, at: Some(job.run_at) },
                    JobState::Enqueued | JobState::Processing => Shown::Retrying { attempt: job.attempt.max(1), max_attempts, at: None },
                    _ => Shown::GaveUp,
                }
            }
            None => Shown::GaveUp,
        },
        other => Shown::Status(other),
    }
}

/// [`shown`] for `tenant`, reading its failed job from `jobs` (a storage error shows it Failed).
pub async fn shown_for(jobs: &JobStore, tenant: &TenantRow, default_attempts: u32) -> Shown {
    let job = match (TenantStatus::parse(&tenant.status), tenant.failed_job_id) {
        (Some(TenantStatus::Failed), Some(id)) => jobs.get(id).await.ok().flatten(),
        _ => None,
    };
    shown(tenant, job.as_ref(), default_attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(status: &str, is_active: bool) -> TenantRow {
        TenantRow {
            id: "acme".into(),
            name: "Acme".into(),
            is_active,
            status: status.into(),
            provisioning_error: None,
            connection_string: None,
            has_isolated_database: false,
            admin_email: "a@acme.test".into(),
            created_by: None,
            created_on: Utc::now(),
            updated_on: Utc::now(),
            last_provisioning_attempt: None,
            provisioned_on: None,
            failed_job_id: Some(7),
        }
    }

    fn job(state: JobState, attempt: i32) -> JobRecord {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap();
        JobRecord {
            id: 7,
            name: "ProvisionTenant".into(),
            queue: "tenants".into(),
            priority: 0,
            payload: "{}".into(),
            state,
            run_at: at,
            attempt,
            max_attempts: None,
            unique_key: None,
            concurrency_key: None,
            parent_id: None,
            recurring_id: None,
            lease_token: 0,
            lease_owner: None,
            lease_expires_at: None,
            cancel_requested: false,
            progress: None,
            last_error: Some("boom".into()),
            created_at: at,
            updated_at: at,
            finished_at: None,
        }
    }

    #[test]
    fn what_each_state_shows() {
        assert_eq!(shown(&tenant("Active", false), None, 11), Shown::Inactive);
        assert_eq!(shown(&tenant("Active", true), None, 11), Shown::Status(TenantStatus::Active));
        let retrying = shown(&tenant("Failed", true), Some(&job(JobState::Scheduled, 2)), 11);
        assert_eq!(retrying.label(), "Retrying");
        assert_eq!(retrying.detail().unwrap(), "attempt 3 of 11 at 2026-12-05 10:00:00 UTC");
        assert_eq!(shown(&tenant("Failed", true), Some(&job(JobState::Processing, 3)), 11).detail().unwrap(), "attempt 3 of 11 now");
        assert_eq!(shown(&tenant("Failed", true), Some(&job(JobState::Failed, 11)), 11), Shown::GaveUp);
        assert_eq!(shown(&tenant("Failed", true), None, 11).label(), "Failed");
        assert_eq!(
            shown(&tenant("Failed", true), Some(&job(JobState::Scheduled, 1)), 3).detail().unwrap(),
            "attempt 2 of 3 at 2026-12-05 10:00:00 UTC"
        );
        let dto = OutlookDto::from(&retrying);
        assert_eq!((dto.state, dto.attempt, dto.max_attempts), ("Retrying", Some(3), Some(11)));
        assert_eq!(serde_json::to_value(&dto).unwrap()["nextAttemptAt"], "2026-12-05T10:00:00Z");
        let dto = OutlookDto::from(&Shown::Inactive);
        assert_eq!(
            serde_json::to_value(&dto).unwrap(),
            serde_json::json!({"state": "Inactive", "attempt": null, "maxAttempts": null, "nextAttemptAt": null, "detail": null})
        );
    }
}
