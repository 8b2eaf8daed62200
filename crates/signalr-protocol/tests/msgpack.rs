//! The `messagepack` hub protocol: exact bytes from the reference docs, every width, trailing
//! items, and bad input (truncation at every length, wrong types, oversized frames).

mod common;

use bytes::BytesMut;
use common::{hex, parse_all, parse_one, write};
use signalr_protocol::message::{CancelInvocationMessage, CompletionMessage, StreamItemMessage};
use signalr_protocol::value::ValueKind;
use signalr_protocol::{
    CloseMessage, CompletionResult, Headers, HubMessage, HubProtocol, InvocationMessage, MessagePackHubProtocol, ProtocolError,
    TransferFormat, Value,
};

const MSGPACK: MessagePackHubProtocol = MessagePackHubProtocol;

fn invocation(id: Option<&str>, target: &str, args: Vec<rmpv::Value>) -> InvocationMessage {
    InvocationMessage {
        headers: Headers::new(),
        invocation_id: id.map(str::to_owned),
        target: target.to_owned(),
        arguments: args.into_iter().map(Value::MsgPack).collect(),
        stream_ids: Vec::new(),
    }
}

fn completion(id: &str, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(CompletionMessage { headers: Headers::new(), invocation_id: id.to_owned(), result })
}

/// Prefixes a body with its (one-byte) varint length.
fn framed(body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(body);
    out
}

#[test]
fn protocol_identity() {
    assert_eq!(MSGPACK.name(), "messagepack");
    assert_eq!(MSGPACK.version(), 2);
    assert_eq!(MSGPACK.transfer_format(), TransferFormat::Binary);
}

#[test]
fn writes_and_reads_the_redis_golden_vector() {
    // redis-backplane-wire.md §8.2: InvocationMessage("target", []).
    let bytes = hex("0d 96 01 80 c0 a6 74 61 72 67 65 74 90 90");
    let message = HubMessage::Invocation(invocation(None, "target", vec![]));
    assert_eq!(write(&MSGPACK, &message), bytes);
    assert_eq!(parse_one(&MSGPACK, &bytes).unwrap(), message);
}

#[test]
fn writes_the_tenant_created_frames() {
    // §8.3 (b): SendAllAsync("TenantCreated", ["t1"]).
    let message = HubMessage::Invocation(invocation(None, "TenantCreated", vec![rmpv::Value::from("t1")]));
    let expected = hex("17 96 01 80 c0 ad 54 65 6e 61 6e 74 43 72 65 61 74 65 64 91 a2 74 31 90");
    assert_eq!(write(&MSGPACK, &message), expected);
    assert_eq!(parse_one(&MSGPACK, &expected).unwrap(), message);

    // §8.3 (c): the anonymous object becomes a map keyed by member name, in declaration order.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct TenantCreated {
        #[serde(rename = "type")]
        kind: &'static str,
        message: &'static str,
        user_id: &'static str,
        tenant_id: &'static str,
        tenant_name: &'static str,
        timestamp: &'static str,
    }
    let payload = TenantCreated {
        kind: "success",
        message: "Tenant 'Test Tenant' has been created successfully!",
        user_id: "test-user",
        tenant_id: "test-tenant-123",
        tenant_name: "Test Tenant",
        timestamp: "2025-01-01T00:00:00.0000000Z",
    };
    let mut expected = hex("c7 01 96 01 80 c0 ad");
    expected.extend_from_slice(b"TenantCreated");
    expected.extend_from_slice(&hex("91 86 a4"));
    for (key_prefix, key, value_prefix, value) in [
        ("", "type", "a7", "success"),
        ("a7", "message", "d9 33", "Tenant 'Test Tenant' has been created successfully!"),
        ("a6", "userId", "a9", "test-user"),
        ("a8", "tenantId", "af", "test-tenant-123"),
        ("aa", "tenantName", "ab", "Test Tenant"),
        ("a9", "timestamp", "bc", "2025-01-01T00:00:00.0000000Z"),
    ] {
        expected.extend_from_slice(&hex(key_prefix));
        expected.extend_from_slice(key.as_bytes());
        expected.extend_from_slice(&hex(value_prefix));
        expected.extend_from_slice(value.as_bytes());
    }
    expected.push(0x90);
    assert_eq!(expected.len(), 201);
    for kind in [ValueKind::MsgPack, ValueKind::Json] {
        // A value built for either protocol writes the same MessagePack bytes.
        let mut message = invocation(None, "TenantCreated", vec![]);
        message.arguments.push(Value::from_serialize(kind, &payload).unwrap());
        assert_eq!(write(&MSGPACK, &HubMessage::Invocation(message)), expected, "{kind:?}");
    }
}

#[test]
fn ping_is_exactly_91_06() {
    assert_eq!(write(&MSGPACK, &HubMessage::Ping), hex("02 91 06"));
    assert_eq!(parse_one(&MSGPACK, &hex("02 91 06")).unwrap(), HubMessage::Ping);
}

#[test]
fn completion_kinds() {
    // redis-backplane-wire.md §8.1 MsgPackMessageForwarded: [3, {}, "xyz", 3, 42].
    let body = hex("95 03 80 a3 78 79 7a 03 2a");
    let message = completion("xyz", CompletionResult::Result(Value::MsgPack(rmpv::Value::from(42))));
    assert_eq!(parse_one(&MSGPACK, &framed(&body)).unwrap(), message);
    assert_eq!(write(&MSGPACK, &message), framed(&body));
    // A void method: kind 3 with nil.
    let void = completion("1", CompletionResult::Result(Value::null(ValueKind::MsgPack)));
    assert_eq!(write(&MSGPACK, &void), framed(&hex("95 03 80 a1 31 03 c0")));
    // A stream end: kind 2, four items.
    let end = completion("1", CompletionResult::Void);
    assert_eq!(write(&MSGPACK, &end), framed(&hex("94 03 80 a1 31 02")));
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("94 03 80 a1 31 02"))).unwrap(), end);
    // An error: kind 1.
    let error = completion("1", CompletionResult::Error("bad".into()));
    assert_eq!(write(&MSGPACK, &error), framed(&hex("95 03 80 a1 31 01 a3 62 61 64")));
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("95 03 80 a1 31 01 a3 62 61 64"))).unwrap(), error);
    // signalr-protocol.md §6: a client result of 10 for "s7".
    assert_eq!(
        parse_one(&MSGPACK, &framed(&hex("95 03 80 a2 73 37 03 0a"))).unwrap(),
        completion("s7", CompletionResult::Result(Value::MsgPack(rmpv::Value::from(10))))
    );
}

#[test]
fn reads_the_js_client_layouts() {
    // JS writes Invocation with 5 items when there are no streams: [1, {}, "0", "Echo", ["hi"]].
    let body = hex("95 01 80 a1 30 a4 45 63 68 6f 91 a2 68 69");
    assert_eq!(
        parse_one(&MSGPACK, &framed(&body)).unwrap(),
        HubMessage::Invocation(invocation(Some("0"), "Echo", vec![rmpv::Value::from("hi")]))
    );
    // JS sends Close as [7, nil].
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("92 07 c0"))).unwrap(), HubMessage::Close(CloseMessage::default()));
    // StreamInvocation with 5 items, and with streamIds.
    assert_eq!(
        parse_one(&MSGPACK, &framed(&hex("95 04 80 a1 33 a1 53 90"))).unwrap(),
        HubMessage::StreamInvocation(invocation(Some("3"), "S", vec![]))
    );
    let mut with_streams = invocation(Some("1"), "S", vec![]);
    with_streams.stream_ids = vec!["2".into()];
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("96 01 80 a1 31 a1 53 90 91 a1 32"))).unwrap(), HubMessage::Invocation(with_streams));
    // An empty invocation id is a non-blocking invocation, as on .NET.
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("95 01 80 a0 a1 74 90"))).unwrap(), HubMessage::Invocation(invocation(None, "t", vec![])));
}

#[test]
fn writes_close_with_three_items() {
    assert_eq!(write(&MSGPACK, &HubMessage::Close(CloseMessage::default())), framed(&hex("93 07 c0 c2")));
    let close = CloseMessage { error: Some("x".into()), allow_reconnect: true };
    assert_eq!(write(&MSGPACK, &HubMessage::Close(close.clone())), framed(&hex("93 07 a1 78 c3")));
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("93 07 a1 78 c3"))).unwrap(), HubMessage::Close(close));
}

#[test]
fn other_layouts() {
    let mut headers = Headers::new();
    headers.insert("k".into(), "v".into());
    let item = HubMessage::StreamItem(StreamItemMessage {
        headers: headers.clone(),
        invocation_id: "1".into(),
        item: Value::MsgPack(rmpv::Value::Nil),
    });
    assert_eq!(write(&MSGPACK, &item), framed(&hex("94 02 81 a1 6b a1 76 a1 31 c0")));
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("94 02 81 a1 6b a1 76 a1 31 c0"))).unwrap(), item);
    let cancel = HubMessage::CancelInvocation(CancelInvocationMessage { headers: Headers::new(), invocation_id: "3".into() });
    assert_eq!(write(&MSGPACK, &cancel), framed(&hex("93 05 80 a1 33")));
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("93 05 80 a1 33"))).unwrap(), cancel);
    assert_eq!(write(&MSGPACK, &HubMessage::Ack { sequence_id: 5 }), framed(&hex("92 08 05")));
    assert_eq!(write(&MSGPACK, &HubMessage::Sequence { sequence_id: 70000 }), framed(&hex("92 09 ce 00 01 11 70")));
    let mut with_everything = invocation(Some("s1"), "T", vec![rmpv::Value::from(1)]);
    with_everything.headers = headers;
    with_everything.stream_ids = vec!["a".into()];
    assert_eq!(
        write(&MSGPACK, &HubMessage::StreamInvocation(with_everything)),
        framed(&hex("96 04 81 a1 6b a1 76 a2 73 31 a1 54 91 01 91 a1 61"))
    );
}

#[test]
fn every_integer_and_string_width_is_accepted() {
    for sequence in ["05", "cc 05", "cd 00 05", "ce 00 00 00 05", "cf 00 00 00 00 00 00 00 05", "d0 05", "d3 00 00 00 00 00 00 00 05"] {
        let body = hex(&format!("92 08 {sequence}"));
        assert_eq!(parse_one(&MSGPACK, &framed(&body)).unwrap(), HubMessage::Ack { sequence_id: 5 }, "{sequence}");
    }
    // The message type itself in a wider form.
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("91 cc 06"))).unwrap(), HubMessage::Ping);
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("91 cf 00 00 00 00 00 00 00 06"))).unwrap(), HubMessage::Ping);
    // Target "Echo" as fixstr, str8, str16 and str32; outer array as array16 and array32; header
    // map as map16.
    let expected = HubMessage::Invocation(invocation(None, "Echo", vec![]));
    for (array, map, target) in [
        ("96", "80", "a4"),
        ("dc 00 06", "80", "d9 04"),
        ("dd 00 00 00 06", "de 00 00", "da 00 04"),
        ("96", "df 00 00 00 00", "db 00 00 00 04"),
    ] {
        let body = hex(&format!("{array} 01 {map} c0 {target} 45 63 68 6f dc 00 00 dd 00 00 00 00"));
        assert_eq!(parse_one(&MSGPACK, &framed(&body)).unwrap(), expected, "{array} {map} {target}");
    }
    // Argument values of every width arrive as the values they encode.
    let body = hex("95 01 80 c0 a1 74 94 d1 ff 00 ce ff ff ff ff c5 00 02 01 02 d9 01 78");
    assert_eq!(
        parse_one(&MSGPACK, &framed(&body)).unwrap(),
        HubMessage::Invocation(invocation(
            None,
            "t",
            vec![rmpv::Value::from(-256), rmpv::Value::from(u32::MAX), rmpv::Value::Binary(vec![1, 2]), rmpv::Value::from("x"),]
        ))
    );
}

#[test]
fn extra_trailing_items_are_ignored() {
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("92 06 a1 78"))).unwrap(), HubMessage::Ping);
    assert_eq!(
        parse_one(&MSGPACK, &framed(&hex("97 01 80 c0 a1 74 90 90 c3"))).unwrap(),
        HubMessage::Invocation(invocation(None, "t", vec![]))
    );
    assert_eq!(
        parse_one(&MSGPACK, &framed(&hex("94 07 c0 c3 01"))).unwrap(),
        HubMessage::Close(CloseMessage { error: None, allow_reconnect: true })
    );
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("93 08 05 05"))).unwrap(), HubMessage::Ack { sequence_id: 5 });
    assert_eq!(parse_one(&MSGPACK, &framed(&hex("95 03 80 a1 31 02 c0"))).unwrap(), completion("1", CompletionResult::Void));
}

#[test]
fn unknown_message_types_are_skipped() {
    let mut bytes = framed(&hex("93 63 a1 78 c0"));
    bytes.extend_from_slice(&framed(&hex("91 0a")));
    bytes.extend_from_slice(&hex("02 91 06"));
    assert_eq!(parse_all(&MSGPACK, &bytes, 1024).unwrap(), vec![HubMessage::Ping]);
}

#[test]
fn concatenated_and_byte_by_byte() {
    let messages = vec![
        HubMessage::Ping,
        HubMessage::Invocation(invocation(Some("1"), "Echo", vec![rmpv::Value::from("x".repeat(300))])),
        completion("1", CompletionResult::Void),
        HubMessage::Close(CloseMessage::default()),
    ];
    let mut bytes = Vec::new();
    for message in &messages {
        MSGPACK.write_message(message, &mut bytes).unwrap();
    }
    // Two-byte varint for the 300-byte argument.
    assert_eq!(parse_all(&MSGPACK, &bytes, 1 << 16).unwrap(), messages);
    let mut buf = BytesMut::new();
    let mut parsed = Vec::new();
    for &byte in &bytes {
        buf.extend_from_slice(&[byte]);
        while let Some(message) = MSGPACK.parse_message(&mut buf, 1 << 16).unwrap() {
            parsed.push(message);
        }
    }
    assert_eq!(parsed, messages);
    assert!(buf.is_empty());
}

#[test]
fn truncated_bodies_are_errors_at_every_length() {
    let messages = vec![
        HubMessage::Invocation(InvocationMessage {
            headers: [("h".to_string(), "v".to_string())].into(),
            invocation_id: Some("12".into()),
            target: "Target".into(),
            arguments: vec![Value::MsgPack(rmpv::Value::Map(vec![(
                rmpv::Value::from("k"),
                rmpv::Value::Array(vec![rmpv::Value::from(1.5), rmpv::Value::Binary(vec![9; 3])]),
            )]))],
            stream_ids: vec!["s".into()],
        }),
        HubMessage::StreamItem(StreamItemMessage {
            headers: Headers::new(),
            invocation_id: "1".into(),
            item: Value::MsgPack(rmpv::Value::from("item")),
        }),
        completion("1", CompletionResult::Result(Value::MsgPack(rmpv::Value::from(300)))),
        completion("1", CompletionResult::Error("e".into())),
        completion("1", CompletionResult::Void),
        HubMessage::CancelInvocation(CancelInvocationMessage { headers: Headers::new(), invocation_id: "1".into() }),
        HubMessage::Close(CloseMessage { error: Some("bye".into()), allow_reconnect: true }),
        HubMessage::Ack { sequence_id: 1 << 40 },
        HubMessage::Sequence { sequence_id: 300 },
    ];
    for message in messages {
        let frame = write(&MSGPACK, &message);
        let body = &frame[1..];
        for cut in 0..body.len() {
            // A frame whose announced length cuts the body short.
            let truncated = framed(&body[..cut]);
            let mut buf = BytesMut::from(&truncated[..]);
            let result = MSGPACK.parse_message(&mut buf, 1024);
            assert!(result.is_err(), "{message:?} cut at {cut}: {result:?}");
            assert!(buf.is_empty(), "the bad frame is consumed");
            // A frame that has not fully arrived yet.
            let mut buf = BytesMut::from(&frame[..cut + 1]);
            assert_eq!(MSGPACK.parse_message(&mut buf, 1024).unwrap(), None);
        }
    }
}

fn parse_error(frame: &[u8], max: usize) -> ProtocolError {
    let mut buf = BytesMut::from(frame);
    MSGPACK.parse_message(&mut buf, max).expect_err("an error")
}

#[test]
fn wrong_types_are_errors() {
    for body in [
        "90",                            // empty array
        "a1 78",                         // not an array
        "91 a1 78",                      // type is a string
        "91 ff",                         // negative type
        "95 01 80 c0 05 90",             // numeric target
        "95 01 80 05 a1 74 90",          // numeric invocation id
        "95 01 a1 78 c0 a1 74 90",       // headers not a map
        "95 01 81 a1 6b 01 c0 a1 74 90", // header value not a string
        "95 01 80 c0 a1 74 80",          // arguments not an array
        "96 01 80 c0 a1 74 90 91 01",    // numeric stream id
        "94 01 80 c0 a1 74",             // Invocation with 4 items
        "95 04 80 c0 a1 74 90",          // StreamInvocation without id
        "93 02 80 a1 31",                // StreamItem without item
        "94 03 80 a1 31 01",             // error kind without error
        "94 03 80 a1 31 03",             // result kind without result
        "95 03 80 a1 31 07 c0",          // unknown result kind
        "95 03 80 a1 31 01 05",          // numeric error
        "92 05 80",                      // Cancel without id
        "91 07",                         // Close without error item
        "93 07 05 c3",                   // numeric close error
        "93 07 c0 05",                   // allowReconnect not a bool
        "91 08",                         // Ack without id
        "92 09 ff",                      // negative sequence id
        "92 09 a1 31",                   // string sequence id
        "95 01 80 c0 a2 c3 28 90",       // target not UTF-8
        "c1",                            // reserved marker
    ] {
        let error = parse_error(&framed(&hex(body)), 1024);
        assert!(
            matches!(error, ProtocolError::MessagePack(_) | ProtocolError::WrongType { .. } | ProtocolError::MissingField(_)),
            "{body}: {error:?}"
        );
    }
    // An empty frame.
    assert!(matches!(parse_error(&[0x00], 1024), ProtocolError::WrongType { .. }));
}

#[test]
fn oversized_and_huge_lengths_are_refused_from_the_prefix_alone() {
    // 1000 bytes announced, only the prefix present: refused at once.
    assert!(matches!(parse_error(&hex("e8 07"), 100), ProtocolError::MessageTooLarge { max: 100 }));
    // The largest legal length (2 GB − 1) is still over any sane limit.
    assert!(matches!(parse_error(&hex("ff ff ff ff 07"), 32 * 1024), ProtocolError::MessageTooLarge { max: 32768 }));
    // A fifth byte above 7 and a sixth byte are too large.
    let error = parse_error(&hex("ff ff ff ff 08"), 1024);
    assert!(matches!(error, ProtocolError::LengthPrefixTooLarge));
    assert_eq!(error.to_string(), "Messages bigger than 2GB are not supported.");
    assert!(matches!(parse_error(&hex("80 80 80 80 80 01"), 1024), ProtocolError::LengthPrefixTooLarge));
    // An incomplete prefix waits.
    let mut buf = BytesMut::from(&hex("ff ff")[..]);
    assert_eq!(MSGPACK.parse_message(&mut buf, 1024).unwrap(), None);
    // Exactly at the limit is fine.
    let mut buf = BytesMut::from(&hex("02 91 06")[..]);
    assert_eq!(MSGPACK.parse_message(&mut buf, 2).unwrap(), Some(HubMessage::Ping));
}

#[test]
fn deeply_nested_arguments_are_an_error_not_a_crash() {
    let mut body = hex("95 01 80 c0 a1 74 91");
    body.extend(std::iter::repeat_n(0x91, 100_000));
    body.push(0xc0);
    let mut frame = Vec::new();
    signalr_protocol::framing::write_varint(body.len(), &mut frame).unwrap();
    frame.extend_from_slice(&body);
    assert!(matches!(parse_error(&frame, 1 << 20), ProtocolError::MessagePack(_)));
}

#[test]
fn json_values_are_written_as_msgpack() {
    let argument = Value::Json(serde_json::json!({"a": [1, -1, 1.5, null, true, "s"], "b": 300}));
    let mut message = invocation(None, "t", vec![]);
    message.arguments.push(argument);
    assert_eq!(
        write(&MSGPACK, &HubMessage::Invocation(message)),
        framed(&hex("96 01 80 c0 a1 74 91 82 a1 61 96 01 ff cb 3f f8 00 00 00 00 00 00 c0 c3 a1 73 a1 62 cd 01 2c 90"))
    );
}
