//! Diquis's HTTP server under the hostile-client findings, with `Kestrel:Limits:*` set short so
//! the tests do not wait Kestrel's 30 s; a raw TCP client retries each finding.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use diquis::ProcessRole;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HANG_GUARD: Duration = Duration::from_secs(10);

/// Sends `bytes` on a new connection and reads until the server closes it; `None`: still open
/// after the hang guard.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<String> {
    let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    // Read while writing: a large refused head is answered before it is all sent.
    let read = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    let _ = writer.write_all(bytes).await;
    tokio::time::timeout(HANG_GUARD, read).await.ok().map(|r| r.unwrap())
}

fn status_codes(response: &str) -> Vec<u16> {
    response.match_indices("HTTP/1.1 ").filter_map(|(i, _)| response.get(i + 9..i + 12)?.parse().ok()).collect()
}

/// The issue's findings, retried: each must now be refused the way Kestrel refuses it.
async fn findings_hold(addr: SocketAddr, websocket_path: &str) {
    let bad: [(&str, Vec<u8>, u16); 7] = [
        ("bare LF line endings", b"GET / HTTP/1.1\nHost: a\n\n".to_vec(), 400),
        ("no Host on HTTP/1.1", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".to_vec(), 400),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".to_vec(), 400),
        ("a 9 KB request line", format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9 * 1024)).into_bytes(), 414),
        ("a 40 KB header block", format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n", "a".repeat(40 * 1024)).into_bytes(), 431),
        (
            "a WebSocket with a 300 KB header",
            format!(
                "GET {websocket_path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(300 * 1024)
            )
            .into_bytes(),
            431,
        ),
        ("half a head (after the short headers timeout)", b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec(), 408),
    ];
    for (name, request, status) in bad {
        let response = exchange(addr, &request).await.unwrap_or_else(|| panic!("{name}: the connection stayed open"));
        assert_eq!(status_codes(&response), [status], "{name}: {response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{name}: {response}");
    }
    // A socket that sends nothing is closed after the (short) headers timeout, unanswered.
    assert_eq!(exchange(addr, b"").await.as_deref(), Some(""), "a silent socket stays open");
    // A strict request is still served, and a keep-alive connection closes once idle.
    let response = exchange(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("closed after the keep-alive timeout");
    let codes = status_codes(&response);
    assert_eq!(codes.len(), 1, "{response}");
    assert!(codes[0] != 400 && codes[0] != 408, "{response}");
}

#[tokio::test]
async fn findings_are_refused_as_kestrel_refuses_them() {
    let db = TestDb::sqlite();
    let app = start(
        &db,
        ProcessRole::All,
        &[("Kestrel:Limits:RequestHeadersTimeout", "00:00:00.3"), ("Kestrel:Limits:KeepAliveTimeout", "00:00:00.3")],
    )
    .await;
    findings_hold(app.addrs[0], "/hubs/notifications").await;
    // The application itself still answers through the same server.
    let (status, _) = api(reqwest::Method::GET, &format!("{}/health/live", app.url()), None, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn size_limits_come_from_configuration() {
    let db = TestDb::sqlite();
    let app =
        start(&db, ProcessRole::All, &[("Kestrel:Limits:MaxRequestLineSize", "64"), ("Kestrel:Limits:MaxRequestHeadersTotalSize", "256")])
            .await;
    let addr = app.addrs[0];
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(60));
    assert_eq!(status_codes(&exchange(addr, long_line.as_bytes()).await.unwrap()), [414]);
    let padded = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n", "a".repeat(250));
    assert_eq!(status_codes(&exchange(addr, padded.as_bytes()).await.unwrap()), [431]);
    app.stop().await;
}

/// The sign-in request of the finding: 1,000 bytes announced, `body` sent.
fn sign_in_head(length: usize) -> String {
    format!(
        "POST /api/tokens HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_and_a_normal_one_is_served() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[("Kestrel:Limits:MinRequestBodyDataRate:GracePeriod", "00:00:00.3")]).await;
    let addr = app.addrs[0];
    // The finding: the body never arrives past `{"email":`.
    let stalled = format!("{}{{\"email\":", sign_in_head(1000));
    let response = exchange(addr, stalled.as_bytes()).await.expect("the stalled body is still held");
    assert_eq!(status_codes(&response), [408], "{response}");
    assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
    // A sign-in sent whole but in pieces for longer than the grace period, at five times
    // 240 bytes/s: answered by the application (wrong password), not cut.
    let body = format!(r#"{{"email":"{ADMIN_EMAIL}","password":"{}","tenant":"root"}}"#, "p".repeat(520));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(sign_in_head(body.len()).as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(60) {
        // Pacing the client, not synchronising with the server.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.write_all(piece).await.unwrap();
    }
    let mut response = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut response)).await.expect("answered").unwrap();
    let response = String::from_utf8_lossy(&response);
    let codes = status_codes(&response);
    assert_eq!(codes.len(), 1, "{response}");
    assert!(codes[0] == 400 || codes[0] == 401, "{response}");
    app.stop().await;
}
