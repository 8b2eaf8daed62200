//! The typed settings Diquis runs with, validated once at start.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::connection_string::{DatabaseTarget, parse_database};
use super::source::Configuration;

/// A configuration value is missing or wrong; the message names the key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("configuration key '{key}' {problem}")]
pub struct ConfigError {
    /// The key, as .NET users write it (`ConnectionStrings:DefaultConnection`).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// An error for `key`.
    pub fn new(key: &str, problem: impl Into<String>) -> Self {
        Self { key: key.to_string(), problem: problem.into() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `Jwt:*`.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// `Jwt:Key`: HMAC-SHA256 key, at least 32 bytes. `None`: a random key kept in the database.
    pub key: Option<String>,
    /// `Jwt:Issuer` (default `Diquis`).
    pub issuer: String,
    /// `Jwt:Audience` (default `Diquis`).
    pub audience: String,
    /// `Jwt:ExpiryMinutes`: access-token lifetime (default 60).
    pub expiry_minutes: i64,
    /// `Jwt:RefreshTokenDays`: refresh-token lifetime (default 7).
    pub refresh_days: i64,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("expiry_minutes", &self.expiry_minutes)
            .finish()
    }
}

/// `Seed:*`: the first root administrator.
#[derive(Clone, PartialEq, Eq)]
pub struct SeedSettings {
    /// `Seed:AdminEmail` (default `admin@diquis.local`).
    pub admin_email: String,
    /// `Seed:AdminPassword`; `None`: a random one is generated and printed once.
    pub admin_password: Option<String>,
}

impl std::fmt::Debug for SeedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedSettings").field("admin_email", &self.admin_email).finish_non_exhaustive()
    }
}

/// Everything Diquis reads from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DOTNET_ENVIRONMENT`/`ASPNETCORE_ENVIRONMENT`/`--environment` (default `Production`).
    pub environment: String,
    /// `ConnectionStrings:DefaultConnection` (default: SQLite file `diquis.db`).
    pub database: DatabaseTarget,
    /// `ConnectionStrings:HangfireConnection` (default: the same as `database`).
    pub job_storage: DatabaseTarget,
    /// `ConnectionStrings:RedisConnection` (StackExchange.Redis format); `None`: in-process backplane.
    pub redis: Option<String>,
    /// `SignalR:ChannelPrefix` (default `Diquis`).
    pub channel_prefix: String,
    /// `SignalR:Redis:ShardedPubSub` (default false): sharded Pub/Sub on a Redis 7 cluster
    /// (`SSUBSCRIBE`/`SPUBLISH`); every node must set it, and no .NET node can share the fleet.
    pub redis_sharded: bool,
    /// `Cors:AllowedOrigins`.
    pub cors_origins: Vec<String>,
    /// `Jwt:*`.
    pub jwt: JwtSettings,
    /// `Urls` (`;`-separated), as socket addresses; `None`: the process's default port.
    pub urls: Option<Vec<SocketAddr>>,
    /// `Notifications:BroadcastToAll`: send tenant events to every connection, like .NET Diquis.
    pub broadcast_to_all: bool,
    /// `Seed:*`.
    pub seed: SeedSettings,
    /// `Logging:Format` or `Logging:Console:FormatterName` (`json` or `simple`).
    pub log_format: LogFormat,
    /// `Logging:LogLevel:Default` as a tracing filter (default `info`).
    pub log_filter: String,
    /// `Jobs:WorkerCount`: concurrent job workers in the jobs process (default 10, like Hangfire).
    pub job_workers: usize,
    /// `Jobs:LeaseSeconds`: how long a job's lease lasts without a heartbeat; a job whose process
    /// died runs again after this (default 30).
    pub job_lease_seconds: u64,
    /// `Jobs:TenantRetry:Attempts`: executions in all of a tenant job before it stays Failed
    /// (default 11: Hangfire's 10 retries).
    pub tenant_job_attempts: u32,
    /// `Jobs:TenantRetry:Delay`: a fixed wait between a tenant job's attempts (a TimeSpan);
    /// `None` (the default) is Hangfire's back-off, `(n−1)⁴ + 15 + rand(0..30)·n` seconds.
    pub tenant_job_retry_delay: Option<Duration>,
    /// `Diquis:DataDirectory`: where isolated SQLite tenant databases go (default: next to the main file).
    pub data_directory: Option<PathBuf>,
    /// `SignalR:*` timeouts of the notification hub, as .NET's `HubOptions`.
    pub hub: HubTimeouts,
    /// `SignalR:*` limits of the hub endpoint (connections, buffers, timeouts).
    pub hub_limits: super::hub_limits::HubLimits,
    /// `Security:*` and `ForwardedHeaders:*` (sign-in limits, lockout, hashing pool, proxies).
    pub security: crate::security::SecuritySettings,
    /// `Kestrel:Limits:*`: the HTTP server's timeouts and size limits (Kestrel's defaults).
    pub http_limits: signalr_connections::server::HttpLimits,
}

/// The hub's timeouts (`SignalR:HandshakeTimeout`, `SignalR:KeepAliveInterval`,
/// `SignalR:ClientTimeoutInterval`), as .NET `TimeSpan`s; .NET's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubTimeouts {
    /// How long a new connection has to send its handshake (default 15 s).
    pub handshake: Duration,
    /// How often an idle connection is pinged (default 15 s).
    pub keep_alive: Duration,
    /// How long the server waits for anything from a client before closing it (default 30 s).
    pub client_timeout: Duration,
}

impl Default for HubTimeouts {
    fn default() -> Self {
        Self { handshake: Duration::from_secs(15), keep_alive: Duration::from_secs(15), client_timeout: Duration::from_secs(30) }
    }
}

/// The default SQLite file of the quick start.
pub const DEFAULT_SQLITE_FILE: &str = "diquis.db";

impl Settings {
    /// Reads and validates every key; the first problem found is returned.
    pub fn from_configuration(c: &Configuration) -> Result<Self, ConfigError> {
        let environment = c.get("Environment").filter(|s| !s.is_empty()).unwrap_or("Production").to_string();

        let database = match nonempty(c, "ConnectionStrings:DefaultConnection") {
            Some(v) => parse_database(v).map_err(|p| ConfigError::new("ConnectionStrings:DefaultConnection", p.to_string()))?,
            None => DatabaseTarget::Sqlite { path: PathBuf::from(DEFAULT_SQLITE_FILE) },
        };
        let job_storage = match nonempty(c, "ConnectionStrings:HangfireConnection") {
            Some(v) => parse_database(v).map_err(|p| ConfigError::new("ConnectionStrings:HangfireConnection", p.to_string()))?,
            None => database.clone(),
        };
        let redis = match c.get("ConnectionStrings:RedisConnection") {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(ConfigError::new(
                    "ConnectionStrings:RedisConnection",
                    "is empty (remove the key to use the in-process backplane, or give host:port)",
                ));
            }
            Some(v) => Some(v.trim().to_string()),
        };
        let channel_prefix = c.get("SignalR:ChannelPrefix").unwrap_or("Diquis").to_string();
        if channel_prefix.is_empty() {
            return Err(ConfigError::new("SignalR:ChannelPrefix", "is empty (the .NET default is Diquis)"));
        }
        let cors_origins = c.get_list("Cors:AllowedOrigins");
        for o in &cors_origins {
            if o == "*" {
                return Err(ConfigError::new(
                    "Cors:AllowedOrigins",
                    "contains '*', which cannot be combined with credentials (list the origins)",
                ));
            }
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.trim_end_matches('/').matches('/').count() != 2 {
                return Err(ConfigError::new(
                    "Cors:AllowedOrigins",
                    format!("contains '{o}', which is not an origin like http://localhost:3000"),
                ));
            }
        }
        let jwt = JwtSettings {
            key: match c.get("Jwt:Key") {
                None => None,
                Some(k) if k.len() < 32 => {
                    return Err(ConfigError::new("Jwt:Key", format!("is {} bytes long; HS256 needs at least 32", k.len())));
                }
                Some(k) => Some(k.to_string()),
            },
            issuer: c.get("Jwt:Issuer").unwrap_or("Diquis").to_string(),
            audience: c.get("Jwt:Audience").unwrap_or("Diquis").to_string(),
            expiry_minutes: parse_number(c, "Jwt:ExpiryMinutes", 60, 1, 60 * 24 * 30)?,
            refresh_days: parse_number(c, "Jwt:RefreshTokenDays", 7, 1, 365)?,
        };
        let urls = match nonempty(c, "Urls") {
            None => None,
            Some(v) => Some(parse_urls(v).map_err(|p| ConfigError::new("Urls", p))?),
        };
        let broadcast_to_all = parse_bool(c, "Notifications:BroadcastToAll", false)?;
        let redis_sharded = parse_bool(c, "SignalR:Redis:ShardedPubSub", false)?;
        let admin_email = c.get("Seed:AdminEmail").unwrap_or("admin@diquis.local").trim().to_string();
        if !crate::tenants::validation::is_email(&admin_email) {
            return Err(ConfigError::new("Seed:AdminEmail", format!("'{admin_email}' is not an email address")));
        }
        let admin_password = match c.get("Seed:AdminPassword") {
            None => None,
            Some(p) => {
                if let Some(problem) = crate::auth::password::weakness(p) {
                    return Err(ConfigError::new("Seed:AdminPassword", problem));
                }
                Some(p.to_string())
            }
        };
        let format = c.get("Logging:Format").or_else(|| c.get("Logging:Console:FormatterName"));
        let log_format = match format.map(|s| s.to_ascii_lowercase()) {
            None => LogFormat::Text,
            Some(f) if f == "json" => LogFormat::Json,
            Some(f) if f == "text" || f == "simple" || f == "systemd" => LogFormat::Text,
            Some(f) => {
                let key = if c.get("Logging:Format").is_some() { "Logging:Format" } else { "Logging:Console:FormatterName" };
                return Err(ConfigError::new(key, format!("is '{f}'; expected json or simple")));
            }
        };
        let log_filter = match c.get("Logging:LogLevel:Default") {
            None => "info".to_string(),
            Some(level) => dotnet_level(level).ok_or_else(|| {
                ConfigError::new(
                    "Logging:LogLevel:Default",
                    format!("is '{level}'; expected Trace, Debug, Information, Warning, Error, Critical or None"),
                )
            })?,
        };
        let job_workers = parse_number(c, "Jobs:WorkerCount", 10, 1, 1000)? as usize;
        let job_lease_seconds = parse_number(c, "Jobs:LeaseSeconds", 30, 3, 3600)? as u64;
        let tenant_job_attempts = parse_number(c, "Jobs:TenantRetry:Attempts", 11, 1, 100)? as u32;
        let tenant_job_retry_delay = super::time_span::read_optional(c, "Jobs:TenantRetry:Delay")?;
        let data_directory = nonempty(c, "Diquis:DataDirectory").map(PathBuf::from);
        let defaults = HubTimeouts::default();
        let hub = HubTimeouts {
            handshake: super::time_span::read(c, "SignalR:HandshakeTimeout", defaults.handshake)?,
            keep_alive: super::time_span::read(c, "SignalR:KeepAliveInterval", defaults.keep_alive)?,
            client_timeout: super::time_span::read(c, "SignalR:ClientTimeoutInterval", defaults.client_timeout)?,
        };
        if hub.client_timeout <= hub.keep_alive {
            return Err(ConfigError::new(
                "SignalR:ClientTimeoutInterval",
                "must be longer than SignalR:KeepAliveInterval (.NET advises double)",
            ));
        }
        let security = crate::security::SecuritySettings::from_configuration(c)?;
        let http_limits = super::kestrel::http_limits(c)?;
        Ok(Settings {
            environment,
            database,
            job_storage,
            redis,
            channel_prefix,
            redis_sharded,
            cors_origins,
            jwt,
            urls,
            broadcast_to_all,
            seed: SeedSettings { admin_email, admin_password },
            log_format,
            log_filter,
            job_workers,
            job_lease_seconds,
            tenant_job_attempts,
            tenant_job_retry_delay,
            data_directory,
            hub,
            hub_limits: super::hub_limits::HubLimits::from_configuration(c)?,
            security,
            http_limits,
        })
    }
}

fn nonempty<'a>(c: &'a Configuration, key: &str) -> Option<&'a str> {
    c.get(key).map(str::trim).filter(|s| !s.is_empty())
}

fn parse_number(c: &Configuration, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
    match c.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(n) => Err(ConfigError::new(key, format!("is {n}; expected {min} to {max}"))),
            Err(_) => Err(ConfigError::new(key, format!("is '{v}', not a whole number"))),
        },
    }
}

fn parse_bool(c: &Configuration, key: &str, default: bool) -> Result<bool, ConfigError> {
    match c.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConfigError::new(key, format!("is '{v}'; expected true or false"))),
    }
}

fn dotnet_level(level: &str) -> Option<String> {
    Some(
        match level.trim().to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "information" | "info" => "info",
            "warning" | "warn" => "warn",
            "error" | "critical" => "error",
            "none" => "off",
            _ => return None,
        }
        .to_string(),
    )
}

/// Parses ASP.NET Core's `Urls`: `http://host:port` entries separated by `;`.
/// `*`, `+` and `0.0.0.0` listen on every interface; `localhost` on 127.0.0.1.
pub fn parse_urls(value: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for url in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(format!("has '{url}': HTTPS is not served directly; put a TLS-terminating proxy in front"));
        } else {
            return Err(format!("has '{url}', which is not an http://host:port address"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("has '{url}' without a port (http://host:port)"))?;
        let port: u16 = port.parse().map_err(|_| format!("has '{url}': '{port}' is not a port number"))?;
        let ip: IpAddr = match host {
            "*" | "+" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("has '{url}': '{h}' is not an IP address, localhost or *"))?,
        };
        out.push(SocketAddr::new(ip, port));
    }
    if out.is_empty() {
        return Err("lists no address".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut c = Configuration::new();
        for (k, v) in pairs {
            c.set(k, *v, "test");
        }
        Settings::from_configuration(&c)
    }

    #[test]
    fn defaults_are_the_quick_start() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database, DatabaseTarget::Sqlite { path: DEFAULT_SQLITE_FILE.into() });
        assert_eq!(s.job_storage, s.database);
        assert!(s.redis.is_none());
        assert_eq!(s.channel_prefix, "Diquis");
        assert_eq!(s.jwt.expiry_minutes, 60);
        assert!(!s.broadcast_to_all);
        assert!(s.seed.admin_password.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn hangfire_connection_defaults_to_default_connection() {
        let s = settings(&[("ConnectionStrings:DefaultConnection", "Host=h;Database=d;Username=u")]).unwrap();
        assert!(matches!(s.job_storage, DatabaseTarget::Postgres(_)));
        let s = settings(&[
            ("ConnectionStrings:DefaultConnection", "Host=h;Database=d;Username=u"),
            ("ConnectionStrings:HangfireConnection", "jobs.db"),
        ])
        .unwrap();
        assert!(matches!(s.job_storage, DatabaseTarget::Sqlite { .. }));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("ConnectionStrings:DefaultConnection", "Host=h;Port=x;Database=d;Username=u"),
            ("ConnectionStrings:HangfireConnection", "Bogus=1"),
            ("ConnectionStrings:RedisConnection", " "),
            ("SignalR:ChannelPrefix", ""),
            ("Cors:AllowedOrigins", "*"),
            ("Cors:AllowedOrigins", "localhost:3000"),
            ("Jwt:Key", "short"),
            ("Jwt:ExpiryMinutes", "soon"),
            ("Jwt:ExpiryMinutes", "0"),
            ("Urls", "https://localhost:5001"),
            ("Urls", "http://localhost"),
            ("Urls", "http://example.com:80"),
            ("Notifications:BroadcastToAll", "yes"),
            ("Seed:AdminEmail", "not-an-email"),
            ("Seed:AdminPassword", "short"),
            ("Logging:Format", "xml"),
            ("Logging:Console:FormatterName", "xml"),
            ("Logging:LogLevel:Default", "loud"),
            ("Jobs:WorkerCount", "-1"),
            ("Jobs:LeaseSeconds", "1"),
            ("Jobs:TenantRetry:Attempts", "0"),
            ("Jobs:TenantRetry:Delay", "30"),
            ("SignalR:HandshakeTimeout", "soon"),
            ("SignalR:HandshakeTimeout", "15"),
            ("SignalR:HandshakeTimeout", "00:61:00"),
            ("SignalR:KeepAliveInterval", "1:2"),
            ("SignalR:ClientTimeoutInterval", "00:00:05"),
        ];
        for (key, value) in cases {
            let err = settings(&[(key, value)]).unwrap_err();
            assert_eq!(err.key, *key, "{key}={value}: {err}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn tenant_retry_policy_keys() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.tenant_job_attempts, s.tenant_job_retry_delay), (11, None));
        let s = settings(&[("Jobs:TenantRetry:Attempts", "2"), ("Jobs:TenantRetry:Delay", "00:01:00")]).unwrap();
        assert_eq!((s.tenant_job_attempts, s.tenant_job_retry_delay), (2, Some(Duration::from_secs(60))));
    }

    #[test]
    fn hub_timeouts_read_time_spans() {
        assert_eq!(settings(&[]).unwrap().hub, HubTimeouts::default());
        let s = settings(&[
            ("SignalR:HandshakeTimeout", "00:00:00.5"),
            ("SignalR:KeepAliveInterval", "00:00:02"),
            ("SignalR:ClientTimeoutInterval", "1.00:00:00"),
        ])
        .unwrap();
        assert_eq!(s.hub.handshake, Duration::from_millis(500));
        assert_eq!(s.hub.keep_alive, Duration::from_secs(2));
        assert_eq!(s.hub.client_timeout, Duration::from_secs(86_400));
    }

    #[test]
    fn good_values() {
        let s = settings(&[
            ("Urls", "http://localhost:5000;http://*:0"),
            ("Logging:Console:FormatterName", "json"),
            ("Notifications:BroadcastToAll", "True"),
            ("Jwt:Key", "0123456789abcdef0123456789abcdef"),
            ("ConnectionStrings:RedisConnection", "localhost:6379,abortConnect=false"),
        ])
        .unwrap();
        assert_eq!(s.urls.unwrap().len(), 2);
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.broadcast_to_all);
        assert_eq!(s.redis.as_deref(), Some("localhost:6379,abortConnect=false"));
    }
}
