//! The servers list: a running worker is registered with its queues and workers, its heartbeat
//! advances while it is idle, and a graceful stop removes it.

use jobs::{JobContext, Worker, handler_fn};

use crate::common::{OpenStore, TestDb, fast_config, wait_until};
use test_support::both_databases;

both_databases!(a_worker_is_listed_while_it_runs_and_heartbeats_when_idle, |db: TestDb| async move {
    let store = db.store().await;
    assert!(store.servers().await.unwrap().is_empty());
    let worker = Worker::builder(store.clone())
        .config(fast_config("server-a"))
        .queue("default", 3)
        .queue("tenants", 2)
        .register(handler_fn("noop@1", |_ctx: JobContext, _p: serde_json::Value| async { Ok(()) }))
        .start()
        .await
        .unwrap();
    let servers = store.servers().await.unwrap();
    assert_eq!(servers.len(), 1, "{servers:?}");
    let first = servers[0].clone();
    assert_eq!(first.id, "server-a");
    assert_eq!(first.queues, vec!["default".to_string(), "tenants".to_string()]);
    assert_eq!(first.workers, 5);
    // No job runs: the heartbeat moves on anyway (every 300 ms with the test configuration).
    let later = wait_until("an idle heartbeat", || {
        let store = store.clone();
        let before = first.heartbeat_at;
        async move { store.servers().await.unwrap().into_iter().find(|s| s.heartbeat_at > before) }
    })
    .await;
    assert_eq!(later.started_at, first.started_at);
    worker.shutdown().await.unwrap();
    assert!(store.servers().await.unwrap().is_empty(), "a graceful stop removes the server");
    drop(db);
});
