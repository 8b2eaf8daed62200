//! Command-line interface: one subcommand per scenario.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::frames::Protocol;

/// A SignalR load generator: opens many WebSocket connections (over several worker processes
/// and loopback source addresses), drives a scenario, and reports throughput, latency, loss
/// and the server's CPU and memory. Exits non-zero if a message is lost or a connection fails.
#[derive(Debug, Parser)]
#[command(name = "diquis-bench", version)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Hold N idle connections; report server RSS per connection.
    Idle(IdleArgs),
    /// Open N connections as fast as allowed; report connections per second.
    Connect(ConnectArgs),
    /// One sender calls SendToAll; every connection receives; deliveries/s and latency.
    Broadcast(BroadcastArgs),
    /// Every connection calls Echo and times the round trip.
    Echo(EchoArgs),
    /// Connections join small groups; one sender calls SendToGroup round robin.
    Group(GroupArgs),
    /// Receivers on several nodes sharing Redis, the sender on another node.
    CrossNode(CrossNodeArgs),
    /// Internal: a worker process (started by the bench itself).
    #[command(hide = true)]
    Worker,
}

/// Options of every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Hub URL(s), e.g. http://127.0.0.1:5000/testhub; several (repeat or comma-separate)
    /// spread connections round robin over nodes.
    #[arg(long = "url", required = true, value_delimiter = ',')]
    pub urls: Vec<String>,
    /// Receiving connections to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: usize,
    /// New connections per second over all workers (0: as fast as the concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
    /// Connection attempts in flight per worker.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// Worker processes (0: enough for --max-per-worker, and at least as many as CPUs).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Most sockets per worker process (the machine allows 20,000 open files per process).
    #[arg(long, default_value_t = 15_000)]
    pub max_per_worker: usize,
    /// Loopback source addresses 127.0.0.1… to use (0: enough for ~25,000 ports each).
    #[arg(long, default_value_t = 0)]
    pub source_addrs: usize,
    /// Hub protocol.
    #[arg(long, value_enum, default_value = "json")]
    pub protocol: Protocol,
    /// Connect the WebSocket directly, without the negotiate request.
    #[arg(long)]
    pub skip_negotiation: bool,
    /// Server process id(s) to sample RSS and CPU from (repeat or comma-separate; summed).
    #[arg(long = "server-pid", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Bound of the measured phase (hold time for idle), seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Give up on one connection attempt after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Wait this many seconds for the last deliveries after sending stops.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Seconds between the SignalR pings every connection sends.
    #[arg(long, default_value_t = 15.0)]
    pub ping_interval: f64,
    /// Read buffer, bytes: one per worker process, shared by its connections (a connection
    /// keeps only an incomplete frame between reads).
    #[arg(long, default_value_t = 64 * 1024)]
    pub read_buffer: usize,
    /// Microseconds each worker pauses between rounds of reads while measuring (0: none).
    /// What a network card's interrupt moderation does for a remote client: a socket is read
    /// less often, with more in it, instead of the worker being woken for every packet, which
    /// on loopback costs the load generator more CPU than the server spends. Adds at most this
    /// pause (plus the kernel's timer slack) to each measured latency.
    #[arg(long, default_value_t = 0)]
    pub read_pause_us: u64,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of the sending scenarios.
#[derive(Debug, Clone, Args)]
pub struct Traffic {
    /// Messages to send (0: until --duration ends).
    #[arg(long, default_value_t = 0)]
    pub messages: u64,
    /// Messages per second (0: as fast as --inflight allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Size of one delivered JSON `Message` invocation frame, bytes (the payload is padded).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Sender calls outstanding at most.
    #[arg(long, default_value_t = 16)]
    pub inflight: usize,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Seconds to wait after the last connection before reading the server's RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

/// `connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
}

/// `broadcast`.
#[derive(Debug, Clone, Args)]
pub struct BroadcastArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Traffic options.
    #[command(flatten)]
    pub traffic: Traffic,
    /// The sender's hub URL (default: the first --url).
    #[arg(long)]
    pub sender_url: Option<String>,
}

/// `echo`.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Echo calls per second over all connections (0: each connection sends its next call
    /// as soon as the reply is in).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Size of the echoed string, bytes.
    #[arg(long, default_value_t = 52)]
    pub size: usize,
}

/// `group`.
#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Traffic options.
    #[command(flatten)]
    pub traffic: Traffic,
    /// Members per group.
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// The sender's hub URL (default: the first --url).
    #[arg(long)]
    pub sender_url: Option<String>,
}

/// `cross-node`.
#[derive(Debug, Clone, Args)]
pub struct CrossNodeArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Traffic options.
    #[command(flatten)]
    pub traffic: Traffic,
    /// The sender's hub URL: a node that holds none of the receivers.
    #[arg(long, required = true)]
    pub sender_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn urls_and_pids_accept_lists() {
        let cli = Cli::try_parse_from([
            "diquis-bench",
            "broadcast",
            "--url",
            "http://127.0.0.1:1/h,http://127.0.0.1:2/h",
            "--server-pid",
            "1,2",
            "--server-pid",
            "3",
            "-n",
            "5",
            "--protocol",
            "msgpack",
        ])
        .unwrap();
        let Scenario::Broadcast(args) = cli.scenario else { panic!("broadcast expected") };
        assert_eq!(args.common.urls.len(), 2);
        assert_eq!(args.common.server_pids, vec![1, 2, 3]);
        assert_eq!(args.common.protocol, Protocol::MessagePack);
        assert_eq!(args.traffic.size, 100);
    }

    #[test]
    fn cross_node_needs_a_sender_url_and_bad_values_are_refused() {
        assert!(Cli::try_parse_from(["diquis-bench", "cross-node", "--url", "http://127.0.0.1:1/h"]).is_err());
        assert!(Cli::try_parse_from(["diquis-bench", "idle"]).is_err());
        assert!(Cli::try_parse_from(["diquis-bench", "idle", "--url", "x", "-n", "many"]).is_err());
        assert!(Cli::try_parse_from(["diquis-bench", "idle", "--url", "x", "--protocol", "xml"]).is_err());
    }
}
