//! Golden vectors of the wire reference §8, byte for byte in both directions, and bad input.

use super::*;

/// Parses a hex dump with optional spaces and `"text"` runs into bytes.
pub(crate) fn hex(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = spec;
    while let Some(ch) = rest.chars().next() {
        if ch.is_whitespace() {
            rest = &rest[ch.len_utf8()..];
        } else if ch == '"' {
            let end = rest[1..].find('"').expect("closing quote") + 1;
            out.extend_from_slice(&rest.as_bytes()[1..end]);
            rest = &rest[end + 1..];
        } else {
            out.push(u8::from_str_radix(&rest[..2], 16).expect("hex byte"));
            rest = &rest[2..];
        }
    }
    out
}

fn b(bytes: Vec<u8>) -> Bytes {
    Bytes::from(bytes)
}

// ---- §8.1 Ack -------------------------------------------------------------------------------

#[test]
fn ack_official_vectors_both_directions() {
    for (id, bytes) in [(0, "91 00"), (42, "91 2a"), (180, "91 cc b4"), (384, "91 cd 01 80"), (70000, "91 ce 00 01 11 70")] {
        assert_eq!(write_ack(id), hex(bytes), "write ack {id}");
        assert_eq!(read_ack(&b(hex(bytes))).unwrap(), Ack { id }, "read ack {id}");
    }
}

#[test]
fn ack_derived_vectors_both_directions() {
    for (id, bytes) in [(1, "91 01"), (128, "91 cc 80"), (-1, "91 ff"), (i32::MAX, "91 ce 7f ff ff ff"), (i32::MIN, "91 d2 80 00 00 00")] {
        assert_eq!(write_ack(id), hex(bytes), "write ack {id}");
        assert_eq!(read_ack(&b(hex(bytes))).unwrap(), Ack { id }, "read ack {id}");
    }
}

#[test]
fn ack_reads_every_integer_width() {
    for bytes in [
        "91 cc 2a",
        "91 cd 00 2a",
        "91 ce 00 00 00 2a",
        "91 cf 00 00 00 00 00 00 00 2a",
        "91 d0 2a",
        "91 d1 00 2a",
        "91 d2 00 00 00 2a",
        "91 d3 00 00 00 00 00 00 00 2a",
    ] {
        assert_eq!(read_ack(&b(hex(bytes))).unwrap(), Ack { id: 42 }, "{bytes}");
    }
    assert_eq!(read_ack(&b(hex("91 d0 d6"))).unwrap(), Ack { id: -42 });
}

#[test]
fn ack_ignores_extra_items_and_rejects_bad_input() {
    assert_eq!(read_ack(&b(hex("93 05 a1 78 c0"))).unwrap(), Ack { id: 5 });
    assert_eq!(read_ack(&b(hex("90"))), Err(EnvelopeError::TooFewItems { record: "Ack", minimum: 1, found: 0 }));
    assert!(matches!(read_ack(&b(hex("91 a1 61"))), Err(EnvelopeError::WrongType { found: 0xa1, .. })));
    assert!(matches!(read_ack(&b(hex("91 ce 00 01"))), Err(EnvelopeError::Truncated { .. })));
    assert!(matches!(read_ack(&b(hex("91 cf 00 00 00 01 00 00 00 00"))), Err(EnvelopeError::OutOfRange { value: 4294967296, .. })));
    assert!(matches!(read_ack(&Bytes::new()), Err(EnvelopeError::Truncated { .. })));
    assert!(matches!(read_ack(&b(b"hello".to_vec())), Err(EnvelopeError::WrongType { .. })));
}

// ---- §8.1 Group command ---------------------------------------------------------------------

fn group(id: i32, server: &str, action: GroupAction, group: &str, conn: &str) -> GroupCommand {
    GroupCommand { id, server_name: server.into(), action, group_name: group.into(), connection_id: conn.into() }
}

#[test]
fn group_command_official_vectors_both_directions() {
    for (action, bytes) in [(GroupAction::Add, "95 2a a1 53 01 a1 47 a1 43"), (GroupAction::Remove, "95 2a a1 53 02 a1 47 a1 43")] {
        let command = group(42, "S", action, "G", "C");
        assert_eq!(write_group_command(&command), hex(bytes));
        assert_eq!(read_group_command(&b(hex(bytes))).unwrap(), command);
    }
}

#[test]
fn group_command_derived_vector_78_bytes() {
    let bytes = hex(r#"95 01 d9 26 "web01_02db60e5fab243b890a847fa5c4dcb29" 01 ab "tenant:acme" b6 "AbCdEfGhIjKlMnOpQrStUv""#);
    assert_eq!(bytes.len(), 78);
    let command = group(1, "web01_02db60e5fab243b890a847fa5c4dcb29", GroupAction::Add, "tenant:acme", "AbCdEfGhIjKlMnOpQrStUv");
    assert_eq!(write_group_command(&command), bytes);
    assert_eq!(read_group_command(&b(bytes)).unwrap(), command);
}

#[test]
fn group_command_reads_wide_forms_extra_items_and_unknown_actions() {
    // str8/str16/str32 strings, a uint16 id, a uint8 action, two extra trailing items.
    let bytes = hex(r#"97 cd 00 2a d9 01 "S" cc 02 da 00 01 "G" db 00 00 00 01 "C" c0 91 01"#);
    assert_eq!(read_group_command(&b(bytes)).unwrap(), group(42, "S", GroupAction::Remove, "G", "C"));
    let unknown = read_group_command(&b(hex("95 2a a1 53 07 a1 47 a1 43"))).unwrap();
    assert_eq!(unknown.action, GroupAction::Unknown(7));
}

#[test]
fn group_command_negative_vectors() {
    assert_eq!(
        read_group_command(&b(hex("94 2a a1 53 01 a1 47"))),
        Err(EnvelopeError::TooFewItems { record: "GroupCommand", minimum: 5, found: 4 })
    );
    assert!(matches!(
        read_group_command(&b(hex("95 2a a1 53 cd 01 00 a1 47 a1 43"))),
        Err(EnvelopeError::OutOfRange { what: "the action", value: 256, .. })
    ));
    assert!(matches!(read_group_command(&b(hex("95 2a a1 53 01 c0 a1 43"))), Err(EnvelopeError::Nil { what: "the group name", .. })));
    assert!(matches!(read_group_command(&b(hex("95 2a a1 53 01 a1 47 a5 43"))), Err(EnvelopeError::Truncated { .. })));
    assert!(matches!(read_group_command(&b(hex("95 2a a2 ff fe 01 a1 47 a1 43"))), Err(EnvelopeError::InvalidUtf8 { .. })));
}

// ---- §8.1 Invocation with dummy protocols p1/p2 --------------------------------------------

const DUMMY: &[u8] = &[0x2a];

#[test]
fn invocation_official_vectors_both_directions() {
    let cases: [(&[&str], &str); 3] = [
        (&[], "92 90 82 a2 70 31 c4 01 2a a2 70 32 c4 01 2a"),
        (&["a"], "92 91 a1 61 82 a2 70 31 c4 01 2a a2 70 32 c4 01 2a"),
        (&["a", "b", "c", "d", "e", "f"], "92 96 a1 61 a1 62 a1 63 a1 64 a1 65 a1 66 82 a2 70 31 c4 01 2a a2 70 32 c4 01 2a"),
    ];
    for (excluded, bytes) in cases {
        let written = write_invocation(excluded, &[("p1", DUMMY), ("p2", DUMMY)], None);
        assert_eq!(written, hex(bytes), "write {excluded:?}");
        let read = read_invocation(&b(hex(bytes))).unwrap();
        assert_eq!(read.excluded_connection_ids, excluded);
        assert_eq!(read.messages, vec![("p1".to_string(), Bytes::from_static(DUMMY)), ("p2".to_string(), Bytes::from_static(DUMMY))]);
        assert_eq!(read.client_result, None);
    }
}

#[test]
fn invocation_negative_and_forward_compatible_vectors() {
    assert_eq!(read_invocation(&b(hex("91 90"))), Err(EnvelopeError::TooFewItems { record: "Invocation", minimum: 2, found: 1 }));
    // 3 items: accepted, the extra item ignored, no client-result fields.
    let three = read_invocation(&b(hex("93 90 81 a2 70 31 c4 01 2a a1 78"))).unwrap();
    assert_eq!(three.client_result, None);
    assert_eq!(three.messages.len(), 1);
    // 5 items: [2] and [3] used, [4] ignored.
    let five = read_invocation(&b(hex("95 90 81 a2 70 31 c4 01 2a a2 69 64 a2 72 63 c3"))).unwrap();
    assert_eq!(five.client_result, Some(ClientResultRoute { invocation_id: "id".into(), return_channel: "rc".into() }));
    // A nil invocation id is a plain send.
    let nil_id = read_invocation(&b(hex("94 90 80 c0 a2 72 63"))).unwrap();
    assert_eq!(nil_id.client_result, None);
    // Wide forms: array16 of exclusions, map16, bin16, bin32, str-typed blob, nil blob.
    let wide =
        read_invocation(&b(hex(r#"92 dc 00 01 a1 61 de 00 04 a1 61 c5 00 01 2a a1 62 c6 00 00 00 01 2a a1 63 a1 2a a1 64 c0"#))).unwrap();
    assert_eq!(wide.excluded_connection_ids, vec!["a"]);
    assert_eq!(wide.messages[0].1, Bytes::from_static(DUMMY));
    assert_eq!(wide.messages[1].1, Bytes::from_static(DUMMY));
    assert_eq!(wide.messages[2].1, Bytes::from_static(DUMMY));
    assert_eq!(wide.messages[3].1, Bytes::new());
    // Garbage and truncation.
    assert!(matches!(read_invocation(&b(b"not msgpack".to_vec())), Err(EnvelopeError::WrongType { .. })));
    assert!(matches!(read_invocation(&b(hex("92 90 81 a2 70 31 c4 05 2a"))), Err(EnvelopeError::Truncated { .. })));
    assert!(matches!(read_invocation(&b(hex("92 90 81 c0 c4 01 2a"))), Err(EnvelopeError::Nil { .. })));
    assert!(matches!(read_invocation(&b(hex("92 90 91 a1 61"))), Err(EnvelopeError::WrongType { .. })));
    assert!(matches!(read_invocation(&b(hex("92 90 81 a2 70 31 01"))), Err(EnvelopeError::WrongType { .. })));
    // A huge declared length does not allocate or panic.
    assert!(matches!(read_invocation(&b(hex("92 dd ff ff ff ff a1 61"))), Err(EnvelopeError::Truncated { .. })));
    assert!(matches!(read_invocation(&b(hex("92 90 81 a2 70 31 c6 ff ff ff ff 00"))), Err(EnvelopeError::Truncated { .. })));
}

#[test]
fn invocation_frames_are_zero_copy_slices() {
    let payload = b(hex("92 90 81 a2 70 31 c4 03 01 02 03"));
    let read = read_invocation(&payload).unwrap();
    let frame = &read.messages[0].1;
    assert_eq!(frame.as_ref(), &[1, 2, 3]);
    assert_eq!(frame.as_ptr(), payload[8..].as_ptr());
}

// ---- §8.1 Completion ------------------------------------------------------------------------

#[test]
fn completion_official_vectors_both_directions() {
    let json = br#"{"type":3,"invocationId":"1","result":1}"#;
    assert_eq!(json.len(), 40);
    let mut expected = hex("92 a4 6a 73 6f 6e c4 28");
    expected.extend_from_slice(json);
    assert_eq!(write_completion("json", json), expected);
    let read = read_completion(&b(expected)).unwrap();
    assert_eq!(read.protocol_name, "json");
    assert_eq!(read.frame.as_ref(), json);

    let msgpack = hex("95 03 80 a3 78 79 7a 03 2a");
    let expected = hex("92 ab 6d 65 73 73 61 67 65 70 61 63 6b c4 09 95 03 80 a3 78 79 7a 03 2a");
    assert_eq!(write_completion("messagepack", &msgpack), expected);
    let read = read_completion(&b(expected)).unwrap();
    assert_eq!(read.protocol_name, "messagepack");
    assert_eq!(read.frame.as_ref(), msgpack.as_slice());
}

#[test]
fn completion_negative_vectors() {
    assert_eq!(
        read_completion(&b(hex("91 a4 6a 73 6f 6e"))),
        Err(EnvelopeError::TooFewItems { record: "Completion", minimum: 2, found: 1 })
    );
    assert!(matches!(read_completion(&b(hex("92 c0 c4 00"))), Err(EnvelopeError::Nil { .. })));
    assert!(matches!(read_completion(&b(hex("92 01 c4 00"))), Err(EnvelopeError::WrongType { .. })));
    // nil blob reads as empty; extra items ignored.
    let read = read_completion(&b(hex("93 a1 70 c0 c0"))).unwrap();
    assert!(read.frame.is_empty());
}

// ---- §8.3 derived vectors (e) and (f) -------------------------------------------------------

const SERVER: &str = "web01_02db60e5fab243b890a847fa5c4dcb29";
const RETURN_CHANNEL: &str = "Diquis.Infrastructure.Hubs.NotificationHub:internal:return:web01_02db60e5fab243b890a847fa5c4dcb29";

#[test]
fn client_result_invocation_derived_vector_220_bytes() {
    let frame =
        [br#"{"type":1,"invocationId":"hWUS7bmKU0SMZ3Xk7yW1vA","target":"GetMessage","arguments":[]}"#.as_slice(), &[0x1e]].concat();
    assert_eq!(frame.len(), 0x58);
    let mut expected = hex(r#"94 90 81 a4 "json" c4 58"#);
    expected.extend_from_slice(&frame);
    expected.extend_from_slice(&hex(r#"b6 "hWUS7bmKU0SMZ3Xk7yW1vA" d9 61"#));
    expected.extend_from_slice(RETURN_CHANNEL.as_bytes());
    assert_eq!(expected.len(), 220);
    let no_exclusions: &[&str] = &[];
    let written = write_invocation(no_exclusions, &[("json", &frame)], Some(("hWUS7bmKU0SMZ3Xk7yW1vA", RETURN_CHANNEL)));
    assert_eq!(written, expected);
    let read = read_invocation(&b(expected)).unwrap();
    assert_eq!(
        read.client_result,
        Some(ClientResultRoute { invocation_id: "hWUS7bmKU0SMZ3Xk7yW1vA".into(), return_channel: RETURN_CHANNEL.into() })
    );
    assert_eq!(read.messages[0].1.as_ref(), frame.as_slice());
    assert!(RETURN_CHANNEL.ends_with(SERVER));
}

#[test]
fn completion_reply_derived_vector_73_bytes() {
    let frame = [br#"{"type":3,"invocationId":"hWUS7bmKU0SMZ3Xk7yW1vA","result":"hi"}"#.as_slice(), &[0x1e]].concat();
    let mut expected = hex(r#"92 a4 "json" c4 41"#);
    expected.extend_from_slice(&frame);
    assert_eq!(expected.len(), 73);
    assert_eq!(write_completion("json", &frame), expected);
    assert_eq!(read_completion(&b(expected)).unwrap().frame.as_ref(), frame.as_slice());
}

#[test]
fn writer_switches_widths_at_the_boundaries() {
    let long_name = "x".repeat(32);
    let command = group(65536, &long_name, GroupAction::Add, &"g".repeat(256), &"c".repeat(65536));
    let bytes = write_group_command(&command);
    assert_eq!(&bytes[..6], &hex("95 ce 00 01 00 00")[..]);
    assert_eq!(&bytes[6..8], &[0xd9, 32]);
    assert_eq!(read_group_command(&b(bytes)).unwrap(), command);
    let big = vec![7u8; 65536];
    let no_exclusions: &[&str] = &[];
    let bytes = write_invocation(no_exclusions, &[("json", &big[..256]), ("messagepack", &big)], None);
    assert_eq!(&bytes[..3], &hex("92 90 82")[..]);
    assert_eq!(&bytes[8..11], &hex("c5 01 00")[..]);
    let read = read_invocation(&b(bytes)).unwrap();
    assert_eq!(read.messages[1].1.len(), 65536);
    let many: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    let bytes = write_invocation(&many, &[], None);
    assert_eq!(&bytes[..4], &hex("92 dc 00 10")[..]);
    assert_eq!(read_invocation(&b(bytes)).unwrap().excluded_connection_ids, many);
}
