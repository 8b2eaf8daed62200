//! The `json` hub protocol: exact bytes from the reference docs, order-independent parsing and
//! bad input.

mod common;

use common::{parse_all, parse_one, write};
use serde_json::json;
use signalr_protocol::message::{CancelInvocationMessage, CompletionMessage, StreamItemMessage};
use signalr_protocol::{
    CloseMessage, CompletionResult, Headers, HubMessage, HubProtocol, InvocationMessage, JsonHubProtocol, ProtocolError, TransferFormat,
    Value,
};

const JSON: JsonHubProtocol = JsonHubProtocol;

fn invocation(id: Option<&str>, target: &str, args: Vec<serde_json::Value>) -> InvocationMessage {
    InvocationMessage {
        headers: Headers::new(),
        invocation_id: id.map(str::to_owned),
        target: target.to_owned(),
        arguments: args.into_iter().map(Value::Json).collect(),
        stream_ids: Vec::new(),
    }
}

fn completion(id: &str, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(CompletionMessage { headers: Headers::new(), invocation_id: id.to_owned(), result })
}

#[test]
fn protocol_identity() {
    assert_eq!(JSON.name(), "json");
    assert_eq!(JSON.version(), 2);
    assert_eq!(JSON.transfer_format(), TransferFormat::Text);
    assert!(JSON.is_version_supported(1));
    assert!(JSON.is_version_supported(2));
    assert!(!JSON.is_version_supported(3));
}

#[test]
fn parses_the_js_client_examples_with_type_last() {
    let cases: Vec<(&str, HubMessage)> = vec![
        (
            "{\"arguments\":[\"hi\"],\"invocationId\":\"0\",\"target\":\"Echo\",\"type\":1}\x1e",
            HubMessage::Invocation(invocation(Some("0"), "Echo", vec![json!("hi")])),
        ),
        (
            "{\"arguments\":[\"hi\"],\"target\":\"Echo\",\"type\":1}\x1e",
            HubMessage::Invocation(invocation(None, "Echo", vec![json!("hi")])),
        ),
        (
            "{\"arguments\":[],\"invocationId\":\"1\",\"streamIds\":[\"2\"],\"target\":\"StreamingConcat\",\"type\":1}\x1e",
            HubMessage::Invocation(InvocationMessage { stream_ids: vec!["2".into()], ..invocation(Some("1"), "StreamingConcat", vec![]) }),
        ),
        (
            "{\"invocationId\":\"2\",\"item\":\"Hello \",\"type\":2}\x1e",
            HubMessage::StreamItem(StreamItemMessage {
                headers: Headers::new(),
                invocation_id: "2".into(),
                item: Value::Json(json!("Hello ")),
            }),
        ),
        ("{\"invocationId\":\"2\",\"type\":3}\x1e", completion("2", CompletionResult::Void)),
        (
            "{\"error\":\"Something bad\",\"invocationId\":\"2\",\"type\":3}\x1e",
            completion("2", CompletionResult::Error("Something bad".into())),
        ),
        (
            "{\"arguments\":[],\"invocationId\":\"3\",\"target\":\"InfiniteStream\",\"type\":4}\x1e",
            HubMessage::StreamInvocation(invocation(Some("3"), "InfiniteStream", vec![])),
        ),
        (
            "{\"invocationId\":\"3\",\"type\":5}\x1e",
            HubMessage::CancelInvocation(CancelInvocationMessage { headers: Headers::new(), invocation_id: "3".into() }),
        ),
        ("{\"type\":6}\x1e", HubMessage::Ping),
        ("{\"type\":7}\x1e", HubMessage::Close(CloseMessage::default())),
        ("{\"sequenceId\":5,\"type\":8}\x1e", HubMessage::Ack { sequence_id: 5 }),
        ("{\"sequenceId\":5,\"type\":9}\x1e", HubMessage::Sequence { sequence_id: 5 }),
        ("{\"invocationId\":\"s7\",\"result\":10,\"type\":3}\x1e", completion("s7", CompletionResult::Result(Value::Json(json!(10))))),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_one(&JSON, text.as_bytes()).unwrap(), expected, "{text}");
    }
}

#[test]
fn the_js_examples_arrive_concatenated_in_one_payload() {
    let payload = "{\"type\":6}\x1e{\"arguments\":[\"hi\"],\"target\":\"Echo\",\"type\":1}\x1e{\"sequenceId\":5,\"type\":8}\x1e";
    let messages = parse_all(&JSON, payload.as_bytes(), 1024).unwrap();
    assert_eq!(
        messages,
        vec![HubMessage::Ping, HubMessage::Invocation(invocation(None, "Echo", vec![json!("hi")])), HubMessage::Ack { sequence_id: 5 }]
    );
}

#[test]
fn writes_the_redis_golden_vectors() {
    // redis-backplane-wire.md §8.2: InvocationMessage("target", []).
    let message = HubMessage::Invocation(invocation(None, "target", vec![]));
    assert_eq!(write(&JSON, &message), b"{\"type\":1,\"target\":\"target\",\"arguments\":[]}\x1e");
    assert_eq!(write(&JSON, &message).len(), 44);
    // §8.3 (b): SendAllAsync("TenantCreated", ["t1"]).
    let message = HubMessage::Invocation(invocation(None, "TenantCreated", vec![json!("t1")]));
    assert_eq!(write(&JSON, &message), b"{\"type\":1,\"target\":\"TenantCreated\",\"arguments\":[\"t1\"]}\x1e");
    // §8.3 (e): a client-result invocation carries its id between type and target.
    let message = HubMessage::Invocation(invocation(Some("hWUS7bmKU0SMZ3Xk7yW1vA"), "GetMessage", vec![]));
    assert_eq!(
        write(&JSON, &message),
        b"{\"type\":1,\"invocationId\":\"hWUS7bmKU0SMZ3Xk7yW1vA\",\"target\":\"GetMessage\",\"arguments\":[]}\x1e"
    );
    // §8.3 (f) and §8.1 JsonMessageForwarded: completions with a result.
    let message = completion("hWUS7bmKU0SMZ3Xk7yW1vA", CompletionResult::Result(Value::Json(json!("hi"))));
    assert_eq!(write(&JSON, &message), b"{\"type\":3,\"invocationId\":\"hWUS7bmKU0SMZ3Xk7yW1vA\",\"result\":\"hi\"}\x1e");
    let message = completion("1", CompletionResult::Result(Value::Json(json!(1))));
    assert_eq!(write(&JSON, &message), b"{\"type\":3,\"invocationId\":\"1\",\"result\":1}\x1e");
}

/// The Diquis TenantCreated payload of redis-backplane-wire.md §8.3 (c), in declaration order.
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

const TENANT_CREATED: TenantCreated = TenantCreated {
    kind: "success",
    message: "Tenant 'Test Tenant' has been created successfully!",
    user_id: "test-user",
    tenant_id: "test-tenant-123",
    tenant_name: "Test Tenant",
    timestamp: "2025-01-01T00:00:00.0000000Z",
};

#[test]
fn writes_the_tenant_created_frame_with_fields_in_declaration_order() {
    let argument = Value::from_serialize(signalr_protocol::value::ValueKind::Json, &TENANT_CREATED).unwrap();
    let mut message = invocation(None, "TenantCreated", vec![]);
    message.arguments.push(argument);
    let bytes = write(&JSON, &HubMessage::Invocation(message));
    let expected = "{\"type\":1,\"target\":\"TenantCreated\",\"arguments\":[{\"type\":\"success\",\"message\":\"Tenant 'Test Tenant' has been created successfully!\",\"userId\":\"test-user\",\"tenantId\":\"test-tenant-123\",\"tenantName\":\"Test Tenant\",\"timestamp\":\"2025-01-01T00:00:00.0000000Z\"}]}\x1e";
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
    assert_eq!(bytes.len(), 253);
}

#[test]
fn writes_fields_in_the_dotnet_order() {
    let mut headers = Headers::new();
    headers.insert("a".into(), "b".into());
    let message = HubMessage::Invocation(InvocationMessage {
        headers: headers.clone(),
        invocation_id: Some("1".into()),
        target: "t".into(),
        arguments: vec![Value::Json(json!(1)), Value::Json(json!(null))],
        stream_ids: vec!["2".into(), "3".into()],
    });
    assert_eq!(
        write(&JSON, &message),
        b"{\"type\":1,\"headers\":{\"a\":\"b\"},\"invocationId\":\"1\",\"target\":\"t\",\"arguments\":[1,null],\"streamIds\":[\"2\",\"3\"]}\x1e"
    );
    let message = HubMessage::StreamInvocation(invocation(Some("4"), "S", vec![]));
    assert_eq!(write(&JSON, &message), b"{\"type\":4,\"invocationId\":\"4\",\"target\":\"S\",\"arguments\":[]}\x1e");
    let message =
        HubMessage::StreamItem(StreamItemMessage { headers: headers.clone(), invocation_id: "1".into(), item: Value::Json(json!(null)) });
    assert_eq!(write(&JSON, &message), b"{\"type\":2,\"headers\":{\"a\":\"b\"},\"invocationId\":\"1\",\"item\":null}\x1e");
    let message = HubMessage::CancelInvocation(CancelInvocationMessage { headers: Headers::new(), invocation_id: "3".into() });
    assert_eq!(write(&JSON, &message), b"{\"type\":5,\"invocationId\":\"3\"}\x1e");
    assert_eq!(write(&JSON, &HubMessage::Ping), b"{\"type\":6}\x1e");
    assert_eq!(write(&JSON, &HubMessage::Ack { sequence_id: 5 }), b"{\"type\":8,\"sequenceId\":5}\x1e");
    assert_eq!(write(&JSON, &HubMessage::Sequence { sequence_id: u64::MAX }), b"{\"type\":9,\"sequenceId\":18446744073709551615}\x1e");
}

#[test]
fn writes_completions_as_dotnet_does() {
    // A void hub method: the hub layer sends Result(null).
    let void = completion("0", CompletionResult::Result(Value::Json(json!(null))));
    assert_eq!(write(&JSON, &void), b"{\"type\":3,\"invocationId\":\"0\",\"result\":null}\x1e");
    // The end of a server-to-client stream: no result at all.
    let end = completion("0", CompletionResult::Void);
    assert_eq!(write(&JSON, &end), b"{\"type\":3,\"invocationId\":\"0\"}\x1e");
    let error = completion("0", CompletionResult::Error("Unknown hub method 'x'".into()));
    assert_eq!(write(&JSON, &error), b"{\"type\":3,\"invocationId\":\"0\",\"error\":\"Unknown hub method 'x'\"}\x1e");
    // .NET writes `error` only when non-empty.
    let empty_error = completion("0", CompletionResult::Error(String::new()));
    assert_eq!(write(&JSON, &empty_error), b"{\"type\":3,\"invocationId\":\"0\"}\x1e");
}

#[test]
fn writes_close_messages() {
    assert_eq!(write(&JSON, &HubMessage::Close(CloseMessage::default())), b"{\"type\":7}\x1e");
    let close = CloseMessage { error: Some("Connection closed with an error.".into()), allow_reconnect: true };
    assert_eq!(
        write(&JSON, &HubMessage::Close(close.clone())),
        b"{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\x1e"
    );
    assert_eq!(
        parse_one(&JSON, b"{\"allowReconnect\":true,\"error\":\"Connection closed with an error.\",\"type\":7}\x1e").unwrap(),
        HubMessage::Close(close)
    );
}

#[test]
fn writes_without_escaping_what_relaxed_escaping_keeps() {
    let text = "Tenant 'A' <b> & \"q\" \\ é 中 😀 \u{1} \n";
    let message = HubMessage::Invocation(invocation(None, text, vec![json!(text)]));
    let bytes = write(&JSON, &message);
    let written = String::from_utf8(bytes.clone()).unwrap();
    let escaped = "Tenant 'A' <b> & \\\"q\\\" \\\\ é 中 😀 \\u0001 \\n";
    assert_eq!(written, format!("{{\"type\":1,\"target\":\"{escaped}\",\"arguments\":[\"{escaped}\"]}}\x1e"));
    // Never pretty-printed: no raw newline can split an SSE data line.
    assert!(!bytes.contains(&b'\n'));
    assert_eq!(parse_one(&JSON, &bytes).unwrap(), message);
}

#[test]
fn headers_unknown_fields_and_null_values() {
    let text = "{\"headers\":{\"x\":\"1\"},\"extra\":{\"deep\":[1,2]},\"invocationId\":\"9\",\"item\":null,\"type\":2}\x1e";
    let mut headers = Headers::new();
    headers.insert("x".into(), "1".into());
    assert_eq!(
        parse_one(&JSON, text.as_bytes()).unwrap(),
        HubMessage::StreamItem(StreamItemMessage { headers, invocation_id: "9".into(), item: Value::Json(json!(null)) })
    );
    // `result: null` is a result (void method), not a stream end.
    assert_eq!(
        parse_one(&JSON, b"{\"type\":3,\"invocationId\":\"1\",\"result\":null}\x1e").unwrap(),
        completion("1", CompletionResult::Result(Value::Json(json!(null))))
    );
    // An empty invocation id is a non-blocking invocation, as on .NET.
    assert_eq!(
        parse_one(&JSON, b"{\"type\":1,\"invocationId\":\"\",\"target\":\"t\",\"arguments\":[]}\x1e").unwrap(),
        HubMessage::Invocation(invocation(None, "t", vec![]))
    );
}

#[test]
fn unknown_message_types_are_skipped() {
    let payload = b"{\"type\":42,\"whatever\":true}\x1e{\"type\":6}\x1e{\"type\":0}\x1e";
    assert_eq!(parse_all(&JSON, payload, 1024).unwrap(), vec![HubMessage::Ping]);
    // Only unknown messages: all consumed, nothing returned.
    assert_eq!(parse_all(&JSON, b"{\"type\":99}\x1e", 1024).unwrap(), vec![]);
}

fn parse_error(text: &str) -> ProtocolError {
    let mut buf = bytes::BytesMut::from(text.as_bytes());
    JSON.parse_message(&mut buf, 1 << 16).expect_err(text)
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(parse_error("{\"type\":1,\x1e"), ProtocolError::Json(_)));
    assert!(matches!(parse_error("not json\x1e"), ProtocolError::Json(_)));
    assert!(matches!(parse_error("[1,2]\x1e"), ProtocolError::Json(_)));
    assert!(matches!(parse_error("\x1e"), ProtocolError::Json(_)));
    assert!(matches!(parse_error("{}\x1e"), ProtocolError::MissingField("type")));
    assert!(matches!(parse_error("{\"type\":\"1\"}\x1e"), ProtocolError::WrongType { field: "type", .. }));
    assert!(matches!(parse_error("{\"type\":1.5}\x1e"), ProtocolError::WrongType { field: "type", .. }));
    assert!(matches!(parse_error("{\"type\":1,\"target\":5,\"arguments\":[]}\x1e"), ProtocolError::WrongType { field: "target", .. }));
    assert!(matches!(
        parse_error("{\"type\":1,\"target\":\"t\",\"arguments\":{}}\x1e"),
        ProtocolError::WrongType { field: "arguments", .. }
    ));
    assert!(matches!(parse_error("{\"type\":1,\"target\":\"t\"}\x1e"), ProtocolError::MissingField("arguments")));
    assert!(matches!(parse_error("{\"type\":1,\"arguments\":[]}\x1e"), ProtocolError::MissingField("target")));
    assert!(matches!(
        parse_error("{\"type\":1,\"target\":\"t\",\"arguments\":[],\"streamIds\":[1]}\x1e"),
        ProtocolError::WrongType { field: "streamIds", .. }
    ));
    assert!(matches!(
        parse_error("{\"type\":1,\"target\":\"t\",\"arguments\":[],\"headers\":{\"a\":1}}\x1e"),
        ProtocolError::WrongType { field: "headers", .. }
    ));
    assert!(matches!(parse_error("{\"type\":4,\"target\":\"t\",\"arguments\":[]}\x1e"), ProtocolError::MissingField("invocationId")));
    assert!(matches!(parse_error("{\"type\":2,\"invocationId\":\"1\"}\x1e"), ProtocolError::MissingField("item")));
    assert!(matches!(parse_error("{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"e\"}\x1e"), ProtocolError::ResultAndError));
    assert_eq!(
        parse_error("{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"e\"}\x1e").to_string(),
        "The 'error' and 'result' properties are mutually exclusive."
    );
    assert!(matches!(parse_error("{\"type\":3,\"result\":1}\x1e"), ProtocolError::MissingField("invocationId")));
    assert!(matches!(parse_error("{\"type\":3,\"invocationId\":7}\x1e"), ProtocolError::WrongType { field: "invocationId", .. }));
    assert!(matches!(parse_error("{\"type\":7,\"allowReconnect\":\"yes\"}\x1e"), ProtocolError::WrongType { field: "allowReconnect", .. }));
    assert!(matches!(parse_error("{\"type\":8}\x1e"), ProtocolError::MissingField("sequenceId")));
    assert!(matches!(parse_error("{\"type\":9,\"sequenceId\":-1}\x1e"), ProtocolError::WrongType { field: "sequenceId", .. }));
    assert!(matches!(parse_error("{\"type\":6,\"type\":6}\x1e"), ProtocolError::Json(_)));
}

#[test]
fn a_bad_message_is_consumed_and_the_next_one_still_parses() {
    let mut buf = bytes::BytesMut::from(&b"{bad\x1e{\"type\":6}\x1e"[..]);
    assert!(JSON.parse_message(&mut buf, 1024).is_err());
    assert_eq!(JSON.parse_message(&mut buf, 1024).unwrap(), Some(HubMessage::Ping));
}

#[test]
fn oversized_messages_are_refused_before_the_separator_arrives() {
    let mut buf = bytes::BytesMut::from(&b"{\"type\":1,\"target\":\"aaaaaaaaaaaa"[..]);
    let error = JSON.parse_message(&mut buf, 16).unwrap_err();
    assert!(matches!(error, ProtocolError::MessageTooLarge { max: 16 }));
    assert_eq!(error.to_string(), "The maximum message size of 16B was exceeded. The message size can be configured in AddHubOptions.");
    let mut buf = bytes::BytesMut::from(&b"{\"type\":6,\"padding\":\"xxxxxxxxxx\"}\x1e"[..]);
    assert!(matches!(JSON.parse_message(&mut buf, 16), Err(ProtocolError::MessageTooLarge { max: 16 })));
    // Exactly at the limit is fine.
    let mut buf = bytes::BytesMut::from(&b"{\"type\":6}\x1e"[..]);
    assert_eq!(JSON.parse_message(&mut buf, 10).unwrap(), Some(HubMessage::Ping));
}

#[test]
fn partial_input_waits_for_more() {
    let text = b"{\"arguments\":[\"hi\"],\"invocationId\":\"0\",\"target\":\"Echo\",\"type\":1}\x1e{\"type\":6}\x1e";
    let mut buf = bytes::BytesMut::new();
    let mut messages = Vec::new();
    for &byte in text.iter() {
        buf.extend_from_slice(&[byte]);
        while let Some(message) = JSON.parse_message(&mut buf, 1024).unwrap() {
            messages.push(message);
        }
    }
    assert_eq!(messages, vec![HubMessage::Invocation(invocation(Some("0"), "Echo", vec![json!("hi")])), HubMessage::Ping]);
    assert!(buf.is_empty());
}

#[test]
fn writes_msgpack_values_in_their_json_form() {
    let argument = Value::MsgPack(rmpv::Value::Map(vec![
        (rmpv::Value::from("Bytes"), rmpv::Value::Binary(vec![1, 2, 3])),
        (rmpv::Value::from("N"), rmpv::Value::from(-5)),
        (rmpv::Value::from("F"), rmpv::Value::F32(1.5)),
    ]));
    let mut message = invocation(None, "t", vec![]);
    message.arguments.push(argument);
    assert_eq!(
        write(&JSON, &HubMessage::Invocation(message)),
        b"{\"type\":1,\"target\":\"t\",\"arguments\":[{\"Bytes\":\"AQID\",\"N\":-5,\"F\":1.5}]}\x1e"
    );
    // A value JSON cannot carry is an error, and nothing is left half-written.
    let mut out = b"prefix".to_vec();
    let bad = HubMessage::StreamItem(StreamItemMessage {
        headers: Headers::new(),
        invocation_id: "1".into(),
        item: Value::MsgPack(rmpv::Value::F64(f64::NAN)),
    });
    assert!(JSON.write_message(&bad, &mut out).is_err());
    assert_eq!(out, b"prefix");
}
