//! The jobs dashboard inside the app (issue 19): only root sees it (others 403, anonymous users
//! go to the login page and come back), every case and trailing-slash variant of `/jobs`, the
//! app's header and themes, CSRF on every action, bulk actions and paging, no password hash on
//! any page, and `JobsChanged` on the hub when jobs change; on SQLite and PostgreSQL.

mod common;

use common::*;
use diquis::ProcessRole;
use reqwest::Method;

fn csrf_token_of(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a CSRF token in the dashboard's forms") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn dashboard_in_the_app(db: TestDb) {
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root_hub = hub::connect(&url, Some(&token)).await.expect("connects");

    // Anonymous: to the login page, and back to the page asked for.
    let r = client().get(format!("{url}/Jobs/state/Failed?page=2")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/login?returnUrl=%2FJobs%2Fstate%2FFailed%3Fpage%3D2");

    // A tenant goes through the API; its job shows on the dashboard, live on the hub.
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("acme", false))).await;
    assert_eq!(s, 202, "{b}");
    root_hub.next("JobsChanged").await;
    wait_status(&url, &token, "acme", "Active").await;

    // A tenant's own administrator is refused.
    let owner = login(&url, "owner@acme.test", "Owner1Passw0rd", "acme").await;
    for path in ["/jobs", "/jobs/", "/JOBS/state/Succeeded", "/jobs/recurring"] {
        let r = client().get(format!("{url}{path}")).bearer_auth(&owner).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = client().post(format!("{url}/jobs/bulk")).bearer_auth(&owner).form(&[("action", "delete"), ("ids", "1")]).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Root in a browser: every variant of the path, every page, in the app's layout.
    let browser = root_browser(&url).await;
    for path in ["/jobs", "/jobs/", "/JOBS", "/Jobs/", "/JOBS/STATE/succeeded"] {
        let r = browser.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let job = app.state.jobs.list(jobs::JobState::Succeeded, 0, 10).await.unwrap().pop().expect("the provisioning job");
    let mut pages: Vec<String> =
        ["/jobs", "/jobs/retries", "/jobs/recurring", "/jobs/servers", "/jobs/queues"].iter().map(|p| p.to_string()).collect();
    pages.extend(jobs::JobState::ALL.iter().map(|s| format!("/jobs/state/{}", s.as_str())));
    pages.push(format!("/jobs/job/{}", job.id));
    for path in &pages {
        let r = browser.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let html = r.text().await.unwrap();
        assert!(!html.contains("$argon2"), "a password hash on {path}");
        assert!(
            html.contains("<header class=\"top\">") && html.contains("href=\"/tenants\"") && html.contains("Sign out"),
            "{path}: {html}"
        );
        assert!(html.contains("id=\"theme-toggle\"") && html.contains("/jobs/dashboard.css"), "{path}");
        assert!(html.contains("name=\"jobs-hub\" content=\"/hubs/notifications\""), "{path}");
    }
    let succeeded = browser.get(format!("{url}/jobs/state/Succeeded")).send().await.unwrap().text().await.unwrap();
    assert!(succeeded.contains(&format!("<tr id=\"job-{}\"", job.id)), "{succeeded}");

    // Tenant-aware: the tenant's row links to its jobs, the jobs link back to its row alone.
    let tenants = browser.get(format!("{url}/tenants")).send().await.unwrap().text().await.unwrap();
    assert!(tenants.contains("href=\"/jobs/key/tenant%3Aacme\">Jobs</a>"), "{tenants}");
    let acme_jobs = browser.get(format!("{url}/jobs/key/tenant%3Aacme")).send().await.unwrap().text().await.unwrap();
    assert!(acme_jobs.contains(&format!("<tr id=\"job-{}\"", job.id)), "{acme_jobs}");
    assert!(acme_jobs.contains("<a href=\"/tenants?id=acme\" class=\"app-link\">Tenant acme</a>"), "{acme_jobs}");
    let root_jobs = browser.get(format!("{url}/jobs/key/tenant%3Aroot")).send().await.unwrap().text().await.unwrap();
    assert!(!root_jobs.contains(&format!("<tr id=\"job-{}\"", job.id)), "another tenant's list: {root_jobs}");
    let one = browser.get(format!("{url}/tenants?id=acme")).send().await.unwrap().text().await.unwrap();
    assert!(one.contains("<tr id=\"tenant-acme\"") && !one.contains("<tr id=\"tenant-root\""), "{one}");
    assert!(one.contains("id=\"all-tenants\" href=\"/tenants\""), "{one}");
    let missing = browser.get(format!("{url}/tenants?id=nobody")).send().await.unwrap().text().await.unwrap();
    assert!(missing.contains("No tenant nobody.") && !missing.contains("<tr id=\"tenant-"), "{missing}");

    // Actions need the session's CSRF token (a Bearer token carries none for forms).
    let detail = browser.get(format!("{url}/jobs/job/{}", job.id)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_token_of(&detail);
    let id = job.id.to_string();
    let r = browser.post(format!("{url}/jobs/bulk")).form(&[("action", "delete"), ("ids", id.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 403, "no token");
    let r = browser
        .post(format!("{url}/jobs/bulk"))
        .form(&[("csrf_token", "forged"), ("action", "delete"), ("ids", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a wrong token");
    assert_eq!(app.state.jobs.get(job.id).await.unwrap().unwrap().state, jobs::JobState::Succeeded);
    let r = browser
        .post(format!("{url}/JOBS/bulk"))
        .form(&[("csrf_token", csrf.as_str()), ("action", "delete"), ("ids", id.as_str()), ("return", "/jobs/state/Succeeded?page=1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/jobs/state/Succeeded?page=1");
    assert_eq!(app.state.jobs.get(job.id).await.unwrap().unwrap().state, jobs::JobState::Deleted);
    root_hub.next("JobsChanged").await;
    let r = browser
        .post(format!("{url}/jobs/bulk"))
        .form(&[("csrf_token", csrf.as_str()), ("action", "requeue"), ("ids", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Paging: more jobs than a page, newest first.
    let ids = app
        .state
        .jobs
        .enqueue_many(&(0..60).map(|i| jobs::NewJob::new("idle@1", i).queue("nobody-listens")).collect::<Vec<_>>())
        .await
        .unwrap();
    let page1 = browser.get(format!("{url}/jobs/state/Enqueued")).send().await.unwrap().text().await.unwrap();
    assert_eq!(page1.matches("name=\"ids\"").count(), 50);
    assert!(page1.find(&format!("<tr id=\"job-{}\"", ids[59])) < page1.find(&format!("<tr id=\"job-{}\"", ids[58])));
    let page2 = browser.get(format!("{url}/jobs/state/Enqueued?page=2")).send().await.unwrap().text().await.unwrap();
    assert!(page2.contains(&format!("<tr id=\"job-{}\"", ids[0])));
    let queues = browser.get(format!("{url}/jobs/queues")).send().await.unwrap().text().await.unwrap();
    assert!(queues.contains("<td>nobody-listens</td><td class=\"queue-length\">60</td>"), "{queues}");

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    dashboard_in_the_app(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    dashboard_in_the_app(TestDb::postgres()).await;
}
