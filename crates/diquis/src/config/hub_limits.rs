//! `SignalR:*` limits of the hub endpoint against hostile or broken clients: connections per
//! node and per user, inbound and outbound buffers, the start timeout, and how much of the
//! connecting request a connection keeps. Defaults are the connection layer's
//! ([`HttpConnectionOptions::default`]); docs/operations.md lists them.

use std::time::Duration;

use signalr_connections::HttpConnectionOptions;

use super::settings::ConfigError;
use super::source::Configuration;

/// The hub endpoint's limits, from `SignalR:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubLimits {
    /// `SignalR:MaxConnections`: connections the node's hub holds at once (default 100,000).
    pub max_connections: usize,
    /// `SignalR:MaxConnectionsPerUser`: connections one user holds at once (default 100).
    pub max_connections_per_user: usize,
    /// `SignalR:MaxInboundMessageSize`: the largest WebSocket message or POST body in bytes
    /// (default 65,536).
    pub transport_max_buffer_size: usize,
    /// `SignalR:ApplicationMaxBufferSize` (as in ASP.NET Core: data read by the application):
    /// inbound bytes held per connection before the hub takes them (default 65,536).
    pub application_max_buffer_size: usize,
    /// `SignalR:TransportMaxBufferSize` (as in ASP.NET Core: data written by the application):
    /// bytes queued for a client before it is closed as a slow consumer (default 65,536).
    pub outbound_buffer_size: usize,
    /// `SignalR:MaxBufferedInboundBytes`: node-wide cap on held inbound bytes
    /// (default 67,108,864).
    pub max_buffered_inbound_bytes: usize,
    /// `SignalR:StartTimeoutMilliseconds`: how long a negotiated connection may wait for its
    /// transport (default 10,000).
    pub start_timeout: Duration,
    /// `SignalR:MaxRetainedRequestBytes`: bytes of the connecting request a connection keeps
    /// (default 4,096).
    pub max_retained_request_bytes: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        let d = HttpConnectionOptions::default();
        Self {
            max_connections: d.max_connections,
            max_connections_per_user: d.max_connections_per_user,
            transport_max_buffer_size: d.transport_max_buffer_size,
            application_max_buffer_size: d.application_max_buffer_size,
            outbound_buffer_size: d.outbound_buffer_limit,
            max_buffered_inbound_bytes: d.max_buffered_inbound_bytes,
            start_timeout: d.start_timeout,
            max_retained_request_bytes: d.max_retained_request_bytes,
        }
    }
}

impl HubLimits {
    /// Reads `SignalR:*`; a value that is not a whole number in range is an error naming the key.
    pub fn from_configuration(c: &Configuration) -> Result<Self, ConfigError> {
        let d = Self::default();
        let read = |key: &str, default: usize, min: usize, max: usize| -> Result<usize, ConfigError> {
            match c.get(key).map(str::trim) {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    Ok(n) => Err(ConfigError { key: key.to_string(), problem: format!("is {n}; expected {min} to {max}") }),
                    Err(_) => Err(ConfigError { key: key.to_string(), problem: format!("is '{v}', not a whole number") }),
                },
            }
        };
        const GIB: usize = 1 << 30;
        Ok(Self {
            max_connections: read("SignalR:MaxConnections", d.max_connections, 1, 10_000_000)?,
            max_connections_per_user: read("SignalR:MaxConnectionsPerUser", d.max_connections_per_user, 1, 1_000_000)?,
            transport_max_buffer_size: read("SignalR:MaxInboundMessageSize", d.transport_max_buffer_size, 1024, GIB)?,
            application_max_buffer_size: read("SignalR:ApplicationMaxBufferSize", d.application_max_buffer_size, 0, GIB)?,
            outbound_buffer_size: read("SignalR:TransportMaxBufferSize", d.outbound_buffer_size, 1024, GIB)?,
            max_buffered_inbound_bytes: read("SignalR:MaxBufferedInboundBytes", d.max_buffered_inbound_bytes, 1024, 64 * GIB)?,
            start_timeout: Duration::from_millis(read(
                "SignalR:StartTimeoutMilliseconds",
                d.start_timeout.as_millis() as usize,
                100,
                3_600_000,
            )? as u64),
            max_retained_request_bytes: read("SignalR:MaxRetainedRequestBytes", d.max_retained_request_bytes, 0, 1 << 20)?,
        })
    }

    /// `options` with these limits.
    pub fn apply(&self, options: HttpConnectionOptions) -> HttpConnectionOptions {
        options
            .max_connections(self.max_connections)
            .max_connections_per_user(self.max_connections_per_user)
            .transport_max_buffer_size(self.transport_max_buffer_size)
            .application_max_buffer_size(self.application_max_buffer_size)
            .outbound_buffer_limit(self.outbound_buffer_size)
            .max_buffered_inbound_bytes(self.max_buffered_inbound_bytes)
            .start_timeout(self.start_timeout)
            .max_retained_request_bytes(self.max_retained_request_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides_and_errors_name_the_key() {
        let c = Configuration::new();
        assert_eq!(HubLimits::from_configuration(&c).unwrap(), HubLimits::default());
        let mut c = Configuration::new();
        c.set("SignalR:MaxConnectionsPerUser", "3", "test");
        c.set("SignalR:StartTimeoutMilliseconds", "250", "test");
        let limits = HubLimits::from_configuration(&c).unwrap();
        assert_eq!(limits.max_connections_per_user, 3);
        assert_eq!(limits.start_timeout, Duration::from_millis(250));
        let options = limits.apply(HttpConnectionOptions::default());
        assert_eq!(options.max_connections_per_user, 3);
        c.set("SignalR:MaxConnections", "many", "test");
        let error = HubLimits::from_configuration(&c).unwrap_err();
        assert_eq!(error.key, "SignalR:MaxConnections");
        c.set("SignalR:MaxConnections", "0", "test");
        assert_eq!(HubLimits::from_configuration(&c).unwrap_err().problem, "is 0; expected 1 to 10000000");
    }
}
