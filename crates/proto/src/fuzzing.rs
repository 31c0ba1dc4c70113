//! Entry points for the `cargo fuzz` targets in `fuzz/` that cover what an unauthenticated client
//! sends first: the JWT, cards and their snapshots, the JSON request bodies and the chat
//! WebSocket frames. Each parses untrusted bytes exactly the way the server does, must never
//! panic, and where parsing succeeds checks that serializing and parsing again gives an equal
//! value, so a failed round trip counts as a crash too. Compiled only with the `fuzzing` feature.

use crate::cards::{CardContent, CardId, RawSignedModel, SearchRequest};
use crate::chat::{
    validate_channel_id, validate_client_id, AddMember, ClientFrame, NewChannel, NewMessage,
    ServerFrame,
};
use crate::jwt::{validate_identity, Jwt};
use crate::keyknox::{V1Push, V2Keys, V2Pull, V2Push, V2Reset};
use crate::pfs::{self, PickBatch, PickOne, UploadKeys, ValidateKeys};
use crate::pythia::{BrainkeyRequest, PasswordRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealkit_crypto::PrivateKey;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// The number of request body types [`request_body`] chooses from with its first byte.
pub const REQUEST_BODY_KINDS: u8 = 15;

/// A token as the server reads it from `Authorization: Virgil <jwt>`: UTF-8, then
/// [`Jwt::parse`]. A parsed token keeps its exact text, its signed part is a prefix of it, the
/// `Authorization` header built from it parses back to the same token, and verification with a
/// fixed key (Ed25519 from the seed `[7; 32]`, which no input can have signed for) fails cleanly
/// even for the token's own application id and time.
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = Jwt::parse(text) else {
        return;
    };
    assert_eq!(token.as_str(), text);
    assert_eq!(token.to_string(), text);
    assert!(text.as_bytes().starts_with(token.signed_part()));
    assert_eq!(
        Jwt::from_authorization(&token.authorization()).as_ref(),
        Ok(&token)
    );
    if let Ok(identity) = token.identity() {
        let _ = validate_identity(identity);
    }
    let claims = token.claims();
    let app_id = token.app_id().unwrap_or("fuzz");
    let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    assert!(token
        .verify(key.public_key(), app_id, claims.iat, 0)
        .is_err());
}

/// A card as the server's publish handler reads it: [`RawSignedModel`] from JSON, then its
/// content, id, public key and self-signature. The raw bytes are also tried as a content
/// snapshot ([`CardContent::from_snapshot`]); wherever a snapshot parses,
/// `from_snapshot(to_snapshot(x)) == x`.
pub fn card(data: &[u8]) {
    snapshot(data);
    let Ok(card) = serde_json::from_slice::<RawSignedModel>(data) else {
        return;
    };
    assert_json_round_trip(&card);
    if let Ok(bytes) = card.snapshot_bytes() {
        assert_eq!(card.card_id().ok(), Some(CardId::from_snapshot(&bytes)));
        snapshot(&bytes);
    }
    let _ = card.content();
    let _ = card.public_key();
    let _ = card.verify_self_signature();
}

/// Snapshot bytes: parse, re-encode the JS SDK's way, parse again; the card id named as the
/// predecessor must print back to the text it was parsed from, up to letter case.
fn snapshot(bytes: &[u8]) {
    let Ok(content) = CardContent::from_snapshot(bytes) else {
        return;
    };
    let again = content
        .to_snapshot()
        .and_then(|encoded| CardContent::from_snapshot(&encoded));
    assert_eq!(again.as_ref(), Ok(&content));
    let _ = content.decode_public_key();
    let _ = validate_identity(&content.identity);
    if let Some(previous) = &content.previous_card_id {
        if let Ok(id) = previous.parse::<CardId>() {
            assert_eq!(id.to_string(), previous.to_ascii_lowercase());
        }
    }
}

/// A request body as the server's JSON extractor reads it. The first byte selects the type
/// (modulo [`REQUEST_BODY_KINDS`]): 0 cards `SearchRequest`, 1 keyknox `V1Push`, 2 `V2Push`,
/// 3 `V2Pull`, 4 `V2Keys`, 5 `V2Reset`, 6 pythia `BrainkeyRequest`, 7 `PasswordRequest`, 8 chat
/// `NewChannel`, 9 `AddMember`, 10 `NewMessage`, 11 ratchet keys `UploadKeys`, 12 `ValidateKeys`,
/// 13 `PickOne`, 14 `PickBatch`; the rest is the JSON body. A parsed body must
/// survive serialize → parse unchanged; then the validators the server applies to its fields
/// run (identities, channel and client ids, card ids, ratchet keys and their ids), and its base64
/// fields, where they decode, must re-encode to the same text (the server decodes them with
/// canonical padding).
pub fn request_body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % REQUEST_BODY_KINDS {
        0 => {
            if let Some(search) = parse_round_trip::<SearchRequest>(body) {
                identities(&search.identities);
            }
        }
        1 => {
            if let Some(push) = parse_round_trip::<V1Push>(body) {
                base64_fields(&[&push.meta, &push.value]);
            }
        }
        2 => {
            if let Some(push) = parse_round_trip::<V2Push>(body) {
                identities(&push.identities);
                base64_fields(&[&push.meta, &push.value]);
            }
        }
        3 => {
            if let Some(pull) = parse_round_trip::<V2Pull>(body) {
                identities(pull.identity.as_slice());
            }
        }
        4 => {
            if let Some(keys) = parse_round_trip::<V2Keys>(body) {
                identities(keys.identity.as_slice());
            }
        }
        5 => {
            if let Some(reset) = parse_round_trip::<V2Reset>(body) {
                identities(reset.identity.as_slice());
            }
        }
        6 => {
            if let Some(request) = parse_round_trip::<BrainkeyRequest>(body) {
                base64_fields(&[&request.blinded_password]);
            }
        }
        7 => {
            if let Some(request) = parse_round_trip::<PasswordRequest>(body) {
                base64_fields(&[&request.blinded_password]);
                let _ = validate_identity(&request.user_id);
            }
        }
        8 => {
            if let Some(channel) = parse_round_trip::<NewChannel>(body) {
                let _ = validate_channel_id(&channel.id);
                identities(&channel.members);
            }
        }
        9 => {
            if let Some(add) = parse_round_trip::<AddMember>(body) {
                let _ = validate_identity(&add.identity);
            }
        }
        10 => {
            if let Some(message) = parse_round_trip::<NewMessage>(body) {
                let _ = validate_client_id(&message.client_id);
                base64_fields(&[&message.ciphertext]);
            }
        }
        11 => {
            if let Some(upload) = parse_round_trip::<UploadKeys>(body) {
                if let Some(card_id) = &upload.identity_card_id {
                    let _ = card_id.parse::<CardId>();
                }
                if let Some(long_term) = &upload.long_term_key {
                    ratchet_keys(&[&long_term.public_key]);
                    base64_fields(&[&long_term.signature]);
                }
                let one_time: Vec<&String> = upload.one_time_keys.iter().flatten().collect();
                ratchet_keys(&one_time);
            }
        }
        12 => {
            if let Some(validate) = parse_round_trip::<ValidateKeys>(body) {
                let ids: Vec<&String> = validate
                    .long_term_key_id
                    .iter()
                    .chain(validate.one_time_keys_ids.iter().flatten())
                    .collect();
                base64_fields(&ids);
            }
        }
        13 => {
            if let Some(pick) = parse_round_trip::<PickOne>(body) {
                let _ = validate_identity(&pick.identity);
            }
        }
        _ => {
            if let Some(pick) = parse_round_trip::<PickBatch>(body) {
                identities(&pick.identities);
            }
        }
    }
}

/// Ratchet keys as the key service reads them: base64, then raw or SPKI DER X25519; a key that
/// is accepted has 32 raw bytes that are the key itself or the tail of its DER, and an id.
fn ratchet_keys(keys: &[&String]) {
    base64_fields(keys);
    for key in keys {
        let Ok(bytes) = STANDARD.decode(key.as_bytes()) else {
            continue;
        };
        if let Ok(raw) = pfs::x25519_raw(&bytes) {
            assert!(bytes.ends_with(&raw));
            let _ = pfs::key_id(&raw);
        }
    }
}

/// A WebSocket text frame (UTF-8, as the WebSocket layer delivers it) parsed as the
/// [`ClientFrame`] the server reads, and as the [`ServerFrame`] a client reads; each that parses
/// must survive serialize → parse unchanged.
pub fn chat_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ClientFrame::Subscribe { channel, .. } | ClientFrame::Unsubscribe { channel }) =
        parse_round_trip::<ClientFrame>(text.as_bytes())
    {
        let _ = validate_channel_id(&channel);
    }
    let _ = parse_round_trip::<ServerFrame>(text.as_bytes());
}

/// Parses `json` as `T`; when that succeeds, asserts that it serializes and parses back equal.
fn parse_round_trip<T>(json: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = serde_json::from_slice::<T>(json).ok()?;
    assert_json_round_trip(&value);
    Some(value)
}

fn assert_json_round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let again = serde_json::to_vec(value)
        .ok()
        .and_then(|json| serde_json::from_slice::<T>(&json).ok());
    assert_eq!(again.as_ref(), Some(value));
}

fn identities(identities: &[String]) {
    for identity in identities {
        let _ = validate_identity(identity);
    }
}

fn base64_fields(fields: &[&String]) {
    for field in fields {
        if let Ok(bytes) = STANDARD.decode(field.as_bytes()) {
            assert_eq!(&STANDARD.encode(bytes), *field);
        }
    }
}
