//! The handshake (HubProtocol.md "Handshake"): always JSON, terminated by the record separator.

use bytes::{Buf, BytesMut};

use crate::framing::find_text_frame;
use crate::{ProtocolError, RECORD_SEPARATOR};

/// The client's first message: `{"protocol":"json","version":1}\x1e`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The hub protocol name the client asks for (`json`, `messagepack`).
    pub protocol: String,
    /// The protocol version the client asks for.
    pub version: u32,
}

/// The server's answer to the handshake request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The error text, `None` on success.
    pub error: Option<String>,
}

impl HandshakeRequest {
    /// Parses a handshake request from the front of `buf`, consuming up to and including the
    /// record separator. Returns `Ok(None)` while the separator has not arrived yet.
    pub fn parse(buf: &mut BytesMut, max_size: usize) -> Result<Option<Self>, ProtocolError> {
        let Some(frame) = find_text_frame(buf, max_size)? else {
            return Ok(None);
        };
        let parsed = Self::parse_payload(&buf[frame.payload()]);
        buf.advance(frame.frame_len);
        parsed.map(Some)
    }

    /// Writes this request as a client sends it: `{"protocol":"…","version":N}\x1e`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"protocol\":");
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.protocol);
        out.extend_from_slice(format!(",\"version\":{}}}", self.version).as_bytes());
        out.push(RECORD_SEPARATOR);
    }

    /// Parses a request payload (without its record separator).
    pub fn parse_payload(payload: &[u8]) -> Result<Self, ProtocolError> {
        let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| ProtocolError::Json(e.to_string()))?;
        let object = value.as_object().ok_or(ProtocolError::WrongType { field: "handshake", expected: "an object" })?;
        let protocol = object
            .get("protocol")
            .ok_or(ProtocolError::MissingField("protocol"))?
            .as_str()
            .ok_or(ProtocolError::WrongType { field: "protocol", expected: "a string" })?
            .to_owned();
        let version = object
            .get("version")
            .ok_or(ProtocolError::MissingField("version"))?
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(ProtocolError::WrongType { field: "version", expected: "an integer" })?;
        Ok(Self { protocol, version })
    }
}

impl HandshakeResponse {
    /// Parses a handshake response from the front of `buf` (as a client does), consuming up to
    /// and including the record separator; hub messages that follow stay in `buf`.
    ///
    /// A response with a `type` property is refused, as the official clients refuse it
    /// (`Expected a handshake response from the server.`); other extra properties, such as the
    /// `minorVersion` of old servers, are ignored.
    pub fn parse(buf: &mut BytesMut, max_size: usize) -> Result<Option<Self>, ProtocolError> {
        let Some(frame) = find_text_frame(buf, max_size)? else {
            return Ok(None);
        };
        let parsed = Self::parse_payload(&buf[frame.payload()]);
        buf.advance(frame.frame_len);
        parsed.map(Some)
    }

    /// Parses a response payload (without its record separator).
    pub fn parse_payload(payload: &[u8]) -> Result<Self, ProtocolError> {
        let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| ProtocolError::Json(e.to_string()))?;
        let object = value.as_object().ok_or(ProtocolError::WrongType { field: "handshake", expected: "an object" })?;
        if object.contains_key("type") {
            return Err(ProtocolError::Json("Expected a handshake response from the server.".to_owned()));
        }
        let error = match object.get("error") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(error)) => Some(error.clone()),
            Some(_) => {
                return Err(ProtocolError::WrongType { field: "error", expected: "a string" });
            }
        };
        Ok(Self { error })
    }

    /// Writes this response: [`Self::write_success`] or [`Self::write_error`].
    pub fn write(&self, out: &mut Vec<u8>) {
        match &self.error {
            None => Self::write_success(out),
            Some(error) => Self::write_error(error, out),
        }
    }

    /// Writes the success response, exactly `{}\x1e`.
    pub fn write_success(out: &mut Vec<u8>) {
        out.extend_from_slice(b"{}\x1e");
    }

    /// Writes an error response, `{"error":"…"}\x1e`.
    pub fn write_error(message: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"error\":");
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, message);
        out.extend_from_slice(b"}\x1e");
    }
}
