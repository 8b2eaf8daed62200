//! Hardening of issue 14 (points 3, 6, 7 and 9): response headers, readiness without details for
//! anonymous callers, a directory as the database is a configuration error, isolated tenant
//! databases must be new, a requeued job that had succeeded adds no second event, `/metrics`
//! counts unsent notifications, and paged tenant lists.

mod common;

use std::process::{Command, Stdio};

use common::hub;
use common::*;
use diquis::ProcessRole;
use reqwest::Method;
use serde_json::{Value, json};
use test_support::both_databases;

/// The headers every response carries, checked on a page, the API, an asset and the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    for (path, bearer) in [
        ("/login", false),
        ("/api/tenants", true),
        ("/js/diquis.js", false),
        ("/jobs", true),
        ("/jobs/state/Succeeded", true),
        ("/health/ready", false),
    ] {
        let mut request = client().get(format!("{url}{path}"));
        if bearer {
            request = request.bearer_auth(&token);
        }
        let r = request.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let h = r.headers();
        let csp = h.get("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP")).to_str().unwrap();
        let scripts = csp.split(';').find(|d| d.trim().starts_with("script-src")).expect("script-src");
        assert!(!scripts.contains("unsafe-inline") && !scripts.contains("unsafe-eval"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("referrer-policy"), "{path}");
    }
    app.stop().await;
}

/// No password hash in a ProvisionTenant job: not in its stored payload, not on its detail page
/// (which also redacts secret-looking keys of any payload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_no_password_hash() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("connects");
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("acme", false))).await;
    assert_eq!(s, 202, "{b}");
    root.next("TenantCreated").await;
    let job = app.state.jobs.list(jobs::JobState::Succeeded, 0, 10).await.unwrap().pop().expect("the provisioning job");
    let page = client().get(format!("{url}/jobs/job/{}", job.id)).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("tenantId"), "the payload is shown: {page}");
    assert!(!page.contains("$argon2"), "a password hash is on the page: {page}");
    // Not in the stored payload either; the hash waited in the application database and is gone
    // once the admin user holds it.
    assert!(!job.payload.contains("argon2") && !job.payload.contains("adminPasswordHash"), "{}", job.payload);
    let mut tx = app.state.db.begin().await.unwrap();
    assert_eq!(diquis::tenants::admin_password::find(&mut tx, "acme").await.unwrap(), None);
    drop(tx);
    let owner = login(&url, "owner@acme.test", "Owner1Passw0rd", "acme").await;
    assert!(!owner.is_empty(), "the owner signs in with the password given at creation");
    app.stop().await;
}

/// Anonymous readiness shows each check's status only; the database's error text is not in the
/// body (root administrators see the descriptions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_readiness_shows_statuses_only() {
    use sqlx::Connection;
    let db = TestDb::postgres();
    let TestDb::Postgres(name) = &db else { unreachable!("a PostgreSQL database") };
    let app = start(&db, ProcessRole::Web, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let ready = |bearer: Option<String>| {
        let url = url.clone();
        async move {
            let mut r = client().get(format!("{url}/health/ready"));
            if let Some(t) = bearer {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, text) = ready(Some(token.clone())).await;
    assert_eq!(s, 200, "{text}");
    let b: Value = serde_json::from_str(&text).unwrap();
    assert!(b["entries"]["database"]["description"].is_string(), "root sees the details: {b}");
    let (s, text) = ready(None).await;
    assert_eq!(s, 200, "{text}");
    let b: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(b["entries"]["database"]["status"], "Healthy");
    assert!(!text.contains("description"), "anonymous sees statuses only: {text}");

    // The database refuses logins (and drops the open connections).
    let mut admin = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
    let set_allowed = |allowed: bool| format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}");
    sqlx::query(sqlx::AssertSqlSafe(set_allowed(false))).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1").bind(name).execute(&mut admin).await.unwrap();
    let text = wait_for("/health/ready to answer 503", || async {
        let (s, text) = ready(None).await;
        (s == 503).then_some(text)
    })
    .await;
    let b: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(b["status"], "Unhealthy", "{text}");
    assert_eq!(b["entries"]["database"]["status"], "Unhealthy", "{text}");
    for secret in [name.as_str(), "description", "connections", "postgres", "127.0.0.1"] {
        assert!(!text.contains(secret), "the anonymous body shows '{secret}': {text}");
    }
    sqlx::query(sqlx::AssertSqlSafe(set_allowed(true))).execute(&mut admin).await.unwrap();
    app.stop().await;
}

/// `ConnectionStrings__DefaultConnection=/tmp` (a directory) names the key and exits with 2.
#[test]
fn a_directory_as_the_database_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    for (key, var) in [
        ("ConnectionStrings:DefaultConnection", "ConnectionStrings__DefaultConnection"),
        ("ConnectionStrings:HangfireConnection", "ConnectionStrings__HangfireConnection"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_diquis"))
            .current_dir(dir.path())
            .args(["--urls", "http://127.0.0.1:0"])
            .env(var, "/tmp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.contains(&format!("'{key}'")) && stderr.contains("/tmp"), "{var}: {stderr}");
    }
    assert!(!dir.path().join("diquis.db").exists(), "nothing was opened");
}

both_databases!(isolated_database_named_like_the_job_storage_is_refused);
both_databases!(an_existing_database_is_never_provisioned_into);
both_databases!(requeue_of_a_succeeded_job_adds_no_second_event);

/// The job storage's connection string for `db`: its own database named `<main>-jobs`, which is
/// also the isolated database a tenant `jobs` would get.
fn jobs_storage_named_like_a_tenant(db: &TestDb) -> String {
    match db {
        TestDb::Sqlite(dir) => dir.path().join("diquis-jobs.db").display().to_string(),
        TestDb::Postgres(name) => postgres_url(&format!("{name}-jobs")),
    }
}

async fn isolated_database_named_like_the_job_storage_is_refused(db: &TestDb) {
    let storage = jobs_storage_named_like_a_tenant(db);
    let app = start(db, ProcessRole::All, &[("ConnectionStrings:HangfireConnection", &storage)]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("jobs", true))).await;
    assert_eq!(s, 409, "{b}");
    let message = b["messages"][0].as_str().unwrap();
    assert!(message.contains("ConnectionStrings:HangfireConnection") && message.contains("-jobs"), "{message}");
    let (s, _) = api(Method::GET, &format!("{url}/api/tenants/jobs"), Some(&token), None).await;
    assert_eq!(s, 404, "nothing was recorded");
    // Shared, the same id is fine: it needs no database of its own.
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("jobs", false))).await;
    assert_eq!(s, 202, "{b}");
    wait_status(&url, &token, "jobs", "Active").await;
    app.stop().await;
}

/// Creates the isolated database tenant `id` would get, holding a table of someone else's.
async fn create_foreign_database(db: &TestDb, id: &str) {
    use sqlx::Connection;
    match db {
        TestDb::Sqlite(dir) => {
            let path = dir.path().join(format!("diquis-{id}.db"));
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let mut c = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY)").execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        TestDb::Postgres(name) => {
            let db_name = format!("{name}-{id}");
            let mut c = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db_name}\""))).execute(&mut c).await.unwrap();
            let mut c = sqlx::PgConnection::connect(&postgres_url(&db_name)).await.unwrap();
            sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY)").execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    }
}

/// The tables of the database tenant `id` would get.
async fn tables_of(db: &TestDb, id: &str) -> Vec<String> {
    use sqlx::Connection;
    match db {
        TestDb::Sqlite(dir) => {
            let path = dir.path().join(format!("diquis-{id}.db"));
            let mut c = sqlx::SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(&path)).await.unwrap();
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetch_all(&mut c).await.unwrap()
        }
        TestDb::Postgres(name) => {
            let mut c = sqlx::PgConnection::connect(&postgres_url(&format!("{name}-{id}"))).await.unwrap();
            sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
    }
}

async fn an_existing_database_is_never_provisioned_into(db: &TestDb) {
    create_foreign_database(db, "legacy").await;
    let app = start(db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("connects");
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("legacy", true))).await;
    assert_eq!(s, 202, "{b}");
    let failed = root.next("TenantCreationFailed").await;
    let error = failed.arguments[0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("not new") && error.contains("invoices"), "{error}");
    let tenant = wait_status(&url, &token, "legacy", "Failed").await;
    assert_eq!(tenant["provisioningError"], error.as_str());
    // Permanent: no retry is scheduled, and the database was not written to.
    let job = wait_for("the job to end Failed", || async { app.state.jobs.list(jobs::JobState::Failed, 0, 10).await.unwrap().pop() }).await;
    assert!(job.last_error.unwrap().contains("not new"));
    assert!(app.state.jobs.list(jobs::JobState::Scheduled, 0, 10).await.unwrap().is_empty());
    assert_eq!(tables_of(db, "legacy").await, vec!["invoices"]);
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "legacy").await.unwrap(), 0);
    app.stop().await;
}

async fn requeue_of_a_succeeded_job_adds_no_second_event(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("connects");
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("once", true))).await;
    assert_eq!(s, 202);
    root.next("TenantCreated").await;
    let job = wait_for("the provisioning job to be Succeeded", || async {
        app.state.jobs.list(jobs::JobState::Succeeded, 0, 10).await.unwrap().pop()
    })
    .await;

    // The operator's Requeue (the dashboard's button calls the same): it runs again and reports
    // in its log that the work was done, without a second TenantCreated.
    app.state.jobs.requeue(job.id).await.unwrap();
    wait_for("the replay to log the earlier outcome", || async {
        let logs = app.state.jobs.logs(job.id).await.unwrap();
        logs.iter().any(|l| l.line.contains("provisioned by an earlier execution")).then_some(())
    })
    .await;
    wait_for("the replayed job to be Succeeded", || async {
        let rec = app.state.jobs.get(job.id).await.unwrap().unwrap();
        (rec.state == jobs::JobState::Succeeded).then_some(())
    })
    .await;
    // An update afterwards: everything the hub sent before its event is checked.
    let (s, _) =
        api(Method::PUT, &format!("{url}/api/tenants/once"), Some(&token), Some(json!({"name": "Once FC", "isActive": true}))).await;
    assert_eq!(s, 202);
    let seen = root.until("TenantUpdated").await;
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, vec!["TenantUpdated"], "no second TenantCreated");
    let (_, b) = api(Method::GET, &format!("{url}/api/notifications"), Some(&token), None).await;
    let events: Vec<&str> = b["data"].as_array().unwrap().iter().map(|n| n["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["TenantCreated", "TenantUpdated"]);
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "once").await.unwrap(), 1);

    // The same for the update job.
    let update = wait_for("the update job to be Succeeded", || async {
        let jobs = app.state.jobs.list(jobs::JobState::Succeeded, 0, 10).await.unwrap();
        jobs.into_iter().find(|j| j.name == diquis::tenants::jobs::UPDATE_TENANT)
    })
    .await;
    app.state.jobs.requeue(update.id).await.unwrap();
    wait_for("the replayed update to log the earlier outcome", || async {
        let logs = app.state.jobs.logs(update.id).await.unwrap();
        logs.iter().any(|l| l.line.contains("updated by an earlier execution")).then_some(())
    })
    .await;
    wait_for("the replayed update to be Succeeded", || async {
        let rec = app.state.jobs.get(update.id).await.unwrap().unwrap();
        (rec.state == jobs::JobState::Succeeded).then_some(())
    })
    .await;
    let (_, b) = api(Method::GET, &format!("{url}/api/notifications"), Some(&token), None).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2, "{b}");
    app.stop().await;
}

/// `/metrics` counts every unsent notification (the old gauge read at most 10,000 payloads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_unsent_notifications() {
    let db = TestDb::sqlite();
    // Web only: no publisher runs, so the rows stay unsent.
    let app = start(&db, ProcessRole::Web, &[]).await;
    let event = diquis::notifications::event::Event::tenant_created("someone", "acme", "Acme");
    let mut tx = app.state.db.begin().await.unwrap();
    for _ in 0..10_005 {
        diquis::notifications::outbox::insert(&mut tx, &event, None).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(diquis::notifications::outbox::unsent_count(&app.state.db).await.unwrap(), 10_005);
    let text = client().get(format!("{}/metrics", app.url())).send().await.unwrap().text().await.unwrap();
    assert!(text.lines().any(|l| l == "diquis_notifications_unsent 10005"), "{text}");
    app.stop().await;
}

/// Inserts `n` tenants directly (no jobs), ids `t000`, `t001`, …
async fn insert_tenants(app: &diquis::RunningApp, n: usize) {
    let mut tx = app.state.db.begin().await.unwrap();
    for i in 0..n {
        let id = format!("t{i:03}");
        let inserted = diquis::tenants::repo::insert(
            &mut tx,
            &diquis::tenants::repo::NewTenant { id: &id, name: &id, admin_email: "a@b.test", connection_string: None, created_by: None },
        )
        .await
        .unwrap();
        assert!(inserted);
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_lists_are_paged() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::Web, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    insert_tenants(&app, 104).await; // 105 with root

    let get = |query: &'static str| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let r = client().get(format!("{url}/api/tenants{query}")).bearer_auth(token).send().await.unwrap();
            let link = r.headers().get("link").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), link, r.json::<Value>().await.unwrap())
        }
    };
    let (s, link, b) = get("?page=2&pageSize=10").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["succeeded"], true);
    assert_eq!(b["data"].as_array().unwrap().len(), 10);
    assert_eq!((b["currentPage"].as_i64(), b["pageSize"].as_i64()), (Some(2), Some(10)));
    assert_eq!((b["totalCount"].as_i64(), b["totalPages"].as_i64()), (Some(105), Some(11)));
    assert_eq!((b["hasPreviousPage"].as_bool(), b["hasNextPage"].as_bool()), (Some(true), Some(true)));
    assert_eq!(link.as_deref(), Some("</api/tenants?page=1&pageSize=10>; rel=\"prev\", </api/tenants?page=3&pageSize=10>; rel=\"next\""));
    // Pages do not overlap and together hold every tenant.
    let mut ids = std::collections::BTreeSet::new();
    for page in 1..=11 {
        let r = client().get(format!("{url}/api/tenants?page={page}&pageSize=10")).bearer_auth(&token).send().await.unwrap();
        let b: Value = r.json().await.unwrap();
        for t in b["data"].as_array().unwrap() {
            assert!(ids.insert(t["id"].as_str().unwrap().to_string()), "{t} on two pages");
        }
    }
    assert_eq!(ids.len(), 105);
    // Without parameters: the first page of the default size; too large a size is capped.
    let (_, _, b) = get("").await;
    assert_eq!(b["data"].as_array().unwrap().len(), 20);
    let (_, _, b) = get("?pageSize=100000").await;
    assert_eq!((b["pageSize"].as_i64(), b["data"].as_array().unwrap().len()), (Some(100), 100));
    let (s, _, b) = get("?page=0&pageSize=x").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["messages"].as_array().unwrap().len(), 2, "{b}");

    // The page: a cookie session, then /tenants?page=…&pageSize=… with links to its neighbours.
    let browser = client();
    let login_page = browser.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let start = login_page.find(marker).unwrap() + marker.len();
    let csrf = login_page[start..].split('"').next().unwrap().to_string();
    let r = browser
        .post(format!("{url}/login"))
        .form(&[("_csrf", csrf.as_str()), ("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD), ("tenant", "root")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = browser.get(format!("{url}/tenants?page=3&pageSize=10")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<tr id=\"tenant-").count(), 10, "{html}");
    assert!(html.contains("href=\"/tenants?page=2&amp;pageSize=10\""), "{html}");
    assert!(html.contains("href=\"/tenants?page=4&amp;pageSize=10\""), "{html}");
    assert!(html.contains("Page 3 of 11 (105 tenants)"), "{html}");
    let html = browser.get(format!("{url}/tenants")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<tr id=\"tenant-").count(), 20);
    assert!(!html.contains("rel=\"prev\""), "the first page has no previous link");
    app.stop().await;
}
