//! Property tests: every message type round-trips through both protocols, whole, concatenated
//! and byte by byte; random bytes never make a parser panic.

use bytes::BytesMut;
use proptest::prelude::*;
use signalr_protocol::message::{CancelInvocationMessage, CompletionMessage, StreamItemMessage};
use signalr_protocol::value::ValueKind;
use signalr_protocol::{
    CloseMessage, CompletionResult, HandshakeRequest, HandshakeResponse, Headers, HubMessage, HubProtocol, InvocationMessage,
    JsonHubProtocol, MessagePackHubProtocol, Value,
};

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|entries| serde_json::Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn msgpack_value() -> impl Strategy<Value = rmpv::Value> {
    let leaf = prop_oneof![
        Just(rmpv::Value::Nil),
        any::<bool>().prop_map(rmpv::Value::from),
        any::<i64>().prop_map(rmpv::Value::from),
        any::<u64>().prop_map(rmpv::Value::from),
        any::<f32>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(rmpv::Value::F32),
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(rmpv::Value::F64),
        any::<String>().prop_map(rmpv::Value::from),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(rmpv::Value::Binary),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(t, d)| rmpv::Value::Ext(t, d)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(rmpv::Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(rmpv::Value::Map),
        ]
    })
}

fn value(kind: ValueKind) -> BoxedStrategy<Value> {
    match kind {
        ValueKind::Json => json_value().prop_map(Value::Json).boxed(),
        ValueKind::MsgPack => msgpack_value().prop_map(Value::MsgPack).boxed(),
    }
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::btree_map(any::<String>(), any::<String>(), 0..3)
}

fn id() -> impl Strategy<Value = String> {
    ".{1,12}"
}

fn invocation(kind: ValueKind, streaming: bool) -> impl Strategy<Value = InvocationMessage> {
    let invocation_id = if streaming { id().prop_map(Some).boxed() } else { prop::option::of(id()).boxed() };
    (headers(), invocation_id, any::<String>(), prop::collection::vec(value(kind), 0..4), prop::collection::vec(id(), 0..3)).prop_map(
        |(headers, invocation_id, target, arguments, stream_ids)| InvocationMessage {
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        },
    )
}

fn message(kind: ValueKind) -> impl Strategy<Value = HubMessage> {
    let result = prop_oneof![
        Just(CompletionResult::Void),
        value(kind).prop_map(CompletionResult::Result),
        ".{1,40}".prop_map(CompletionResult::Error),
    ];
    prop_oneof![
        invocation(kind, false).prop_map(HubMessage::Invocation),
        invocation(kind, true).prop_map(HubMessage::StreamInvocation),
        (headers(), id(), value(kind))
            .prop_map(|(headers, invocation_id, item)| { HubMessage::StreamItem(StreamItemMessage { headers, invocation_id, item }) }),
        (headers(), id(), result)
            .prop_map(|(headers, invocation_id, result)| { HubMessage::Completion(CompletionMessage { headers, invocation_id, result }) }),
        (headers(), id())
            .prop_map(|(headers, invocation_id)| { HubMessage::CancelInvocation(CancelInvocationMessage { headers, invocation_id }) }),
        Just(HubMessage::Ping),
        (prop::option::of(any::<String>()), any::<bool>())
            .prop_map(|(error, allow_reconnect)| { HubMessage::Close(CloseMessage { error, allow_reconnect }) }),
        any::<u64>().prop_map(|sequence_id| HubMessage::Ack { sequence_id }),
        any::<u64>().prop_map(|sequence_id| HubMessage::Sequence { sequence_id }),
    ]
}

fn parse_everything(protocol: &dyn HubProtocol, buf: &mut BytesMut) -> Vec<HubMessage> {
    let mut messages = Vec::new();
    while let Some(message) = protocol.parse_message(buf, usize::MAX).expect("valid input") {
        messages.push(message);
    }
    messages
}

fn round_trip(protocol: &dyn HubProtocol, messages: &[HubMessage]) -> Result<(), TestCaseError> {
    let mut bytes = Vec::new();
    for message in messages {
        protocol.write_message(message, &mut bytes).expect("write");
    }
    // All at once.
    let mut buf = BytesMut::from(&bytes[..]);
    prop_assert_eq!(&parse_everything(protocol, &mut buf), messages);
    prop_assert!(buf.is_empty());
    // Byte by byte.
    let mut buf = BytesMut::new();
    let mut parsed = Vec::new();
    for &byte in &bytes {
        buf.extend_from_slice(&[byte]);
        parsed.extend(parse_everything(protocol, &mut buf));
    }
    prop_assert_eq!(&parsed, messages);
    prop_assert!(buf.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_round_trip(messages in prop::collection::vec(message(ValueKind::Json), 1..4)) {
        round_trip(&JsonHubProtocol, &messages)?;
    }

    #[test]
    fn msgpack_round_trip(messages in prop::collection::vec(message(ValueKind::MsgPack), 1..4)) {
        round_trip(&MessagePackHubProtocol, &messages)?;
    }

    /// A JSON value written by the MessagePack protocol reads back as the same JSON data.
    #[test]
    fn json_values_survive_messagepack(value in json_value()) {
        let message = HubMessage::StreamItem(StreamItemMessage {
            headers: Headers::new(),
            invocation_id: "1".into(),
            item: Value::Json(value.clone()),
        });
        let mut bytes = Vec::new();
        MessagePackHubProtocol.write_message(&message, &mut bytes).unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let parsed = MessagePackHubProtocol.parse_message(&mut buf, usize::MAX).unwrap();
        let Some(HubMessage::StreamItem(item)) = parsed else { panic!("a stream item") };
        prop_assert_eq!(item.item.to_json().unwrap(), value);
    }

    #[test]
    fn handshake_round_trip(protocol in any::<String>(), version in any::<u32>(), rest in prop::collection::vec(any::<u8>(), 0..8)) {
        let request = HandshakeRequest { protocol, version };
        let mut bytes = Vec::new();
        request.write(&mut bytes);
        bytes.extend_from_slice(&rest);
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(HandshakeRequest::parse(&mut buf, usize::MAX).unwrap(), Some(request));
        prop_assert_eq!(&buf[..], &rest[..]);
    }

    /// Random bytes: any result is fine as long as nothing panics and parsing always ends.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), max in 0usize..300) {
        for protocol in [&JsonHubProtocol as &dyn HubProtocol, &MessagePackHubProtocol] {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = protocol.parse_message(&mut buf, max) {}
        }
        let _ = HandshakeRequest::parse(&mut BytesMut::from(&bytes[..]), max);
        let _ = HandshakeResponse::parse(&mut BytesMut::from(&bytes[..]), max);
    }

    /// Random bytes after a valid MessagePack frame prefix and array header, which reach deeper
    /// into the message parser than fully random input.
    #[test]
    fn random_msgpack_bodies_never_panic(message_type in 0u8..12, len in 0u8..16, rest in prop::collection::vec(any::<u8>(), 0..100)) {
        let mut body = vec![0x90 | len, message_type];
        body.extend_from_slice(&rest);
        let mut frame = Vec::new();
        signalr_protocol::framing::write_varint(body.len(), &mut frame).unwrap();
        frame.extend_from_slice(&body);
        let mut buf = BytesMut::from(&frame[..]);
        let _ = MessagePackHubProtocol.parse_message(&mut buf, usize::MAX);
    }

    /// Random JSON objects with message-like properties.
    #[test]
    fn random_json_messages_never_panic(message_type in -1i64..12, fields in prop::collection::vec((prop::sample::select(vec!["invocationId", "target", "arguments", "streamIds", "item", "result", "error", "headers", "sequenceId", "allowReconnect"]), json_value()), 0..6)) {
        let mut object = serde_json::Map::new();
        object.insert("type".into(), message_type.into());
        for (key, value) in fields {
            object.insert(key.into(), value);
        }
        let mut bytes = serde_json::to_vec(&object).unwrap();
        bytes.push(0x1e);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = JsonHubProtocol.parse_message(&mut buf, usize::MAX);
        prop_assert!(buf.is_empty());
    }

    /// Conversions between the two kinds never panic.
    #[test]
    fn conversions_never_panic(value in msgpack_value()) {
        let _ = Value::MsgPack(value).to_json();
    }
}

mod serde_conventions {
    //! `Value::from_serialize(MsgPack)` and `Value::deserialize` build and read `rmpv::Value`s
    //! directly; they must agree with `rmp_serde::to_vec_named` / `rmp_serde::from_slice`.

    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use signalr_protocol::Value;
    use signalr_protocol::serde_helpers::{Binary, Timestamp};
    use signalr_protocol::value::ValueKind;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Wrapper(i32);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Pair(i16, String),
        Rect { w: u32, h: u32 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Everything {
        text: String,
        letter: char,
        signed: i64,
        small: u8,
        maybe: Option<f64>,
        list: Vec<u16>,
        shapes: Vec<Shape>,
        data: Binary,
        when: Timestamp,
        map: BTreeMap<String, i32>,
        tuple: (i8, bool),
        unit: Unit,
        wrapper: Wrapper,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        skipped: Option<String>,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Empty),
            any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(Shape::Circle),
            (any::<i16>(), any::<String>()).prop_map(|(a, b)| Shape::Pair(a, b)),
            (any::<u32>(), any::<u32>()).prop_map(|(w, h)| Shape::Rect { w, h }),
        ]
    }

    fn everything() -> impl Strategy<Value = Everything> {
        (
            (any::<String>(), any::<char>(), any::<i64>(), any::<u8>()),
            (prop::option::of(any::<f64>().prop_filter("not NaN", |f| !f.is_nan())), prop::collection::vec(any::<u16>(), 0..4)),
            (prop::collection::vec(shape(), 0..4), prop::collection::vec(any::<u8>(), 0..40)),
            // The years .NET DateTime and ISO-8601 text can hold: 0001 to 9999.
            (-62_135_596_800i64..253_402_300_800, 0u32..1_000_000_000),
            (prop::collection::btree_map(any::<String>(), any::<i32>(), 0..3), any::<(i8, bool)>(), any::<i32>()),
            prop::option::of(any::<String>()),
        )
            .prop_map(
                |((text, letter, signed, small), (maybe, list), (shapes, data), (secs, nanos), (map, tuple, wrapped), skipped)| {
                    Everything {
                        text,
                        letter,
                        signed,
                        small,
                        maybe,
                        list,
                        shapes,
                        data: Binary(data),
                        when: Timestamp(Utc.timestamp_opt(secs, nanos).unwrap()),
                        map,
                        tuple,
                        unit: Unit,
                        wrapper: Wrapper(wrapped),
                        skipped,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn same_as_rmp_serde(value in everything()) {
            let bytes = rmp_serde::to_vec_named(&value).unwrap();
            let via_bytes = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
            let direct = Value::from_serialize(ValueKind::MsgPack, &value).unwrap();
            prop_assert_eq!(&direct, &Value::MsgPack(via_bytes.clone()));
            prop_assert_eq!(direct.deserialize::<Everything>().unwrap(), value.clone());
            prop_assert_eq!(rmp_serde::from_slice::<Everything>(&bytes).unwrap(), value.clone());
            // Positional (array) structs, as rmp_serde::to_vec writes them, bind too.
            let positional = rmp_serde::to_vec(&value).unwrap();
            let positional = rmpv::decode::read_value(&mut positional.as_slice()).unwrap();
            prop_assert_eq!(Value::MsgPack(positional).deserialize::<Everything>().unwrap(), value.clone());
            // And the JSON form round-trips as well.
            let json = Value::from_serialize(ValueKind::Json, &value).unwrap();
            prop_assert_eq!(json.deserialize::<Everything>().unwrap(), value);
        }
    }
}
