//! Job-engine benchmark: empty-job throughput and enqueue→start delay (p50/p99) on PostgreSQL
//! and SQLite.
//!
//! `jobs-bench --postgres postgres://postgres@127.0.0.1:5432 --sqlite-dir /tmp --jobs 20000 --latency-jobs 2000`
//!
//! PostgreSQL runs in a fresh database that is dropped afterwards; SQLite in a fresh file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use jobs::{JobContext, JobError, JobState, JobStore, NewJob, StoreOptions, Worker, WorkerConfig, handler_fn};
use parking_lot::Mutex;
use sqlx::Connection;

#[derive(Parser, Debug)]
struct Args {
    /// PostgreSQL server URL without database (a fresh database is created).
    #[arg(long)]
    postgres: Option<String>,
    /// Directory for a fresh SQLite file.
    #[arg(long)]
    sqlite_dir: Option<String>,
    /// Jobs for the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Jobs for the latency phase (enqueued one by one).
    #[arg(long, default_value_t = 2_000)]
    latency_jobs: u64,
    /// Pause between enqueues in the latency phase, in microseconds.
    #[arg(long, default_value_t = 1_000)]
    latency_interval_us: u64,
    /// Concurrent jobs per worker.
    #[arg(long, default_value_t = 128)]
    workers: usize,
    /// Jobs per claim query.
    #[arg(long, default_value_t = 256)]
    claim_batch: usize,
}

#[derive(Default)]
struct Probe {
    started: AtomicU64,
    delays: Mutex<Option<Histogram<u64>>>,
}

async fn wait_all_succeeded(store: &JobStore, total: u64) -> Result<(), JobError> {
    loop {
        let counts = store.counts().await?;
        let done = counts.iter().find(|(s, _)| *s == JobState::Succeeded).map(|c| c.1).unwrap_or(0);
        if done as u64 >= total {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(label: &str, store: JobStore, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let probe = Arc::new(Probe::default());
    // Phase 1: pre-enqueue, then drain.
    let t = Instant::now();
    let chunk: Vec<NewJob> = (0..1000).map(|_| NewJob::new("empty@1", serde_json::json!({})).queue("bench")).collect();
    let mut enq = 0;
    while enq < args.jobs {
        let n = (args.jobs - enq).min(1000) as usize;
        store.enqueue_many(&chunk[..n]).await?;
        enq += n as u64;
    }
    let enqueue_rate = args.jobs as f64 / t.elapsed().as_secs_f64();

    let p = probe.clone();
    let config = WorkerConfig { claim_batch: args.claim_batch, poll_interval: Duration::from_millis(200), ..WorkerConfig::default() };
    let t = Instant::now();
    let handle = Worker::builder(store.clone())
        .config(config)
        .queue("bench", args.workers)
        .register(handler_fn("empty@1", move |ctx: JobContext, _p: serde_json::Value| {
            let p = p.clone();
            async move {
                let delay = (chrono::Utc::now() - ctx.enqueued_at()).num_microseconds().unwrap_or(0).max(1) as u64;
                p.started.fetch_add(1, Ordering::Relaxed);
                if let Some(h) = p.delays.lock().as_mut() {
                    let _ = h.record(delay.min(60_000_000));
                }
                Ok(())
            }
        }))
        .start()
        .await?;
    wait_all_succeeded(&store, args.jobs).await?;
    let throughput = args.jobs as f64 / t.elapsed().as_secs_f64();

    // Phase 2: one enqueue at a time, measure enqueue→start.
    *probe.delays.lock() = Some(Histogram::new_with_bounds(1, 60_000_000, 3)?);
    let before = probe.started.load(Ordering::Relaxed);
    for _ in 0..args.latency_jobs {
        store.enqueue(NewJob::new("empty@1", serde_json::json!({})).queue("bench")).await?;
        tokio::time::sleep(Duration::from_micros(args.latency_interval_us)).await;
    }
    while probe.started.load(Ordering::Relaxed) < before + args.latency_jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let h = probe.delays.lock().take().ok_or("histogram missing")?;
    let metrics = handle.metrics().await?;
    handle.shutdown().await?;
    println!(
        "{label:<8} enqueue_many {enqueue_rate:>9.0} jobs/s | drain {throughput:>9.0} jobs/s ({} jobs, {} workers, batch {}) | \
         enqueue->start p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} jobs) | claim p50 {} us p99 {} us",
        args.jobs,
        args.workers,
        args.claim_batch,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len(),
        metrics.claim_latency_p50_us,
        metrics.claim_latency_p99_us,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(server) = &args.postgres {
        let server = server.trim_end_matches('/');
        let db = format!("jobs_bench_{:08x}", rand::random::<u32>());
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
        let result = async {
            let store =
                JobStore::connect_with(&format!("{server}/{db}"), StoreOptions { max_connections: Some(16), ..StoreOptions::default() })
                    .await?;
            run("postgres", store.clone(), &args).await?;
            if let Some(p) = store.pg_pool() {
                p.close().await;
            }
            Ok::<(), Box<dyn std::error::Error>>(())
        }
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))).execute(&mut admin).await?;
        result?;
    }
    if let Some(dir) = &args.sqlite_dir {
        let path = std::path::Path::new(dir).join(format!("jobs-bench-{:08x}.db", rand::random::<u32>()));
        let path_str = path.to_string_lossy().to_string();
        let result = async {
            let store = JobStore::connect(&path_str).await?;
            run("sqlite", store.clone(), &args).await?;
            if let Some(p) = store.sqlite_pool() {
                p.close().await;
            }
            Ok::<(), Box<dyn std::error::Error>>(())
        }
        .await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path_str}{suffix}"));
        }
        result?;
    }
    Ok(())
}
