//! [`HubConnectionStore`]: the connections of this node, by id, group and user.
//!
//! One store serves every lifetime manager (ASP.NET Core shares its `HubConnectionStore`
//! between the default and the Redis manager the same way), so a fix to group or user
//! bookkeeping is made once. All three maps sit under one lock, held briefly and never across
//! an await: a change touches them together, and a backplane subscribes or unsubscribes a
//! channel while holding it, so that a join and a leave of the same group cannot reorder their
//! SUBSCRIBE and UNSUBSCRIBE.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::connection::HubConnection;

/// The members of one group or the connections of one user, by connection id.
type Members = HashMap<String, Arc<dyn HubConnection>>;

/// One connection and the groups it is in (to leave them on disconnect). Kept small: a
/// broadcast walks these entries, and a key and an entry fill one 64-byte cache line.
struct Entry {
    connection: Arc<dyn HubConnection>,
    groups: Vec<String>,
}

/// The connections of this node, safe to share: [`HubConnectionStore::read`] for a send,
/// [`HubConnectionStore::write`] for a change.
#[derive(Default)]
pub struct HubConnectionStore {
    state: RwLock<LocalConnections>,
}

impl std::fmt::Debug for HubConnectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.read();
        f.debug_struct("HubConnectionStore")
            .field("connections", &state.connections.len())
            .field("groups", &state.groups.len())
            .field("users", &state.users.len())
            .finish()
    }
}

impl HubConnectionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shared access, for sends. Do not hold it across an await.
    pub fn read(&self) -> StoreRead<'_> {
        StoreRead(self.state.read())
    }

    /// Exclusive access, for changes. Do not hold it across an await.
    pub fn write(&self) -> StoreWrite<'_> {
        StoreWrite(self.state.write())
    }

    /// The connection with this id, if it is on this node.
    pub fn get(&self, connection_id: &str) -> Option<Arc<dyn HubConnection>> {
        self.state.read().connections.get(connection_id).map(|entry| entry.connection.clone())
    }

    /// Whether the connection with this id is on this node.
    pub fn contains(&self, connection_id: &str) -> bool {
        self.state.read().connections.contains_key(connection_id)
    }

    /// How many connections are on this node.
    pub fn len(&self) -> usize {
        self.state.read().connections.len()
    }

    /// Whether no connection is on this node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shared access to a [`HubConnectionStore`], from [`HubConnectionStore::read`].
pub struct StoreRead<'a>(RwLockReadGuard<'a, LocalConnections>);

impl std::ops::Deref for StoreRead<'_> {
    type Target = LocalConnections;
    fn deref(&self) -> &LocalConnections {
        &self.0
    }
}

/// Exclusive access to a [`HubConnectionStore`], from [`HubConnectionStore::write`].
pub struct StoreWrite<'a>(RwLockWriteGuard<'a, LocalConnections>);

impl std::ops::Deref for StoreWrite<'_> {
    type Target = LocalConnections;
    fn deref(&self) -> &LocalConnections {
        &self.0
    }
}

impl std::ops::DerefMut for StoreWrite<'_> {
    fn deref_mut(&mut self) -> &mut LocalConnections {
        &mut self.0
    }
}

/// What [`LocalConnections::remove`] took out, for a backplane to unsubscribe what nobody here
/// needs any more.
pub struct Removed {
    /// The connection.
    pub connection: Arc<dyn HubConnection>,
    /// The groups it was the last member of on this node.
    pub emptied_groups: Vec<String>,
    /// Whether it was the last connection of its user on this node.
    pub emptied_user: bool,
}

/// The maps behind a [`HubConnectionStore`]: connections by id, group members, and the
/// connections of each user (a connection whose user identifier is absent or empty has no user,
/// as in ASP.NET Core's Redis manager).
///
/// The sending methods return `(connection id, connection)` pairs, `Clone` so that a
/// [`crate::Fanout`] can look ahead; [`excluding`] drops excluded ids from any of them.
#[derive(Default)]
pub struct LocalConnections {
    connections: HashMap<String, Entry>,
    groups: HashMap<String, Members>,
    users: HashMap<String, Members>,
}

/// A connection's user, if it has one worth indexing.
fn user_of(connection: &dyn HubConnection) -> Option<&str> {
    connection.user_identifier().filter(|user| !user.is_empty())
}

/// Pairs from a member map, in the form every sending method returns.
fn pairs(members: &Members) -> impl Iterator<Item = (&str, &dyn HubConnection)> + Clone {
    members.iter().map(|(id, connection)| (id.as_str(), connection.as_ref()))
}

impl LocalConnections {
    /// Adds a connection that finished its handshake here. Returns whether it is the first
    /// connection of its user on this node (false when it has no user).
    ///
    /// Connection ids are unique; a second connection with the same id replaces the first in
    /// the id map only, so the caller must [`LocalConnections::remove`] the first beforehand.
    pub fn insert(&mut self, connection: Arc<dyn HubConnection>) -> bool {
        let id = connection.connection_id().to_owned();
        let mut first_of_user = false;
        if let Some(user) = user_of(connection.as_ref()) {
            let members = self.users.entry(user.to_owned()).or_default();
            first_of_user = members.is_empty();
            members.insert(id.clone(), connection.clone());
        }
        self.connections.insert(id, Entry { connection, groups: Vec::new() });
        first_of_user
    }

    /// Removes a connection with its group memberships and user entry; `None` when it was not
    /// here.
    pub fn remove(&mut self, connection_id: &str) -> Option<Removed> {
        let Entry { connection, mut groups } = self.connections.remove(connection_id)?;
        groups.retain(|group| self.leave(connection_id, group));
        let mut emptied_user = false;
        if let Some(user) = user_of(connection.as_ref())
            && let MapEntry::Occupied(mut members) = self.users.entry(user.to_owned())
        {
            members.get_mut().remove(connection_id);
            if members.get().is_empty() {
                members.remove();
                emptied_user = true;
            }
        }
        Some(Removed { connection, emptied_groups: groups, emptied_user })
    }

    /// Adds a connection of this node to a group. `None` when the connection is not here;
    /// otherwise whether the group got its first member on this node now (false when the
    /// connection was a member already).
    pub fn add_to_group(&mut self, connection_id: &str, group: &str) -> Option<bool> {
        let entry = self.connections.get_mut(connection_id)?;
        if entry.groups.iter().any(|g| g == group) {
            return Some(false);
        }
        entry.groups.push(group.to_owned());
        let members = self.groups.entry(group.to_owned()).or_default();
        let first = members.is_empty();
        members.insert(connection_id.to_owned(), entry.connection.clone());
        Some(first)
    }

    /// Removes a connection of this node from a group. `None` when the connection is not here;
    /// otherwise whether the group has no member left on this node because of it.
    pub fn remove_from_group(&mut self, connection_id: &str, group: &str) -> Option<bool> {
        let entry = self.connections.get_mut(connection_id)?;
        let before = entry.groups.len();
        entry.groups.retain(|g| g != group);
        if entry.groups.len() == before {
            return Some(false);
        }
        Some(self.leave(connection_id, group))
    }

    /// Takes a connection out of a group's members; returns whether the group became empty
    /// (and was dropped).
    fn leave(&mut self, connection_id: &str, group: &str) -> bool {
        let Some(members) = self.groups.get_mut(group) else { return false };
        members.remove(connection_id);
        if !members.is_empty() {
            return false;
        }
        self.groups.remove(group);
        true
    }

    /// The connection with this id, if it is here.
    pub fn get(&self, connection_id: &str) -> Option<&Arc<dyn HubConnection>> {
        self.connections.get(connection_id).map(|entry| &entry.connection)
    }

    /// Whether the connection with this id is here.
    pub fn contains(&self, connection_id: &str) -> bool {
        self.connections.contains_key(connection_id)
    }

    /// How many connections are here.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether no connection is here.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// How many groups have a member here.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Every connection here.
    pub fn all(&self) -> impl Iterator<Item = (&str, &dyn HubConnection)> + Clone {
        self.connections.iter().map(|(id, entry)| (id.as_str(), entry.connection.as_ref()))
    }

    /// The connections with these ids that are here, in the order given.
    pub fn connections<'a>(&'a self, ids: &'a [String]) -> impl Iterator<Item = (&'a str, &'a dyn HubConnection)> + Clone {
        ids.iter().filter_map(|id| self.connections.get_key_value(id)).map(|(id, entry)| (id.as_str(), entry.connection.as_ref()))
    }

    /// The members of a group here; `None` when it has none.
    pub fn group(&self, group: &str) -> Option<impl Iterator<Item = (&str, &dyn HubConnection)> + Clone> {
        self.groups.get(group).map(pairs)
    }

    /// The members of several groups here (a connection in two of them comes twice, as in .NET).
    pub fn groups<'a>(&'a self, groups: &'a [String]) -> impl Iterator<Item = (&'a str, &'a dyn HubConnection)> + Clone {
        groups.iter().filter_map(|group| self.groups.get(group)).flat_map(pairs)
    }

    /// The connections of a user here; `None` when it has none.
    pub fn user(&self, user: &str) -> Option<impl Iterator<Item = (&str, &dyn HubConnection)> + Clone> {
        self.users.get(user).map(pairs)
    }

    /// The connections of several users here.
    pub fn users<'a>(&'a self, users: &'a [String]) -> impl Iterator<Item = (&'a str, &'a dyn HubConnection)> + Clone {
        users.iter().filter_map(|user| self.users.get(user)).flat_map(pairs)
    }
}

/// `recipients` without the connections whose id is in `excluded`.
pub fn excluding<'a, I>(recipients: I, excluded: &'a [String]) -> impl Iterator<Item = (&'a str, &'a dyn HubConnection)> + Clone + 'a
where
    I: Iterator<Item = (&'a str, &'a dyn HubConnection)> + Clone + 'a,
{
    recipients.filter(move |(id, _)| !excluded.iter().any(|e| e == id))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use signalr_protocol::{HubProtocol, JsonHubProtocol};

    use super::*;
    use crate::error::SendError;

    struct Named {
        id: String,
        user: Option<String>,
    }

    impl HubConnection for Named {
        fn connection_id(&self) -> &str {
            &self.id
        }
        fn user_identifier(&self) -> Option<&str> {
            self.user.as_deref()
        }
        fn protocol(&self) -> &dyn HubProtocol {
            &JsonHubProtocol
        }
        fn send_encoded(&self, _frame: Bytes) -> Result<(), SendError> {
            Ok(())
        }
        fn abort(&self) {}
    }

    fn named(id: &str, user: Option<&str>) -> Arc<dyn HubConnection> {
        Arc::new(Named { id: id.into(), user: user.map(Into::into) })
    }

    fn ids<'a>(recipients: impl Iterator<Item = (&'a str, &'a dyn HubConnection)>) -> Vec<String> {
        let mut ids: Vec<String> = recipients
            .map(|(id, connection)| {
                assert_eq!(id, connection.connection_id());
                id.to_owned()
            })
            .collect();
        ids.sort();
        ids
    }

    /// The first and last members are reported, which a backplane turns into SUBSCRIBE and
    /// UNSUBSCRIBE; a removed connection leaves every group and its user.
    #[test]
    fn membership_changes_report_first_and_last_members() {
        let store = HubConnectionStore::new();
        let mut local = store.write();
        assert!(local.insert(named("a", Some("u"))));
        assert!(!local.insert(named("b", Some("u"))));
        assert!(!local.insert(named("c", Some(""))), "an empty user id is no user");
        assert!(!local.insert(named("d", None)));
        assert_eq!(local.add_to_group("a", "g"), Some(true));
        assert_eq!(local.add_to_group("a", "g"), Some(false), "already a member");
        assert_eq!(local.add_to_group("c", "g"), Some(false));
        assert_eq!(local.add_to_group("c", "h"), Some(true));
        assert_eq!(local.add_to_group("zz", "g"), None);
        assert_eq!(local.remove_from_group("zz", "g"), None);
        assert_eq!(local.remove_from_group("d", "g"), Some(false), "not a member");
        assert_eq!(ids(local.group("g").unwrap()), ["a", "c"]);
        assert_eq!(ids(local.user("u").unwrap()), ["a", "b"]);
        assert!(local.user("").is_none());

        let removed = local.remove("c").unwrap();
        assert_eq!(removed.connection.connection_id(), "c");
        assert_eq!(removed.emptied_groups, ["h"]);
        assert!(!removed.emptied_user);
        assert!(local.group("h").is_none());
        assert!(local.remove("c").is_none());
        assert!(!local.remove("a").unwrap().emptied_user);
        assert!(local.group("g").is_none());
        assert_eq!(local.group_count(), 0);
        let removed = local.remove("b").unwrap();
        assert!(removed.emptied_user && removed.emptied_groups.is_empty());
        assert!(local.user("u").is_none());
        drop(local);
        assert_eq!(store.len(), 1);
        assert!(store.contains("d") && store.get("a").is_none());
    }

    /// A broadcast walks the connection map: a key and its entry must stay one cache line.
    #[test]
    fn a_connection_entry_fits_a_cache_line() {
        assert!(std::mem::size_of::<(String, Entry)>() <= 64, "{} bytes", std::mem::size_of::<(String, Entry)>());
    }

    #[test]
    fn sends_select_and_exclude_by_id() {
        let store = HubConnectionStore::new();
        let mut local = store.write();
        for (id, user) in [("a", Some("u1")), ("b", Some("u2")), ("c", None)] {
            local.insert(named(id, user));
        }
        local.add_to_group("a", "g1");
        local.add_to_group("b", "g1");
        local.add_to_group("b", "g2");
        assert_eq!(local.remove_from_group("b", "g2"), Some(true));
        local.add_to_group("c", "g2");
        let excluded = ["b".to_string()];
        assert_eq!(ids(local.all()), ["a", "b", "c"]);
        assert_eq!(ids(excluding(local.all(), &excluded)), ["a", "c"]);
        assert_eq!(ids(local.groups(&["g1".into(), "g2".into(), "none".into()])), ["a", "b", "c"]);
        assert_eq!(ids(excluding(local.group("g1").unwrap(), &excluded)), ["a"]);
        assert_eq!(ids(local.users(&["u1".into(), "u2".into()])), ["a", "b"]);
        assert_eq!(ids(local.connections(&["c".into(), "zz".into(), "a".into()])), ["a", "c"]);
    }
}
