//! Sends one invocation to a hub's clients on every node through Redis, from a process that
//! hosts no hub: the role of a jobs process's `IHubContext` (used by the Node backplane suite).
//!
//! ```text
//! cargo run --release -p signalr-redis --example publish -- \
//!     --redis 127.0.0.1:6390 --channel-prefix Test --hub SignalRTestServer.TestHub \
//!     --target Message --arg hello [--arg more] [--group g | --user u | --connection id]
//! ```
//! Waits for Redis to be reachable (`--wait-ms`, default 10,000), publishes, waits until the
//! publish left the queue, prints `published` and exits 0; exits 1 with the reason otherwise.

use std::time::Duration;

use signalr_protocol::Value;
use signalr_redis::{RedisBackplaneOptions, RedisPublisher};

/// Who receives the invocation.
enum Audience {
    All,
    Group(String),
    User(String),
    Connection(String),
}

struct Args {
    redis: String,
    channel_prefix: Option<String>,
    sharded: bool,
    hub: String,
    target: String,
    arguments: Vec<String>,
    audience: Audience,
    wait: Duration,
}

const USAGE: &str = "usage: publish --redis <connection string> [--channel-prefix <p>] [--sharded] --hub <wire name> \
--target <method> [--arg <string>]... [--group <g> | --user <u> | --connection <id>] [--wait-ms <ms>]";

fn parse_args() -> Result<Args, String> {
    let mut redis = None;
    let mut channel_prefix = None;
    let mut sharded = false;
    let mut hub = None;
    let mut target = None;
    let mut arguments = Vec::new();
    let mut audience = Audience::All;
    let mut wait = Duration::from_secs(10);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--sharded" {
            sharded = true;
            continue;
        }
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--redis" => redis = Some(value()?),
            "--channel-prefix" => channel_prefix = Some(value()?),
            "--hub" => hub = Some(value()?),
            "--target" => target = Some(value()?),
            "--arg" => arguments.push(value()?),
            "--group" => audience = Audience::Group(value()?),
            "--user" => audience = Audience::User(value()?),
            "--connection" => audience = Audience::Connection(value()?),
            "--wait-ms" => {
                let text = value()?;
                let ms = text.parse::<u64>().map_err(|_| format!("--wait-ms: '{text}' is not a number of milliseconds"))?;
                wait = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(Args {
        redis: redis.ok_or_else(|| format!("--redis is required\n{USAGE}"))?,
        channel_prefix,
        sharded,
        hub: hub.ok_or_else(|| format!("--hub is required\n{USAGE}"))?,
        target: target.ok_or_else(|| format!("--target is required\n{USAGE}"))?,
        arguments,
        audience,
        wait,
    })
}

async fn run(args: Args) -> Result<(), String> {
    let mut options = RedisBackplaneOptions::from_connection_string(&args.redis, args.hub.clone()).map_err(|e| format!("--redis: {e}"))?;
    if let Some(prefix) = args.channel_prefix {
        options = options.with_channel_prefix(prefix);
    }
    options = options.with_sharded_pub_sub(args.sharded);
    let publisher = RedisPublisher::new(options).map_err(|e| e.to_string())?;
    if !publisher.manager().wait_until_healthy(args.wait).await {
        return Err(format!("Redis not reachable: {:?}", publisher.status().last_error));
    }
    let arguments: Vec<Value> = args.arguments.into_iter().map(|a| Value::Json(serde_json::Value::String(a))).collect();
    let target = args.target.as_str();
    let sent = match &args.audience {
        Audience::All => publisher.send_all(target, arguments).await,
        Audience::Group(group) => publisher.send_group(group, target, arguments).await,
        Audience::User(user) => publisher.send_user(user, target, arguments).await,
        Audience::Connection(id) => publisher.send_connection(id, target, arguments).await,
    };
    sent.map_err(|e| format!("send failed: {e}"))?;
    // Publishes are queued and pipelined in the background: wait until ours reached Redis.
    let deadline = tokio::time::Instant::now() + args.wait;
    loop {
        let counters = publisher.counters();
        if counters.published >= 1 && counters.queued == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("the message was not published in time ({counters:?})"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("published");
    Ok(())
}

#[tokio::main]
async fn main() {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        eprintln!("publish: {error}");
        std::process::exit(1);
    }
}
