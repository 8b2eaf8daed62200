//! Connection lifetime: the shared sweep removes inactive connections; stateful reconnect keeps a
//! connection whose WebSocket dropped and lets a new socket take over.

mod common;

use std::time::Duration;

use common::{Event, Server};
use futures_util::{SinkExt, StreamExt};
use signalr_connections::HttpConnectionOptions;
use tokio_tungstenite::tungstenite::{self, Message};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn short_timeout() -> HttpConnectionOptions {
    HttpConnectionOptions::default().disconnect_timeout(Duration::from_millis(300))
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect("WebSocket connects").0
}

async fn connect_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("message within 10 s").expect("open").expect("ok")
}

/// Repeats `probe` until it answers `status` (the sweep runs every second).
async fn eventually_status<F, Fut>(status: u16, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let what = format!("the answer {status}");
    test_support::wait_for(&what, || {
        let answer = probe();
        async move { (answer.await == status).then_some(()) }
    })
    .await
}

#[tokio::test]
async fn a_negotiated_connection_that_never_connects_is_removed() {
    let server = Server::start(short_timeout()).await;
    let token = server.token().await;
    let url = format!("{}?id={token}", server.base);
    // Before the sweep: DELETE finds it (and refuses: not long polling).
    assert_eq!(reqwest::Client::new().delete(&url).send().await.unwrap().status(), 400);
    eventually_status(404, || async { reqwest::Client::new().delete(&url).send().await.unwrap().status().as_u16() }).await;
    let response = reqwest::Client::new().post(&url).body("x").send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_long_polling_connection_without_polls_is_removed() {
    let mut server = Server::start(short_timeout()).await;
    let token = server.token().await;
    let url = format!("{}?id={token}", server.base);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let connection = server.connected().await;
    // No further poll: the sweep ends it and the application hears of it.
    assert_eq!(server.closed().await, connection.connection_id());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
}

fn stateful() -> HttpConnectionOptions {
    short_timeout().disconnect_timeout(Duration::from_secs(15)).allow_stateful_reconnects(true)
}

async fn stateful_token(server: &Server) -> String {
    let json = server.negotiate("?negotiateVersion=1&useStatefulReconnect=true").await;
    assert_eq!(json["useStatefulReconnect"], true);
    json["connectionToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn stateful_reconnect_keeps_the_connection_across_a_dropped_socket() {
    let mut server = Server::start(stateful()).await;
    let token = stateful_token(&server).await;
    let url = format!("{}?id={token}", server.ws_base);
    let mut ws = connect(&url).await;
    let connection = server.connected().await;
    assert!(connection.stateful_reconnect());
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("one"));
    server.data().await;

    // Drop the TCP connection without a close frame.
    drop(ws);
    let mut ws = connect(&url).await;
    match server.next_event().await {
        Event::Reconnected(id) => assert_eq!(id, connection.connection_id()),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    assert!(!connection.is_closed());
    assert_eq!(next_message(&mut ws).await, Message::text("welcome back"));
    ws.send(Message::text("two")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("two"));
    assert_eq!(server.data().await, "two");

    // A close frame ends it for good.
    ws.close(None).await.unwrap();
    assert_eq!(server.closed().await, connection.connection_id());
    assert_eq!(connect_status(&url).await, 404);
}

#[tokio::test]
async fn a_new_socket_takes_over_a_live_one_without_409() {
    let mut server = Server::start(stateful()).await;
    let token = stateful_token(&server).await;
    let url = format!("{}?id={token}", server.ws_base);
    let mut old = connect(&url).await;
    let connection = server.connected().await;
    let mut new = connect(&url).await;
    match server.next_event().await {
        Event::Reconnected(id) => assert_eq!(id, connection.connection_id()),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    assert_eq!(next_message(&mut new).await, Message::text("welcome back"));
    // The old socket was dropped by the server.
    let end = tokio::time::timeout(Duration::from_secs(10), old.next()).await.unwrap();
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
}

#[tokio::test]
async fn of_two_sockets_waiting_to_take_over_the_newest_wins() {
    let mut server = Server::start(stateful()).await;
    let token = stateful_token(&server).await;
    let url = format!("{}?id={token}", server.ws_base);
    let _first = connect(&url).await;
    let connection = server.connected().await;
    // The second socket takes over and keeps the application in `on_reconnected`.
    let gate = server.reconnect_gate.clone().lock_owned().await;
    let _second = connect(&url).await;
    match server.next_event().await {
        Event::Reconnected(id) => assert_eq!(id, connection.connection_id()),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    // Two more sockets come while it does; both wait for the application.
    let mut third = connect(&url).await;
    let mut fourth = connect(&url).await;
    drop(gate);
    // Only the newest gets it: the third gives way without reconnecting the application.
    match server.next_event().await {
        Event::Reconnected(id) => assert_eq!(id, connection.connection_id()),
        other => panic!("expected Reconnected, got {other:?}"),
    }
    assert_eq!(next_message(&mut fourth).await, Message::text("welcome back"));
    fourth.send(Message::text("four")).await.unwrap();
    assert_eq!(next_message(&mut fourth).await, Message::text("four"));
    let end = tokio::time::timeout(Duration::from_secs(10), third.next()).await.unwrap();
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
}

#[tokio::test]
async fn an_abandoned_stateful_connection_is_closed_after_the_disconnect_timeout() {
    let mut server = Server::start(stateful().disconnect_timeout(Duration::from_millis(300))).await;
    let token = stateful_token(&server).await;
    let url = format!("{}?id={token}", server.ws_base);
    let ws = connect(&url).await;
    let connection = server.connected().await;
    drop(ws);
    assert_eq!(server.closed().await, connection.connection_id());
    assert_eq!(connect_status(&url).await, 404);
}

#[tokio::test]
async fn without_stateful_reconnect_a_dropped_socket_ends_the_connection() {
    let mut server = Server::start(HttpConnectionOptions::default().allow_stateful_reconnects(true)).await;
    // The client did not ask: no stateful reconnect.
    let token = server.token().await;
    let url = format!("{}?id={token}", server.ws_base);
    let ws = connect(&url).await;
    let connection = server.connected().await;
    assert!(!connection.stateful_reconnect());
    drop(ws);
    assert_eq!(server.closed().await, connection.connection_id());
    assert_eq!(connect_status(&url).await, 404);
}

#[tokio::test]
async fn a_write_stuck_longer_than_the_send_timeout_aborts_the_connection() {
    let options = HttpConnectionOptions::default().transport_send_timeout(Duration::from_millis(500));
    let mut server = Server::start(options).await;
    // This client never reads, so a message larger than the socket buffers never finishes.
    let _ws = connect(&server.ws_base).await;
    let connection = server.connected().await;
    // One message is accepted whatever its size when nothing else is queued.
    connection.send(bytes::Bytes::from(vec![b'x'; 32 * 1024 * 1024])).unwrap();
    assert_eq!(server.closed().await, connection.connection_id());
    assert!(connection.is_closed());
}

#[tokio::test]
async fn posts_before_the_first_poll_reach_the_application_when_it_starts() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    let url = format!("{}?id={token}", server.base);
    let client = reqwest::Client::new();
    assert_eq!(client.post(&url).body("early").send().await.unwrap().status(), 200);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    server.connected().await;
    assert_eq!(server.data().await, "early");
    // The echo of the early data waits for the next poll.
    assert_eq!(client.get(&url).send().await.unwrap().text().await.unwrap(), "early");
}

#[tokio::test]
async fn abort_between_long_polls_ends_the_connection_at_once() {
    let mut server = Server::start(HttpConnectionOptions::default()).await;
    let token = server.token().await;
    let url = format!("{}?id={token}", server.base);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let connection = server.connected().await;
    connection.abort();
    assert_eq!(server.closed().await, connection.connection_id());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
}
