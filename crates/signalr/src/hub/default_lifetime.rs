//! [`DefaultHubLifetimeManager`]: delivers within this process (.NET
//! `DefaultHubLifetimeManager<THub>`).
//!
//! All of it is the defaults of [`HubLifetimeManager`] over a [`HubConnectionStore`] and a
//! [`ClientResultsManager`], the building blocks the Redis backplane shares. Sends never wait:
//! each receiver gets a clone of the message's encoded [`bytes::Bytes`] for its protocol; a
//! receiver whose outbound queue is full is disconnected by its transport and nobody else is
//! affected.

use super::lifetime::{ClientResultsManager, HubConnectionStore, HubLifetimeManager};

/// The in-process lifetime manager: groups and users in memory, one node.
#[derive(Debug, Default)]
pub struct DefaultHubLifetimeManager {
    connections: HubConnectionStore,
    results: ClientResultsManager,
}

impl DefaultHubLifetimeManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many connections are registered.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }
}

impl HubLifetimeManager for DefaultHubLifetimeManager {
    fn local_connections(&self) -> &HubConnectionStore {
        &self.connections
    }

    fn client_results(&self) -> &ClientResultsManager {
        &self.results
    }
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use parking_lot::Mutex;

    use super::super::lifetime::{HubConnection, SendError, SerializedMessage};
    use super::*;
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
