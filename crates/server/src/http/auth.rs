//! The `VirgilAuth` extractor: `Authorization: Virgil <jwt>`, verified (spec §2).

use super::error::ApiError;
use super::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// A verified caller: the application and the identity its token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirgilAuth {
    /// The application (tenant) the token belongs to.
    pub app_id: String,
    /// The user identity (`sub` without `identity-`).
    pub identity: String,
}

impl FromRequestParts<AppState> for VirgilAuth {
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
        state.auth.verify(token, crate::now()).await
    }
}
