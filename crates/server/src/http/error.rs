//! `ApiError`: every failure a client can see, with its HTTP status and its Virgil-style `code`,
//! rendered as `{"code": <int>, "message": "<text>"}` (spec §1, §1.2). It is a
//! [`ServiceError`] or one of the few failures only HTTP has (no route, bad JSON, ...); this file
//! is the only place where either becomes a status and a code.
//!
//! The codes the e3kit clients react to are fixed by the spec: 20304 with 401 for an expired token
//! (the cards client then retries once), 50010 for a Keyknox hash mismatch, 60007 for brainkey
//! throttling. The others follow the ranges of the reference stub: 2030x auth, 400xx validation,
//! 10001 card not found. Server errors are answered generically; their cause goes to the log.

use crate::service::error::ServiceError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sealkit_proto::chat::codes as chat;
use sealkit_proto::chat::StaleMembersBody;
use sealkit_proto::error::ErrorBody;
use sealkit_proto::kt::codes as kt;
use sealkit_proto::pfs::codes as pfs;

/// An error answered to a client: a service failure, or one only HTTP can have.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No `Authorization: Virgil <jwt>` header.
    #[error("missing or malformed Authorization header (expected: Virgil <jwt>)")]
    MissingToken,
    /// The request body is not the expected JSON.
    #[error("invalid request body: {0}")]
    BadJson(String),
    /// The body exceeds the configured limit.
    #[error("request body too large")]
    TooLarge,
    /// No such route.
    #[error("no such endpoint")]
    NoRoute,
    /// Wrong method for the route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Chat: the identity already holds as many WebSockets as the server allows.
    #[error("at most {limit} live connections per identity")]
    TooManySockets {
        /// The limit.
        limit: usize,
    },
    /// The request (its body included) took longer than the server allows.
    #[error("the request took too long")]
    RequestTimeout,
    /// The service refused or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// HTTP status and Virgil error code.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            Self::MissingToken => (StatusCode::UNAUTHORIZED, 20300),
            Self::BadJson(_) => (StatusCode::BAD_REQUEST, 40000),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 41300),
            Self::NoRoute => (StatusCode::NOT_FOUND, 40400),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 40500),
            Self::TooManySockets { .. } => (StatusCode::TOO_MANY_REQUESTS, chat::TOO_MANY_SOCKETS),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, 40800),
            Self::Service(e) => service_status_and_code(e),
        }
    }

    /// Logs a server-side failure and returns the generic error.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ServiceError::internal(cause).into()
    }
}

/// The status and code of each service failure.
pub fn service_status_and_code(e: &ServiceError) -> (StatusCode, u32) {
    use ServiceError as E;
    match e {
        E::InvalidToken(_) => (StatusCode::UNAUTHORIZED, 20301),
        E::UnknownKey => (StatusCode::UNAUTHORIZED, 20302),
        E::BadSignature => (StatusCode::UNAUTHORIZED, 20303),
        E::Expired => (StatusCode::UNAUTHORIZED, 20304),
        E::NotYetValid => (StatusCode::UNAUTHORIZED, 20305),
        E::InvalidCard(_) => (StatusCode::BAD_REQUEST, 40001),
        E::BadSelfSignature => (StatusCode::BAD_REQUEST, 40003),
        E::BadRequest(_) => (StatusCode::BAD_REQUEST, 40007),
        E::Forbidden(_) => (StatusCode::FORBIDDEN, 40300),
        E::Conflict(_) => (StatusCode::CONFLICT, 40900),
        E::CardNotFound => (StatusCode::NOT_FOUND, 10001),
        E::KeyknoxMismatch => (
            StatusCode::CONFLICT,
            sealkit_proto::keyknox::HASH_MISMATCH_CODE,
        ),
        E::KeyknoxQuotaExceeded { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            sealkit_proto::keyknox::QUOTA_EXCEEDED_CODE,
        ),
        E::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            sealkit_proto::pythia::THROTTLED_CODE,
        ),
        E::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 50000),
        E::ChannelNotFound => (StatusCode::NOT_FOUND, chat::CHANNEL_NOT_FOUND),
        E::NotAMember(_) => (StatusCode::FORBIDDEN, chat::NOT_A_MEMBER),
        E::NotAnAdmin => (StatusCode::FORBIDDEN, chat::NOT_AN_ADMIN),
        E::ChannelExists => (StatusCode::CONFLICT, chat::CHANNEL_EXISTS),
        E::StaleMembers { .. } => (StatusCode::CONFLICT, chat::STALE_MEMBERS),
        E::MessageTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, chat::MESSAGE_TOO_LARGE),
        E::ChatInvalid(_) => (StatusCode::BAD_REQUEST, chat::INVALID),
        E::MembershipRule(_) => (StatusCode::CONFLICT, chat::MEMBERSHIP_RULE),
        E::BlobTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, chat::BLOB_TOO_LARGE),
        E::BlobQuotaExceeded { .. } => (StatusCode::PAYLOAD_TOO_LARGE, chat::BLOB_QUOTA_EXCEEDED),
        E::BlobNotFound => (StatusCode::NOT_FOUND, chat::BLOB_NOT_FOUND),
        E::BlobUnusable => (StatusCode::CONFLICT, chat::BLOB_UNUSABLE),
        E::TooManyChannels { .. } => (StatusCode::FORBIDDEN, chat::TOO_MANY_CHANNELS),
        E::MessageNotFound { .. } => (StatusCode::NOT_FOUND, chat::MESSAGE_NOT_FOUND),
        E::NotTheSender(_) => (StatusCode::FORBIDDEN, chat::NOT_THE_SENDER),
        E::MessageDeleted { .. } => (StatusCode::CONFLICT, chat::MESSAGE_DELETED),
        E::KtNoDirectory => (StatusCode::NOT_FOUND, kt::NO_DIRECTORY),
        E::KtNotInDirectory => (StatusCode::NOT_FOUND, kt::NOT_IN_DIRECTORY),
        E::KtEntryPending => (StatusCode::NOT_FOUND, kt::ENTRY_PENDING),
        E::KtInvalid(_) => (StatusCode::BAD_REQUEST, kt::INVALID),
        E::KtNoSuchEpoch => (StatusCode::NOT_FOUND, kt::NO_SUCH_EPOCH),
        E::PfsInvalid(_) => (StatusCode::BAD_REQUEST, pfs::INVALID),
        E::PfsBadSignature => (StatusCode::BAD_REQUEST, pfs::BAD_SIGNATURE),
        E::PfsInvalidCard(_) => (StatusCode::BAD_REQUEST, pfs::INVALID_CARD),
        E::PfsNoCard => (StatusCode::CONFLICT, pfs::NO_CARD),
        E::PfsNoLongTermKey => (StatusCode::CONFLICT, pfs::NO_LONG_TERM_KEY),
        E::PfsTooManyOneTimeKeys { .. } => (StatusCode::CONFLICT, pfs::TOO_MANY_ONE_TIME_KEYS),
        E::PfsOneTimeKeyUsed => (StatusCode::CONFLICT, pfs::ONE_TIME_KEY_USED),
        E::PfsCardChanged => (StatusCode::CONFLICT, pfs::CARD_CHANGED),
        E::PfsKeysNotFound => (StatusCode::NOT_FOUND, pfs::KEYS_NOT_FOUND),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let error = ErrorBody {
            code,
            message: self.to_string(),
        };
        match self {
            // The refusal carries the channel as it is now, so the sender need not read it.
            Self::Service(ServiceError::StaleMembers { channel, .. }) => {
                let body = StaleMembersBody {
                    error,
                    channel: *channel,
                };
                (status, axum::Json(body)).into_response()
            }
            _ => (status, axum::Json(error)).into_response(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// Maps axum's JSON rejections (malformed JSON, wrong content type, body limit) to [`ApiError`].
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::TooLarge
        } else {
            Self::BadJson(r.body_text())
        }
    }
}

/// Chat paths carry ids in their segments; a segment that does not decode is an invalid id.
impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ServiceError::ChatInvalid(r.body_text()).into()
    }
}

/// The chat history cursor is the only query string parsed into a struct.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ServiceError::ChatInvalid(r.body_text()).into()
    }
}

/// A path extractor whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// A query-string extractor whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A JSON body extractor whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);
