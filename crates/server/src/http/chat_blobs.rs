//! Chat attachments (`sealkit_proto::chat::paths::blobs`): the upload streams the request body
//! into the store and the download streams the store into the response; the rules are in
//! `service::chat::blobs`.

use super::error::{ApiError, Path};
use super::AppState;
use crate::service::auth::Caller;
use crate::service::chat::blobs;
use crate::store::BlobLimits;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// The blob routes. The upload route lifts the global body limit: its own limit
/// (`chat_blob_limit`) is checked as the body streams in.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/chat/v1/channels/{id}/blobs",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/chat/v1/channels/{id}/blobs/{blob}", get(download))
}

/// The configured blob limits.
fn limits(state: &AppState) -> BlobLimits {
    BlobLimits {
        max_blob_bytes: state.config.chat_blob_limit,
        app_quota_bytes: state.config.chat_blob_quota,
    }
}

/// `POST /chat/v1/channels/{id}/blobs`: 201 [`sealkit_proto::chat::BlobUploaded`].
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let uploaded = blobs::upload(
        state.store.as_ref(),
        &caller,
        &id,
        declared,
        body.into_data_stream(),
        limits(&state),
        crate::now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(uploaded)).into_response())
}

/// `GET /chat/v1/channels/{id}/blobs/{blob}`: the bytes, streamed, with their length.
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, blob)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = blobs::readable_blob(state.store.as_ref(), &caller, &id, &blob).await?;
    let size = record.size;
    let stream = blobs::chunks(state.store.clone(), caller.app_id.to_string(), record);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
