//! [`RedisPublisher`]: sends to a hub's clients from a process that hosts no hub, like
//! `IHubContext` in ASP.NET's jobs process.

use std::sync::Arc;

use signalr_core::{HubLifetimeManager, LifetimeError, SerializedMessage};
use signalr_protocol::{Headers, HubMessage, InvocationMessage, Value};

use crate::link::{BackplaneCounters, BackplaneStatus};
use crate::manager::{BackplaneError, RedisBackplaneOptions, RedisHubLifetimeManager};

/// Sends invocations of client methods to every node of a hub through Redis.
///
/// A [`RedisHubLifetimeManager`] with no local connections: it subscribes only to its own
/// control channels, so it can also change the groups of connections on other nodes.
#[derive(Debug, Clone)]
pub struct RedisPublisher {
    manager: Arc<RedisHubLifetimeManager>,
}

/// An invocation of `target` with `arguments`, ready to be sent (encoded once per protocol).
pub fn invocation(target: &str, arguments: Vec<Value>) -> Arc<SerializedMessage> {
    Arc::new(SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
        headers: Headers::new(),
        invocation_id: None,
        target: target.to_string(),
        arguments,
        stream_ids: Vec::new(),
    })))
}

impl RedisPublisher {
    /// Starts a publisher (returns at once; connects in the background).
    pub fn new(options: RedisBackplaneOptions) -> Result<Self, BackplaneError> {
        Ok(Self { manager: Arc::new(RedisHubLifetimeManager::new(options)?) })
    }

    /// Wraps an existing manager (e.g. to share it with a `HubContext`).
    pub fn from_manager(manager: Arc<RedisHubLifetimeManager>) -> Self {
        Self { manager }
    }

    /// The underlying manager, usable as `Arc<dyn HubLifetimeManager>`.
    pub fn manager(&self) -> &Arc<RedisHubLifetimeManager> {
        &self.manager
    }

    /// Health of the Redis connections.
    pub fn status(&self) -> BackplaneStatus {
        self.manager.status()
    }

    /// Counters since start.
    pub fn counters(&self) -> BackplaneCounters {
        self.manager.counters()
    }

    /// `Clients.All.SendAsync(target, arguments)`.
    pub async fn send_all(&self, target: &str, arguments: Vec<Value>) -> Result<(), LifetimeError> {
        self.manager.send_all(invocation(target, arguments)).await
    }

    /// `Clients.AllExcept(excluded).SendAsync(target, arguments)`.
    pub async fn send_all_except(&self, target: &str, arguments: Vec<Value>, excluded: &[String]) -> Result<(), LifetimeError> {
        self.manager.send_all_except(invocation(target, arguments), excluded).await
    }

    /// `Clients.Group(group).SendAsync(target, arguments)`.
    pub async fn send_group(&self, group: &str, target: &str, arguments: Vec<Value>) -> Result<(), LifetimeError> {
        self.manager.send_group(group, invocation(target, arguments)).await
    }

    /// `Clients.User(user).SendAsync(target, arguments)`.
    pub async fn send_user(&self, user_id: &str, target: &str, arguments: Vec<Value>) -> Result<(), LifetimeError> {
        self.manager.send_user(user_id, invocation(target, arguments)).await
    }

    /// `Clients.Client(id).SendAsync(target, arguments)`.
    pub async fn send_connection(&self, connection_id: &str, target: &str, arguments: Vec<Value>) -> Result<(), LifetimeError> {
        self.manager.send_connection(connection_id, invocation(target, arguments)).await
    }

    /// `Groups.AddToGroupAsync(connectionId, group)` for a connection on any node.
    pub async fn add_to_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        self.manager.add_to_group(connection_id, group).await
    }

    /// `Groups.RemoveFromGroupAsync(connectionId, group)` for a connection on any node.
    pub async fn remove_from_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        self.manager.remove_from_group(connection_id, group).await
    }
}
