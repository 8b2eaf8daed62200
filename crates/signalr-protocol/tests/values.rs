//! [`Value`], the conversions between its two kinds, and the per-protocol payload helpers.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signalr_protocol::serde_helpers::{Binary, Timestamp};
use signalr_protocol::value::{ValueKind, json_to_msgpack, msgpack_to_json};
use signalr_protocol::{HubMessage, HubProtocol, JsonHubProtocol, MessagePackHubProtocol, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Color {
    Red,
    Blue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Complex {
    string: String,
    int: i32,
    long: i64,
    float: f64,
    list: Vec<u8>,
    color: Color,
    data: Binary,
    when: Timestamp,
    nothing: Option<String>,
}

fn y2k() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
}

fn sample() -> Complex {
    Complex {
        string: "hello".into(),
        int: -42,
        long: 1 << 40,
        float: 2.5,
        list: vec![1, 2, 3],
        color: Color::Blue,
        data: Binary(vec![0, 1, 254, 255]),
        when: Timestamp(y2k()),
        nothing: None,
    }
}

#[test]
fn basics() {
    assert!(Value::null(ValueKind::Json).is_null());
    assert!(Value::null(ValueKind::MsgPack).is_null());
    assert_eq!(Value::null(ValueKind::Json).kind(), ValueKind::Json);
    assert_eq!(Value::null(ValueKind::MsgPack).kind(), ValueKind::MsgPack);
    assert!(!Value::Json(json!(0)).is_null());
    assert!(!Value::MsgPack(rmpv::Value::from(false)).is_null());
}

#[test]
fn json_form_of_a_complex_object() {
    let value = Value::from_serialize(ValueKind::Json, &sample()).unwrap();
    assert_eq!(
        serde_json::to_string(&value).unwrap(),
        r#"{"String":"hello","Int":-42,"Long":1099511627776,"Float":2.5,"List":[1,2,3],"Color":"Blue","Data":"AAH+/w==","When":"2000-01-01T00:00:00Z","Nothing":null}"#
    );
    assert_eq!(value.deserialize::<Complex>().unwrap(), sample());
}

#[test]
fn msgpack_form_of_a_complex_object() {
    let value = Value::from_serialize(ValueKind::MsgPack, &sample()).unwrap();
    let Value::MsgPack(rmpv::Value::Map(entries)) = &value else { panic!("a map: {value:?}") };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(keys, ["String", "Int", "Long", "Float", "List", "Color", "Data", "When", "Nothing"]);
    assert_eq!(entries[5].1, rmpv::Value::from("Blue"), "enums as strings, like .NET");
    assert_eq!(entries[6].1, rmpv::Value::Binary(vec![0, 1, 254, 255]), "bytes as bin");
    assert_eq!(entries[7].1, rmpv::Value::Ext(-1, vec![0x38, 0x6d, 0x43, 0x80]), "a 4-byte timestamp");
    assert_eq!(entries[8].1, rmpv::Value::Nil);
    assert_eq!(value.deserialize::<Complex>().unwrap(), sample());
}

#[test]
fn a_value_of_one_kind_is_written_by_the_other_protocol() {
    for kind in [ValueKind::Json, ValueKind::MsgPack] {
        let value = Value::from_serialize(kind, &sample()).unwrap();
        let message = HubMessage::StreamItem(signalr_protocol::StreamItemMessage {
            headers: Default::default(),
            invocation_id: "1".into(),
            item: value,
        });
        // Through JSON: binary as base64, the timestamp as ISO-8601.
        let mut out = Vec::new();
        JsonHubProtocol.write_message(&message, &mut out).unwrap();
        let mut buf = bytes::BytesMut::from(&out[..]);
        let Some(HubMessage::StreamItem(item)) = JsonHubProtocol.parse_message(&mut buf, 1 << 16).unwrap() else { panic!("a stream item") };
        assert_eq!(item.item.deserialize::<Complex>().unwrap(), sample(), "{kind:?} via json");
        // Through MessagePack a JSON-built value carries strings where MessagePack-built
        // values carry bin and timestamps; the helpers read both.
        let mut out = Vec::new();
        MessagePackHubProtocol.write_message(&message, &mut out).unwrap();
        let mut buf = bytes::BytesMut::from(&out[..]);
        let Some(HubMessage::StreamItem(item)) = MessagePackHubProtocol.parse_message(&mut buf, 1 << 16).unwrap() else {
            panic!("a stream item")
        };
        assert_eq!(item.item.deserialize::<Complex>().unwrap(), sample(), "{kind:?} via msgpack");
    }
}

#[test]
fn conversions_between_kinds() {
    let json = json!({"a": [1, -1, 1.5, null, true, "s"], "b": {"c": u64::MAX}});
    let msgpack = json_to_msgpack(&json);
    assert_eq!(msgpack_to_json(&msgpack).unwrap(), json);
    assert_eq!(Value::Json(json.clone()).to_msgpack(), msgpack);
    assert_eq!(Value::MsgPack(msgpack.clone()).to_json().unwrap(), json);
    assert_eq!(Value::Json(json.clone()).to_kind(ValueKind::MsgPack).unwrap(), Value::MsgPack(msgpack));
    let special = rmpv::Value::Map(vec![
        (rmpv::Value::from(7), rmpv::Value::Binary(vec![1, 2, 3])),
        (rmpv::Value::from("t"), rmpv::Value::Ext(-1, vec![0x38, 0x6d, 0x43, 0x80])),
        (rmpv::Value::from("f"), rmpv::Value::F32(0.5)),
    ]);
    assert_eq!(msgpack_to_json(&special).unwrap(), json!({"7": "AQID", "t": "2000-01-01T00:00:00Z", "f": 0.5}));
    for bad in [
        rmpv::Value::F64(f64::INFINITY),
        rmpv::Value::Ext(5, vec![1]),
        rmpv::Value::Ext(-1, vec![1, 2, 3]),
        rmpv::Value::Map(vec![(rmpv::Value::Nil, rmpv::Value::Nil)]),
        rmpv::decode::read_value(&mut &[0xa1_u8, 0xff][..]).unwrap(),
    ] {
        assert!(msgpack_to_json(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn serialize_gives_each_serializer_its_own_form() {
    let value =
        Value::MsgPack(rmpv::Value::Array(vec![rmpv::Value::Binary(vec![1, 2, 3]), rmpv::Value::Ext(-1, vec![0x38, 0x6d, 0x43, 0x80])]));
    assert_eq!(serde_json::to_string(&value).unwrap(), r#"["AQID","2000-01-01T00:00:00Z"]"#);
    assert_eq!(rmp_serde::to_vec(&value).unwrap(), [0x92, 0xc4, 3, 1, 2, 3, 0xd6, 0xff, 0x38, 0x6d, 0x43, 0x80]);
    assert_eq!(serde_json::to_string(&Value::Json(json!({"a": 1}))).unwrap(), r#"{"a":1}"#);
}

#[test]
fn timestamps_in_json() {
    let cases = [
        (y2k(), "2000-01-01T00:00:00Z"),
        (Utc.timestamp_opt(946_684_800, 500_000_000).unwrap(), "2000-01-01T00:00:00.5Z"),
        (Utc.timestamp_opt(946_684_800, 123_456_789).unwrap(), "2000-01-01T00:00:00.123456789Z"),
        (Utc.with_ymd_and_hms(1900, 6, 1, 12, 0, 0).unwrap(), "1900-06-01T12:00:00Z"),
    ];
    for (instant, text) in cases {
        let value = Value::from_serialize(ValueKind::Json, &Timestamp(instant)).unwrap();
        assert_eq!(value, Value::Json(json!(text)));
        assert_eq!(value.deserialize::<Timestamp>().unwrap(), Timestamp(instant));
    }
    // What .NET writes, with seven fraction digits or an offset, and without a zone.
    for (text, instant) in [
        ("2025-01-01T00:00:00.0000000Z", Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
        ("2025-01-01T02:00:00+02:00", Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
        ("2025-01-01T00:00:00.25", Utc.timestamp_opt(1_735_689_600, 250_000_000).unwrap()),
    ] {
        assert_eq!(Value::Json(json!(text)).deserialize::<Timestamp>().unwrap(), Timestamp(instant), "{text}");
    }
    assert!(Value::Json(json!("yesterday")).deserialize::<Timestamp>().is_err());
    assert!(Value::Json(json!(5)).deserialize::<Timestamp>().is_err());
}

#[test]
fn timestamps_in_msgpack_use_the_smallest_extension_form() {
    let cases = [
        (y2k(), rmpv::Value::Ext(-1, vec![0x38, 0x6d, 0x43, 0x80])),
        (
            Utc.timestamp_opt(946_684_800, 500_000_000).unwrap(),
            rmpv::Value::Ext(-1, ((500_000_000u64 << 34) | 946_684_800).to_be_bytes().to_vec()),
        ),
        (
            Utc.timestamp_opt(1 << 34, 0).unwrap(),
            rmpv::Value::Ext(-1, [0u32.to_be_bytes().to_vec(), (1i64 << 34).to_be_bytes().to_vec()].concat()),
        ),
        (
            Utc.timestamp_opt(-1, 999_999_999).unwrap(),
            rmpv::Value::Ext(-1, [999_999_999u32.to_be_bytes().to_vec(), (-1i64).to_be_bytes().to_vec()].concat()),
        ),
    ];
    for (instant, ext) in cases {
        let value = Value::from_serialize(ValueKind::MsgPack, &Timestamp(instant)).unwrap();
        assert_eq!(value, Value::MsgPack(ext.clone()), "{instant}");
        assert_eq!(value.deserialize::<Timestamp>().unwrap(), Timestamp(instant));
        // rmp_serde directly reads and writes the same extension.
        let bytes = rmp_serde::to_vec(&Timestamp(instant)).unwrap();
        let mut expected = Vec::new();
        rmpv::encode::write_value(&mut expected, &ext).unwrap();
        assert_eq!(bytes, expected);
        assert_eq!(rmp_serde::from_slice::<Timestamp>(&bytes).unwrap(), Timestamp(instant));
    }
    // The exact wire bytes of the 4-byte form: fixext4, type -1.
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::from_serialize(ValueKind::MsgPack, &Timestamp(y2k())).unwrap().to_msgpack()).unwrap();
    assert_eq!(out, [0xd6, 0xff, 0x38, 0x6d, 0x43, 0x80]);
    // A string timestamp inside MessagePack is read too.
    assert_eq!(Value::MsgPack(rmpv::Value::from("2000-01-01T00:00:00Z")).deserialize::<Timestamp>().unwrap(), Timestamp(y2k()));
    for bad in [
        rmpv::Value::Ext(-1, vec![1, 2, 3]),
        rmpv::Value::Ext(3, vec![0, 0, 0, 0]),
        rmpv::Value::Ext(-1, [0xffff_ffffu32.to_be_bytes().to_vec(), 0i64.to_be_bytes().to_vec()].concat()),
        rmpv::Value::from(5),
    ] {
        assert!(Value::MsgPack(bad.clone()).deserialize::<Timestamp>().is_err(), "{bad:?}");
    }
}

#[test]
fn binary_in_both_forms() {
    let data = Binary(vec![0, 1, 2, 250, 255]);
    let json = Value::from_serialize(ValueKind::Json, &data).unwrap();
    assert_eq!(json, Value::Json(json!("AAEC+v8=")));
    assert_eq!(json.deserialize::<Binary>().unwrap(), data);
    let msgpack = Value::from_serialize(ValueKind::MsgPack, &data).unwrap();
    assert_eq!(msgpack, Value::MsgPack(rmpv::Value::Binary(data.0.clone())));
    assert_eq!(msgpack.deserialize::<Binary>().unwrap(), data);
    assert_eq!(rmp_serde::to_vec(&data).unwrap(), [0xc4, 5, 0, 1, 2, 250, 255]);
    // Also from a base64 string in MessagePack and from an array of numbers.
    assert_eq!(Value::MsgPack(rmpv::Value::from("AAEC+v8=")).deserialize::<Binary>().unwrap(), data);
    assert_eq!(Value::Json(json!([0, 1, 2, 250, 255])).deserialize::<Binary>().unwrap(), data);
    assert!(Value::Json(json!("not base64!")).deserialize::<Binary>().is_err());
    assert!(Value::Json(json!([256])).deserialize::<Binary>().is_err());
}

#[test]
fn rmpv_own_serializer_is_human_readable_and_positional_which_is_why_it_is_not_used() {
    // rmpv::ext::to_value reports is_human_readable() == true and writes structs as arrays, so
    // Value::from_serialize goes through rmp_serde (binary, named fields) instead.
    assert_eq!(rmpv::ext::to_value(Binary(vec![1])).unwrap(), rmpv::Value::from("AQ=="));
    assert!(matches!(rmpv::ext::to_value(sample()).unwrap(), rmpv::Value::Array(_)));
    assert_eq!(Value::from_serialize(ValueKind::MsgPack, &Binary(vec![1])).unwrap(), Value::MsgPack(rmpv::Value::Binary(vec![1])));
}

#[test]
fn binding_errors_are_errors() {
    assert!(Value::Json(json!("x")).deserialize::<i32>().is_err());
    assert!(Value::MsgPack(rmpv::Value::from("x")).deserialize::<i32>().is_err());
    assert!(Value::Json(json!({"String": 1})).deserialize::<Complex>().is_err());
    assert!(Value::from_serialize(ValueKind::Json, &std::collections::HashMap::from([((1, 2), 3)])).is_err());
    assert_eq!(Value::MsgPack(rmpv::Value::from(7)).deserialize::<u8>().unwrap(), 7);
    assert_eq!(Value::Json(json!(null)).deserialize::<Option<String>>().unwrap(), None);
}
