//! JWT verification with a bounded cache of verified tokens.
//!
//! Verifying an Ed25519 signature and looking up the API key costs far more than the rest of a
//! card search, and clients send the same token for minutes. A verified token is remembered under
//! the SHA-256 of its text until it expires, for at most [`CACHE_TTL`] seconds (so a revoked API
//! key stops working within that time on every replica).

use super::error::ServiceError;
use crate::store::Store;
use sealkit_crypto::PublicKey;
use sealkit_proto::jwt::{Jwt, JwtError};
use sealkit_proto::{AppId, Identity};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who is calling: the application and the identity a verified token names. Every service call
/// made for a user takes one; how it was authenticated (a header, a WebSocket query string) is
/// the transport's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The application (tenant) the token belongs to.
    pub app_id: AppId,
    /// The user identity (`sub` without `identity-`).
    pub identity: Identity,
}

/// How long a verified token is trusted without checking its key again.
pub const CACHE_TTL: i64 = 60;
/// Most tokens remembered; the cache is cleared when full.
const CACHE_MAX: usize = 50_000;

/// Verifies tokens against the applications' API keys.
pub struct Authenticator {
    store: Arc<dyn Store>,
    leeway: i64,
    /// Per token digest: the caller, until when the entry may be used, and until when the
    /// token itself is accepted (its `exp` plus the leeway).
    cache: Mutex<HashMap<[u8; 32], (Caller, i64, i64)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator allowing `leeway` seconds of clock skew.
    pub fn new(store: Arc<dyn Store>, leeway: i64) -> Self {
        Self {
            store,
            leeway,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies a token at time `now` (Unix seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Caller, ServiceError> {
        Ok(self.verify_with_expiry(token, now).await?.0)
    }

    /// Verifies a token like [`Self::verify`], and also says until when (Unix seconds) the token
    /// will be accepted: its `exp` plus the leeway. A long-lived connection ends then.
    pub async fn verify_with_expiry(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Caller, i64), ServiceError> {
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&digest, now) {
            return Ok(hit);
        }
        let jwt = Jwt::parse(token).map_err(map_jwt_error)?;
        let key = self
            .store
            .app_key(&jwt.header().kid)
            .await?
            .filter(|k| k.revoked_at.is_none())
            .ok_or(ServiceError::UnknownKey)?;
        let public = PublicKey::from_der(&key.public_key).map_err(ServiceError::internal)?;
        jwt.verify(&public, &key.app_id, now, self.leeway)
            .map_err(map_jwt_error)?;
        let identity = jwt.identity().map_err(map_jwt_error)?;
        let caller = Caller {
            // Ours, made by `admin`: one that does not parse is a fault of the store.
            app_id: AppId::new(key.app_id).map_err(ServiceError::internal)?,
            // `verify` checked the identity already; this only gives it its type.
            identity: Identity::new(identity)
                .map_err(|e| ServiceError::InvalidToken(e.to_string()))?,
        };
        // Saturating: `exp` is the client's number, and may be i64::MAX.
        let accepted_until = jwt.claims().exp.saturating_add(self.leeway);
        let until = accepted_until.min(now.saturating_add(CACHE_TTL));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(digest, (caller.clone(), until, accepted_until));
        }
        Ok((caller, accepted_until))
    }

    /// Verifies a token again without the cache, so a key revoked since it was last checked
    /// is noticed now (long-lived connections call this periodically).
    pub async fn recheck(&self, token: &str, now: i64) -> Result<Caller, ServiceError> {
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&digest);
        }
        self.verify(token, now).await
    }

    fn cached(&self, digest: &[u8; 32], now: i64) -> Option<(Caller, i64)> {
        let mut cache = self.cache.lock().ok()?;
        match cache.get(digest) {
            Some((auth, until, accepted_until)) if *until >= now => {
                Some((auth.clone(), *accepted_until))
            }
            Some(_) => {
                cache.remove(digest);
                None
            }
            None => None,
        }
    }
}

fn map_jwt_error(e: JwtError) -> ServiceError {
    match e {
        JwtError::Expired => ServiceError::Expired,
        JwtError::NotYetValid => ServiceError::NotYetValid,
        JwtError::SignatureInvalid | JwtError::WrongIssuer => ServiceError::BadSignature,
        other => ServiceError::InvalidToken(other.to_string()),
    }
}
