//! Test databases and helpers shared by the suites.

use std::time::Duration;

use jobs::{JobId, JobRecord, JobState, JobStore, WorkerConfig};
use sqlx::Connection;

/// The PostgreSQL server of the tests: `DIQUIS_TEST_POSTGRES` (a `postgres://` URL without a
/// database), by default the machine's `postgres://postgres@127.0.0.1:5432` (trust auth).
pub fn pg_server() -> String {
    std::env::var("DIQUIS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()).trim_end_matches('/').to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

/// A fresh database, dropped (PostgreSQL) or deleted (SQLite) when the value is dropped.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pg_name: Option<String>,
    dir: Option<std::path::PathBuf>,
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        let suffix = format!("{:016x}", rand::random::<u64>());
        match kind {
            Kind::Postgres => {
                let name = format!("jobs_test_{suffix}");
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server())).await.expect("connect to PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.expect("create db");
                TestDb { kind, url: format!("{}/{name}", pg_server()), pg_name: Some(name), dir: None }
            }
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("jobs-test-{suffix}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = dir.join("jobs.db").to_string_lossy().to_string();
                TestDb { kind, url, pg_name: None, dir: Some(dir) }
            }
        }
    }

    pub async fn store(&self) -> JobStore {
        JobStore::connect(&self.url).await.expect("connect store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside async; use a private runtime on a helper thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server())).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                            .execute(&mut admin)
                            .await;
                    }
                });
            })
            .join();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
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

/// Defines `mod $name { postgres, sqlite }` tests running `$body(db: TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::common::TestDb::new($crate::common::Kind::Postgres).await;
                ($body)(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::new($crate::common::Kind::Sqlite).await;
                ($body)(db).await;
            }
        }
    };
}
