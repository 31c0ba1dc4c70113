//! The text encoding of the two base64 blobs that the JS SDK builds from JavaScript strings: the JWT
//! header/payload and the card content snapshot (spec §2 "Encoding caveat", §3.1).
//!
//! The JS SDK base64-encodes those strings with the `base-64` package, that is as **Latin-1** bytes
//! (one byte per character, characters above U+00FF make it throw). For ASCII text this is the same
//! as UTF-8. Other SDKs send UTF-8. The decoder therefore reads UTF-8 and falls back to Latin-1 when
//! the bytes are not valid UTF-8; the encoder writes what the JS SDK writes whenever that reads back
//! to the same text, and UTF-8 otherwise.

use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// Decodes `bytes` as UTF-8, or, when they are not valid UTF-8, as Latin-1 (byte `b` → `U+00bb`).
pub(crate) fn decode_js_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Encodes `text` the way the JS SDK does (Latin-1) when every character fits in a byte and the
/// Latin-1 bytes read back to the same text through [`decode_js_text`]; UTF-8 otherwise (where the
/// JS SDK throws, or where the Latin-1 bytes would happen to be valid UTF-8 of another text).
pub(crate) fn encode_js_text(text: &str) -> Vec<u8> {
    if text.is_ascii() {
        return text.as_bytes().to_vec();
    }
    let latin1: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c).ok()).collect();
    match latin1 {
        Some(bytes) if std::str::from_utf8(&bytes).is_err() => bytes,
        _ => text.as_bytes().to_vec(),
    }
}

/// Why a blob is not the expected JSON object.
#[derive(Debug)]
pub(crate) enum JsonObjectError {
    /// The top-level value is not an object (or the text is empty).
    NotObject,
    /// Invalid JSON, a missing or duplicate field, a wrong type, trailing characters.
    Invalid(serde_json::Error),
}

/// Parses `text` as a JSON **object** into `T`. Serde's derived structs also accept arrays, which
/// this refuses; duplicate fields and trailing characters are errors.
pub(crate) fn json_object<T: DeserializeOwned>(text: &str) -> Result<T, JsonObjectError> {
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !start.starts_with('{') {
        return Err(JsonObjectError::NotObject);
    }
    serde_json::from_str(text).map_err(JsonObjectError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_prefers_utf8_and_falls_back_to_latin1() {
        assert_eq!(decode_js_text(b"plain"), "plain");
        assert_eq!(decode_js_text("j\u{f6}rg".as_bytes()), "j\u{f6}rg");
        assert_eq!(decode_js_text(b"j\xf6rg"), "j\u{f6}rg");
        assert_eq!(decode_js_text(b"\xff\x80"), "\u{ff}\u{80}");
    }

    #[test]
    fn encode_matches_js_and_always_reads_back() {
        assert_eq!(encode_js_text("alice"), b"alice");
        assert_eq!(encode_js_text("j\u{f6}rg"), b"j\xf6rg");
        // Above U+00FF the JS SDK throws; UTF-8 is the only sensible choice.
        assert_eq!(encode_js_text("\u{20ac}"), "\u{20ac}".as_bytes());
        // "Ã¶" in Latin-1 is C3 B6, which is valid UTF-8 for "ö": UTF-8 keeps it unambiguous.
        assert_eq!(encode_js_text("\u{c3}\u{b6}"), "\u{c3}\u{b6}".as_bytes());
        for text in [
            "alice",
            "j\u{f6}rg",
            "\u{c3}\u{b6}",
            "\u{20ac}\u{f6}",
            "\u{ff}",
        ] {
            assert_eq!(decode_js_text(&encode_js_text(text)), text);
        }
    }

    #[test]
    fn json_object_refuses_non_objects() {
        #[derive(serde::Deserialize, Debug)]
        struct Pair {
            #[allow(dead_code)]
            a: i64,
        }
        assert!(json_object::<Pair>(" {\"a\":1}").is_ok());
        assert!(matches!(
            json_object::<Pair>("[1]"),
            Err(JsonObjectError::NotObject)
        ));
        assert!(matches!(
            json_object::<Pair>(""),
            Err(JsonObjectError::NotObject)
        ));
        assert!(matches!(
            json_object::<Pair>("{\"a\":1,\"a\":2}"),
            Err(JsonObjectError::Invalid(_))
        ));
        assert!(matches!(
            json_object::<Pair>("{\"a\":1} x"),
            Err(JsonObjectError::Invalid(_))
        ));
    }
}
