//! [`DefaultHubLifetimeManager`]: delivers within this process (.NET
//! `DefaultHubLifetimeManager<THub>`).
//!
//! Connections, groups and users are kept in maps under short, synchronous locks (never held
//! across an await). Sends never wait: each receiver gets a clone of the message's encoded
//! [`bytes::Bytes`] for its protocol; a receiver whose outbound queue is full is disconnected by
//! its transport and nobody else is affected.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use signalr_protocol::{CompletionMessage, CompletionResult, HubMessage, InvocationMessage, Value};
use tokio::sync::oneshot;

use super::lifetime::{Fanout, HubConnection, HubLifetimeManager, LifetimeError, SerializedMessage};

struct Entry {
    connection: Arc<dyn HubConnection>,
    /// Groups this connection is in, to leave them on disconnect.
    groups: Vec<String>,
}

/// A pending client result: which connection must answer, and where the answer goes.
struct PendingResult {
    connection_id: String,
    sender: oneshot::Sender<Result<Value, LifetimeError>>,
}

/// Members of one group, by connection id.
type GroupMembers = HashMap<String, Arc<dyn HubConnection>>;

/// The in-process lifetime manager: groups and users in memory, one node.
#[derive(Default)]
pub struct DefaultHubLifetimeManager {
    connections: RwLock<HashMap<String, Entry>>,
    groups: RwLock<HashMap<String, GroupMembers>>,
    users: RwLock<HashMap<String, Vec<Arc<dyn HubConnection>>>>,
    pending: Mutex<HashMap<String, PendingResult>>,
    next_invocation: AtomicU64,
}

impl std::fmt::Debug for DefaultHubLifetimeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultHubLifetimeManager")
            .field("connections", &self.connections.read().len())
            .field("groups", &self.groups.read().len())
            .finish()
    }
}

impl DefaultHubLifetimeManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many connections are registered.
    pub fn connection_count(&self) -> usize {
        self.connections.read().len()
    }

    fn send_where(&self, message: &SerializedMessage, keep: impl Fn(&str) -> bool) {
        let connections = self.connections.read();
        Fanout::new(message).deliver_all(connections.iter().filter(|(id, _)| keep(id)).map(|(_, entry)| entry.connection.as_ref()));
    }
}

/// Removes a pending client result when the waiting caller gives up.
struct PendingGuard<'a> {
    pending: &'a Mutex<HashMap<String, PendingResult>>,
    invocation_id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.invocation_id);
    }
}

#[async_trait]
impl HubLifetimeManager for DefaultHubLifetimeManager {
    async fn on_connected(&self, connection: Arc<dyn HubConnection>) -> Result<(), LifetimeError> {
        let id = connection.connection_id().to_owned();
        if let Some(user) = connection.user_identifier() {
            self.users.write().entry(user.to_owned()).or_default().push(connection.clone());
        }
        self.connections.write().insert(id, Entry { connection, groups: Vec::new() });
        Ok(())
    }

    async fn on_disconnected(&self, connection_id: &str) -> Result<(), LifetimeError> {
        let Some(entry) = self.connections.write().remove(connection_id) else { return Ok(()) };
        if !entry.groups.is_empty() {
            let mut groups = self.groups.write();
            for group in &entry.groups {
                if let Some(members) = groups.get_mut(group) {
                    members.remove(connection_id);
                    if members.is_empty() {
                        groups.remove(group);
                    }
                }
            }
        }
        if let Some(user) = entry.connection.user_identifier() {
            let mut users = self.users.write();
            if let Some(list) = users.get_mut(user) {
                list.retain(|c| c.connection_id() != connection_id);
                if list.is_empty() {
                    users.remove(user);
                }
            }
        }
        let mut pending = self.pending.lock();
        let abandoned: Vec<String> = pending.iter().filter(|(_, p)| p.connection_id == connection_id).map(|(id, _)| id.clone()).collect();
        for id in abandoned {
            if let Some(p) = pending.remove(&id) {
                let _ = p.sender.send(Err(LifetimeError::Disconnected(connection_id.to_owned())));
            }
        }
        Ok(())
    }

    async fn send_all(&self, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        self.send_where(&message, |_| true);
        Ok(())
    }

    async fn send_all_except(&self, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError> {
        self.send_where(&message, |id| !excluded.iter().any(|e| e == id));
        Ok(())
    }

    async fn send_connection(&self, connection_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        // .NET ignores sends to unknown connections.
        if let Some(entry) = self.connections.read().get(connection_id) {
            Fanout::new(&message).deliver_all(std::iter::once(entry.connection.as_ref()));
        }
        Ok(())
    }

    async fn send_connections(&self, connection_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let connections = self.connections.read();
        Fanout::new(&message)
            .deliver_all(connection_ids.iter().filter_map(|id| connections.get(id)).map(|entry| entry.connection.as_ref()));
        Ok(())
    }

    async fn send_group(&self, group: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        if let Some(members) = self.groups.read().get(group) {
            Fanout::new(&message).deliver_all(members.values().map(|connection| connection.as_ref()));
        }
        Ok(())
    }

    async fn send_groups(&self, groups: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let all = self.groups.read();
        Fanout::new(&message)
            .deliver_all(groups.iter().filter_map(|group| all.get(group)).flat_map(|members| members.values()).map(|c| c.as_ref()));
        Ok(())
    }

    async fn send_group_except(&self, group: &str, message: Arc<SerializedMessage>, excluded: &[String]) -> Result<(), LifetimeError> {
        if let Some(members) = self.groups.read().get(group) {
            Fanout::new(&message).deliver_all(members.iter().filter(|(id, _)| !excluded.iter().any(|e| e == *id)).map(|(_, c)| c.as_ref()));
        }
        Ok(())
    }

    async fn send_user(&self, user_id: &str, message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        if let Some(list) = self.users.read().get(user_id) {
            Fanout::new(&message).deliver_all(list.iter().map(|c| c.as_ref()));
        }
        Ok(())
    }

    async fn send_users(&self, user_ids: &[String], message: Arc<SerializedMessage>) -> Result<(), LifetimeError> {
        let users = self.users.read();
        Fanout::new(&message).deliver_all(user_ids.iter().filter_map(|user| users.get(user)).flatten().map(|c| c.as_ref()));
        Ok(())
    }

    async fn add_to_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        let mut connections = self.connections.write();
        // .NET ignores group changes for unknown connections on the default manager.
        let Some(entry) = connections.get_mut(connection_id) else { return Ok(()) };
        if entry.groups.iter().any(|g| g == group) {
            return Ok(());
        }
        entry.groups.push(group.to_owned());
        let connection = entry.connection.clone();
        drop(connections);
        self.groups.write().entry(group.to_owned()).or_default().insert(connection_id.to_owned(), connection);
        Ok(())
    }

    async fn remove_from_group(&self, connection_id: &str, group: &str) -> Result<(), LifetimeError> {
        if let Some(entry) = self.connections.write().get_mut(connection_id) {
            entry.groups.retain(|g| g != group);
        }
        let mut groups = self.groups.write();
        if let Some(members) = groups.get_mut(group) {
            members.remove(connection_id);
            if members.is_empty() {
                groups.remove(group);
            }
        }
        Ok(())
    }

    async fn invoke_connection(&self, connection_id: &str, target: &str, arguments: Vec<Value>) -> Result<Value, LifetimeError> {
        let connection = self
            .connections
            .read()
            .get(connection_id)
            .map(|e| e.connection.clone())
            .ok_or_else(|| LifetimeError::UnknownConnection(connection_id.to_owned()))?;
        let invocation_id = format!("s{}", self.next_invocation.fetch_add(1, Ordering::Relaxed) + 1);
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().insert(invocation_id.clone(), PendingResult { connection_id: connection_id.to_owned(), sender });
        let _guard = PendingGuard { pending: &self.pending, invocation_id: invocation_id.clone() };
        let message = SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
            headers: Default::default(),
            invocation_id: Some(invocation_id),
            target: target.to_owned(),
            arguments,
            stream_ids: Vec::new(),
        }));
        if connection.send(&message).is_err() {
            return Err(LifetimeError::Disconnected(connection_id.to_owned()));
        }
        match receiver.await {
            Ok(result) => result,
            Err(_) => Err(LifetimeError::Disconnected(connection_id.to_owned())),
        }
    }

    async fn set_connection_result(&self, connection_id: &str, completion: CompletionMessage) -> bool {
        let mut pending = self.pending.lock();
        match pending.get(&completion.invocation_id) {
            Some(p) if p.connection_id == connection_id => {}
            _ => return false,
        }
        let Some(p) = pending.remove(&completion.invocation_id) else { return false };
        drop(pending);
        let result = match completion.result {
            CompletionResult::Result(value) => Ok(value),
            CompletionResult::Void => Ok(Value::Json(serde_json::Value::Null)),
            CompletionResult::Error(error) => Err(LifetimeError::ClientError(error)),
        };
        let _ = p.sender.send(result);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::lifetime::SendError;
    use super::*;
    use bytes::Bytes;
    use signalr_protocol::{HubProtocol, JsonHubProtocol, MessagePackHubProtocol};

    struct Recorder {
        id: String,
        user: Option<String>,
        protocol: &'static dyn HubProtocol,
        frames: Mutex<Vec<Bytes>>,
    }

    impl HubConnection for Recorder {
        fn connection_id(&self) -> &str {
            &self.id
        }
        fn user_identifier(&self) -> Option<&str> {
            self.user.as_deref()
        }
        fn protocol(&self) -> &dyn HubProtocol {
            self.protocol
        }
        fn send_encoded(&self, frame: Bytes) -> Result<(), SendError> {
            self.frames.lock().push(frame);
            Ok(())
        }
        fn abort(&self) {}
    }

    fn recorder(id: &str, user: Option<&str>) -> Arc<Recorder> {
        Arc::new(Recorder { id: id.into(), user: user.map(Into::into), protocol: &JsonHubProtocol, frames: Mutex::new(Vec::new()) })
    }

    fn message() -> Arc<SerializedMessage> {
        Arc::new(SerializedMessage::from_encoded(vec![("json".into(), Bytes::from_static(b"x\x1e"))]))
    }

    #[tokio::test]
    async fn groups_users_and_exclusions() {
        let manager = DefaultHubLifetimeManager::new();
        let a = recorder("a", Some("u1"));
        let b = recorder("b", Some("u1"));
        let c = recorder("c", None);
        for r in [&a, &b, &c] {
            manager.on_connected(r.clone()).await.unwrap();
        }
        manager.add_to_group("a", "g").await.unwrap();
        manager.add_to_group("c", "g").await.unwrap();
        manager.send_group("g", message()).await.unwrap();
        manager.send_group_except("g", message(), &["a".into()]).await.unwrap();
        manager.send_user("u1", message()).await.unwrap();
        manager.send_all_except(message(), &["b".into()]).await.unwrap();
        assert_eq!(a.frames.lock().len(), 3);
        assert_eq!(b.frames.lock().len(), 1);
        assert_eq!(c.frames.lock().len(), 3);
        manager.on_disconnected("c").await.unwrap();
        manager.send_group("g", message()).await.unwrap();
        assert_eq!(c.frames.lock().len(), 3);
        assert_eq!(a.frames.lock().len(), 4);
    }

    /// The fan-out looks each protocol's encoding up once; receivers of different protocols,
    /// interleaved, must still each get their own, and a protocol without an encoding gets none.
    #[tokio::test]
    async fn broadcast_gives_each_protocol_its_own_encoding() {
        let manager = DefaultHubLifetimeManager::new();
        let mut receivers = Vec::new();
        for i in 0..6 {
            let protocol: &'static dyn HubProtocol = if i % 2 == 0 { &JsonHubProtocol } else { &MessagePackHubProtocol };
            let receiver = Arc::new(Recorder { id: format!("c{i}"), user: None, protocol, frames: Mutex::new(Vec::new()) });
            manager.on_connected(receiver.clone()).await.unwrap();
            receivers.push(receiver);
        }
        let both = Arc::new(SerializedMessage::from_encoded(vec![
            ("json".into(), Bytes::from_static(b"j\x1e")),
            ("messagepack".into(), Bytes::from_static(b"\x01m")),
        ]));
        manager.send_all(both).await.unwrap();
        manager.send_all(message()).await.unwrap();
        for receiver in &receivers {
            let frames = receiver.frames.lock();
            if receiver.protocol.name() == "json" {
                assert_eq!(*frames, vec![Bytes::from_static(b"j\x1e"), Bytes::from_static(b"x\x1e")], "{}", receiver.id);
            } else {
                assert_eq!(*frames, vec![Bytes::from_static(b"\x01m")], "{}", receiver.id);
            }
        }
    }

    #[tokio::test]
    async fn client_result_fails_on_disconnect_and_unknown_connection() {
        let manager = Arc::new(DefaultHubLifetimeManager::new());
        let a = recorder("a", None);
        manager.on_connected(a.clone()).await.unwrap();
        let error = manager.invoke_connection("zzz", "Result", vec![]).await.unwrap_err();
        assert_eq!(error.to_string(), "Connection 'zzz' does not exist.");
        let waiting = tokio::spawn({
            let manager = manager.clone();
            async move { manager.invoke_connection("a", "Result", vec![]).await }
        });
        while a.frames.lock().is_empty() {
            tokio::task::yield_now().await;
        }
        manager.on_disconnected("a").await.unwrap();
        let error = waiting.await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "Connection 'a' disconnected.");
    }
}
