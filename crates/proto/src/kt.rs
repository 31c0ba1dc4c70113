//! Key transparency (Sealkit's own API under `/kt/v1`, not a Virgil service): the wire types of
//! the verifiable key directory each application has.
//!
//! The server keeps, per application, an append-only verifiable map (an AKD directory) from
//! each identity to a commitment of its current cards, publishes a new epoch whenever cards
//! changed, and signs every epoch's root hash with the deployment's KT key (a [`SignedHead`]).
//! The proofs travel as base64 of AKD's protobuf messages; the crate `sealkit-kt` decodes and
//! verifies them. Nothing here verifies anything: these are only the JSON shapes.
//!
//! Authentication: `lookup` and `history` need the same `Authorization: Virgil <jwt>` as the
//! card service (the application is the token's); [`paths::KEY`], [`paths::head`] and
//! [`paths::audit`] need no token, so anyone can audit a directory.
//!
//! ```
//! use sealkit_proto::kt::{paths, SignedHead};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! assert_eq!(paths::lookup("alice"), "/kt/v1/lookup/alice");
//! assert_eq!(paths::audit("0123", 4, 9), "/kt/v1/apps/0123/audit?start=4&end=9");
//! let head: SignedHead = serde_json::from_str(
//!     r#"{"app_id":"0123","epoch":7,"root_hash":"00","vrf_public_key":"11","signature":"AA=="}"#,
//! )?;
//! assert_eq!(head.epoch, 7);
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};

/// Endpoint paths.
pub mod paths {
    /// `GET`, no token: the deployment's KT signing key ([`super::KeyResponse`]).
    pub const KEY: &str = "/kt/v1/key";

    /// `GET`, no token: the newest [`super::SignedHead`] of an application's directory.
    pub fn head(app_id: &str) -> String {
        format!("/kt/v1/apps/{app_id}/head")
    }

    /// `GET`, no token: the append-only proof from epoch `start` to epoch `end`
    /// ([`super::AuditResponse`]); `start < end`, at most [`super::MAX_AUDIT_EPOCHS`] apart.
    pub fn audit(app_id: &str, start: u64, end: u64) -> String {
        format!("/kt/v1/apps/{app_id}/audit?start={start}&end={end}")
    }

    /// `GET`, token: the lookup proof of an identity's current entry in the token's application
    /// ([`super::LookupResponse`]).
    pub fn lookup(identity: &str) -> String {
        format!("/kt/v1/lookup/{identity}")
    }

    /// `GET`, token: the key-history proof of an identity ([`super::HistoryResponse`]), every
    /// version. `history_recent` asks for the newest `n` only.
    pub fn history(identity: &str) -> String {
        format!("/kt/v1/history/{identity}")
    }

    /// `GET`, token: the key-history proof of the newest `n` versions of an identity.
    pub fn history_recent(identity: &str, n: u64) -> String {
        format!("/kt/v1/history/{identity}?most_recent={n}")
    }
}

/// Most epochs one audit request may span (`end - start`); an auditor further behind asks in
/// steps.
pub const MAX_AUDIT_EPOCHS: u64 = 1000;

/// Error codes of the KT API, in the `{"code", "message"}` body shared with the Virgil
/// services. Authentication errors use the common codes (2030x).
pub mod codes {
    /// 404: the application has no directory yet (nothing was ever published in it).
    pub const NO_DIRECTORY: u32 = 80001;
    /// 404: the identity has no entry in the directory (it never had a card, or its first card
    /// is newer than the latest epoch: ask again after the next epoch).
    pub const NOT_IN_DIRECTORY: u32 = 80002;
    /// 400: invalid epoch range, identity or parameter.
    pub const INVALID: u32 = 80003;
    /// 404: an epoch of the requested range is not (yet) published.
    pub const NO_SUCH_EPOCH: u32 = 80004;
    /// 503: key transparency is turned off on this server.
    pub const DISABLED: u32 = 80005;
    /// 404, only to `GET /kt/v1/lookup/{identity}?pending=true`: the identity has cards but no
    /// entry yet, its first one is queued for the next epoch (ask again after it).
    pub const ENTRY_PENDING: u32 = 80006;
}

/// `GET /kt/v1/key`: the deployment's KT signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResponse {
    /// The Ed25519 public key that signs every [`SignedHead`] of this deployment, base64 of the
    /// 32 raw bytes. Clients should pin it out of band (it is printed at server start).
    pub signing_public_key: String,
    /// How often the server publishes an epoch, in milliseconds (its `kt_epoch_secs`). A card is
    /// in the directory at most about two epochs after it was published; clients wait that long
    /// for a new card before refusing it. Absent from servers that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_millis: Option<u64>,
}

/// The signed head of one epoch of one application's directory. The exact signed bytes are
/// defined by `sealkit_kt::SignedHead::signed_message` (docs/key-transparency.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedHead {
    /// The application whose directory this is.
    pub app_id: String,
    /// The epoch (1 for the first publish; 0 is the empty directory).
    pub epoch: u64,
    /// The directory's root hash at this epoch, lowercase hex (32 bytes).
    pub root_hash: String,
    /// The application's VRF public key, lowercase hex (32 bytes): hides identities in the
    /// tree. Signed with the head, so a server cannot switch it.
    pub vrf_public_key: String,
    /// Ed25519 signature by the deployment KT key, base64 (64 bytes).
    pub signature: String,
}

/// `GET /kt/v1/lookup/{identity}`: the identity's current entry, proved against `head`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The head the proof is for (the newest epoch when it was made).
    pub head: SignedHead,
    /// The identity asked for.
    pub identity: String,
    /// Base64 of AKD's protobuf `LookupProof` (it carries the entry's version, the epoch it was
    /// published in and its value: the card-set commitment).
    pub proof: String,
    /// Only when asked (`?pending=true`): whether the identity's current cards differ from the
    /// entry proved here, i.e. a change is queued for the next epoch. A hint for how long to
    /// wait for a new card, never a proof of anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<bool>,
}

/// `GET /kt/v1/history/{identity}`: every version of the identity's entry (newest first),
/// proved against `head`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The head the proof is for.
    pub head: SignedHead,
    /// The identity asked for.
    pub identity: String,
    /// `None`: the complete history; `Some(n)`: only the newest `n` versions were asked for (the
    /// verifier must know, it changes what the proof must contain).
    pub most_recent: Option<u64>,
    /// Base64 of AKD's protobuf `HistoryProof`.
    pub proof: String,
}

/// `GET /kt/v1/apps/{app_id}/audit?start=S&end=E`: proof that epoch `E`'s tree is an
/// append-only extension of epoch `S`'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResponse {
    /// The signed heads of epochs `S, S+1, ..., E`, in order.
    pub heads: Vec<SignedHead>,
    /// Base64 of AKD's protobuf `AppendOnlyProof`.
    pub proof: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_response_round_trips() -> Result<(), serde_json::Error> {
        let response = LookupResponse {
            head: SignedHead {
                app_id: "a".into(),
                epoch: 3,
                root_hash: "ab".into(),
                vrf_public_key: "cd".into(),
                signature: "AA==".into(),
            },
            identity: "alice".into(),
            proof: "CgA=".into(),
            pending: None,
        };
        let text = serde_json::to_string(&response)?;
        assert!(text.contains(r#""epoch":3"#));
        assert_eq!(serde_json::from_str::<LookupResponse>(&text)?, response);
        Ok(())
    }

    #[test]
    fn key_response_epoch_is_optional() -> Result<(), serde_json::Error> {
        let old: KeyResponse = serde_json::from_str(r#"{"signing_public_key":"AA=="}"#)?;
        assert_eq!(old.epoch_millis, None);
        assert_eq!(
            serde_json::to_string(&old)?,
            r#"{"signing_public_key":"AA=="}"#
        );
        let new: KeyResponse =
            serde_json::from_str(r#"{"signing_public_key":"AA==","epoch_millis":250}"#)?;
        assert_eq!(new.epoch_millis, Some(250));
        Ok(())
    }
}
