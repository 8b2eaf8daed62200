//! Channel names, byte for byte as ASP.NET Core's `RedisChannels` plus StackExchange.Redis's
//! `ChannelPrefix` build them: `prefix + hubName + suffix`, with no separator after the prefix.
//!
//! For Diquis (prefix `Diquis`, hub `Diquis.Infrastructure.Hubs.NotificationHub`) the broadcast
//! channel is literally `DiquisDiquis.Infrastructure.Hubs.NotificationHub:all`.

/// The channels of one hub under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisChannels {
    prefix: String,
    hub_name: String,
    /// `prefix + hub_name`, the start of every channel of this hub.
    base: String,
}

/// What a received channel name addresses, after the prefix and hub name are stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind<'a> {
    /// `{H}:all`.
    All,
    /// `{H}:group:{group}`.
    Group(&'a str),
    /// `{H}:user:{user}`.
    User(&'a str),
    /// `{H}:connection:{connection id}`.
    Connection(&'a str),
    /// `{H}:internal:groups`.
    GroupManagement,
    /// `{H}:internal:ack:{server}`.
    Ack(&'a str),
    /// `{H}:internal:return:{server}`.
    Return(&'a str),
}

impl RedisChannels {
    /// Channels for `hub_name` (the .NET full type name of the hub, e.g.
    /// `Diquis.Infrastructure.Hubs.NotificationHub`) under `prefix` (SE.Redis's `ChannelPrefix`;
    /// empty for none).
    pub fn new(prefix: impl Into<String>, hub_name: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let hub_name = hub_name.into();
        let base = format!("{prefix}{hub_name}");
        Self { prefix, hub_name, base }
    }

    /// The channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hub's wire name.
    pub fn hub_name(&self) -> &str {
        &self.hub_name
    }

    fn with(&self, suffix: &str, name: &str) -> String {
        let mut channel = String::with_capacity(self.base.len() + suffix.len() + name.len());
        channel.push_str(&self.base);
        channel.push_str(suffix);
        channel.push_str(name);
        channel
    }

    /// `{P}{H}:all`.
    pub fn all(&self) -> String {
        self.with(":all", "")
    }

    /// `{P}{H}:group:{group}`.
    pub fn group(&self, group: &str) -> String {
        self.with(":group:", group)
    }

    /// `{P}{H}:user:{user_id}`.
    pub fn user(&self, user_id: &str) -> String {
        self.with(":user:", user_id)
    }

    /// `{P}{H}:connection:{connection_id}`.
    pub fn connection(&self, connection_id: &str) -> String {
        self.with(":connection:", connection_id)
    }

    /// `{P}{H}:internal:groups`.
    pub fn group_management(&self) -> String {
        self.with(":internal:groups", "")
    }

    /// `{P}{H}:internal:ack:{server_name}`.
    pub fn ack(&self, server_name: &str) -> String {
        self.with(":internal:ack:", server_name)
    }

    /// `{P}{H}:internal:return:{server_name}`.
    pub fn return_results(&self, server_name: &str) -> String {
        self.with(":internal:return:", server_name)
    }

    /// `{H}:internal:return:{server_name}` without the prefix, as written inside a client-result
    /// invocation (the receiving node's Redis client adds its own prefix).
    pub fn return_results_unprefixed(&self, server_name: &str) -> String {
        format!("{}:internal:return:{server_name}", self.hub_name)
    }

    /// Adds the prefix to a channel name that was carried inside a payload.
    pub fn prefixed(&self, unprefixed: &str) -> String {
        format!("{}{unprefixed}", self.prefix)
    }

    /// Classifies a received (prefixed) channel name; `None` for channels of other hubs or
    /// prefixes.
    pub fn classify<'a>(&self, channel: &'a str) -> Option<ChannelKind<'a>> {
        let rest = channel.strip_prefix(self.base.as_str())?;
        if rest == ":all" {
            return Some(ChannelKind::All);
        }
        if rest == ":internal:groups" {
            return Some(ChannelKind::GroupManagement);
        }
        if let Some(name) = rest.strip_prefix(":group:") {
            return Some(ChannelKind::Group(name));
        }
        if let Some(name) = rest.strip_prefix(":user:") {
            return Some(ChannelKind::User(name));
        }
        if let Some(name) = rest.strip_prefix(":connection:") {
            return Some(ChannelKind::Connection(name));
        }
        if let Some(name) = rest.strip_prefix(":internal:ack:") {
            return Some(ChannelKind::Ack(name));
        }
        if let Some(name) = rest.strip_prefix(":internal:return:") {
            return Some(ChannelKind::Return(name));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = "Diquis.Infrastructure.Hubs.NotificationHub";

    #[test]
    fn diquis_channels_byte_for_byte() {
        let channels = RedisChannels::new("Diquis", HUB);
        assert_eq!(channels.all(), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:all");
        assert_eq!(channels.group("tenant:acme"), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:group:tenant:acme");
        assert_eq!(channels.user("admin@email.com.root"), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:user:admin@email.com.root");
        assert_eq!(channels.connection("AbC_-"), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:connection:AbC_-");
        assert_eq!(channels.group_management(), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:internal:groups");
        assert_eq!(channels.ack("web01_x"), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:internal:ack:web01_x");
        assert_eq!(channels.return_results("web01_x"), "DiquisDiquis.Infrastructure.Hubs.NotificationHub:internal:return:web01_x");
        assert_eq!(channels.return_results_unprefixed("web01_x"), "Diquis.Infrastructure.Hubs.NotificationHub:internal:return:web01_x");
        assert_eq!(channels.prefixed(&channels.return_results_unprefixed("s")), channels.return_results("s"));
    }

    #[test]
    fn no_prefix_and_other_hub_names() {
        let channels = RedisChannels::new("", "Diquis.Infrastructure.Services.NotificationHub");
        assert_eq!(channels.all(), "Diquis.Infrastructure.Services.NotificationHub:all");
        // Names are inserted verbatim: case kept, no escaping, UTF-8.
        assert_eq!(channels.group("Grüße*[x]"), "Diquis.Infrastructure.Services.NotificationHub:group:Grüße*[x]");
    }

    #[test]
    fn classify_round_trips_every_channel() {
        let channels = RedisChannels::new("Diquis", HUB);
        assert_eq!(channels.classify(&channels.all()), Some(ChannelKind::All));
        assert_eq!(channels.classify(&channels.group("a:b")), Some(ChannelKind::Group("a:b")));
        assert_eq!(channels.classify(&channels.user("u")), Some(ChannelKind::User("u")));
        assert_eq!(channels.classify(&channels.connection("c")), Some(ChannelKind::Connection("c")));
        assert_eq!(channels.classify(&channels.group_management()), Some(ChannelKind::GroupManagement));
        assert_eq!(channels.classify(&channels.ack("s")), Some(ChannelKind::Ack("s")));
        assert_eq!(channels.classify(&channels.return_results("s")), Some(ChannelKind::Return("s")));
        assert_eq!(channels.classify("Other:all"), None);
        assert_eq!(channels.classify(&format!("Diquis{HUB}:nope")), None);
        assert_eq!(channels.classify(&format!("{HUB}:all")), None, "prefix required");
    }
}
