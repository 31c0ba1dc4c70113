//! Group session messages: protobuf (proto2, as nanopb encodes it) (spec §8.1).
//!
//! ```text
//! message GroupMessage              { required uint32 version = 1;
//!                                     optional MessageGroupInfo group_info = 2;
//!                                     optional RegularGroupMessage regular_message = 3; }
//! message MessageGroupInfo          { required bytes session_id = 1; required uint32 epoch = 2;
//!                                     required bytes key = 3; }
//! message RegularGroupMessage       { required bytes header = 1; required bytes signature = 2;
//!                                     required bytes cipher_text = 3; }
//! message RegularGroupMessageHeader { required bytes session_id = 1; required uint32 epoch = 2;
//!                                     required bytes salt = 3; }
//! ```
//! Fields are written in field order, all of them (zeros too), version always 0. The decoder
//! accepts fields in any order (as protobuf allows) but rejects duplicates, unknown fields, wrong
//! wire types, missing required fields and out-of-range sizes.

use crate::error::{FormatError, FormatErrorKind};
use zeroize::Zeroizing;

const WIRE_VARINT: u8 = 0;
const WIRE_BYTES: u8 = 2;

/// Largest `cipher_text` accepted (the reference's limit is 30032 bytes; some slack for the
/// padding of a maximal plaintext).
pub(crate) const MAX_CIPHER_TEXT: usize = 32 << 10;

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Reads `(field number, value)` pairs, rejecting duplicates of fields in `1..=3`.
fn fields<'a>(
    data: &'a [u8],
    what: &'static str,
) -> Result<[Option<(Value<'a>, usize)>; 3], FormatError> {
    let mut out: [Option<(Value<'a>, usize)>; 3] = [None, None, None];
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let key = read_varint(data, &mut pos, what)?;
        let field = key >> 3;
        let wire = (key & 7) as u8;
        let value = match wire {
            WIRE_VARINT => Value::Varint(read_varint(data, &mut pos, what)?),
            WIRE_BYTES => {
                let len = read_varint(data, &mut pos, what)?;
                let len = usize::try_from(len).map_err(|_| FormatError::truncated(what, pos))?;
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e <= data.len())
                    .ok_or_else(|| FormatError::truncated(what, pos))?;
                let bytes = &data[pos..end];
                pos = end;
                Value::Bytes(bytes)
            }
            _ => return Err(FormatError::invalid(what, start)),
        };
        let slot = match field {
            1..=3 => &mut out[(field - 1) as usize],
            _ => return Err(FormatError::invalid(what, start)),
        };
        if slot.is_some() {
            return Err(FormatError::invalid(what, start));
        }
        *slot = Some((value, start));
    }
    Ok(out)
}

fn read_varint(data: &[u8], pos: &mut usize, what: &'static str) -> Result<u64, FormatError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data
            .get(*pos)
            .ok_or_else(|| FormatError::truncated(what, *pos))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FormatError::new(
        FormatErrorKind::InvalidLength { field: what },
        *pos,
    ))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u8, v: u64) {
    out.push(field << 3 | WIRE_VARINT);
    put_varint(out, v);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | WIRE_BYTES);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn take_u32(slot: &Option<(Value<'_>, usize)>, field: &'static str) -> Result<u32, FormatError> {
    match slot {
        Some((Value::Varint(v), at)) => {
            u32::try_from(*v).map_err(|_| FormatError::invalid(field, *at))
        }
        Some((_, at)) => Err(FormatError::invalid(field, *at)),
        None => Err(FormatError::truncated(field, 0)),
    }
}

fn take_bytes<'a>(
    slot: &Option<(Value<'a>, usize)>,
    field: &'static str,
    sizes: core::ops::RangeInclusive<usize>,
) -> Result<&'a [u8], FormatError> {
    match slot {
        Some((Value::Bytes(b), at)) if sizes.contains(&b.len()) => Ok(b),
        Some((_, at)) => Err(FormatError::invalid(field, *at)),
        None => Err(FormatError::truncated(field, 0)),
    }
}

fn array32(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&b[..32]);
    out
}

/// An epoch ticket (`MessageGroupInfo`): the epoch key in clear.
pub(crate) struct Ticket {
    pub session_id: [u8; 32],
    pub epoch: u32,
    pub key: Zeroizing<[u8; 32]>,
}

/// The header of a regular message, kept with its exact bytes (they are the GCM AAD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub session_id: [u8; 32],
    pub epoch: u32,
    pub salt: [u8; 32],
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(74);
        put_bytes_field(&mut out, 1, &self.session_id);
        put_varint_field(&mut out, 2, u64::from(self.epoch));
        put_bytes_field(&mut out, 3, &self.salt);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let f = fields(data, "group_header")?;
        Ok(Self {
            session_id: array32(take_bytes(&f[0], "group_header.session_id", 32..=32)?),
            epoch: take_u32(&f[1], "group_header.epoch")?,
            salt: array32(take_bytes(&f[2], "group_header.salt", 32..=32)?),
        })
    }
}

/// A regular (encrypted) group message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Regular {
    /// The serialized header, exactly as received.
    pub header_bytes: Vec<u8>,
    pub header: Header,
    pub signature: [u8; 64],
    pub cipher_text: Vec<u8>,
}

/// A top-level group message.
pub(crate) enum GroupMessage {
    Ticket(Ticket),
    Regular(Regular),
}

impl GroupMessage {
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let f = fields(data, "group_message")?;
        // The version is written as 0 by every library version and not checked by the reference.
        take_u32(&f[0], "group_message.version")?;
        match (&f[1], &f[2]) {
            (Some(_), None) => {
                let body = take_bytes(&f[1], "group_message.group_info", 0..=usize::MAX)?;
                let g = fields(body, "group_info")?;
                Ok(Self::Ticket(Ticket {
                    session_id: array32(take_bytes(&g[0], "group_info.session_id", 32..=32)?),
                    epoch: take_u32(&g[1], "group_info.epoch")?,
                    key: Zeroizing::new(array32(take_bytes(&g[2], "group_info.key", 32..=32)?)),
                }))
            }
            (None, Some(_)) => {
                let body = take_bytes(&f[2], "group_message.regular_message", 0..=usize::MAX)?;
                let r = fields(body, "regular_message")?;
                let header_bytes = take_bytes(&r[0], "regular_message.header", 0..=128)?;
                let signature = take_bytes(&r[1], "regular_message.signature", 64..=64)?;
                let cipher_text =
                    take_bytes(&r[2], "regular_message.cipher_text", 16..=MAX_CIPHER_TEXT)?;
                let mut sig = [0u8; 64];
                sig.copy_from_slice(signature);
                Ok(Self::Regular(Regular {
                    header: Header::decode(header_bytes)?,
                    header_bytes: header_bytes.to_vec(),
                    signature: sig,
                    cipher_text: cipher_text.to_vec(),
                }))
            }
            _ => Err(FormatError::invalid("group_message", 0)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut inner = Vec::new();
        let field = match self {
            Self::Ticket(t) => {
                put_bytes_field(&mut inner, 1, &t.session_id);
                put_varint_field(&mut inner, 2, u64::from(t.epoch));
                put_bytes_field(&mut inner, 3, t.key.as_ref());
                2
            }
            Self::Regular(r) => {
                put_bytes_field(&mut inner, 1, &r.header_bytes);
                put_bytes_field(&mut inner, 2, &r.signature);
                put_bytes_field(&mut inner, 3, &r.cipher_text);
                3
            }
        };
        let mut out = Vec::with_capacity(inner.len() + 8);
        put_varint_field(&mut out, 1, 0);
        put_bytes_field(&mut out, field, &inner);
        // The ticket holds the epoch key: do not leave a copy behind.
        zeroize::Zeroize::zeroize(&mut inner);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_layout_matches_spec() {
        let t = GroupMessage::Ticket(Ticket {
            session_id: [1; 32],
            epoch: 5,
            key: Zeroizing::new([2; 32]),
        });
        let enc = t.encode();
        assert_eq!(enc.len(), 74);
        assert_eq!(&enc[..6], &[0x08, 0x00, 0x12, 0x46, 0x0a, 0x20]);
        assert_eq!(enc[38..40], [0x10, 5]);
        assert!(matches!(GroupMessage::decode(&enc), Ok(GroupMessage::Ticket(x)) if x.epoch == 5));
        for cut in 0..enc.len() {
            assert!(GroupMessage::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn duplicates_and_unknown_fields_are_rejected() {
        assert!(GroupMessage::decode(&[0x08, 0x00, 0x08, 0x00]).is_err());
        assert!(GroupMessage::decode(&[0x08, 0x00, 0x20, 0x00]).is_err());
        assert!(GroupMessage::decode(&[0x08, 0x00]).is_err());
        let over = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(GroupMessage::decode(&over).is_err());
    }
}
