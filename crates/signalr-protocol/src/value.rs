//! [`Value`]: a payload value (argument, result, stream item) in the form of the protocol that
//! carries it, so that typed hub code can bind it with serde without a detour.

/// One payload value of a hub message.
///
/// Values parsed from the wire keep the form of their protocol. Values created by the server
/// from Rust types are built for the protocol they will be written with
/// ([`Value::from_serialize`]); writing a value with the other protocol converts it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A JSON value (from or for the `json` protocol).
    Json(serde_json::Value),
    /// A MessagePack value (from or for the `messagepack` protocol).
    MsgPack(rmpv::Value),
}

/// Which form a [`Value`] is built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// JSON (`serde_json::Value`).
    Json,
    /// MessagePack (`rmpv::Value`).
    MsgPack,
}

use base64::Engine as _;
use serde::ser::Error as _;

use crate::ProtocolError;

/// The MessagePack extension type of timestamps.
pub const TIMESTAMP_EXT_TYPE: i8 = -1;

/// Deepest nesting accepted when decoding MessagePack values (the same limit serde_json uses).
pub const MAX_MSGPACK_DEPTH: usize = 128;

impl Value {
    /// A null value of the given kind (JSON `null`, MessagePack `nil`).
    pub fn null(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Json => Value::Json(serde_json::Value::Null),
            ValueKind::MsgPack => Value::MsgPack(rmpv::Value::Nil),
        }
    }

    /// Which form this value is in.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Json(_) => ValueKind::Json,
            Value::MsgPack(_) => ValueKind::MsgPack,
        }
    }

    /// Whether this value is JSON `null` or MessagePack `nil`.
    pub fn is_null(&self) -> bool {
        match self {
            Value::Json(value) => value.is_null(),
            Value::MsgPack(value) => value.is_nil(),
        }
    }

    /// Builds a value of `kind` from a Rust value.
    ///
    /// JSON follows serde_json (human-readable: [`crate::serde_helpers::Binary`] becomes base64,
    /// [`crate::serde_helpers::Timestamp`] ISO-8601). MessagePack follows the conventions of
    /// `rmp_serde::to_vec_named`, built directly as an `rmpv::Value`: structs become maps keyed
    /// by field name (like .NET's contractless resolver), unit enum variants strings, bytes
    /// `bin`, timestamps the extension type −1; it is not human-readable.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(kind: ValueKind, value: &T) -> Result<Self, ProtocolError> {
        match kind {
            ValueKind::Json => serde_json::to_value(value).map(Value::Json).map_err(|e| ProtocolError::Value(e.to_string())),
            ValueKind::MsgPack => crate::rmpv_serde::to_value(value).map(Value::MsgPack).map_err(|e| ProtocolError::Value(e.to_string())),
        }
    }

    /// Binds this value to a Rust type with serde.
    ///
    /// JSON values use serde_json's (human-readable) deserializer; MessagePack values a
    /// deserializer with `rmp_serde`'s conventions (not human-readable; structs from maps or
    /// arrays, enums from a name, an index or a one-entry map), so a type binds from a value as
    /// it would from the wire bytes of that protocol.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        match self {
            Value::Json(value) => T::deserialize(value).map_err(|e| ProtocolError::Value(e.to_string())),
            Value::MsgPack(value) => crate::rmpv_serde::from_value(value).map_err(|e| ProtocolError::Value(e.to_string())),
        }
    }

    /// This value as JSON, converting a MessagePack value (see [`msgpack_to_json`]).
    pub fn to_json(&self) -> Result<serde_json::Value, ProtocolError> {
        match self {
            Value::Json(value) => Ok(value.clone()),
            Value::MsgPack(value) => msgpack_to_json(value),
        }
    }

    /// This value as MessagePack, converting a JSON value (see [`json_to_msgpack`]).
    pub fn to_msgpack(&self) -> rmpv::Value {
        match self {
            Value::Json(value) => json_to_msgpack(value),
            Value::MsgPack(value) => value.clone(),
        }
    }

    /// This value converted to `kind` (a clone when it already has that kind).
    pub fn to_kind(&self, kind: ValueKind) -> Result<Value, ProtocolError> {
        match kind {
            ValueKind::Json => self.to_json().map(Value::Json),
            ValueKind::MsgPack => Ok(Value::MsgPack(self.to_msgpack())),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        Value::Json(value)
    }
}

impl From<rmpv::Value> for Value {
    fn from(value: rmpv::Value) -> Self {
        Value::MsgPack(value)
    }
}

/// Converts a JSON value to MessagePack: objects become maps with string keys, integers keep
/// their value, other numbers become `float 64`.
pub fn json_to_msgpack(value: &serde_json::Value) -> rmpv::Value {
    match value {
        serde_json::Value::Null => rmpv::Value::Nil,
        serde_json::Value::Bool(b) => rmpv::Value::Boolean(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmpv::Value::from(u)
            } else if let Some(i) = n.as_i64() {
                rmpv::Value::from(i)
            } else {
                rmpv::Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => rmpv::Value::from(s.as_str()),
        serde_json::Value::Array(items) => rmpv::Value::Array(items.iter().map(json_to_msgpack).collect()),
        serde_json::Value::Object(map) => {
            rmpv::Value::Map(map.iter().map(|(k, v)| (rmpv::Value::from(k.as_str()), json_to_msgpack(v))).collect())
        }
    }
}

/// Converts a MessagePack value to JSON the way .NET's JSON protocol would write the same data:
/// `bin` becomes a base64 string, a timestamp (extension −1) an ISO-8601 string, integer map
/// keys their decimal text.
///
/// Errors: NaN or infinite floats, strings that are not UTF-8, map keys that are not strings or
/// integers, and extension types other than timestamps.
pub fn msgpack_to_json(value: &rmpv::Value) -> Result<serde_json::Value, ProtocolError> {
    Ok(match value {
        rmpv::Value::Nil => serde_json::Value::Null,
        rmpv::Value::Boolean(b) => serde_json::Value::Bool(*b),
        rmpv::Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                serde_json::Value::from(u)
            } else {
                serde_json::Value::from(i.as_i64().unwrap_or_default())
            }
        }
        rmpv::Value::F32(f) => float_to_json(f64::from(*f))?,
        rmpv::Value::F64(f) => float_to_json(*f)?,
        rmpv::Value::String(s) => match s.as_str() {
            Some(text) => serde_json::Value::String(text.to_owned()),
            None => {
                return Err(ProtocolError::Value("a MessagePack string is not valid UTF-8".into()));
            }
        },
        rmpv::Value::Binary(bytes) => serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        rmpv::Value::Array(items) => serde_json::Value::Array(items.iter().map(msgpack_to_json).collect::<Result<_, _>>()?),
        rmpv::Value::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (key, value) in entries {
                let key = match key {
                    rmpv::Value::String(s) => {
                        s.as_str().ok_or_else(|| ProtocolError::Value("a map key is not valid UTF-8".into()))?.to_owned()
                    }
                    rmpv::Value::Integer(i) => i.to_string(),
                    _ => {
                        return Err(ProtocolError::Value("a MessagePack map key is neither a string nor an integer".into()));
                    }
                };
                map.insert(key, msgpack_to_json(value)?);
            }
            serde_json::Value::Object(map)
        }
        rmpv::Value::Ext(TIMESTAMP_EXT_TYPE, data) => {
            let timestamp = crate::serde_helpers::decode_timestamp_ext(data)?;
            serde_json::Value::String(crate::serde_helpers::format_iso8601(&timestamp))
        }
        rmpv::Value::Ext(kind, _) => {
            return Err(ProtocolError::Value(format!("MessagePack extension type {kind} has no JSON form")));
        }
    })
}

fn float_to_json(f: f64) -> Result<serde_json::Value, ProtocolError> {
    serde_json::Number::from_f64(f)
        .map(serde_json::Value::Number)
        .ok_or_else(|| ProtocolError::Value(format!("{f} cannot be written as JSON")))
}

/// Decodes one MessagePack value from the front of `input`, advancing it; any width of every
/// type is accepted, nesting is limited to [`MAX_MSGPACK_DEPTH`].
pub fn decode_msgpack_value(input: &mut &[u8]) -> Result<rmpv::Value, ProtocolError> {
    rmpv::decode::read_value_with_max_depth(input, MAX_MSGPACK_DEPTH).map_err(|e| ProtocolError::MessagePack(e.to_string()))
}

/// Appends a MessagePack value, integers and lengths in their shortest form.
///
/// A string that is not UTF-8 (MessagePack-CSharp and rmpv read one without complaint) is
/// written back as the string it was, with its bytes unchanged; rmpv's own writer would turn it
/// into `bin`, so a relayed argument would change type.
pub fn write_msgpack_value(value: &rmpv::Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, hence the ignored results.
    match value {
        rmpv::Value::String(text) if text.as_str().is_none() => {
            let bytes = text.as_bytes();
            let _ = rmp::encode::write_str_len(out, bytes.len() as u32);
            out.extend_from_slice(bytes);
        }
        rmpv::Value::Array(items) => {
            let _ = rmp::encode::write_array_len(out, items.len() as u32);
            for item in items {
                write_msgpack_value(item, out);
            }
        }
        rmpv::Value::Map(entries) => {
            let _ = rmp::encode::write_map_len(out, entries.len() as u32);
            for (key, item) in entries {
                write_msgpack_value(key, out);
                write_msgpack_value(item, out);
            }
        }
        other => {
            let _ = rmpv::encode::write_value(out, other);
        }
    }
}

/// Appends a JSON value as MessagePack without building an intermediate `rmpv::Value`
/// (same mapping as [`json_to_msgpack`]).
pub fn write_json_as_msgpack(value: &serde_json::Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, hence the ignored results.
    match value {
        serde_json::Value::Null => {
            let _ = rmp::encode::write_nil(out);
        }
        serde_json::Value::Bool(b) => {
            let _ = rmp::encode::write_bool(out, *b);
        }
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                let _ = rmp::encode::write_uint(out, u);
            } else if let Some(i) = n.as_i64() {
                let _ = rmp::encode::write_sint(out, i);
            } else {
                let _ = rmp::encode::write_f64(out, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        serde_json::Value::String(s) => {
            let _ = rmp::encode::write_str(out, s);
        }
        serde_json::Value::Array(items) => {
            let _ = rmp::encode::write_array_len(out, items.len() as u32);
            for item in items {
                write_json_as_msgpack(item, out);
            }
        }
        serde_json::Value::Object(map) => {
            let _ = rmp::encode::write_map_len(out, map.len() as u32);
            for (key, item) in map {
                let _ = rmp::encode::write_str(out, key);
                write_json_as_msgpack(item, out);
            }
        }
    }
}

/// Serializes the value as it is; a MessagePack value given to a human-readable serializer
/// (such as serde_json) is first converted to its JSON form so that binary data and timestamps
/// come out as base64 and ISO-8601 strings.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Json(value) => value.serialize(serializer),
            Value::MsgPack(value) if serializer.is_human_readable() => {
                msgpack_to_json(value).map_err(S::Error::custom)?.serialize(serializer)
            }
            Value::MsgPack(value) => value.serialize(serializer),
        }
    }
}
