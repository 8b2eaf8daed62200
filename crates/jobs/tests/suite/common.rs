//! Test databases and helpers shared by the suites.

use std::time::Duration;

use jobs::{JobId, JobRecord, JobState, JobStore, WorkerConfig};

pub use test_support::ScratchDb as TestDb;

/// Opens a [`JobStore`] on a test database.
pub trait OpenStore {
    /// A store on this database (its migrations run).
    async fn store(&self) -> JobStore;
}

impl OpenStore for TestDb {
    async fn store(&self) -> JobStore {
        JobStore::connect(&self.url()).await.expect("connect store")
    }
}

/// Short timings for tests.
pub fn fast_config(worker_id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: Some(worker_id.to_owned()),
        lease_duration: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        maintenance_interval: Duration::from_millis(50),
        shutdown_timeout: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}

/// Waits (on the job's state changes, up to 30 s) until `pred` holds for the job.
pub async fn wait_job(store: &JobStore, id: JobId, what: &str, pred: impl Fn(&JobRecord) -> bool) -> JobRecord {
    wait_until(what, || async {
        let job = store.get(id).await.expect("get job")?;
        pred(&job).then_some(job)
    })
    .await
}

/// Waits until the job reaches `state`.
pub async fn wait_state(store: &JobStore, id: JobId, state: JobState) -> JobRecord {
    wait_job(store, id, &format!("job {id} to be {state}"), |j| j.state == state).await
}

pub use test_support::wait_for as wait_until;
