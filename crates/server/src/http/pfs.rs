//! The ratchet key service `/pfs/v3/keys` (`sealkit_proto::pfs`): upload and delete answer 204,
//! the actions answer JSON.

use super::error::{ApiError, Json};
use super::AppState;
use crate::service::auth::Caller;
use crate::service::pfs;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::Router;
use sealkit_proto::pfs::{
    paths, IdentityPublicKeySet, PickBatch, PickOne, PublicKeySet, UploadKeys, ValidateKeys,
    ValidateKeysResponse,
};

/// The ratchet key routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::KEYS, put(upload).delete(delete))
        .route(paths::VALIDATE, post(validate))
        .route(paths::PICK_ONE, post(pick_one))
        .route(paths::PICK_BATCH, post(pick_batch))
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<UploadKeys>,
) -> Result<StatusCode, ApiError> {
    pfs::upload(state.store.as_ref(), &caller, request, crate::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    pfs::delete(state.store.as_ref(), &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ValidateKeys>,
) -> Result<axum::Json<ValidateKeysResponse>, ApiError> {
    let answer = pfs::validate(state.store.as_ref(), &caller, request).await?;
    Ok(axum::Json(answer))
}

async fn pick_one(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<PickOne>,
) -> Result<axum::Json<PublicKeySet>, ApiError> {
    let set = pfs::pick_one(state.store.as_ref(), &caller, request, crate::now()).await?;
    Ok(axum::Json(set))
}

async fn pick_batch(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<PickBatch>,
) -> Result<axum::Json<Vec<IdentityPublicKeySet>>, ApiError> {
    let sets = pfs::pick_batch(state.store.as_ref(), &caller, request, crate::now()).await?;
    Ok(axum::Json(sets))
}
