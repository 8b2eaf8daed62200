//! Hostile clients against the connection layer, with raw clients (reqwest, tokio-tungstenite):
//! a connection belongs to the user who negotiated it, inbound buffers are bounded per
//! connection and per endpoint, never-started connections go after the start timeout,
//! connection limits per endpoint and per user, the request kept per connection is bounded,
//! and an aborted WebSocket gets a close frame with its reason.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use futures_util::StreamExt;
use signalr_connections::{Authenticator, HttpConnectionOptions, RequestInfo, Unauthorized, User};
use tokio_tungstenite::tungstenite::{self, Message};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The bearer token names the user (`alice`, `bob`); no token is anonymous.
struct NamedUsers;

impl Authenticator for NamedUsers {
    fn authenticate(&self, _request: &RequestInfo, bearer: Option<&str>) -> Result<Option<User>, Unauthorized> {
        Ok(bearer.map(|name| User { identifier: Some(name.to_owned()), claims: vec![("tenant".into(), format!("{name}-tenant"))] }))
    }
}

fn with_users() -> HttpConnectionOptions {
    HttpConnectionOptions::default().authenticator(Arc::new(NamedUsers))
}

/// Negotiates version 1 as `user` (anonymous when `None`) and returns the connection token.
async fn token_of(server: &Server, user: Option<&str>, query: &str) -> String {
    let mut request = reqwest::Client::new().post(format!("{}/negotiate?negotiateVersion=1{query}", server.base));
    if let Some(user) = user {
        request = request.bearer_auth(user);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["connectionToken"].as_str().unwrap().to_owned()
}

fn as_user(request: reqwest::RequestBuilder, user: Option<&str>) -> reqwest::RequestBuilder {
    match user {
        Some(user) => request.bearer_auth(user),
        None => request,
    }
}

async fn ws_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

async fn ws_connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect("WebSocket connects").0
}

async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("no message within 10 s")
        .expect("stream ended")
        .expect("read failed")
}

/// Long polling: another user's (or an anonymous) poll, POST and DELETE on the connection get
/// 403 and change nothing: the owner still receives its data and the application sees none of
/// the intruder's bytes.
#[tokio::test]
async fn long_polling_refuses_every_request_of_another_user() {
    let mut server = Server::start(with_users()).await;
    let client = reqwest::Client::new();
    let token = token_of(&server, Some("alice"), "").await;
    let url = format!("{}?id={token}", server.base);
    // The intruder cannot even start it.
    for intruder in [Some("bob"), None] {
        let poll = as_user(client.get(&url), intruder).send().await.unwrap();
        assert_eq!(poll.status(), 403, "{intruder:?}");
    }
    let first = client.get(&url).bearer_auth("alice").send().await.unwrap();
    assert_eq!(first.status(), 200);
    let connection = server.connected().await;

    for intruder in [Some("bob"), None] {
        let poll = as_user(client.get(&url), intruder).send().await.unwrap();
        assert_eq!(poll.status(), 403);
        assert_eq!(poll.text().await.unwrap(), "The connection belongs to another user.");
        let post = as_user(client.post(&url), intruder).body("stolen").send().await.unwrap();
        assert_eq!(post.status(), 403);
        let delete = as_user(client.delete(&url), intruder).send().await.unwrap();
        assert_eq!(delete.status(), 403);
    }
    assert!(!connection.is_closed(), "an intruder's DELETE must not end the connection");
    // The owner's data is still the owner's: the next poll gets it, and the application saw
    // only the owner's POST.
    let post = client.post(&url).bearer_auth("alice").body("mine").send().await.unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(server.data().await, Bytes::from_static(b"mine"));
    let poll = client.get(&url).bearer_auth("alice").send().await.unwrap();
    assert_eq!(poll.text().await.unwrap(), "mine");
    let delete = client.delete(&url).bearer_auth("alice").send().await.unwrap();
    assert_eq!(delete.status(), 202);
    assert_eq!(server.closed().await, connection.connection_id());
}

/// Server-Sent Events: another user cannot open the stream, POST the close message or DELETE.
#[tokio::test]
async fn server_sent_events_refuse_another_users_stream_and_posts() {
    let mut server = Server::start(with_users()).await;
    let client = reqwest::Client::new();
    let token = token_of(&server, Some("alice"), "").await;
    let url = format!("{}?id={token}", server.base);
    let stolen = client.get(&url).bearer_auth("bob").header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stolen.status(), 403);
    let mut stream = client.get(&url).bearer_auth("alice").header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let connection = server.connected().await;
    assert_eq!(stream.chunk().await.unwrap().unwrap(), Bytes::from_static(b":\r\n"));

    // A hub Close message ({"type":7}) from another user never reaches the application.
    let close = client.post(&url).bearer_auth("bob").body("{\"type\":7}\u{1e}").send().await.unwrap();
    assert_eq!(close.status(), 403);
    let anonymous = client.post(&url).body("close").send().await.unwrap();
    assert_eq!(anonymous.status(), 403);
    let delete = client.delete(&url).bearer_auth("bob").send().await.unwrap();
    assert_eq!(delete.status(), 403);

    let post = client.post(&url).bearer_auth("alice").body("hello").send().await.unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(server.data().await, Bytes::from_static(b"hello"));
    assert_eq!(stream.chunk().await.unwrap().unwrap(), Bytes::from_static(b"data: hello\r\n\r\n"));
    assert!(!connection.is_closed());
}

/// WebSockets: another user's or an anonymous upgrade on the token gets 403; a connection
/// negotiated anonymously accepts no user's upgrade either.
#[tokio::test]
async fn websockets_refuse_another_users_upgrade() {
    let mut server = Server::start(with_users()).await;
    let token = token_of(&server, Some("alice"), "").await;
    let url = format!("{}?id={token}", server.ws_base);
    assert_eq!(ws_status(&format!("{url}&access_token=bob")).await, 403);
    assert_eq!(ws_status(&url).await, 403);
    let mut ws = ws_connect(&format!("{url}&access_token=alice")).await;
    let connection = server.connected().await;
    assert_eq!(connection.user().unwrap().identifier.as_deref(), Some("alice"));
    futures_util::SinkExt::send(&mut ws, Message::text("still mine")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("still mine"));
    assert_eq!(server.data().await, Bytes::from_static(b"still mine"));

    let anonymous = token_of(&server, None, "").await;
    let url = format!("{}?id={anonymous}", server.ws_base);
    assert_eq!(ws_status(&format!("{url}&access_token=alice")).await, 403);
    let _ws = ws_connect(&url).await;
    assert!(server.connected().await.user().is_none());
}

/// Stateful reconnect: a socket presenting the token of another user's connection does not
/// take it over (403); the owner's socket keeps working. The owner's own new socket still does.
#[tokio::test]
async fn stateful_reconnect_is_not_taken_over_by_another_user() {
    let options = with_users().allow_stateful_reconnects(true);
    let mut server = Server::start(options).await;
    let token = token_of(&server, Some("alice"), "&useStatefulReconnect=true").await;
    let url = format!("{}?id={token}", server.ws_base);
    let mut ws = ws_connect(&format!("{url}&access_token=alice")).await;
    let connection = server.connected().await;
    assert!(connection.stateful_reconnect());

    assert_eq!(ws_status(&url).await, 403, "anonymous takeover");
    assert_eq!(ws_status(&format!("{url}&access_token=bob")).await, 403);
    futures_util::SinkExt::send(&mut ws, Message::text("after")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("after"));
    assert_eq!(server.data().await, Bytes::from_static(b"after"));

    // The owner may take over its own connection.
    let mut again = ws_connect(&format!("{url}&access_token=alice")).await;
    match server.next_event().await {
        common::Event::Reconnected(id) => assert_eq!(id, connection.connection_id()),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    assert_eq!(next_message(&mut again).await, Message::text("welcome back"));
}

/// POSTs before the transport started are held up to `application_max_buffer_size`; more get
/// 429; the connection and what it held go after the start timeout.
#[tokio::test]
async fn posts_to_a_never_started_connection_are_bounded_and_dropped() {
    let options = HttpConnectionOptions::default().application_max_buffer_size(1000).start_timeout(Duration::from_millis(300));
    let server = Server::start(options).await;
    let client = reqwest::Client::new();
    let token = server.token().await;
    let url = format!("{}?id={token}", server.base);
    let body = vec![b'x'; 600];
    let first = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(second.status(), 429);
    // Anything over the transport limit is refused outright, started or not.
    let huge = client.post(&url).body(vec![b'x'; 70_000]).send().await.unwrap();
    assert_eq!(huge.status(), 413);
    // Never started: removed after the start timeout (well before the disconnect timeout).
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let status = client.post(&url).body("x").send().await.unwrap().status();
            if status == 404 {
                break;
            }
            assert_eq!(status, 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the never-started connection was not removed");
}

/// The endpoint-wide inbound budget: held bytes of one connection count against another's
/// POST (503), and are given back when the application takes them.
#[tokio::test]
async fn the_node_wide_inbound_budget_refuses_posts_until_bytes_are_taken() {
    let options = HttpConnectionOptions::default().application_max_buffer_size(1000).max_buffered_inbound_bytes(1500);
    let mut server = Server::start(options).await;
    let client = reqwest::Client::new();
    let first = token_of(&server, None, "").await;
    let second = token_of(&server, None, "").await;
    let body = vec![b'y'; 900];
    let held = client.post(format!("{}?id={first}", server.base)).body(body.clone()).send().await;
    assert_eq!(held.unwrap().status(), 200);
    let refused = client.post(format!("{}?id={second}", server.base)).body(body.clone()).send().await;
    let refused = refused.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.text().await.unwrap(), "The server's inbound buffers are full; try again later.");
    // Starting the first connection hands its bytes to the application: the budget is free.
    let poll = client.get(format!("{}?id={first}", server.base)).send().await.unwrap();
    assert_eq!(poll.status(), 200);
    server.connected().await;
    assert_eq!(server.data().await.len(), 900);
    let accepted = client.post(format!("{}?id={second}", server.base)).body(body).send().await;
    assert_eq!(accepted.unwrap().status(), 200);
}

/// Connection limits: per endpoint (503) and per user (429), on negotiate and on
/// skipNegotiation WebSockets; a closed connection frees its place.
#[tokio::test]
async fn connections_per_endpoint_and_per_user_are_limited() {
    let options = with_users().max_connections_per_user(2).max_connections(4);
    let server = Server::start(options).await;
    let client = reqwest::Client::new();
    let negotiate = |user: Option<&'static str>| {
        let request = client.post(format!("{}/negotiate?negotiateVersion=1", server.base));
        async move { as_user(request, user).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(negotiate(Some("alice")).await, 200);
    assert_eq!(negotiate(Some("alice")).await, 200);
    assert_eq!(negotiate(Some("alice")).await, 429);
    assert_eq!(ws_status(&format!("{}?access_token=alice", server.ws_base)).await, 429);
    assert_eq!(negotiate(Some("bob")).await, 200);
    assert_eq!(negotiate(None).await, 200);
    // Four connections: the endpoint is full for everyone.
    assert_eq!(negotiate(Some("carol")).await, 503);
    assert_eq!(negotiate(None).await, 503);
    assert_eq!(ws_status(&server.ws_base).await, 503);

    // Ending one of alice's connections gives its place back.
    let mut server2 = Server::start(with_users().max_connections_per_user(1)).await;
    let token = token_of(&server2, Some("alice"), "").await;
    let url = format!("{}?id={token}", server2.base);
    client.get(&url).bearer_auth("alice").send().await.unwrap();
    server2.connected().await;
    let again = client.post(format!("{}/negotiate?negotiateVersion=1", server2.base)).bearer_auth("alice").send().await.unwrap();
    assert_eq!(again.status(), 429);
    assert_eq!(again.text().await.unwrap(), "Too many connections for this user.");
    assert_eq!(client.delete(&url).bearer_auth("alice").send().await.unwrap().status(), 202);
    server2.closed().await;
    token_of(&server2, Some("alice"), "").await;
}

/// A padded request: the connection keeps its small headers, not the padding, the
/// credentials or the `access_token` query value.
#[tokio::test]
async fn a_connection_keeps_a_bounded_part_of_its_request() {
    let mut server = Server::start(with_users()).await;
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(format!("{}?access_token=alice&room=1", server.ws_base)).unwrap();
    let headers = request.headers_mut();
    headers.insert("x-small", "kept".parse().unwrap());
    // Under the server's 32 KB header limit, far over what a connection keeps.
    headers.insert("x-padding", "p".repeat(20_000).parse().unwrap());
    headers.insert("cookie", "session=abc".parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let connection = server.connected().await;
    let info = connection.request();
    assert_eq!(info.headers["x-small"], "kept");
    assert!(info.headers.get("x-padding").is_none());
    assert!(info.headers.get("cookie").is_none());
    assert_eq!(info.cookies, vec![("session".to_owned(), "abc".to_owned())]);
    assert_eq!(info.query, vec![("room".to_owned(), "1".to_owned())]);
    let kept: usize = info.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
    assert!(kept <= 4096, "{kept} header bytes kept");
}

/// A slow consumer is closed with a close frame that says why.
#[tokio::test]
async fn a_slow_consumer_gets_a_close_frame_with_its_reason() {
    let mut server = Server::start(HttpConnectionOptions::default().outbound_buffer_limit(64)).await;
    let mut ws = ws_connect(&server.ws_base).await;
    let connection = server.connected().await;
    // 200 messages queued at once pass the 64-byte outbound limit.
    for _ in 0..200 {
        if connection.send(Bytes::from_static(b"0123456789")).is_err() {
            break;
        }
    }
    assert_eq!(server.closed().await, connection.connection_id());
    loop {
        match next_message(&mut ws).await {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1008);
                assert_eq!(frame.reason.as_str(), "The client did not read fast enough: outbound buffer full.");
                break;
            }
            Message::Text(_) | Message::Binary(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// `send_space` waits while the outbound buffer is too full for the next message and is
/// released when the transport takes the bytes (long polling here).
#[tokio::test]
async fn send_space_waits_until_the_client_takes_the_bytes() {
    let mut server = Server::start(HttpConnectionOptions::default().outbound_buffer_limit(100)).await;
    let client = reqwest::Client::new();
    let token = server.token().await;
    let url = format!("{}?id={token}", server.base);
    client.get(&url).send().await.unwrap();
    let connection = server.connected().await;
    connection.send(Bytes::from(vec![b'a'; 80])).unwrap();
    let waiting = {
        let connection = connection.clone();
        tokio::spawn(async move {
            connection.send_space(50).await;
            connection.send(Bytes::from(vec![b'b'; 50])).unwrap();
        })
    };
    // The poll takes the 80 bytes; the waiter then sends its 50 and the next poll gets them.
    let first = client.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert!(first.starts_with(&[b'a'; 80]));
    waiting.await.unwrap();
    let all = if first.len() == 130 { first } else { client.get(&url).send().await.unwrap().bytes().await.unwrap() };
    assert!(all.ends_with(&[b'b'; 50]));
    assert!(!connection.is_closed());
}
