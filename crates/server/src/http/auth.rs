//! The [`Caller`] extractor: `Authorization: Virgil <jwt>`, verified (spec §2).

use super::error::ApiError;
use super::AppState;
use crate::service::auth::Caller;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::MissingToken)?;
        let token = header
            .strip_prefix("Virgil ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::MissingToken)?;
        Ok(state.auth.verify(token, crate::now()).await?)
    }
}
