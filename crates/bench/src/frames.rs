//! The few SignalR frames the bench writes and reads, in both hub protocols, through the
//! `signalr-protocol` codecs.
//!
//! The bench needs handshake, invocation and ping frames out, and needs to recognise
//! completions, pings and closes coming back. Deliveries are recognised by their payload tag
//! (see [`crate::payload`]) without decoding, so the load generator stays cheap next to the
//! server it measures; everything else goes through [`Protocol::decode`], off the hot path.

use signalr_protocol::framing::{find_binary_frame, find_text_frame};
use signalr_protocol::{
    CompletionResult, HandshakeRequest, HandshakeResponse, Headers, HubMessage, InvocationMessage, JsonHubProtocol, MessagePackHubProtocol,
    ProtocolError, Value,
};
use thiserror::Error;

/// The largest frame the bench accepts from a server.
pub const MAX_FRAME: usize = 16 << 20;

/// A hub protocol the bench can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `json`, carried in WebSocket Text messages.
    Json,
    /// `messagepack`, carried in WebSocket Binary messages.
    #[value(name = "messagepack", alias = "msgpack")]
    MessagePack,
}

/// A frame that could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The codec refused the bytes.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server refused the handshake.
    #[error("the server refused the handshake: {0}")]
    Handshake(String),
}

/// A non-delivery frame the bench cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Type 1 invocation of some target (deliveries normally carry a tag and never get here).
    Invocation {
        /// The client method the server invoked.
        target: String,
    },
    /// Type 3: an invocation ended; `error` is set when it failed.
    Completion {
        /// The id the bench gave the invocation.
        invocation_id: String,
        /// The server's error text, if any.
        error: Option<String>,
    },
    /// Type 6.
    Ping,
    /// Type 7: the server is closing the connection.
    Close {
        /// Why, if it says.
        error: Option<String>,
    },
    /// Any other message (stream items, acks, unknown types), ignored by the bench.
    Other,
}

impl Protocol {
    /// The name sent in the handshake.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::MessagePack => "messagepack",
        }
    }

    /// Whether frames travel as WebSocket Binary messages.
    pub fn is_binary(self) -> bool {
        self == Protocol::MessagePack
    }

    /// The handshake request, `{"protocol":"…","version":1}` and the record separator.
    pub fn handshake_request(self) -> Vec<u8> {
        let mut out = Vec::new();
        HandshakeRequest { protocol: self.name().to_owned(), version: 1 }.write(&mut out);
        out
    }

    fn string(self, text: &str) -> Value {
        match self {
            Protocol::Json => Value::Json(serde_json::Value::String(text.to_owned())),
            Protocol::MessagePack => Value::MsgPack(rmpv::Value::String(text.into())),
        }
    }

    fn write(self, message: &HubMessage, out: &mut Vec<u8>) {
        let written = match self {
            Protocol::Json => JsonHubProtocol::write(message, out),
            Protocol::MessagePack => MessagePackHubProtocol::write(message, out),
        };
        // Invocations of string arguments and pings always encode.
        debug_assert!(written.is_ok(), "{written:?}");
    }

    /// Appends one framed invocation of `target` with string arguments. A `None` id makes it
    /// a fire-and-forget send with no completion.
    pub fn write_invocation(self, out: &mut Vec<u8>, invocation_id: Option<&str>, target: &str, arguments: &[&str]) {
        let message = HubMessage::Invocation(InvocationMessage {
            headers: Headers::new(),
            invocation_id: invocation_id.map(str::to_owned),
            target: target.to_owned(),
            arguments: arguments.iter().map(|argument| self.string(argument)).collect(),
            stream_ids: Vec::new(),
        });
        self.write(&message, out);
    }

    /// Appends a framed ping (type 6).
    pub fn write_ping(self, out: &mut Vec<u8>) {
        self.write(&HubMessage::Ping, out);
    }

    /// Splits the complete frames off the front of `buf`, calling `each` with every frame's
    /// body (without separator or length prefix). Returns how many bytes were consumed; the
    /// rest is an incomplete frame to keep for the next read.
    pub fn split_frames(self, buf: &[u8], mut each: impl FnMut(&[u8])) -> Result<usize, FrameError> {
        let mut consumed = 0;
        loop {
            let rest = &buf[consumed..];
            let frame = match self {
                Protocol::Json => find_text_frame(rest, MAX_FRAME)?,
                Protocol::MessagePack => find_binary_frame(rest, MAX_FRAME)?,
            };
            let Some(frame) = frame else {
                return Ok(consumed);
            };
            each(&rest[frame.payload()]);
            consumed += frame.frame_len;
        }
    }

    /// Decodes a frame body that carries no bench payload.
    pub fn decode(self, body: &[u8]) -> Result<Incoming, FrameError> {
        let message = match self {
            Protocol::Json => JsonHubProtocol::parse_payload(body)?,
            Protocol::MessagePack => MessagePackHubProtocol::parse_body(body)?,
        };
        Ok(match message {
            Some(HubMessage::Invocation(invocation)) => Incoming::Invocation { target: invocation.target },
            Some(HubMessage::Completion(completion)) => Incoming::Completion {
                invocation_id: completion.invocation_id,
                error: match completion.result {
                    CompletionResult::Error(error) => Some(error),
                    _ => None,
                },
            },
            Some(HubMessage::Ping) => Incoming::Ping,
            Some(HubMessage::Close(close)) => Incoming::Close { error: close.error },
            _ => Incoming::Other,
        })
    }
}

/// Reads the handshake response at the front of `buf`: `Ok(Some(consumed))` on success,
/// `Ok(None)` while the separator has not arrived, an error for an error response.
pub fn read_handshake_response(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(frame) = find_text_frame(buf, MAX_FRAME)? else {
        return Ok(None);
    };
    let response = HandshakeResponse::parse_payload(&buf[frame.payload()])?;
    match response.error {
        None => Ok(Some(frame.frame_len)),
        Some(error) => Err(FrameError::Handshake(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(protocol: Protocol, buf: &[u8]) -> (Vec<Vec<u8>>, usize) {
        let mut out = Vec::new();
        let consumed = protocol.split_frames(buf, |f| out.push(f.to_vec())).unwrap();
        (out, consumed)
    }

    #[test]
    fn json_invocation_has_the_documented_shape() {
        let mut out = Vec::new();
        Protocol::Json.write_invocation(&mut out, Some("7"), "SendToGroup", &["g1", "hi \"x\""]);
        assert_eq!(out, b"{\"type\":1,\"invocationId\":\"7\",\"target\":\"SendToGroup\",\"arguments\":[\"g1\",\"hi \\\"x\\\"\"]}\x1e");
        let mut fire = Vec::new();
        Protocol::Json.write_invocation(&mut fire, None, "Echo", &[]);
        assert_eq!(fire, b"{\"type\":1,\"target\":\"Echo\",\"arguments\":[]}\x1e");
    }

    #[test]
    fn messagepack_invocation_matches_the_spec_bytes() {
        // HubProtocol.md: Invocation "xyz" of "method" with argument 42 … here a string "a".
        let mut out = Vec::new();
        Protocol::MessagePack.write_invocation(&mut out, Some("xyz"), "method", &["a"]);
        let body: &[u8] = &[0x96, 0x01, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0x91, 0xa1, b'a', 0x90];
        assert_eq!(out[0] as usize, body.len());
        assert_eq!(&out[1..], body);
        let mut fire = Vec::new();
        Protocol::MessagePack.write_invocation(&mut fire, None, "m", &[]);
        assert_eq!(fire, [0x08, 0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x90, 0x90]);
    }

    #[test]
    fn json_split_keeps_an_incomplete_tail() {
        let (found, consumed) = frames(Protocol::Json, b"{\"type\":6}\x1e{\"type\":6}\x1e{\"ty");
        assert_eq!(found, vec![b"{\"type\":6}".to_vec(), b"{\"type\":6}".to_vec()]);
        assert_eq!(consumed, 22);
    }

    #[test]
    fn messagepack_split_handles_long_prefixes_and_partial_frames() {
        let mut buf = Vec::new();
        let mut ping = Vec::new();
        Protocol::MessagePack.write_ping(&mut ping);
        buf.extend_from_slice(&ping);
        let long = "y".repeat(300);
        Protocol::MessagePack.write_invocation(&mut buf, None, "Message", &[&long]);
        assert!(buf[3] & 0x80 != 0, "a 300-byte body needs a two-byte prefix");
        let whole = buf.len();
        buf.extend_from_slice(&[0x05, 0x91]);
        let (found, consumed) = frames(Protocol::MessagePack, &buf);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0], vec![0x91, 0x06]);
        assert_eq!(consumed, whole);
    }

    #[test]
    fn messagepack_rejects_an_overlong_prefix() {
        let result = Protocol::MessagePack.split_frames(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], |_| {});
        assert!(matches!(result, Err(FrameError::Protocol(ProtocolError::LengthPrefixTooLarge))), "{result:?}");
    }

    #[test]
    fn decodes_completions_pings_and_closes_in_both_protocols() {
        assert_eq!(
            Protocol::Json.decode(br#"{"type":3,"invocationId":"4","error":"boom"}"#).unwrap(),
            Incoming::Completion { invocation_id: "4".into(), error: Some("boom".into()) }
        );
        assert_eq!(
            Protocol::Json.decode(br#"{"type":3,"invocationId":"5","result":null}"#).unwrap(),
            Incoming::Completion { invocation_id: "5".into(), error: None }
        );
        assert_eq!(Protocol::Json.decode(br#"{"type":6}"#).unwrap(), Incoming::Ping);
        assert_eq!(Protocol::Json.decode(br#"{"type":7,"error":"bye"}"#).unwrap(), Incoming::Close { error: Some("bye".into()) });
        // [3, {}, "4", 1, "boom"] and [3, {}, "5", 2]
        let error = [0x95, 0x03, 0x80, 0xa1, b'4', 0x01, 0xa4, b'b', b'o', b'o', b'm'];
        assert_eq!(
            Protocol::MessagePack.decode(&error).unwrap(),
            Incoming::Completion { invocation_id: "4".into(), error: Some("boom".into()) }
        );
        let void = [0x94, 0x03, 0x80, 0xa1, b'5', 0x02];
        assert_eq!(Protocol::MessagePack.decode(&void).unwrap(), Incoming::Completion { invocation_id: "5".into(), error: None });
        assert_eq!(Protocol::MessagePack.decode(&[0x91, 0x06]).unwrap(), Incoming::Ping);
        assert_eq!(Protocol::MessagePack.decode(&[0x93, 0x07, 0xc0, 0xc2]).unwrap(), Incoming::Close { error: None });
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(matches!(Protocol::Json.decode(b"{nope"), Err(FrameError::Protocol(_))));
        assert!(matches!(Protocol::Json.decode(b"{\"type\":\"x\"}"), Err(FrameError::Protocol(_))));
        assert!(matches!(Protocol::MessagePack.decode(&[0x95, 0x03]), Err(FrameError::Protocol(_))));
        assert!(matches!(Protocol::MessagePack.decode(&[0xa1, b'x']), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn handshake_response_success_error_and_partial() {
        assert_eq!(read_handshake_response(b"{}\x1e{\"type\":6}\x1e").unwrap(), Some(3));
        assert_eq!(read_handshake_response(b"{}").unwrap(), None);
        assert!(matches!(read_handshake_response(b"{\"error\":\"no\"}\x1e"), Err(FrameError::Handshake(_))));
        assert!(matches!(read_handshake_response(b"junk\x1e"), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn handshake_request_names_the_protocol() {
        assert_eq!(Protocol::MessagePack.handshake_request(), b"{\"protocol\":\"messagepack\",\"version\":1}\x1e");
    }
}
