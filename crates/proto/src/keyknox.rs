//! Keyknox wire types (spec §4 and §5): v1 (one blob per user) and v2 (addressed entries with one
//! copy per recipient). All `meta`/`value` strings are base64 text the server never interprets.

use serde::{Deserialize, Serialize};

/// Endpoint paths and header names.
pub mod paths {
    /// `GET` / `PUT` the v1 blob.
    pub const V1: &str = "/keyknox/v1";
    /// `POST`: empty the v1 blob (empty body, form content type).
    pub const V1_RESET: &str = "/keyknox/v1/reset";
    /// `POST`: write a v2 entry.
    pub const V2_PUSH: &str = "/keyknox/v2/push";
    /// `POST`: read the caller's copy of a v2 entry.
    pub const V2_PULL: &str = "/keyknox/v2/pull";
    /// `POST`: list the keys the caller can read.
    pub const V2_KEYS: &str = "/keyknox/v2/keys";
    /// `POST`: delete entries or copies.
    pub const V2_RESET: &str = "/keyknox/v2/reset";
    /// Response header with the storage hash.
    pub const HASH_HEADER: &str = "Virgil-Keyknox-Hash";
    /// Request header with the hash the client last saw.
    pub const PREVIOUS_HASH_HEADER: &str = "Virgil-Keyknox-Previous-Hash";
}

/// The Keyknox code for a previous-hash mismatch (spec §1.2).
pub const HASH_MISMATCH_CODE: u32 = 50010;

/// Error code (HTTP 413) of a v2 push that would take the owner's entries over the server's
/// per-owner storage quota. A Sealkit code: Virgil's cloud documents no such limit.
pub const QUOTA_EXCEEDED_CODE: u32 = 50013;

/// `PUT /keyknox/v1` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct V1Push {
    /// Base64 message info.
    pub meta: String,
    /// Base64 ciphertext.
    pub value: String,
}

/// The v1 blob as answered by `GET`, `PUT` and reset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct V1Value {
    /// Base64 message info ("" when empty).
    pub meta: String,
    /// Base64 ciphertext ("" when empty).
    pub value: String,
    /// `"N.0"`.
    pub version: String,
}

/// `POST /keyknox/v2/push` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct V2Push {
    /// Root of the address.
    pub root: String,
    /// Path of the address.
    pub path: String,
    /// Key of the address.
    pub key: String,
    /// Identities receiving this copy.
    pub identities: Vec<String>,
    /// Base64 message info.
    pub meta: String,
    /// Base64 ciphertext.
    pub value: String,
}

/// `POST /keyknox/v2/pull` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct V2Pull {
    /// Root of the address.
    pub root: String,
    /// Path of the address.
    pub path: String,
    /// Key of the address.
    pub key: String,
    /// The owner to read from (the caller when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `POST /keyknox/v2/keys` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct V2Keys {
    /// Root of the address.
    pub root: String,
    /// Path of the address.
    pub path: String,
    /// The owner (the caller when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `POST /keyknox/v2/reset` request: any subset of the fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct V2Reset {
    /// Only this root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Only this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Only this recipient's copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// The answer of push, pull and reset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct V2Value {
    /// The entry's owner.
    pub owner: String,
    /// Root of the address.
    pub root: String,
    /// Path of the address.
    pub path: String,
    /// Key of the address.
    pub key: String,
    /// Every identity holding a copy.
    pub identities: Vec<String>,
    /// Base64 message info of the caller's copy.
    pub meta: String,
    /// Base64 ciphertext of the caller's copy.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_omits_absent_fields_and_push_answer_keeps_capture_order() {
        let r = V2Reset {
            root: Some("e3kit".into()),
            ..V2Reset::default()
        };
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some(r#"{"root":"e3kit"}"#)
        );
        let v = V2Value {
            owner: "a".into(),
            root: "r".into(),
            path: "p".into(),
            key: "k".into(),
            identities: vec!["a".into()],
            meta: "m".into(),
            value: "v".into(),
        };
        assert_eq!(
            serde_json::to_string(&v).ok().as_deref(),
            Some(
                r#"{"owner":"a","root":"r","path":"p","key":"k","identities":["a"],"meta":"m","value":"v"}"#
            )
        );
    }
}
