//! Key transparency (`/kt/v1`, Sealkit's own API; wire types in `sealkit_proto::kt`): the
//! deployment key, signed heads and audits without a token; lookup and history proofs for the
//! token's application.

use super::error::ApiError;
use super::AppState;
use crate::service::auth::Caller;
use crate::service::error::ServiceError;
use crate::service::kt::KtService;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use sealkit_proto::kt::{self as wire, paths};
use serde::Deserialize;
use std::sync::Arc;

/// The KT routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::KEY, get(key))
        .route("/kt/v1/apps/{app_id}/head", get(head))
        .route("/kt/v1/apps/{app_id}/audit", get(audit))
        .route("/kt/v1/lookup/{identity}", get(lookup))
        .route("/kt/v1/history/{identity}", get(history))
}

fn service(state: &AppState) -> &Arc<KtService> {
    &state.kt
}

async fn key(State(state): State<AppState>) -> Json<wire::KeyResponse> {
    Json(wire::KeyResponse {
        signing_public_key: service(&state).keys().public_key_base64(),
        epoch_millis: Some((state.config.kt_epoch_secs * 1000.0).round() as u64),
    })
}

/// An application id from a path: the same rule as everywhere (`sealkit_proto::AppId`); an
/// invalid one has no directory.
fn app_id(raw: String) -> Result<sealkit_proto::AppId, ApiError> {
    sealkit_proto::AppId::try_from(raw).map_err(|_| ApiError::from(ServiceError::KtNoDirectory))
}

async fn head(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<wire::SignedHead>, ApiError> {
    let app_id = app_id(raw)?;
    Ok(Json(service(&state).head(app_id.as_str()).await?))
}

/// `?start=S&end=E`.
#[derive(Deserialize)]
struct AuditRange {
    start: u64,
    end: u64,
}

async fn audit(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    range: Result<Query<AuditRange>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::AuditResponse>, ApiError> {
    let app_id = app_id(raw)?;
    let Query(range) = range.map_err(|e| ServiceError::KtInvalid(e.body_text()))?;
    Ok(Json(
        service(&state)
            .audit(app_id.as_str(), range.start, range.end)
            .await?,
    ))
}

/// `?pending=true`.
#[derive(Deserialize)]
struct LookupQuery {
    #[serde(default)]
    pending: bool,
}

async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    Path(identity): Path<String>,
    query: Result<Query<LookupQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::LookupResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ServiceError::KtInvalid(e.body_text()))?;
    let service = service(&state);
    let mut answer = match service.lookup(&caller, &identity).await {
        Err(ServiceError::KtNotInDirectory | ServiceError::KtNoDirectory)
            if query.pending && service.pending_change(&caller, &identity).await? =>
        {
            return Err(ServiceError::KtEntryPending.into())
        }
        answer => answer?,
    };
    if query.pending {
        answer.pending = Some(service.pending_change(&caller, &identity).await?);
    }
    Ok(Json(answer))
}

/// `?most_recent=N`.
#[derive(Deserialize)]
struct HistoryQuery {
    most_recent: Option<u64>,
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(identity): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::HistoryResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ServiceError::KtInvalid(e.body_text()))?;
    Ok(Json(
        service(&state)
            .history(&caller, &identity, query.most_recent)
            .await?,
    ))
}
