//! `POST /card/v5/actions/search` (spec §3.3).

use super::RawSignedModel;
use serde::{Deserialize, Serialize};

/// The body of `POST /card/v5/actions/search` (spec §3.3): `{"identities":["bob","charles"]}`.
///
/// e3kit sends distinct identities, at most 50 per request from `findUsers`, but
/// `lookupPublicKeys` does not chunk.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SearchRequest {
    /// The identities to look up.
    pub identities: Vec<String>,
}

/// The body of a search response (spec §3.3): a JSON array of cards, the actual cards of the
/// requested identities plus their non-revoked predecessor chains, in any order. Clients treat a
/// JSON `null` as `[]`.
pub type SearchResponse = Vec<RawSignedModel>;
