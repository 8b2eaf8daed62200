//! The `json` hub protocol (HubProtocol.md "JSON Encoding"): one JSON object per message, each
//! followed by the record separator.
//!
//! Parsing is order-independent (the JS client writes `type` last), skips unknown properties
//! and unknown message types. Writing follows the field order of .NET's `JsonHubProtocol`,
//! compact, without escaping `'`, `<`, `>`, `&` or non-ASCII text (like System.Text.Json's
//! `UnsafeRelaxedJsonEscaping`).

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Deserializer};

use crate::framing::find_text_frame;
use crate::message::{CancelInvocationMessage, CompletionMessage, Headers, StreamItemMessage};
use crate::value::msgpack_to_json;
use crate::{
    CloseMessage, CompletionResult, HubMessage, HubProtocol, InvocationMessage, ProtocolError, RECORD_SEPARATOR, TransferFormat, Value,
};

/// The JSON hub protocol (name `json`, version 2, text).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonHubProtocol;

impl JsonHubProtocol {
    /// Parses one message from a payload without its record separator.
    ///
    /// Returns `Ok(None)` for a message of an unknown type.
    pub fn parse_payload(payload: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
        // A derived struct would also accept a JSON array (fields by position); a message is
        // an object.
        if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ProtocolError::Json("a hub message must be a JSON object".to_owned()));
        }
        let raw: RawMessage = serde_json::from_slice(payload).map_err(|e| ProtocolError::Json(e.to_string()))?;
        raw.into_message()
    }

    /// Writes `message` as one JSON object followed by the record separator.
    pub fn write(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let start = out.len();
        let result = write_object(message, out);
        if result.is_err() {
            out.truncate(start);
        } else {
            out.push(RECORD_SEPARATOR);
        }
        result
    }
}

impl HubProtocol for JsonHubProtocol {
    fn name(&self) -> &'static str {
        "json"
    }

    fn version(&self) -> u32 {
        2
    }

    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Text
    }

    fn parse_message(&self, buf: &mut BytesMut, max_message_size: usize) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            let Some(frame) = find_text_frame(buf, max_message_size)? else {
                return Ok(None);
            };
            let parsed = Self::parse_payload(&buf[frame.payload()]);
            // The frame is consumed whether it parsed or not, so one bad message never makes
            // the following ones unreadable.
            buf.advance(frame.frame_len);
            if let Some(message) = parsed? {
                return Ok(Some(message));
            }
        }
    }

    fn write_message(&self, message: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        Self::write(message, out)
    }
}

/// Every property any message may have; which ones are required is checked per type.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(rename = "type", default, deserialize_with = "present")]
    message_type: Option<serde_json::Value>,
    #[serde(rename = "invocationId", default, deserialize_with = "present")]
    invocation_id: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    target: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    arguments: Option<serde_json::Value>,
    #[serde(rename = "streamIds", default, deserialize_with = "present")]
    stream_ids: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    item: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    headers: Option<serde_json::Value>,
    #[serde(rename = "sequenceId", default, deserialize_with = "present")]
    sequence_id: Option<serde_json::Value>,
    #[serde(rename = "allowReconnect", default, deserialize_with = "present")]
    allow_reconnect: Option<serde_json::Value>,
}

/// Keeps an explicit `null` as `Some(Null)`, so that a present-but-null property (a null
/// stream item or result) differs from an absent one.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn wrong(field: &'static str, expected: &'static str) -> ProtocolError {
    ProtocolError::WrongType { field, expected }
}

fn required_string(value: Option<serde_json::Value>, field: &'static str) -> Result<String, ProtocolError> {
    match value {
        None => Err(ProtocolError::MissingField(field)),
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(wrong(field, "a string")),
    }
}

/// A string that may be absent or null.
fn optional_string(value: Option<serde_json::Value>, field: &'static str) -> Result<Option<String>, ProtocolError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(field, "a string")),
    }
}

fn required_u64(value: Option<serde_json::Value>, field: &'static str) -> Result<u64, ProtocolError> {
    match value {
        None => Err(ProtocolError::MissingField(field)),
        Some(v) => v.as_u64().ok_or(wrong(field, "a non-negative integer")),
    }
}

impl RawMessage {
    fn into_message(mut self) -> Result<Option<HubMessage>, ProtocolError> {
        let message_type = match self.message_type.take() {
            None => return Err(ProtocolError::MissingField("type")),
            Some(serde_json::Value::Number(n)) => n.as_i64().ok_or(wrong("type", "an integer"))?,
            Some(_) => return Err(wrong("type", "an integer")),
        };
        let message = match message_type {
            1 | 4 => {
                let invocation = self.into_invocation(message_type == 4)?;
                if message_type == 1 { HubMessage::Invocation(invocation) } else { HubMessage::StreamInvocation(invocation) }
            }
            2 => {
                let headers = parse_headers(self.headers)?;
                let invocation_id = required_string(self.invocation_id, "invocationId")?;
                let item = self.item.ok_or(ProtocolError::MissingField("item"))?;
                HubMessage::StreamItem(StreamItemMessage { headers, invocation_id, item: Value::Json(item) })
            }
            3 => {
                let headers = parse_headers(self.headers)?;
                let invocation_id = required_string(self.invocation_id, "invocationId")?;
                let error = optional_string(self.error, "error")?;
                let result = match (error, self.result) {
                    (Some(_), Some(_)) => return Err(ProtocolError::ResultAndError),
                    (Some(error), None) => CompletionResult::Error(error),
                    (None, Some(result)) => CompletionResult::Result(Value::Json(result)),
                    (None, None) => CompletionResult::Void,
                };
                HubMessage::Completion(CompletionMessage { headers, invocation_id, result })
            }
            5 => HubMessage::CancelInvocation(CancelInvocationMessage {
                headers: parse_headers(self.headers)?,
                invocation_id: required_string(self.invocation_id, "invocationId")?,
            }),
            6 => HubMessage::Ping,
            7 => {
                let error = optional_string(self.error, "error")?;
                let allow_reconnect = match self.allow_reconnect {
                    None | Some(serde_json::Value::Null) => false,
                    Some(serde_json::Value::Bool(b)) => b,
                    Some(_) => return Err(wrong("allowReconnect", "a boolean")),
                };
                HubMessage::Close(CloseMessage { error, allow_reconnect })
            }
            8 => HubMessage::Ack { sequence_id: required_u64(self.sequence_id, "sequenceId")? },
            9 => HubMessage::Sequence { sequence_id: required_u64(self.sequence_id, "sequenceId")? },
            _ => return Ok(None),
        };
        Ok(Some(message))
    }

    fn into_invocation(self, streaming: bool) -> Result<InvocationMessage, ProtocolError> {
        let headers = parse_headers(self.headers)?;
        // .NET treats an empty id like an absent one: a non-blocking invocation.
        let invocation_id = optional_string(self.invocation_id, "invocationId")?.filter(|id| !id.is_empty());
        if streaming && invocation_id.is_none() {
            return Err(ProtocolError::MissingField("invocationId"));
        }
        let target = required_string(self.target, "target")?;
        let arguments = match self.arguments {
            None => return Err(ProtocolError::MissingField("arguments")),
            Some(serde_json::Value::Array(items)) => items.into_iter().map(Value::Json).collect(),
            Some(_) => return Err(wrong("arguments", "an array")),
        };
        let stream_ids = match self.stream_ids {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(wrong("streamIds", "an array of strings")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(wrong("streamIds", "an array of strings")),
        };
        Ok(InvocationMessage { headers, invocation_id, target, arguments, stream_ids })
    }
}

fn parse_headers(value: Option<serde_json::Value>) -> Result<Headers, ProtocolError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Headers::new()),
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(s) => Ok((key, s)),
                _ => Err(wrong("headers", "an object of strings")),
            })
            .collect(),
        Some(_) => Err(wrong("headers", "an object of strings")),
    }
}

fn write_str(text: &str, out: &mut Vec<u8>) {
    // serde_json escapes only what JSON requires ('"', '\\', control characters), which is
    // what System.Text.Json's relaxed escaping writes for the characters that matter.
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match value {
        Value::Json(json) => serde_json::to_writer(&mut *out, json),
        Value::MsgPack(msgpack) => serde_json::to_writer(&mut *out, &msgpack_to_json(msgpack)?),
    }
    .map_err(|e| ProtocolError::Json(e.to_string()))
}

fn write_headers(headers: &Headers, out: &mut Vec<u8>) {
    if headers.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"headers\":{");
    for (index, (key, value)) in headers.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_str(value, out);
    }
    out.push(b'}');
}

fn write_invocation_id(id: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"invocationId\":");
    write_str(id, out);
}

fn write_object(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match message {
        HubMessage::Invocation(invocation) => write_invocation(b'1', invocation, out)?,
        HubMessage::StreamInvocation(invocation) => write_invocation(b'4', invocation, out)?,
        HubMessage::StreamItem(item) => {
            out.extend_from_slice(b"{\"type\":2");
            write_headers(&item.headers, out);
            write_invocation_id(&item.invocation_id, out);
            out.extend_from_slice(b",\"item\":");
            write_value(&item.item, out)?;
            out.push(b'}');
        }
        HubMessage::Completion(completion) => {
            out.extend_from_slice(b"{\"type\":3");
            write_headers(&completion.headers, out);
            write_invocation_id(&completion.invocation_id, out);
            match &completion.result {
                CompletionResult::Error(error) if !error.is_empty() => {
                    out.extend_from_slice(b",\"error\":");
                    write_str(error, out);
                }
                CompletionResult::Result(value) => {
                    out.extend_from_slice(b",\"result\":");
                    write_value(value, out)?;
                }
                CompletionResult::Error(_) | CompletionResult::Void => {}
            }
            out.push(b'}');
        }
        HubMessage::CancelInvocation(cancel) => {
            out.extend_from_slice(b"{\"type\":5");
            write_headers(&cancel.headers, out);
            write_invocation_id(&cancel.invocation_id, out);
            out.push(b'}');
        }
        HubMessage::Ping => out.extend_from_slice(b"{\"type\":6}"),
        HubMessage::Close(close) => {
            out.extend_from_slice(b"{\"type\":7");
            if let Some(error) = &close.error {
                out.extend_from_slice(b",\"error\":");
                write_str(error, out);
            }
            if close.allow_reconnect {
                out.extend_from_slice(b",\"allowReconnect\":true");
            }
            out.push(b'}');
        }
        HubMessage::Ack { sequence_id } | HubMessage::Sequence { sequence_id } => {
            let type_digit = if matches!(message, HubMessage::Ack { .. }) { b'8' } else { b'9' };
            out.extend_from_slice(b"{\"type\":");
            out.push(type_digit);
            out.extend_from_slice(b",\"sequenceId\":");
            // Writing a number into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, sequence_id);
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_invocation(type_digit: u8, invocation: &InvocationMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    out.extend_from_slice(b"{\"type\":");
    out.push(type_digit);
    write_headers(&invocation.headers, out);
    if let Some(id) = invocation.invocation_id.as_deref().filter(|id| !id.is_empty()) {
        write_invocation_id(id, out);
    }
    out.extend_from_slice(b",\"target\":");
    write_str(&invocation.target, out);
    out.extend_from_slice(b",\"arguments\":[");
    for (index, argument) in invocation.arguments.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_value(argument, out)?;
    }
    out.push(b']');
    if !invocation.stream_ids.is_empty() {
        out.extend_from_slice(b",\"streamIds\":[");
        for (index, id) in invocation.stream_ids.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_str(id, out);
        }
        out.push(b']');
    }
    out.push(b'}');
    Ok(())
}
