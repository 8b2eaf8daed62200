//! A worker process for the crash-safety tests: it claims `crash@1` jobs and never finishes
//! them, so the test can SIGKILL it mid-job.
//!
//! Usage: `jobs-test-worker --db <url-or-path> --worker-id <id> --lease-ms <ms> [--workers <n>]`.
//! Prints `READY` on stdout once the worker is ready.

use std::time::Duration;

use jobs::{JobContext, JobError, JobStore, Worker, WorkerConfig, handler_fn};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = arg(&args, "--db").ok_or("missing --db")?;
    let worker_id = arg(&args, "--worker-id").unwrap_or_else(|| "crash-worker".to_owned());
    let lease_ms: u64 = arg(&args, "--lease-ms").unwrap_or_else(|| "2000".to_owned()).parse()?;
    let workers: usize = arg(&args, "--workers").unwrap_or_else(|| "1".to_owned()).parse()?;
    let store = JobStore::connect(&db).await?;
    let config = WorkerConfig {
        worker_id: Some(worker_id),
        lease_duration: Duration::from_millis(lease_ms),
        heartbeat_interval: Duration::from_millis(lease_ms / 3),
        poll_interval: Duration::from_millis(50),
        maintenance_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let handle = Worker::builder(store)
        .config(config)
        .queue("default", workers)
        .register(handler_fn("crash@1", |ctx: JobContext, _p: serde_json::Value| async move {
            ctx.log("started in the test worker process").await?;
            // Hold the job until killed.
            std::future::pending::<()>().await;
            Err::<(), JobError>(JobError::failed("unreachable"))
        }))
        .start()
        .await?;
    println!("READY {}", handle.worker_id());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await?;
    Ok(())
}
