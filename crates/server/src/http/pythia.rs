//! Pythia brainkey (spec §6) and brainkey v3 (`/brainkey/v3/harden` of the mobile e3kit SDKs).

use super::error::{ApiError, Json};
use super::AppState;
use crate::service::auth::Caller;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use sealkit_proto::brainkey::{HardenRequest, HardenResponse, HARDEN_PATH};
use sealkit_proto::pythia::{BrainkeyRequest, BrainkeyResponse, BRAINKEY_PATH};

/// The brainkey routes (v1 Pythia and v3).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BRAINKEY_PATH, post(brainkey))
        .route(HARDEN_PATH, post(harden_v3))
}

async fn brainkey(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<BrainkeyRequest>,
) -> Result<axum::Json<BrainkeyResponse>, ApiError> {
    let seed = state
        .brainkey
        .transform(
            state.store.as_ref(),
            &caller,
            &request.blinded_password,
            request.brainkey_id.as_deref(),
            crate::now_ms(),
        )
        .await?;
    Ok(axum::Json(BrainkeyResponse { seed }))
}

async fn harden_v3(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<HardenRequest>,
) -> Result<axum::Json<HardenResponse>, ApiError> {
    let answer = state
        .brainkey
        .harden_v3(
            state.store.as_ref(),
            &caller,
            &request.blinded_point,
            crate::now_ms(),
        )
        .await?;
    Ok(axum::Json(answer))
}
