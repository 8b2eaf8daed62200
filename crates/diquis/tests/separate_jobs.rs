//! A job storage in another database than the application's (`ConnectionStrings:HangfireConnection`):
//! the tenant lifecycle on PostgreSQL + PostgreSQL, SQLite + SQLite and both mixes; the job
//! outbox's crash recovery; a job run again after its result committed; readiness while the job
//! database is down.

mod common;

use std::sync::Arc;

use common::hub;
use common::*;
use diquis::job_outbox::{self, JobStorage, Relay};
use diquis::tenants::jobs::{self as tenant_jobs, JobDeps, ProvisionTenant};
use diquis::{ProcessRole, RunningApp, StartError};
use jobs::{HandlerFuture, JobContext, JobHandler, JobState, JobStore, Worker};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The application database and the job database of one test.
struct Pair {
    app: TestDb,
    jobs: TestDb,
}

impl Pair {
    fn new(app: TestDb, jobs: TestDb) -> Self {
        Self { app, jobs }
    }

    fn hangfire(&self) -> String {
        self.jobs.url()
    }

    async fn start(&self, role: ProcessRole) -> RunningApp {
        let app = start(&self.app, role, &[("ConnectionStrings:HangfireConnection", &self.hangfire())]).await;
        assert_eq!(app.state.job_storage, JobStorage::SeparateDatabase);
        app
    }
}

/// One test of `$body` on the databases `$app` and `$jobs`.
macro_rules! pair_test {
    ($test:ident, $body:ident, $app:expr, $jobs:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let pair = Pair::new($app, $jobs);
            super::$body(&pair).await;
        }
    };
}

/// `$name` on two PostgreSQL databases and on two SQLite files (and, with `mixed`, on one of
/// each, both ways round).
macro_rules! every_pair {
    ($name:ident) => {
        mod $name {
            use super::*;
            pair_test!(postgres_and_postgres, $name, TestDb::postgres(), TestDb::postgres());
            pair_test!(sqlite_and_sqlite, $name, TestDb::sqlite(), TestDb::sqlite());
        }
    };
    ($name:ident, mixed) => {
        mod $name {
            use super::*;
            pair_test!(postgres_and_postgres, $name, TestDb::postgres(), TestDb::postgres());
            pair_test!(sqlite_and_sqlite, $name, TestDb::sqlite(), TestDb::sqlite());
            pair_test!(postgres_app_sqlite_jobs, $name, TestDb::postgres(), TestDb::sqlite());
            pair_test!(sqlite_app_postgres_jobs, $name, TestDb::sqlite(), TestDb::postgres());
        }
    };
}

every_pair!(lifecycle, mixed);
every_pair!(a_request_committed_but_not_relayed_runs_once);
every_pair!(a_job_run_again_after_its_result_committed_changes_nothing);

/// Every stored notification (sent or not), oldest first: `(event, data)`.
async fn notifications(url: &str, token: &str) -> Vec<(String, Value)> {
    let (s, b) = api(Method::GET, &format!("{url}/api/notifications?after=0"), Some(token), None).await;
    assert_eq!(s, 200, "{b}");
    b["data"].as_array().unwrap().iter().map(|n| (n["event"].as_str().unwrap().to_string(), n["data"].clone())).collect()
}

/// The jobs of `name` in `state`.
async fn jobs_in(store: &JobStore, state: JobState, name: &str) -> Vec<jobs::JobRecord> {
    store.list(state, 0, 100).await.unwrap().into_iter().filter(|j| j.name == name).collect()
}

/// Whether a query on the application database's job table fails (it must not exist there).
async fn app_database_has_no_job_tables(app: &RunningApp) -> bool {
    app.state.db.query_scalar::<i64>("SELECT COUNT(*) FROM bg_jobs").fetch_one().await.is_err()
}

async fn lifecycle(pair: &Pair) {
    let app = pair.start(ProcessRole::All).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("root connects");
    root.next("Connected").await;

    // Create → TenantCreated once, Active, one admin; the job ran in the job database.
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("acme", false))).await;
    assert_eq!(s, 202, "{b}");
    let created = root.next("TenantCreated").await;
    assert_eq!(created.arguments[0]["tenantId"], "acme");
    let tenant = wait_status(&url, &token, "acme", "Active").await;
    assert!(tenant["provisioningError"].is_null());
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "acme").await.unwrap(), 1);
    let events = notifications(&url, &token).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "TenantCreated");
    assert_eq!(events[0].1, created.arguments[0], "the stored notification is the one sent");
    let job = wait_for("the provisioning job to succeed", || async {
        jobs_in(&app.state.jobs, JobState::Succeeded, tenant_jobs::PROVISION_TENANT).await.pop()
    })
    .await;
    assert!(job.unique_key.as_deref().is_some_and(|k| k.starts_with("diquis:request:")), "{job:?}");
    assert_eq!(job_outbox::backlog(&app.state.db).await.unwrap(), 0, "the request row was deleted after relaying");
    assert!(app_database_has_no_job_tables(&app).await, "the job tables live in the job database only");

    // Update → TenantUpdated.
    let (s, b) =
        api(Method::PUT, &format!("{url}/api/tenants/acme"), Some(&token), Some(json!({"name": "Acme FC", "isActive": true}))).await;
    assert_eq!(s, 202, "{b}");
    let updated = root.next("TenantUpdated").await;
    assert_eq!(updated.arguments[0]["tenantName"], "Acme FC");
    let tenant = wait_status(&url, &token, "acme", "Active").await;
    assert_eq!(tenant["name"], "Acme FC");
    let events: Vec<String> = notifications(&url, &token).await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(events, vec!["TenantCreated", "TenantUpdated"]);

    // A failed provisioning → TenantCreationFailed with the error kept, and a retry scheduled in
    // the job database.
    let unblock = block_isolated_database(&pair.app, "broken").await;
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("broken", true))).await;
    assert_eq!(s, 202);
    let failed = root.next("TenantCreationFailed").await;
    let p = &failed.arguments[0];
    assert_eq!(p["tenantId"], "broken");
    let error = p["error"].as_str().unwrap().to_string();
    assert!(error.contains("Could not prepare the tenant database"), "{error}");
    let tenant = wait_status(&url, &token, "broken", "Failed").await;
    assert_eq!(tenant["provisioningError"], error.as_str());
    let retry = wait_for("the failed job to be scheduled for a retry", || async {
        jobs_in(&app.state.jobs, JobState::Scheduled, tenant_jobs::PROVISION_TENANT).await.pop()
    })
    .await;
    assert_eq!(retry.last_error.as_deref(), Some(error.as_str()));

    // The cause goes away; the retry (requeued, as the dashboard does) provisions it.
    unblock().await;
    app.state.jobs.requeue(retry.id).await.unwrap();
    let created = root.next("TenantCreated").await;
    assert_eq!(created.arguments[0]["tenantId"], "broken");
    wait_status(&url, &token, "broken", "Active").await;
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "broken").await.unwrap(), 1);
    let events: Vec<String> = notifications(&url, &token).await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(events, vec!["TenantCreated", "TenantUpdated", "TenantCreationFailed", "TenantCreated"]);
    app.stop().await;
}

/// A provisioning request written the way `POST /api/tenants` writes it (tenant row and outbox
/// row in one transaction), with nothing relaying it.
async fn commit_request(db: &diquis::db::Db, id: &str) -> job_outbox::JobRequest {
    let email = format!("owner@{id}.test");
    let name = format!("Academy {id}");
    let mut tx = db.begin().await.unwrap();
    let inserted = diquis::tenants::repo::insert(
        &mut tx,
        &diquis::tenants::repo::NewTenant { id, name: &name, admin_email: &email, connection_string: None, created_by: Some("test") },
    )
    .await
    .unwrap();
    assert!(inserted);
    let request = tenant_jobs::provision_request(ProvisionTenant {
        tenant_id: id.to_string(),
        admin_email: email.clone(),
        // As older versions enqueued it: the hash in the payload.
        admin_password_hash: Some(diquis::auth::password::hash("Owner1Passw0rd")),
        initiated_by: format!("{ADMIN_EMAIL}.root"),
        request_id: None,
    })
    .unwrap();
    job_outbox::submit(&mut tx, JobStorage::SeparateDatabase, &request).await.unwrap();
    tx.commit().await.unwrap();
    request
}

async fn a_request_committed_but_not_relayed_runs_once(pair: &Pair) {
    // Only the databases: no Diquis process runs, as after a crash right after the commit.
    let settings = settings(&pair.app, &[("ConnectionStrings:HangfireConnection", &pair.hangfire())]);
    let db = diquis::db::Db::open(&settings.database).await.unwrap();
    let job_db = diquis::db::Db::connect(&settings.job_storage).await.unwrap();
    let store = job_db.job_store().await.unwrap();
    diquis::tenants::repo::ensure_root(&db).await.unwrap();
    let first = commit_request(&db, "first").await;
    let second = commit_request(&db, "second").await;
    assert_eq!(job_outbox::backlog(&db).await.unwrap(), 2);

    // A relay enqueued `first` and died before deleting its row; a second relay handles the row
    // again: still one job.
    let enqueued = store.enqueue_once(&first.unique_key(), first.to_job().unwrap()).await.unwrap();
    let relay = Relay::new(db.clone(), store.clone(), Arc::new(Notify::new()));
    let rows = job_outbox::pending(&db, 0, 10).await.unwrap();
    let (row_id, request) = rows.iter().find(|(_, r)| r.request_id == first.request_id).expect("first's row").clone();
    assert!(relay.relay(row_id, &request).await.unwrap());
    assert!(relay.relay(row_id, &request).await.unwrap(), "a row relayed twice (its deletion already done)");
    let waiting = jobs_in(&store, JobState::Enqueued, tenant_jobs::PROVISION_TENANT).await;
    assert_eq!(waiting.iter().map(|j| j.id).collect::<Vec<_>>(), vec![enqueued], "one job for the request");
    assert_eq!(job_outbox::backlog(&db).await.unwrap(), 1, "only second's request is left");
    db.close().await;
    job_db.close().await;

    // Diquis starts: its relay picks up `second` (never relayed) at once; each request runs once.
    let app = pair.start(ProcessRole::All).await;
    let url = app.url();
    let token = root_token(&url).await;
    for id in ["first", "second"] {
        wait_status(&url, &token, id, "Active").await;
        assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, id).await.unwrap(), 1);
    }
    let done = wait_for("both jobs to succeed", || async {
        let done = jobs_in(&app.state.jobs, JobState::Succeeded, tenant_jobs::PROVISION_TENANT).await;
        (done.len() == 2).then_some(done)
    })
    .await;
    let mut keys: Vec<String> = done.iter().map(|j| j.unique_key.clone().unwrap()).collect();
    keys.sort();
    let mut want = vec![first.unique_key(), second.unique_key()];
    want.sort();
    assert_eq!(keys, want);
    assert!(done.iter().any(|j| j.id == enqueued));
    for state in [JobState::Enqueued, JobState::Scheduled, JobState::Processing, JobState::Failed] {
        assert!(jobs_in(&app.state.jobs, state, tenant_jobs::PROVISION_TENANT).await.is_empty(), "{state}");
    }
    assert_eq!(job_outbox::backlog(&app.state.db).await.unwrap(), 0);
    let events = notifications(&url, &token).await;
    let mut tenants: Vec<&str> = events
        .iter()
        .map(|(e, d)| {
            assert_eq!(e, "TenantCreated");
            d["tenantId"].as_str().unwrap()
        })
        .collect();
    tenants.sort();
    assert_eq!(tenants, vec!["first", "second"], "one notification per request");

    // Relaying `first` once more, after its job ran (a unique key alone no longer guards a
    // finished job): still no new job.
    let relay = Relay::new(app.state.db.clone(), app.state.jobs.clone(), Arc::new(Notify::new()));
    assert!(relay.relay(row_id, &request).await.unwrap());
    let total: i64 = app.state.jobs.counts().await.unwrap().into_iter().map(|(_, n)| n).sum();
    assert_eq!(total, 2, "one job per request, ever");
    app.stop().await;
}

/// Runs the wrapped handler twice in one execution (same lease): the second run is what a retry
/// sees when the first one's application transaction committed but the job was not yet marked
/// done in the job database.
struct Twice<H>(Arc<H>);

impl<H: JobHandler> JobHandler for Twice<H> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn run(&self, ctx: JobContext, payload: &str) -> HandlerFuture {
        let (inner, payload) = (self.0.clone(), payload.to_string());
        Box::pin(async move {
            inner.run(ctx.clone(), &payload).await?;
            inner.run(ctx, &payload).await
        })
    }
}

async fn a_job_run_again_after_its_result_committed_changes_nothing(pair: &Pair) {
    // The web part (with its relay) and, instead of the jobs part, a worker of this test.
    let app = pair.start(ProcessRole::Web).await;
    let url = app.url();
    let token = root_token(&url).await;
    let deps = JobDeps {
        revocations: None,
        db: app.state.db.clone(),
        main_target: app.state.settings.database.clone(),
        data_directory: None,
        outbox_wake: Arc::new(Notify::new()),
        storage: JobStorage::SeparateDatabase,
        retry: jobs::RetryPolicy::hangfire(),
    };
    let worker = Worker::builder(app.state.jobs.clone())
        .queue(tenant_jobs::TENANT_QUEUE, 2)
        .register(Twice(Arc::new(tenant_jobs::provision_handler(deps.clone()))))
        .register(Twice(Arc::new(tenant_jobs::update_handler(deps))))
        .start()
        .await
        .unwrap();

    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("again", false))).await;
    assert_eq!(s, 202);
    let job = wait_for("the provisioning job to succeed", || async {
        jobs_in(&app.state.jobs, JobState::Succeeded, tenant_jobs::PROVISION_TENANT).await.pop()
    })
    .await;
    let tenant = wait_status(&url, &token, "again", "Active").await;
    assert!(tenant["provisioningError"].is_null());
    let logs: Vec<String> = app.state.jobs.logs(job.id).await.unwrap().into_iter().map(|l| l.line).collect();
    assert!(logs.iter().any(|l| l.contains("provisioned by an earlier execution")), "the second run found the work done: {logs:?}");
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "again").await.unwrap(), 1);
    let events = notifications(&url, &token).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "TenantCreated");
    let notification_id = events[0].1["id"].as_i64().unwrap();

    // A new execution of the same job (another lease, as after a lost lease): still nothing new.
    app.state.jobs.requeue(job.id).await.unwrap();
    wait_for("the requeued job to succeed again", || async {
        let history = app.state.jobs.history(job.id).await.unwrap();
        (history.iter().filter(|h| h.state == JobState::Succeeded).count() == 2).then_some(())
    })
    .await;
    assert_eq!(wait_status(&url, &token, "again", "Active").await["provisioningError"], Value::Null);
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "again").await.unwrap(), 1);
    let events = notifications(&url, &token).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["id"].as_i64().unwrap(), notification_id, "the same notification");

    // The same for an update: one TenantUpdated.
    let (s, _) =
        api(Method::PUT, &format!("{url}/api/tenants/again"), Some(&token), Some(json!({"name": "Again FC", "isActive": true}))).await;
    assert_eq!(s, 202);
    let job = wait_for("the update job to succeed", || async {
        jobs_in(&app.state.jobs, JobState::Succeeded, tenant_jobs::UPDATE_TENANT).await.pop()
    })
    .await;
    let logs: Vec<String> = app.state.jobs.logs(job.id).await.unwrap().into_iter().map(|l| l.line).collect();
    assert!(logs.iter().any(|l| l.contains("updated by an earlier execution")), "{logs:?}");
    assert_eq!(wait_status(&url, &token, "again", "Active").await["name"], "Again FC");
    let events: Vec<String> = notifications(&url, &token).await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(events, vec!["TenantCreated", "TenantUpdated"]);
    worker.shutdown().await.unwrap();
    app.stop().await;
}

/// Readiness checks the job database, and the web part keeps accepting tenants while it is down:
/// their requests wait in the outbox and are relayed when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_the_separate_job_database() {
    use sqlx::Connection;
    let pair = Pair::new(TestDb::postgres(), TestDb::postgres());
    let TestDb::Postgres(jobs_name) = &pair.jobs else { unreachable!("a PostgreSQL job database") };
    let app = pair.start(ProcessRole::Web).await;
    let url = app.url();
    let token = root_token(&url).await;
    // As root: the checks' descriptions are shown to root administrators only.
    let ready = || async {
        let r = client().get(format!("{url}/health/ready")).bearer_auth(&token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (s, b) = ready().await;
    assert_eq!(s, 200, "{b}");
    assert!(b["entries"]["jobs"]["description"].as_str().unwrap().contains("separate database"), "{b}");

    // The job database refuses connections and drops the open ones.
    let mut admin = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
    let set_allowed = |allowed: bool| format!("ALTER DATABASE \"{jobs_name}\" ALLOW_CONNECTIONS {allowed}");
    sqlx::query(sqlx::AssertSqlSafe(set_allowed(false))).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(jobs_name)
        .execute(&mut admin)
        .await
        .unwrap();
    let b = wait_for("/health/ready to answer 503 for the job database", || async {
        let (s, b) = ready().await;
        (s == 503).then_some(b)
    })
    .await;
    assert_eq!(b["entries"]["jobs"]["status"], "Unhealthy", "{b}");
    assert_eq!(b["entries"]["database"]["status"], "Healthy", "{b}");

    // Tenants are still accepted: the request waits in the application database.
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("later", false))).await;
    assert_eq!(s, 202);
    assert_eq!(job_outbox::backlog(&app.state.db).await.unwrap(), 1);

    // Back: ready again, and the request reaches the job database (no worker here: Enqueued).
    sqlx::query(sqlx::AssertSqlSafe(set_allowed(true))).execute(&mut admin).await.unwrap();
    wait_for("/health/ready to answer 200 again", || async { (ready().await.0 == 200).then_some(()) }).await;
    let job = wait_for("the request to be relayed", || async {
        jobs_in(&app.state.jobs, JobState::Enqueued, tenant_jobs::PROVISION_TENANT).await.pop()
    })
    .await;
    assert!(job.payload.contains("\"tenantId\":\"later\""), "{}", job.payload);
    // The relay enqueues first and deletes its row after (two databases, no shared
    // transaction), so the row may still be there for a moment.
    wait_for("the outbox row to be deleted", || async { (job_outbox::backlog(&app.state.db).await.unwrap() == 0).then_some(()) }).await;
    let jobs = jobs_in(&app.state.jobs, JobState::Enqueued, tenant_jobs::PROVISION_TENANT).await;
    assert_eq!(jobs.len(), 1, "one job per request: {jobs:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_job_database_stops_the_start_naming_the_key() {
    let app = TestDb::sqlite();
    let unreachable = "Host=127.0.0.1;Port=1;Database=jobs;Username=postgres";
    let err = diquis::start(settings(&app, &[("ConnectionStrings:HangfireConnection", unreachable)]), ProcessRole::All)
        .await
        .err()
        .expect("the start fails");
    assert!(matches!(err, StartError::JobDatabase(_)), "{err}");
    assert!(err.to_string().contains("'ConnectionStrings:HangfireConnection'"), "{err}");
}
