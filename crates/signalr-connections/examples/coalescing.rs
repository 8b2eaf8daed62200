//! Compares two ways to write a batch of queued messages to one WebSocket:
//! (a) concatenate them into one WebSocket message, (b) feed one frame each, then flush once.
//!
//! `cargo run --release -p signalr-connections --example coalescing`
//! A raw TCP reader drains the client side without parsing, so the figures are the server's cost
//! (plus an identical read loop). Not a test: a measurement for docs/decisions/0003.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

async fn run(mode: &str, batches: usize, per_batch: usize) -> (f64, f64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    });
    let (socket, _) = listener.accept().await.unwrap();
    socket.set_nodelay(true).unwrap();
    let write_buffer = if mode == "concat" { 0 } else { 128 * 1024 };
    let config = WebSocketConfig::default().write_buffer_size(write_buffer).max_write_buffer_size(usize::MAX);
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
    let payload = Bytes::from(format!("{{\"type\":1,\"target\":\"Message\",\"arguments\":[\"{}\"]}}\u{1e}", "x".repeat(50)));
    let cpu = cpu_seconds();
    let start = Instant::now();
    for _ in 0..batches {
        if mode == "concat" {
            let mut joined = BytesMut::with_capacity(payload.len() * per_batch);
            for _ in 0..per_batch {
                joined.extend_from_slice(&payload);
            }
            ws.send(Message::Text(Utf8Bytes::try_from(joined.freeze()).unwrap())).await.unwrap();
        } else {
            for _ in 0..per_batch {
                ws.feed(Message::Text(Utf8Bytes::try_from(payload.clone()).unwrap())).await.unwrap();
            }
            ws.flush().await.unwrap();
        }
    }
    drop(ws);
    reader.await.unwrap();
    (start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let per_batch = 16;
    let batches = 100_000;
    for round in 0..3 {
        for mode in ["concat", "feed"] {
            let (wall, cpu) = run(mode, batches, per_batch).await;
            let messages = (batches * per_batch) as f64;
            println!(
                "round={round} mode={mode} messages={messages} wall={wall:.3}s cpu={cpu:.2}s msgs_per_cpu_s={:.0}",
                messages / cpu.max(0.01)
            );
        }
    }
}
