//! The state shared by every request handler.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::auth::jwt::JwtService;
use crate::auth::revocation::Revocations;
use crate::config::Settings;
use crate::db::Db;
use crate::job_outbox::JobStorage;
use crate::ops::health::Health;

/// Which parts of Diquis this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// `diquis web`: API, UI and hub; enqueues jobs.
    Web,
    /// `diquis jobs`: workers, dashboard, the outbox publisher and the hub.
    Jobs,
    /// `diquis`: both in one process.
    All,
}

impl ProcessRole {
    /// Whether this process serves the API and the UI.
    pub fn serves_web(self) -> bool {
        matches!(self, ProcessRole::Web | ProcessRole::All)
    }
    /// Whether this process runs job workers, the dashboard and the publisher.
    pub fn runs_jobs(self) -> bool {
        matches!(self, ProcessRole::Jobs | ProcessRole::All)
    }
    /// The port used when `Urls` is not configured.
    pub fn default_port(self) -> u16 {
        match self {
            ProcessRole::Web | ProcessRole::All => 5000,
            ProcessRole::Jobs => 5001,
        }
    }
    /// The name in logs.
    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Web => "web",
            ProcessRole::Jobs => "jobs",
            ProcessRole::All => "web+jobs",
        }
    }
}

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// The contents of [`AppState`].
pub struct AppInner {
    /// Validated settings.
    pub settings: Settings,
    /// Main database.
    pub db: Db,
    /// Access tokens.
    pub jwt: JwtService,
    /// Revocation checks of tokens and sessions, and their announcement to other nodes.
    pub revocations: Revocations,
    /// The job store (`ConnectionStrings:HangfireConnection`).
    pub jobs: jobs::JobStore,
    /// Whether the job store is in `db` or in another database.
    pub job_storage: JobStorage,
    /// Wakes the job-outbox relay (separate job storage only).
    pub relay_wake: Arc<Notify>,
    /// Wakes the outbox publisher.
    pub outbox_wake: Arc<Notify>,
    /// Readiness checks.
    pub health: Health,
    /// Which parts run here.
    pub role: ProcessRole,
    /// Sign-in limits, the password-hashing pool, trusted proxies.
    pub security: crate::security::Security,
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}
