//! Sending to clients: [`HubClients`] (.NET `IHubClients`), [`HubCallerClients`] (adds
//! `Caller`, `Others`, `OthersInGroup`), [`ClientProxy`] and [`SingleClientProxy`] (adds client
//! results), [`GroupManager`] (.NET `Groups`) and [`HubContext`] (.NET `IHubContext<T>`).
//!
//! Every send goes through the hub's [`HubLifetimeManager`], so the same code works in-process
//! and over a backplane. A message is serialized once (per value form) and encoded at most once
//! per protocol, whatever the number of receivers.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use signalr_protocol::value::ValueKind;
use signalr_protocol::{HubMessage, InvocationMessage, Value};

use super::args::OutgoingArgs;
use super::error::HubError;
use super::lifetime::{HubLifetimeManager, SerializedMessage};

/// Who a [`ClientProxy`] sends to.
#[derive(Debug, Clone)]
enum Target {
    All,
    AllExcept(Vec<String>),
    Connections(Vec<String>),
    Group(String),
    Groups(Vec<String>),
    GroupExcept(String, Vec<String>),
    User(String),
    Users(Vec<String>),
}

/// Builds the invocation of `method` with `args` once per value form.
pub(crate) fn build_invocation<A: OutgoingArgs + ?Sized>(method: &str, args: &A) -> Result<Arc<SerializedMessage>, HubError> {
    let make = |kind: ValueKind| -> Result<HubMessage, HubError> {
        let arguments = args.to_values(kind).map_err(|e| HubError::exception("JsonException", e.to_string()))?;
        Ok(HubMessage::Invocation(InvocationMessage {
            headers: Default::default(),
            invocation_id: None,
            target: method.to_owned(),
            arguments,
            stream_ids: Vec::new(),
        }))
    };
    Ok(Arc::new(SerializedMessage::with_variants(make(ValueKind::Json)?, make(ValueKind::MsgPack)?)))
}

fn owned<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

/// Sends to a set of clients chosen by a [`HubClients`] method.
#[derive(Clone)]
pub struct ClientProxy {
    lifetime: Arc<dyn HubLifetimeManager>,
    target: Target,
}

impl std::fmt::Debug for ClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProxy").field("target", &self.target).finish()
    }
}

impl ClientProxy {
    /// Invokes `method` on every targeted client with `args` (`()`, or a tuple like `(text,)`),
    /// without waiting for them. Returns once the message is handed to the lifetime manager.
    pub async fn send<A: OutgoingArgs + Send + Sync>(&self, method: &str, args: A) -> Result<(), HubError> {
        let message = build_invocation(method, &args)?;
        self.send_message(message).await
    }

    /// Sends an already-built message to the targeted clients.
    pub async fn send_message(&self, message: Arc<SerializedMessage>) -> Result<(), HubError> {
        let lifetime = &self.lifetime;
        match &self.target {
            Target::All => lifetime.send_all(message).await,
            Target::AllExcept(excluded) => lifetime.send_all_except(message, excluded).await,
            Target::Connections(ids) => lifetime.send_connections(ids, message).await,
            Target::Group(group) => lifetime.send_group(group, message).await,
            Target::Groups(groups) => lifetime.send_groups(groups, message).await,
            Target::GroupExcept(group, excluded) => lifetime.send_group_except(group, message, excluded).await,
            Target::User(user) => lifetime.send_user(user, message).await,
            Target::Users(users) => lifetime.send_users(users, message).await,
        }
        .map_err(HubError::from)
    }
}

/// One client: sends, and client results (`invoke`).
#[derive(Clone)]
pub struct SingleClientProxy {
    lifetime: Arc<dyn HubLifetimeManager>,
    connection_id: String,
}

impl std::fmt::Debug for SingleClientProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleClientProxy").field("connection_id", &self.connection_id).finish()
    }
}

impl SingleClientProxy {
    /// Invokes `method` on the client without waiting for it.
    pub async fn send<A: OutgoingArgs + Send + Sync>(&self, method: &str, args: A) -> Result<(), HubError> {
        let message = build_invocation(method, &args)?;
        self.lifetime.send_connection(&self.connection_id, message).await.map_err(HubError::from)
    }

    /// Invokes `method` on the client and waits for the value its handler returns (client
    /// results). The error message is the client's text (e.g. `Error: from callback`,
    /// `Client didn't provide a result.`), `Connection '<id>' does not exist.` or
    /// `Connection '<id>' disconnected.`. There is no timeout: wrap it in
    /// `tokio::time::timeout` if needed. Do not call it from `on_connected`.
    pub async fn invoke<T: DeserializeOwned, A: OutgoingArgs + Send + Sync>(&self, method: &str, args: A) -> Result<T, HubError> {
        let arguments = args.to_values(ValueKind::Json).map_err(|e| HubError::exception("JsonException", e.to_string()))?;
        let value: Value = self
            .lifetime
            .invoke_connection(&self.connection_id, method, arguments)
            .await
            .map_err(|e| HubError::exception("HubException", e.to_string()))?;
        value.deserialize::<T>().map_err(|e| HubError::exception("InvalidDataException", e.to_string()))
    }

    /// The connection id this proxy targets.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

/// The clients of a hub (.NET `IHubClients`).
#[derive(Clone)]
pub struct HubClients {
    lifetime: Arc<dyn HubLifetimeManager>,
}

impl std::fmt::Debug for HubClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClients").finish_non_exhaustive()
    }
}

impl HubClients {
    pub(crate) fn new(lifetime: Arc<dyn HubLifetimeManager>) -> Self {
        Self { lifetime }
    }
    fn proxy(&self, target: Target) -> ClientProxy {
        ClientProxy { lifetime: self.lifetime.clone(), target }
    }
    /// Every connection.
    pub fn all(&self) -> ClientProxy {
        self.proxy(Target::All)
    }
    /// Every connection except these connection ids.
    pub fn all_except<I: IntoIterator<Item = S>, S: Into<String>>(&self, excluded: I) -> ClientProxy {
        self.proxy(Target::AllExcept(owned(excluded)))
    }
    /// One connection, by id.
    pub fn client(&self, connection_id: impl Into<String>) -> SingleClientProxy {
        SingleClientProxy { lifetime: self.lifetime.clone(), connection_id: connection_id.into() }
    }
    /// Several connections, by id.
    pub fn clients<I: IntoIterator<Item = S>, S: Into<String>>(&self, connection_ids: I) -> ClientProxy {
        self.proxy(Target::Connections(owned(connection_ids)))
    }
    /// The members of a group.
    pub fn group(&self, group: impl Into<String>) -> ClientProxy {
        self.proxy(Target::Group(group.into()))
    }
    /// The members of several groups.
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(&self, groups: I) -> ClientProxy {
        self.proxy(Target::Groups(owned(groups)))
    }
    /// The members of a group except these connection ids.
    pub fn group_except<I: IntoIterator<Item = S>, S: Into<String>>(&self, group: impl Into<String>, excluded: I) -> ClientProxy {
        self.proxy(Target::GroupExcept(group.into(), owned(excluded)))
    }
    /// Every connection of a user (by user identifier).
    pub fn user(&self, user_id: impl Into<String>) -> ClientProxy {
        self.proxy(Target::User(user_id.into()))
    }
    /// Every connection of several users.
    pub fn users<I: IntoIterator<Item = S>, S: Into<String>>(&self, user_ids: I) -> ClientProxy {
        self.proxy(Target::Users(owned(user_ids)))
    }
}

/// The clients as seen from a hub method (.NET `IHubCallerClients`): [`HubClients`] plus the
/// caller-relative targets. Derefs to [`HubClients`].
#[derive(Clone, Debug)]
pub struct HubCallerClients {
    clients: HubClients,
    caller_id: String,
}

impl HubCallerClients {
    pub(crate) fn new(clients: HubClients, caller_id: String) -> Self {
        Self { clients, caller_id }
    }
    /// The calling connection.
    pub fn caller(&self) -> SingleClientProxy {
        self.clients.client(self.caller_id.clone())
    }
    /// Every connection except the caller.
    pub fn others(&self) -> ClientProxy {
        self.clients.all_except([self.caller_id.clone()])
    }
    /// The members of a group except the caller.
    pub fn others_in_group(&self, group: impl Into<String>) -> ClientProxy {
        self.clients.group_except(group, [self.caller_id.clone()])
    }
}

impl std::ops::Deref for HubCallerClients {
    type Target = HubClients;
    fn deref(&self) -> &HubClients {
        &self.clients
    }
}

/// Group membership of connections (.NET `IGroupManager`); works for connections on any node
/// when a backplane is in use.
#[derive(Clone)]
pub struct GroupManager {
    lifetime: Arc<dyn HubLifetimeManager>,
}

impl std::fmt::Debug for GroupManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupManager").finish_non_exhaustive()
    }
}

impl GroupManager {
    pub(crate) fn new(lifetime: Arc<dyn HubLifetimeManager>) -> Self {
        Self { lifetime }
    }
    /// Adds a connection to a group.
    pub async fn add_to_group(&self, connection_id: &str, group: &str) -> Result<(), HubError> {
        self.lifetime.add_to_group(connection_id, group).await.map_err(HubError::from)
    }
    /// Removes a connection from a group.
    pub async fn remove_from_group(&self, connection_id: &str, group: &str) -> Result<(), HubError> {
        self.lifetime.remove_from_group(connection_id, group).await.map_err(HubError::from)
    }
}

/// Sends to a hub's clients from outside hub methods (.NET `IHubContext<THub>`): background
/// jobs, HTTP handlers, timers. Clone it freely and use it from any task.
#[derive(Clone)]
pub struct HubContext {
    lifetime: Arc<dyn HubLifetimeManager>,
}

impl std::fmt::Debug for HubContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubContext").finish_non_exhaustive()
    }
}

impl HubContext {
    /// A context over a lifetime manager (normally from [`crate::HubService::context`]).
    pub fn new(lifetime: Arc<dyn HubLifetimeManager>) -> Self {
        Self { lifetime }
    }
    /// The hub's clients.
    pub fn clients(&self) -> HubClients {
        HubClients::new(self.lifetime.clone())
    }
    /// The hub's groups.
    pub fn groups(&self) -> GroupManager {
        GroupManager::new(self.lifetime.clone())
    }
    /// Invokes `method` on one client and waits for its result (client results); shorthand for
    /// `clients().client(connection_id).invoke(method, args)`.
    pub async fn invoke<T: DeserializeOwned, A: OutgoingArgs + Send + Sync>(
        &self,
        connection_id: &str,
        method: &str,
        args: A,
    ) -> Result<T, HubError> {
        self.clients().client(connection_id).invoke(method, args).await
    }

    /// The lifetime manager underneath.
    pub fn lifetime_manager(&self) -> &Arc<dyn HubLifetimeManager> {
        &self.lifetime
    }
}
