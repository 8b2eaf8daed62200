//! The backplane envelope codec: what ASP.NET Core's `RedisProtocol` writes and reads.
//!
//! Pure and I/O-free. Four records travel on the channels (see `docs` §4 of the wire reference):
//!
//! * [`Invocation`] on the all / group / user / connection channels: excluded connection ids and
//!   a map `protocol name -> framed hub message`, optionally followed by the client-result
//!   fields (invocation id and return channel).
//! * [`GroupCommand`] on `internal:groups`.
//! * [`Ack`] on `internal:ack:{server}`.
//! * [`ForwardedCompletion`] on `internal:return:{server}`.
//!
//! Writing uses the shortest MessagePack form of every integer, string and binary, like
//! MessagePack-CSharp. Reading accepts every width, `nil` where .NET accepts it, checks "at least
//! N items" and ignores extra trailing items, so a future .NET that appends fields still parses.

use bytes::Bytes;

/// Why a backplane record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The input ended in the middle of a value.
    #[error("{record}: input ends inside {what}")]
    Truncated {
        /// The record being read (`Invocation`, `GroupCommand`, ...).
        record: &'static str,
        /// The value being read when the input ended.
        what: &'static str,
    },
    /// A value has another MessagePack type than the layout requires.
    #[error("{record}: expected {expected} for {what}, found byte 0x{found:02x}")]
    WrongType {
        /// The record being read.
        record: &'static str,
        /// The field being read.
        what: &'static str,
        /// What the layout requires, in words.
        expected: &'static str,
        /// The MessagePack marker byte found instead.
        found: u8,
    },
    /// The record's array has fewer items than the layout requires.
    #[error("{record}: expected an array of at least {minimum} items, found {found}")]
    TooFewItems {
        /// The record being read.
        record: &'static str,
        /// The minimum item count.
        minimum: usize,
        /// The item count found.
        found: usize,
    },
    /// An integer does not fit the field's range (e.g. an ack id beyond 32 bits).
    #[error("{record}: {what} {value} is out of range")]
    OutOfRange {
        /// The record being read.
        record: &'static str,
        /// The field being read.
        what: &'static str,
        /// The value found.
        value: i128,
    },
    /// A string is not valid UTF-8.
    #[error("{record}: {what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The record being read.
        record: &'static str,
        /// The field being read.
        what: &'static str,
    },
    /// A field that must carry a value is `nil`.
    #[error("{record}: {what} is nil")]
    Nil {
        /// The record being read.
        record: &'static str,
        /// The field being read.
        what: &'static str,
    },
}

/// Group membership action of a [`GroupCommand`] (written as a byte: 1 = Add, 2 = Remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// Add the connection to the group (1).
    Add,
    /// Remove the connection from the group (2).
    Remove,
    /// Any other byte value: .NET acknowledges such a command without acting on it.
    Unknown(u8),
}

impl GroupAction {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            GroupAction::Add => 1,
            GroupAction::Remove => 2,
            GroupAction::Unknown(other) => other,
        }
    }

    /// The action for a wire byte.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            1 => GroupAction::Add,
            2 => GroupAction::Remove,
            other => GroupAction::Unknown(other),
        }
    }
}

/// A group command (`internal:groups`): `[id, serverName, action, groupName, connectionId]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommand {
    /// The ack id, per sending server.
    pub id: i32,
    /// The sending server's name (no channel prefix); the ack goes to its ack channel.
    pub server_name: String,
    /// Add or remove.
    pub action: GroupAction,
    /// The group.
    pub group_name: String,
    /// The connection to add or remove.
    pub connection_id: String,
}

/// An acknowledgement (`internal:ack:{server}`): `[id]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The group-command id acknowledged.
    pub id: i32,
}

/// The client-result fields of a 4-item invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResultRoute {
    /// The invocation id the client will answer with.
    pub invocation_id: String,
    /// The origin server's return channel, without the channel prefix.
    pub return_channel: String,
}

/// An invocation envelope (all / group / user / connection channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Connection ids that must not receive the message (honoured on all and group channels).
    pub excluded_connection_ids: Vec<String>,
    /// `(protocol name, framed hub message)` in wire order.
    pub messages: Vec<(String, Bytes)>,
    /// Present on the 4-item client-result form.
    pub client_result: Option<ClientResultRoute>,
}

/// A client's completion forwarded to the origin server (`internal:return:{server}`):
/// `[protocolName, bin frame]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedCompletion {
    /// The protocol the frame is in.
    pub protocol_name: String,
    /// The framed CompletionMessage in that protocol.
    pub frame: Bytes,
}

// ---------------------------------------------------------------------------------------------
// Writing

fn write_array_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn write_map_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Writes an integer in its shortest form, as MessagePack-CSharp's `Write(int)` does.
fn write_int(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        let v = value as u64;
        if v <= 0x7f {
            out.push(v as u8);
        } else if v <= u8::MAX as u64 {
            out.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= u16::MAX as u64 {
            out.push(0xcd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= u32::MAX as u64 {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&v.to_be_bytes());
        }
    } else if value >= -32 {
        out.push(value as i8 as u8);
    } else if value >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, value as i8 as u8]);
    } else if value >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(value as i16).to_be_bytes());
    } else if value >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(value as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    let len = text.len();
    if len <= 31 {
        out.push(0xa0 | len as u8);
    } else if len <= u8::MAX as usize {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= u16::MAX as usize {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

fn write_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len <= u8::MAX as usize {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len <= u16::MAX as usize {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// Upper bound of a string's or blob's encoded size, for exact-capacity buffers.
fn sized(len: usize) -> usize {
    len + 5
}

/// Writes an invocation envelope: the 2-item form, or the 4-item client-result form when
/// `client_result` is given. Each `(protocol, frame)` pair is written once, whatever the number
/// of receivers.
pub fn write_invocation<S: AsRef<str>>(
    excluded_connection_ids: &[S],
    messages: &[(&str, &[u8])],
    client_result: Option<(&str, &str)>,
) -> Vec<u8> {
    let capacity = 8
        + excluded_connection_ids.iter().map(|id| sized(id.as_ref().len())).sum::<usize>()
        + messages.iter().map(|(name, frame)| sized(name.len()) + sized(frame.len())).sum::<usize>()
        + client_result.map_or(0, |(id, channel)| sized(id.len()) + sized(channel.len()));
    let mut out = Vec::with_capacity(capacity);
    write_array_len(&mut out, if client_result.is_some() { 4 } else { 2 });
    write_array_len(&mut out, excluded_connection_ids.len());
    for id in excluded_connection_ids {
        write_str(&mut out, id.as_ref());
    }
    write_map_len(&mut out, messages.len());
    for (name, frame) in messages {
        write_str(&mut out, name);
        write_bin(&mut out, frame);
    }
    if let Some((invocation_id, return_channel)) = client_result {
        write_str(&mut out, invocation_id);
        write_str(&mut out, return_channel);
    }
    out
}

/// Writes a group command: `[id, serverName, action, groupName, connectionId]`.
pub fn write_group_command(command: &GroupCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + command.server_name.len() + command.group_name.len() + command.connection_id.len());
    write_array_len(&mut out, 5);
    write_int(&mut out, command.id as i64);
    write_str(&mut out, &command.server_name);
    write_int(&mut out, command.action.to_byte() as i64);
    write_str(&mut out, &command.group_name);
    write_str(&mut out, &command.connection_id);
    out
}

/// Writes an ack: `[id]`.
pub fn write_ack(id: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    write_array_len(&mut out, 1);
    write_int(&mut out, id as i64);
    out
}

/// Writes a forwarded completion: `[protocolName, bin frame]`.
pub fn write_completion(protocol_name: &str, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + sized(protocol_name.len()) + sized(frame.len()));
    write_array_len(&mut out, 2);
    write_str(&mut out, protocol_name);
    write_bin(&mut out, frame);
    out
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A cursor over one record; `record` names it in errors.
struct Reader<'a> {
    input: &'a Bytes,
    pos: usize,
    record: &'static str,
}

impl<'a> Reader<'a> {
    fn new(input: &'a Bytes, record: &'static str) -> Self {
        Self { input, pos: 0, record }
    }

    fn truncated(&self, what: &'static str) -> EnvelopeError {
        EnvelopeError::Truncated { record: self.record, what }
    }

    fn wrong(&self, what: &'static str, expected: &'static str, found: u8) -> EnvelopeError {
        EnvelopeError::WrongType { record: self.record, what, expected, found }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, EnvelopeError> {
        let byte = *self.input.get(self.pos).ok_or_else(|| self.truncated(what))?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<std::ops::Range<usize>, EnvelopeError> {
        let end = self.pos.checked_add(len).ok_or_else(|| self.truncated(what))?;
        if end > self.input.len() {
            return Err(self.truncated(what));
        }
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    fn be(&mut self, width: usize, what: &'static str) -> Result<u64, EnvelopeError> {
        let range = self.take(width, what)?;
        Ok(self.input[range].iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    /// An array header; `nil` reads as an empty array when `nil_is_empty`.
    fn array_len(&mut self, what: &'static str, nil_is_empty: bool) -> Result<usize, EnvelopeError> {
        let marker = self.byte(what)?;
        match marker {
            0x90..=0x9f => Ok((marker & 0x0f) as usize),
            0xdc => Ok(self.be(2, what)? as usize),
            0xdd => Ok(self.be(4, what)? as usize),
            0xc0 if nil_is_empty => Ok(0),
            other => Err(self.wrong(what, "an array", other)),
        }
    }

    fn record_array(&mut self, minimum: usize) -> Result<usize, EnvelopeError> {
        let len = self.array_len("the record array", false)?;
        if len < minimum {
            return Err(EnvelopeError::TooFewItems { record: self.record, minimum, found: len });
        }
        Ok(len)
    }

    fn map_len(&mut self, what: &'static str) -> Result<usize, EnvelopeError> {
        let marker = self.byte(what)?;
        match marker {
            0x80..=0x8f => Ok((marker & 0x0f) as usize),
            0xde => Ok(self.be(2, what)? as usize),
            0xdf => Ok(self.be(4, what)? as usize),
            other => Err(self.wrong(what, "a map", other)),
        }
    }

    /// Any MessagePack integer, as i128 so that every width fits.
    fn int(&mut self, what: &'static str) -> Result<i128, EnvelopeError> {
        let marker = self.byte(what)?;
        Ok(match marker {
            0x00..=0x7f => marker as i128,
            0xe0..=0xff => marker as i8 as i128,
            0xcc => self.be(1, what)? as i128,
            0xcd => self.be(2, what)? as i128,
            0xce => self.be(4, what)? as i128,
            0xcf => self.be(8, what)? as i128,
            0xd0 => self.be(1, what)? as u8 as i8 as i128,
            0xd1 => self.be(2, what)? as u16 as i16 as i128,
            0xd2 => self.be(4, what)? as u32 as i32 as i128,
            0xd3 => self.be(8, what)? as i64 as i128,
            other => return Err(self.wrong(what, "an integer", other)),
        })
    }

    fn int32(&mut self, what: &'static str) -> Result<i32, EnvelopeError> {
        let value = self.int(what)?;
        i32::try_from(value).map_err(|_| EnvelopeError::OutOfRange { record: self.record, what, value })
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, EnvelopeError> {
        let value = self.int(what)?;
        u8::try_from(value).map_err(|_| EnvelopeError::OutOfRange { record: self.record, what, value })
    }

    /// A string; `nil` reads as `None` (MessagePack-CSharp's `ReadString`).
    fn optional_str(&mut self, what: &'static str) -> Result<Option<String>, EnvelopeError> {
        let marker = self.byte(what)?;
        let len = match marker {
            0xc0 => return Ok(None),
            0xa0..=0xbf => (marker & 0x1f) as usize,
            0xd9 => self.be(1, what)? as usize,
            0xda => self.be(2, what)? as usize,
            0xdb => self.be(4, what)? as usize,
            other => return Err(self.wrong(what, "a string", other)),
        };
        let range = self.take(len, what)?;
        let text = std::str::from_utf8(&self.input[range]).map_err(|_| EnvelopeError::InvalidUtf8 { record: self.record, what })?;
        Ok(Some(text.to_owned()))
    }

    fn str(&mut self, what: &'static str) -> Result<String, EnvelopeError> {
        self.optional_str(what)?.ok_or(EnvelopeError::Nil { record: self.record, what })
    }

    /// A binary blob, sliced without copying; `nil` reads as empty. A str-typed blob is
    /// accepted as well (the old MessagePack spec had no bin type, and MessagePack-CSharp's
    /// reader accepts it too).
    fn bin(&mut self, what: &'static str) -> Result<Bytes, EnvelopeError> {
        let marker = self.byte(what)?;
        let len = match marker {
            0xc0 => return Ok(Bytes::new()),
            0xc4 | 0xd9 => self.be(1, what)? as usize,
            0xc5 | 0xda => self.be(2, what)? as usize,
            0xc6 | 0xdb => self.be(4, what)? as usize,
            0xa0..=0xbf => (marker & 0x1f) as usize,
            other => return Err(self.wrong(what, "binary data", other)),
        };
        let range = self.take(len, what)?;
        Ok(self.input.slice(range))
    }
}

/// Reads an invocation envelope. Frames in [`Invocation::messages`] are slices of `payload`.
pub fn read_invocation(payload: &Bytes) -> Result<Invocation, EnvelopeError> {
    let mut reader = Reader::new(payload, "Invocation");
    let items = reader.record_array(2)?;
    let excluded_count = reader.array_len("the excluded connection ids", true)?;
    let mut excluded_connection_ids = Vec::with_capacity(excluded_count.min(64));
    for _ in 0..excluded_count {
        // A nil id excludes nobody.
        if let Some(id) = reader.optional_str("an excluded connection id")? {
            excluded_connection_ids.push(id);
        }
    }
    let entries = reader.map_len("the protocol map")?;
    let mut messages = Vec::with_capacity(entries.min(8));
    for _ in 0..entries {
        let name = reader.str("a protocol name")?;
        let frame = reader.bin("a serialized hub message")?;
        messages.push((name, frame));
    }
    let client_result = if items > 3 {
        let invocation_id = reader.optional_str("the invocation id")?;
        let return_channel = reader.optional_str("the return channel")?;
        match (invocation_id, return_channel) {
            (Some(invocation_id), Some(return_channel)) => Some(ClientResultRoute { invocation_id, return_channel }),
            // .NET treats a nil invocation id as a plain send.
            _ => None,
        }
    } else {
        None
    };
    Ok(Invocation { excluded_connection_ids, messages, client_result })
}

/// Reads a group command.
pub fn read_group_command(payload: &Bytes) -> Result<GroupCommand, EnvelopeError> {
    let mut reader = Reader::new(payload, "GroupCommand");
    reader.record_array(5)?;
    Ok(GroupCommand {
        id: reader.int32("the ack id")?,
        server_name: reader.str("the server name")?,
        action: GroupAction::from_byte(reader.u8("the action")?),
        group_name: reader.str("the group name")?,
        connection_id: reader.str("the connection id")?,
    })
}

/// Reads an ack.
pub fn read_ack(payload: &Bytes) -> Result<Ack, EnvelopeError> {
    let mut reader = Reader::new(payload, "Ack");
    reader.record_array(1)?;
    Ok(Ack { id: reader.int32("the ack id")? })
}

/// Reads a forwarded completion.
pub fn read_completion(payload: &Bytes) -> Result<ForwardedCompletion, EnvelopeError> {
    let mut reader = Reader::new(payload, "Completion");
    reader.record_array(2)?;
    Ok(ForwardedCompletion { protocol_name: reader.str("the protocol name")?, frame: reader.bin("the completion frame")? })
}

#[cfg(test)]
mod tests;
