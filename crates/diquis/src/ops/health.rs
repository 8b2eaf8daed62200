//! `/health/live` (the process answers) and `/health/ready` (database, job storage — its own
//! database when `HangfireConnection` names one — and the Redis backplane answer), in the shape of
//! ASP.NET Core health checks.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::extract::RootCaller;
use crate::db::Db;
use crate::job_outbox::{self, JobStorage};
use crate::state::AppState;
use crate::web::envelope::ApiError;

/// The backplane's health as the application sees it.
#[derive(Clone)]
pub enum Backplane {
    /// In-process: always healthy.
    InProcess,
    /// Redis.
    Redis(Arc<signalr_redis::RedisHubLifetimeManager>),
}

impl Backplane {
    /// Healthy, or the reason it is not.
    pub fn check(&self) -> Result<String, String> {
        match self {
            Backplane::InProcess => Ok("in-process".into()),
            Backplane::Redis(m) => {
                let s = m.status();
                if s.is_healthy() {
                    Ok("redis connected".into())
                } else {
                    Err(format!(
                        "redis unreachable (publisher connected: {}, subscriber connected: {}, last error: {})",
                        s.publisher_connected,
                        s.subscriber_connected,
                        s.last_error.unwrap_or_default()
                    ))
                }
            }
        }
    }

    /// Whether sends can leave this process now.
    pub fn is_healthy(&self) -> bool {
        self.check().is_ok()
    }
}

/// What readiness checks.
#[derive(Clone)]
pub struct Health {
    /// The backplane.
    pub backplane: Backplane,
}

#[derive(Serialize)]
struct Entry {
    status: &'static str,
    /// Only for root administrators: the details may name hosts, users and driver errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Serialize)]
struct Report {
    status: &'static str,
    entries: std::collections::BTreeMap<&'static str, Entry>,
}

async fn check_db(db: &Db) -> Result<String, String> {
    match tokio::time::timeout(Duration::from_secs(5), db.ping()).await {
        Ok(Ok(())) => Ok(format!("{} answers", db.backend())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// `GET /health/live`: 200 `Healthy` while the process serves requests.
pub async fn live() -> &'static str {
    "Healthy"
}

/// `GET /health/ready`: 200 when every dependency answers, else 503; each check's status either
/// way. Its description (which may carry a driver's error text) goes to root administrators
/// (Bearer token or session cookie) only; an unhealthy check's is logged for everyone else.
pub async fn ready(State(state): State<AppState>, caller: Result<RootCaller, ApiError>) -> Response {
    let details = caller.is_ok();
    let mut entries = std::collections::BTreeMap::new();
    let mut healthy = true;
    let mut add = |name: &'static str, r: Result<String, String>| {
        healthy &= r.is_ok();
        let (status, description) = match r {
            Ok(d) => ("Healthy", d),
            Err(d) => {
                tracing::warn!(check = name, problem = %d, "readiness check unhealthy");
                ("Unhealthy", d)
            }
        };
        entries.insert(name, Entry { status, description: details.then_some(description) });
    };
    // A web node works without a jobs process, but nothing it enqueues runs: Degraded.
    let mut degraded = None;
    if !state.role.runs_jobs() {
        let silent_for = Duration::from_secs(state.settings.job_lease_seconds);
        degraded = match tokio::time::timeout(Duration::from_secs(5), state.jobs.servers()).await {
            Ok(Ok(servers)) => job_servers_missing(&servers, chrono::Utc::now(), silent_for),
            // The jobs check below reports the storage's own failure.
            _ => None,
        };
    }
    add("database", check_db(&state.db).await);
    // The job store's own pool: with a separate job storage this is the check of that database.
    let jobs = match tokio::time::timeout(Duration::from_secs(5), state.jobs.queue_depth(crate::tenants::jobs::TENANT_QUEUE)).await {
        Ok(Ok(depth)) => Ok(match state.job_storage {
            JobStorage::SameDatabase => format!("{} job storage answers; {depth} tenant jobs waiting", state.jobs.backend_name()),
            JobStorage::SeparateDatabase => {
                // Requests not relayed yet wait in the main database (its own entry says if it fails).
                let backlog = match tokio::time::timeout(Duration::from_secs(5), job_outbox::backlog(&state.db)).await {
                    Ok(Ok(n)) => n.to_string(),
                    _ => "?".into(),
                };
                format!(
                    "{} job storage (separate database) answers; {depth} tenant jobs waiting, {backlog} job requests not yet relayed",
                    state.jobs.backend_name()
                )
            }
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    };
    add("jobs", jobs);
    add("backplane", state.health.backplane.check());
    let mut status = if healthy { "Healthy" } else { "Unhealthy" };
    if let Some(reason) = degraded {
        tracing::warn!(check = "jobServers", problem = %reason, "readiness check degraded");
        entries.insert("jobServers", Entry { status: "Degraded", description: details.then_some(reason) });
        if healthy {
            status = "Degraded";
        }
    }
    // As ASP.NET Core maps them: Healthy and Degraded answer 200, Unhealthy 503.
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Report { status, entries })).into_response()
}

/// Why a web node is Degraded for want of a jobs process: none of `servers` sent a heartbeat
/// within `silent_for` of `now`. `None` when one did.
fn job_servers_missing(servers: &[jobs::ServerRecord], now: chrono::DateTime<chrono::Utc>, silent_for: Duration) -> Option<String> {
    let cutoff = now - chrono::Duration::from_std(silent_for).unwrap_or_else(|_| chrono::Duration::seconds(30));
    if servers.iter().any(|s| s.heartbeat_at >= cutoff) {
        return None;
    }
    Some(format!(
        "no jobs process has sent a heartbeat in the last {} s: tenant jobs wait until a `diquis jobs` process runs",
        silent_for.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::job_servers_missing;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    fn server(heartbeat_secs: i64) -> jobs::ServerRecord {
        jobs::ServerRecord {
            id: "host:1:abcd".into(),
            queues: vec!["tenants".into()],
            workers: 10,
            started_at: Utc.timestamp_opt(0, 0).unwrap(),
            heartbeat_at: Utc.timestamp_opt(heartbeat_secs, 0).unwrap(),
        }
    }

    #[test]
    fn degraded_only_when_every_job_server_is_silent() {
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let window = Duration::from_secs(30);
        assert!(job_servers_missing(&[], now, window).unwrap().contains("no jobs process"));
        assert!(job_servers_missing(&[server(969)], now, window).is_some());
        assert!(job_servers_missing(&[server(970)], now, window).is_none());
        assert!(job_servers_missing(&[server(100), server(990)], now, window).is_none());
    }
}
