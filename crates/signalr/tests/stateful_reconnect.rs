//! Stateful reconnect (protocol reference §5.3): the socket is cut mid-stream, a new socket
//! with the same id takes over, the server sends `Sequence` first and replays what the client
//! has not acknowledged; the client sees every message exactly once, in order.

mod common;

use std::collections::BTreeMap;

use common::{Client, Protocol, negotiate};
use serde_json::{Value as Json, json};
use signalr::HubOptions;
use signalr_connections::HttpConnectionOptions;

/// The client side of the numbering, as the JS client's `MessageBuffer` does it.
#[derive(Default)]
struct Receiver {
    /// Id of the next numbered message.
    next_id: u64,
    /// Highest id processed.
    processed: u64,
    /// Stream items by value, to check exactly-once.
    items: Vec<u64>,
    completed: bool,
}

impl Receiver {
    fn on_message(&mut self, message: &Json) {
        let kind = message["type"].as_u64().unwrap();
        match kind {
            9 => self.next_id = message["sequenceId"].as_u64().unwrap(),
            1..=3 => {
                let id = self.next_id;
                self.next_id += 1;
                if id <= self.processed {
                    return; // duplicate from the replay
                }
                self.processed = id;
                match kind {
                    2 => self.items.push(message["item"].as_u64().unwrap()),
                    3 => self.completed = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn cut_socket_mid_stream_every_message_exactly_once_in_order() {
    let connection_options = HttpConnectionOptions::default().allow_stateful_reconnects(true);
    let server = common::start_with(HubOptions::default(), connection_options).await;
    let negotiated = negotiate(server.addr, "negotiateVersion=1&useStatefulReconnect=true").await;
    assert_eq!(negotiated["useStatefulReconnect"], true);
    let token = negotiated["connectionToken"].as_str().unwrap().to_owned();

    let path = format!("/hub?id={token}");
    let mut client = Client::open(server.addr, &path).await;
    client.handshake(Protocol::Json, 2).await;
    let mut receiver = Receiver { next_id: 1, ..Default::default() };

    const COUNT: u64 = 200;
    client.send(json!({"type":4,"invocationId":"1","target":"Counter","arguments":[COUNT, 2]})).await;
    // Read a part of the stream, acknowledge some of it, then cut the socket without a close frame.
    while receiver.items.len() < 20 {
        let message = client.next_json().await;
        receiver.on_message(&message);
    }
    client.send(json!({"type":8,"sequenceId": receiver.processed - 5})).await;
    while receiver.items.len() < 40 {
        let message = client.next_json().await;
        receiver.on_message(&message);
    }
    drop(client);

    // Reconnect with the same id: no handshake; the first message must be a Sequence.
    let mut client = loop {
        // The server notices the drop asynchronously; retry until the reconnect is accepted.
        let url = format!("ws://{}{path}", server.addr);
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => {
                let mut client = Client::open_from(ws);
                client.protocol = Protocol::Json;
                break client;
            }
            Err(_) => tokio::task::yield_now().await,
        }
    };
    client.send(json!({"type":9,"sequenceId": 2})).await; // the client's own Sequence (it sent 1 numbered message)
    let first = client.next_any().await.expect("sequence").json();
    assert_eq!(first["type"], 9, "Sequence comes first after a reconnect: {first}");
    receiver.on_message(&first);
    while !receiver.completed {
        let message = client.next_json().await;
        receiver.on_message(&message);
    }
    let expected: Vec<u64> = (1..=COUNT).collect();
    assert_eq!(receiver.items, expected, "every item exactly once, in order");

    // The hub session survived: the connection still answers.
    assert_eq!(client.invoke("2", "Echo", json!(["after reconnect"])).await["result"], "after reconnect");
    // Acks flow from the server for the client's numbered messages.
    let mut acks = BTreeMap::new();
    client.send(json!({"type":1,"invocationId":"3","target":"Echo","arguments":["x"]})).await;
    loop {
        let message = client.next_json().await;
        if message["type"] == 8 {
            acks.insert(message["sequenceId"].as_u64().unwrap(), ());
            if acks.keys().any(|id| *id >= 3) {
                break;
            }
        }
    }
}

#[tokio::test]
async fn version_1_handshake_leaves_stateful_reconnect_off() {
    let connection_options = HttpConnectionOptions::default().allow_stateful_reconnects(true);
    let server = common::start_with(HubOptions::default(), connection_options).await;
    let negotiated = negotiate(server.addr, "negotiateVersion=1&useStatefulReconnect=true").await;
    let token = negotiated["connectionToken"].as_str().unwrap().to_owned();
    let mut client = Client::open(server.addr, &format!("/hub?id={token}")).await;
    client.handshake(Protocol::Json, 1).await;
    client.send(json!({"type":4,"invocationId":"1","target":"Stream","arguments":[]})).await;
    // No Ack or Sequence ever: only the stream.
    let mut seen = Vec::new();
    loop {
        let message = client.next_json().await;
        assert!(message["type"] != 8 && message["type"] != 9, "{message}");
        let done = message["type"] == 3;
        seen.push(message);
        if done {
            break;
        }
    }
    assert_eq!(seen.len(), 4);
}
