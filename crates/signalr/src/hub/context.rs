//! Who is calling: [`HubCallerContext`] (per connection, .NET `HubCallerContext`) and
//! [`HubCallContext`] (per invocation: the caller plus `Clients`, `Groups` and cancellation).

use std::any::Any;
use std::sync::Arc;

use signalr_connections::{RequestInfo, TransportType, User};
use signalr_protocol::value::ValueKind;
use tokio_util::sync::CancellationToken;

use super::clients::{GroupManager, HubCallerClients, HubClients};
use super::connection::HubConnectionState;
use super::lifetime::HubConnection;

/// The connection a hub method runs for: id, user, the HTTP request that carries it, the
/// transport, and an `items` map that lives as long as the connection. Cheap to clone.
#[derive(Clone)]
pub struct HubCallerContext {
    pub(crate) state: Arc<HubConnectionState>,
}

impl std::fmt::Debug for HubCallerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCallerContext").field("connection_id", &self.connection_id()).finish()
    }
}

impl HubCallerContext {
    /// The public connection id (`Context.ConnectionId`).
    pub fn connection_id(&self) -> &str {
        self.state.connection.connection_id()
    }

    /// The user identifier (`Context.UserIdentifier`), when authenticated.
    pub fn user_identifier(&self) -> Option<&str> {
        self.state.user_identifier()
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&User> {
        self.state.connection.user()
    }

    /// The first claim of type `claim_type`.
    pub fn claim(&self, claim_type: &str) -> Option<&str> {
        self.user()?.claims.iter().find(|(t, _)| t == claim_type).map(|(_, v)| v.as_str())
    }

    /// The HTTP request that carries the connection (WebSocket upgrade, SSE GET, first poll).
    pub fn request(&self) -> &RequestInfo {
        self.state.connection.request()
    }

    /// A request header as text (`None` when absent or not valid text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request().headers.get(name)?.to_str().ok()
    }

    /// A query parameter of the connection request; names compare case-insensitively, as
    /// ASP.NET reads them.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.request().query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A cookie of the connection request.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.request().cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The transport in use.
    pub fn transport(&self) -> TransportType {
        self.state.connection.transport()
    }

    /// Stores a per-connection value under `key` (like .NET's `Context.Items`).
    pub fn insert_item<T: Any + Send + Sync>(&self, key: impl Into<String>, value: T) {
        self.state.with_items(|items| {
            items.insert(key.into(), Box::new(value));
        });
    }

    /// A clone of the per-connection value under `key`, if it exists and has type `T`.
    pub fn item<T: Any + Clone>(&self, key: &str) -> Option<T> {
        self.state.with_items(|items| items.get(key)?.downcast_ref::<T>().cloned())
    }

    /// Removes the value under `key`; true if there was one.
    pub fn remove_item(&self, key: &str) -> bool {
        self.state.with_items(|items| items.remove(key).is_some())
    }

    /// Closes the connection from the server (.NET `Context.Abort()`): the client gets a Close
    /// message without reconnect.
    pub fn abort(&self) {
        HubConnection::abort(&*self.state);
    }
}

/// Everything a hub method can use during one invocation: the caller, `Clients`, `Groups` and,
/// for streaming methods, the token that fires when the client cancels. Cheap to clone; may be
/// moved into spawned tasks.
#[derive(Clone)]
pub struct HubCallContext {
    caller: HubCallerContext,
    cancellation: Option<CancellationToken>,
}

impl std::fmt::Debug for HubCallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCallContext").field("connection_id", &self.caller.connection_id()).finish()
    }
}

impl HubCallContext {
    pub(crate) fn new(state: Arc<HubConnectionState>, cancellation: Option<CancellationToken>) -> Self {
        Self { caller: HubCallerContext { state }, cancellation }
    }

    /// The calling connection (.NET `Context`).
    pub fn context(&self) -> &HubCallerContext {
        &self.caller
    }

    /// The caller's connection id.
    pub fn connection_id(&self) -> &str {
        self.caller.connection_id()
    }

    /// Senders to clients (.NET `Clients`): `all()`, `caller()`, `others()`, `group(…)`, ….
    pub fn clients(&self) -> HubCallerClients {
        HubCallerClients::new(HubClients::new(self.caller.state.shared.lifetime.clone()), self.caller.connection_id().to_owned())
    }

    /// Group membership (.NET `Groups`).
    pub fn groups(&self) -> GroupManager {
        GroupManager::new(self.caller.state.shared.lifetime.clone())
    }

    /// For streaming methods, fires when the client cancels the stream or disconnects; for
    /// other methods, a token that never fires.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancellation.clone().unwrap_or_default()
    }

    /// Closes the caller's connection (.NET `Context.Abort()`).
    pub fn abort(&self) {
        self.caller.abort();
    }

    /// The value form of the caller's protocol.
    pub(crate) fn value_kind(&self) -> ValueKind {
        self.caller.state.value_kind()
    }
}
