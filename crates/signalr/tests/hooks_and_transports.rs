//! Connect and disconnect hooks, and the handshake over Server-Sent Events (msgpack refused,
//! JSON served), with reqwest as the SSE/POST client.

mod common;

use std::sync::Arc;

use common::{Client, Protocol};
use parking_lot::Mutex;
use serde_json::json;
use signalr::{Hub, HubCallContext, HubCallerContext, HubError, HubOptions, HubService};
use signalr_connections::HttpConnectionOptions;
use tokio::sync::mpsc;

async fn serve(hub: Hub, options: HubOptions) -> std::net::SocketAddr {
    let service = HubService::new(hub, options);
    let app = service.router("/hub", HttpConnectionOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(signalr_connections::listener::nodelay(listener), app).await.unwrap() });
    addr
}

#[tokio::test]
async fn on_connected_runs_before_messages_and_on_disconnected_gets_the_close_error() {
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<(String, Option<String>)>();
    let hub = Hub::builder("Hooks")
        .on_connected(|ctx: HubCallContext| async move {
            ctx.context().insert_item("greeting", "hello".to_owned());
            ctx.clients().caller().send("Welcome", (ctx.connection_id().to_owned(),)).await
        })
        .on_disconnected(move |ctx: HubCallerContext, error: Option<String>| {
            let gone_tx = gone_tx.clone();
            async move {
                let _ = gone_tx.send((ctx.connection_id().to_owned(), error));
            }
        })
        .method("Greeting", |ctx: HubCallContext, (): ()| async move { Ok::<_, HubError>(ctx.context().item::<String>("greeting")) })
        .method("Id", |ctx: HubCallContext, (): ()| async move { Ok::<_, HubError>(ctx.connection_id().to_owned()) })
        .build();
    let addr = serve(hub, HubOptions::default()).await;
    let mut client = Client::connect(addr, Protocol::Json).await;
    let welcome = client.next_json().await;
    assert_eq!(welcome["target"], "Welcome");
    let id = client.invoke("1", "Id", json!([])).await["result"].as_str().unwrap().to_owned();
    assert_eq!(welcome["arguments"][0], id.as_str());
    assert_eq!(client.invoke("2", "Greeting", json!([])).await["result"], "hello");
    client.send(json!({"type":7,"error":"client went away"})).await;
    assert_eq!(client.next_json().await, json!({"type":7}));
    assert!(client.next_any().await.is_none(), "the server closes after its Close");
    drop(client);
    let (gone, error) = gone_rx.recv().await.unwrap();
    assert_eq!(gone, id);
    assert_eq!(error.as_deref(), Some("client went away"));
}

#[tokio::test]
async fn a_failing_on_connected_closes_without_reconnect() {
    let calls = Arc::new(Mutex::new(0));
    let hub = Hub::builder("Refuses")
        .on_connected({
            let calls = calls.clone();
            move |_ctx: HubCallContext| {
                *calls.lock() += 1;
                async move { Err::<(), _>(HubError::exception("InvalidOperationException", "not today")) }
            }
        })
        .build();
    let addr = serve(hub, HubOptions::default().enable_detailed_errors(true)).await;
    let mut client = Client::connect(addr, Protocol::Json).await;
    assert_eq!(client.next_json().await, json!({"type":7,"error":"Connection closed with an error. InvalidOperationException: not today"}));
    assert!(client.next_any().await.is_none());
    assert_eq!(*calls.lock(), 1);
}

/// Opens an SSE connection and returns (token, event stream).
async fn open_sse(addr: std::net::SocketAddr) -> (String, reqwest::Response) {
    let http = reqwest::Client::new();
    let negotiated: serde_json::Value =
        http.post(format!("http://{addr}/hub/negotiate?negotiateVersion=1")).send().await.unwrap().json().await.unwrap();
    let token = negotiated["connectionToken"].as_str().unwrap().to_owned();
    let events = http.get(format!("http://{addr}/hub?id={token}")).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(events.status(), 200);
    (token, events)
}

/// Reads SSE bytes until `needle` appears; returns everything read.
async fn read_until(events: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let chunk = tokio::time::timeout(common::HANG_GUARD, events.chunk()).await.unwrap().unwrap();
        match chunk {
            Some(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            None => break,
        }
    }
    text
}

#[tokio::test]
async fn server_sent_events_refuse_messagepack_and_serve_json() {
    let hub = Hub::builder("Sse")
        .method("Echo", |_c: HubCallContext, (m,): (String,)| async move { Ok::<_, HubError>(m) })
        .method("Transport", |c: HubCallContext, (): ()| async move { Ok::<_, HubError>(c.context().transport().as_str()) })
        .build();
    let addr = serve(hub, HubOptions::default()).await;
    let http = reqwest::Client::new();

    let (token, mut events) = open_sse(addr).await;
    http.post(format!("http://{addr}/hub?id={token}")).body("{\"protocol\":\"messagepack\",\"version\":1}\x1e").send().await.unwrap();
    let text = read_until(&mut events, "\u{1e}").await;
    assert!(
        text.contains("{\"error\":\"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.\"}\u{1e}"),
        "{text:?}"
    );

    let (token, mut events) = open_sse(addr).await;
    let post = |body: &'static str| {
        let http = http.clone();
        let url = format!("http://{addr}/hub?id={token}");
        async move { assert_eq!(http.post(url).body(body).send().await.unwrap().status(), 200) }
    };
    post("{\"protocol\":\"json\",\"version\":1}\x1e").await;
    assert!(read_until(&mut events, "{}\u{1e}").await.contains("{}\u{1e}"));
    post("{\"type\":1,\"invocationId\":\"1\",\"target\":\"Transport\",\"arguments\":[]}\x1e").await;
    let text = read_until(&mut events, "ServerSentEvents").await;
    assert!(text.contains("{\"type\":3,\"invocationId\":\"1\",\"result\":\"ServerSentEvents\"}"), "{text:?}");
    drop(events);
}
