//! The hourly `Housekeeping` job: registered as a recurring job by the jobs process, it removes
//! expired refresh tokens, sessions left without tokens, expired reset links and old sign-in
//! failure counts, and keeps everything still in use; on SQLite and PostgreSQL.

mod common;

use chrono::{Duration, Utc};
use common::*;
use diquis::ProcessRole;
use diquis::ops::housekeeping::{HOUSEKEEPING, RECURRING_ID};
use test_support::both_databases;

async fn expired_rows_go_live_ones_stay(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[]).await;
    let url = app.url();
    // A live session of root's, made by signing in.
    let token = root_token(&url).await;
    let now = Utc::now();
    let old = now - Duration::days(3);
    let now_ms = now.timestamp_millis();
    let db = &app.state.db;
    let root: String = db.query_scalar("SELECT id FROM users WHERE tenant_id = 'root'").fetch_one().await.unwrap();
    for (family, created) in [("old-family", old), ("young-family", now)] {
        db.query("INSERT INTO refresh_families (id, user_id, created_on) VALUES ($1, $2, $3)")
            .bind(family)
            .bind(&root)
            .bind(created)
            .execute()
            .await
            .unwrap();
    }
    for (hash, family, expires) in [("expired", "old-family", old + Duration::hours(1)), ("live", "young-family", now + Duration::days(7))]
    {
        db.query("INSERT INTO refresh_tokens (token_hash, user_id, created_on, expires_on, family_id) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash)
            .bind(&root)
            .bind(old)
            .bind(expires)
            .bind(family)
            .execute()
            .await
            .unwrap();
    }
    for (hash, expires) in [("reset-expired", old.timestamp_millis()), ("reset-live", now_ms + 3_600_000)] {
        db.query("INSERT INTO password_reset_tokens (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(&root)
            .bind(expires)
            .bind(old.timestamp_millis())
            .execute()
            .await
            .unwrap();
    }
    for (account, locked_until) in [("forgotten", None), ("still-locked", Some(now_ms + 600_000))] {
        db.query("INSERT INTO sign_in_failures (account, failures, locked_until, last_failure) VALUES ($1, 5, $2, $3)")
            .bind(account)
            .bind(locked_until)
            .bind(old.timestamp_millis())
            .execute()
            .await
            .unwrap();
    }

    // The recurring job is there, on the maintenance queue; "Trigger now" runs it.
    let recurring = app.state.jobs.recurring_jobs().await.unwrap();
    let entry = recurring.iter().find(|r| r.id == RECURRING_ID).expect("the housekeeping job is registered");
    assert_eq!((entry.name.as_str(), entry.cron.as_str(), entry.queue.as_str()), (HOUSEKEEPING, "17 * * * *", "maintenance"));
    let job = app.state.jobs.trigger_recurring(RECURRING_ID).await.unwrap();
    let done = test_support::wait_for("the housekeeping job to finish", || {
        let jobs = app.state.jobs.clone();
        async move { jobs.get(job).await.unwrap().filter(|j| j.state.is_final()) }
    })
    .await;
    assert_eq!(done.state, jobs::JobState::Succeeded, "{:?}", done.last_error);
    let log: Vec<String> = app.state.jobs.logs(job).await.unwrap().into_iter().map(|l| l.line).collect();
    assert_eq!(
        log,
        ["removed 1 expired refresh tokens, 1 ended sessions, 1 expired reset links, 1 old sign-in failure counts"],
        "only the expired rows"
    );

    let left = |table: &'static str, column: &'static str| {
        let db = app.state.db.clone();
        async move {
            let sql = format!("SELECT {column} FROM {table} ORDER BY {column}");
            db.query_scalar::<String>(sqlx::AssertSqlSafe(sql)).fetch_all().await.unwrap()
        }
    };
    assert!(!left("refresh_tokens", "token_hash").await.contains(&"expired".to_string()));
    assert!(left("refresh_tokens", "token_hash").await.contains(&"live".to_string()));
    let families = left("refresh_families", "id").await;
    assert!(!families.contains(&"old-family".to_string()) && families.contains(&"young-family".to_string()), "{families:?}");
    assert_eq!(left("password_reset_tokens", "token_hash").await, ["reset-live"]);
    assert_eq!(left("sign_in_failures", "account").await, ["still-locked"]);
    // Root's own session, made by signing in, still works.
    let (status, _) = api(reqwest::Method::GET, &format!("{url}/api/tenants"), Some(&token), None).await;
    assert_eq!(status, 200);

    app.stop().await;
}

both_databases!(expired_rows_go_live_ones_stay);
