//! Server time of every dashboard page with many jobs in the storage (issue 19, point 4).
//!
//! ```sh
//! cargo run --release -p jobs --example dashboard_bench -- postgres://postgres@127.0.0.1:5432/jobs_bench 1000000
//! cargo run --release -p jobs --example dashboard_bench -- /tmp/jobs-bench.db 1000000
//! ```
//!
//! Fills an empty store with `N` jobs (80 % Succeeded, 5 % each Failed, Deleted and Enqueued,
//! 3 % Scheduled of which a third are retries, 2 % Awaiting; one history entry each, spread over
//! the last week) and folds the state counters as a worker's maintenance would, then requests each page through the router (no network) several times and
//! prints the median and the slowest time per page (after one warm-up request). Run it on a fresh database: it refuses a
//! store that already has jobs.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use jobs::JobStore;
use tower::ServiceExt;

const RUNS: usize = 7;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(location), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: dashboard_bench <postgres-url | sqlite-file> <number of jobs>");
        std::process::exit(2);
    };
    let n: i64 = n.parse().map_err(|_| format!("not a number of jobs: {n:?}"))?;
    let store = JobStore::connect(&location).await?;
    if store.counts().await?.iter().map(|(_, c)| c).sum::<i64>() > 0 {
        return Err("the store already has jobs; use a fresh database".into());
    }
    let started = Instant::now();
    fill(&store, n).await?;
    // What a worker's maintenance does every 10 s: fold the counter rows the inserts appended.
    store.fold_counts().await?;
    println!("filled {n} jobs in {:.1} s ({})", started.elapsed().as_secs_f64(), store.backend_name());

    let app = axum::Router::new().nest("/jobs", jobs::dashboard::router(store.clone()));
    let some_job = store.list(jobs::JobState::Failed, 0, 1).await?.first().map(|j| j.id).unwrap_or(1);
    let pages = [
        "/jobs".to_owned(),
        "/jobs/state/Enqueued".to_owned(),
        "/jobs/state/Succeeded".to_owned(),
        "/jobs/state/Succeeded?page=200".to_owned(),
        "/jobs/state/Failed?q=bench%407".to_owned(),
        format!("/jobs/state/Failed?q={some_job}"),
        "/jobs/retries".to_owned(),
        "/jobs/recurring".to_owned(),
        "/jobs/servers".to_owned(),
        "/jobs/queues".to_owned(),
        format!("/jobs/job/{some_job}"),
    ];
    // One request first, as a running application has done long before: it opens the pool's
    // connections (four at once for the navigation's counts), which is not a page's cost.
    let warm_up = app.clone().oneshot(Request::get("/jobs").body(Body::empty())?).await?;
    axum::body::to_bytes(warm_up.into_body(), 16 << 20).await?;
    println!("| page | median | slowest |\n| --- | ---: | ---: |");
    for page in pages {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            let resp = app.clone().oneshot(Request::get(page.as_str()).body(Body::empty())?).await?;
            let status = resp.status();
            axum::body::to_bytes(resp.into_body(), 16 << 20).await?;
            times.push(t.elapsed());
            if status != StatusCode::OK {
                return Err(format!("{page} answered {status}").into());
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("| `{page}` | {:.1} ms | {:.1} ms |", ms(times[RUNS / 2]), ms(times[RUNS - 1]));
    }
    Ok(())
}

/// Inserts the jobs and their history in one statement each (generate_series on PostgreSQL, a
/// recursive CTE on SQLite).
async fn fill(store: &JobStore, n: i64) -> Result<(), Box<dyn std::error::Error>> {
    let now = chrono::Utc::now().timestamp_micros();
    let week = 7 * 24 * 3600 * 1_000_000_i64;
    let state = "CASE WHEN g % 100 < 80 THEN 'Succeeded' WHEN g % 100 < 85 THEN 'Failed' WHEN g % 100 < 90 THEN 'Deleted' \
                 WHEN g % 100 < 95 THEN 'Enqueued' WHEN g % 100 < 98 THEN 'Scheduled' ELSE 'Awaiting' END";
    let jobs = format!(
        "INSERT INTO bg_jobs (name, queue, priority, payload, state, run_at, attempt, created_at, updated_at, finished_at, last_error) \
         SELECT 'bench@' || (g % 20), 'queue' || (g % 5), 0, '{{\"n\":' || g || '}}', {state}, $1 - ($2 - g) * ($3 / $2), \
         CASE WHEN g % 100 = 95 THEN 1 ELSE 0 END, $1 - ($2 - g) * ($3 / $2), $1 - ($2 - g) * ($3 / $2), NULL, \
         CASE WHEN g % 100 >= 80 AND g % 100 < 85 THEN 'bench failure' ELSE NULL END FROM GEN"
    );
    let states = format!(
        "INSERT INTO bg_job_states (job_id, state, at, worker, reason) SELECT g, {state}, $1 - ($2 - g) * ($3 / $2), 'bench', NULL FROM GEN"
    );
    if let Some(pool) = store.pg_pool() {
        for sql in [&jobs, &states] {
            let sql = sql.replace("FROM GEN", "FROM generate_series(1, $2::bigint) AS g");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(n).bind(week).execute(pool).await?;
        }
        // What autovacuum does after a bulk load (insert threshold): statistics and the
        // visibility map, so that index-only scans stay index-only.
        sqlx::query("VACUUM ANALYZE bg_jobs, bg_job_states").execute(pool).await?;
    } else if let Some(pool) = store.sqlite_pool() {
        for sql in [&jobs, &states] {
            let sql = format!(
                "WITH RECURSIVE gen(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM gen WHERE g < $2) {}",
                sql.replace("FROM GEN", "FROM gen")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(n).bind(week).execute(pool).await?;
        }
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    Ok(())
}
