//! A minimal, strict DER reader and writer (spec §1).
//!
//! Virgil's foundation library writes DER with its own backward writer and some quirks (EXPLICIT
//! `[0]` where CMS says IMPLICIT, bare OCTET STRING nonces, `DEFAULT 0` integers always written),
//! so a generic CMS crate cannot reproduce its bytes. This module only knows TLVs; the schemas live
//! in the sibling modules, one per structure.
//!
//! The reader is strict: definite, minimal lengths only, at most four length bytes, and every
//! structure is checked for trailing data by its caller through [`DerReader::finish`].

use crate::error::{FormatError, FormatErrorKind};

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_SET: u8 = 0x31;

/// Tag of a constructed context-specific field `[n]`.
pub(crate) const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// One decoded TLV.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    /// The content octets.
    pub value: &'a [u8],
    /// The whole element, header included.
    pub raw: &'a [u8],
    /// Absolute offset of the element's first byte.
    pub offset: usize,
    /// Absolute offset of the first content byte.
    pub value_offset: usize,
}

/// Reads consecutive DER elements from a buffer.
#[derive(Clone, Debug)]
pub(crate) struct DerReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute offset of `data[0]`, for error messages.
    base: usize,
}

impl<'a> DerReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self::at(data, 0)
    }

    pub fn at(data: &'a [u8], base: usize) -> Self {
        Self { data, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Parses a header at the current position without consuming it: (tag, header length,
    /// content length).
    pub fn peek_header(&self, field: &'static str) -> Result<(u8, usize, usize), FormatError> {
        parse_header(self.data.get(self.pos..).unwrap_or_default(), field)
            .map_err(|e| e.shifted(self.offset()))
    }

    pub fn read_any(&mut self, field: &'static str) -> Result<Tlv<'a>, FormatError> {
        let start = self.pos;
        let (tag, header_len, len) = self.peek_header(field)?;
        let end = start
            .checked_add(header_len)
            .and_then(|v| v.checked_add(len))
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| FormatError::truncated(field, self.offset()))?;
        let raw = &self.data[start..end];
        let tlv = Tlv {
            tag,
            value: &raw[header_len..],
            raw,
            offset: self.base + start,
            value_offset: self.base + start + header_len,
        };
        self.pos = end;
        Ok(tlv)
    }

    pub fn read(&mut self, tag: u8, field: &'static str) -> Result<Tlv<'a>, FormatError> {
        match self.peek_tag() {
            None => Err(FormatError::truncated(field, self.offset())),
            Some(actual) if actual != tag => Err(FormatError::new(
                FormatErrorKind::UnexpectedTag {
                    field,
                    expected: tag,
                    actual,
                },
                self.offset(),
            )),
            Some(_) => self.read_any(field),
        }
    }

    /// Reads a constructed element and returns a reader over its content.
    pub fn nested(&mut self, tag: u8, field: &'static str) -> Result<DerReader<'a>, FormatError> {
        let tlv = self.read(tag, field)?;
        Ok(DerReader::at(tlv.value, tlv.value_offset))
    }

    /// Reads an optional element with the given tag.
    pub fn optional(
        &mut self,
        tag: u8,
        field: &'static str,
    ) -> Result<Option<Tlv<'a>>, FormatError> {
        if self.peek_tag() == Some(tag) {
            self.read(tag, field).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn octet_string(&mut self, field: &'static str) -> Result<&'a [u8], FormatError> {
        Ok(self.read(TAG_OCTET_STRING, field)?.value)
    }

    pub fn utf8_string(&mut self, field: &'static str) -> Result<&'a str, FormatError> {
        let tlv = self.read(TAG_UTF8_STRING, field)?;
        core::str::from_utf8(tlv.value).map_err(|_| FormatError::invalid(field, tlv.offset))
    }

    /// Reads the content of an OBJECT IDENTIFIER (the bytes compared against the OID table).
    pub fn oid(&mut self, field: &'static str) -> Result<&'a [u8], FormatError> {
        let tlv = self.read(TAG_OID, field)?;
        if tlv.value.is_empty() || tlv.value.last().is_some_and(|b| b & 0x80 != 0) {
            return Err(FormatError::invalid(field, tlv.offset));
        }
        Ok(tlv.value)
    }

    /// Reads a non-negative INTEGER that fits in a `u64`, in minimal two's complement.
    pub fn uint(&mut self, field: &'static str) -> Result<u64, FormatError> {
        let tlv = self.read(TAG_INTEGER, field)?;
        decode_uint(tlv.value).ok_or_else(|| FormatError::invalid(field, tlv.offset))
    }

    /// Reads a signed INTEGER that fits in an `i64`, in minimal two's complement.
    pub fn int(&mut self, field: &'static str) -> Result<i64, FormatError> {
        let tlv = self.read(TAG_INTEGER, field)?;
        decode_int(tlv.value).ok_or_else(|| FormatError::invalid(field, tlv.offset))
    }

    /// Requires that the reader is exhausted.
    pub fn finish(&self, field: &'static str) -> Result<(), FormatError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(FormatError::new(
                FormatErrorKind::TrailingData { field },
                self.offset(),
            ))
        }
    }
}

/// Parses a TLV header: (tag, header length, content length). Offsets in errors are relative.
pub(crate) fn parse_header(
    data: &[u8],
    field: &'static str,
) -> Result<(u8, usize, usize), FormatError> {
    let (&tag, rest) = data
        .split_first()
        .ok_or_else(|| FormatError::truncated(field, 0))?;
    if tag & 0x1f == 0x1f {
        // High tag numbers never occur in these schemas.
        return Err(FormatError::invalid(field, 0));
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| FormatError::truncated(field, 1))?;
    if first < 0x80 {
        return Ok((tag, 2, usize::from(first)));
    }
    let count = usize::from(first & 0x7f);
    let bad_length = || FormatError::new(FormatErrorKind::InvalidLength { field }, 1);
    if count == 0 || count > 4 {
        return Err(bad_length());
    }
    let bytes = rest
        .get(..count)
        .ok_or_else(|| FormatError::truncated(field, 2))?;
    if bytes[0] == 0 {
        return Err(bad_length());
    }
    let len = bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if len < 0x80 {
        return Err(bad_length());
    }
    Ok((tag, 2 + count, len))
}

fn decode_uint(value: &[u8]) -> Option<u64> {
    let v = decode_int(value)?;
    u64::try_from(v).ok()
}

fn decode_int(value: &[u8]) -> Option<i64> {
    let (&first, _) = value.split_first()?;
    if value.len() > 8 {
        return None;
    }
    if let Some(&second) = value.get(1) {
        // Minimal encoding: the first nine bits may not all be equal.
        if (first == 0x00 && second & 0x80 == 0) || (first == 0xff && second & 0x80 != 0) {
            return None;
        }
    }
    let init: i64 = if first & 0x80 != 0 { -1 } else { 0 };
    Some(value.iter().fold(init, |acc, &b| (acc << 8) | i64::from(b)))
}

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one TLV.
pub(crate) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// Encodes a constructed element from already encoded children.
pub(crate) fn constructed(tag: u8, children: &[&[u8]]) -> Vec<u8> {
    let len = children.iter().map(|c| c.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    push_len(&mut out, len);
    for c in children {
        out.extend_from_slice(c);
    }
    out
}

pub(crate) fn sequence(children: &[&[u8]]) -> Vec<u8> {
    constructed(TAG_SEQUENCE, children)
}

/// Encodes a SET OF in DER canonical order: sorted by complete encoding, a shorter encoding that
/// is a prefix of a longer one first (spec §1 item 3).
pub(crate) fn set_of(mut elements: Vec<Vec<u8>>) -> Vec<u8> {
    elements.sort();
    let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
    constructed(TAG_SET, &refs)
}

pub(crate) fn octet_string(value: &[u8]) -> Vec<u8> {
    tlv(TAG_OCTET_STRING, value)
}

pub(crate) fn oid(content: &[u8]) -> Vec<u8> {
    tlv(TAG_OID, content)
}

pub(crate) fn utf8_string(value: &str) -> Vec<u8> {
    tlv(TAG_UTF8_STRING, value.as_bytes())
}

/// Encodes a signed integer in minimal two's complement.
pub(crate) fn int(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (a, b) = (bytes[start], bytes[start + 1]);
        if (a == 0x00 && b & 0x80 == 0) || (a == 0xff && b & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(TAG_INTEGER, &bytes[start..])
}

/// Encodes a non-negative integer. Values above `i64::MAX` cannot occur in these formats
/// (lengths are bounded by memory), so they saturate.
pub(crate) fn uint(value: u64) -> Vec<u8> {
    if let Ok(v) = i64::try_from(value) {
        int(v)
    } else {
        let mut content = vec![0u8];
        content.extend_from_slice(&value.to_be_bytes());
        tlv(TAG_INTEGER, &content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_round_trip() {
        assert_eq!(int(0), [0x02, 0x01, 0x00]);
        assert_eq!(int(160), [0x02, 0x02, 0x00, 0xa0]);
        assert_eq!(int(-1), [0x02, 0x01, 0xff]);
        assert_eq!(int(-129), [0x02, 0x02, 0xff, 0x7f]);
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            65535,
            i64::MAX,
            -1,
            -128,
            -129,
            i64::MIN,
        ] {
            let enc = int(v);
            assert_eq!(DerReader::new(&enc).int("x").ok(), Some(v), "{v}");
        }
        assert_eq!(uint(u64::MAX)[1], 9);
        assert_eq!(DerReader::new(&uint(u64::MAX)).uint("x").ok(), None);
    }

    #[test]
    fn non_minimal_integers_are_rejected() {
        assert!(DerReader::new(&[0x02, 0x02, 0x00, 0x01]).int("x").is_err());
        assert!(DerReader::new(&[0x02, 0x02, 0xff, 0x80]).int("x").is_err());
        assert!(DerReader::new(&[0x02, 0x00]).int("x").is_err());
        assert!(DerReader::new(&[0x02, 0x01, 0xff]).uint("x").is_err());
    }

    #[test]
    fn lengths_round_trip_and_reject_non_minimal() {
        for len in [0usize, 1, 127, 128, 255, 256, 70000] {
            let enc = tlv(TAG_OCTET_STRING, &vec![7u8; len]);
            let mut r = DerReader::new(&enc);
            assert_eq!(r.octet_string("x").map(<[u8]>::len).ok(), Some(len));
            assert!(r.finish("x").is_ok());
        }
        // 0x81 0x05: long form for a short length.
        assert!(DerReader::new(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5])
            .octet_string("x")
            .is_err());
        // Indefinite length.
        assert!(DerReader::new(&[0x30, 0x80, 0, 0]).read_any("x").is_err());
        // Leading zero length byte.
        assert!(DerReader::new(&[0x04, 0x82, 0x00, 0x80])
            .read_any("x")
            .is_err());
    }

    #[test]
    fn truncation_is_reported_with_offset() {
        let enc = sequence(&[&octet_string(&[1, 2, 3])]);
        for cut in 0..enc.len() {
            let err = DerReader::new(&enc[..cut]).read_any("outer");
            assert!(err.is_err(), "cut at {cut}");
        }
        let err = DerReader::at(&[0x04, 0x05, 1], 100).octet_string("f");
        assert_eq!(
            err.err().map(|e| (e.kind, e.offset)),
            Some((FormatErrorKind::Truncated { field: "f" }, 100))
        );
    }

    #[test]
    fn set_of_sorts_like_der() {
        let a = octet_string(&[2]);
        let b = octet_string(&[1, 0]);
        let c = octet_string(&[1]);
        let set = set_of(vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!(set, constructed(TAG_SET, &[&c, &a, &b]));
    }
}
