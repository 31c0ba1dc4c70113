//! `ApiError`: every failure a client can see, with its HTTP status and its Virgil-style `code`,
//! rendered as `{"code": <int>, "message": "<text>"}` (spec §1, §1.2).
//!
//! The codes the e3kit clients react to are fixed by the spec: 20304 with 401 for an expired token
//! (the cards client then retries once), 50010 for a Keyknox hash mismatch, 60007 for brainkey
//! throttling. The others follow the ranges of the reference stub: 2030x auth, 400xx validation,
//! 10001 card not found. Server errors are answered generically; their cause goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sealkit_proto::chat::codes as chat;
use sealkit_proto::error::ErrorBody;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No `Authorization: Virgil <jwt>` header.
    #[error("missing or malformed Authorization header (expected: Virgil <jwt>)")]
    MissingToken,
    /// The token cannot be parsed, or its algorithm, type or subject is wrong.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token's key id is unknown or revoked.
    #[error("unknown or revoked API key id")]
    UnknownKey,
    /// Wrong issuer or signature.
    #[error("token signature or issuer is not valid")]
    BadSignature,
    /// The token has expired (the client refreshes on this code).
    #[error("token expired")]
    Expired,
    /// The token's `iat` lies in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The request body is not the expected JSON.
    #[error("invalid request body: {0}")]
    BadJson(String),
    /// The body exceeds the configured limit.
    #[error("request body too large")]
    TooLarge,
    /// A card failed validation.
    #[error("invalid card: {0}")]
    InvalidCard(String),
    /// The card's self signature does not verify.
    #[error("the card's self signature is not valid")]
    BadSelfSignature,
    /// Publishing or revoking for another identity.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A rule of the directory forbids this write (duplicate, stale previous card, ...).
    #[error("{0}")]
    Conflict(&'static str),
    /// An invalid argument (identity, card id, too many identities).
    #[error("{0}")]
    BadRequest(String),
    /// The card does not exist.
    #[error("card not found")]
    CardNotFound,
    /// No such route.
    #[error("no such endpoint")]
    NoRoute,
    /// Wrong method for the route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The Keyknox previous hash does not match the stored one (or is missing).
    #[error("the Keyknox entry changed since it was read (previous hash mismatch)")]
    KeyknoxMismatch,
    /// Too many brainkey requests for this identity.
    #[error("too many requests; try again later")]
    Throttled,
    /// The request (its body included) took longer than the server allows.
    #[error("the request took too long")]
    RequestTimeout,
    /// Something failed on our side; details are logged, not sent.
    #[error("internal server error")]
    Internal,
    /// Chat: no such channel in the caller's application.
    #[error("no such channel")]
    ChannelNotFound,
    /// Chat: the caller is not a member of the channel (or the named identity is not).
    #[error("{0}")]
    NotAMember(String),
    /// Chat: only an admin of the channel may do this.
    #[error("only an admin of the channel may do this")]
    NotAnAdmin,
    /// Chat: the channel id is taken.
    #[error("a channel with this id exists")]
    ChannelExists,
    /// Chat: the post names a membership version that is not the channel's current one.
    #[error(
        "member_version {sent} is not current (the channel is at {current}); \
         re-read the channel and encrypt for its members"
    )]
    StaleMembers {
        /// The version the post named.
        sent: i64,
        /// The channel's current version.
        current: i64,
    },
    /// Chat: the decoded ciphertext exceeds the server's limit.
    #[error("the ciphertext is larger than the limit of {limit} bytes")]
    MessageTooLarge {
        /// The limit, in bytes of decoded ciphertext.
        limit: usize,
    },
    /// Chat: an invalid channel id, member list, client id, cursor or ciphertext encoding.
    #[error("{0}")]
    ChatInvalid(String),
    /// Chat: the membership change breaks a rule of the channel.
    #[error("{0}")]
    MembershipRule(String),
}

impl ApiError {
    /// HTTP status and Virgil error code.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            Self::MissingToken => (StatusCode::UNAUTHORIZED, 20300),
            Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, 20301),
            Self::UnknownKey => (StatusCode::UNAUTHORIZED, 20302),
            Self::BadSignature => (StatusCode::UNAUTHORIZED, 20303),
            Self::Expired => (StatusCode::UNAUTHORIZED, 20304),
            Self::NotYetValid => (StatusCode::UNAUTHORIZED, 20305),
            Self::BadJson(_) => (StatusCode::BAD_REQUEST, 40000),
            Self::InvalidCard(_) => (StatusCode::BAD_REQUEST, 40001),
            Self::BadSelfSignature => (StatusCode::BAD_REQUEST, 40003),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, 40007),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, 40300),
            Self::Conflict(_) => (StatusCode::CONFLICT, 40900),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, 41300),
            Self::CardNotFound => (StatusCode::NOT_FOUND, 10001),
            Self::NoRoute => (StatusCode::NOT_FOUND, 40400),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 40500),
            Self::KeyknoxMismatch => (
                StatusCode::CONFLICT,
                sealkit_proto::keyknox::HASH_MISMATCH_CODE,
            ),
            Self::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                sealkit_proto::pythia::THROTTLED_CODE,
            ),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, 40800),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 50000),
            Self::ChannelNotFound => (StatusCode::NOT_FOUND, chat::CHANNEL_NOT_FOUND),
            Self::NotAMember(_) => (StatusCode::FORBIDDEN, chat::NOT_A_MEMBER),
            Self::NotAnAdmin => (StatusCode::FORBIDDEN, chat::NOT_AN_ADMIN),
            Self::ChannelExists => (StatusCode::CONFLICT, chat::CHANNEL_EXISTS),
            Self::StaleMembers { .. } => (StatusCode::CONFLICT, chat::STALE_MEMBERS),
            Self::MessageTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, chat::MESSAGE_TOO_LARGE)
            }
            Self::ChatInvalid(_) => (StatusCode::BAD_REQUEST, chat::INVALID),
            Self::MembershipRule(_) => (StatusCode::CONFLICT, chat::MEMBERSHIP_RULE),
        }
    }

    /// Logs a server-side failure and returns the generic error.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::Internal
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            code,
            message: self.to_string(),
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound => Self::CardNotFound,
            StoreError::Conflict(rule) => Self::Conflict(rule.message()),
            StoreError::Forbidden(why) => Self::Forbidden(why.message()),
            other => Self::internal(other),
        }
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
        Self::ChatInvalid(r.body_text())
    }
}

/// The chat history cursor is the only query string parsed into a struct.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::ChatInvalid(r.body_text())
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
