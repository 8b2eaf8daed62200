//! The tenant: an academy with its own admin and, optionally, its own database.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a tenant is in its lifecycle (.NET `ProvisioningStatus`, serialized as strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TenantStatus {
    /// Created; its provisioning job has not started.
    Pending,
    /// Its provisioning job is running.
    Provisioning,
    /// Ready.
    Active,
    /// The last provisioning or update failed; see `provisioningError`.
    Failed,
    /// Its update job is queued or running.
    Updating,
}

impl TenantStatus {
    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Pending => "Pending",
            TenantStatus::Provisioning => "Provisioning",
            TenantStatus::Active => "Active",
            TenantStatus::Failed => "Failed",
            TenantStatus::Updating => "Updating",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Provisioning, Self::Active, Self::Failed, Self::Updating].into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a job is pending or running for the tenant.
    pub fn is_busy(self) -> bool {
        matches!(self, TenantStatus::Pending | TenantStatus::Provisioning | TenantStatus::Updating)
    }
}

/// A stored tenant row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    /// Slug id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether its users may sign in.
    pub is_active: bool,
    /// Lifecycle status (a [`TenantStatus`] name).
    pub status: String,
    /// The last provisioning or update error.
    pub provisioning_error: Option<String>,
    /// Isolated database: its name (PostgreSQL) or file (SQLite); `None` = shared database.
    pub connection_string: Option<String>,
    /// Whether it has its own database.
    pub has_isolated_database: bool,
    /// Email of its first administrator.
    pub admin_email: String,
    /// The user name of whoever created it.
    pub created_by: Option<String>,
    /// Created.
    pub created_on: DateTime<Utc>,
    /// Last changed.
    pub updated_on: DateTime<Utc>,
    /// Last time a provisioning attempt started.
    pub last_provisioning_attempt: Option<DateTime<Utc>>,
    /// When provisioning first succeeded.
    pub provisioned_on: Option<DateTime<Utc>>,
    /// The job whose failure made the tenant `Failed` (its retries are in the job storage).
    pub failed_job_id: Option<i64>,
}

/// The columns of [`TenantRow`], for `SELECT`s.
pub const TENANT_COLUMNS: &str = "id, name, is_active, status, provisioning_error, connection_string, has_isolated_database, \
     admin_email, created_by, created_on, updated_on, last_provisioning_attempt, provisioned_on, failed_job_id";

/// A tenant as the API shows it (camelCase, status as a string).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantDto {
    /// Slug id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Active flag.
    pub is_active: bool,
    /// Status name.
    pub status: String,
    /// Last error.
    pub provisioning_error: Option<String>,
    /// Whether it has its own database.
    pub has_isolated_database: bool,
    /// The isolated database's name or file (never credentials).
    pub connection_string: Option<String>,
    /// Created.
    pub created_on: DateTime<Utc>,
    /// Last changed.
    pub updated_on: DateTime<Utc>,
    /// Last provisioning attempt.
    pub last_provisioning_attempt: Option<DateTime<Utc>>,
    /// What the status means, as the tenant page shows it: Inactive, Retrying (attempt, of how
    /// many, when) or Failed for good (see [`super::outlook`]).
    pub outlook: super::outlook::OutlookDto,
}

impl TenantDto {
    /// The API's view of `r`, with what its status means (`shown`).
    pub fn new(r: TenantRow, shown: &super::outlook::Shown) -> Self {
        TenantDto {
            outlook: shown.into(),
            id: r.id,
            name: r.name,
            is_active: r.is_active,
            status: r.status,
            provisioning_error: r.provisioning_error,
            has_isolated_database: r.has_isolated_database,
            connection_string: r.connection_string,
            created_on: r.created_on,
            updated_on: r.updated_on,
            last_provisioning_attempt: r.last_provisioning_attempt,
        }
    }
}
