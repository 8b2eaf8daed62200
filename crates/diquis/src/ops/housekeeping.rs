//! `Housekeeping`: a recurring job (hourly, on the jobs processes) that removes rows which no
//! longer serve anything, so that tables written per sign-in, per refresh or per attack do not
//! grow without bound. Notifications are kept: they are the catch-up window.

use chrono::{DateTime, Duration, Utc};
use jobs::{JobContext, JobError, JobHandler, NewJob, handler_fn};
use serde::Serialize;

use crate::db::Db;

/// The job's name.
pub const HOUSEKEEPING: &str = "diquis.housekeeping@1";
/// Its recurring job's id on the dashboard's Recurring page.
pub const RECURRING_ID: &str = "housekeeping";
/// Hourly, at a minute away from the hour's crowd.
pub const CRON: &str = "17 * * * *";
/// The queue it runs on (the jobs process works it with one worker).
pub const QUEUE: &str = "maintenance";

/// How many rows one run removed, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Refresh tokens expired before the cut-off.
    pub refresh_tokens: u64,
    /// Sessions (refresh-token families) with no token left, begun before the cut-off.
    pub sessions: u64,
    /// Password-reset links expired before the cut-off.
    pub reset_tokens: u64,
    /// Sign-in failure counts older than a day whose lockout, if any, has ended.
    pub sign_in_failures: u64,
}

/// Removes what expired before `now` less a grace of a day (or the access tokens' lifetime, if
/// longer: an access token names its session, which must outlive it, or the token fails).
pub async fn run(db: &Db, now: DateTime<Utc>, access_token_lifetime: Duration) -> Result<Removed, sqlx::Error> {
    let cut_off = now - Duration::days(1).max(access_token_lifetime);
    let cut_off_ms = cut_off.timestamp_millis();
    let now_ms = now.timestamp_millis();
    let refresh_tokens = db.query("DELETE FROM refresh_tokens WHERE expires_on < $1").bind(cut_off).execute().await?.rows_affected();
    let sessions = db
        .query(
            "DELETE FROM refresh_families WHERE created_on < $1 \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id)",
        )
        .bind(cut_off)
        .execute()
        .await?
        .rows_affected();
    let reset_tokens =
        db.query("DELETE FROM password_reset_tokens WHERE expires_at < $1").bind(cut_off_ms).execute().await?.rows_affected();
    let sign_in_failures = db
        .query("DELETE FROM sign_in_failures WHERE last_failure < $1 AND (locked_until IS NULL OR locked_until < $2)")
        .bind(cut_off_ms)
        .bind(now_ms)
        .execute()
        .await?
        .rows_affected();
    Ok(Removed { refresh_tokens, sessions, reset_tokens, sign_in_failures })
}

/// The job that runs [`run`] and writes what it removed to the job's log.
pub fn handler(db: Db, access_token_lifetime: Duration) -> impl JobHandler {
    handler_fn(HOUSEKEEPING, move |ctx: JobContext, _: ()| {
        let db = db.clone();
        async move {
            let removed = run(&db, Utc::now(), access_token_lifetime).await.map_err(JobError::Database)?;
            ctx.log(format!(
                "removed {} expired refresh tokens, {} ended sessions, {} expired reset links, {} old sign-in failure counts",
                removed.refresh_tokens, removed.sessions, removed.reset_tokens, removed.sign_in_failures
            ))
            .await?;
            Ok(())
        }
    })
}

/// The recurring job's definition (added or updated at every start; a Disable on the dashboard
/// stays).
pub fn recurring_job() -> NewJob {
    NewJob::new(HOUSEKEEPING, ()).queue(QUEUE)
}
