//! `signalr-testserver`: serves the functional-test application.
//!
//! ```text
//! signalr-testserver --urls http://127.0.0.1:0 [--redis <connection string>] [--channel-prefix <prefix>]
//!     [--request-headers-timeout <s>] [--keep-alive-timeout <s>] [--max-request-line-size <bytes>]
//!     [--max-request-headers-total-size <bytes>] [--max-concurrent-connections <n>]
//!     [--min-request-body-data-rate <bytes/s>] [--min-request-body-grace-period <s>]
//! ```
//! The limits are Kestrel's (`Kestrel:Limits:*` in Diquis), with its defaults.
//! Prints `Now listening on: http://127.0.0.1:<port>` once it accepts connections.

use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use signalr::HubLifetimeManager;
use signalr_connections::server::{HttpLimits, MinDataRate};
use signalr_testserver::AppArgs;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "signalr-testserver", about = "The SignalR functional-test server (TestHub and friends)")]
struct Args {
    /// The address to listen on, `http://127.0.0.1:PORT` (port 0 picks a free one).
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    urls: String,
    /// Use the Redis backplane with this StackExchange.Redis-style connection string.
    #[arg(long)]
    redis: Option<String>,
    /// The backplane channel prefix.
    #[arg(long = "channel-prefix")]
    channel_prefix: Option<String>,
    /// Sharded Pub/Sub on the backplane (`SSUBSCRIBE`/`SPUBLISH`, Redis 7+).
    #[arg(long = "redis-sharded")]
    redis_sharded: bool,
    /// Kestrel's `RequestHeadersTimeout` in seconds (fractions allowed; default 30).
    #[arg(long = "request-headers-timeout", value_parser = seconds)]
    request_headers_timeout: Option<std::time::Duration>,
    /// Kestrel's `KeepAliveTimeout` in seconds (fractions allowed; default 130).
    #[arg(long = "keep-alive-timeout", value_parser = seconds)]
    keep_alive_timeout: Option<std::time::Duration>,
    /// Kestrel's `MaxRequestLineSize` in bytes (default 8192).
    #[arg(long = "max-request-line-size")]
    max_request_line_size: Option<usize>,
    /// Kestrel's `MaxRequestHeadersTotalSize` in bytes (default 32768).
    #[arg(long = "max-request-headers-total-size")]
    max_request_headers_total_size: Option<usize>,
    /// Kestrel's `MaxConcurrentConnections` (default: no limit).
    #[arg(long = "max-concurrent-connections")]
    max_concurrent_connections: Option<usize>,
    /// Kestrel's `MinRequestBodyDataRate` in bytes per second (default 240; 0 turns it off).
    #[arg(long = "min-request-body-data-rate", value_parser = bytes_per_second)]
    min_request_body_data_rate: Option<f64>,
    /// The grace period of `MinRequestBodyDataRate` in seconds (fractions allowed; default 5).
    #[arg(long = "min-request-body-grace-period", value_parser = seconds)]
    min_request_body_grace_period: Option<std::time::Duration>,
}

/// A finite rate of at least 0 bytes per second.
fn bytes_per_second(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|rate| rate.is_finite() && *rate >= 0.0)
        .ok_or_else(|| format!("'{text}' is not a number of bytes per second of at least 0"))
}

/// A positive number of seconds, e.g. `30` or `0.5`.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    let value: f64 = text.parse().map_err(|_| format!("'{text}' is not a number of seconds"))?;
    // NaN and negatives are refused along with zero.
    if value.is_nan() || value <= 0.0 {
        return Err(format!("'{text}' must be more than 0 seconds"));
    }
    std::time::Duration::try_from_secs_f64(value).map_err(|e| format!("'{text}': {e}"))
}

impl Args {
    /// The HTTP server's limits: Kestrel's defaults, overridden by the flags given.
    fn http_limits(&self) -> Result<HttpLimits, String> {
        let defaults = HttpLimits::default();
        let limits = HttpLimits {
            request_headers_timeout: self.request_headers_timeout.unwrap_or(defaults.request_headers_timeout),
            keep_alive_timeout: self.keep_alive_timeout.unwrap_or(defaults.keep_alive_timeout),
            max_request_line_size: self.max_request_line_size.unwrap_or(defaults.max_request_line_size),
            max_request_headers_total_size: self.max_request_headers_total_size.unwrap_or(defaults.max_request_headers_total_size),
            max_concurrent_connections: self.max_concurrent_connections,
            min_request_body_data_rate: match self.min_request_body_data_rate {
                Some(0.0) => None,
                rate => {
                    let default = MinDataRate::REQUEST_BODY_DEFAULT;
                    Some(MinDataRate {
                        bytes_per_second: rate.unwrap_or(default.bytes_per_second),
                        grace_period: self.min_request_body_grace_period.unwrap_or(default.grace_period),
                    })
                }
            },
        };
        limits.validate().map_err(|e| e.to_string())?;
        Ok(limits)
    }
}

/// Chooses `TestHub`'s lifetime manager: in-process, or the Redis backplane with `--redis`.
async fn lifetime_manager(args: &Args, hub_name: &str) -> Result<Option<Arc<dyn HubLifetimeManager>>, String> {
    let Some(connection_string) = &args.redis else {
        return Ok(None);
    };
    // ==== REDIS BACKPLANE: the signalr-redis owner fills this in ====
    // `--channel-prefix` overrides `channelPrefix=` of the connection string.
    let mut options =
        signalr_redis::RedisBackplaneOptions::from_connection_string(connection_string, hub_name).map_err(|e| format!("--redis: {e}"))?;
    if let Some(prefix) = &args.channel_prefix {
        options = options.with_channel_prefix(prefix.clone());
    }
    options = options.with_sharded_pub_sub(args.redis_sharded);
    let manager = signalr_redis::RedisHubLifetimeManager::new(options).map_err(|e| format!("--redis: {e}"))?;
    // Redis may still be away: the server starts anyway and the backplane reconnects.
    if !manager.wait_until_healthy(std::time::Duration::from_secs(5)).await {
        eprintln!("signalr-testserver: Redis backplane not reachable yet ({:?}); retrying in the background", manager.status().last_error);
    }
    Ok(Some(Arc::new(manager)))
    // ==== END REDIS BACKPLANE ====
}

/// `http://127.0.0.1:PORT` → `127.0.0.1:PORT`.
fn listen_address(urls: &str) -> Result<String, String> {
    let first = urls.split(';').next().unwrap_or_default().trim();
    let address =
        first.strip_prefix("http://").ok_or_else(|| format!("--urls must start with http:// (got '{first}')"))?.trim_end_matches('/');
    if address.is_empty() {
        return Err("--urls has no host:port".to_owned());
    }
    Ok(address.to_owned())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(error) = run(args).await {
        eprintln!("signalr-testserver: {error}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let address = listen_address(&args.urls)?;
    let limits = args.http_limits()?;
    let manager = lifetime_manager(&args, signalr_testserver::test_hub::TEST_HUB_NAME).await?;
    let app = signalr_testserver::build_app(AppArgs { test_hub_lifetime_manager: manager, hub_options: None });
    let listener = bind(&address).await.map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("Now listening on: http://{local}");
    let _ = std::io::stdout().flush();
    signalr_connections::server::serve(listener, app, limits, std::future::pending()).await.map_err(|e| format!("server failed: {e}"))
}

/// Binds with a listen backlog of 4096 (the kernel's `somaxconn` here): with the default, a
/// burst of connects overflows the queue and clients stall for a second on SYN retries.
async fn bind(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let address = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the address resolves to nothing"))?;
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}
