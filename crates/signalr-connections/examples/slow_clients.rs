//! Measures what slow and padded clients cost `server::serve` and how long they are held.
//!
//! `cargo run --release -p signalr-connections --example slow_clients -- [count] [headers_timeout_s] [modes]`
//! serves with Kestrel's default limits (the headers timeout can be shortened), then, for each
//! attack in `modes` (comma-separated, default all, in turn in the same process), runs itself as a client process that opens `count` sockets (default 1000) and:
//! * `silent`: sends nothing;
//! * `half`: sends a request line and one header, never the end of the head;
//! * `pad30k`: sends a head with a 30 KB header (just under the 32 KB limit), never its end;
//! * `pad300k`: sends a 300 KB header (the review's size; refused with 431).
//!
//! It prints the server's RSS before, while the sockets are held, and after the server closed
//! them, with the seconds until the last socket was closed. Not a test: a measurement for
//! docs/benchmarks.md.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use signalr_connections::server::{HttpLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|line| line.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap()
}

fn payload(mode: &str) -> Vec<u8> {
    match mode {
        "silent" => Vec::new(),
        "half" => b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec(),
        "pad30k" => format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n", "a".repeat(30 * 1024)).into_bytes(),
        "pad300k" => format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n", "a".repeat(300 * 1024)).into_bytes(),
        other => panic!("unknown mode {other}"),
    }
}

/// Opens the sockets, sends the payload on each, says `ready`, then waits until the server
/// has closed every one and says `closed <seconds>`.
async fn client(addr: String, mode: String, count: usize) {
    let payload = payload(&mode);
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(addr.as_str()).await.expect("connect");
        // A refused head may be answered (and closed) before it is all written.
        let _ = socket.write_all(&payload).await;
        sockets.push(socket);
    }
    println!("ready");
    let start = Instant::now();
    let waits = sockets.into_iter().map(|mut socket| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
    });
    futures_util::future::join_all(waits).await;
    println!("closed {:.1}", start.elapsed().as_secs_f64());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        client(args[2].clone(), args[3].clone(), args[4].parse().unwrap()).await;
        return;
    }
    let count: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let timeout: f64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(30.0);
    let limits = HttpLimits { request_headers_timeout: Duration::from_secs_f64(timeout), ..HttpLimits::default() };
    let app = Router::new().route("/", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { serve(listener, app, limits, std::future::pending()).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let modes = args.get(3).cloned().unwrap_or_else(|| "silent,half,pad30k,pad300k".to_owned());
    for mode in modes.split(',') {
        let before = rss_kib();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["client", &addr, mode, &count.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let lines = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let _ = ready_tx.send(line.trim().to_owned());
            line.clear();
            reader.read_line(&mut line).unwrap();
            line.trim().to_owned()
        });
        assert_eq!(ready_rx.await.unwrap(), "ready");
        // Let the server read what was sent.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held = rss_kib();
        let closed = lines.await.unwrap();
        let _ = child.wait();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib();
        let per_socket = (held as f64 - before as f64) * 1024.0 / count as f64;
        println!(
            "mode={mode} sockets={count} rss_before={before}KiB rss_held={held}KiB per_socket={per_socket:.0}B rss_after={after}KiB {closed}s"
        );
    }
}
