//! Every link a signed-in root administrator meets leads somewhere, on every kind of node: the
//! pages' own links, the jobs dashboard (with or without a trailing slash) and the favicon.

mod common;

use common::*;
use diquis::ProcessRole;

/// Every `href="/…"` of a page (local links only).
fn local_links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|h| h.starts_with('/') && !h.starts_with("//"))
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

async fn every_link_leads_somewhere(role: ProcessRole) {
    let db = TestDb::sqlite();
    // The database is made and seeded by a process of every role.
    let app = start(&db, role, &[]).await;
    let url = app.url();
    let browser = root_browser(&url).await;
    let mut pages = vec!["/".to_string(), "/jobs".to_string()];
    if role.serves_web() {
        pages.push("/tenants".to_string());
    }
    let mut links = vec!["/jobs/".to_string(), "/JOBS".to_string(), "/favicon.ico".to_string()];
    for page in &pages {
        let r = browser.get(format!("{url}{page}")).send().await.unwrap();
        let r = if r.status().is_redirection() {
            let to = r.headers()["location"].to_str().unwrap().to_string();
            browser.get(format!("{url}{to}")).send().await.unwrap()
        } else {
            r
        };
        assert_eq!(r.status(), 200, "{page} on a {} node", role.name());
        links.extend(local_links(&r.text().await.unwrap()));
    }
    assert!(links.iter().any(|l| l.starts_with("/jobs/job/") || l.starts_with("/jobs/state/")), "dashboard links found: {links:?}");
    links.sort();
    links.dedup();
    for link in &links {
        let r = browser.get(format!("{url}{link}")).send().await.unwrap();
        let status = r.status();
        assert!(status.is_success() || status.is_redirection(), "{link} answers {status} on a {} node", role.name());
        if link == "/favicon.ico" {
            assert_eq!(r.headers()["content-type"], "image/x-icon");
            assert!(r.bytes().await.unwrap().starts_with(&[0, 0, 1, 0]), "an ICO file");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_web_node() {
    every_link_leads_somewhere(ProcessRole::Web).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_jobs_node() {
    every_link_leads_somewhere(ProcessRole::Jobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_process() {
    every_link_leads_somewhere(ProcessRole::All).await;
}
