//! Helpers shared by the fuzz targets: structured inputs built with `arbitrary` (JSON values,
//! hub messages, WebSocket client frames) and the checks several targets make.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::BytesMut;
use signalr_protocol::{
    CancelInvocationMessage, CloseMessage, CompletionMessage, CompletionResult, HubMessage, HubProtocol, InvocationMessage,
    JsonHubProtocol, MessagePackHubProtocol, StreamItemMessage, Value,
};

/// The message size limit the targets parse with (the server's default is 32 KiB; larger here so
/// that big structured messages still parse).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Deepest nesting of generated JSON values.
const MAX_DEPTH: usize = 6;

/// A JSON value drawn from the fuzzer's bytes (finite numbers only, as JSON has no others).
pub fn json_value(u: &mut Unstructured<'_>, depth: usize) -> Result<serde_json::Value> {
    let choice = if depth >= MAX_DEPTH { u.int_in_range(0..=5)? } else { u.int_in_range(0..=7)? };
    Ok(match choice {
        0 => serde_json::Value::Null,
        1 => serde_json::Value::Bool(u.arbitrary()?),
        2 => serde_json::Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Value::from(u.arbitrary::<u64>()?),
        4 => {
            let f: f64 = u.arbitrary()?;
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        5 => serde_json::Value::String(u.arbitrary()?),
        6 => {
            let len = u.int_in_range(0..=4)?;
            serde_json::Value::Array((0..len).map(|_| json_value(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => {
            let len = u.int_in_range(0..=4)?;
            let mut map = serde_json::Map::new();
            for _ in 0..len {
                map.insert(u.arbitrary()?, json_value(u, depth + 1)?);
            }
            serde_json::Value::Object(map)
        }
    })
}

/// A hub message whose values are JSON (convert them with [`to_msgpack`] for the other protocol).
///
/// Only messages both protocols carry alike are drawn: an invocation id is absent or not empty
/// (both protocols read an empty one as absent, as .NET does).
pub fn hub_message(u: &mut Unstructured<'_>) -> Result<HubMessage> {
    let headers = |u: &mut Unstructured<'_>| -> Result<BTreeMap<String, String>> {
        let len = u.int_in_range(0..=3)?;
        (0..len).map(|_| Ok((u.arbitrary()?, u.arbitrary()?))).collect()
    };
    let values = |u: &mut Unstructured<'_>| -> Result<Vec<Value>> {
        let len = u.int_in_range(0..=4)?;
        (0..len).map(|_| Ok(Value::Json(json_value(u, 0)?))).collect()
    };
    Ok(match u.int_in_range(0..=8)? {
        0 | 3 => {
            // .NET reads an empty invocation id as none (a non-blocking call), so none is drawn.
            let invocation_id: Option<String> = u.arbitrary()?;
            let invocation = InvocationMessage {
                headers: headers(u)?,
                invocation_id: invocation_id.filter(|id| !id.is_empty()),
                target: u.arbitrary()?,
                arguments: values(u)?,
                stream_ids: u.arbitrary()?,
            };
            if u.arbitrary()? {
                HubMessage::Invocation(invocation)
            } else {
                // A stream invocation always has an id.
                HubMessage::StreamInvocation(InvocationMessage {
                    invocation_id: Some(invocation.invocation_id.unwrap_or_else(|| "1".to_owned())),
                    ..invocation
                })
            }
        }
        1 => HubMessage::StreamItem(StreamItemMessage {
            headers: headers(u)?,
            invocation_id: u.arbitrary()?,
            item: Value::Json(json_value(u, 0)?),
        }),
        2 => HubMessage::Completion(CompletionMessage {
            headers: headers(u)?,
            invocation_id: u.arbitrary()?,
            result: match u.int_in_range(0..=2)? {
                0 => CompletionResult::Void,
                1 => CompletionResult::Result(Value::Json(json_value(u, 0)?)),
                _ => CompletionResult::Error(u.arbitrary()?),
            },
        }),
        4 => HubMessage::CancelInvocation(CancelInvocationMessage { headers: headers(u)?, invocation_id: u.arbitrary()? }),
        5 => HubMessage::Ping,
        6 => HubMessage::Close(CloseMessage { error: u.arbitrary()?, allow_reconnect: u.arbitrary()? }),
        7 => HubMessage::Ack { sequence_id: u.arbitrary()? },
        _ => HubMessage::Sequence { sequence_id: u.arbitrary()? },
    })
}

/// Applies `f` to every payload value of `message`.
pub fn map_values(message: &HubMessage, f: &dyn Fn(&Value) -> Value) -> HubMessage {
    let mut message = message.clone();
    match &mut message {
        HubMessage::Invocation(m) | HubMessage::StreamInvocation(m) => {
            for argument in &mut m.arguments {
                *argument = f(argument);
            }
        }
        HubMessage::StreamItem(m) => m.item = f(&m.item),
        HubMessage::Completion(CompletionMessage { result: CompletionResult::Result(value), .. }) => *value = f(value),
        _ => {}
    }
    message
}

/// `message` with every value converted to MessagePack.
pub fn to_msgpack(message: &HubMessage) -> HubMessage {
    map_values(message, &|value| Value::MsgPack(value.to_msgpack()))
}

/// `message` with every value converted to JSON; `None` when a value has no JSON form.
pub fn to_json(message: &HubMessage) -> Option<HubMessage> {
    let failed = std::cell::Cell::new(false);
    let converted = map_values(message, &|value| match value.to_json() {
        Ok(json) => Value::Json(json),
        Err(_) => {
            failed.set(true);
            Value::Json(serde_json::Value::Null)
        }
    });
    (!failed.get()).then_some(converted)
}

/// Parses every message of `input` with `protocol`, the way a connection reads its inbound
/// buffer: in reads of the given sizes, stopping at the first error (the connection closes).
/// Every parsed message is written again and must parse back to itself.
pub fn parse_stream(protocol: &dyn HubProtocol, input: &[u8], read_size: usize, max_message: usize) -> Vec<HubMessage> {
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for chunk in input.chunks(read_size.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match protocol.parse_message(&mut buf, max_message) {
                Ok(Some(message)) => {
                    check_rewrite(protocol, &message);
                    messages.push(message);
                }
                Ok(None) => break,
                Err(_) => return messages,
            }
        }
    }
    messages
}

/// Writes `message` with `protocol` and parses it back: the same message, every byte used.
pub fn check_rewrite(protocol: &dyn HubProtocol, message: &HubMessage) {
    let mut out = Vec::new();
    if protocol.write_message(message, &mut out).is_err() {
        // Only values of the other protocol without a form in this one fail to write.
        return;
    }
    let mut buf = BytesMut::from(&out[..]);
    let parsed = protocol.parse_message(&mut buf, usize::MAX).expect("a written message parses").expect("a written message is whole");
    assert!(buf.is_empty(), "{} left bytes after one written message", protocol.name());
    assert_messages_eq(&carried_by(protocol, message), &parsed);
}

/// `message` as `protocol` carries it: the JSON protocol writes no empty completion error (as
/// .NET's `JsonHubProtocol` writes none), so such a completion reads back as one without result.
pub fn carried_by(protocol: &dyn HubProtocol, message: &HubMessage) -> HubMessage {
    match message {
        HubMessage::Completion(completion) if protocol.name() == "json" && completion.result == CompletionResult::Error(String::new()) => {
            HubMessage::Completion(CompletionMessage { result: CompletionResult::Void, ..completion.clone() })
        }
        other => other.clone(),
    }
}

/// Compares two messages, floats by bits (NaN equals NaN) since MessagePack carries NaN.
pub fn assert_messages_eq(expected: &HubMessage, actual: &HubMessage) {
    if expected != actual {
        // rmpv compares floats with `==`: a NaN payload is never equal to itself.
        let a = format!("{expected:?}");
        let b = format!("{actual:?}");
        assert_eq!(a, b, "the message changed on a round trip");
    }
}

/// Both hub protocols.
pub fn protocols() -> [&'static dyn HubProtocol; 2] {
    [&JsonHubProtocol, &MessagePackHubProtocol]
}

/// One WebSocket frame as a client sends it.
#[derive(Debug, Arbitrary)]
pub struct ClientFrame {
    /// FIN bit.
    pub fin: bool,
    /// The opcode (low 4 bits used).
    pub opcode: u8,
    /// The masking key.
    pub mask: [u8; 4],
    /// Which length form to use when more than one fits (0: shortest, 1: 16-bit, 2: 64-bit).
    pub length_form: u8,
    /// The payload, before masking.
    pub payload: Vec<u8>,
}

impl ClientFrame {
    /// Appends the frame, masked, to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(if self.fin { 0x80 } else { 0 } | (self.opcode & 0x0f));
        let len = self.payload.len();
        match self.length_form % 3 {
            0 if len < 126 => out.push(0x80 | len as u8),
            0 | 1 if len <= usize::from(u16::MAX) => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&self.mask);
        out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ self.mask[i % 4]));
    }
}
