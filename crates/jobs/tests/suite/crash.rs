//! Crash safety: a worker process SIGKILLed mid-job. The job runs again after its lease,
//! succeeds once, no job is lost, and the dead execution's late write is refused.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use jobs::{JobContext, JobError, JobState, Lease, NewJob, Worker, WorkerConfig, handler_fn};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{OpenStore, TestDb, wait_state, wait_until};
use test_support::both_databases;

both_databases!(sigkilled_worker_loses_its_lease_and_the_job_runs_again_once, |db: TestDb| async move {
    let store = db.store().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(store.enqueue(NewJob::new("crash@1", i)).await.unwrap());
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jobs-test-worker"))
        .args(["--db", &db.url(), "--worker-id", "doomed-worker", "--lease-ms", "1500", "--workers", "2"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn jobs-test-worker");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap().unwrap();
    assert!(ready.starts_with("READY"), "{ready}");

    // Wait until the child holds two jobs mid-execution (it logged from inside the handler).
    let held = wait_until("the child to be processing two jobs", || async {
        let processing = store.list(JobState::Processing, 0, 10).await.unwrap();
        let mut held = Vec::new();
        for j in processing {
            if j.lease_owner.as_deref() == Some("doomed-worker") && !store.logs(j.id).await.unwrap().is_empty() {
                held.push(Lease { job_id: j.id, token: j.lease_token });
            }
        }
        (held.len() == 2).then_some(held)
    })
    .await;

    child.kill().await.expect("SIGKILL the worker");
    let status = child.wait().await.unwrap();
    assert!(!status.success());

    let runs: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let r = runs.clone();
    let config = WorkerConfig {
        worker_id: Some("survivor".to_owned()),
        lease_duration: Duration::from_millis(1500),
        heartbeat_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(50),
        maintenance_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let worker = Worker::builder(store.clone())
        .config(config)
        .queue("default", 4)
        .register(handler_fn("crash@1", move |ctx: JobContext, _p: i64| {
            let r = r.clone();
            async move {
                *r.lock().entry(ctx.job_id()).or_default() += 1;
                Ok::<(), JobError>(())
            }
        }))
        .start()
        .await
        .unwrap();
    for id in &ids {
        wait_state(&store, *id, JobState::Succeeded).await;
    }
    {
        let runs = runs.lock();
        for id in &ids {
            assert_eq!(runs.get(id), Some(&1), "job {id} must succeed exactly once");
        }
    }
    for lease in &held {
        let history = store.history(lease.job_id).await.unwrap();
        assert!(history.iter().any(|h| h.reason.as_deref() == Some("Lease of worker doomed-worker expired; requeued")), "{history:?}");
        let processing: Vec<_> = history.iter().filter(|h| h.state == JobState::Processing).collect();
        assert_eq!(processing.len(), 2);
        assert_eq!(processing[0].worker.as_deref(), Some("doomed-worker"));
        assert_eq!(processing[1].worker.as_deref(), Some("survivor"));
        assert_eq!(history.iter().filter(|h| h.state == JobState::Succeeded).count(), 1);
        let job = store.get(lease.job_id).await.unwrap().unwrap();
        assert!(job.lease_token > lease.token, "re-claimed under a new fencing token");

        // The dead execution's late write is refused by its fencing token.
        let refused = if let Some(pool) = store.pg_pool() {
            let mut tx = pool.begin().await.unwrap();
            let r = lease.complete_in_tx(&mut tx, "doomed-worker").await;
            tx.rollback().await.unwrap();
            r
        } else {
            let mut tx = store.sqlite_pool().unwrap().begin().await.unwrap();
            let r = lease.complete_in_tx(&mut tx, "doomed-worker").await;
            tx.rollback().await.unwrap();
            r
        };
        assert!(matches!(refused, Err(JobError::LeaseLost { .. })), "{refused:?}");
    }
    let counts = store.counts().await.unwrap();
    let succeeded = counts.iter().find(|c| c.0 == JobState::Succeeded).unwrap().1;
    assert_eq!(succeeded, 5, "no job lost: {counts:?}");
    worker.shutdown().await.unwrap();
});

both_databases!(a_stale_worker_still_running_cannot_write_after_its_lease_expired, |db: TestDb| async move {
    // A live but stalled worker: its heartbeat cannot keep up (lease 300 ms, heartbeat 10 s),
    // so another worker re-claims the job. The stalled execution's writes are all refused.
    let store = db.store().await;
    let (stalled_tx, mut stalled_rx) = tokio::sync::mpsc::unbounded_channel::<JobContext>();
    let release = Arc::new(tokio::sync::Notify::new());
    let rel = release.clone();
    let slow = Worker::builder(store.clone())
        .config(WorkerConfig {
            worker_id: Some("stalled".to_owned()),
            lease_duration: Duration::from_millis(300),
            heartbeat_interval: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            maintenance_interval: Duration::from_secs(3600),
            ..WorkerConfig::default()
        })
        // One slot, held by the stalled execution: this worker cannot re-claim the job itself.
        .queue("default", 1)
        .register(handler_fn("stall@1", move |ctx: JobContext, _p: ()| {
            let (tx, rel) = (stalled_tx.clone(), rel.clone());
            async move {
                tx.send(ctx.clone()).ok();
                rel.notified().await;
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("stall@1", ())).await.unwrap();
    let stale_ctx = stalled_rx.recv().await.unwrap();
    stale_ctx.check_lease().await.expect("the running execution holds its lease");

    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    let fresh = Worker::builder(store.clone())
        .config(WorkerConfig {
            worker_id: Some("fresh".to_owned()),
            lease_duration: Duration::from_secs(5),
            heartbeat_interval: Duration::from_millis(500),
            poll_interval: Duration::from_millis(50),
            maintenance_interval: Duration::from_millis(50),
            ..WorkerConfig::default()
        })
        .register(handler_fn("stall@1", move |_ctx: JobContext, _p: ()| {
            let r = r.clone();
            async move {
                r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let job = wait_state(&store, id, JobState::Succeeded).await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(job.lease_token > stale_ctx.lease().token);
    assert!(matches!(stale_ctx.progress(90).await, Err(JobError::LeaseLost { .. })));
    assert!(matches!(stale_ctx.log("late").await, Err(JobError::LeaseLost { .. })));
    assert!(matches!(stale_ctx.check_lease().await, Err(JobError::LeaseLost { .. })));
    release.notify_one();
    slow.shutdown().await.unwrap();
    let history = store.history(id).await.unwrap();
    assert_eq!(history.iter().filter(|h| h.state == JobState::Succeeded).count(), 1, "{history:?}");
    assert_eq!(history.last().unwrap().worker.as_deref(), Some("fresh"));
    fresh.shutdown().await.unwrap();
});
