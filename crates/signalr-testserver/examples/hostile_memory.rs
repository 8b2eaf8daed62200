//! Measures the server's memory under the hostile-client attacks of docs/benchmarks.md
//! ("Hostile clients"): POST floods to never-started connections and header padding.
//!
//! `cargo run --release -p signalr-testserver --example hostile_memory -- http://127.0.0.1:PORT PID [posts|headers]`
//! against a running `signalr-testserver` (PID: the server's process id, whose VmRSS is read
//! from /proc); `posts` or `headers` runs only that part (on a fresh server, so that memory
//! freed by the other part does not hide growth). Not a test: a measurement.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server process");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn negotiate(http: &reqwest::Client, base: &str) -> String {
    let response = http.post(format!("{base}/testhub/negotiate?negotiateVersion=1")).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["connectionToken"].as_str().unwrap().to_owned()
}

/// POSTs `count` bodies of `size` bytes, `parallel` at a time, to the given tokens in turn;
/// returns how many got each status.
async fn flood(base: &str, tokens: &[String], count: usize, size: usize, parallel: usize) -> Vec<(u16, usize)> {
    let body = bytes::Bytes::from(vec![b'x'; size]);
    let statuses = futures_util::stream::iter(0..count)
        .map(|i| {
            let url = format!("{base}/testhub?id={}", tokens[i % tokens.len()]);
            let body = body.clone();
            async move {
                let http = reqwest::Client::new();
                http.post(url).body(body).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
            }
        })
        .buffer_unordered(parallel)
        .collect::<Vec<u16>>()
        .await;
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for status in statuses {
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    counts.sort_unstable();
    counts
}

/// Opens `count` WebSockets to /testhub, each with an `x-padding` header of `padding` bytes.
async fn padded_sockets(base: &str, count: usize, padding: usize) -> Vec<impl Sized> {
    let ws_base = base.replacen("http", "ws", 1);
    let mut sockets = Vec::with_capacity(count);
    let mut refused = 0;
    for _ in 0..count {
        let mut request = format!("{ws_base}/testhub").into_client_request().unwrap();
        if padding > 0 {
            request.headers_mut().insert("x-padding", "p".repeat(padding).parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => sockets.push(ws),
            Err(_) => refused += 1,
        }
    }
    if refused > 0 {
        println!("  {refused} of {count} padded sockets refused");
    }
    sockets
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().expect("server base URL");
    let pid: u32 = args.next().expect("server pid").parse().expect("pid");
    let only = args.next();
    let run_posts = only.as_deref() != Some("headers");
    let run_headers = only.as_deref() != Some("posts");
    let http = reqwest::Client::new();
    let start = rss_kib(pid);
    println!("baseline RSS {start} KiB");

    if run_posts {
        posts(&http, &base, pid, start).await;
    }
    if run_headers {
        headers(&base, pid).await;
    }
}

async fn posts(http: &reqwest::Client, base: &str, pid: u32, start: u64) {
    let base = base.to_owned();
    let http = http.clone();
    // 1. The finding: one never-started connection, 8,000 POSTs of 65,000 bytes.
    let token = negotiate(&http, &base).await;
    let began = Instant::now();
    let counts = flood(&base, std::slice::from_ref(&token), 8000, 65_000, 8).await;
    let after = rss_kib(pid);
    println!(
        "one connection, 8,000 x 65,000-byte POSTs in {:.1} s: {counts:?}; RSS {start} -> {after} KiB (+{} KiB)",
        began.elapsed().as_secs_f64(),
        after.saturating_sub(start)
    );

    // 2. Spread over 2,000 never-started connections: the node-wide cap holds.
    let mut tokens = Vec::new();
    for _ in 0..2000 {
        tokens.push(negotiate(&http, &base).await);
    }
    let before = rss_kib(pid);
    let counts = flood(&base, &tokens, 8000, 65_000, 8).await;
    let after = rss_kib(pid);
    println!(
        "2,000 connections, 8,000 x 65,000-byte POSTs: {counts:?}; RSS {before} -> {after} KiB (+{} KiB, {:.1} KiB per connection)",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / 2000.0
    );
    // The start timeout (10 s) drops them with their buffers.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let dropped = rss_kib(pid);
    let gone = flood(&base, &tokens[..10], 10, 1, 1).await;
    println!("12 s later: RSS {dropped} KiB; POSTs to them now {gone:?}");
}

async fn headers(base: &str, pid: u32) {
    // 3. Header padding: 200 WebSockets with and without a 300 KB header.
    for padding in [0, 30_000, 300_000] {
        let before = rss_kib(pid);
        let sockets = padded_sockets(base, 200, padding).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid);
        println!(
            "200 WebSockets with a {padding}-byte header ({} open): RSS {before} -> {after} KiB (+{} KiB, {:.1} KiB per connection)",
            sockets.len(),
            after.saturating_sub(before),
            after.saturating_sub(before) as f64 / sockets.len().max(1) as f64
        );
        drop(sockets);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
