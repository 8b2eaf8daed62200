//! Bad input ends in `Failed` with a clear error visible in the dashboard, and the dashboard's
//! pages and actions.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use jobs::dashboard::{self, DashboardOptions};
use jobs::{JobContext, JobError, JobState, JobStore, NewJob, Worker, handler_fn};
use serde::Deserialize;
use tower::ServiceExt;

use crate::common::{OpenStore, TestDb, fast_config, wait_state};
use test_support::both_databases;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Greet {
    who: String,
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn post(app: &Router, path: &str, site: &str) -> (StatusCode, Option<String>) {
    let req = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (resp.status(), location)
}

fn app(store: &JobStore, options: DashboardOptions) -> Router {
    Router::new().nest("/jobs", dashboard::router_with(store.clone(), options))
}

both_databases!(bad_input_fails_clearly_and_the_worker_keeps_running, |db: TestDb| async move {
    let store = db.store().await;
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("typed@1", |_c: JobContext, _p: Greet| async move { Ok(()) }))
        .register(handler_fn("panics@1", |_c: JobContext, _p: ()| async move {
            if true {
                panic!("kaboom");
            }
            Ok::<(), JobError>(())
        }))
        .start()
        .await
        .unwrap();
    let unknown = store.enqueue(NewJob::new("ghost@1", ())).await.unwrap();
    let mismatch = store.enqueue(NewJob::new("typed@1", serde_json::json!({"name": 5}))).await.unwrap();
    let panics = store.enqueue(NewJob::new("panics@1", ()).max_attempts(1)).await.unwrap();
    let unknown_job = wait_state(&store, unknown, JobState::Failed).await;
    let mismatch_job = wait_state(&store, mismatch, JobState::Failed).await;
    let panic_job = wait_state(&store, panics, JobState::Failed).await;
    assert!(unknown_job.last_error.as_deref().unwrap().contains("no handler registered for job name \"ghost@1\""));
    assert!(mismatch_job.last_error.as_deref().unwrap().contains("does not deserialize: missing field `who`"));
    assert!(panic_job.last_error.as_deref().unwrap().contains("job handler panicked: kaboom"));
    assert_eq!(unknown_job.attempt, 1, "unknown names are not retried");
    assert_eq!(mismatch_job.attempt, 1, "undeserializable payloads are not retried");

    // The worker is still running.
    let good = store.enqueue(NewJob::new("typed@1", serde_json::json!({"who": "ok"}))).await.unwrap();
    wait_state(&store, good, JobState::Succeeded).await;

    let app = app(&store, DashboardOptions::default());
    let (status, html) = get(&app, &format!("/jobs/job/{unknown}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("no handler registered for job name &quot;ghost@1&quot;"), "{html}");
    assert!(html.contains("Failed permanently"), "history shows the reason");
    let (_, html) = get(&app, &format!("/jobs/job/{mismatch}")).await;
    assert!(html.contains("does not deserialize: missing field `who`"), "{html}");
    let (_, html) = get(&app, &format!("/jobs/job/{panics}")).await;
    assert!(html.contains("job handler panicked: kaboom"), "{html}");
    let (_, html) = get(&app, "/jobs/state/Failed").await;
    for id in [unknown, mismatch, panics] {
        assert!(html.contains(&format!("href=\"/jobs/job/{id}\"")), "{html}");
    }
    worker.shutdown().await.unwrap();
});

both_databases!(dashboard_pages_and_actions, |db: TestDb| async move {
    let store = db.store().await;
    let app = app(&store, DashboardOptions { page_size: 2, ..DashboardOptions::default() });
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(store.enqueue(NewJob::new("nobody@1", i)).await.unwrap());
    }
    let later = store.schedule(NewJob::new("nobody@1", "later"), std::time::Duration::from_secs(3600)).await.unwrap();
    store.add_recurring("nightly", "0 3 * * *", "UTC", NewJob::new("nobody@1", "nightly")).await.unwrap();

    let (status, html) = get(&app, "/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<span class=\"count count-Enqueued\">3</span>"), "{html}");
    assert!(html.contains("<span class=\"count count-Scheduled\">1</span>"), "{html}");
    assert!(html.contains("id=\"graph-realtime\"") && html.contains("id=\"graph-history\""), "{html}");
    let (_, html) = get(&app, "/jobs/recurring").await;
    assert!(html.contains("nightly") && html.contains("action=\"/jobs/recurring/nightly/trigger\""), "{html}");
    assert!(html.contains("At 03:00"), "cron in words: {html}");

    // Paging: 3 enqueued jobs, 2 per page.
    let (_, page1) = get(&app, "/jobs/state/Enqueued").await;
    assert!(page1.contains(&format!("#{}", ids[2])) && page1.contains(&format!("#{}", ids[1])));
    assert!(!page1.contains(&format!(">#{}<", ids[0])));
    assert!(page1.contains("href=\"/jobs/state/Enqueued?page=2\""));
    let (_, page2) = get(&app, "/jobs/state/Enqueued?page=2").await;
    assert!(page2.contains(&format!(">#{}<", ids[0])), "{page2}");

    // Actions refuse cross-site requests.
    let (status, _) = post(&app, &format!("/jobs/job/{}/delete", ids[0]), "cross-site").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(store.get(ids[0]).await.unwrap().unwrap().state, JobState::Enqueued);

    let (status, location) = post(&app, &format!("/jobs/job/{}/delete", ids[0]), "same-origin").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(format!("/jobs/job/{}", ids[0]).as_str()));
    assert_eq!(store.get(ids[0]).await.unwrap().unwrap().state, JobState::Deleted);

    let (status, _) = post(&app, &format!("/jobs/job/{}/retry", ids[0]), "same-origin").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(store.get(ids[0]).await.unwrap().unwrap().state, JobState::Enqueued);
    let last = store.history(ids[0]).await.unwrap().pop().unwrap();
    assert_eq!(last.reason.as_deref(), Some("Requeued"));

    let (status, _) = post(&app, &format!("/jobs/job/{later}/cancel"), "same-origin").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(store.get(later).await.unwrap().unwrap().state, JobState::Deleted);
    let (status, _) = post(&app, &format!("/jobs/job/{later}/cancel"), "same-origin").await;
    assert_eq!(status, StatusCode::CONFLICT, "cancelling a deleted job is refused");

    let (status, location) = post(&app, "/jobs/recurring/nightly/trigger", "same-origin").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let new_id: i64 = location.unwrap().rsplit('/').next().unwrap().parse().unwrap();
    let job = store.get(new_id).await.unwrap().unwrap();
    assert_eq!((job.state, job.recurring_id.as_deref()), (JobState::Enqueued, Some("nightly")));

    let (_, detail) = get(&app, &format!("/jobs/job/{new_id}")).await;
    assert!(detail.contains("&quot;nightly&quot;"), "payload shown, escaped: {detail}");
    assert!(detail.contains(&format!("action=\"/jobs/job/{new_id}/cancel\"")));

    let (status, _) = get(&app, "/jobs/job/987654").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&app, "/jobs/state/Bogus").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&app, "/jobs/recurring/missing/trigger", "same-origin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

struct FixedToken;

impl dashboard::CsrfGuard for FixedToken {
    fn token(&self, _headers: &axum::http::HeaderMap) -> String {
        "s3cret-token".to_owned()
    }
    fn verify(&self, _headers: &axum::http::HeaderMap, token: &str) -> bool {
        token == "s3cret-token"
    }
}

both_databases!(csrf_guard_and_origin_checks_protect_actions, |db: TestDb| async move {
    let store = db.store().await;
    let id = store.enqueue(NewJob::new("nobody@1", ())).await.unwrap();
    let app = app(&store, DashboardOptions { csrf: Some(std::sync::Arc::new(FixedToken)), ..DashboardOptions::default() });
    let (_, html) = get(&app, &format!("/jobs/job/{id}")).await;
    assert!(html.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"s3cret-token\">"), "{html}");

    let (status, _) = post(&app, &format!("/jobs/job/{id}/delete"), "same-origin").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token");
    let send = |body: &'static str, origin: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::post(format!("/jobs/job/{id}/delete"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("host", "app.example")
                .header("origin", origin)
                .body(Body::from(body))
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(send("csrf_token=wrong", "https://app.example").await, StatusCode::FORBIDDEN);
    assert_eq!(send("csrf_token=s3cret-token", "https://evil.example").await, StatusCode::FORBIDDEN);
    assert_eq!(store.get(id).await.unwrap().unwrap().state, JobState::Enqueued);
    assert_eq!(send("csrf_token=s3cret-token", "https://app.example").await, StatusCode::SEE_OTHER);
    assert_eq!(store.get(id).await.unwrap().unwrap().state, JobState::Deleted);
});

async fn post_form(app: &Router, path: &str, body: String) -> (StatusCode, Option<String>) {
    let req = Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (resp.status(), location)
}

both_databases!(paging_search_and_bulk_actions, |db: TestDb| async move {
    let store = db.store().await;
    let app = app(&store, DashboardOptions { page_size: 10, ..DashboardOptions::default() });
    let mut ids = Vec::new();
    for i in 0..25 {
        let name = if i % 5 == 0 { "Report@1" } else { "mail@1" };
        ids.push(store.enqueue(NewJob::new(name, i).concurrency_key(format!("tenant:t{}", i % 3))).await.unwrap());
    }
    // Newest first, 10 per page, three pages.
    let (_, p1) = get(&app, "/jobs/state/Enqueued").await;
    let first_row = p1.find("<tr id=\"job-").unwrap();
    assert!(p1[first_row..].starts_with(&format!("<tr id=\"job-{}\"", ids[24])), "newest first");
    assert_eq!(p1.matches("name=\"ids\"").count(), 10);
    assert!(p1.contains("href=\"/jobs/state/Enqueued?page=2\""), "{p1}");
    let (_, p3) = get(&app, "/jobs/state/Enqueued?page=3").await;
    assert_eq!(p3.matches("name=\"ids\"").count(), 5);
    assert!(p3.contains(&format!("id=\"job-{}\"", ids[0])) && !p3.contains("rel=\"next\""));
    let (status, _) = get(&app, "/jobs/state/Enqueued?page=oops").await;
    assert_eq!(status, StatusCode::OK, "a bad page number shows page 1");

    // Search by name (case-insensitive, a part of it) and by id.
    let (_, found) = get(&app, "/jobs/state/Enqueued?q=report").await;
    assert_eq!(found.matches("name=\"ids\"").count(), 5, "{found}");
    let (_, found) = get(&app, &format!("/jobs/state/Enqueued?q=%23{}", ids[3])).await;
    assert_eq!(found.matches("name=\"ids\"").count(), 1);
    assert!(found.contains(&format!("id=\"job-{}\"", ids[3])));
    let (_, by_key) = get(&app, "/jobs/state/Enqueued?q=TENANT%3At2").await;
    assert_eq!(by_key.matches("name=\"ids\"").count(), 8, "a tenant's jobs by their concurrency key: {by_key}");
    let (_, none) = get(&app, "/jobs/state/Enqueued?q=%25_").await;
    assert_eq!(none.matches("name=\"ids\"").count(), 0, "LIKE wildcards are taken literally");

    // Bulk delete, then bulk requeue, back to the list.
    let chosen = [ids[1], ids[2], ids[3]];
    let body = format!("action=delete&return=%2Fjobs%2Fstate%2FEnqueued%3Fpage%3D1&{}", chosen.map(|i| format!("ids={i}")).join("&"));
    let (status, location) = post_form(&app, "/jobs/bulk", body).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/jobs/state/Enqueued?page=1"));
    for id in chosen {
        assert_eq!(store.get(id).await.unwrap().unwrap().state, JobState::Deleted);
    }
    let (_, deleted) = get(&app, "/jobs/state/Deleted").await;
    assert_eq!(deleted.matches("name=\"ids\"").count(), 3);
    let body = format!("action=requeue&return=https%3A%2F%2Fevil.example%2F&{}", chosen.map(|i| format!("ids={i}")).join("&"));
    let (status, location) = post_form(&app, "/jobs/bulk", body).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/jobs/")), "no redirect off the dashboard");
    for id in chosen {
        assert_eq!(store.get(id).await.unwrap().unwrap().state, JobState::Enqueued);
    }
    let (status, _) = post_form(&app, "/jobs/bulk", "action=explode&ids=1".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_form(&app, "/jobs/bulk", "action=delete&ids=abc".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&app, "/jobs/bulk", "cross-site").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
});

both_databases!(retries_recurring_servers_queues_and_graphs, |db: TestDb| async move {
    let store = db.store().await;
    let app = app(&store, DashboardOptions::default());
    let worker = Worker::builder(store.clone())
        .config(fast_config("dash-worker"))
        .queue("mail", 2)
        .register(handler_fn("ok@1", |_c: JobContext, _p: ()| async move { Ok(()) }))
        .register(handler_fn("flaky@1", |_c: JobContext, _p: ()| async move { Err::<(), JobError>(JobError::failed("smtp down")) }))
        .start()
        .await
        .unwrap();
    let ok = store.enqueue(NewJob::new("ok@1", ()).queue("mail")).await.unwrap();
    let flaky = store.enqueue(NewJob::new("flaky@1", ()).queue("mail").max_attempts(3)).await.unwrap();
    let failed = store.enqueue(NewJob::new("flaky@1", ()).queue("mail").max_attempts(1)).await.unwrap();
    wait_state(&store, ok, JobState::Succeeded).await;
    wait_state(&store, failed, JobState::Failed).await;
    crate::common::wait_job(&store, flaky, "a retry is scheduled", |j| j.state == JobState::Scheduled && j.attempt == 1).await;

    let (_, html) = get(&app, "/jobs/retries").await;
    assert!(html.contains(&format!("id=\"job-{flaky}\"")) && !html.contains(&format!("id=\"job-{ok}\"")), "{html}");
    assert!(html.contains("smtp down"), "{html}");
    let (_, detail) = get(&app, &format!("/jobs/job/{failed}")).await;
    assert!(detail.contains("<h2>Error</h2>") && detail.contains("smtp down"), "{detail}");

    // The graphs count the succeeded and the failed job.
    let realtime = store.throughput(std::time::Duration::from_secs(300), std::time::Duration::from_secs(1)).await.unwrap();
    assert_eq!(realtime.len(), 300);
    assert_eq!((realtime.iter().map(|p| p.succeeded).sum::<i64>(), realtime.iter().map(|p| p.failed).sum::<i64>()), (1, 1));
    let history = store.finished_per_hour(7 * 24).await.unwrap();
    assert_eq!(history.len(), 168);
    assert_eq!((history.iter().map(|p| p.succeeded).sum::<i64>(), history.iter().map(|p| p.failed).sum::<i64>()), (1, 1));
    let (_, overview) = get(&app, "/jobs").await;
    assert!(overview.contains("succeeded <b class=\"sum-succeeded\">1</b>"), "{overview}");
    assert!(overview.contains("failed <b class=\"sum-failed\">1</b>"), "{overview}");

    // The counters agree with the jobs, before and after folding.
    let counted = store.counts().await.unwrap();
    store.fold_counts().await.unwrap();
    assert_eq!(store.counts().await.unwrap(), counted);
    assert_eq!(store.finished_per_hour(7 * 24).await.unwrap(), history);
    let truth = store.list(JobState::Succeeded, 0, 1000).await.unwrap().len() as i64;
    assert_eq!(counted.iter().find(|(s, _)| *s == JobState::Succeeded).unwrap().1, truth);

    // Servers and queues.
    let (_, servers) = get(&app, "/jobs/servers").await;
    assert!(servers.contains("dash-worker") && servers.contains("mail"), "{servers}");
    store.enqueue(NewJob::new("nobody@1", ()).queue("idle-queue")).await.unwrap();
    let (_, queues) = get(&app, "/jobs/queues").await;
    assert!(queues.contains("<td>idle-queue</td><td class=\"queue-length\">1</td>"), "{queues}");

    // Recurring: disable, enable, delete.
    store.add_recurring("digest", "*/5 * * * *", "Europe/Paris", NewJob::new("ok@1", ())).await.unwrap();
    let (_, page) = get(&app, "/jobs/recurring").await;
    assert!(page.contains("Every 5 minutes") && page.contains("Europe/Paris"), "{page}");
    let (status, location) = post(&app, "/jobs/recurring/digest/disable", "same-origin").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/jobs/recurring#recurring-digest")));
    assert!(store.recurring_jobs().await.unwrap()[0].disabled);
    let (_, page) = get(&app, "/jobs/recurring").await;
    assert!(page.contains("Disabled") && page.contains("action=\"/jobs/recurring/digest/enable\""), "{page}");
    post(&app, "/jobs/recurring/digest/enable", "same-origin").await;
    assert!(!store.recurring_jobs().await.unwrap()[0].disabled);
    let (status, _) = post(&app, "/jobs/recurring/digest/delete", "same-origin").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(store.recurring_jobs().await.unwrap().is_empty());
    let (status, _) = post(&app, "/jobs/recurring/digest/delete", "same-origin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&app, "/jobs/recurring/digest/explode", "same-origin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Assets are embedded.
    for (path, kind) in
        [("/jobs/dashboard.css", "text/css"), ("/jobs/dashboard.js", "text/javascript"), ("/jobs/theme.js", "text/javascript")]
    {
        let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
    }
    worker.shutdown().await.unwrap();
});

both_databases!(no_secret_is_shown_on_any_page, |db: TestDb| async move {
    let store = db.store().await;
    let app = app(&store, DashboardOptions::default());
    let id = store
        .enqueue(NewJob::new(
            "provision@1",
            serde_json::json!({"tenant": "acme", "adminPasswordHash": "$argon2id$v=19$m=19456$abc", "notes": ["$argon2id$x"]}),
        ))
        .await
        .unwrap();
    for path in ["/jobs".to_owned(), "/jobs/state/Enqueued".to_owned(), format!("/jobs/job/{id}"), "/jobs/queues".to_owned()] {
        let (status, html) = get(&app, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!html.contains("$argon2"), "{path}: {html}");
    }
});

both_databases!(a_keys_jobs_in_every_state_with_the_applications_link, |db: TestDb| async move {
    let store = db.store().await;
    let options = DashboardOptions {
        key_links: vec![dashboard::KeyLink { prefix: "tenant:".into(), label: "Tenant".into(), href: "/tenants?id={}".into() }],
        ..DashboardOptions::default()
    };
    let app = app(&store, options);
    let acme: Vec<_> = enqueue_with_key(&store, "tenant:acme", 3).await;
    let other = enqueue_with_key(&store, "tenant:acme-two", 2).await;
    store.delete(acme[0]).await.unwrap();

    // Every state, this key only (not the key it is a prefix of), newest first, with each state's badge.
    let (status, html) = get(&app, "/jobs/key/tenant%3Aacme").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches("name=\"ids\"").count(), 3, "{html}");
    for id in &acme {
        assert!(html.contains(&format!("id=\"job-{id}\"")), "{html}");
    }
    assert!(!other.iter().any(|id| html.contains(&format!("id=\"job-{id}\""))), "exact key, not a prefix: {html}");
    assert!(html.contains("state state-Deleted") && html.contains("state state-Enqueued"), "{html}");
    assert!(html.contains("<a href=\"/tenants?id=acme\" class=\"app-link\">Tenant acme</a>"), "{html}");

    // The job's page links to its key's list and to the application's page.
    let (_, detail) = get(&app, &format!("/jobs/job/{}", acme[1])).await;
    assert!(detail.contains("<a href=\"/jobs/key/tenant%3Aacme\">tenant:acme</a>"), "{detail}");
    assert!(detail.contains("href=\"/tenants?id=acme\""), "{detail}");

    // Search within a key's jobs; a key without jobs is an empty list.
    let (_, found) = get(&app, &format!("/jobs/key/tenant%3Aacme?q=%23{}", acme[2])).await;
    assert_eq!(found.matches("name=\"ids\"").count(), 1);
    let (status, empty) = get(&app, "/jobs/key/tenant%3Anobody").await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty.contains("No jobs."), "{empty}");

    // An unknown single-job action changes nothing.
    let (status, _) = post(&app, &format!("/jobs/job/{}/explode", acme[1]), "same-origin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(store.get(acme[1]).await.unwrap().unwrap().state, JobState::Enqueued);
});

/// Enqueues `n` jobs with the concurrency key `key`.
async fn enqueue_with_key(store: &JobStore, key: &str, n: usize) -> Vec<jobs::JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(store.enqueue(NewJob::new("nobody@1", i).concurrency_key(key)).await.unwrap());
    }
    ids
}

/// Runs `sql` (no result) on the store's own database.
async fn exec(store: &JobStore, sql: &str) {
    if let Some(pool) = store.pg_pool() {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.unwrap();
    } else if let Some(pool) = store.sqlite_pool() {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.unwrap();
    }
}

/// One number from `sql` on the store's own database.
async fn scalar(store: &JobStore, sql: &str) -> i64 {
    if let Some(pool) = store.pg_pool() {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
    } else {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(store.sqlite_pool().unwrap()).await.unwrap()
    }
}

both_databases!(counters_fold_into_totals_and_age_out_of_the_graph, |db: TestDb| async move {
    let store = db.store().await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(store.enqueue(NewJob::new("count@1", i)).await.unwrap());
    }
    for id in &ids[..10] {
        store.delete(*id).await.unwrap();
    }
    let truth = |store: JobStore| async move {
        let mut out = Vec::new();
        for state in JobState::ALL {
            out.push((state, store.list(state, 0, 1000).await.unwrap().len() as i64));
        }
        out
    };
    let expected = truth(store.clone()).await;
    assert_eq!(store.counts().await.unwrap(), expected, "before any fold");
    assert!(scalar(&store, "SELECT COUNT(*) FROM bg_state_counts").await > 0);

    // Folds running at once (every worker runs maintenance) add each delta exactly once, and
    // leave no delta row behind.
    let folds: Vec<_> = (0..4).map(|_| store.fold_counts()).collect();
    for result in futures_util::future::join_all(folds).await {
        result.unwrap();
    }
    store.fold_counts().await.unwrap();
    assert_eq!(store.counts().await.unwrap(), expected, "after folding");
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM bg_state_counts").await, 0);

    // Changes after a fold count on top of the totals.
    for id in &ids[10..15] {
        store.delete(*id).await.unwrap();
    }
    let expected = truth(store.clone()).await;
    assert_eq!(store.counts().await.unwrap(), expected, "totals and new deltas");

    // An arrival older than the graph's week leaves the graph but stays in the count.
    let now_hour = chrono::Utc::now().timestamp_micros() / 3_600_000_000;
    let before = store.finished_per_hour(7 * 24).await.unwrap();
    exec(&store, &format!("INSERT INTO bg_state_totals (state, hour, n) VALUES ('Succeeded', {}, 3)", now_hour - 9 * 24)).await;
    exec(&store, &format!("INSERT INTO bg_state_counts (state, hour, n) VALUES ('Succeeded', {}, 2)", now_hour - 2)).await;
    store.fold_counts().await.unwrap();
    let succeeded = |counts: Vec<(JobState, i64)>| counts.into_iter().find(|(s, _)| *s == JobState::Succeeded).unwrap().1;
    assert_eq!(succeeded(store.counts().await.unwrap()), 5);
    assert_eq!(
        scalar(&store, &format!("SELECT COUNT(*) FROM bg_state_totals WHERE hour > 0 AND hour < {}", now_hour - 8 * 24)).await,
        0,
        "hours before the kept range fold into hour 0"
    );
    let after = store.finished_per_hour(7 * 24).await.unwrap();
    let sum = |h: &[jobs::Throughput]| h.iter().map(|p| p.succeeded).sum::<i64>();
    assert_eq!(sum(&after), sum(&before) + 2, "the recent arrival is in the graph, the old one is not");
});

both_databases!(text_search_reads_a_bounded_window_of_the_newest_jobs, |db: TestDb| async move {
    let store = db.store().await;
    let app = app(&store, DashboardOptions::default());
    let old = store.enqueue(NewJob::new("needle@1", ())).await.unwrap();
    // More jobs than the window, newer than the needle, in one statement.
    let now = chrono::Utc::now().timestamp_micros();
    exec(
        &store,
        &format!(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {}) \
             INSERT INTO bg_jobs (name, queue, payload, state, run_at, created_at, updated_at) \
             SELECT 'hay@1', 'default', 'null', 'Enqueued', {now}, {now}, {now} FROM g",
            jobs::TEXT_SEARCH_WINDOW
        ),
    )
    .await;
    let (_, page) = get(&app, "/jobs/state/Enqueued?q=needle").await;
    assert!(!page.contains(&format!("id=\"job-{old}\"")), "beyond the window");
    assert!(page.contains("id=\"search-window\""), "the page says the text search is bounded: {page}");
    let (_, page) = get(&app, &format!("/jobs/state/Enqueued?q={old}")).await;
    assert!(page.contains(&format!("id=\"job-{old}\"")) && !page.contains("id=\"search-window\""), "ids are not bounded");
    let new = store.enqueue(NewJob::new("needle@1", ())).await.unwrap();
    let (_, page) = get(&app, "/jobs/state/Enqueued?q=NEEDLE").await;
    assert!(page.contains(&format!("id=\"job-{new}\"")) && !page.contains(&format!("id=\"job-{old}\"")), "{page}");
});
