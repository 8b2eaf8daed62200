//! The notification hub's timeouts (`SignalR:*`): a node that sat idle longer than the
//! handshake timeout still accepts its first hub connection.

mod common;

use std::time::Duration;

use common::*;
use diquis::ProcessRole;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_hub_connection_after_an_idle_spell_connects() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[("SignalR:HandshakeTimeout", "00:00:02")]).await;
    let url = app.url();
    let token = root_token(&url).await;
    // The precondition: no hub connection for longer than the handshake timeout since start.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let negotiate: Value = client()
        .post(format!("{url}/hubs/notifications/negotiate?negotiateVersion=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = negotiate["connectionToken"].as_str().expect("a connection token");
    let ws_url = format!("{}/hubs/notifications?id={id}&access_token={token}", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("the WebSocket opens");
    // A browser takes a moment to send its handshake (well within the timeout); meanwhile the
    // hub's heartbeat starts and makes its first pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}")).await.unwrap();
    let first = loop {
        match ws.next().await.expect("a handshake response").unwrap() {
            Message::Text(text) => break text.to_string(),
            _ => continue,
        }
    };
    assert!(first.starts_with("{}\u{1e}"), "handshake response: {first}");

    app.stop().await;
}
