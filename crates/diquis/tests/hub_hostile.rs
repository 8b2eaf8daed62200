//! The notification hub against hostile clients, with raw clients (reqwest, tokio-tungstenite):
//! a tenant user holding root's connection token gets 403 on every transport and changes
//! nothing; POSTs to a never-started connection are bounded and dropped with it; connections
//! per user are limited; 600 pipelined calls are all answered over WebSockets, long polling and
//! SSE (`SignalR:*` keys configure it).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use diquis::ProcessRole;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

const HUB: &str = "/hubs/notifications";

async fn negotiate(url: &str, token: &str) -> String {
    let r = client().post(format!("{url}{HUB}/negotiate?negotiateVersion=1")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["connectionToken"].as_str().unwrap().to_string()
}

async fn ws_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Starts an app with a second tenant `other` whose owner is signed in; returns root's token
/// and the owner's.
async fn with_other_tenant(db: &TestDb, extra: &[(&str, &str)]) -> (diquis::RunningApp, String, String) {
    let app = start(db, ProcessRole::All, extra).await;
    let url = app.url();
    let token = root_token(&url).await;
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("other", false))).await;
    assert_eq!(s, 202);
    wait_status(&url, &token, "other", "Active").await;
    let other = login(&url, "owner@other.test", "Owner1Passw0rd", "other").await;
    (app, token, other)
}

/// The finding: a tenant user sending root's `connectionToken` with their own Bearer token
/// received root's long poll (a root-only `TenantCreated`), closed root's SSE stream with a
/// POST of `{"type":7}`, and removed root's connection with DELETE. Now each is 403, and root's
/// connection goes on and gets its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_user_cannot_use_roots_connection_token() {
    let db = TestDb::sqlite();
    let (app, root, other) = with_other_tenant(&db, &[]).await;
    let url = app.url();
    let http = client();

    // Long polling.
    let id = negotiate(&url, &root).await;
    let lp = format!("{url}{HUB}?id={id}");
    assert_eq!(http.get(&lp).bearer_auth(&other).send().await.unwrap().status(), 403, "start as another user");
    assert_eq!(http.get(&lp).bearer_auth(&root).send().await.unwrap().status(), 200);
    let handshake = http.post(&lp).bearer_auth(&root).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await.unwrap();
    assert_eq!(handshake.status(), 200);
    let poll = http.get(&lp).bearer_auth(&other).send().await.unwrap();
    assert_eq!(poll.status(), 403);
    assert_eq!(poll.text().await.unwrap(), "The connection belongs to another user.");
    assert_eq!(http.post(&lp).bearer_auth(&other).body("{\"type\":7}\u{1e}").send().await.unwrap().status(), 403);
    assert_eq!(http.delete(&lp).bearer_auth(&other).send().await.unwrap().status(), 403);
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&root), Some(new_tenant("secret", false))).await;
    assert_eq!(s, 202);
    let mut received = String::new();
    while !received.contains("TenantCreated") {
        let poll = http.get(&lp).bearer_auth(&root).send().await.unwrap();
        assert_eq!(poll.status(), 200, "root's connection is still root's");
        received.push_str(&poll.text().await.unwrap());
    }
    assert_eq!(http.delete(&lp).bearer_auth(&root).send().await.unwrap().status(), 202);

    // Server-Sent Events.
    let id = negotiate(&url, &root).await;
    let sse = format!("{url}{HUB}?id={id}");
    let stolen = http.get(&sse).bearer_auth(&other).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stolen.status(), 403);
    let mut stream = http.get(&sse).bearer_auth(&root).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(&stream.chunk().await.unwrap().unwrap()[..], b":\r\n");
    let handshake = http.post(&sse).bearer_auth(&root).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await.unwrap();
    assert_eq!(handshake.status(), 200);
    assert_eq!(http.post(&sse).bearer_auth(&other).body("{\"type\":7}\u{1e}").send().await.unwrap().status(), 403);
    assert_eq!(http.delete(&sse).bearer_auth(&other).send().await.unwrap().status(), 403);
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&root), Some(new_tenant("secret2", false))).await;
    assert_eq!(s, 202);
    let mut events = String::new();
    while !events.contains("TenantCreated") {
        let chunk = tokio::time::timeout(Duration::from_secs(60), stream.chunk()).await.unwrap().unwrap();
        events.push_str(&String::from_utf8_lossy(&chunk.expect("root's stream stays open")));
    }

    // WebSockets.
    let id = negotiate(&url, &root).await;
    let ws = format!("{}{HUB}?id={id}", url.replacen("http", "ws", 1));
    assert_eq!(ws_status(&format!("{ws}&access_token={other}")).await, 403);
    assert_eq!(ws_status(&ws).await, 401, "anonymous callers are refused by the hub first");
    assert_eq!(ws_status(&format!("{ws}&access_token={root}")).await, 101);
    app.stop().await;
}

/// The finding: 8,000 POSTs of 65,000 bytes to a never-started connection were accepted. Now
/// the connection holds one such body (64 KiB limit), refuses the next with 429, and is gone
/// with it after `SignalR:StartTimeoutMilliseconds`. `SignalR:MaxConnectionsPerUser` caps a
/// user's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_started_posts_are_bounded_and_connections_per_user_limited() {
    let db = TestDb::sqlite();
    let extra = [("SignalR:StartTimeoutMilliseconds", "300"), ("SignalR:MaxConnectionsPerUser", "3")];
    let app = start(&db, ProcessRole::All, &extra).await;
    let url = app.url();
    let root = root_token(&url).await;
    let http = client();
    let id = negotiate(&url, &root).await;
    let target = format!("{url}{HUB}?id={id}");
    let body = vec![b'x'; 65_000];
    assert_eq!(http.post(&target).bearer_auth(&root).body(body.clone()).send().await.unwrap().status(), 200);
    for _ in 0..20 {
        assert_eq!(http.post(&target).bearer_auth(&root).body(body.clone()).send().await.unwrap().status(), 429);
    }
    wait_for("the never-started connection to be dropped", || async {
        let status = http.post(&target).bearer_auth(&root).body("x").send().await.unwrap().status();
        (status == 404).then_some(())
    })
    .await;

    // Three connections per user: the fourth negotiate is refused; another user is not.
    let held: Vec<String> = futures_util::future::join_all((0..3).map(|_| negotiate(&url, &root))).await;
    assert_eq!(held.len(), 3);
    let r = http.post(format!("{url}{HUB}/negotiate?negotiateVersion=1")).bearer_auth(&root).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.text().await.unwrap(), "Too many connections for this user.");
    app.stop().await;
}

/// The finding: 600 calls in one 53 KB frame got the connection dropped with no close frame once
/// the replies passed the 64 KB send buffer. The hub has no client-callable methods, so every
/// call is answered with an error completion; all 600 arrive, and the connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_pipelined_calls_are_all_answered() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let root = root_token(&url).await;
    let id = negotiate(&url, &root).await;
    let ws_url = format!("{}{HUB}?id={id}&access_token={root}", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}")).await.unwrap();
    let frame = pipelined_calls();
    ws.send(Message::text(frame)).await.unwrap();
    let mut answered = HashSet::new();
    let mut reply_bytes = 0;
    while answered.len() < 600 {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("replies in time");
        let text = match message {
            Some(Ok(Message::Text(text))) => text.to_string(),
            other => panic!("expected replies, got {other:?}"),
        };
        for part in text.split('\u{1e}').filter(|p| !p.is_empty()) {
            let value: Value = serde_json::from_str(part).unwrap();
            if value["type"] == 3 {
                reply_bytes += part.len() + 1;
                assert!(value["error"].is_string(), "{value}");
                answered.insert(value["invocationId"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(reply_bytes > 64 * 1024, "the replies ({reply_bytes} bytes) must pass the send buffer");
    app.stop().await;
}

/// The same 600 calls in one POST, over long polling and over Server-Sent Events: the hub takes
/// them as the client drains the replies (which pass the 64 KiB outbound buffer), every one is
/// answered, and the POST gets 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_pipelined_calls_in_one_post_are_all_answered() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let root = root_token(&url).await;
    let http = client();
    let frame = pipelined_calls();
    for sse in [false, true] {
        let target = format!("{url}{HUB}?id={}", negotiate(&url, &root).await);
        let mut stream = None;
        if sse {
            let response = http.get(&target).bearer_auth(&root).header("accept", "text/event-stream").send().await.unwrap();
            assert_eq!(response.status(), 200);
            stream = Some(response);
        } else {
            assert_eq!(http.get(&target).bearer_auth(&root).send().await.unwrap().status(), 200);
        }
        let handshake = http.post(&target).bearer_auth(&root).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await.unwrap();
        assert_eq!(handshake.status(), 200);
        let post = tokio::spawn({
            let (http, target, root, frame) = (http.clone(), target.clone(), root.clone(), frame.clone());
            async move { http.post(&target).bearer_auth(&root).body(frame).send().await.unwrap().status() }
        });
        let mut answered = HashSet::new();
        let mut reply_bytes = 0;
        let mut raw = String::new();
        while answered.len() < 600 {
            // Long polling: each poll's body is whole messages. SSE: events carry `data: ` lines.
            let payload = match stream.as_mut() {
                None => {
                    let poll = http.get(&target).bearer_auth(&root).send().await.unwrap();
                    assert_eq!(poll.status(), 200);
                    poll.text().await.unwrap()
                }
                Some(stream) => {
                    let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await.unwrap().unwrap().expect("stream open");
                    raw.push_str(&String::from_utf8_lossy(&chunk));
                    test_support::take_sse_data(&mut raw)
                }
            };
            for part in payload.split('\u{1e}').filter(|p| !p.is_empty()) {
                let value: Value = serde_json::from_str(part).unwrap();
                if value["type"] == 3 {
                    reply_bytes += part.len() + 1;
                    assert!(value["error"].is_string(), "{value}");
                    assert!(answered.insert(value["invocationId"].as_str().unwrap().to_string()), "{value}");
                }
            }
        }
        assert!(reply_bytes > 64 * 1024, "the replies ({reply_bytes} bytes) must pass the send buffer");
        assert_eq!(tokio::time::timeout(Duration::from_secs(30), post).await.unwrap().unwrap(), 200);
    }
    app.stop().await;
}

/// A connection negotiated with the session cookie is bound the same way: another user's
/// cookie or Bearer token gets 403 on its WebSocket and long poll; the owner's cookie works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_connections_are_bound_to_their_user() {
    let db = TestDb::sqlite();
    let (app, root, other) = with_other_tenant(&db, &[]).await;
    let url = app.url();
    let http = client();
    let cookie = |token: &str| format!("diquis_auth={token}");
    for transport in ["LongPolling", "WebSockets"] {
        let r = http.post(format!("{url}{HUB}/negotiate?negotiateVersion=1")).header("cookie", cookie(&root)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let id = body["connectionToken"].as_str().unwrap().to_string();
        if transport == "LongPolling" {
            let lp = format!("{url}{HUB}?id={id}");
            assert_eq!(http.get(&lp).header("cookie", cookie(&other)).send().await.unwrap().status(), 403);
            assert_eq!(http.get(&lp).bearer_auth(&other).send().await.unwrap().status(), 403);
            assert_eq!(http.get(&lp).header("cookie", cookie(&root)).send().await.unwrap().status(), 200);
            assert_eq!(http.delete(&lp).header("cookie", cookie(&other)).send().await.unwrap().status(), 403);
            assert_eq!(http.delete(&lp).header("cookie", cookie(&root)).send().await.unwrap().status(), 202);
        } else {
            let ws = format!("{}{HUB}?id={id}", url.replacen("http", "ws", 1));
            let with_cookie = |token: &str| {
                let mut request = tungstenite::client::IntoClientRequest::into_client_request(ws.as_str()).unwrap();
                request.headers_mut().insert("cookie", cookie(token).parse().unwrap());
                request
            };
            match tokio_tungstenite::connect_async(with_cookie(&other)).await {
                Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
                other => panic!("expected 403, got {:?}", other.map(|_| ())),
            }
            assert_eq!(ws_status(&format!("{ws}&access_token={other}")).await, 403);
            assert!(tokio_tungstenite::connect_async(with_cookie(&root)).await.is_ok());
        }
    }
    app.stop().await;
}

/// 600 calls of a missing method in one text frame, just under 64 KiB: each is answered with an
/// error Completion, and the replies together pass the 64 KiB outbound buffer.
fn pipelined_calls() -> String {
    let mut frame = String::new();
    for i in 0..600 {
        frame.push_str(
            &json!({"type":1,"invocationId":i.to_string(),"target":"NoSuchMethodPaddedName","arguments":["0123456789"]}).to_string(),
        );
        frame.push('\u{1e}');
    }
    assert!(frame.len() > 50_000 && frame.len() < 64 * 1024, "{}", frame.len());
    frame
}
