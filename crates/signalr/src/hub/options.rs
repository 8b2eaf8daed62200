//! [`HubOptions`]: the per-hub settings, with ASP.NET Core's defaults (`HubOptions`,
//! `HubOptionsSetup`).

use std::sync::Arc;
use std::time::Duration;

use signalr_protocol::{HubProtocol, JsonHubProtocol, MessagePackHubProtocol};

use super::lifetime::HubLifetimeManager;

/// Settings of one hub. [`Default`] gives .NET's defaults.
#[derive(Clone)]
pub struct HubOptions {
    /// How often the server pings a client (WebSockets and SSE only). Default 15 s.
    pub keep_alive_interval: Duration,
    /// How long without any message from a client (after its first ping) before the server
    /// closes the connection. Default 30 s.
    pub client_timeout_interval: Duration,
    /// How long a client may take to complete its handshake. Default 15 s.
    pub handshake_timeout: Duration,
    /// The largest hub message (and handshake) accepted, in bytes. Default 32 KiB.
    pub maximum_receive_message_size: usize,
    /// How many non-streaming invocations of one client run at a time; the others wait in
    /// order. Default 1.
    pub maximum_parallel_invocations_per_client: usize,
    /// How many items of one client-to-server stream are buffered before the server stops
    /// reading. Default 10.
    pub stream_buffer_capacity: usize,
    /// Whether error details (exception type and message) reach clients. Default false.
    pub enable_detailed_errors: bool,
    /// Bytes of unacknowledged messages kept for stateful reconnect. Default 100,000.
    pub stateful_reconnect_buffer_size: usize,
    /// The hub protocols offered, by handshake name. Default: `json` and `messagepack`.
    pub protocols: Vec<Arc<dyn HubProtocol>>,
    /// Where sends, groups and client results go. `None` (default) uses an in-process
    /// [`crate::DefaultHubLifetimeManager`].
    pub lifetime_manager: Option<Arc<dyn HubLifetimeManager>>,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("client_timeout_interval", &self.client_timeout_interval)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("maximum_receive_message_size", &self.maximum_receive_message_size)
            .field("maximum_parallel_invocations_per_client", &self.maximum_parallel_invocations_per_client)
            .field("stream_buffer_capacity", &self.stream_buffer_capacity)
            .field("enable_detailed_errors", &self.enable_detailed_errors)
            .field("stateful_reconnect_buffer_size", &self.stateful_reconnect_buffer_size)
            .field("protocols", &self.protocols.iter().map(|p| p.name()).collect::<Vec<_>>())
            .field("lifetime_manager", &self.lifetime_manager.is_some())
            .finish()
    }
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            keep_alive_interval: Duration::from_secs(15),
            client_timeout_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            maximum_receive_message_size: 32 * 1024,
            maximum_parallel_invocations_per_client: 1,
            stream_buffer_capacity: 10,
            enable_detailed_errors: false,
            stateful_reconnect_buffer_size: 100_000,
            protocols: vec![Arc::new(JsonHubProtocol), Arc::new(MessagePackHubProtocol)],
            lifetime_manager: None,
        }
    }
}

impl HubOptions {
    /// Same as [`Default::default`].
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the keep-alive (server ping) interval.
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = interval;
        self
    }
    /// Sets the client timeout.
    pub fn client_timeout_interval(mut self, interval: Duration) -> Self {
        self.client_timeout_interval = interval;
        self
    }
    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
    /// Sets the largest accepted message in bytes.
    pub fn maximum_receive_message_size(mut self, bytes: usize) -> Self {
        self.maximum_receive_message_size = bytes;
        self
    }
    /// Sets how many non-streaming invocations of one client run at a time (at least 1).
    pub fn maximum_parallel_invocations_per_client(mut self, count: usize) -> Self {
        self.maximum_parallel_invocations_per_client = count.max(1);
        self
    }
    /// Sets how many items of an upload stream are buffered (at least 1).
    pub fn stream_buffer_capacity(mut self, items: usize) -> Self {
        self.stream_buffer_capacity = items.max(1);
        self
    }
    /// Turns detailed errors on or off.
    pub fn enable_detailed_errors(mut self, enable: bool) -> Self {
        self.enable_detailed_errors = enable;
        self
    }
    /// Sets the stateful-reconnect replay buffer limit in bytes.
    pub fn stateful_reconnect_buffer_size(mut self, bytes: usize) -> Self {
        self.stateful_reconnect_buffer_size = bytes;
        self
    }
    /// Replaces the offered protocols.
    pub fn protocols(mut self, protocols: Vec<Arc<dyn HubProtocol>>) -> Self {
        self.protocols = protocols;
        self
    }
    /// Uses this lifetime manager (e.g. a Redis backplane) instead of the in-process one.
    pub fn lifetime_manager(mut self, manager: Arc<dyn HubLifetimeManager>) -> Self {
        self.lifetime_manager = Some(manager);
        self
    }
}
