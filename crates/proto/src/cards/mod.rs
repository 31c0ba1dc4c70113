//! Cards service v5 (spec §3): the card model, card ids, search and the endpoints' paths.
//!
//! A card travels as a [`RawSignedModel`]: `content_snapshot` is standard base64 of the exact JSON
//! bytes the client produced ([`CardContent`]), and `signatures` sign those bytes. The snapshot is
//! kept as received; ids and signatures are computed over its decoded bytes and nothing is
//! re-serialized (spec §3.1, §8.1). `RawSignedModel` serializes compactly with its fields in
//! declaration order, so a server can store the JSON it returns and echo it verbatim.

mod card_id;
mod error;
mod model;
mod search;
#[cfg(test)]
mod tests;

pub use card_id::CardId;
pub use error::CardError;
pub use model::{CardContent, RawSignature, RawSignedModel};
pub use search::{SearchRequest, SearchResponse};

/// The only card content `version` (spec §3.1).
pub const CARD_VERSION: &str = "5.0";
/// The `signer` of the card owner's signature, made with the card's own key (spec §3.1).
pub const SELF_SIGNER: &str = "self";
/// The `signer` of the service's signature, added on publish (spec §3.1).
pub const VIRGIL_SIGNER: &str = "virgil";

/// Paths and headers of the cards service (spec §3.2 - §3.5), appended verbatim to the API URL.
pub mod paths {
    use super::CardId;

    /// `POST`: publish a card (spec §3.2). `GET {CARDS}/{card_id}`: fetch one (spec §3.4).
    pub const CARDS: &str = "/card/v5";
    /// `POST`: search cards by identities (spec §3.3).
    pub const SEARCH: &str = "/card/v5/actions/search";
    /// `POST {REVOKE_PREFIX}{card_id}` with body `{}`: revoke a card (spec §3.5).
    pub const REVOKE_PREFIX: &str = "/card/v5/actions/revoke/";
    /// Response header of `GET /card/v5/{card_id}`: `true` when the card is superseded or revoked,
    /// else `false` (spec §3.4). Spelled with a double "e", as the clients expect.
    pub const SUPERSEDED_HEADER: &str = "X-Virgil-Is-Superseeded";

    /// The path of `GET /card/v5/{card_id}` (spec §3.4).
    pub fn card(id: &CardId) -> String {
        format!("{CARDS}/{id}")
    }

    /// The path of `POST /card/v5/actions/revoke/{card_id}` (spec §3.5).
    pub fn revoke(id: &CardId) -> String {
        format!("{REVOKE_PREFIX}{id}")
    }
}
