//! [`HubLifetimeManager`]: where hub sends leave the process (or don't).

use std::sync::Arc;

use async_trait::async_trait;
use signalr_protocol::{CompletionMessage, Headers, HubMessage, InvocationMessage, Value};

use crate::connection::HubConnection;
use crate::error::LifetimeError;
use crate::fanout::Fanout;
use crate::message::SerializedMessage;
use crate::results::ClientResultsManager;
use crate::store::{HubConnectionStore, excluding};

/// Routes hub sends, group membership and client results; the backplane seam (ASP.NET Core's
/// `HubLifetimeManager<THub>`).
///
/// An implementor supplies its [`HubConnectionStore`] and [`ClientResultsManager`]; every other
/// method has a default that works on this node alone (the whole of an in-process manager), so
/// a backplane overrides only what must reach other nodes. All send methods take the message
/// already wrapped, so that it is encoded at most once per protocol, whatever the number of
/// receivers or nodes.
#[async_trait]
pub trait HubLifetimeManager: Send + Sync + 'static {
    /// The connections of this node.
    fn local_connections(&self) -> &HubConnectionStore;
    /// The client-result invocations this node waits for.
    fn client_results(&self) -> &ClientResultsManager;

    /// A connection finished its handshake on this node.
    async fn on_connected(&self, connection: Arc<dyn HubConnection>) -> Result<(), LifetimeError> {
        self.local_connections().write().insert(connection);
        Ok(())
    }

    /// A connection on this node is gone; drop its groups, user and pending results.
    async fn on_disconnected(&self, connection_id: &str) -> Result<(), LifetimeError> {
        self.local_connections().write().remove(connection_id);
        self.client_results().cancel_connection(connection_id);
        Ok(())
    }

    /// Every connection of the hub.
    async fn send_all(&self, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        Fanout::new(&message).deliver_all(local.all().map(|(_, connection)| connection));
        Ok(())
    }

    /// Every connection except `excluded` (connection ids).
    async fn send_all_except(&self, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        Fanout::new(&message).deliver_all(excluding(local.all(), excluded).map(|(_, connection)| connection));
        Ok(())
    }

    /// One connection (a send to an unknown one is ignored, as in .NET).
    async fn send_connection(&self, connection_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        if let Some(connection) = local.get(connection_id) {
            Fanout::new(&message).deliver_all(std::iter::once(connection.as_ref()));
        }
        Ok(())
    }

    /// Several connections.
    async fn send_connections(&self, connection_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        Fanout::new(&message).deliver_all(local.connections(connection_ids).map(|(_, connection)| connection));
        Ok(())
    }

    /// The members of a group.
    async fn send_group(&self, group: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        if let Some(members) = local.group(group) {
            Fanout::new(&message).deliver_all(members.map(|(_, connection)| connection));
        }
        Ok(())
    }

    /// The members of several groups (a connection in two of them gets the message twice, as in .NET).
    async fn send_groups(&self, groups: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        Fanout::new(&message).deliver_all(local.groups(groups).map(|(_, connection)| connection));
        Ok(())
    }

    /// The members of a group except `excluded` (connection ids).
    async fn send_group_except(&self, group: &str, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        if let Some(members) = local.group(group) {
            Fanout::new(&message).deliver_all(excluding(members, excluded).map(|(_, connection)| connection));
        }
        Ok(())
    }

    /// Every connection of a user.
    async fn send_user(&self, user_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        if let Some(connections) = local.user(user_id) {
            Fanout::new(&message).deliver_all(connections.map(|(_, connection)| connection));
        }
        Ok(())
    }

    /// Every connection of several users.
    async fn send_users(&self, user_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let local = self.local_connections().read();
        Fanout::new(&message).deliver_all(local.users(user_ids).map(|(_, connection)| connection));
        Ok(())
    }

    /// Adds a connection (on any node) to a group. By default only connections of this node;
    /// others are ignored, as by .NET's default manager.
    async fn add_to_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        self.local_connections().write().add_to_group(connection_id, group);
        Ok(())
    }

    /// Removes a connection (on any node) from a group. By default only connections of this
    /// node; others are ignored.
    async fn remove_from_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        self.local_connections().write().remove_from_group(connection_id, group);
        Ok(())
    }

    /// Invokes `target` on one client (on any node) and waits for its result. By default only
    /// connections of this node; any other is [`LifetimeError::UnknownConnection`].
    ///
    /// The manager assigns the invocation id from its own namespace.
    async fn invoke_connection(&self, connection_id: &str, target: &str, arguments: Vec<Value>) -> Result<Value, LifetimeError> {
        let connection =
            self.local_connections().get(connection_id).ok_or_else(|| LifetimeError::UnknownConnection(connection_id.to_owned()))?;
        let results = self.client_results();
        let pending = results.add(results.next_invocation_id(), connection_id);
        let message = SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
            headers: Headers::new(),
            invocation_id: Some(pending.invocation_id().to_owned()),
            target: target.to_owned(),
            arguments,
            stream_ids: Vec::new(),
        }));
        if connection.send(&message).is_err() {
            return Err(LifetimeError::Disconnected(connection_id.to_owned()));
        }
        pending.wait().await
    }

    /// A client on this node answered a client-result invocation. Returns false when the id is
    /// not a pending client result of that connection (the caller then ignores the completion,
    /// as .NET does).
    async fn set_connection_result(&self, connection_id: &str, completion: CompletionMessage) -> bool {
        self.client_results().try_complete(connection_id, completion)
    }
}
