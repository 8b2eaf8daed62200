//! [`ClientResultsManager`]: client-result invocations waiting for their client's answer
//! (ASP.NET Core's `ClientResultsManager`, shared by both of its lifetime managers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use signalr_protocol::{CompletionMessage, CompletionResult, Value};
use tokio::sync::oneshot;

use crate::error::LifetimeError;

/// The error text .NET puts in the completion of a client result whose connection went away
/// before answering; read back as [`LifetimeError::Disconnected`].
pub const CONNECTION_DISCONNECTED: &str = "Connection disconnected.";

/// Which connection must answer, and where the answer goes.
struct Pending {
    connection_id: String,
    reply: oneshot::Sender<Result<Value, LifetimeError>>,
}

/// Pending client-result invocations of this node, by invocation id.
#[derive(Default)]
pub struct ClientResultsManager {
    pending: Mutex<HashMap<String, Pending>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for ClientResultsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientResultsManager").field("pending", &self.len()).finish()
    }
}

impl ClientResultsManager {
    /// No pending invocation.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh invocation id unique within this manager (`s1`, `s2`, ...). A backplane whose
    /// ids travel between nodes makes its own, unique across them.
    pub fn next_invocation_id(&self) -> String {
        format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Registers an invocation that `connection_id` must answer. The returned value waits for
    /// the answer; dropping it (the caller gave up) forgets the invocation.
    pub fn add(&self, invocation_id: String, connection_id: &str) -> PendingClientResult<'_> {
        let (reply, receiver) = oneshot::channel();
        self.pending.lock().insert(invocation_id.clone(), Pending { connection_id: connection_id.to_owned(), reply });
        PendingClientResult { results: self, invocation_id, connection_id: connection_id.to_owned(), receiver }
    }

    /// `connection_id` answered with `completion`. Returns false when its invocation id is not
    /// pending for that connection (the caller then ignores it, as .NET does).
    pub fn try_complete(&self, connection_id: &str, completion: CompletionMessage) -> bool {
        let pending = {
            let mut pending = self.pending.lock();
            match pending.get(&completion.invocation_id) {
                Some(p) if p.connection_id == connection_id => pending.remove(&completion.invocation_id),
                _ => None,
            }
        };
        match pending {
            Some(pending) => {
                let _ = pending.reply.send(outcome(&pending.connection_id, completion));
                true
            }
            None => false,
        }
    }

    /// An answer that arrived from another node, which checked the connection; returns false
    /// when its invocation id is not pending.
    pub fn complete(&self, completion: CompletionMessage) -> bool {
        let Some(pending) = self.pending.lock().remove(&completion.invocation_id) else { return false };
        let _ = pending.reply.send(outcome(&pending.connection_id, completion));
        true
    }

    /// `connection_id` went away: every invocation it owed fails with
    /// [`LifetimeError::Disconnected`].
    pub fn cancel_connection(&self, connection_id: &str) {
        let owed: Vec<Pending> = {
            let mut pending = self.pending.lock();
            let ids: Vec<String> = pending.iter().filter(|(_, p)| p.connection_id == connection_id).map(|(id, _)| id.clone()).collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for pending in owed {
            let _ = pending.reply.send(Err(LifetimeError::Disconnected(connection_id.to_owned())));
        }
    }

    /// How many invocations wait for an answer.
    pub fn len(&self) -> usize {
        self.pending.lock().len()
    }

    /// Whether no invocation waits for an answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A client-result invocation waiting for its answer, from [`ClientResultsManager::add`].
pub struct PendingClientResult<'a> {
    results: &'a ClientResultsManager,
    invocation_id: String,
    connection_id: String,
    receiver: oneshot::Receiver<Result<Value, LifetimeError>>,
}

impl std::fmt::Debug for PendingClientResult<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingClientResult")
            .field("invocation_id", &self.invocation_id)
            .field("connection_id", &self.connection_id)
            .finish()
    }
}

impl PendingClientResult<'_> {
    /// The invocation id to send with the invocation.
    pub fn invocation_id(&self) -> &str {
        &self.invocation_id
    }

    /// Waits for the answer: the client's value, its error, or [`LifetimeError::Disconnected`].
    pub async fn wait(mut self) -> Result<Value, LifetimeError> {
        match (&mut self.receiver).await {
            Ok(result) => result,
            // Only reachable if the entry was dropped unanswered, which no method here does.
            Err(_) => Err(LifetimeError::Disconnected(self.connection_id.clone())),
        }
    }
}

impl Drop for PendingClientResult<'_> {
    fn drop(&mut self) {
        self.results.pending.lock().remove(&self.invocation_id);
    }
}

/// What the invoker gets for `completion`.
fn outcome(connection_id: &str, completion: CompletionMessage) -> Result<Value, LifetimeError> {
    match completion.result {
        CompletionResult::Result(value) => Ok(value),
        CompletionResult::Void => Ok(Value::Json(serde_json::Value::Null)),
        CompletionResult::Error(error) if error == CONNECTION_DISCONNECTED => Err(LifetimeError::Disconnected(connection_id.to_owned())),
        CompletionResult::Error(error) => Err(LifetimeError::ClientError(error)),
    }
}

#[cfg(test)]
mod tests {
    use signalr_protocol::Headers;

    use super::*;

    fn completion(invocation_id: &str, result: CompletionResult) -> CompletionMessage {
        CompletionMessage { headers: Headers::new(), invocation_id: invocation_id.into(), result }
    }

    #[tokio::test]
    async fn answers_reach_their_invoker_only_from_the_right_connection() {
        let results = ClientResultsManager::new();
        let first = results.add(results.next_invocation_id(), "a");
        let second = results.add(results.next_invocation_id(), "b");
        assert_eq!((first.invocation_id(), second.invocation_id()), ("s1", "s2"));
        let value = CompletionResult::Result(Value::Json(serde_json::json!(42)));
        assert!(!results.try_complete("b", completion("s1", value.clone())), "s1 is owed by a");
        assert!(!results.try_complete("a", completion("s9", value.clone())), "unknown id");
        assert!(results.try_complete("a", completion("s1", value)));
        assert_eq!(first.wait().await.unwrap(), Value::Json(serde_json::json!(42)));
        assert!(results.complete(completion("s2", CompletionResult::Error("boom".into()))));
        assert!(matches!(second.wait().await, Err(LifetimeError::ClientError(text)) if text == "boom"));
        assert!(!results.complete(completion("s2", CompletionResult::Void)), "answered already");
        assert!(results.is_empty());
    }

    #[tokio::test]
    async fn disconnects_and_callers_giving_up_leave_nothing_pending() {
        let results = ClientResultsManager::new();
        let owed = results.add("x".into(), "a");
        let other = results.add("y".into(), "b");
        let remote = results.add("z".into(), "b");
        results.cancel_connection("a");
        assert!(matches!(owed.wait().await, Err(LifetimeError::Disconnected(id)) if id == "a"));
        assert_eq!(results.len(), 2);
        drop(other);
        assert_eq!(results.len(), 1);
        assert!(results.complete(completion("z", CompletionResult::Error(CONNECTION_DISCONNECTED.into()))));
        assert!(matches!(remote.wait().await, Err(LifetimeError::Disconnected(id)) if id == "b"));
        assert!(results.is_empty());
    }
}
