//! Hubs: typed methods, the per-connection dispatcher, lifetime managers and the hub context.
//!
//! * [`builder`]: [`Hub`] and [`HubBuilder`], where methods are registered by name.
//! * [`args`]: binding wire arguments to tuples of serde types ([`args::HubArgs`]).
//! * [`error`]: [`HubError`] and the exact .NET error texts.
//! * [`options`]: [`HubOptions`] with .NET's defaults.
//! * [`context`]: [`HubCallerContext`] (who is calling) and [`HubCallContext`] (one invocation).
//! * [`clients`]: [`HubClients`], [`ClientProxy`], [`GroupManager`] and [`HubContext`].
//! * [`upload`]: [`ClientStream`], client-to-server streams.
//! * [`connection`]: the per-connection state shared with lifetime managers.
//! * [`dispatcher`]: the connection loop (handshake, parsing, dispatch).
//! * [`invocation`]: running hub methods (parallel limit, streams, completions).
//! * [`heartbeat`]: one task per hub for pings, timeouts, handshake deadlines and acks.
//! * [`reconnect`]: the stateful-reconnect replay buffer.
//! * [`lifetime`]: the [`HubLifetimeManager`] seam; [`default_lifetime`]: the in-process one.
//! * [`service`]: [`HubService`], the axum integration.

pub mod args;
pub mod builder;
pub mod clients;
pub mod connection;
pub mod context;
pub mod default_lifetime;
pub mod dispatcher;
pub mod error;
pub mod heartbeat;
pub mod invocation;
pub mod lifetime;
pub mod options;
pub mod reconnect;
pub mod service;
pub mod upload;

pub use builder::{Hub, HubBuilder};
pub use clients::{ClientProxy, GroupManager, HubCallerClients, HubClients, HubContext, SingleClientProxy};
pub use connection::HubConnectionState;
pub use context::{HubCallContext, HubCallerContext};
pub use default_lifetime::DefaultHubLifetimeManager;
pub use error::HubError;
pub use lifetime::{
    ClientResultsManager, Fanout, HubConnection, HubConnectionStore, HubLifetimeManager, LifetimeError, SendError, SerializedMessage,
};
pub use options::HubOptions;
pub use service::HubService;
pub use upload::{ClientStream, UploadStreams};
