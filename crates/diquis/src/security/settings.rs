//! `Security:*` and `ForwardedHeaders:*`: limits on sign-in, lockout, the password-hashing pool
//! and which proxies are trusted.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{ConfigError, Configuration};

use super::forwarded::{IpNetwork, ProxyHeaders};

/// A permit limit per window, like ASP.NET Core's `FixedWindowRateLimiterOptions`
/// (`PermitLimit`, `Window`), enforced as a token bucket that refills evenly over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in one window (also the largest burst).
    pub permit_limit: u32,
    /// The window.
    pub window: Duration,
}

/// Identity's lockout: after `max_failed_access_attempts` failed sign-ins in a row an account
/// is locked for `lockout_time_span`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// `Security:Lockout:MaxFailedAccessAttempts` (default 5; 0 disables the lockout).
    pub max_failed_access_attempts: u32,
    /// `Security:Lockout:DefaultLockoutTimeSpan` (default 5 minutes).
    pub lockout_time_span: Duration,
}

/// Which proxies may tell the client's address, scheme and host (ASP.NET Core's
/// `ForwardedHeadersOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedSettings {
    /// `ForwardedHeaders:Headers`: which headers are read.
    pub headers: ProxyHeaders,
    /// `ForwardedHeaders:KnownProxies` and `ForwardedHeaders:KnownNetworks`; default loopback.
    pub trusted: Vec<IpNetwork>,
    /// `ForwardedHeaders:ForwardLimit`: how many proxy hops are read, from the right (default 1).
    pub forward_limit: usize,
}

/// Everything under `Security:*` and `ForwardedHeaders:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// `Security:PasswordHashing:MaxConcurrency`: password verifications running at once
    /// (default: the number of cores).
    pub hash_concurrency: usize,
    /// `Security:PasswordHashing:QueueLimit`: verifications waiting for a slot; past it the
    /// sign-in is answered 503 with `Retry-After` (default 8 per slot).
    pub hash_queue: usize,
    /// `Security:RateLimit:PerAddress:*` on the sign-in and refresh endpoints.
    pub per_address: RateLimit,
    /// `Security:RateLimit:PerAccount:*` on the sign-in endpoints (tenant and email).
    pub per_account: RateLimit,
    /// `Security:Lockout:*`.
    pub lockout: LockoutSettings,
    /// `ForwardedHeaders:*`.
    pub forwarded: ForwardedSettings,
}

impl SecuritySettings {
    /// Reads and validates the keys; a wrong value names its key.
    pub fn from_configuration(c: &Configuration) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let hash_concurrency = number(c, "Security:PasswordHashing:MaxConcurrency", cores as u64, 1, 256)? as usize;
        let hash_queue = number(c, "Security:PasswordHashing:QueueLimit", 8 * hash_concurrency as u64, 0, 100_000)? as usize;
        let per_address = rate_limit(c, "Security:RateLimit:PerAddress", 30, 60)?;
        let per_account = rate_limit(c, "Security:RateLimit:PerAccount", 10, 60)?;
        let lockout = LockoutSettings {
            max_failed_access_attempts: number(c, "Security:Lockout:MaxFailedAccessAttempts", 5, 0, 1000)? as u32,
            lockout_time_span: crate::config::time_span::read(c, "Security:Lockout:DefaultLockoutTimeSpan", Duration::from_secs(300))?,
        };
        let headers = match c.get("ForwardedHeaders:Headers") {
            None => ProxyHeaders::XForwarded,
            Some(v) => ProxyHeaders::parse(v)
                .ok_or_else(|| ConfigError::new("ForwardedHeaders:Headers", format!("is '{v}'; expected XForwarded, Forwarded or None")))?,
        };
        let proxies_set = c.get("ForwardedHeaders:KnownProxies").is_some() || !c.get_list("ForwardedHeaders:KnownProxies").is_empty();
        let networks_set = c.get("ForwardedHeaders:KnownNetworks").is_some() || !c.get_list("ForwardedHeaders:KnownNetworks").is_empty();
        let mut trusted = Vec::new();
        if !proxies_set && !networks_set {
            // ASP.NET Core's defaults: a proxy on the same machine.
            trusted.push(IpNetwork::parse("127.0.0.0/8").expect("valid"));
            trusted.push(IpNetwork::parse("::1/128").expect("valid"));
        }
        for p in c.get_list("ForwardedHeaders:KnownProxies") {
            let ip: IpAddr = p
                .parse()
                .map_err(|_| ConfigError::new("ForwardedHeaders:KnownProxies", format!("contains '{p}', which is not an IP address")))?;
            trusted.push(IpNetwork::single(ip));
        }
        for n in c.get_list("ForwardedHeaders:KnownNetworks") {
            trusted.push(IpNetwork::parse(&n).ok_or_else(|| {
                ConfigError::new("ForwardedHeaders:KnownNetworks", format!("contains '{n}', which is not a network like 10.0.0.0/8"))
            })?);
        }
        let forward_limit = number(c, "ForwardedHeaders:ForwardLimit", 1, 1, 100)? as usize;
        Ok(Self {
            hash_concurrency,
            hash_queue,
            per_address,
            per_account,
            lockout,
            forwarded: ForwardedSettings { headers, trusted, forward_limit },
        })
    }
}

fn number(c: &Configuration, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    match c.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(n) => Err(ConfigError::new(key, format!("is {n}; expected {min} to {max}"))),
            Err(_) => Err(ConfigError::new(key, format!("is '{v}', not a whole number from {min} to {max}"))),
        },
    }
}

fn rate_limit(c: &Configuration, prefix: &str, permits: u64, window_secs: u64) -> Result<RateLimit, ConfigError> {
    let permit_limit = number(c, &format!("{prefix}:PermitLimit"), permits, 1, 1_000_000)? as u32;
    let window = crate::config::time_span::read(c, &format!("{prefix}:Window"), Duration::from_secs(window_secs))?;
    if window.is_zero() {
        return Err(ConfigError::new(&format!("{prefix}:Window"), "is zero; give a TimeSpan like 00:01:00"));
    }
    Ok(RateLimit { permit_limit, window })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<SecuritySettings, ConfigError> {
        let mut c = Configuration::new();
        for (k, v) in pairs {
            c.set(k, *v, "test");
        }
        SecuritySettings::from_configuration(&c)
    }

    #[test]
    fn defaults_follow_asp_net() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.lockout.max_failed_access_attempts, 5);
        assert_eq!(s.lockout.lockout_time_span, Duration::from_secs(300));
        assert_eq!(s.forwarded.forward_limit, 1);
        assert_eq!(s.forwarded.headers, ProxyHeaders::XForwarded);
        assert!(s.forwarded.trusted.iter().any(|n| n.contains("127.0.0.1".parse().unwrap())));
        assert!(s.forwarded.trusted.iter().any(|n| n.contains("::1".parse().unwrap())));
        assert!(!s.forwarded.trusted.iter().any(|n| n.contains("10.0.0.1".parse().unwrap())));
        assert!(s.hash_concurrency >= 1);
        assert_eq!(s.hash_queue, 8 * s.hash_concurrency);
    }

    #[test]
    fn configured_proxies_replace_loopback() {
        let s = settings(&[("ForwardedHeaders:KnownProxies", "10.0.0.5"), ("ForwardedHeaders:KnownNetworks", "192.168.0.0/16")]).unwrap();
        assert!(!s.forwarded.trusted.iter().any(|n| n.contains("127.0.0.1".parse().unwrap())));
        assert!(s.forwarded.trusted.iter().any(|n| n.contains("10.0.0.5".parse().unwrap())));
        assert!(s.forwarded.trusted.iter().any(|n| n.contains("192.168.4.2".parse().unwrap())));
        let none = settings(&[("ForwardedHeaders:KnownProxies", "")]).unwrap();
        assert!(none.forwarded.trusted.is_empty());
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("Security:PasswordHashing:MaxConcurrency", "0"),
            ("Security:PasswordHashing:QueueLimit", "many"),
            ("Security:RateLimit:PerAddress:PermitLimit", "0"),
            ("Security:RateLimit:PerAccount:Window", "0"),
            ("Security:Lockout:MaxFailedAccessAttempts", "-1"),
            ("Security:Lockout:DefaultLockoutTimeSpan", "soon"),
            ("ForwardedHeaders:Headers", "XRealIp"),
            ("ForwardedHeaders:KnownProxies", "proxy.local"),
            ("ForwardedHeaders:KnownNetworks", "10.0.0.0/33"),
            ("ForwardedHeaders:ForwardLimit", "0"),
        ];
        for (key, value) in cases {
            let err = settings(&[(key, value)]).unwrap_err();
            assert_eq!(err.key, *key, "{key}={value}: {err}");
        }
    }
}
