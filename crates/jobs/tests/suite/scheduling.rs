//! Scheduling: delayed jobs, recurring jobs with cron and time zones, continuations, named
//! queues with priorities, migrations and connection strings.

use std::time::Duration;

use jobs::{JobContext, JobError, JobState, JobStore, NewJob, Worker, handler_fn};
use tokio::sync::mpsc;

use crate::common::{OpenStore, TestDb, fast_config, wait_state, wait_until};
use test_support::both_databases;

fn recorder(name: &str) -> (impl jobs::JobHandler, mpsc::UnboundedReceiver<(i64, serde_json::Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let h = handler_fn(name.to_owned(), move |ctx: JobContext, p: serde_json::Value| {
        let tx = tx.clone();
        async move {
            tx.send((ctx.job_id(), p)).ok();
            Ok(())
        }
    });
    (h, rx)
}

both_databases!(delayed_jobs_wait_scheduled_then_run, |db: TestDb| async move {
    let store = db.store().await;
    let soon = store.schedule(NewJob::new("rec@1", "soon"), Duration::from_millis(300)).await.unwrap();
    let later = store.schedule(NewJob::new("rec@1", "later"), Duration::from_secs(3600)).await.unwrap();
    assert_eq!(store.get(soon).await.unwrap().unwrap().state, JobState::Scheduled);
    let (h, mut rx) = recorder("rec@1");
    let worker = Worker::builder(store.clone()).config(fast_config("w1")).register(h).start().await.unwrap();
    let (id, payload) = rx.recv().await.unwrap();
    assert_eq!((id, payload), (soon, serde_json::json!("soon")));
    let job = wait_state(&store, soon, JobState::Succeeded).await;
    assert!(job.updated_at >= job.run_at, "ran before its time");
    let states: Vec<JobState> = store.history(soon).await.unwrap().iter().map(|h| h.state).collect();
    assert_eq!(states, [JobState::Scheduled, JobState::Enqueued, JobState::Processing, JobState::Succeeded]);
    assert_eq!(store.get(later).await.unwrap().unwrap().state, JobState::Scheduled);
    worker.shutdown().await.unwrap();
});

both_databases!(recurring_jobs_fire_by_cron_in_their_time_zone, |db: TestDb| async move {
    let store = db.store().await;
    assert!(matches!(store.add_recurring("bad", "not a cron", "UTC", NewJob::new("rec@1", ())).await, Err(JobError::InvalidCron { .. })));
    assert!(matches!(
        store.add_recurring("bad", "0 9 * * *", "Mars/Olympus", NewJob::new("rec@1", ())).await,
        Err(JobError::InvalidTimeZone(_))
    ));
    // 09:00 every day in Paris: the next fire time is 08:00 or 07:00 UTC.
    store.add_recurring("daily-report", "0 9 * * *", "Europe/Paris", NewJob::new("rec@1", "daily")).await.unwrap();
    // Every second (6 fields: seconds first).
    store.add_recurring("heartbeat", "* * * * * *", "Asia/Tokyo", NewJob::new("rec@1", "tick").queue("default")).await.unwrap();
    let defs = store.recurring_jobs().await.unwrap();
    let daily = defs.iter().find(|r| r.id == "daily-report").unwrap();
    let paris = daily.next_run_at.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(paris.format("%H:%M:%S").to_string(), "09:00:00");

    let (h, mut rx) = recorder("rec@1");
    let worker = Worker::builder(store.clone()).config(fast_config("w1")).register(h).start().await.unwrap();
    let (first, payload) = rx.recv().await.unwrap();
    assert_eq!(payload, serde_json::json!("tick"));
    let job = wait_state(&store, first, JobState::Succeeded).await;
    assert_eq!(job.recurring_id.as_deref(), Some("heartbeat"));
    let (second, _) = rx.recv().await.unwrap();
    assert_ne!(first, second, "fires again at the next second");
    let hb = wait_until("last_job_id", || async {
        store.recurring_jobs().await.unwrap().into_iter().find(|r| r.id == "heartbeat").filter(|r| r.last_job_id.is_some())
    })
    .await;
    assert!(hb.last_run_at.is_some());
    assert!(store.remove_recurring("heartbeat").await.unwrap());

    // Trigger now, from the API (the dashboard test covers the button).
    let triggered = store.trigger_recurring("daily-report").await.unwrap();
    loop {
        let (id, payload) = rx.recv().await.unwrap();
        if id == triggered {
            assert_eq!(payload, serde_json::json!("daily"));
            break;
        }
    }
    assert!(matches!(store.trigger_recurring("missing").await, Err(JobError::RecurringNotFound(_))));
    worker.shutdown().await.unwrap();
});

both_databases!(continuations_wait_for_their_parent, |db: TestDb| async move {
    let store = db.store().await;
    let parent = store.enqueue(NewJob::new("rec@1", "parent")).await.unwrap();
    let child = store.continue_with(parent, NewJob::new("rec@1", "child")).await.unwrap();
    let grandchild = store.continue_with(child, NewJob::new("rec@1", "grandchild")).await.unwrap();
    assert_eq!(store.get(child).await.unwrap().unwrap().state, JobState::Awaiting);
    let failing = store.enqueue(NewJob::new("fail@1", ()).max_attempts(1)).await.unwrap();
    let orphan = store.continue_with(failing, NewJob::new("rec@1", "orphan")).await.unwrap();
    assert!(matches!(store.continue_with(424242, NewJob::new("rec@1", ())).await, Err(JobError::NotFound(424242))));

    let (h, mut rx) = recorder("rec@1");
    let worker = Worker::builder(store.clone())
        .config(fast_config("w1"))
        .queue("default", 4)
        .register(h)
        .register(handler_fn("fail@1", |_c: JobContext, _p: ()| async move { Err::<(), _>(JobError::failed("parent failed")) }))
        .start()
        .await
        .unwrap();
    let order: Vec<i64> = vec![rx.recv().await.unwrap().0, rx.recv().await.unwrap().0, rx.recv().await.unwrap().0];
    assert_eq!(order, [parent, child, grandchild]);
    wait_state(&store, grandchild, JobState::Succeeded).await;
    let reasons: Vec<String> = store.history(child).await.unwrap().into_iter().filter_map(|h| h.reason).collect();
    assert!(reasons.iter().any(|r| r == &format!("Parent job {parent} succeeded")), "{reasons:?}");
    wait_state(&store, failing, JobState::Failed).await;
    assert_eq!(store.get(orphan).await.unwrap().unwrap().state, JobState::Awaiting, "a failed parent does not release");
    // A continuation of an already-succeeded job is enqueued at once.
    let late = store.continue_with(parent, NewJob::new("rec@1", "late")).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().0, late);
    worker.shutdown().await.unwrap();
});

both_databases!(named_queues_with_priorities_and_worker_counts, |db: TestDb| async move {
    let store = db.store().await;
    let low = store.enqueue(NewJob::new("rec@1", "low").priority(-5)).await.unwrap();
    let mid = store.enqueue(NewJob::new("rec@1", "mid")).await.unwrap();
    let high = store.enqueue(NewJob::new("rec@1", "high").priority(10)).await.unwrap();
    let critical = store.enqueue(NewJob::new("rec@1", "critical").queue("critical")).await.unwrap();
    let other = store.enqueue(NewJob::new("rec@1", "other").queue("reports")).await.unwrap();

    let (h, mut rx) = recorder("rec@1");
    let mut config = fast_config("w1");
    config.claim_batch = 1;
    let worker = Worker::builder(store.clone()).config(config).queue("critical", 1).queue("default", 1).register(h).start().await.unwrap();
    let mut default_order = Vec::new();
    let mut seen_critical = false;
    while default_order.len() < 3 || !seen_critical {
        let (id, _) = rx.recv().await.unwrap();
        if id == critical {
            seen_critical = true;
        } else {
            default_order.push(id);
        }
    }
    assert_eq!(default_order, [high, mid, low], "higher priority first");
    assert_eq!(store.get(other).await.unwrap().unwrap().state, JobState::Enqueued, "queue not served");
    let m = worker.metrics().await.unwrap();
    assert_eq!(m.queue_depths.len(), 2);
    worker.shutdown().await.unwrap();
    assert_eq!(store.queue_depth("reports").await.unwrap(), 1);
});

both_databases!(migrations_are_idempotent_and_pools_can_be_shared, |db: TestDb| async move {
    let first = db.store().await;
    let id = first.enqueue(NewJob::new("rec@1", 1)).await.unwrap();
    // Connecting again runs the migrations again: nothing breaks, nothing is lost.
    let second = db.store().await;
    assert_eq!(second.get(id).await.unwrap().unwrap().state, JobState::Enqueued);
    // The application's own pool.
    let shared = if db.is_postgres() {
        JobStore::from_pg_pool(sqlx::PgPool::connect(&db.url()).await.unwrap()).await.unwrap()
    } else {
        JobStore::from_sqlite_pool(sqlx::SqlitePool::connect(&db.url()).await.unwrap()).await.unwrap()
    };
    assert_eq!(shared.get(id).await.unwrap().unwrap().name, "rec@1");
    assert_eq!(shared.backend_name(), if db.is_postgres() { "postgres" } else { "sqlite" });
});

#[tokio::test]
async fn bad_locations_are_clear_errors() {
    let err = JobStore::connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(err, JobError::InvalidLocation { .. }), "{err}");
    let err = JobStore::connect("").await.unwrap_err();
    assert!(err.to_string().contains("empty location"), "{err}");
    let err = JobStore::connect(&test_support::postgres_url("no_such_db_for_jobs")).await.unwrap_err();
    assert!(matches!(err, JobError::Database(_)), "{err}");
}
