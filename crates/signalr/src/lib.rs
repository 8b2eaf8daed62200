//! The hub layer of an ASP.NET Core SignalR compatible server, on tokio and axum.
//!
//! Layers (see `docs/architecture.md`): `signalr-protocol` (codecs) → `signalr-connections`
//! (negotiate and transports) → this crate (typed hubs, dispatcher, lifetime managers, hub
//! context, axum mapping) → a backplane such as `signalr-redis` → the application.
//!
//! ```no_run
//! use signalr::{Hub, HubError, HubOptions, HubService, HubCallContext};
//! use signalr_connections::HttpConnectionOptions;
//!
//! # async fn run() {
//! let hub = Hub::builder("Chat")
//!     .method("Echo", |_ctx: HubCallContext, (text,): (String,)| async move { Ok::<_, HubError>(text) })
//!     .method("Broadcast", |ctx: HubCallContext, (text,): (String,)| async move {
//!         ctx.clients().all().send("Message", (text,)).await?;
//!         Ok::<_, HubError>(())
//!     })
//!     .build();
//! let service = HubService::new(hub, HubOptions::default());
//! let context = service.context(); // send from anywhere
//! let app = service.router("/chat", HttpConnectionOptions::default());
//! # let _ = (context, app);
//! # }
//! ```

#![warn(missing_docs)]

pub mod hub;

pub use hub::args::{HubArgs, OutgoingArgs};
pub use hub::service::map_hub;
pub use hub::{
    ClientProxy, ClientStream, DefaultHubLifetimeManager, GroupManager, Hub, HubBuilder, HubCallContext, HubCallerClients,
    HubCallerContext, HubClients, HubConnection, HubContext, HubError, HubLifetimeManager, HubOptions, HubService, LifetimeError,
    SendError, SerializedMessage, SingleClientProxy, UploadStreams,
};
