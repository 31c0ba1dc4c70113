//! Cards v5 (spec §3): publish, search, get, revoke.

use super::error::{ApiError, Json};
use super::AppState;
use crate::service::auth::Caller;
use crate::service::cards;
use crate::service::error::ServiceError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sealkit_proto::cards::{paths, CardId, RawSignedModel, SearchRequest};

/// The card routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::CARDS, post(publish))
        .route(paths::SEARCH, post(search))
        .route("/card/v5/{card_id}", get(get_card))
        .route("/card/v5/actions/revoke/{card_id}", post(revoke))
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Json(card): Json<RawSignedModel>,
) -> Result<Response, ApiError> {
    let stored = cards::publish(
        state.store.as_ref(),
        &state.card_cache,
        &state.keys.card_signer,
        &caller,
        card,
    )
    .await?;
    tracing::info!(app = %caller.app_id, identity = %caller.identity, "card published");
    Ok(json_bytes(stored))
}

async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<SearchRequest>,
) -> Result<Response, ApiError> {
    let body = cards::search(
        state.store.as_ref(),
        &state.card_cache,
        &caller.app_id,
        request.identities,
    )
    .await?;
    Ok(json_bytes(body))
}

fn parse_id(raw: &str) -> Result<CardId, ApiError> {
    raw.parse::<CardId>()
        .map_err(|_| ApiError::from(ServiceError::CardNotFound))
}

async fn get_card(
    State(state): State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&card_id)?;
    let card = state
        .store
        .get_card(&caller.app_id, &id.to_string())
        .await?
        .ok_or(ApiError::from(ServiceError::CardNotFound))?;
    let outdated = if card.is_outdated() { "true" } else { "false" };
    let mut response = json_bytes(card.raw);
    response
        .headers_mut()
        .insert(paths::SUPERSEDED_HEADER, HeaderValue::from_static(outdated));
    Ok(response)
}

/// The body (`{}` from the JS SDK) carries nothing and is not required.
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
    _body: Bytes,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&card_id)?;
    cards::revoke(state.store.as_ref(), &state.card_cache, &caller, &id).await?;
    tracing::info!(app = %caller.app_id, identity = %caller.identity, card = %id, "card revoked");
    Ok(StatusCode::OK)
}
