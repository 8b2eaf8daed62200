//! Connection ids and tokens: 16 random bytes, base64url without padding (22 characters).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// Length of an id or token in characters.
pub(crate) const ID_LEN: usize = 22;

/// A connection id or token, stored inline (no heap allocation per connection).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ShortId([u8; ID_LEN]);

impl ShortId {
    /// A new id from 16 cryptographically random bytes (like .NET's `MakeNewConnectionId`).
    pub(crate) fn random() -> Self {
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let mut out = [0u8; ID_LEN];
        let written = URL_SAFE_NO_PAD.encode_slice(raw, &mut out).expect("16 bytes always encode to 22 base64url characters");
        debug_assert_eq!(written, ID_LEN);
        Self(out)
    }

    /// Parses an id sent by a client; `None` when it cannot be one of ours.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; ID_LEN] = text.as_bytes().try_into().ok()?;
        bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_').then_some(Self(bytes))
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ids are ASCII")
    }
}

impl std::fmt::Debug for ShortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_url_safe_characters_and_distinct() {
        let a = ShortId::random();
        let b = ShortId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(ShortId::parse(a.as_str()), Some(a));
        assert_eq!(ShortId::parse("too-short"), None);
        assert_eq!(ShortId::parse("0123456789012345678901+"), None);
        assert_eq!(ShortId::parse("012345678901234567890+"), None);
    }
}
