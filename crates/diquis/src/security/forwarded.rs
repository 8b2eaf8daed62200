//! The client behind trusted reverse proxies, as ASP.NET Core's `ForwardedHeadersMiddleware`
//! finds it: `X-Forwarded-For`/`-Proto`/`-Host` (or RFC 7239 `Forwarded`) are read from the
//! right, one hop at a time, only while the hop that wrote them is a known proxy, and at most
//! `ForwardLimit` hops. The result is the request's [`ClientInfo`] (client address for rate
//! limits, scheme for the cookies' `Secure` flag, host for origin checks).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{FORWARDED, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::settings::ForwardedSettings;
use crate::state::AppState;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// An IP network (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// One address.
    pub fn single(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        Self { base: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }

    /// Parses `address/prefix` (a bare address is one host).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let Some((ip, prefix)) = s.split_once('/') else {
            return s.parse().ok().map(Self::single);
        };
        let base: IpAddr = ip.trim().parse().ok()?;
        let prefix: u8 = prefix.trim().parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { base, prefix })
    }

    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which forwarding headers a process reads (`ForwardedHeaders:Headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeaders {
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` (nginx, HAProxy, most balancers).
    XForwarded,
    /// RFC 7239 `Forwarded: for=…;proto=…;host=…`.
    Forwarded,
    /// None: the connection's peer is the client.
    None,
}

impl ProxyHeaders {
    /// Parses the configuration value (case-insensitive).
    pub fn parse(v: &str) -> Option<Self> {
        match v.trim().to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "xforwarded" | "xforwardedfor,xforwardedproto,xforwardedhost" | "all" => Some(Self::XForwarded),
            "forwarded" | "rfc7239" => Some(Self::Forwarded),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// Who is on the other end of a request, once trusted proxies are accounted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address (the peer's when no trusted proxy speaks for it).
    pub address: IpAddr,
    /// Whether the client reached the first trusted proxy over HTTPS.
    pub https: bool,
    /// The host the client asked for, when a trusted proxy said so.
    pub host: Option<String>,
}

impl ClientInfo {
    /// The client of a request without a known peer (e.g. a router called in-process): an
    /// unspecified address, plain HTTP.
    pub fn unknown() -> Self {
        Self { address: IpAddr::V4(Ipv4Addr::UNSPECIFIED), https: false, host: None }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        if let Some(info) = parts.extensions.get::<ClientInfo>() {
            return Ok(info.clone());
        }
        Ok(match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => ClientInfo { address: peer.ip().to_canonical(), https: false, host: None },
            None => ClientInfo::unknown(),
        })
    }
}

/// What one proxy hop said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Hop {
    /// The address it received the request from; `None` when it did not say.
    from: Option<IpAddr>,
    /// Whether it said `for` with a value that is not an address (`unknown`, `_hidden`).
    from_unreadable: bool,
    proto: Option<String>,
    host: Option<String>,
}

impl ForwardedSettings {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientInfo {
        let Some(peer) = peer.map(|p| p.to_canonical()) else {
            return ClientInfo::unknown();
        };
        let mut info = ClientInfo { address: peer, https: false, host: None };
        let hops = match self.headers {
            ProxyHeaders::None => return info,
            ProxyHeaders::XForwarded => x_forwarded_hops(headers),
            ProxyHeaders::Forwarded => forwarded_hops(headers),
        };
        let Some(hops) = hops else {
            tracing::debug!("unreadable forwarding headers ignored");
            return info;
        };
        let mut current = peer;
        for hop in hops.iter().rev().take(self.forward_limit) {
            if !self.trusts(current) {
                break;
            }
            if hop.from_unreadable {
                break;
            }
            if let Some(proto) = &hop.proto {
                info.https = proto.eq_ignore_ascii_case("https");
            }
            if let Some(host) = &hop.host {
                info.host = Some(host.clone());
            }
            if let Some(from) = hop.from {
                info.address = from;
                current = from;
            }
        }
        info
    }
}

/// Every value of a header, split at commas, trimmed.
fn list(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        let v = v.to_str().ok()?;
        out.extend(v.split(',').map(|s| s.trim().to_string()));
    }
    Some(out)
}

/// `X-Forwarded-For: client, proxy1` with `-Proto` and `-Host` lists, aligned from the right.
fn x_forwarded_hops(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let fors = list(headers, X_FORWARDED_FOR)?;
    let protos = list(headers, X_FORWARDED_PROTO)?;
    let hosts = list(headers, X_FORWARDED_HOST)?;
    let n = fors.len().max(protos.len()).max(hosts.len());
    let at = |v: &Vec<String>, i: usize| -> Option<String> { (i + v.len()).checked_sub(n).and_then(|j| v.get(j)).cloned() };
    let mut hops = Vec::with_capacity(n);
    for i in 0..n {
        let mut hop = Hop::default();
        if let Some(f) = at(&fors, i) {
            match parse_node(&f) {
                Some(ip) => hop.from = Some(ip),
                None => hop.from_unreadable = true,
            }
        }
        if let Some(p) = at(&protos, i) {
            hop.proto = Some(valid_proto(&p)?);
        }
        if let Some(h) = at(&hosts, i) {
            hop.host = Some(valid_host(&h)?);
        }
        hops.push(hop);
    }
    Some(hops)
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=https;host=a.example, for="[2001:db8::1]:4711"`.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let mut hops = Vec::new();
    for element in list(headers, FORWARDED.as_str())? {
        let mut hop = Hop::default();
        for pair in element.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"')?.replace("\\\"", "\""),
                None => value.to_string(),
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "for" => match parse_node(&value) {
                    Some(ip) => hop.from = Some(ip),
                    None => hop.from_unreadable = true,
                },
                "proto" => hop.proto = Some(valid_proto(&value)?),
                "host" => hop.host = Some(valid_host(&value)?),
                _ => {}
            }
        }
        hops.push(hop);
    }
    Some(hops)
}

/// An address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn valid_proto(p: &str) -> Option<String> {
    let ok = !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    ok.then(|| p.to_ascii_lowercase())
}

fn valid_host(h: &str) -> Option<String> {
    let ok = !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'));
    ok.then(|| h.to_string())
}

/// Middleware: resolves the [`ClientInfo`] of every request, puts it into the request's
/// extensions, and replaces the forwarding headers with what was decided, so that later code
/// can read them without trusting the client: `X-Forwarded-Proto: https` only when the
/// client's scheme is HTTPS, `Host` from a trusted `X-Forwarded-Host`, no `Forwarded` or
/// `X-Forwarded-For` at all.
pub async fn resolve_client(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let info = state.security.forwarded.resolve(peer, request.headers());
    let headers = request.headers_mut();
    headers.remove(FORWARDED);
    headers.remove(X_FORWARDED_FOR);
    headers.remove(X_FORWARDED_PROTO);
    headers.remove(X_FORWARDED_HOST);
    if info.https {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    }
    if let Some(host) = info.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(HOST, host);
    }
    request.extensions_mut().insert(info);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(headers: ProxyHeaders, trusted: &[&str], limit: usize) -> ForwardedSettings {
        ForwardedSettings { headers, trusted: trusted.iter().map(|n| IpNetwork::parse(n).unwrap()).collect(), forward_limit: limit }
    }

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        let n = IpNetwork::parse("10.1.0.0/16").unwrap();
        assert!(n.contains(ip("10.1.200.3")) && !n.contains(ip("10.2.0.1")));
        assert!(IpNetwork::parse("127.0.0.0/8").unwrap().contains(ip("::ffff:127.0.0.9")));
        assert!(IpNetwork::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(IpNetwork::parse("10.0.0.0/33").is_none());
        assert!(IpNetwork::parse("nope").is_none());
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let s = settings(ProxyHeaders::XForwarded, &["10.0.0.1"], 1);
        let info = s.resolve(Some(ip("192.0.2.7")), &h(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]));
        assert_eq!(info, ClientInfo { address: ip("192.0.2.7"), https: false, host: None });
    }

    #[test]
    fn trusted_proxy_lists_are_read_from_the_right() {
        let s = settings(ProxyHeaders::XForwarded, &["127.0.0.0/8"], 1);
        let info = s.resolve(
            Some(ip("127.0.0.1")),
            &h(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.example")]),
        );
        assert_eq!(info, ClientInfo { address: ip("203.0.113.9"), https: true, host: Some("app.example".into()) });
        // With a limit of 1, the proxy's own leg decides: `https, http` means it got plain HTTP.
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-proto", "https, http")]));
        assert!(!info.https);
        // Two hops trusted: the client's leg was HTTPS.
        let two = settings(ProxyHeaders::XForwarded, &["127.0.0.0/8", "10.0.0.0/8"], 2);
        let info = two.resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-proto", "https, http")]));
        assert!(info.https);
        let info =
            two.resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-for", "198.51.100.1, 10.0.0.2"), ("x-forwarded-proto", "https, http")]));
        assert_eq!((info.address, info.https), (ip("198.51.100.1"), true));
        // The second hop is not a known proxy: its claim is not read.
        let info = two
            .resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-for", "198.51.100.1, 203.0.113.5"), ("x-forwarded-proto", "https, http")]));
        assert_eq!((info.address, info.https), (ip("203.0.113.5"), false));
    }

    #[test]
    fn rfc_7239() {
        let s = settings(ProxyHeaders::Forwarded, &["127.0.0.1"], 1);
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("forwarded", "proto=https")]));
        assert!(info.https);
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("forwarded", r#"for="[2001:db8::1]:4711";proto=https;host=app.example"#)]));
        assert_eq!(info, ClientInfo { address: ip("2001:db8::1"), https: true, host: Some("app.example".into()) });
        // X-Forwarded-* are not read in this mode.
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-proto", "https")]));
        assert!(!info.https);
        // Garbage: ignored as a whole.
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("forwarded", "for")]));
        assert_eq!(info.address, ip("127.0.0.1"));
    }

    #[test]
    fn bad_values_are_ignored() {
        let s = settings(ProxyHeaders::XForwarded, &["127.0.0.1"], 1);
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-host", "evil.example/path"), ("x-forwarded-proto", "https")]));
        assert_eq!(info, ClientInfo { address: ip("127.0.0.1"), https: false, host: None });
        let info = s.resolve(Some(ip("127.0.0.1")), &h(&[("x-forwarded-for", "unknown"), ("x-forwarded-proto", "https")]));
        assert_eq!(info, ClientInfo { address: ip("127.0.0.1"), https: false, host: None });
        assert_eq!(s.resolve(None, &h(&[("x-forwarded-for", "1.2.3.4")])), ClientInfo::unknown());
    }
}
