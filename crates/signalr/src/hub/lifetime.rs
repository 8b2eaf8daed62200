//! The lifetime-manager seam: where hub sends leave the process (or don't).
//!
//! Like ASP.NET Core's `HubLifetimeManager<THub>`: the hub layer hands every send, group change
//! and client-result call to a [`HubLifetimeManager`]. [`crate::hub::DefaultHubLifetimeManager`]
//! delivers within this process; `signalr_redis::RedisHubLifetimeManager` delivers through Redis
//! to every node. Hub code never knows which one it runs on.
//!
//! The seam lives in the `signalr-core` crate, which a backplane depends on without the HTTP
//! side; it is re-exported here unchanged (docs/decisions/0015-lifetime-manager-core.md).

pub use signalr_core::{
    CONNECTION_DISCONNECTED, ClientResultsManager, Fanout, HubConnection, HubConnectionStore, HubLifetimeManager, LifetimeError,
    LocalConnections, PendingClientResult, Removed, SendError, SerializedMessage, StoreRead, StoreWrite, excluding,
};
