//! Golden vectors of the wire reference §8.2 and §8.3 (a)–(c): the envelope as the publishing
//! path builds it from a hub message with the real JSON and MessagePack hub protocols.

use std::sync::Arc;

use serde_json::json;
use signalr::hub::lifetime::SerializedMessage;
use signalr_protocol::{Headers, HubMessage, HubProtocol, InvocationMessage, JsonHubProtocol, MessagePackHubProtocol, Value};
use signalr_redis::protocol::read_invocation;
use signalr_redis::serialize_invocation;

fn hex(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = spec;
    while let Some(ch) = rest.chars().next() {
        if ch.is_whitespace() {
            rest = &rest[1..];
        } else if ch == '"' {
            let end = rest[1..].find('"').unwrap() + 1;
            out.extend_from_slice(&rest.as_bytes()[1..end]);
            rest = &rest[end + 1..];
        } else {
            out.push(u8::from_str_radix(&rest[..2], 16).unwrap());
            rest = &rest[2..];
        }
    }
    out
}

fn message(target: &str, arguments: Vec<Value>) -> SerializedMessage {
    SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
        headers: Headers::new(),
        invocation_id: None,
        target: target.into(),
        arguments,
        stream_ids: vec![],
    }))
}

fn json_only() -> Vec<Arc<dyn HubProtocol>> {
    vec![Arc::new(JsonHubProtocol)]
}

fn both() -> Vec<Arc<dyn HubProtocol>> {
    vec![Arc::new(JsonHubProtocol), Arc::new(MessagePackHubProtocol)]
}

#[test]
fn official_map_values_8_2() {
    let msg = message("target", vec![]);
    assert_eq!(msg.encoded(&MessagePackHubProtocol).unwrap().as_ref(), hex("0d 96 01 80 c0 a6 74 61 72 67 65 74 90 90").as_slice());
    let json = msg.encoded(&JsonHubProtocol).unwrap();
    assert_eq!(json.as_ref(), b"{\"type\":1,\"target\":\"target\",\"arguments\":[]}\x1e");
    assert_eq!(json.len(), 44);
    // [messagepack] -> 1 entry; [messagepack, json] -> 2 entries in that order; none -> error.
    let mp_only: Vec<Arc<dyn HubProtocol>> = vec![Arc::new(MessagePackHubProtocol)];
    let one = read_invocation(&serialize_invocation(&msg, &mp_only, &[], None).unwrap().into()).unwrap();
    assert_eq!(one.messages.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["messagepack"]);
    let mp_json: Vec<Arc<dyn HubProtocol>> = vec![Arc::new(MessagePackHubProtocol), Arc::new(JsonHubProtocol)];
    let two = read_invocation(&serialize_invocation(&msg, &mp_json, &[], None).unwrap().into()).unwrap();
    assert_eq!(two.messages.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["messagepack", "json"]);
    assert!(serialize_invocation(&msg, &[], &[], None).is_err());
}

#[test]
fn combined_envelope_8_3_a() {
    let expected = hex("92 90 82 a4 6a 73 6f 6e c4 2c 7b 22 74 79 70 65 22 3a 31 2c 22 74 61 72 67 65 74 22 3a 22 74 61
         72 67 65 74 22 2c 22 61 72 67 75 6d 65 6e 74 73 22 3a 5b 5d 7d 1e ab 6d 65 73 73 61 67 65 70 61
         63 6b c4 0e 0d 96 01 80 c0 a6 74 61 72 67 65 74 90 90");
    assert_eq!(expected.len(), 82);
    assert_eq!(serialize_invocation(&message("target", vec![]), &both(), &[], None).unwrap(), expected);
}

#[test]
fn minimal_tenant_created_8_3_b() {
    let mut json_only_bytes = hex(r#"92 90 81 a4 6a 73 6f 6e c4 37"#);
    json_only_bytes.extend_from_slice(b"{\"type\":1,\"target\":\"TenantCreated\",\"arguments\":[\"t1\"]}\x1e");
    assert_eq!(json_only_bytes.len(), 65);
    let args = || vec![Value::Json(json!("t1"))];
    assert_eq!(serialize_invocation(&message("TenantCreated", args()), &json_only(), &[], None).unwrap(), json_only_bytes);

    let mut with_mp = json_only_bytes.clone();
    with_mp[2] = 0x82;
    with_mp.extend_from_slice(&hex(
        "ab 6d 65 73 73 61 67 65 70 61 63 6b c4 18 17 96 01 80 c0 ad 54 65 6e 61 6e 74 43 72 65 61 74 65 64 91 a2 74 31 90",
    ));
    assert_eq!(with_mp.len(), 103);
    assert_eq!(serialize_invocation(&message("TenantCreated", args()), &both(), &[], None).unwrap(), with_mp);

    let mut excluded = json_only_bytes.clone();
    excluded.splice(1..2, hex("92 a6 63 6f 6e 6e 2d 41 a6 63 6f 6e 6e 2d 42"));
    assert_eq!(excluded.len(), 79);
    let ids = vec!["conn-A".to_string(), "conn-B".to_string()];
    assert_eq!(serialize_invocation(&message("TenantCreated", args()), &json_only(), &ids, None).unwrap(), excluded);
    let read = read_invocation(&excluded.into()).unwrap();
    assert_eq!(read.excluded_connection_ids, ids);
}

#[test]
fn diquis_tenant_created_8_3_c() {
    let payload = json!({
        "type": "success",
        "message": "Tenant 'Test Tenant' has been created successfully!",
        "userId": "test-user",
        "tenantId": "test-tenant-123",
        "tenantName": "Test Tenant",
        "timestamp": "2025-01-01T00:00:00.0000000Z"
    });
    let frame = br#"{"type":1,"target":"TenantCreated","arguments":[{"type":"success","message":"Tenant 'Test Tenant' has been created successfully!","userId":"test-user","tenantId":"test-tenant-123","tenantName":"Test Tenant","timestamp":"2025-01-01T00:00:00.0000000Z"}]}"#;
    let mut json_frame = frame.to_vec();
    json_frame.push(0x1e);
    assert_eq!(json_frame.len(), 253);
    let mut expected = hex("92 90 81 a4 6a 73 6f 6e c4 fd");
    expected.extend_from_slice(&json_frame);
    assert_eq!(expected.len(), 263);
    let msg = || message("TenantCreated", vec![Value::Json(payload.clone())]);
    assert_eq!(serialize_invocation(&msg(), &json_only(), &[], None).unwrap(), expected);

    // With MessagePack too: 478 bytes, map keys in declaration order.
    let mut mp_body = hex(r#"96 01 80 c0 ad "TenantCreated" 91 86"#);
    mp_body.extend_from_slice(&hex(r#"a4 "type" a7 "success""#));
    mp_body.extend_from_slice(&hex(r#"a7 "message" d9 33"#));
    mp_body.extend_from_slice(b"Tenant 'Test Tenant' has been created successfully!");
    mp_body.extend_from_slice(&hex(r#"a6 "userId" a9 "test-user""#));
    mp_body.extend_from_slice(&hex(r#"a8 "tenantId" af "test-tenant-123""#));
    mp_body.extend_from_slice(&hex(r#"aa "tenantName" ab "Test Tenant""#));
    mp_body.extend_from_slice(&hex(r#"a9 "timestamp" bc "2025-01-01T00:00:00.0000000Z""#));
    mp_body.push(0x90);
    assert_eq!(mp_body.len(), 199);
    let mut both_expected = expected.clone();
    both_expected[2] = 0x82;
    both_expected.extend_from_slice(&hex(r#"ab "messagepack" c4 c9 c7 01"#));
    both_expected.extend_from_slice(&mp_body);
    assert_eq!(both_expected.len(), 478);
    assert_eq!(serialize_invocation(&msg(), &both(), &[], None).unwrap(), both_expected);
}
