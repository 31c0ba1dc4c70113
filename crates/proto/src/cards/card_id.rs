//! Card ids (spec §3.1): the first 32 bytes of SHA-512 over the snapshot bytes, printed as 64
//! lowercase hexadecimal characters.

use super::CardError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};
use std::fmt;
use std::str::FromStr;

/// A card id (spec §3.1): `SHA-512(content_snapshot bytes)[0..32]`.
///
/// Parsed from 64 hexadecimal characters (either case), printed and serialized as 64 lowercase
/// ones.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardId([u8; 32]);

impl CardId {
    /// The id of a card whose decoded `content_snapshot` is `snapshot`.
    pub fn from_snapshot(snapshot: &[u8]) -> Self {
        let digest = Sha512::digest(snapshot);
        let mut id = [0u8; 32];
        for (out, byte) in id.iter_mut().zip(digest.iter()) {
            *out = *byte;
        }
        Self(id)
    }

    /// An id from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for CardId {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl FromStr for CardId {
    type Err = CardError;

    /// Parses 64 hexadecimal characters, lowercase or uppercase; anything else is
    /// [`CardError::InvalidCardId`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.as_bytes();
        if digits.len() != 64 {
            return Err(CardError::InvalidCardId);
        }
        let mut id = [0u8; 32];
        for (out, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
            let &[high, low] = pair else {
                return Err(CardError::InvalidCardId);
            };
            let high = hex_value(high).ok_or(CardError::InvalidCardId)?;
            let low = hex_value(low).ok_or(CardError::InvalidCardId)?;
            *out = (high << 4) | low;
        }
        Ok(Self(id))
    }
}

impl fmt::Display for CardId {
    /// Writes 64 lowercase hexadecimal characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardId({self})")
    }
}

impl Serialize for CardId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CardId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
