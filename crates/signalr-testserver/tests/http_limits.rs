//! The HTTP server's limits and strictness on the real binary, configured by its flags (short
//! timeouts so the tests do not wait Kestrel's 30 s): each finding of the hostile-client review
//! (bare LF, no or two `Host`, 400 KB header blocks, WebSockets with 300 KB headers, slow
//! sockets) retried with a raw TCP client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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

/// The findings, retried: each must now be refused the way Kestrel refuses it.
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

async fn spawn_binary(flags: &[&str]) -> (tokio::process::Child, SocketAddr) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalr-testserver"))
        .args(["--urls", "http://127.0.0.1:0"])
        .args(flags)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(HANG_GUARD, BufReader::new(stdout).lines().next_line()).await.unwrap().unwrap().unwrap();
    let addr = line.strip_prefix("Now listening on: http://").expect("listening line").parse().unwrap();
    (child, addr)
}

#[tokio::test]
async fn findings_are_refused_as_kestrel_refuses_them() {
    let (mut child, addr) = spawn_binary(&["--request-headers-timeout", "0.3", "--keep-alive-timeout", "0.3"]).await;
    findings_hold(addr, "/echo").await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn size_and_connection_flags_apply() {
    let (mut child, addr) =
        spawn_binary(&["--max-request-line-size", "64", "--max-request-headers-total-size", "128", "--max-concurrent-connections", "1"])
            .await;
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(60));
    assert_eq!(status_codes(&exchange(addr, long_line.as_bytes()).await.unwrap()), [414]);
    let padded = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\n\r\n", "a".repeat(120));
    assert_eq!(status_codes(&exchange(addr, padded.as_bytes()).await.unwrap()), [431]);
    // One connection held open: a second one is closed at once.
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(b"GET /generateJwtToken HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut buf = vec![0; 4096];
    assert!(tokio::time::timeout(HANG_GUARD, held.read(&mut buf)).await.unwrap().unwrap() > 0);
    assert_eq!(exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.as_deref(), Some(""));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn unusable_limit_flags_are_refused() {
    for flags in [
        &["--request-headers-timeout", "0"][..],
        &["--keep-alive-timeout", "soon"],
        &["--max-request-line-size", "4"],
        &["--max-concurrent-connections", "0"],
        &["--min-request-body-data-rate", "-1"],
        &["--min-request-body-grace-period", "0"],
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalr-testserver"))
            .args(["--urls", "http://127.0.0.1:0"])
            .args(flags)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{flags:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
}

/// A raw request on a new connection, answered and closed (`Connection: close`); `None`: still
/// open after the hang guard.
async fn request(addr: SocketAddr, head: &str, body: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    // A reset after the server closed with unread bytes still counts as closed.
    let _ = tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut out)).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn post_head(target: &str, length: usize) -> String {
    format!("POST {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n")
}

#[tokio::test]
async fn stalled_hub_post_bodies_get_408_and_normal_ones_are_served() {
    let (mut child, addr) = spawn_binary(&["--min-request-body-data-rate", "240", "--min-request-body-grace-period", "0.3"]).await;
    // A negotiate never reads its body: one that never arrives is answered, and the
    // connection closed rather than held for the rest of it.
    let response = request(addr, &post_head("/echo/negotiate?negotiateVersion=1", 1000), b"{\"x\":").await;
    let response = response.expect("the negotiate with a stalled body is still held");
    assert_eq!(status_codes(&response), [200], "{response}");
    // A hub POST on a negotiated connection: the stalled body is cut, a whole one is served.
    let negotiated = request(addr, &post_head("/echo/negotiate?negotiateVersion=1", 0), b"").await.expect("negotiated");
    assert_eq!(status_codes(&negotiated), [200], "{negotiated}");
    let json: serde_json::Value = serde_json::from_str(negotiated.split_once("\r\n\r\n").unwrap().1).unwrap();
    let token = json["connectionToken"].as_str().expect("connectionToken");
    let target = format!("/echo?id={token}");
    let response = request(addr, &post_head(&target, 1000), b"hello").await.expect("the stalled hub POST is still held");
    assert_eq!(status_codes(&response), [408], "{response}");
    assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
    // 1,200 bytes in pieces for longer than the grace period, at about five times the rate.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(post_head(&target, 1200).as_bytes()).await.unwrap();
    for _ in 0..10 {
        // Pacing the client, not synchronising with the server.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream.write_all(&[b'x'; 120]).await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut out)).await.expect("answered").unwrap();
    let response = String::from_utf8_lossy(&out);
    assert_eq!(status_codes(&response), [200], "{response}");
    child.kill().await.unwrap();
}
