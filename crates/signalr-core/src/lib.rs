//! The lifetime-manager seam of the `signalr` crate, on its own so that a backplane depends on it
//! and not on the HTTP side (axum, transports, the dispatcher).
//!
//! * [`HubLifetimeManager`]: where hub sends, group changes and client results go. Every method
//!   but two has a default that works on this node only; an implementor supplies its
//!   [`HubConnectionStore`] and [`ClientResultsManager`] and overrides what must leave the
//!   process (a backplane: the sends and the group changes of other nodes' connections).
//! * [`HubConnectionStore`]: this node's connections by id, groups and users (ASP.NET Core's
//!   `HubConnectionStore` plus its group and user lists).
//! * [`ClientResultsManager`]: pending client-result invocations (ASP.NET Core's
//!   `ClientResultsManager`).
//! * [`Fanout`]: one message to many connections, encoded once per protocol.
//! * [`HubConnection`] and [`SerializedMessage`]: a connection and a message as a lifetime
//!   manager sees them.
//!
//! `signalr` re-exports all of it under `signalr::hub::lifetime`; docs/decisions/0015 says why
//! the seam is cut here.

#![warn(missing_docs)]

mod connection;
mod error;
mod fanout;
#[doc(hidden)]
pub mod hint;
mod lifetime;
mod message;
mod results;
mod store;

pub use connection::HubConnection;
pub use error::{LifetimeError, SendError};
pub use fanout::Fanout;
pub use lifetime::HubLifetimeManager;
pub use message::SerializedMessage;
pub use results::{CONNECTION_DISCONNECTED, ClientResultsManager, PendingClientResult};
pub use store::{HubConnectionStore, LocalConnections, Removed, StoreRead, StoreWrite, excluding};
