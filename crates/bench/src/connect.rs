//! Opening one SignalR connection: negotiate (unless skipped), a WebSocket from a chosen
//! source address, and the hub handshake.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use reqwest::Url;
use thiserror::Error;
use tokio::net::{TcpSocket, TcpStream};

use crate::frames::{self, FrameError, Protocol};
use crate::ws::{WsError, WsStream};

/// Why a connection could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The hub URL is not usable.
    #[error("bad hub URL {url}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The negotiate request failed at the HTTP level.
    #[error("negotiate failed: {0}")]
    NegotiateHttp(#[from] reqwest::Error),
    /// The server answered negotiate with an error status.
    #[error("negotiate answered {status}: {body}")]
    NegotiateStatus {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The negotiate response was not what the protocol says.
    #[error("negotiate response unusable: {0}")]
    NegotiateBody(String),
    /// The TCP connection failed.
    #[error("TCP connect from {source_addr}: {error}")]
    Tcp {
        /// The source address bound.
        source_addr: Ipv4Addr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The WebSocket upgrade or a later WebSocket operation failed (a close by the server
    /// included).
    #[error("WebSocket: {0}")]
    WebSocket(#[from] WsError),
    /// The hub handshake was refused or garbled.
    #[error("handshake: {0}")]
    Handshake(#[from] FrameError),
    /// Joining the connection's group failed.
    #[error("JoinGroup failed: {0}")]
    JoinGroup(String),
}

/// A hub URL split into what negotiate and the WebSocket need.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port/path`, without query.
    pub http: Url,
    /// The listener's address.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses an `http://` hub URL whose host is an IPv4 address or `localhost`.
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        let bad = |reason: &str| ConnectError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let http = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if http.scheme() != "http" {
            return Err(bad("only http:// is supported (the bench speaks plain WebSockets)"));
        }
        let host = match http.host_str() {
            Some("localhost") => Ipv4Addr::LOCALHOST,
            Some(host) => host.parse::<Ipv4Addr>().map_err(|_| bad("the host must be an IPv4 address"))?,
            None => return Err(bad("no host")),
        };
        let port = http.port_or_known_default().ok_or_else(|| bad("no port"))?;
        Ok(Self { addr: SocketAddr::new(IpAddr::V4(host), port), http })
    }

    fn negotiate_url(&self) -> Url {
        let mut url = self.http.clone();
        let path = format!("{}/negotiate", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(Some("negotiateVersion=1"));
        url
    }

    /// The `Host` header and the request target (path and query) of the WebSocket upgrade.
    fn upgrade_parts(&self, token: Option<&str>) -> (String, String) {
        let url = Url::parse(&self.websocket_url(token)).expect("a ws URL made from a valid http URL parses");
        let host = match url.port_or_known_default() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        (host, target)
    }

    fn websocket_url(&self, token: Option<&str>) -> String {
        let mut url = self.http.clone();
        url.set_query(None);
        let base = url.as_str().replacen("http://", "ws://", 1);
        match token {
            Some(token) => {
                let mut with_id = Url::parse(&base).expect("a ws URL made from a valid http URL parses");
                with_id.query_pairs_mut().append_pair("id", token);
                with_id.to_string()
            }
            None => base,
        }
    }
}

/// Reads the connection token (v1) or id (v0) out of a negotiate response body.
pub fn token_from_negotiate(body: &[u8]) -> Result<String, ConnectError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| ConnectError::NegotiateBody(e.to_string()))?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(ConnectError::NegotiateBody(format!("server error: {error}")));
    }
    if value.get("url").is_some() {
        return Err(ConnectError::NegotiateBody("redirects are not supported by the bench".into()));
    }
    let websockets = value
        .get("availableTransports")
        .and_then(|t| t.as_array())
        .is_some_and(|all| all.iter().any(|t| t.get("transport").and_then(|n| n.as_str()) == Some("WebSockets")));
    if !websockets {
        return Err(ConnectError::NegotiateBody("WebSockets is not an available transport".into()));
    }
    value
        .get("connectionToken")
        .or_else(|| value.get("connectionId"))
        .and_then(|t| t.as_str())
        .map(str::to_owned)
        .ok_or_else(|| ConnectError::NegotiateBody("no connectionToken or connectionId".into()))
}

/// Opens connections with shared settings; holds one HTTP client per source address.
#[derive(Debug)]
pub struct Connector {
    protocol: Protocol,
    skip_negotiation: bool,
    http: HashMap<Ipv4Addr, reqwest::Client>,
}

impl Connector {
    /// A connector for `sources`.
    pub fn new(protocol: Protocol, skip_negotiation: bool, sources: &[Ipv4Addr]) -> Result<Self, ConnectError> {
        let mut http = HashMap::new();
        for &source in sources {
            let client =
                reqwest::Client::builder().local_address(IpAddr::V4(source)).tcp_nodelay(true).pool_max_idle_per_host(32).build()?;
            http.insert(source, client);
        }
        Ok(Self { protocol, skip_negotiation, http })
    }

    /// Opens one connection from `source` to `target` and completes the hub handshake.
    /// Returns the socket and any bytes that followed the handshake response.
    pub async fn connect(&self, target: &Target, source: Ipv4Addr) -> Result<(WsStream, Vec<u8>), ConnectError> {
        let token = if self.skip_negotiation { None } else { Some(self.negotiate(target, source).await?) };
        let stream = tcp_connect(source, target.addr).await?;
        let (host, path) = target.upgrade_parts(token.as_deref());
        let (mut ws, mut buf) = WsStream::connect(stream, &host, &path, self.protocol.is_binary()).await?;
        ws.send(&self.protocol.handshake_request()).await.map_err(WsError::from)?;
        let mut failed = None;
        loop {
            if let Some(used) = frames::read_handshake_response(&buf)? {
                buf.drain(..used);
                return Ok((ws, buf));
            }
            // Checked after the bytes that came with it: a refusal arrives before the close.
            if let Some(error) = failed {
                return Err(ConnectError::WebSocket(error));
            }
            failed = ws.read_data(&mut buf).await.err();
        }
    }

    async fn negotiate(&self, target: &Target, source: Ipv4Addr) -> Result<String, ConnectError> {
        let client = self.http.get(&source).ok_or_else(|| ConnectError::BadUrl {
            url: target.http.to_string(),
            reason: format!("source address {source} was not configured"),
        })?;
        let response = client.post(target.negotiate_url()).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(ConnectError::NegotiateStatus { status: status.as_u16(), body: text });
        }
        token_from_negotiate(&body)
    }
}

/// `error` followed by its chain of causes, so "error sending request" says why.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

/// Connects from `source` (any free port) to `server`.
///
/// `IP_BIND_ADDRESS_NO_PORT` defers the port choice to connect time, so a source address's
/// ports are shared between destinations instead of being reserved at bind.
async fn tcp_connect(source: Ipv4Addr, server: SocketAddr) -> Result<TcpStream, ConnectError> {
    let tcp = |error| ConnectError::Tcp { source_addr: source, error };
    let socket = TcpSocket::new_v4().map_err(tcp)?;
    let enable: libc::c_int = 1;
    // SAFETY: a valid socket fd, a pointer to a c_int and its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(tcp(std::io::Error::last_os_error()));
    }
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).map_err(tcp)?;
    let stream = socket.connect(server).await.map_err(tcp)?;
    stream.set_nodelay(true).map_err(tcp)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_negotiate_and_websocket() {
        let target = Target::parse("http://127.0.0.1:5000/testhub").unwrap();
        assert_eq!(target.addr, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(target.negotiate_url().as_str(), "http://127.0.0.1:5000/testhub/negotiate?negotiateVersion=1");
        assert_eq!(target.websocket_url(None), "ws://127.0.0.1:5000/testhub");
        assert_eq!(target.websocket_url(Some("a+b/c")), "ws://127.0.0.1:5000/testhub?id=a%2Bb%2Fc");
        assert_eq!(target.upgrade_parts(Some("a+b/c")), ("127.0.0.1:5000".into(), "/testhub?id=a%2Bb%2Fc".into()));
        assert_eq!(target.upgrade_parts(None), ("127.0.0.1:5000".into(), "/testhub".into()));
        let slash = Target::parse("http://localhost:80/hub/").unwrap();
        assert_eq!(slash.negotiate_url().path(), "/hub/negotiate");
    }

    #[test]
    fn errors_are_described_with_their_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = ConnectError::Tcp { source_addr: Ipv4Addr::LOCALHOST, error: io };
        assert_eq!(describe(&error), "TCP connect from 127.0.0.1: refused");
        let nested = ConnectError::WebSocket(WsError::Io(std::io::Error::other("reset")));
        assert!(describe(&nested).contains("reset"));
        let closed = ConnectError::WebSocket(WsError::Closed { code: Some(1008), reason: "go away".into() });
        assert_eq!(describe(&closed), "WebSocket: the server closed the WebSocket (code 1008: go away)");
    }

    #[test]
    fn bad_urls_are_named() {
        for url in ["https://127.0.0.1:5000/x", "http://example.com/x", "not a url"] {
            assert!(matches!(Target::parse(url), Err(ConnectError::BadUrl { .. })), "{url}");
        }
    }

    #[test]
    fn negotiate_bodies() {
        let v1 = br#"{"negotiateVersion":1,"connectionId":"c","connectionToken":"t","availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#;
        assert_eq!(token_from_negotiate(v1).unwrap(), "t");
        let v0 = br#"{"connectionId":"c","availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#;
        assert_eq!(token_from_negotiate(v0).unwrap(), "c");
        let no_ws = br#"{"connectionToken":"t","availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]}]}"#;
        assert!(matches!(token_from_negotiate(no_ws), Err(ConnectError::NegotiateBody(_))));
        assert!(matches!(token_from_negotiate(br#"{"error":"nope"}"#), Err(ConnectError::NegotiateBody(_))));
        assert!(matches!(token_from_negotiate(b"<html>"), Err(ConnectError::NegotiateBody(_))));
    }

    #[tokio::test]
    async fn tcp_connect_binds_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let source = Ipv4Addr::new(127, 0, 0, 3);
        let client = tcp_connect(source, server).await.unwrap();
        let (_accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(source));
        assert_eq!(client.local_addr().unwrap().ip(), IpAddr::V4(source));
    }

    /// A fake hub on `listener`: accepts one connection, answers the upgrade, reads the
    /// handshake request and writes `reply` (WebSocket frames) in one go.
    async fn fake_hub(listener: tokio::net::TcpListener, reply: Vec<u8>) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            let n = socket.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
            if let Some(end) = memchr::memmem::find(&got, b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8(got[..head_end].to_vec()).unwrap();
        let key = head.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            crate::ws::accept_for(key)
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        // The handshake request: one masked text frame.
        let mut frames = got[head_end..].to_vec();
        while frames.len() < 6 || frames.len() < 6 + usize::from(frames[1] & 0x7F) {
            let n = socket.read(&mut chunk).await.unwrap();
            frames.extend_from_slice(&chunk[..n]);
        }
        let len = usize::from(frames[1] & 0x7F);
        let mut request = frames[6..6 + len].to_vec();
        crate::ws::apply_mask(&mut request, frames[2..6].try_into().unwrap());
        socket.write_all(&reply).await.unwrap();
        request
    }

    fn text_frame(payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        [&[0x81, payload.len() as u8][..], payload].concat()
    }

    #[tokio::test]
    async fn the_hub_handshake_keeps_what_follows_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hub", listener.local_addr().unwrap());
        let reply = [text_frame(b"{}\x1e{\"type\":6}\x1e"), text_frame(b"{\"ty")].concat();
        let server = tokio::spawn(fake_hub(listener, reply));
        let connector = Connector::new(Protocol::Json, true, &[Ipv4Addr::LOCALHOST]).unwrap();
        let (_ws, leftover) = connector.connect(&Target::parse(&url).unwrap(), Ipv4Addr::LOCALHOST).await.unwrap();
        assert_eq!(leftover, b"{\"type\":6}\x1e{\"ty");
        assert_eq!(server.await.unwrap(), b"{\"protocol\":\"json\",\"version\":1}\x1e");
    }

    #[tokio::test]
    async fn a_refused_handshake_reports_the_servers_error_not_the_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hub", listener.local_addr().unwrap());
        let reply = [text_frame(b"{\"error\":\"unknown protocol\"}\x1e"), vec![0x88, 2, 0x03, 0xE8]].concat();
        let _server = tokio::spawn(fake_hub(listener, reply));
        let connector = Connector::new(Protocol::Json, true, &[Ipv4Addr::LOCALHOST]).unwrap();
        let error = connector.connect(&Target::parse(&url).unwrap(), Ipv4Addr::LOCALHOST).await.unwrap_err();
        assert!(matches!(&error, ConnectError::Handshake(FrameError::Handshake(text)) if text == "unknown protocol"), "{error}");
    }
}
