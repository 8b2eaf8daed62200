//! Execution: fire-and-forget, retries, cancellation, shutdown, progress/logs, unique and
//! non-concurrent jobs, transactional enqueue and completion, fencing, retention.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobs::{CancelOutcome, JobContext, JobError, JobState, JobStore, NewJob, RetryPolicy, Worker, handler_fn};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::common::{OpenStore, TestDb, fast_config, wait_state, wait_until};
use test_support::both_databases;

#[derive(Deserialize, serde::Serialize, Debug, Clone)]
struct Greet {
    who: String,
}

/// Runs `$body` with `$tx` bound to a transaction of the store's own pool. A macro, not a
/// function: the body is written once but type-checked twice, against `Transaction<Postgres>` and
/// `Transaction<Sqlite>` (the jobs API is generic over the two; the raw queries beside it are not).
macro_rules! with_tx {
    ($store:expr, $tx:ident => $body:block) => {
        if let Some(pool) = $store.pg_pool() {
            let mut $tx = pool.begin().await.expect("begin");
            $body
        } else {
            let pool = $store.sqlite_pool().expect("sqlite pool");
            let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
            $body
        }
    };
}

both_databases!(fire_and_forget_runs_once_with_history, |db: TestDb| async move {
    let store = db.store().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .queue("default", 2)
        .register(handler_fn("greet@1", move |ctx: JobContext, p: Greet| {
            let tx = tx.clone();
            async move {
                tx.send((ctx.job_id(), p.who, ctx.attempt())).ok();
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("greet@1", Greet { who: "ada".into() })).await.unwrap();
    let (ran_id, who, attempt) = rx.recv().await.unwrap();
    assert_eq!((ran_id, who.as_str(), attempt), (id, "ada", 1));
    let job = wait_state(&store, id, JobState::Succeeded).await;
    assert_eq!(job.attempt, 1);
    assert!(job.finished_at.is_some());
    let states: Vec<JobState> = store.history(id).await.unwrap().iter().map(|h| h.state).collect();
    assert_eq!(states, [JobState::Enqueued, JobState::Processing, JobState::Succeeded]);
    let history = store.history(id).await.unwrap();
    assert_eq!(history[1].worker.as_deref(), Some("w1"));
    let m = worker.metrics().await.unwrap();
    assert_eq!(m.succeeded, 1);
    assert!(m.claims >= 1);
    assert_eq!(m.queue_depths, vec![("default".to_owned(), 0)]);
    worker.shutdown().await.unwrap();
    assert!(rx.try_recv().is_err(), "ran more than once");
});

both_databases!(retries_follow_the_per_type_policy, |db: TestDb| async move {
    let store = db.store().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(
            handler_fn("flaky@1", move |_ctx: JobContext, _p: serde_json::Value| {
                let c = c.clone();
                async move { if c.fetch_add(1, Ordering::SeqCst) < 2 { Err(JobError::failed("transient boom")) } else { Ok(()) } }
            })
            .retry(RetryPolicy::fixed(5, Duration::from_millis(20))),
        )
        .register(
            handler_fn("always-fails@1", |_ctx: JobContext, _p: serde_json::Value| async move {
                Err::<(), _>(JobError::failed("permanent trouble"))
            })
            .retry(RetryPolicy::fixed(2, Duration::from_millis(20))),
        )
        .start()
        .await
        .unwrap();
    let flaky = store.enqueue(NewJob::new("flaky@1", ())).await.unwrap();
    let job = wait_state(&store, flaky, JobState::Succeeded).await;
    assert_eq!(job.attempt, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let history = store.history(flaky).await.unwrap();
    let retries: Vec<_> = history.iter().filter(|h| h.state == JobState::Scheduled).collect();
    assert_eq!(retries.len(), 2);
    assert!(retries[0].reason.as_deref().unwrap().contains("Retry attempt 1 of 4"), "{:?}", retries[0].reason);
    assert!(retries[0].reason.as_deref().unwrap().contains("transient boom"));

    let doomed = store.enqueue(NewJob::new("always-fails@1", ())).await.unwrap();
    let job = wait_state(&store, doomed, JobState::Failed).await;
    assert_eq!(job.attempt, 2);
    assert_eq!(job.last_error.as_deref(), Some("permanent trouble"));
    let m = worker.metrics().await.unwrap();
    assert_eq!(m.retried, 3);
    assert_eq!(m.failed, 1);
    worker.shutdown().await.unwrap();
});

both_databases!(default_policy_is_hangfires, |db: TestDb| async move {
    let store = db.store().await;
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("fails@1", |_ctx: JobContext, _p: serde_json::Value| async move { Err::<(), _>(JobError::failed("nope")) }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("fails@1", ())).await.unwrap();
    let job = wait_state(&store, id, JobState::Scheduled).await;
    // First retry: (1-1)^4 + 15 + rand(0..30)*1 seconds after the failure.
    let delay = (job.run_at - job.updated_at).num_seconds();
    assert!((14..=45).contains(&delay), "first retry in {delay}s");
    let history = store.history(id).await.unwrap();
    let last = history.last().unwrap();
    assert!(last.reason.as_deref().is_some_and(|r| r.contains("Retry attempt 1 of 10")), "{history:?}");
    worker.shutdown().await.unwrap();
});

both_databases!(cancel_running_and_pending_jobs, |db: TestDb| async move {
    let store = db.store().await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("long@1", move |ctx: JobContext, _p: serde_json::Value| {
            let started_tx = started_tx.clone();
            async move {
                started_tx.send(ctx.job_id()).ok();
                ctx.cancelled().await;
                Err::<(), _>(JobError::Cancelled)
            }
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("long@1", ())).await.unwrap();
    assert_eq!(started.recv().await, Some(id));
    assert_eq!(store.cancel(id).await.unwrap(), CancelOutcome::Signalled);
    let job = wait_state(&store, id, JobState::Deleted).await;
    assert_eq!(job.attempt, 1, "a cancelled job is not retried");
    let last = store.history(id).await.unwrap().pop().unwrap();
    assert!(last.reason.unwrap().contains("Cancelled"));

    let later = store.schedule(NewJob::new("long@1", ()), Duration::from_secs(3600)).await.unwrap();
    assert_eq!(store.cancel(later).await.unwrap(), CancelOutcome::Deleted);
    assert_eq!(store.get(later).await.unwrap().unwrap().state, JobState::Deleted);
    assert!(matches!(store.cancel(later).await, Err(JobError::InvalidState { .. })));
    assert!(matches!(store.cancel(999_999).await, Err(JobError::NotFound(999_999))));
    worker.shutdown().await.unwrap();
});

both_databases!(graceful_shutdown_finishes_or_hands_back, |db: TestDb| async move {
    let store = db.store().await;
    // 1. A job that finishes within the grace period completes.
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("finishes@1", move |ctx: JobContext, _p: serde_json::Value| {
            let (started_tx, r) = (started_tx.clone(), r.clone());
            async move {
                started_tx.send(ctx.job_id()).ok();
                r.notified().await;
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("finishes@1", ())).await.unwrap();
    assert_eq!(started.recv().await, Some(id));
    let shutdown = tokio::spawn(worker.shutdown());
    release.notify_one();
    shutdown.await.unwrap().unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().state, JobState::Succeeded);

    // 2. A job that ignores cancellation past the grace period is handed back to its queue.
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut config = fast_config("w2");
    config.shutdown_timeout = Duration::from_millis(200);
    let worker = Worker::builder(store.clone())
        .config(config)
        .register(handler_fn("stubborn@1", move |ctx: JobContext, _p: serde_json::Value| {
            let started_tx = started_tx.clone();
            async move {
                started_tx.send(ctx.job_id()).ok();
                std::future::pending::<()>().await;
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("stubborn@1", ())).await.unwrap();
    assert_eq!(started.recv().await, Some(id));
    worker.shutdown().await.unwrap();
    let job = store.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Enqueued);
    assert_eq!(job.attempt, 0, "the attempt is given back");
    let last = store.history(id).await.unwrap().pop().unwrap();
    assert!(last.reason.unwrap().contains("Handed back"));
});

both_databases!(progress_and_log_lines_are_stored, |db: TestDb| async move {
    let store = db.store().await;
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("reports@1", |ctx: JobContext, p: Greet| async move {
            ctx.log(format!("hello {}", p.who)).await?;
            ctx.progress(50).await?;
            ctx.log("half way").await?;
            Ok(())
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("reports@1", Greet { who: "bob".into() })).await.unwrap();
    let job = wait_state(&store, id, JobState::Succeeded).await;
    assert_eq!(job.progress, Some(50));
    let lines: Vec<String> = store.logs(id).await.unwrap().into_iter().map(|l| l.line).collect();
    assert_eq!(lines, ["hello bob", "half way"]);
    worker.shutdown().await.unwrap();
});

both_databases!(unique_keys_deduplicate_unfinished_jobs, |db: TestDb| async move {
    let store = db.store().await;
    let a = store.enqueue(NewJob::new("u@1", 1).unique_key("tenant-7")).await.unwrap();
    let b = store.enqueue(NewJob::new("u@1", 2).unique_key("tenant-7")).await.unwrap();
    assert_eq!(a, b);
    let other = store.enqueue(NewJob::new("u@1", 3).unique_key("tenant-8")).await.unwrap();
    assert_ne!(a, other);
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("u@1", |_ctx: JobContext, _p: i32| async move { Ok(()) }))
        .start()
        .await
        .unwrap();
    wait_state(&store, a, JobState::Succeeded).await;
    let c = store.enqueue(NewJob::new("u@1", 4).unique_key("tenant-7")).await.unwrap();
    assert_ne!(c, a, "a finished job no longer holds its key");
    wait_state(&store, c, JobState::Succeeded).await;
    worker.shutdown().await.unwrap();
});

both_databases!(enqueue_once_makes_one_job_per_key_even_after_it_ran, |db: TestDb| async move {
    let store = db.store().await;
    // Concurrent hand-overs of one request (relays in several processes): one job.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.enqueue_once("request-1", NewJob::new("once@1", i)).await.unwrap() }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("once@1", |_ctx: JobContext, _p: i32| async move { Ok(()) }))
        .start()
        .await
        .unwrap();
    let job = wait_state(&store, ids[0], JobState::Succeeded).await;
    assert_eq!(job.unique_key.as_deref(), Some("request-1"));
    // After it ran: still the same job, nothing new enqueued.
    assert_eq!(store.enqueue_once("request-1", NewJob::new("once@1", 9)).await.unwrap(), ids[0]);
    let enqueued = store.counts().await.unwrap().into_iter().filter(|(s, _)| !s.is_final()).map(|(_, n)| n).sum::<i64>();
    assert_eq!(enqueued, 0);
    // Another key is another job.
    let other = store.enqueue_once("request-2", NewJob::new("once@1", 10)).await.unwrap();
    assert_ne!(other, ids[0]);
    wait_state(&store, other, JobState::Succeeded).await;
    worker.shutdown().await.unwrap();
});

both_databases!(jobs_sharing_a_concurrency_key_never_overlap, |db: TestDb| async move {
    let store = db.store().await;
    let running = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), max_seen.clone());
    let ids: Vec<_> = {
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(store.enqueue(NewJob::new("serial@1", i).concurrency_key("tenant-1")).await.unwrap());
        }
        ids.push(store.enqueue(NewJob::new("serial@1", 99).concurrency_key("tenant-2")).await.unwrap());
        ids
    };
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .queue("default", 6)
        .register(handler_fn("serial@1", move |_ctx: JobContext, p: i32| {
            let (r, m) = (r.clone(), m.clone());
            async move {
                if p != 99 {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                }
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    for id in &ids {
        wait_state(&store, *id, JobState::Succeeded).await;
    }
    assert_eq!(max_seen.load(Ordering::SeqCst), 1, "two jobs with the same key overlapped");
    worker.shutdown().await.unwrap();
});

both_databases!(enqueue_in_tx_commits_or_rolls_back_with_the_caller, |db: TestDb| async move {
    let store = db.store().await;
    exec_raw(&store, "CREATE TABLE tenants (id BIGINT PRIMARY KEY, name TEXT NOT NULL)").await;
    with_tx!(store, tx => {
        sqlx::query("INSERT INTO tenants (id, name) VALUES (1, 'rolled back')").execute(&mut *tx).await.unwrap();
        jobs::enqueue_in_tx(&mut tx, NewJob::new("provision-tenant@1", 1)).await.unwrap();
        tx.rollback().await.unwrap();
    });
    let total: i64 = store.counts().await.unwrap().iter().map(|c| c.1).sum();
    assert_eq!(total, 0, "a rolled-back transaction left a job");

    let id = with_tx!(store, tx => {
        sqlx::query("INSERT INTO tenants (id, name) VALUES (2, 'committed')").execute(&mut *tx).await.unwrap();
        let id = jobs::enqueue_in_tx(&mut tx, NewJob::new("provision-tenant@1", 2)).await.unwrap();
        tx.commit().await.unwrap();
        id
    });
    store.wake();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("provision-tenant@1", move |_ctx: JobContext, tenant: i64| {
            let seen_tx = seen_tx.clone();
            async move {
                seen_tx.send(tenant).ok();
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    assert_eq!(seen.recv().await, Some(2));
    wait_state(&store, id, JobState::Succeeded).await;
    worker.shutdown().await.unwrap();
});

/// Runs application DDL on either backend.
async fn exec_raw(store: &JobStore, sql: &'static str) {
    if let Some(p) = store.pg_pool() {
        sqlx::raw_sql(sql).execute(p).await.unwrap();
    } else {
        sqlx::raw_sql(sql).execute(store.sqlite_pool().unwrap()).await.unwrap();
    }
}

async fn acquire_any(store: &JobStore) -> AnyConn {
    match store.pg_pool() {
        Some(p) => AnyConn::Pg(p.acquire().await.unwrap()),
        None => AnyConn::Sqlite(store.sqlite_pool().unwrap().acquire().await.unwrap()),
    }
}

enum AnyConn {
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl AnyConn {
    async fn count_app_rows(&mut self, job: i64) -> i64 {
        use sqlx::Row;
        let sql = "SELECT COUNT(*) AS n FROM app_rows WHERE job_id = $1";
        match self {
            AnyConn::Pg(c) => sqlx::query(sql).bind(job).fetch_one(&mut **c).await.unwrap().get("n"),
            AnyConn::Sqlite(c) => sqlx::query(sql).bind(job).fetch_one(&mut **c).await.unwrap().get("n"),
        }
    }
}

both_databases!(complete_in_tx_commits_app_rows_with_the_job_and_fences_stale_leases, |db: TestDb| async move {
    let store = db.store().await;
    exec_raw(&store, "CREATE TABLE app_rows (job_id BIGINT NOT NULL, note TEXT NOT NULL)").await;
    let leases = Arc::new(Mutex::new(HashMap::new()));
    let l = leases.clone();
    let s = store.clone();
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("provision@1", move |ctx: JobContext, note: String| {
            let (l, s) = (l.clone(), s.clone());
            async move {
                l.lock().insert(ctx.job_id(), ctx.lease());
                with_tx!(s, tx => {
                    ctx.complete_in_tx(&mut tx).await?;
                    sqlx::query("INSERT INTO app_rows (job_id, note) VALUES ($1, $2)")
                        .bind(ctx.job_id()).bind(&note).execute(&mut *tx).await.map_err(JobError::from)?;
                    tx.commit().await.map_err(JobError::from)?;
                });
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let id = store.enqueue(NewJob::new("provision@1", "tenant ready")).await.unwrap();
    let job = wait_state(&store, id, JobState::Succeeded).await;
    let states: Vec<JobState> = store.history(id).await.unwrap().iter().map(|h| h.state).collect();
    assert_eq!(states, [JobState::Enqueued, JobState::Processing, JobState::Succeeded], "completed exactly once");
    let mut conn = acquire_any(&store).await;
    assert_eq!(conn.count_app_rows(id).await, 1);

    // The same lease used again (a stale worker's late write) is refused, and its app rows with it.
    let lease = *leases.lock().get(&id).unwrap();
    assert_eq!(lease.token, job.lease_token);
    with_tx!(store, tx => {
        let refused = lease.complete_in_tx(&mut tx, "stale-worker").await;
        assert!(matches!(refused, Err(JobError::LeaseLost { .. })), "{refused:?}");
        let refused = lease.check_in_tx(&mut tx).await;
        assert!(matches!(refused, Err(JobError::LeaseLost { .. })), "{refused:?}");
        tx.rollback().await.unwrap();
    });
    worker.shutdown().await.unwrap();
});

both_databases!(retention_purges_old_finished_jobs_only, |db: TestDb| async move {
    let store = db.store().await;
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .register(handler_fn("ok@1", |_ctx: JobContext, _p: ()| async move { Ok(()) }))
        .register(handler_fn("bad@1", |_ctx: JobContext, _p: ()| async move { Err::<(), _>(JobError::fatal("no")) }))
        .start()
        .await
        .unwrap();
    let ok = store.enqueue(NewJob::new("ok@1", ())).await.unwrap();
    let bad = store.enqueue(NewJob::new("bad@1", ())).await.unwrap();
    wait_state(&store, ok, JobState::Succeeded).await;
    wait_state(&store, bad, JobState::Failed).await;
    let pending = store.schedule(NewJob::new("ok@1", ()), Duration::from_secs(3600)).await.unwrap();
    assert_eq!(store.purge_finished(Duration::from_secs(3600)).await.unwrap(), 0, "too recent to purge");
    wait_until("finish time to pass", || async {
        (chrono::Utc::now() > store.get(ok).await.unwrap().unwrap().finished_at.unwrap()).then_some(())
    })
    .await;
    assert_eq!(store.purge_finished(Duration::ZERO).await.unwrap(), 1);
    assert!(store.get(ok).await.unwrap().is_none());
    assert!(store.history(ok).await.unwrap().is_empty());
    assert_eq!(store.get(bad).await.unwrap().unwrap().state, JobState::Failed, "failed jobs are kept");
    assert_eq!(store.get(pending).await.unwrap().unwrap().state, JobState::Scheduled);
    worker.shutdown().await.unwrap();
});
