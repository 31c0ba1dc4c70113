//! Keyknox v1 and v2 (spec §4, §5). Every answer carries `Virgil-Keyknox-Hash`.

use super::error::{ApiError, Json};
use super::AppState;
use crate::service::auth::Caller;
use crate::service::error::ServiceError;
use crate::service::keyknox;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sealkit_proto::keyknox::{paths, V1Push, V2Keys, V2Pull, V2Push, V2Reset};
use serde::Serialize;

/// The Keyknox routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::V1, get(v1_get).put(v1_put))
        .route(paths::V1_RESET, post(v1_reset))
        .route(paths::V2_PUSH, post(v2_push))
        .route(paths::V2_PULL, post(v2_pull))
        .route(paths::V2_KEYS, post(v2_keys))
        .route(paths::V2_RESET, post(v2_reset))
}

fn with_hash(body: impl Serialize, hash: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(hash).map_err(ApiError::internal)?;
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static("virgil-keyknox-hash"), value);
    Ok(response)
}

fn previous_hash(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get(paths::PREVIOUS_HASH_HEADER)
        .map(|v| {
            v.to_str().map(str::trim).map_err(|_| {
                ApiError::from(ServiceError::BadRequest(
                    "Virgil-Keyknox-Previous-Hash is not text".into(),
                ))
            })
        })
        .transpose()
}

async fn v1_get(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let (body, hash) = keyknox::v1_get(state.store.as_ref(), &caller).await?;
    with_hash(body, &hash)
}

async fn v1_put(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(push): Json<V1Push>,
) -> Result<Response, ApiError> {
    let (body, hash) = keyknox::v1_put(
        state.store.as_ref(),
        &caller,
        &push.meta,
        &push.value,
        previous_hash(&headers)?,
    )
    .await?;
    with_hash(body, &hash)
}

/// The body is empty (and form-encoded) as e3kit sends it; it carries nothing.
async fn v1_reset(
    State(state): State<AppState>,
    caller: Caller,
    _body: Bytes,
) -> Result<Response, ApiError> {
    let (body, hash) = keyknox::v1_reset(state.store.as_ref(), &caller).await?;
    with_hash(body, &hash)
}

async fn v2_push(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(push): Json<V2Push>,
) -> Result<Response, ApiError> {
    let (body, hash) = keyknox::v2_push(
        state.store.as_ref(),
        &caller,
        push,
        previous_hash(&headers)?,
        state.config.keyknox_quota_bytes,
    )
    .await?;
    with_hash(body, &hash)
}

async fn v2_pull(
    State(state): State<AppState>,
    caller: Caller,
    Json(pull): Json<V2Pull>,
) -> Result<Response, ApiError> {
    let (body, hash) = keyknox::v2_pull(state.store.as_ref(), &caller, pull).await?;
    with_hash(body, &hash)
}

async fn v2_keys(
    State(state): State<AppState>,
    caller: Caller,
    Json(keys): Json<V2Keys>,
) -> Result<Response, ApiError> {
    let keys = keyknox::v2_keys(state.store.as_ref(), &caller, keys).await?;
    Ok(axum::Json(keys).into_response())
}

async fn v2_reset(
    State(state): State<AppState>,
    caller: Caller,
    Json(reset): Json<V2Reset>,
) -> Result<Response, ApiError> {
    let (body, hash) = keyknox::v2_reset(state.store.as_ref(), &caller, reset).await?;
    with_hash(body, &hash)
}
