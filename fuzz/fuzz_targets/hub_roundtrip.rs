//! Structured hub messages: encode → decode gives the same message with both protocols, and the
//! JSON and MessagePack decodes of the same message agree once their values are converted to one
//! form (see docs/fuzzing.md for what the value models do not share).
#![no_main]

use arbitrary::Unstructured;
use bytes::BytesMut;
use diquis_fuzz::{assert_messages_eq, carried_by, hub_message, to_json, to_msgpack};
use libfuzzer_sys::fuzz_target;
use signalr_protocol::{HubMessage, HubProtocol, JsonHubProtocol, MessagePackHubProtocol};

fn roundtrip(protocol: &dyn HubProtocol, message: &HubMessage) -> HubMessage {
    let mut out = Vec::new();
    protocol.write_message(message, &mut out).expect("a message of this protocol's values writes");
    // Read byte by byte for short messages, whole otherwise.
    let mut buf = BytesMut::new();
    let mut parsed = None;
    let step = if out.len() < 64 { 1 } else { out.len() };
    for chunk in out.chunks(step) {
        assert!(parsed.is_none(), "{}: a message parsed before all its bytes arrived", protocol.name());
        buf.extend_from_slice(chunk);
        parsed = protocol.parse_message(&mut buf, usize::MAX).expect("a written message parses");
    }
    assert!(buf.is_empty());
    parsed.expect("a written message is whole")
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = hub_message(&mut Unstructured::new(data)) else { return };
    let from_json = roundtrip(&JsonHubProtocol, &message);
    assert_messages_eq(&carried_by(&JsonHubProtocol, &message), &from_json);

    let packed = to_msgpack(&message);
    let from_msgpack = roundtrip(&MessagePackHubProtocol, &packed);
    assert_messages_eq(&packed, &from_msgpack);

    // Differential: the MessagePack decode, in JSON form, is the JSON decode.
    let converted = to_json(&from_msgpack).expect("values that came from JSON convert back");
    assert_messages_eq(&from_json, &carried_by(&JsonHubProtocol, &converted));
});
