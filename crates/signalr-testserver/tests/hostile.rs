//! Hostile clients against the functional-test server, with raw clients: a connection token of
//! `testuser` is useless to anyone else (long polling, SSE, WebSockets, stateful reconnect);
//! 600 pipelined calls in one frame or POST are all answered (WebSockets, long polling, SSE);
//! POSTs to a never-started connection and connections per user are bounded.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use signalr_testserver::{AppArgs, build};
use tokio_tungstenite::tungstenite::{self, Message};

const HANG_GUARD: Duration = Duration::from_secs(10);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start() -> SocketAddr {
    let app = build(AppArgs::default()).router;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(signalr_connections::listener::nodelay(listener), app).await.unwrap() });
    addr
}

async fn jwt(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/generateJwtToken")).await.unwrap().text().await.unwrap()
}

/// Negotiates `/testhub` (version 1) with `token` as bearer, or anonymously.
async fn negotiate(addr: SocketAddr, token: Option<&str>, query: &str) -> Value {
    let mut request = reqwest::Client::new().post(format!("http://{addr}/testhub/negotiate?negotiateVersion=1{query}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn ws_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Reads hub messages (pings skipped) until `count` were collected.
async fn read_messages(ws: &mut Ws, buffer: &mut Vec<Value>, count: usize) {
    while buffer.len() < count {
        let frame = match tokio::time::timeout(HANG_GUARD, ws.next()).await.expect("in time") {
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            other => panic!("expected a text frame, got {other:?}"),
        };
        for part in frame.split(|b| *b == 0x1e).filter(|p| !p.is_empty()) {
            let value: Value = serde_json::from_slice(part).unwrap();
            if value["type"] != 6 {
                buffer.push(value);
            }
        }
    }
}

/// The finding: an anonymous WebSocket presenting only `testuser`'s connection token with
/// stateful reconnect got 101, `Sequence` and a replay of the user's messages. Now: 403, and
/// the user's socket goes on.
#[tokio::test]
async fn stateful_reconnect_takeover_by_an_anonymous_socket_is_refused() {
    let addr = start().await;
    let token = jwt(addr).await;
    let negotiated = negotiate(addr, Some(&token), "&useStatefulReconnect=true").await;
    assert_eq!(negotiated["useStatefulReconnect"], true);
    let id = negotiated["connectionToken"].as_str().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/testhub?id={id}&access_token={token}")).await.unwrap();
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":2}\x1e")).await.unwrap();
    let mut messages: Vec<Value> = Vec::new();
    ws.send(Message::text(format!("{}\x1e", json!({"type":1,"invocationId":"2","target":"Echo","arguments":["secret"]})))).await.unwrap();
    while !messages.iter().any(|m| m["invocationId"] == "2" && m["result"] == "secret") {
        let wanted = messages.len() + 1;
        read_messages(&mut ws, &mut messages, wanted).await;
    }

    // Anonymous, and with a garbage token (anonymous on this hub): refused, no replay.
    assert_eq!(ws_status(&format!("ws://{addr}/testhub?id={id}")).await, 403);
    assert_eq!(ws_status(&format!("ws://{addr}/testhub?id={id}&access_token=garbage")).await, 403);

    // The user's socket was not closed: it still answers.
    ws.send(Message::text(format!("{}\x1e", json!({"type":1,"invocationId":"3","target":"Echo","arguments":["still"]})))).await.unwrap();
    let mut more: Vec<Value> = Vec::new();
    while !more.iter().any(|m| m["type"] == 3) {
        let wanted = more.len() + 1;
        read_messages(&mut ws, &mut more, wanted).await;
    }
    let completion = more.iter().find(|m| m["type"] == 3).unwrap();
    assert_eq!(completion["invocationId"], "3");
    assert_eq!(completion["result"], "still");
}

/// Long polling and SSE: an anonymous caller with `testuser`'s token can neither poll, nor POST
/// a Close message, nor DELETE.
#[tokio::test]
async fn long_polling_and_sse_tokens_are_useless_to_another_caller() {
    let addr = start().await;
    let http = reqwest::Client::new();
    let token = jwt(addr).await;
    for sse in [false, true] {
        let negotiated = negotiate(addr, Some(&token), "").await;
        let id = negotiated["connectionToken"].as_str().unwrap();
        let url = format!("http://{addr}/testhub?id={id}");
        let accept = if sse { "text/event-stream" } else { "*/*" };
        let stolen = http.get(&url).header("accept", accept).send().await.unwrap();
        assert_eq!(stolen.status(), 403);
        let mut owner = http.get(&url).bearer_auth(&token).header("accept", accept).send().await.unwrap();
        assert_eq!(owner.status(), 200);
        if sse {
            assert_eq!(&owner.chunk().await.unwrap().unwrap()[..], b":\r\n");
        }
        let handshake = http.post(&url).bearer_auth(&token).body("{\"protocol\":\"json\",\"version\":1}\x1e").send().await;
        assert_eq!(handshake.unwrap().status(), 200);
        let close = http.post(&url).body("{\"type\":7}\x1e").send().await.unwrap();
        assert_eq!(close.status(), 403);
        let delete = http.delete(&url).send().await.unwrap();
        assert_eq!(delete.status(), 403);
        let poll = http.get(&url).send().await.unwrap();
        assert_eq!(poll.status(), 403);
        // The connection is the owner's and alive: the owner's call is answered.
        let call = json!({"type":1,"invocationId":"1","target":"Echo","arguments":["mine"]});
        let posted = http.post(&url).bearer_auth(&token).body(format!("{call}\x1e")).send().await.unwrap();
        assert_eq!(posted.status(), 200);
        let mut received = String::new();
        while !received.contains("\"result\":\"mine\"") {
            if sse {
                let chunk = tokio::time::timeout(HANG_GUARD, owner.chunk()).await.unwrap().unwrap().expect("stream open");
                received.push_str(&String::from_utf8_lossy(&chunk));
            } else {
                let poll = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(poll.status(), 200);
                received.push_str(&poll.text().await.unwrap());
            }
        }
    }
}

/// 600 calls in one frame of about 61 KB whose replies (error completions with the detailed
/// message, about 96 KB) pass the 64 KiB outbound buffer: the finding dropped the connection
/// without a close frame once they did.
fn pipelined_calls() -> String {
    let mut frame = String::new();
    for i in 0..600 {
        frame.push_str(&json!({"type":1,"invocationId":i.to_string(),"target":"ThrowException","arguments":["m".repeat(20)]}).to_string());
        frame.push('\u{1e}');
    }
    assert!(frame.len() > 50_000 && frame.len() < 64 * 1024, "{}", frame.len());
    frame
}

/// Collects the completions among `messages` into `answered`; returns their bytes.
fn completions(messages: &[Value], answered: &mut HashSet<String>) -> usize {
    let mut bytes = 0;
    for message in messages.iter().filter(|m| m["type"] == 3) {
        assert!(message["error"].as_str().is_some_and(|e| e.contains("mmmm")), "{message}");
        assert!(answered.insert(message["invocationId"].as_str().unwrap().to_owned()), "{message}");
        bytes += message.to_string().len() + 1;
    }
    bytes
}

/// 600 calls in one WebSocket frame: every one answered, the connection stays.
#[tokio::test]
async fn six_hundred_pipelined_calls_are_all_answered() {
    let addr = start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/testhub")).await.unwrap();
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")).await.unwrap();
    ws.send(Message::text(pipelined_calls())).await.unwrap();
    let mut messages = Vec::new();
    read_messages(&mut ws, &mut messages, 601).await;
    let mut answered = HashSet::new();
    let bytes = completions(&messages, &mut answered);
    assert_eq!(answered.len(), 600);
    assert!(bytes > 64 * 1024, "the replies ({bytes} bytes) must pass the outbound buffer");
    // Still connected: one more call is answered.
    ws.send(Message::text(format!("{}\x1e", json!({"type":1,"invocationId":"last","target":"Echo","arguments":["more"]})))).await.unwrap();
    let mut more = Vec::new();
    while !more.iter().any(|m: &Value| m["invocationId"] == "last") {
        let wanted = more.len() + 1;
        read_messages(&mut ws, &mut more, wanted).await;
    }
}

/// The same 600 calls in one POST over long polling and over Server-Sent Events: the hub takes
/// them as the client drains the replies, every one is answered, and the POST gets 200.
#[tokio::test]
async fn six_hundred_pipelined_calls_in_one_post_are_all_answered() {
    let addr = start().await;
    let http = reqwest::Client::new();
    for sse in [false, true] {
        let negotiated = negotiate(addr, None, "").await;
        let url = format!("http://{addr}/testhub?id={}", negotiated["connectionToken"].as_str().unwrap());
        let mut stream = None;
        if sse {
            let response = http.get(&url).header("accept", "text/event-stream").send().await.unwrap();
            assert_eq!(response.status(), 200);
            stream = Some(response);
        } else {
            assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
        }
        let handshake = http.post(&url).body("{\"protocol\":\"json\",\"version\":1}\x1e").send().await.unwrap();
        assert_eq!(handshake.status(), 200);
        let post = tokio::spawn({
            let (http, url) = (http.clone(), url.clone());
            async move { http.post(&url).body(pipelined_calls()).send().await.unwrap().status() }
        });
        let mut answered = HashSet::new();
        let mut bytes = 0;
        let mut raw = String::new();
        while answered.len() < 600 {
            // Long polling: each poll's body is whole messages. SSE: events carry `data: ` lines.
            let payload = match stream.as_mut() {
                None => {
                    let poll = http.get(&url).send().await.unwrap();
                    assert_eq!(poll.status(), 200);
                    poll.text().await.unwrap()
                }
                Some(stream) => {
                    let chunk = tokio::time::timeout(HANG_GUARD, stream.chunk()).await.unwrap().unwrap().expect("stream open");
                    raw.push_str(&String::from_utf8_lossy(&chunk));
                    test_support::take_sse_data(&mut raw)
                }
            };
            let messages: Vec<Value> =
                payload.split('\u{1e}').filter(|p| !p.is_empty()).map(|p| serde_json::from_str(p).unwrap()).collect();
            bytes += completions(&messages, &mut answered);
        }
        assert!(bytes > 64 * 1024, "the replies ({bytes} bytes) must pass the outbound buffer");
        assert_eq!(tokio::time::timeout(HANG_GUARD, post).await.unwrap().unwrap(), 200);
    }
}

/// The finding: 8,000 POSTs of 65,000 bytes to a never-started connection were all accepted.
/// Now the connection holds one (`ApplicationMaxBufferSize`, 64 KiB) and refuses the rest with
/// 429; and `testuser` holds at most 100 connections (`max_connections_per_user`), on
/// negotiate and on a WebSocket without negotiate.
#[tokio::test]
async fn never_started_posts_and_connections_per_user_are_bounded() {
    let addr = start().await;
    let http = reqwest::Client::new();
    let negotiated = negotiate(addr, None, "").await;
    let url = format!("http://{addr}/testhub?id={}", negotiated["connectionToken"].as_str().unwrap());
    let body = vec![b'x'; 65_000];
    assert_eq!(http.post(&url).body(body.clone()).send().await.unwrap().status(), 200);
    for _ in 0..20 {
        assert_eq!(http.post(&url).body(body.clone()).send().await.unwrap().status(), 429);
    }
    // Over the 64 KiB inbound limit: refused outright.
    assert_eq!(http.post(&url).body(vec![b'x'; 70_000]).send().await.unwrap().status(), 413);

    let token = jwt(addr).await;
    for _ in 0..100 {
        negotiate(addr, Some(&token), "").await;
    }
    let refused = http.post(format!("http://{addr}/testhub/negotiate?negotiateVersion=1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.text().await.unwrap(), "Too many connections for this user.");
    assert_eq!(ws_status(&format!("ws://{addr}/testhub?access_token={token}")).await, 429);
    // Anonymous callers count only against the node's limit.
    assert_eq!(ws_status(&format!("ws://{addr}/testhub")).await, 101);
}
