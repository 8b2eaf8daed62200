//! Test harness: a real `redis-server` on a free port in a temp dir, and hub-layer connections
//! that record what the lifetime manager hands them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use signalr::hub::lifetime::{HubConnection, SendError};
use signalr_protocol::{HubProtocol, JsonHubProtocol, MessagePackHubProtocol};
use signalr_redis::{RedisBackplaneOptions, RedisConfig, RedisHubLifetimeManager};
use tokio::sync::mpsc;

pub const HUB: &str = "Diquis.Infrastructure.Hubs.NotificationHub";

/// How long any awaited event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A redis-server owned by one test; SIGKILLed on drop.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("signalr-redis-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers.
    pub async fn start() -> Self {
        let mut server = Self::configured(free_port(), Vec::new());
        server.spawn();
        server.wait_ready().await;
        server
    }

    /// A server for `port` with extra arguments, not started yet.
    pub fn configured(port: u16, extra: Vec<String>) -> Self {
        Self { port, dir: temp_dir("redis"), extra, child: None }
    }

    /// Starts the process (again) on the same port.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(command.spawn().expect("redis-server must be installed (apt-get install redis-server)"));
    }

    /// Polls until the server accepts a PING (plain TCP servers only).
    pub async fn wait_ready(&self) {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
        test_support::wait_for("redis-server to answer PING", || async {
            let mut connection = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING").query_async::<String>(&mut connection).await.ok()
        })
        .await;
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the process: SIGSTOP makes a Redis that keeps its
    /// connections open but answers nothing, as a stalled server or a network partition.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server is not running").id();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// A raw client for publishing arbitrary bytes.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    pub fn connection_string(&self, prefix: &str) -> String {
        format!("127.0.0.1:{},channelPrefix={prefix}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Options for a test node: quick reconnects, everything else default.
pub fn options(connection_string: &str) -> RedisBackplaneOptions {
    let mut options = RedisBackplaneOptions::new(RedisConfig::parse(connection_string).unwrap(), HUB);
    options.link.reconnect_min_delay = Duration::from_millis(20);
    options.link.reconnect_max_delay = Duration::from_millis(300);
    options
}

/// A healthy node on `redis`.
pub async fn node(redis: &RedisServer, prefix: &str) -> Arc<RedisHubLifetimeManager> {
    let manager = Arc::new(RedisHubLifetimeManager::new(options(&redis.connection_string(prefix))).unwrap());
    assert!(manager.wait_until_healthy(DEADLINE).await, "node did not become healthy: {:?}", manager.status());
    manager
}

/// A connection as the hub layer would hand it to the manager; frames land in a channel.
#[derive(Debug)]
pub struct TestConnection {
    id: String,
    user: Option<String>,
    protocol: Arc<dyn HubProtocol>,
    frames: mpsc::UnboundedSender<Bytes>,
}

impl HubConnection for TestConnection {
    fn connection_id(&self) -> &str {
        &self.id
    }
    fn user_identifier(&self) -> Option<&str> {
        self.user.as_deref()
    }
    fn protocol(&self) -> &dyn HubProtocol {
        self.protocol.as_ref()
    }
    fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
        self.frames.send(frame).map_err(|_| SendError::Closed)
    }
    fn abort(&self) {}
}

/// Receives what a [`TestConnection`] got.
pub struct Inbox {
    pub id: String,
    rx: mpsc::UnboundedReceiver<Bytes>,
}

impl Inbox {
    /// The next frame, failing the test after [`DEADLINE`].
    pub async fn next(&mut self) -> Bytes {
        tokio::time::timeout(DEADLINE, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("connection {} received nothing in time", self.id))
            .expect("connection channel closed")
    }

    /// The next JSON frame as text, without the record separator.
    pub async fn next_text(&mut self) -> String {
        let frame = self.next().await;
        assert_eq!(frame.last(), Some(&0x1e), "JSON frames end with the record separator");
        String::from_utf8(frame[..frame.len() - 1].to_vec()).unwrap()
    }

    /// Waits for the next frame whose text contains `needle`, skipping others.
    pub async fn until(&mut self, needle: &str) -> String {
        loop {
            let text = self.next_text().await;
            if text.contains(needle) {
                return text;
            }
        }
    }

    /// Whether nothing is waiting right now (used only after a later marker arrived).
    pub fn is_empty(&mut self) -> bool {
        self.rx.try_recv().is_err()
    }
}

/// A JSON connection with an optional user.
pub fn connection(id: &str, user: Option<&str>) -> (Arc<dyn HubConnection>, Inbox) {
    connection_with(id, user, Arc::new(JsonHubProtocol))
}

/// A MessagePack connection.
pub fn msgpack_connection(id: &str) -> (Arc<dyn HubConnection>, Inbox) {
    connection_with(id, None, Arc::new(MessagePackHubProtocol))
}

fn connection_with(id: &str, user: Option<&str>, protocol: Arc<dyn HubProtocol>) -> (Arc<dyn HubConnection>, Inbox) {
    let (frames, rx) = mpsc::unbounded_channel();
    let connection = TestConnection { id: id.into(), user: user.map(Into::into), protocol, frames };
    (Arc::new(connection), Inbox { id: id.into(), rx })
}

#[allow(unused_imports)] // not every test binary polls
pub use test_support::eventually;
