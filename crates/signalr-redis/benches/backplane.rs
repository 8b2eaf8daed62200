//! Cross-node latency and publish rate of the Redis backplane.
//!
//! `cargo bench -p signalr-redis --bench backplane` starts its own redis-server on a free port,
//! two backplane nodes (A publishes, B holds one JSON connection), and measures:
//! 1. latency A.send_all → B's connection, paced at 1,000 messages/s (p50, p99, max);
//! 2. the largest publish rate: N broadcasts sent as fast as A accepts them, until B got all;
//! 3. the same spread over 64 channels (sends to 64 connections of B), which a Redis Cluster
//!    spreads over its shards.
//!
//! `BACKPLANE_BENCH_REDIS=<connection string>` uses that Redis (e.g. a cluster) instead of
//! starting one; `BACKPLANE_BENCH_SHARDED=1` turns on sharded Pub/Sub
//! (clients/node/bench/cluster-backplane.js runs all three setups).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::json;
use signalr::hub::lifetime::{HubConnection, HubLifetimeManager, SendError};
use signalr_protocol::{HubProtocol, JsonHubProtocol, Value};
use signalr_redis::{RedisBackplaneOptions, RedisConfig, RedisHubLifetimeManager, invocation};
use tokio::sync::mpsc;

struct Probe {
    id: String,
    protocol: JsonHubProtocol,
    frames: mpsc::UnboundedSender<(Instant, Bytes)>,
}

impl HubConnection for Probe {
    fn connection_id(&self) -> &str {
        &self.id
    }
    fn user_identifier(&self) -> Option<&str> {
        None
    }
    fn protocol(&self) -> &dyn HubProtocol {
        &self.protocol
    }
    fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
        self.frames.send((Instant::now(), frame)).map_err(|_| SendError::Closed)
    }
    fn abort(&self) {}
}

fn manager(redis: &str) -> Arc<RedisHubLifetimeManager> {
    let config = RedisConfig::parse(&format!("{redis},channelPrefix=Bench")).unwrap();
    let sharded = std::env::var("BACKPLANE_BENCH_SHARDED").is_ok_and(|v| v == "1");
    let mut options = RedisBackplaneOptions::new(config, "Bench.Hub")
        .with_protocols(vec![Arc::new(JsonHubProtocol)])
        .with_publish_queue_capacity(1_000_000)
        .with_sharded_pub_sub(sharded);
    // Room for every message of a run: a cluster delivers faster than one processing task reads.
    options.link.receive_queue_capacity = 1_000_000;
    Arc::new(RedisHubLifetimeManager::new(options).unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("signalr-redis-bench-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let external = std::env::var("BACKPLANE_BENCH_REDIS").ok();
    let mut redis = Command::new(if external.is_some() { "true" } else { "redis-server" })
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let target = external.unwrap_or_else(|| format!("127.0.0.1:{port}"));
    let a = manager(&target);
    let b = manager(&target);
    assert!(a.wait_until_healthy(Duration::from_secs(20)).await);
    assert!(b.wait_until_healthy(Duration::from_secs(20)).await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.on_connected(Arc::new(Probe { id: "probe".into(), protocol: JsonHubProtocol, frames: tx.clone() })).await.unwrap();
    let origin = Instant::now();

    // 1. Latency, paced.
    let count = 5_000u64;
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < count {
            let (at, frame) = rx.recv().await.unwrap();
            let text = std::str::from_utf8(&frame[..frame.len() - 1]).unwrap();
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let sent = value["arguments"][0].as_u64().unwrap();
            let micros = at.duration_since(origin).as_micros() as u64 - sent;
            histogram.record(micros).unwrap();
            got += 1;
        }
        (histogram, rx)
    });
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..count {
        tick.tick().await;
        let sent = origin.elapsed().as_micros() as u64;
        a.send_all(invocation("Tick", vec![Value::Json(json!(sent))])).await.unwrap();
    }
    let (histogram, mut rx) = receiver.await.unwrap();
    println!(
        "cross-node latency, {count} broadcasts at 1,000/s: p50 {} µs, p99 {} µs, max {} µs",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );

    // 2. Publish rate: as fast as the node accepts, until the other node received them all.
    let total = 200_000u64;
    let message = invocation("Tick", vec![Value::Json(json!("x".repeat(60)))]);
    let before = a.counters().published;
    let start = Instant::now();
    for _ in 0..total {
        a.send_all(message.clone()).await.unwrap();
    }
    let queued_in = start.elapsed();
    let mut got = 0;
    while got < total {
        rx.recv().await.unwrap();
        got += 1;
    }
    let elapsed = start.elapsed();
    println!(
        "publish rate: {total} broadcasts (~100-byte envelopes) accepted in {:.2} s, all delivered to the other node in {:.2} s: {:.0} messages/s end to end",
        queued_in.as_secs_f64(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "published {} , dropped {}, receive_dropped {}",
        a.counters().published - before,
        a.counters().dropped,
        b.counters().receive_dropped
    );

    // 3. The same, spread over 64 channels: one per connection of B.
    let ids: Vec<String> = (0..64).map(|i| format!("spread-{i}")).collect();
    for id in &ids {
        b.on_connected(Arc::new(Probe { id: id.clone(), protocol: JsonHubProtocol, frames: tx.clone() })).await.unwrap();
    }
    let start = Instant::now();
    for n in 0..total {
        a.send_connection(&ids[(n % 64) as usize], message.clone()).await.unwrap();
    }
    let mut got = 0;
    while got < total {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(received) => {
                received.unwrap();
                got += 1;
            }
            Err(_) => {
                println!("stalled at {got} of {total}: sender {:?}, receiver {:?}", a.counters(), b.counters());
                println!("receiver status {:?}", b.status());
            }
        }
    }
    let elapsed = start.elapsed();
    println!(
        "publish rate over 64 channels: {total} sends to 64 connections of the other node delivered in {:.2} s: {:.0} messages/s end to end",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
