//! The cards service v5 endpoints (spec §3.2 – §3.5).

use super::{ApiClient, Method};
use crate::error::{Error, Result};
use sealkit_proto::cards::{paths, SearchRequest};
use sealkit_proto::{CardId, RawSignedModel};

impl ApiClient {
    /// `POST /card/v5/actions/search` (spec §3.3): the actual cards of `identities` and their
    /// predecessor chains, unverified. A JSON `null` counts as no card.
    pub(crate) async fn search_cards(&self, identities: &[String]) -> Result<Vec<RawSignedModel>> {
        let request = SearchRequest {
            identities: identities.to_vec(),
        };
        let response = self
            .send(Method::Post, paths::SEARCH, Some(&request))
            .await?;
        let cards: Option<Vec<RawSignedModel>> = response.json("card search")?;
        Ok(cards.unwrap_or_default())
    }

    /// `POST /card/v5` (spec §3.2): publishes `card` and returns the stored card, which must
    /// carry the same snapshot.
    pub(crate) async fn publish_card(&self, card: &RawSignedModel) -> Result<RawSignedModel> {
        let response = self.send(Method::Post, paths::CARDS, Some(card)).await?;
        let stored: RawSignedModel = response.json("card publish")?;
        if stored.content_snapshot != card.content_snapshot {
            return Err(Error::InvalidResponse(
                "the published card came back with a different content snapshot".to_owned(),
            ));
        }
        Ok(stored)
    }

    /// `POST /card/v5/actions/revoke/{card_id}` with body `{}` (spec §3.5).
    pub(crate) async fn revoke_card(&self, id: &CardId) -> Result<()> {
        self.send(
            Method::Post,
            &paths::revoke(id),
            Some(&serde_json::json!({})),
        )
        .await?;
        Ok(())
    }
}
