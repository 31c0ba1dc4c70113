//! Push hooks: the events a Sealkit server POSTs to an application's webhook, so the
//! application's backend can send mobile push notifications (docs/chat.md, "Push hooks").
//!
//! An event is metadata only ([`HookEvent`]: application, channel, seq, sender, kind), never a
//! ciphertext. The body is signed with the hook's secret, Stripe-style: the
//! [`SIGNATURE_HEADER`] is `t=<unix seconds>,v1=<hex HMAC-SHA256>` where the MAC is over
//! `"<t>.<body>"` with the secret's UTF-8 bytes as the key. A receiver checks the MAC in
//! constant time and refuses a timestamp too far from its clock (a replayed delivery), then
//! deduplicates on [`HookEvent::id`] (a retried delivery repeats it).
//!
//! ```
//! use sealkit_proto::hooks::{sign, verify, HookEvent, HookKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = "whsec_0123456789abcdef";
//! let body = br#"{"id":"7","app":"a","channel":"team","kind":"message","seq":3,"at":1}"#;
//! let header = sign(secret, 1_700_000_000, body);
//! let event: HookEvent = verify(secret, &header, body, 1_700_000_030, 300)?;
//! assert_eq!((event.kind, event.seq), (HookKind::Message, Some(3)));
//! assert!(verify(secret, &header, b"{}", 1_700_000_030, 300).is_err());
//! # Ok(())
//! # }
//! ```

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header carrying the timestamp and the signature: `t=<unix seconds>,v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "Sealkit-Signature";
/// The header repeating [`HookEvent::id`], for receivers that deduplicate before parsing.
pub const EVENT_ID_HEADER: &str = "Sealkit-Event-Id";

/// What happened.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HookKind {
    /// A new message (`seq`, `sender`).
    Message,
    /// A message was edited by its sender (`seq`, `sender`).
    Edit,
    /// A message was deleted (`seq`, `sender` its author, `deleted_by` who deleted it).
    Delete,
    /// A member was added (`identity`, `member_version`).
    MemberAdded,
    /// A member was removed or left (`identity`, `member_version`).
    MemberRemoved,
}

/// The JSON body of one hook delivery. Fields that do not apply to the kind are left out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookEvent {
    /// The event's id, unique on the server and the same on every retry of it.
    pub id: String,
    /// The application id.
    pub app: String,
    /// The channel id.
    pub channel: String,
    /// What happened.
    pub kind: HookKind,
    /// The message's `seq` (message kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The message's sender (message kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Who deleted the message ([`HookKind::Delete`]): the sender or a channel admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    /// The member added or removed (member kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The channel's membership version after the change (member kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_version: Option<i64>,
    /// When it happened, Unix milliseconds (server time).
    pub at: i64,
}

/// Why a delivery does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HookVerifyError {
    /// The signature header is not `t=<digits>,v1=<hex>`.
    #[error("malformed {SIGNATURE_HEADER} header")]
    MalformedHeader,
    /// The timestamp is further from the receiver's clock than it allows.
    #[error("the delivery's timestamp is outside the allowed window")]
    Stale,
    /// No `v1` signature matches the body and timestamp.
    #[error("signature mismatch")]
    BadSignature,
    /// The body verified but is not a [`HookEvent`].
    #[error("body is not a hook event: {0}")]
    Body(String),
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable_key_length(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cold]
fn unreachable_key_length() -> Hmac<Sha256> {
    // `InvalidLength` is only returned by MACs with fixed key sizes; HMAC has none. Fall back
    // to an empty key rather than panic, and it would still never verify another secret.
    <Hmac<Sha256> as Mac>::new(&Default::default())
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Checks a delivery: the header's timestamp within `tolerance_secs` of `now` (Unix seconds),
/// one of its `v1` signatures (there may be several while a secret is being replaced) matching
/// in constant time, then parses the body.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<HookEvent, HookVerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                timestamp = Some(
                    t.parse::<i64>()
                        .map_err(|_| HookVerifyError::MalformedHeader)?,
                )
            }
            Some(("v1", hex)) => signatures.push(decode_hex(hex)?),
            // Other schemes may follow; they are not ours to check.
            Some(_) => {}
            None => return Err(HookVerifyError::MalformedHeader),
        }
    }
    let timestamp = timestamp.ok_or(HookVerifyError::MalformedHeader)?;
    if signatures.is_empty() {
        return Err(HookVerifyError::MalformedHeader);
    }
    if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(HookVerifyError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    if !signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok())
    {
        return Err(HookVerifyError::BadSignature);
    }
    serde_json::from_slice(body).map_err(|e| HookVerifyError::Body(e.to_string()))
}

fn decode_hex(text: &str) -> Result<Vec<u8>, HookVerifyError> {
    if text.len() % 2 != 0 {
        return Err(HookVerifyError::MalformedHeader);
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or(HookVerifyError::MalformedHeader)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Python: hmac.new(b"whsec_test", b'1700000000.{"id":"1"}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"id":"1"}"#),
            "t=1700000000,v1=11bf4466ea17c3df3fd743af0b435368e16b7a05eb8eced85e8c4670767bdec5"
        );
    }

    #[test]
    fn verification_rejects_tampering_staleness_and_bad_headers() {
        let body = br#"{"id":"1","app":"a","channel":"c","kind":"member_added","identity":"dave","member_version":2,"at":5}"#;
        let header = sign("s3cret", 1000, body);
        let event = verify("s3cret", &header, body, 1100, 300).unwrap();
        assert_eq!(event.kind, HookKind::MemberAdded);
        assert_eq!(event.identity.as_deref(), Some("dave"));
        assert_eq!(
            verify("other", &header, body, 1100, 300),
            Err(HookVerifyError::BadSignature)
        );
        let mut changed = body.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            verify("s3cret", &header, &changed, 1100, 300),
            Err(HookVerifyError::BadSignature)
        );
        assert_eq!(
            verify("s3cret", &header, body, 1400, 300),
            Err(HookVerifyError::Stale)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace("t=1000", "t=1001");
        assert_eq!(
            verify("s3cret", &moved, body, 1100, 300),
            Err(HookVerifyError::BadSignature)
        );
        for bad in [
            "",
            "t=1000",
            "v1=00",
            "t=x,v1=00",
            "t=1000,v1=0g",
            "garbage",
        ] {
            assert_eq!(
                verify("s3cret", bad, body, 1100, 300),
                Err(HookVerifyError::MalformedHeader),
                "{bad}"
            );
        }
        // A second signature (a secret being replaced) is accepted when one matches.
        let two = format!("{header},v1={}", "00".repeat(32));
        assert!(verify("s3cret", &two, body, 1100, 300).is_ok());
    }
}
