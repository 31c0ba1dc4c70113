//! Pythia brainkey (spec §6).

use super::error::{ApiError, Json};
use super::AppState;
use crate::service::auth::Caller;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use sealkit_proto::pythia::{BrainkeyRequest, BrainkeyResponse, BRAINKEY_PATH};

/// The Pythia routes.
pub fn routes() -> Router<AppState> {
    Router::new().route(BRAINKEY_PATH, post(brainkey))
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
