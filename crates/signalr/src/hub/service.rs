//! [`HubService`]: a hub with its options and lifetime manager, mapped onto axum routes.
//!
//! One service per hub type, like .NET's `AddSignalR` + `MapHub<T>`: it can be mapped at
//! several paths with different connection options (e.g. `/testhub` and
//! `/testhub-nowebsockets`), and they share one lifetime manager and one [`HubContext`].

use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use parking_lot::Mutex;
use signalr_connections::HttpConnectionOptions;
use signalr_protocol::{HubMessage, HubProtocol};
use tokio::sync::Notify;

use super::builder::Hub;
use super::clients::HubContext;
use super::default_lifetime::DefaultHubLifetimeManager;
use super::dispatcher::HubConnectionHandler;
use super::heartbeat::Heartbeat;
use super::lifetime::HubLifetimeManager;
use super::options::HubOptions;

/// What every connection of a hub shares.
pub(crate) struct HubShared {
    pub(crate) hub: Hub,
    pub(crate) options: HubOptions,
    pub(crate) lifetime: Arc<dyn HubLifetimeManager>,
    pub(crate) heartbeat: Heartbeat,
    /// Woken when a queued invocation starts, for receivers waiting on a full queue.
    pub(crate) queue_space: Notify,
    /// The Ping frame per protocol name, encoded once.
    ping_frames: Mutex<Vec<(&'static str, Bytes)>>,
}

impl HubShared {
    /// The encoded Ping of `protocol`, cached.
    pub(crate) fn ping_frame(&self, protocol: &dyn HubProtocol) -> Option<Bytes> {
        let name = protocol.name();
        let mut cache = self.ping_frames.lock();
        if let Some((_, frame)) = cache.iter().find(|(n, _)| *n == name) {
            return Some(frame.clone());
        }
        let mut out = Vec::with_capacity(16);
        protocol.write_message(&HubMessage::Ping, &mut out).ok()?;
        let frame = Bytes::from(out);
        cache.push((name, frame.clone()));
        Some(frame)
    }

    /// The protocol offered under the handshake name `name`.
    pub(crate) fn protocol(&self, name: &str) -> Option<&Arc<dyn HubProtocol>> {
        self.options.protocols.iter().find(|p| p.name() == name)
    }
}

/// A hub ready to serve: its methods, options and lifetime manager. Cheap to clone.
#[derive(Clone)]
pub struct HubService {
    shared: Arc<HubShared>,
}

impl std::fmt::Debug for HubService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubService").field("hub", &self.shared.hub).field("options", &self.shared.options).finish()
    }
}

impl HubService {
    /// Serves `hub` with `options`; the lifetime manager is `options.lifetime_manager`, or an
    /// in-process [`DefaultHubLifetimeManager`] when none is set.
    pub fn new(hub: Hub, options: HubOptions) -> Self {
        let lifetime =
            options.lifetime_manager.clone().unwrap_or_else(|| Arc::new(DefaultHubLifetimeManager::new()) as Arc<dyn HubLifetimeManager>);
        let heartbeat = Heartbeat::new(&[
            options.keep_alive_interval,
            options.client_timeout_interval,
            options.handshake_timeout,
            std::time::Duration::from_secs(1),
        ]);
        Self {
            shared: Arc::new(HubShared {
                hub,
                options,
                lifetime,
                heartbeat,
                queue_space: Notify::new(),
                ping_frames: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A handle for sending to this hub's clients from anywhere (background tasks, HTTP
    /// handlers). Clone it freely.
    pub fn context(&self) -> HubContext {
        HubContext::new(self.shared.lifetime.clone())
    }

    /// The lifetime manager in use.
    pub fn lifetime_manager(&self) -> &Arc<dyn HubLifetimeManager> {
        &self.shared.lifetime
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// The connection handler of this hub, for mounting with
    /// `signalr_connections::endpoint` yourself.
    pub fn connection_handler(&self) -> Arc<dyn signalr_connections::ConnectionHandler> {
        Arc::new(HubConnectionHandler::new(self.shared.clone()))
    }

    /// An axum router serving the hub at `path` (negotiate, WebSockets, SSE, long polling),
    /// with per-endpoint connection options. Merge it into your application router; wrap the
    /// whole application in `signalr_connections::case_insensitive_paths` for .NET-like routing.
    pub fn router(&self, path: &str, connection_options: HttpConnectionOptions) -> Router {
        let endpoint = signalr_connections::endpoint(connection_options, self.connection_handler());
        Router::new().nest(path, endpoint)
    }
}

/// Maps `hub` at `path` with `options` and default connection options; returns the router and
/// the hub's [`HubContext`].
pub fn map_hub(path: &str, hub: Hub, options: HubOptions) -> (Router, HubContext) {
    let service = HubService::new(hub, options);
    (service.router(path, HttpConnectionOptions::default()), service.context())
}
