#![warn(missing_docs)]
//! A Redis backplane for the `signalr` crate, byte-compatible with ASP.NET Core's
//! `Microsoft.AspNetCore.SignalR.StackExchangeRedis`: Rust and .NET nodes sharing one Redis and
//! one channel prefix deliver each other's messages.
//!
//! * [`RedisHubLifetimeManager`]: the hub lifetime manager (all, groups, users, connections,
//!   group changes across nodes with acks, client results across nodes).
//! * [`RedisPublisher`]: sending from a process that hosts no hub (a jobs process).
//! * [`RedisConfig`]: StackExchange.Redis connection strings and `redis://` URLs.
//! * [`protocol`] and [`channels`]: the pure wire format.
//!
//! Better than the .NET backplane where it is weak: a node starts and serves its local clients
//! while Redis is away ([`BackplaneStatus`] reports Unhealthy until it is back), publishes made
//! during an outage wait in a bounded queue and are sent on reconnect, every subscription is
//! re-issued on reconnect, and [`BackplaneCounters`] expose what happened.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use signalr_redis::{RedisBackplaneOptions, RedisHubLifetimeManager};
//!
//! let options = RedisBackplaneOptions::from_connection_string(
//!     "localhost:6379,channelPrefix=Diquis",
//!     "Diquis.Infrastructure.Hubs.NotificationHub",
//! )?;
//! let manager = Arc::new(RedisHubLifetimeManager::new(options)?);
//! println!("backplane healthy: {}", manager.status().is_healthy());
//! # Ok(()) }
//! ```

pub mod app_channel;
pub mod channels;
pub mod cluster;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod manager;
pub mod protocol;
pub mod publisher;

pub use app_channel::AppChannel;
pub use channels::RedisChannels;
pub use config::{ConfigError, Endpoint, RedisConfig};
pub use link::{BackplaneCounters, BackplaneFailure, BackplaneStatus, Health, LinkOptions};
pub use manager::{BackplaneError, ConnectError, Recipients, RedisBackplaneOptions, RedisHubLifetimeManager, serialize_invocation};
pub use publisher::{RedisPublisher, invocation};
