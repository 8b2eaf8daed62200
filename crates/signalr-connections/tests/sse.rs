//! Server-Sent Events with POST sends, over real HTTP.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Server;
use signalr_connections::{HttpConnectionOptions, TransportType};

async fn open_stream(server: &Server, token: &str) -> reqwest::Response {
    reqwest::Client::new().get(format!("{}?id={token}", server.base)).header("accept", "text/event-stream").send().await.unwrap()
}

async fn chunk(response: &mut reqwest::Response) -> Option<Bytes> {
    tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("chunk within 10 s").unwrap()
}

/// Reads until `expected` bytes arrived (hyper may split or join chunks).
async fn read_exact(response: &mut reqwest::Response, expected: &str) {
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match chunk(response).await {
            Some(bytes) => got.extend_from_slice(&bytes),
            None => break,
        }
    }
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

#[tokio::test]
async fn stream_starts_with_headers_and_a_comment_and_carries_events() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    let mut stream = open_stream(&server, &token).await;
    assert_eq!(stream.status(), 200);
    let headers = stream.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache,no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["content-encoding"], "identity");
    read_exact(&mut stream, ":\r\n").await;
    let connection = server.connected().await;
    assert_eq!(connection.transport(), TransportType::ServerSentEvents);

    let client = reqwest::Client::new();
    let sent = client.post(format!("{}?id={token}", server.base)).body("Hello\nWorld").send().await.unwrap();
    assert_eq!(sent.status(), 200);
    assert_eq!(sent.text().await.unwrap(), "");
    assert_eq!(server.data().await, "Hello\nWorld");
    read_exact(&mut stream, "data: Hello\r\ndata: World\r\n\r\n").await;

    // A second stream for the same connection conflicts.
    let second = open_stream(&server, &token).await;
    assert_eq!(second.status(), 409);

    // A graceful close ends the stream after what was queued.
    client.post(format!("{}?id={token}", server.base)).body("close").send().await.unwrap();
    read_exact(&mut stream, "data: bye\r\n\r\n").await;
    assert_eq!(chunk(&mut stream).await, None);
    server.data().await;
    assert_eq!(server.closed().await, connection.connection_id());
    let after = client.post(format!("{}?id={token}", server.base)).body("x").send().await.unwrap();
    assert_eq!(after.status(), 404);
    assert_eq!(after.text().await.unwrap(), "No Connection with that ID");
}

#[tokio::test]
async fn dropping_the_stream_ends_the_connection() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    let mut stream = open_stream(&server, &token).await;
    read_exact(&mut stream, ":\r\n").await;
    let connection = server.connected().await;
    drop(stream);
    // The server notices when it next writes.
    let _ = connection.send(Bytes::from_static(b"ping"));
    let _ = connection.send(Bytes::from_static(b"ping"));
    assert_eq!(server.closed().await, connection.connection_id());
}

#[tokio::test]
async fn sse_is_refused_when_disabled_or_without_a_connection() {
    let server = Server::start(HttpConnectionOptions::default().transports([TransportType::WebSockets])).await;
    let token = server.token().await;
    let response = open_stream(&server, &token).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "ServerSentEvents transport not supported by this end point type");

    let server = Server::start(HttpConnectionOptions::default()).await;
    let missing = reqwest::Client::new().get(&server.base).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(missing.text().await.unwrap(), "Connection ID required");
    let unknown = open_stream(&server, "AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.text().await.unwrap(), "No Connection with that ID");
}

#[tokio::test]
async fn a_slow_sse_consumer_is_closed_at_once() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    let mut stream = open_stream(&server, &token).await;
    read_exact(&mut stream, ":\r\n").await;
    let connection = server.connected().await;
    // The client reads no more.
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let mut refused = None;
    for _ in 0..100_000 {
        match connection.send(chunk.clone()) {
            Ok(()) => tokio::task::yield_now().await,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    assert_eq!(refused, Some(signalr_connections::ConnectionSendError::Full));
    assert_eq!(server.closed().await, connection.connection_id());
    drop(stream);
}
