//! `signalr_connections::server::serve` with a raw TCP client: Kestrel's limits, strict
//! HTTP/1.1, pipelining, chunked bodies, the minimum body data rate, WebSocket upgrades and
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use signalr_connections::server::{HttpLimits, MinDataRate, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

const HANG_GUARD: Duration = Duration::from_secs(10);

fn app(release: Arc<Notify>) -> Router {
    Router::new()
        .route("/", get(|| async { "root" }))
        .route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
        .route("/length", post(|body: axum::body::Bytes| async move { body.len().to_string() }))
        .route("/held-length", {
            let release = release.clone();
            // Waits for the test before it reads the body: time the body is not timed.
            post(move |request: axum::extract::Request| {
                let release = release.clone();
                async move {
                    release.notified().await;
                    match axum::body::to_bytes(request.into_body(), usize::MAX).await {
                        Ok(body) => body.len().to_string(),
                        Err(error) => error.to_string(),
                    }
                }
            })
        })
        .route(
            "/held",
            get(move || {
                let release = release.clone();
                async move {
                    release.notified().await;
                    "released"
                }
            }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.recv().await {
                        if let Message::Text(text) = message {
                            let _ = socket.send(Message::Text(text)).await;
                        }
                    }
                })
            }),
        )
}

struct TestServer {
    addr: SocketAddr,
    release: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start(limits: HttpLimits) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app(release.clone());
    let done = tokio::spawn(async move {
        serve(listener, router, limits, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestServer { addr, release, stop: Some(stop), done }
}

fn short_timeouts() -> HttpLimits {
    HttpLimits {
        request_headers_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    }
}

/// Sends `bytes` and reads until the server closes; `None` if it is still open after the guard.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_to_close(&mut stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        // A reset after the server closed with unread bytes still counts as closed.
        Ok(Err(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

fn statuses(response: &str) -> Vec<u16> {
    response.match_indices("HTTP/1.1 ").filter_map(|(i, _)| response[i + 9..i + 12].parse().ok()).collect()
}

#[tokio::test]
async fn lenient_heads_get_400_and_the_connection_closes() {
    let server = start(HttpLimits::default()).await;
    let cases: [(&str, &[u8]); 6] = [
        ("bare LF after the request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        ("bare LF after a header", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"),
        ("bare LF ending the head", b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
        ("no Host on HTTP/1.1", b"GET / HTTP/1.1\r\nX: y\r\n\r\n"),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("Host not matching an absolute target", b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"),
    ];
    for (name, request) in cases {
        let response = exchange(server.addr, request).await.unwrap_or_else(|| panic!("{name}: connection left open"));
        assert_eq!(statuses(&response), [400], "{name}: {response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{name}: {response}");
    }
    // The same requests written strictly are served.
    let response = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
    assert_eq!(statuses(&response), [200], "{response}");
    assert!(response.ends_with("root"));
    let response = exchange(server.addr, b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    assert!(response.starts_with("HTTP/1.0 200 "), "HTTP/1.0 needs no Host: {response}");
}

#[tokio::test]
async fn oversized_request_lines_and_headers_get_414_and_431() {
    let server = start(HttpLimits::default()).await;
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8192));
    assert_eq!(statuses(&exchange(server.addr, long_line.as_bytes()).await.unwrap()), [414]);
    let padded = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n", "a".repeat(32 * 1024));
    assert_eq!(statuses(&exchange(server.addr, padded.as_bytes()).await.unwrap()), [431]);
    // Many headers that add up past the total.
    let many: String = (0..40).map(|i| format!("X-{i}: {}\r\n", "b".repeat(1000))).collect();
    let padded = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert_eq!(statuses(&exchange(server.addr, padded.as_bytes()).await.unwrap()), [431]);
    // 400 KB (what was accepted before) is refused without reading it all.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ").await.unwrap();
    let _ = stream.write_all(&vec![b'a'; 400 * 1024]).await;
    let response = read_to_close(&mut stream).await.unwrap();
    assert_eq!(statuses(&response), [431], "{response}");
    // Just under the limits is served.
    let near = format!("GET /{} HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\nConnection: close\r\n\r\n", "a".repeat(8000), "a".repeat(30_000));
    assert_eq!(statuses(&exchange(server.addr, near.as_bytes()).await.unwrap()), [404]);
}

#[tokio::test]
async fn slow_heads_time_out_with_408_and_silent_sockets_are_closed() {
    let server = start(short_timeouts()).await;
    // Half a head: Kestrel's 408, then the close.
    let response = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a\r\n").await.expect("closed after the headers timeout");
    assert_eq!(statuses(&response), [408], "{response}");
    // Nothing at all: closed without a response.
    let response = exchange(server.addr, b"").await.expect("closed after the headers timeout");
    assert_eq!(response, "");
    // Trickling bytes does not extend the timeout.
    let (mut reader, mut writer) = TcpStream::connect(server.addr).await.unwrap().into_split();
    writer.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let read = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    let trickle = async {
        while !read.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = writer.write_all(b"X: y\r\n").await;
        }
    };
    tokio::time::timeout(HANG_GUARD, trickle).await.expect("closed while trickling");
    let response = read.await.unwrap();
    assert_eq!(statuses(&response), [408], "{response}");
}

/// Kestrel's minimum body rate with a short grace period, the head timers left long.
fn short_body_grace(bytes_per_second: f64) -> HttpLimits {
    HttpLimits {
        min_request_body_data_rate: Some(MinDataRate { bytes_per_second, grace_period: Duration::from_millis(200) }),
        ..HttpLimits::default()
    }
}

#[tokio::test]
async fn stalled_request_bodies_get_408_and_the_connection_closes() {
    let server = start(short_body_grace(240.0)).await;
    // The finding: 1,000 bytes announced, nine sent.
    let stalled: [(&str, &[u8]); 3] = [
        (
            "a Content-Length body",
            b"POST /length HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":",
        ),
        ("a chunked body", b"POST /length HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        ("a head with no body byte", b"POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"),
    ];
    for (name, request) in stalled {
        let response = exchange(server.addr, request).await.unwrap_or_else(|| panic!("{name}: connection left open"));
        assert_eq!(statuses(&response), [408], "{name}: {response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{name}: {response}");
    }
    // A request pipelined behind the stalled body is never served.
    let response =
        exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .expect("connection left open");
    assert_eq!(statuses(&response), [200, 408], "{response}");
}

#[tokio::test]
async fn request_bodies_in_pieces_at_a_normal_rate_are_served() {
    // 1,000 bytes/s required after 0.2 s; the client sends ten times that, for about a second.
    let server = start(short_body_grace(1000.0)).await;
    for chunked in [false, true] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let framing = if chunked { "Transfer-Encoding: chunked" } else { "Content-Length: 10000" };
        stream.write_all(format!("POST /length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{framing}\r\n\r\n").as_bytes()).await.unwrap();
        for _ in 0..10 {
            // Pacing the client, not synchronising with the server.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let piece = "x".repeat(1000);
            let piece = if chunked { format!("3e8\r\n{piece}\r\n") } else { piece };
            stream.write_all(piece.as_bytes()).await.unwrap();
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n").await.unwrap();
        }
        let response = read_to_close(&mut stream).await.expect("answered");
        assert_eq!(statuses(&response), [200], "chunked {chunked}: {response}");
        assert!(response.ends_with("\r\n\r\n10000"), "chunked {chunked}: {response}");
    }
}

#[tokio::test]
async fn time_before_the_application_reads_the_body_is_not_counted() {
    let server = start(short_body_grace(240.0)).await;
    // A handler that waits (as a SignalR POST waits for room) before reading a partial body.
    let mut held = TcpStream::connect(server.addr).await.unwrap();
    held.write_all(b"POST /held-length HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\nabc").await.unwrap();
    // A body stalled since after that one's start is cut: the held request has waited longer
    // than the grace period by the time this answer arrives.
    let response = exchange(server.addr, b"POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc").await.expect("answered");
    assert_eq!(statuses(&response), [408], "{response}");
    // The held handler now reads, and the rest of its body comes at once: served.
    server.release.notify_one();
    held.write_all(b"defghij").await.unwrap();
    let response = read_to_close(&mut held).await.expect("answered");
    assert_eq!(statuses(&response), [200], "{response}");
    assert!(response.ends_with("\r\n\r\n10"), "{response}");
}

#[tokio::test]
async fn idle_keep_alive_connections_close_but_busy_ones_do_not() {
    let server = start(short_timeouts()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let response = read_to_close(&mut stream).await.expect("closed after the keep-alive timeout");
    assert_eq!(statuses(&response), [200], "{response}");

    // A response that takes longer than both timeouts is not cut.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /held HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    server.release.notify_one();
    let response = read_to_close(&mut stream).await.unwrap();
    assert_eq!(statuses(&response), [200], "{response}");
    assert!(response.ends_with("released"), "{response}");
}

#[tokio::test]
async fn pipelined_requests_are_checked_one_by_one_and_answered_in_order() {
    let server = start(HttpLimits::default()).await;
    let response = exchange(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nPOST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
          POST /length HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: v\r\n\r\n\
          GET / HTTP/1.1\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(statuses(&response), [200, 200, 200, 400], "{response}");
    assert!(response.contains("\r\n\r\n5HTTP/1.1") && response.contains("\r\n\r\n7HTTP/1.1"), "bodies counted: {response}");
    // A body whose bytes look like a head is a body, not a request.
    let body = "GET / HTTP/1.1\nHost: a\r\n\r\n";
    let request = format!(
        "POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let response = exchange(server.addr, request.as_bytes()).await.unwrap();
    assert_eq!(statuses(&response), [200, 200], "{response}");
    // A malformed chunked body ends the connection without serving what follows.
    let response = exchange(
        server.addr,
        b"POST /length HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(!statuses(&response).contains(&200), "{response}");
}

#[tokio::test]
async fn websocket_upgrades_pass_through_and_a_refused_upgrade_keeps_http() {
    let server = start(short_timeouts()).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await.unwrap();
    assert_eq!(response.status(), 101);
    // Well past both timeouts: an upgraded connection has none.
    tokio::time::sleep(Duration::from_millis(900)).await;
    for text in ["one", "GET / HTTP/1.1\n\n", &"x".repeat(100_000)] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(HANG_GUARD, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    // An upgrade the application refuses (no Sec-WebSocket-Key) leaves the connection HTTP.
    let response = exchange(
        server.addr,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let codes = statuses(&response);
    assert_eq!(codes.len(), 2, "{response}");
    assert_ne!(codes[0], 101);
    assert_eq!(codes[1], 200, "{response}");
}

#[tokio::test]
async fn connect_info_and_graceful_shutdown() {
    let mut server = start(HttpLimits::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /peer HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf)).await.unwrap().unwrap();
    let response = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(response.ends_with(&stream.local_addr().unwrap().to_string()), "{response}");
    // Shutdown: the idle keep-alive connection is closed and serve returns.
    server.stop.take().unwrap().send(()).unwrap();
    assert_eq!(read_to_close(&mut stream).await.as_deref(), Some(""));
    tokio::time::timeout(HANG_GUARD, &mut server.done).await.unwrap().unwrap();
}

#[tokio::test]
async fn max_concurrent_connections_closes_the_extra_ones() {
    let server = start(HttpLimits { max_concurrent_connections: Some(2), ..HttpLimits::default() }).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        held.push(stream);
    }
    let response = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.expect("the third is closed");
    assert_eq!(response, "");
    // Once one closes, a new connection is served again (the server sees the close first).
    drop(held.pop());
    let served = async {
        loop {
            let response = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
            if !response.is_empty() {
                return response;
            }
            tokio::task::yield_now().await;
        }
    };
    let response = tokio::time::timeout(HANG_GUARD, served).await.unwrap();
    assert_eq!(statuses(&response), [200]);
}
