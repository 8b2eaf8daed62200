//! A client that pipelines many calls is paced, not dropped: the hub reads its calls no faster
//! than the replies drain, over WebSockets and long polling, with raw clients.

mod common;

use std::collections::HashSet;

use common::{Client, Protocol, start_with};
use serde_json::json;
use signalr::HubOptions;
use signalr_connections::HttpConnectionOptions;

/// 600 calls in one frame (about 53 KB) whose replies pass the outbound buffer many times
/// over.
fn pipelined_calls() -> (String, String) {
    let text = "x".repeat(24);
    let mut frame = String::new();
    for i in 0..600 {
        frame.push_str(&json!({"type":1,"invocationId":i.to_string(),"target":"Echo","arguments":[text]}).to_string());
        frame.push('\u{1e}');
    }
    (frame, text)
}

#[tokio::test]
async fn websockets_pace_600_pipelined_calls_instead_of_dropping_the_connection() {
    // 8 KiB of outbound buffer: the 600 replies (about 50 KB) pass it six times over.
    let options = HttpConnectionOptions::default().outbound_buffer_limit(8 * 1024);
    let server = start_with(HubOptions::default(), options).await;
    let mut client = Client::connect(server.addr, Protocol::Json).await;
    let (frame, text) = pipelined_calls();
    assert!(frame.len() > 50_000 && frame.len() < 64 * 1024, "{}", frame.len());
    client.send_text(frame).await;
    let mut seen = HashSet::new();
    while seen.len() < 600 {
        let message = client.next_json().await;
        assert_eq!(message["type"], 3, "{message}");
        assert_eq!(message["result"], json!(text));
        assert!(seen.insert(message["invocationId"].as_str().unwrap().to_owned()));
    }
    // Still connected: one more call is answered.
    assert_eq!(client.invoke("last", "Add", json!([1, 2])).await["result"], 3);
}

#[tokio::test]
async fn long_polling_paces_600_pipelined_calls_in_one_post() {
    let options = HttpConnectionOptions::default().outbound_buffer_limit(8 * 1024);
    let server = start_with(HubOptions::default(), options).await;
    let http = reqwest::Client::new();
    let negotiated = common::negotiate(server.addr, "negotiateVersion=1").await;
    let token = negotiated["connectionToken"].as_str().unwrap().to_owned();
    let url = format!("http://{}/hub?id={token}", server.addr);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let handshake = http.post(&url).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await;
    assert_eq!(handshake.unwrap().status(), 200);
    let (frame, text) = pipelined_calls();
    // The POST is answered once the hub took every call, which it does as the polls drain the
    // replies: it runs alongside the polls.
    let post = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move { http.post(&url).body(frame).send().await.unwrap().status() }
    });
    let mut received = String::new();
    let mut seen = HashSet::new();
    while seen.len() < 600 {
        let poll = http.get(&url).send().await.unwrap();
        assert_eq!(poll.status(), 200);
        received.push_str(&poll.text().await.unwrap());
        while let Some(end) = received.find('\u{1e}') {
            let message: serde_json::Value = serde_json::from_str(&received[..end]).unwrap();
            received.drain(..=end);
            if message.as_object().is_some_and(|m| m.is_empty()) {
                continue; // the handshake response
            }
            assert_eq!(message["type"], 3, "{message}");
            assert_eq!(message["result"], json!(text));
            assert!(seen.insert(message["invocationId"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(post.await.unwrap(), 200);
}

#[tokio::test]
async fn server_sent_events_pace_600_pipelined_calls_in_one_post() {
    let options = HttpConnectionOptions::default().outbound_buffer_limit(8 * 1024);
    let server = start_with(HubOptions::default(), options).await;
    let http = reqwest::Client::new();
    let negotiated = common::negotiate(server.addr, "negotiateVersion=1").await;
    let token = negotiated["connectionToken"].as_str().unwrap().to_owned();
    let url = format!("http://{}/hub?id={token}", server.addr);
    let mut stream = http.get(&url).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let handshake = http.post(&url).body("{\"protocol\":\"json\",\"version\":1}\u{1e}").send().await;
    assert_eq!(handshake.unwrap().status(), 200);
    let (frame, text) = pipelined_calls();
    let post = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move { http.post(&url).body(frame).send().await.unwrap().status() }
    });
    // Events carry `data: ` lines; the hub messages are their payload joined.
    let mut raw = String::new();
    let mut seen = HashSet::new();
    while seen.len() < 600 {
        let chunk = tokio::time::timeout(common::HANG_GUARD, stream.chunk()).await.unwrap().unwrap().expect("stream open");
        raw.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = raw.find("\r\n\r\n") {
            let event: String = raw[..end].split("\r\n").filter_map(|line| line.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
            raw.drain(..end + 4);
            for part in event.split('\u{1e}').filter(|p| !p.is_empty()) {
                let message: serde_json::Value = serde_json::from_str(part).unwrap();
                if message.as_object().is_some_and(|m| m.is_empty()) || message["type"] == 6 {
                    continue;
                }
                assert_eq!(message["type"], 3, "{message}");
                assert_eq!(message["result"], json!(text));
                assert!(seen.insert(message["invocationId"].as_str().unwrap().to_owned()));
            }
        }
    }
    assert_eq!(post.await.unwrap(), 200);
}
