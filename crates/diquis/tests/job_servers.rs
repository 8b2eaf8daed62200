//! A web node reports Degraded while no jobs process sends heartbeats, and Healthy once one runs.

mod common;

use common::*;
use diquis::ProcessRole;
use reqwest::Method;

async fn readiness(url: &str) -> (u16, serde_json::Value) {
    api(Method::GET, &format!("{url}/health/ready"), None, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_node_without_a_jobs_process_is_degraded() {
    let db = TestDb::postgres();
    let web = start(&db, ProcessRole::Web, &[]).await;
    let (status, body) = readiness(&web.url()).await;
    assert_eq!(status, 200, "Degraded still answers 200: {body}");
    assert_eq!(body["status"], "Degraded", "{body}");
    assert_eq!(body["entries"]["jobServers"]["status"], "Degraded", "{body}");

    let jobs = start(&db, ProcessRole::Jobs, &[]).await;
    // The jobs process registers itself before it starts listening.
    let (status, body) = readiness(&web.url()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("Healthy")), "{body}");
    assert!(body["entries"].get("jobServers").is_none(), "{body}");

    // A graceful stop takes the jobs process off the list at once.
    jobs.stop().await;
    let (_, body) = readiness(&web.url()).await;
    assert_eq!(body["status"], "Degraded", "{body}");
    web.stop().await;
}
