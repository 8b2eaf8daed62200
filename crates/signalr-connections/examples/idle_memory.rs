//! Measures server RSS per idle WebSocket connection (skipNegotiation, no traffic).
//!
//! `cargo run --release -p signalr-connections --example idle_memory -- 5000 [read_buffer] [bare]`
//! starts the endpoint, runs itself as a client process that opens N WebSockets, and prints the
//! RSS growth per connection. Not a test: a measurement for docs/benchmarks.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use bytes::Bytes;
use signalr_connections::{Connection, ConnectionApplication, ConnectionHandler, HttpConnectionOptions, endpoint};

struct Idle;
struct IdleApp;

impl ConnectionHandler for Idle {
    fn on_connected(&self, _connection: Connection) -> Box<dyn ConnectionApplication> {
        Box::new(IdleApp)
    }
}

#[async_trait]
impl ConnectionApplication for IdleApp {
    async fn on_data(&mut self, _data: Bytes) {}
    async fn on_closed(&mut self) {}
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|line| line.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap()
}

async fn client(url: String, count: usize) {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
        sockets.push(ws);
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    // Hold the sockets until the server closes our stdin.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(sockets);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        client(args[2].clone(), args[3].parse().unwrap()).await;
        return;
    }
    let count: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(5000);
    let read_buffer: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(4096);
    let bare = args.get(3).map(String::as_str) == Some("bare");
    let app = if bare {
        // Baseline: a plain axum WebSocket route with the same read buffer, no connection layer.
        Router::new().route(
            "/hub",
            axum::routing::get(move |upgrade: axum::extract::ws::WebSocketUpgrade| async move {
                upgrade.read_buffer_size(read_buffer).on_upgrade(|mut socket| async move { while let Some(Ok(_)) = socket.recv().await {} })
            }),
        )
    } else {
        let options = HttpConnectionOptions::default().websocket_read_buffer_size(read_buffer);
        Router::new().nest("/hub", endpoint(options, Arc::new(Idle)))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/hub", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(signalr_connections::listener::nodelay(listener), app).await.unwrap() });
    // Warm up the allocator and runtime with one connection's worth of work.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["client", &url, &count.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib();
    drop(child.stdin.take());
    let _ = child.wait();
    let per_connection = (after - before) as f64 * 1024.0 / count as f64;
    println!(
        "connections={count} read_buffer={read_buffer} bare={bare} rss_before={before}KiB rss_after={after}KiB per_connection={per_connection:.0}B"
    );
}
