//! Payload types whose wire form differs per protocol, as .NET's payload serializers write them.
//!
//! * [`Binary`] (.NET `byte[]`): a base64 string in JSON, a MessagePack `bin` (the JS client
//!   gets a `Uint8Array`).
//! * [`Timestamp`] (.NET `DateTime`): an ISO-8601 string in JSON (`2000-01-01T00:00:00Z` for a
//!   whole-second UTC value), the MessagePack timestamp extension type −1 (the JS client gets a
//!   `Date`).
//!
//! The choice is made with `Serializer::is_human_readable`: serde_json says yes, `rmp_serde`
//! (which [`crate::Value::from_serialize`] uses for MessagePack) says no. Reading accepts both
//! forms whatever the deserializer says.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::ProtocolError;
use crate::value::TIMESTAMP_EXT_TYPE;

/// The name `rmp_serde` (and `rmpv`) give the newtype struct that carries an extension value
/// as `(type: i8, data: bytes)`.
pub const MSGPACK_EXT_STRUCT_NAME: &str = "_ExtStruct";

/// Binary data: base64 text in JSON, `bin` in MessagePack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Binary(pub Vec<u8>);

/// A UTC instant: ISO-8601 text in JSON, the timestamp extension (−1) in MessagePack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Binary(bytes)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(instant: DateTime<Utc>) -> Self {
        Timestamp(instant)
    }
}

/// Borrowed bytes that serialize with `serialize_bytes` (a MessagePack `bin`).
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Owned bytes that deserialize from `bin`, a sequence of integers or (base64) text.
struct AnyBytes(Vec<u8>);

struct AnyBytesVisitor;

impl<'de> Visitor<'de> for AnyBytesVisitor {
    type Value = AnyBytes;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("binary data or a base64 string")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<AnyBytes, E> {
        Ok(AnyBytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<AnyBytes, E> {
        Ok(AnyBytes(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyBytes, E> {
        base64::engine::general_purpose::STANDARD.decode(v).map(AnyBytes).map_err(|e| E::custom(format!("invalid base64: {e}")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyBytes, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(AnyBytes(bytes))
    }
}

impl<'de> Deserialize<'de> for AnyBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyBytesVisitor)
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        AnyBytes::deserialize(deserializer).map(|bytes| Binary(bytes.0))
    }
}

/// Formats `instant` as .NET's System.Text.Json writes a UTC `DateTime`: no fraction for a
/// whole second, otherwise the fraction without trailing zeros, and a `Z`.
pub fn format_iso8601(instant: &DateTime<Utc>) -> String {
    let text = instant.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // `Nanos` always writes nine fraction digits; trim zeros (and the dot if nothing is left).
    match text.rfind('.') {
        Some(dot) => {
            let fraction = text[dot + 1..text.len() - 1].trim_end_matches('0');
            if fraction.is_empty() { format!("{}Z", &text[..dot]) } else { format!("{}.{}Z", &text[..dot], fraction) }
        }
        None => text,
    }
}

/// Parses an ISO-8601 / RFC 3339 date-time; one without an offset is taken as UTC (as .NET
/// writes `DateTimeKind.Unspecified` values).
pub fn parse_iso8601(text: &str) -> Result<DateTime<Utc>, ProtocolError> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| Utc.from_utc_datetime(&naive))
        .map_err(|e| ProtocolError::Value(format!("invalid ISO-8601 date-time '{text}': {e}")))
}

/// Encodes `instant` as the data of a MessagePack timestamp extension, in the smallest of the
/// 4-, 8- and 12-byte forms that holds it.
pub fn encode_timestamp_ext(instant: &DateTime<Utc>) -> Vec<u8> {
    let seconds = instant.timestamp();
    let nanos = instant.timestamp_subsec_nanos();
    if (0..1 << 34).contains(&seconds) {
        if nanos == 0 && seconds <= i64::from(u32::MAX) {
            (seconds as u32).to_be_bytes().to_vec()
        } else {
            ((u64::from(nanos) << 34) | seconds as u64).to_be_bytes().to_vec()
        }
    } else {
        let mut data = Vec::with_capacity(12);
        data.extend_from_slice(&nanos.to_be_bytes());
        data.extend_from_slice(&seconds.to_be_bytes());
        data
    }
}

/// Decodes the data of a MessagePack timestamp extension (4, 8 or 12 bytes).
pub fn decode_timestamp_ext(data: &[u8]) -> Result<DateTime<Utc>, ProtocolError> {
    let (seconds, nanos) = match data.len() {
        4 => (i64::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]])), 0),
        8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(data);
            let packed = u64::from_be_bytes(raw);
            ((packed & ((1 << 34) - 1)) as i64, (packed >> 34) as u32)
        }
        12 => {
            let nanos = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&data[4..]);
            (i64::from_be_bytes(raw), nanos)
        }
        other => {
            return Err(ProtocolError::Value(format!("a MessagePack timestamp has 4, 8 or 12 bytes, not {other}")));
        }
    };
    if nanos >= 1_000_000_000 {
        return Err(ProtocolError::Value(format!("timestamp nanoseconds {nanos} out of range")));
    }
    DateTime::from_timestamp(seconds, nanos).ok_or_else(|| ProtocolError::Value(format!("timestamp {seconds}s out of range")))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&format_iso8601(&self.0))
        } else {
            let data = encode_timestamp_ext(&self.0);
            serializer.serialize_newtype_struct(MSGPACK_EXT_STRUCT_NAME, &(TIMESTAMP_EXT_TYPE, RawBytes(&data)))
        }
    }
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ISO-8601 string or a MessagePack timestamp")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        parse_iso8601(v).map(Timestamp).map_err(E::custom)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Timestamp, D::Error> {
        // rmp_serde presents an extension as a newtype around `(type, data)`.
        let (kind, data) = <(i8, AnyBytes)>::deserialize(d)?;
        if kind != TIMESTAMP_EXT_TYPE {
            return Err(de::Error::custom(format!("expected the timestamp extension type -1, got {kind}")));
        }
        decode_timestamp_ext(&data.0).map(Timestamp).map_err(de::Error::custom)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Timestamp, A::Error> {
        // Some deserializers present an extension directly as the `(type, data)` sequence.
        let kind: i8 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let data: AnyBytes = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if kind != TIMESTAMP_EXT_TYPE {
            return Err(de::Error::custom(format!("expected the timestamp extension type -1, got {kind}")));
        }
        decode_timestamp_ext(&data.0).map(Timestamp).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}
