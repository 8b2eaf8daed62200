//! Real processes for the tests: a `redis-server` on a free port, and the `diquis` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A redis-server owned by one test; killed on drop.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`RedisServer::start`] with more redis-server arguments.
    pub async fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let server = Self { port, dir, child };
        test_support::wait_for("redis-server to answer PING", || async { server.query::<String>(&["PING"]).await.ok() }).await;
        server
    }

    /// The StackExchange.Redis connection string.
    pub fn connection_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs one command.
    pub async fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await
    }

    /// The directory the server runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl RedisServer {
    /// SIGKILLs the server (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of three primaries with a replica each (`redis-cli --cluster create`),
/// serving every slot; killed on drop.
pub struct RedisCluster {
    /// Its servers.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the six servers, creates the cluster and waits until every node serves every slot.
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-replica-validity-factor",
                    "0",
                ])
                .await,
            );
        }
        let status = Command::new("redis-cli")
            .args(["-p", &nodes[0].port.to_string(), "--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli must be installed");
        assert!(status.success(), "redis-cli --cluster create");
        let cluster = Self { nodes };
        test_support::wait_for("the cluster to come up", || async {
            let mut ready = true;
            for node in &cluster.nodes {
                let info: String = node.query(&["CLUSTER", "INFO"]).await.unwrap_or_default();
                ready &= info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384");
            }
            (ready && cluster.primary_ports().await.len() == 3).then_some(())
        })
        .await;
        cluster
    }

    /// The StackExchange.Redis connection string (every node).
    pub fn connection_string(&self) -> String {
        self.nodes.iter().map(RedisServer::connection_string).collect::<Vec<_>>().join(",")
    }

    /// `CLUSTER SLOTS` from a running node: (first slot, last slot, primary's port).
    pub async fn slots(&self) -> Vec<(i64, i64, u16)> {
        for node in &self.nodes {
            let Ok(reply) = node.query::<Vec<Vec<redis::Value>>>(&["CLUSTER", "SLOTS"]).await else { continue };
            return reply
                .iter()
                .filter_map(|range| match (range.first(), range.get(1), range.get(2)) {
                    (Some(redis::Value::Int(start)), Some(redis::Value::Int(end)), Some(redis::Value::Array(primary))) => {
                        match primary.get(1) {
                            Some(redis::Value::Int(port)) => Some((*start, *end, *port as u16)),
                            _ => None,
                        }
                    }
                    _ => None,
                })
                .collect();
        }
        Vec::new()
    }

    async fn primary_ports(&self) -> std::collections::HashSet<u16> {
        self.slots().await.into_iter().map(|(_, _, port)| port).collect()
    }

    /// The index in `nodes` of the primary serving `key`'s slot now.
    pub async fn primary_for(&self, key: &str) -> Option<usize> {
        let mut slot = None;
        for node in &self.nodes {
            if let Ok(answer) = node.query::<i64>(&["CLUSTER", "KEYSLOT", key]).await {
                slot = Some(answer);
                break;
            }
        }
        let slot = slot?;
        let port = self.slots().await.into_iter().find(|(start, end, _)| *start <= slot && slot <= *end)?.2;
        self.nodes.iter().position(|n| n.port == port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `diquis` binary; killed on drop.
pub struct Node {
    /// `http://127.0.0.1:port`.
    pub url: String,
    child: Child,
}

impl Node {
    /// Starts `diquis <args>` in `dir` on a free port and waits for "Now listening on".
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_diquis"))
            .current_dir(dir)
            .args(args)
            .args(["--urls", "http://127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("'Now listening on' before stdout closes").unwrap();
            if let Some(url) = line.strip_prefix("Now listening on: ") {
                break url.to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self { url, child }
    }

    /// Stops the process (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-15").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A path's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
