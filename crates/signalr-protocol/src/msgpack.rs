//! The `messagepack` hub protocol (HubProtocol.md "MessagePack (MsgPack) encoding"): each
//! message is a varint length prefix followed by a MessagePack array.
//!
//! Reading accepts every integer, string and container width, checks minimum array lengths
//! and ignores extra trailing items; writing uses the layouts .NET writes (Invocation with six
//! items, Close with three, Ping exactly `91 06`).

use bytes::{Buf, BytesMut};
use rmp::Marker;

use crate::framing::{find_binary_frame, write_binary_frame};
use crate::message::{CancelInvocationMessage, CompletionMessage, Headers, StreamItemMessage};
use crate::value::{decode_msgpack_value, write_json_as_msgpack, write_msgpack_value};
use crate::{CloseMessage, CompletionResult, HubMessage, HubProtocol, InvocationMessage, ProtocolError, TransferFormat, Value};

/// Completion result kind: an error string follows.
const RESULT_KIND_ERROR: u64 = 1;
/// Completion result kind: no result (ends a stream).
const RESULT_KIND_VOID: u64 = 2;
/// Completion result kind: a result value follows.
const RESULT_KIND_NON_VOID: u64 = 3;

/// The MessagePack hub protocol (name `messagepack`, version 2, binary).
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePackHubProtocol;

impl MessagePackHubProtocol {
    /// Parses one message from a body without its length prefix.
    ///
    /// Returns `Ok(None)` for a message of an unknown type.
    pub fn parse_body(body: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
        let mut reader = Reader { input: body };
        reader.message()
    }

    /// Writes `message` as a length-prefixed MessagePack array.
    pub fn write(message: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        write_binary_frame(out, |out| {
            write_body(message, out);
            Ok(())
        })
    }
}

impl HubProtocol for MessagePackHubProtocol {
    fn name(&self) -> &'static str {
        "messagepack"
    }

    fn version(&self) -> u32 {
        2
    }

    fn transfer_format(&self) -> TransferFormat {
        TransferFormat::Binary
    }

    fn parse_message(&self, buf: &mut BytesMut, max_message_size: usize) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            let Some(frame) = find_binary_frame(buf, max_message_size)? else {
                return Ok(None);
            };
            let parsed = Self::parse_body(&buf[frame.payload()]);
            // Consume the frame either way: its length is known, so the next one stays readable.
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

fn invalid(what: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::MessagePack(what.to_string())
}

/// A cursor over one message body.
struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    fn message(&mut self) -> Result<Option<HubMessage>, ProtocolError> {
        let item_count = self.array_len("message")?;
        if item_count == 0 {
            return Err(invalid("a message is an array of at least one item"));
        }
        let message_type = self.uint("message type")?;
        let need = |minimum: usize, name: &str| {
            if item_count < minimum {
                Err(invalid(format!("Invalid payload for {name} message: expected at least {minimum} items, got {item_count}")))
            } else {
                Ok(())
            }
        };
        let message = match message_type {
            1 | 4 => {
                let name = if message_type == 1 { "Invocation" } else { "StreamInvocation" };
                need(5, name)?;
                let headers = self.headers()?;
                let invocation_id = self.optional_string("invocationId")?.filter(|id| !id.is_empty());
                if message_type == 4 && invocation_id.is_none() {
                    return Err(ProtocolError::MissingField("invocationId"));
                }
                let target = self.string("target")?;
                let argument_count = self.array_len("arguments")?;
                let mut arguments = Vec::with_capacity(argument_count.min(64));
                for _ in 0..argument_count {
                    arguments.push(Value::MsgPack(self.value()?));
                }
                let stream_ids = if item_count > 5 { self.string_array("streamIds")? } else { Vec::new() };
                let invocation = InvocationMessage { headers, invocation_id, target, arguments, stream_ids };
                if message_type == 1 { HubMessage::Invocation(invocation) } else { HubMessage::StreamInvocation(invocation) }
            }
            2 => {
                need(4, "StreamItem")?;
                HubMessage::StreamItem(StreamItemMessage {
                    headers: self.headers()?,
                    invocation_id: self.string("invocationId")?,
                    item: Value::MsgPack(self.value()?),
                })
            }
            3 => {
                need(4, "Completion")?;
                let headers = self.headers()?;
                let invocation_id = self.string("invocationId")?;
                let result = match self.uint("result kind")? {
                    RESULT_KIND_ERROR => {
                        need(5, "Completion")?;
                        CompletionResult::Error(self.string("error")?)
                    }
                    RESULT_KIND_VOID => CompletionResult::Void,
                    RESULT_KIND_NON_VOID => {
                        need(5, "Completion")?;
                        CompletionResult::Result(Value::MsgPack(self.value()?))
                    }
                    other => {
                        return Err(invalid(format!("Invalid invocation result kind {other}.")));
                    }
                };
                HubMessage::Completion(CompletionMessage { headers, invocation_id, result })
            }
            5 => {
                need(3, "CancelInvocation")?;
                HubMessage::CancelInvocation(CancelInvocationMessage {
                    headers: self.headers()?,
                    invocation_id: self.string("invocationId")?,
                })
            }
            6 => HubMessage::Ping,
            7 => {
                need(2, "Close")?;
                let error = self.optional_string("error")?;
                let allow_reconnect = if item_count > 2 { self.bool("allowReconnect")? } else { false };
                HubMessage::Close(CloseMessage { error, allow_reconnect })
            }
            8 | 9 => {
                need(2, if message_type == 8 { "Ack" } else { "Sequence" })?;
                let sequence_id = self.uint("sequenceId")?;
                if message_type == 8 { HubMessage::Ack { sequence_id } } else { HubMessage::Sequence { sequence_id } }
            }
            _ => return Ok(None),
        };
        Ok(Some(message))
    }

    fn peek_marker(&self) -> Option<Marker> {
        self.input.first().map(|&byte| Marker::from_u8(byte))
    }

    fn array_len(&mut self, field: &'static str) -> Result<usize, ProtocolError> {
        let len = rmp::decode::read_array_len(&mut self.input).map_err(|_| ProtocolError::WrongType { field, expected: "an array" })?;
        Ok(len as usize)
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        rmp::decode::read_int::<u64, _>(&mut self.input).map_err(|_| ProtocolError::WrongType { field, expected: "a non-negative integer" })
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, ProtocolError> {
        rmp::decode::read_bool(&mut self.input).map_err(|_| ProtocolError::WrongType { field, expected: "a boolean" })
    }

    fn string(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let len =
            rmp::decode::read_str_len(&mut self.input).map_err(|_| ProtocolError::WrongType { field, expected: "a string" })? as usize;
        if self.input.len() < len {
            return Err(invalid(format!("'{field}' is truncated")));
        }
        let (bytes, rest) = self.input.split_at(len);
        self.input = rest;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| ProtocolError::WrongType { field, expected: "a UTF-8 string" })
    }

    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, ProtocolError> {
        if self.peek_marker() == Some(Marker::Null) {
            self.input = &self.input[1..];
            return Ok(None);
        }
        self.string(field).map(Some)
    }

    fn string_array(&mut self, field: &'static str) -> Result<Vec<String>, ProtocolError> {
        let len = self.array_len(field)?;
        let mut items = Vec::with_capacity(len.min(64));
        for _ in 0..len {
            items.push(self.string(field)?);
        }
        Ok(items)
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        let len =
            rmp::decode::read_map_len(&mut self.input).map_err(|_| ProtocolError::WrongType { field: "headers", expected: "a map" })?;
        let mut headers = Headers::new();
        for _ in 0..len {
            let key = self.string("headers")?;
            let value = self.string("headers")?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    fn value(&mut self) -> Result<rmpv::Value, ProtocolError> {
        decode_msgpack_value(&mut self.input)
    }
}

// Writing into a Vec cannot fail, hence the ignored results of the rmp writers below.

fn write_headers(headers: &Headers, out: &mut Vec<u8>) {
    let _ = rmp::encode::write_map_len(out, headers.len() as u32);
    for (key, value) in headers {
        let _ = rmp::encode::write_str(out, key);
        let _ = rmp::encode::write_str(out, value);
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::MsgPack(value) => write_msgpack_value(value, out),
        Value::Json(value) => write_json_as_msgpack(value, out),
    }
}

fn write_body(message: &HubMessage, out: &mut Vec<u8>) {
    match message {
        HubMessage::Invocation(invocation) => write_invocation(1, invocation, out),
        HubMessage::StreamInvocation(invocation) => write_invocation(4, invocation, out),
        HubMessage::StreamItem(item) => {
            let _ = rmp::encode::write_array_len(out, 4);
            let _ = rmp::encode::write_uint(out, 2);
            write_headers(&item.headers, out);
            let _ = rmp::encode::write_str(out, &item.invocation_id);
            write_value(&item.item, out);
        }
        HubMessage::Completion(completion) => {
            let (len, kind) = match &completion.result {
                CompletionResult::Error(_) => (5, RESULT_KIND_ERROR),
                CompletionResult::Void => (4, RESULT_KIND_VOID),
                CompletionResult::Result(_) => (5, RESULT_KIND_NON_VOID),
            };
            let _ = rmp::encode::write_array_len(out, len);
            let _ = rmp::encode::write_uint(out, 3);
            write_headers(&completion.headers, out);
            let _ = rmp::encode::write_str(out, &completion.invocation_id);
            let _ = rmp::encode::write_uint(out, kind);
            match &completion.result {
                CompletionResult::Error(error) => {
                    let _ = rmp::encode::write_str(out, error);
                }
                CompletionResult::Result(value) => write_value(value, out),
                CompletionResult::Void => {}
            }
        }
        HubMessage::CancelInvocation(cancel) => {
            let _ = rmp::encode::write_array_len(out, 3);
            let _ = rmp::encode::write_uint(out, 5);
            write_headers(&cancel.headers, out);
            let _ = rmp::encode::write_str(out, &cancel.invocation_id);
        }
        HubMessage::Ping => out.extend_from_slice(&[0x91, 0x06]),
        HubMessage::Close(close) => {
            let _ = rmp::encode::write_array_len(out, 3);
            let _ = rmp::encode::write_uint(out, 7);
            match &close.error {
                Some(error) => {
                    let _ = rmp::encode::write_str(out, error);
                }
                None => {
                    let _ = rmp::encode::write_nil(out);
                }
            }
            let _ = rmp::encode::write_bool(out, close.allow_reconnect);
        }
        HubMessage::Ack { sequence_id } | HubMessage::Sequence { sequence_id } => {
            let kind = if matches!(message, HubMessage::Ack { .. }) { 8 } else { 9 };
            let _ = rmp::encode::write_array_len(out, 2);
            let _ = rmp::encode::write_uint(out, kind);
            let _ = rmp::encode::write_uint(out, *sequence_id);
        }
    }
}

fn write_invocation(message_type: u64, invocation: &InvocationMessage, out: &mut Vec<u8>) {
    let _ = rmp::encode::write_array_len(out, 6);
    let _ = rmp::encode::write_uint(out, message_type);
    write_headers(&invocation.headers, out);
    match invocation.invocation_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => {
            let _ = rmp::encode::write_str(out, id);
        }
        None => {
            let _ = rmp::encode::write_nil(out);
        }
    }
    let _ = rmp::encode::write_str(out, &invocation.target);
    let _ = rmp::encode::write_array_len(out, invocation.arguments.len() as u32);
    for argument in &invocation.arguments {
        write_value(argument, out);
    }
    let _ = rmp::encode::write_array_len(out, invocation.stream_ids.len() as u32);
    for id in &invocation.stream_ids {
        let _ = rmp::encode::write_str(out, id);
    }
}
