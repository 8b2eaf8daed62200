//! Redis connection settings from the strings users already write.
//!
//! Two forms are accepted:
//!
//! * **StackExchange.Redis configuration strings**, as in `appsettings.json` of an ASP.NET
//!   application: comma-separated endpoints (`host`, `host:port`, `[::1]:port`) and `key=value`
//!   options, keys case-insensitive: `password`, `user`, `ssl`, `abortConnect`,
//!   `defaultDatabase`, `connectTimeout`, `syncTimeout`/`asyncTimeout` (the command timeout),
//!   `name`, `channelPrefix`, `serviceName` (Sentinel: the endpoints are sentinels, default port
//!   26379, asked for the current primary of that service; `sentinelUser`/`sentinelPassword`
//!   authenticate to them). Examples: `localhost:6379`,
//!   `your-redis.redis.cache.windows.net:6380,password=yourpassword,ssl=True,abortConnect=False`,
//!   `sentinel-a,sentinel-b,sentinel-c,serviceName=mymaster,password=secret`.
//! * **URLs**: `redis://[user[:password]@]host[:port][/db]` and `rediss://…` for TLS, with the
//!   same options as query parameters (`?channelPrefix=Diquis`).
//!
//! Unknown keys: like `ConfigurationOptions.Parse`, a key StackExchange.Redis does not know is an
//! error that names it ([`ConfigError::UnknownOption`]), so a typo such as `pasword=` fails at
//! start instead of silently connecting without a password. Keys StackExchange.Redis knows but
//! that mean nothing to this backplane (`allowAdmin`, `keepAlive`, `connectRetry`, `$INFO=`, …)
//! (also `sslHost`: the certificate is checked against the host name) are accepted, logged once as a warning, and listed in [`RedisConfig::ignored_options`].
//! `abortConnect` is parsed but never aborts: a node always starts and reports itself unhealthy
//! while Redis is away (see the crate docs).

use std::time::Duration;

/// One Redis server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Parsed Redis connection settings.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Servers to try, in order; the first that accepts is used (all nodes of a fleet must end up
    /// on the same primary: Redis does not forward PUBLISH from a replica to its primary).
    pub endpoints: Vec<Endpoint>,
    /// `password=`: AUTH password.
    pub password: Option<String>,
    /// `user=`: ACL user name (Redis 6+); used together with the password.
    pub user: Option<String>,
    /// `ssl=true` or `rediss://`: TLS (rustls).
    pub ssl: bool,
    /// `abortConnect=`: recorded only; this backplane never aborts when Redis is unreachable.
    pub abort_connect: Option<bool>,
    /// `defaultDatabase=` or the URL path. Pub/Sub ignores the database; kept for completeness.
    pub default_database: Option<i64>,
    /// `connectTimeout=` (milliseconds in the string); default 5 s like StackExchange.Redis.
    pub connect_timeout: Duration,
    /// `syncTimeout=` / `asyncTimeout=` (milliseconds): how long a command may wait for Redis's
    /// answer before the connection is considered broken; default 5 s.
    pub command_timeout: Duration,
    /// `name=`: CLIENT SETNAME.
    pub client_name: Option<String>,
    /// `channelPrefix=`: prepended to every channel (no separator), as StackExchange.Redis does.
    pub channel_prefix: Option<String>,
    /// `serviceName=`: Sentinel mode. The endpoints are sentinels, asked for the primary of this
    /// service on every connect, and watched for failovers (`+switch-master`).
    pub service_name: Option<String>,
    /// `sentinelUser=`: ACL user for the sentinels (Redis 6.2+), with `sentinelPassword`.
    pub sentinel_user: Option<String>,
    /// `sentinelPassword=`: AUTH password for the sentinels (the primary uses `password`).
    pub sentinel_password: Option<String>,
    /// StackExchange.Redis options that were accepted but have no effect here.
    pub ignored_options: Vec<String>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("endpoints", &self.endpoints)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("user", &self.user)
            .field("ssl", &self.ssl)
            .field("abort_connect", &self.abort_connect)
            .field("default_database", &self.default_database)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("client_name", &self.client_name)
            .field("channel_prefix", &self.channel_prefix)
            .field("service_name", &self.service_name)
            .field("sentinel_user", &self.sentinel_user)
            .field("sentinel_password", &self.sentinel_password.as_ref().map(|_| "<redacted>"))
            .field("ignored_options", &self.ignored_options)
            .finish()
    }
}

impl Default for RedisConfig {
    /// `127.0.0.1:6379`, no TLS, no AUTH: what StackExchange.Redis uses when no endpoint is given.
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            password: None,
            user: None,
            ssl: false,
            abort_connect: None,
            default_database: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            client_name: None,
            channel_prefix: None,
            service_name: None,
            sentinel_user: None,
            sentinel_password: None,
            ignored_options: Vec::new(),
        }
    }
}

/// Why a connection string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The string is empty or only separators.
    #[error("the Redis connection string is empty")]
    Empty,
    /// A key StackExchange.Redis does not know either.
    #[error("Redis connection string: unknown option '{0}'")]
    UnknownOption(String),
    /// A value of the wrong form.
    #[error("Redis connection string: option '{key}' needs {expected}, got '{value}'")]
    InvalidValue {
        /// The option key as written.
        key: String,
        /// What the option needs, in words.
        expected: &'static str,
        /// The value found.
        value: String,
    },
    /// An endpoint that is not `host`, `host:port` or `[ipv6]:port`.
    #[error("Redis connection string: invalid endpoint '{0}' (expected host, host:port or [ipv6]:port)")]
    InvalidEndpoint(String),
    /// A `redis://` URL that could not be read.
    #[error("Redis URL: {0}")]
    InvalidUrl(String),
    /// `proxy=` (twemproxy, envoy) changes the topology and is not supported.
    #[error("Redis connection string: option '{0}' is not supported by this backplane")]
    Unsupported(String),
}

/// StackExchange.Redis options accepted without effect (lowercase).
const IGNORED_KEYS: &[&str] = &[
    "allowadmin",
    "checkcertificaterevocation",
    "configchannel",
    "configcheckseconds",
    "connectretry",
    "defaults",
    "highintegrity",
    "highprioritysocketthreads",
    "keepalive",
    "maintnotifications",
    "maintposteventrelaxed",
    "maintrelaxedtimeout",
    "maintrelaxedwindowmax",
    "protocol",
    "resolvedns",
    "responsetimeout",
    "setlib",
    "sslhost",
    "sslprotocols",
    "tcpkeepalive",
    "tiebreaker",
    "topologyrefreshseconds",
    "tunnel",
    "version",
    "writebuffer",
];

impl RedisConfig {
    /// Parses a StackExchange.Redis configuration string or a `redis://` / `rediss://` URL.
    pub fn parse(input: &str) -> Result<Self, ConfigError> {
        let trimmed = input.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            return Self::parse_url(trimmed);
        }
        let mut config = RedisConfig::default();
        let mut ports: Vec<Option<u16>> = Vec::new();
        for token in trimmed.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Some((key, value)) = token.split_once('=') {
                config.set_option(key.trim(), value.trim())?;
            } else {
                let (host, port) = parse_endpoint(token)?;
                config.endpoints.push(Endpoint { host, port: 0 });
                ports.push(port);
            }
        }
        if config.endpoints.is_empty() && ports.is_empty() && !trimmed.contains('=') {
            return Err(ConfigError::Empty);
        }
        // Like SE.Redis, the default port depends on TLS and Sentinel mode, which may be set
        // after the endpoint.
        let default_port = config.default_port();
        for (endpoint, port) in config.endpoints.iter_mut().zip(ports) {
            endpoint.port = port.unwrap_or(default_port);
        }
        if config.endpoints.is_empty() {
            config.endpoints.push(Endpoint { host: "127.0.0.1".into(), port: default_port });
        }
        config.warn_ignored();
        Ok(config)
    }

    fn parse_url(input: &str) -> Result<Self, ConfigError> {
        let (scheme, rest) = input.split_once("://").ok_or_else(|| ConfigError::InvalidUrl(input.into()))?;
        let mut config = RedisConfig { ssl: scheme.eq_ignore_ascii_case("rediss"), ..Default::default() };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = percent_decode(user)?;
            if !user.is_empty() {
                config.user = Some(user);
            }
            if let Some(password) = password {
                config.password = Some(percent_decode(password)?);
            }
        }
        if hostport.is_empty() {
            return Err(ConfigError::InvalidUrl(format!("'{input}' has no host")));
        }
        let (host, port) = parse_endpoint(hostport)?;
        let path = path.trim_matches('/');
        if !path.is_empty() {
            let db = path.parse::<i64>().map_err(|_| ConfigError::InvalidUrl(format!("database '{path}' in '{input}' is not a number")))?;
            config.default_database = Some(db);
        }
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                config.set_option(&percent_decode(key)?, &percent_decode(value)?)?;
            }
        }
        let port = port.unwrap_or(config.default_port());
        config.endpoints.push(Endpoint { host, port });
        config.warn_ignored();
        Ok(config)
    }

    /// The port of an endpoint written without one: 26379 for sentinels, else 6380 with TLS and
    /// 6379 without, as StackExchange.Redis does.
    fn default_port(&self) -> u16 {
        match (self.service_name.is_some(), self.ssl) {
            (true, _) => 26379,
            (false, true) => 6380,
            (false, false) => 6379,
        }
    }

    fn warn_ignored(&self) {
        if !self.ignored_options.is_empty() {
            tracing::warn!(
                options = ?self.ignored_options,
                "Redis connection string options accepted but without effect in this backplane"
            );
        }
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        if key.starts_with('$') {
            // Command renaming (`$INFO=`): not needed for PUBLISH/SUBSCRIBE.
            self.ignored_options.push(key.to_string());
            return Ok(());
        }
        let lower = key.to_ascii_lowercase();
        let text = || (!value.is_empty()).then(|| value.to_string());
        match lower.as_str() {
            "password" => self.password = text(),
            "user" => self.user = text(),
            "ssl" => self.ssl = parse_bool(key, value)?,
            "abortconnect" => self.abort_connect = Some(parse_bool(key, value)?),
            "defaultdatabase" => {
                self.default_database =
                    if value.is_empty() { None } else { Some(value.parse().map_err(|_| invalid(key, "an integer", value))?) }
            }
            "connecttimeout" => self.connect_timeout = parse_millis(key, value)?,
            "synctimeout" | "asynctimeout" => self.command_timeout = parse_millis(key, value)?,
            "name" => self.client_name = text(),
            "channelprefix" => self.channel_prefix = text(),
            "servicename" => self.service_name = text(),
            "sentineluser" => self.sentinel_user = text(),
            "sentinelpassword" => self.sentinel_password = text(),
            "proxy" => return Err(ConfigError::Unsupported(key.to_string())),
            other if IGNORED_KEYS.iter().any(|k| k.eq_ignore_ascii_case(other)) => {
                self.ignored_options.push(key.to_string());
            }
            _ => return Err(ConfigError::UnknownOption(key.to_string())),
        }
        Ok(())
    }

    /// The channel prefix, or empty when none was set.
    pub fn channel_prefix_or_empty(&self) -> &str {
        self.channel_prefix.as_deref().unwrap_or("")
    }
}

impl std::str::FromStr for RedisConfig {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedisConfig::parse(s)
    }
}

fn invalid(key: &str, expected: &'static str, value: &str) -> ConfigError {
    ConfigError::InvalidValue { key: key.to_string(), expected, value: value.to_string() }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(key, "true or false", value))
    }
}

fn parse_millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    value.parse::<u64>().map(Duration::from_millis).map_err(|_| invalid(key, "a number of milliseconds", value))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
fn parse_endpoint(token: &str) -> Result<(String, Option<u16>), ConfigError> {
    let bad = || ConfigError::InvalidEndpoint(token.to_string());
    if let Some(rest) = token.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?.parse::<u16>().map_err(|_| bad())?),
        };
        if host.is_empty() {
            return Err(bad());
        }
        return Ok((host.to_string(), port));
    }
    if token.matches(':').count() > 1 {
        // A bare IPv6 address has no port.
        return if token.parse::<std::net::Ipv6Addr>().is_ok() { Ok((token.to_string(), None)) } else { Err(bad()) };
    }
    let (host, port) = match token.split_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| bad())?)),
        None => (token, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') || host.contains('@') {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Strict decoding for URLs: a `%` must start a two-digit hex escape, and the result be UTF-8.
fn percent_decode(text: &str) -> Result<String, ConfigError> {
    let well_formed = text.split('%').skip(1).all(|rest| rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !well_formed {
        return Err(ConfigError::InvalidUrl(format!("bad percent escape in '{text}'")));
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| ConfigError::InvalidUrl(format!("'{text}' is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint { host: host.into(), port }
    }

    #[test]
    fn seed_local() {
        let config = RedisConfig::parse("localhost:6379").unwrap();
        assert_eq!(config.endpoints, vec![ep("localhost", 6379)]);
        assert!(!config.ssl);
        assert_eq!(config.password, None);
        assert_eq!(config.channel_prefix, None);
    }

    #[test]
    fn seed_azure() {
        let config =
            RedisConfig::parse("your-redis.redis.cache.windows.net:6380,password=yourpassword,ssl=True,abortConnect=False").unwrap();
        assert_eq!(config.endpoints, vec![ep("your-redis.redis.cache.windows.net", 6380)]);
        assert_eq!(config.password.as_deref(), Some("yourpassword"));
        assert!(config.ssl);
        assert_eq!(config.abort_connect, Some(false));
        assert!(config.ignored_options.is_empty());
    }

    #[test]
    fn seed_aws() {
        let config = RedisConfig::parse("your-redis.cache.amazonaws.com:6379").unwrap();
        assert_eq!(config.endpoints, vec![ep("your-redis.cache.amazonaws.com", 6379)]);
    }

    #[test]
    fn every_option_case_insensitive() {
        let config = RedisConfig::parse(
            " redis0:6380 , redis1 ,PASSWORD=p@ss;word,User=alice,SSL=true,sslhost=redis.internal,\
             defaultDatabase=3,connectTimeout=1500,syncTimeout=2500,name=web01,ChannelPrefix=Diquis,\
             allowAdmin=true,$INFO=,keepAlive=60",
        )
        .unwrap();
        // Default port with TLS is 6380, applied after all options are read.
        assert_eq!(config.endpoints, vec![ep("redis0", 6380), ep("redis1", 6380)]);
        assert_eq!(config.password.as_deref(), Some("p@ss;word"));
        assert_eq!(config.user.as_deref(), Some("alice"));
        assert!(config.ssl);
        assert_eq!(config.default_database, Some(3));
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(config.command_timeout, Duration::from_millis(2500));
        assert_eq!(config.client_name.as_deref(), Some("web01"));
        assert_eq!(config.channel_prefix.as_deref(), Some("Diquis"));
        assert_eq!(config.ignored_options, vec!["sslhost", "allowAdmin", "$INFO", "keepAlive"]);
    }

    #[test]
    fn defaults_and_ipv6() {
        let config = RedisConfig::parse("channelPrefix=Diquis").unwrap();
        assert_eq!(config.endpoints, vec![ep("127.0.0.1", 6379)]);
        let config = RedisConfig::parse("[::1]:7000,::1,[fe80::1]").unwrap();
        assert_eq!(config.endpoints, vec![ep("::1", 7000), ep("::1", 6379), ep("fe80::1", 6379)]);
        let config = RedisConfig::parse("localhost").unwrap();
        assert_eq!(config.endpoints, vec![ep("localhost", 6379)]);
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn urls() {
        let config = RedisConfig::parse("redis://localhost:6379").unwrap();
        assert_eq!(config.endpoints, vec![ep("localhost", 6379)]);
        assert!(!config.ssl);
        let config = RedisConfig::parse("rediss://alice:s%40cret@redis.example.com/2?channelPrefix=Diquis&name=n").unwrap();
        assert_eq!(config.endpoints, vec![ep("redis.example.com", 6380)]);
        assert!(config.ssl);
        assert_eq!(config.user.as_deref(), Some("alice"));
        assert_eq!(config.password.as_deref(), Some("s@cret"));
        assert_eq!(config.default_database, Some(2));
        assert_eq!(config.channel_prefix.as_deref(), Some("Diquis"));
        assert_eq!(config.client_name.as_deref(), Some("n"));
        let config = RedisConfig::parse("REDIS://:onlypassword@10.0.0.5:7001/").unwrap();
        assert_eq!(config.user, None);
        assert_eq!(config.password.as_deref(), Some("onlypassword"));
        assert_eq!(config.endpoints, vec![ep("10.0.0.5", 7001)]);
        let config = RedisConfig::parse("redis://[::1]:6390").unwrap();
        assert_eq!(config.endpoints, vec![ep("::1", 6390)]);
    }

    #[test]
    fn bad_strings_name_the_problem() {
        assert_eq!(RedisConfig::parse(""), Err(ConfigError::Empty));
        assert_eq!(RedisConfig::parse(" , ,"), Err(ConfigError::Empty));
        assert_eq!(RedisConfig::parse("localhost,pasword=x"), Err(ConfigError::UnknownOption("pasword".into())));
        let err = RedisConfig::parse("localhost,ssl=yes").unwrap_err();
        assert_eq!(err.to_string(), "Redis connection string: option 'ssl' needs true or false, got 'yes'");
        assert!(matches!(RedisConfig::parse("localhost,connectTimeout=5s"), Err(ConfigError::InvalidValue { .. })));
        assert!(matches!(RedisConfig::parse("localhost,defaultDatabase=x"), Err(ConfigError::InvalidValue { .. })));
        assert_eq!(RedisConfig::parse("localhost:99999"), Err(ConfigError::InvalidEndpoint("localhost:99999".into())));
        assert_eq!(RedisConfig::parse("host:port"), Err(ConfigError::InvalidEndpoint("host:port".into())));
        assert!(matches!(RedisConfig::parse("[::1"), Err(ConfigError::InvalidEndpoint(_))));
        assert!(matches!(RedisConfig::parse(":6379"), Err(ConfigError::InvalidEndpoint(_))));
        assert_eq!(RedisConfig::parse("localhost,proxy=Twemproxy"), Err(ConfigError::Unsupported("proxy".into())));
        assert!(matches!(RedisConfig::parse("redis://"), Err(ConfigError::InvalidUrl(_))));
        assert!(matches!(RedisConfig::parse("redis://h/abc"), Err(ConfigError::InvalidUrl(_))));
        assert!(matches!(RedisConfig::parse("redis://u:%zz@h"), Err(ConfigError::InvalidUrl(_))));
        assert_eq!(RedisConfig::parse("redis://h?bogus=1"), Err(ConfigError::UnknownOption("bogus".into())));
    }

    #[test]
    fn debug_redacts_the_password() {
        let config = RedisConfig::parse("h,password=topsecret,serviceName=m,sentinelPassword=alsosecret").unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("topsecret") && !debug.contains("alsosecret"), "{debug}");
    }

    #[test]
    fn sentinel_strings_as_dotnet_writes_them() {
        let config = RedisConfig::parse(
            "sentinel-a,sentinel-b:26380,serviceName=mymaster,password=p,sentinelUser=s,sentinelPassword=sp,abortConnect=false",
        )
        .unwrap();
        assert_eq!(config.service_name.as_deref(), Some("mymaster"));
        // Sentinels listen on 26379 unless told otherwise.
        assert_eq!(config.endpoints, vec![ep("sentinel-a", 26379), ep("sentinel-b", 26380)]);
        assert_eq!(config.password.as_deref(), Some("p"));
        assert_eq!(config.sentinel_user.as_deref(), Some("s"));
        assert_eq!(config.sentinel_password.as_deref(), Some("sp"));
        assert!(config.ignored_options.is_empty());
        let config = RedisConfig::parse("redis://sentinel:26381?serviceName=mymaster").unwrap();
        assert_eq!(config.service_name.as_deref(), Some("mymaster"));
        assert_eq!(config.endpoints, vec![ep("sentinel", 26381)]);
        let config = RedisConfig::parse("redis://sentinel?serviceName=mymaster").unwrap();
        assert_eq!(config.endpoints, vec![ep("sentinel", 26379)]);
    }
}
