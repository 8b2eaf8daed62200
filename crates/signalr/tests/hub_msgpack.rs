//! The MessagePack protocol end to end: binary frames (handshake response included), typed
//! payloads with `bin` and timestamp extensions, streams and sends.

mod common;

use common::{Client, Protocol};
use rmpv::Value as V;
use serde::{Deserialize, Serialize};
use signalr::{Hub, HubCallContext, HubError, HubOptions, HubService};
use signalr_connections::HttpConnectionOptions;
use signalr_protocol::serde_helpers::{Binary, Timestamp};
use tokio_tungstenite::tungstenite::Message;

fn invocation(id: &str, target: &str, args: Vec<V>) -> V {
    V::Array(vec![V::from(1), V::Map(vec![]), V::from(id), V::from(target), V::Array(args)])
}

#[tokio::test]
async fn handshake_response_and_messages_are_binary_frames() {
    let server = common::start(HubOptions::default()).await;
    let mut client = Client::open(server.addr, "/hub").await;
    client.send_text("{\"protocol\":\"messagepack\",\"version\":1}\x1e").await;
    let frame = client.next_frame().await.unwrap();
    assert!(matches!(frame, Message::Binary(_)), "msgpack handshake response goes in a binary frame: {frame:?}");
    assert_eq!(&frame.into_data()[..3], b"{}\x1e");
    client.protocol = Protocol::MessagePack;

    client.send_msgpack(invocation("1", "Echo", vec![V::from("hi")])).await;
    assert_eq!(client.next().await.msgpack(), V::Array(vec![V::from(3), V::Map(vec![]), V::from("1"), V::from(3), V::from("hi")]));
    client.send_msgpack(invocation("2", "Void", vec![])).await;
    assert_eq!(client.next().await.msgpack(), V::Array(vec![V::from(3), V::Map(vec![]), V::from("2"), V::from(3), V::Nil]));
    client.send_msgpack(invocation("3", "Nope", vec![])).await;
    assert_eq!(
        client.next().await.msgpack(),
        V::Array(vec![
            V::from(3),
            V::Map(vec![]),
            V::from("3"),
            V::from(1),
            V::from("Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist.")
        ])
    );
    // Stream: items then a void completion (kind 2).
    client.send_msgpack(V::Array(vec![V::from(4), V::Map(vec![]), V::from("4"), V::from("Stream"), V::Array(vec![])])).await;
    for item in ["a", "b", "c"] {
        assert_eq!(client.next().await.msgpack(), V::Array(vec![V::from(2), V::Map(vec![]), V::from("4"), V::from(item)]));
    }
    assert_eq!(client.next().await.msgpack(), V::Array(vec![V::from(3), V::Map(vec![]), V::from("4"), V::from(2)]));
    // A broadcast reaches a msgpack client as a 6-element invocation without id.
    server.context.clients().all().send("Message", ("to all",)).await.unwrap();
    assert_eq!(
        client.next().await.msgpack(),
        V::Array(vec![V::from(1), V::Map(vec![]), V::Nil, V::from("Message"), V::Array(vec![V::from("to all")]), V::Array(vec![])])
    );
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct Complex {
    byte_array: Binary,
    date_time: Timestamp,
}

#[tokio::test]
async fn binary_and_timestamps_keep_their_msgpack_types() {
    let hub = Hub::builder("Complex")
        .method("EchoComplex", |_c: HubCallContext, (value,): (Complex,)| async move { Ok::<_, HubError>(value) })
        .method(
            "SendComplex",
            |c: HubCallContext, (value,): (Complex,)| async move { c.clients().caller().send("Complex", (value,)).await },
        )
        .build();
    let service = HubService::new(hub, HubOptions::default());
    let app = service.router("/hub", HttpConnectionOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(signalr_connections::listener::nodelay(listener), app).await.unwrap() });

    let mut client = Client::connect(addr, Protocol::MessagePack).await;
    // 2000-01-01T00:00:00Z as timestamp 32 (ext -1, 4 bytes of seconds).
    let seconds: u32 = 946_684_800;
    let timestamp = V::Ext(-1, seconds.to_be_bytes().to_vec());
    let object = V::Map(vec![(V::from("ByteArray"), V::Binary(vec![1, 2, 3])), (V::from("DateTime"), timestamp.clone())]);
    client.send_msgpack(invocation("1", "EchoComplex", vec![object])).await;
    let completion = client.next().await.msgpack();
    let result = &completion[4];
    let byte_array = result.as_map().unwrap().iter().find(|(k, _)| k.as_str() == Some("ByteArray")).unwrap();
    assert_eq!(byte_array.1, V::Binary(vec![1, 2, 3]));
    let date_time = result.as_map().unwrap().iter().find(|(k, _)| k.as_str() == Some("DateTime")).unwrap();
    assert!(matches!(&date_time.1, V::Ext(-1, _)), "timestamp extension: {:?}", date_time.1);

    // Sends (built once for both protocols) keep the msgpack types too.
    let object = V::Map(vec![(V::from("ByteArray"), V::Binary(vec![9])), (V::from("DateTime"), timestamp)]);
    client.send_msgpack(invocation("2", "SendComplex", vec![object])).await;
    let mut messages = [client.next().await.msgpack(), client.next().await.msgpack()];
    messages.sort_by_key(|m| m[0].as_u64());
    let sent = &messages[0][4][0];
    let byte_array = sent.as_map().unwrap().iter().find(|(k, _)| k.as_str() == Some("ByteArray")).unwrap();
    assert_eq!(byte_array.1, V::Binary(vec![9]));
}
