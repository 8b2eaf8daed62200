//! The WebSockets transport with a real tokio-tungstenite client.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::Server;
use futures_util::{SinkExt, StreamExt};
use signalr_connections::{ConnectionSendError, HttpConnectionOptions, TransportType};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect("WebSocket connects").0
}

async fn connect_status(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => (101, String::new()),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("message within 10 s").expect("open").expect("ok")
}

#[tokio::test]
async fn echoes_text_over_a_negotiated_connection() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let json = server.negotiate("?negotiateVersion=1").await;
    let token = json["connectionToken"].as_str().unwrap();
    let mut ws = connect(&format!("{}?id={token}", server.ws_base)).await;
    let connection = server.connected().await;
    assert_eq!(connection.connection_id(), json["connectionId"].as_str().unwrap());
    assert_eq!(connection.transport(), TransportType::WebSockets);
    assert_eq!(connection.negotiate_version(), 1);
    assert!(!connection.stateful_reconnect());
    // Nothing written yet; the echo below is (the hub's keep-alive reads this).
    assert_eq!(connection.last_write_started(), None);
    let before_echo = std::time::Instant::now();

    ws.send(Message::text("Hello World!")).await.unwrap();
    assert_eq!(server.data().await, "Hello World!");
    assert_eq!(next_message(&mut ws).await, Message::text("Hello World!"));
    let written = connection.last_write_started().expect("the echo's write is recorded");
    assert!(written >= before_echo);

    // A reused token gets 409 while the first socket is open.
    assert_eq!(connect_status(&format!("{}?id={token}", server.ws_base)).await.0, 409);

    ws.close(None).await.unwrap();
    assert_eq!(server.closed().await, json["connectionId"].as_str().unwrap());
    // Removed once closed.
    let (status, body) = connect_status(&format!("{}?id={token}", server.ws_base)).await;
    assert_eq!((status, body.as_str()), (404, "No Connection with that ID"));
}

#[tokio::test]
async fn skip_negotiation_creates_a_version_0_connection() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    let connection = server.connected().await;
    assert_eq!(connection.negotiate_version(), 0);
    assert_eq!(connection.connection_id().len(), 22);
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("x"));
    // id = token: a POST with the id finds the connection (and refuses it: WebSockets).
    let response =
        reqwest::Client::new().post(format!("{}?id={}", server.base, connection.connection_id())).body("x").send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.text().await.unwrap(), "POST requests are not allowed for WebSocket connections.");
}

#[tokio::test]
async fn unknown_ids_and_transport_changes_are_refused_before_upgrade() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    for id in ["AAAAAAAAAAAAAAAAAAAAAA", "short", "%00%FF", "a/b"] {
        let (status, body) = connect_status(&format!("{}?id={id}", server.ws_base)).await;
        assert_eq!((status, body.as_str()), (404, "No Connection with that ID"), "id {id}");
    }
    // A long-polling connection cannot switch to WebSockets.
    let token = server.token().await;
    let poll = reqwest::get(format!("{}?id={token}", server.base)).await.unwrap();
    assert_eq!(poll.status(), 200);
    server.connected().await;
    let (status, body) = connect_status(&format!("{}?id={token}", server.ws_base)).await;
    assert_eq!((status, body.as_str()), (400, "Cannot change transports mid-connection"));

    let no_ws = Server::start(HttpConnectionOptions::default().transports([TransportType::LongPolling])).await;
    let (status, body) = connect_status(&no_ws.ws_base).await;
    assert_eq!((status, body.as_str()), (404, "WebSockets transport not supported by this end point type"));
    let token = no_ws.token().await;
    let (status, body) = connect_status(&format!("{}?id={token}", no_ws.ws_base)).await;
    assert_eq!((status, body.as_str()), (404, "WebSockets transport not supported by this end point type"));
}

#[tokio::test]
async fn frame_type_follows_the_transfer_format() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    server.connected().await;
    // The handshake arrives as text; the reply to `binary` already goes out in Binary frames.
    ws.send(Message::text("binary")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::binary(&b"binary"[..]));
    ws.send(Message::binary(&[1u8, 2, 3][..])).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::binary(&[1u8, 2, 3][..]));
}

#[tokio::test]
async fn fragmented_input_reaches_the_application_whole_and_in_order() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    server.connected().await;
    ws.send(Message::Frame(Frame::message(&b"Hel"[..], OpCode::Data(Data::Text), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message(&b"lo "[..], OpCode::Data(Data::Continue), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message(&b"World"[..], OpCode::Data(Data::Continue), true))).await.unwrap();
    // A protocol message split over two WebSocket messages reaches the application as bytes in
    // order (message boundaries are not kept, as in .NET's pipe): whole messages may be joined.
    ws.send(Message::text("{\"par")).await.unwrap();
    ws.send(Message::text("t\":1}\u{1e}")).await.unwrap();
    let expected = "Hello World{\"part\":1}\u{1e}";
    let mut received = Vec::new();
    while received.len() < expected.len() {
        received.extend_from_slice(&server.data().await);
    }
    assert_eq!(received, expected.as_bytes());
}

#[tokio::test]
async fn queued_messages_are_written_as_one_websocket_message() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    server.connected().await;
    ws.send(Message::text("burst:5")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("m1m2m3m4m5"));
}

#[tokio::test]
async fn a_large_backlog_is_written_in_batches_of_whole_messages() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    server.connected().await;
    // 3000 messages of 2-5 bytes (about 14 KB) are queued in one go: more than one batch.
    ws.send(Message::text("burst:3000")).await.unwrap();
    let expected: String = (1..=3000).map(|i| format!("m{i}")).collect();
    let mut received = String::new();
    let mut messages = 0;
    while received.len() < expected.len() {
        match next_message(&mut ws).await {
            Message::Text(text) => {
                // Every WebSocket message ends on a message boundary.
                let next = format!("m{}", received.matches('m').count() + 1);
                assert!(text.starts_with(&next), "batch starts mid-message: {}", &text[..10]);
                received.push_str(&text);
                messages += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, expected);
    assert!(messages >= 2, "a 14 KB backlog should need more than one 8 KiB batch");
}

#[tokio::test]
async fn graceful_server_close_sends_1000_with_empty_reason() {
    let mut server = Server::start(HttpConnectionOptions::default().websocket_close_timeout(Duration::from_secs(60))).await;
    let mut ws = connect(&server.ws_base).await;
    let connection = server.connected().await;
    ws.send(Message::text("close")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("bye"));
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason, "");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Reading on lets tungstenite send its reply to the close frame (the close handshake a
    // browser completes by itself); then the server ends the TCP connection.
    assert!(ws.next().await.is_none());
    server.data().await;
    assert_eq!(server.closed().await, connection.connection_id());
    assert!(connection.is_closed());
    assert_eq!(connection.send(Bytes::from_static(b"late")), Err(ConnectionSendError::Closed));
}

#[tokio::test]
async fn abort_ends_the_connection_at_once() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    let connection = server.connected().await;
    connection.abort();
    assert_eq!(server.closed().await, connection.connection_id());
    // The socket ends with a close frame saying why (1011, aborted by the server).
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap();
    match end {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1011);
            assert_eq!(frame.reason.as_str(), "The connection was aborted by the server.");
        }
        other => panic!("expected a close frame with a reason, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_messages_are_closed_with_1009() {
    let mut server = Server::start(HttpConnectionOptions::default().transport_max_buffer_size(1024)).await;
    let mut ws = connect(&server.ws_base).await;
    server.connected().await;
    ws.send(Message::binary(vec![7u8; 4096])).await.unwrap();
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Reading on sends tungstenite's reply to the close frame; the server may also reset the
    // connection, as the rest of the oversized frame is still in flight.
    let end = ws.next().await;
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
    server.closed().await;
}

#[tokio::test]
async fn request_info_carries_headers_query_and_cookies() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(format!("{}?numRedirects=3&name=a%20b", server.ws_base)).unwrap();
    request.headers_mut().insert("X-HEADER", "custom".parse().unwrap());
    request.headers_mut().insert("cookie", "testCookie=testValue; testCookie2=testValue2".parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let connection = server.connected().await;
    let info = connection.request();
    assert_eq!(info.headers["x-header"], "custom");
    assert_eq!(info.path, "/echo");
    assert!(info.query.contains(&("numRedirects".to_owned(), "3".to_owned())));
    assert!(info.query.contains(&("name".to_owned(), "a b".to_owned())));
    assert_eq!(info.cookies, vec![("testCookie".to_owned(), "testValue".to_owned()), ("testCookie2".to_owned(), "testValue2".to_owned())]);
}

#[tokio::test]
async fn a_slow_consumer_is_closed_without_holding_up_the_others() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    // The slow client never reads.
    let _slow = connect(&server.ws_base).await;
    let slow = server.connected().await;
    let mut fast_ws = connect(&server.ws_base).await;
    let fast = server.connected().await;

    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let mut refused = None;
    for _ in 0..100_000 {
        match slow.send(chunk.clone()) {
            Ok(()) => tokio::task::yield_now().await,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    assert_eq!(refused, Some(ConnectionSendError::Full));
    assert_eq!(server.closed().await, slow.connection_id());
    assert!(slow.is_closed());

    fast.send(Bytes::from_static(b"still here")).unwrap();
    assert_eq!(next_message(&mut fast_ws).await, Message::text("still here"));
    assert!(!fast.is_closed());
}

#[tokio::test]
async fn case_insensitive_paths_and_trailing_slashes_reach_the_endpoint() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let upper = server.ws_base.replace("/echo", "/ECHO/");
    let mut ws = connect(&upper).await;
    server.connected().await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("hi"));
    let url = server.base.replace("/echo", "/Echo/negotiate/");
    let response = reqwest::Client::new().post(format!("{url}?negotiateVersion=1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert!(json["connectionToken"].is_string());
    let missing = reqwest::Client::new().post(server.base.replace("/echo", "/nothing/negotiate")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn handler_events_are_ordered() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let mut ws = connect(&server.ws_base).await;
    let connection = server.connected().await;
    ws.send(Message::text("a")).await.unwrap();
    ws.send(Message::text("b")).await.unwrap();
    ws.close(None).await.unwrap();
    assert_eq!(server.data().await, "a");
    assert_eq!(server.data().await, "b");
    assert_eq!(server.closed().await, connection.connection_id());
    assert!(server.events.try_recv().is_err(), "nothing after Closed");
}

#[tokio::test]
async fn malformed_upgrade_requests_get_a_clear_4xx() {
    let server = Server::start(HttpConnectionOptions::default()).await;
    // Upgrade: websocket without the handshake headers.
    let response =
        reqwest::Client::new().get(&server.base).header("upgrade", "websocket").header("connection", "upgrade").send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    // A plain GET without an id is a long poll without a connection.
    let response = reqwest::get(&server.base).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.text().await.unwrap(), "Connection ID required");
}
