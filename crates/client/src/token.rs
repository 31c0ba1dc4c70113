//! Access tokens: the application's token provider and the cache in front of it (spec §1.2, §2).

use crate::error::{BoxError, Error, Result};
use sealkit_proto::jwt::Jwt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future, as returned by [`TokenProvider::get_token`].
///
/// ```no_run
/// use sealkit::{BoxError, BoxFuture, TokenProvider};
///
/// // A provider with state, where a closure is not enough:
/// struct Backend {
///     session_cookie: String,
/// }
///
/// impl Backend {
///     async fn fetch_jwt(&self) -> std::io::Result<String> {
///         // e.g. GET https://myapp.example.com/virgil-jwt with self.session_cookie
/// #       todo!()
///     }
/// }
///
/// impl TokenProvider for Backend {
///     fn get_token(&self) -> BoxFuture<'_, Result<String, BoxError>> {
///         Box::pin(async move { Ok(self.fetch_jwt().await?) })
///     }
/// }
/// ```
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Seconds before `exp` at which a cached token is considered stale, as in e3kit's
/// `CachingJwtProvider`.
///
/// ```
/// use sealkit::TOKEN_EXPIRATION_MARGIN_SECS;
///
/// // The SDK asks for a new token this long before `exp`; a provider that keeps its own copy of
/// // the token can use the same rule:
/// fn needs_refresh(exp: i64, now: i64) -> bool {
///     exp < now + TOKEN_EXPIRATION_MARGIN_SECS
/// }
/// assert!(!needs_refresh(1_000, 995));
/// assert!(needs_refresh(1_000, 996));
/// ```
pub const TOKEN_EXPIRATION_MARGIN_SECS: i64 = 5;

/// Where the SDK gets its Virgil JWTs from: usually a call to the application's backend, which
/// authenticates the user and mints a token with the app's API key (e3kit's `getToken` callback).
///
/// Any async closure `Fn() -> impl Future<Output = Result<String, E>>` whose error converts into
/// [`BoxError`] is a provider, so the common case needs no trait impl:
///
/// ```no_run
/// # async fn fetch_jwt_from_my_backend() -> Result<String, std::io::Error> { todo!() }
/// use sealkit::{EThree, EThreeOptions};
/// # async fn run() -> Result<(), sealkit::Error> {
/// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/keys");
/// let ethree = EThree::initialize(|| fetch_jwt_from_my_backend(), options).await?;
/// # Ok(()) }
/// ```
///
/// The SDK calls the provider once in [`crate::EThree::initialize`] (to learn the identity, the
/// token's `sub`), then whenever the cached token is within
/// [`TOKEN_EXPIRATION_MARGIN_SECS`] of its `exp`, and once more when the server answers
/// HTTP 401 with code 20304 ("JWT expired"), after which the request is repeated once. Calls are
/// serialized: concurrent requests wait for one refresh.
pub trait TokenProvider: Send + Sync + 'static {
    /// Returns a fresh token (the compact JWT string).
    fn get_token(&self) -> BoxFuture<'_, Result<String, BoxError>>;
}

impl<F, Fut, E> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn get_token(&self) -> BoxFuture<'_, Result<String, BoxError>> {
        let fut = self();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// Whether a token expiring at `exp` may still be used at `now` (both Unix seconds): not within
/// the margin of its expiry (e3kit: `exp < now + 5` is stale).
pub(crate) fn is_fresh(exp: i64, now: i64) -> bool {
    exp >= now.saturating_add(TOKEN_EXPIRATION_MARGIN_SECS)
}

/// The token cache in front of a provider. The identity is fixed at construction.
pub(crate) struct TokenCache {
    provider: Arc<dyn TokenProvider>,
    identity: String,
    app_id: String,
    cached: tokio::sync::Mutex<Option<Jwt>>,
}

impl TokenCache {
    /// Calls the provider once and returns the cache holding that token, and its identity.
    pub(crate) async fn new(provider: Arc<dyn TokenProvider>) -> Result<Self> {
        let jwt = fetch(provider.as_ref()).await?;
        let identity = jwt.identity().map_err(Error::InvalidToken)?.to_owned();
        sealkit_proto::validate_identity(&identity)
            .map_err(|_| Error::InvalidToken(sealkit_proto::JwtError::BadSubject))?;
        // A token without Virgil's issuer prefix is the server's to refuse; KT checks then fail
        // on the application name.
        let app_id = jwt.app_id().unwrap_or_default().to_owned();
        Ok(Self {
            provider,
            identity,
            app_id,
            cached: tokio::sync::Mutex::new(Some(jwt)),
        })
    }

    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    /// The application of the tokens (the `iss` without `virgil-`).
    pub(crate) fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The cached token if it is fresh at `now`; never asks the provider.
    pub(crate) async fn peek(&self, now: i64) -> Option<Jwt> {
        self.cached
            .lock()
            .await
            .as_ref()
            .filter(|j| is_fresh(j.claims().exp, now))
            .cloned()
    }

    /// The cached token while it is fresh at `now`, else a new one from the provider. With
    /// `force`, always asks the provider (after the server said the token expired).
    pub(crate) async fn get(&self, now: i64, force: bool) -> Result<Jwt> {
        let mut cached = self.cached.lock().await;
        if !force {
            if let Some(jwt) = cached.as_ref().filter(|j| is_fresh(j.claims().exp, now)) {
                return Ok(jwt.clone());
            }
        }
        let jwt = fetch(self.provider.as_ref()).await?;
        let identity = jwt.identity().map_err(Error::InvalidToken)?;
        if identity != self.identity {
            return Err(Error::TokenIdentityChanged {
                expected: self.identity.clone(),
                actual: identity.to_owned(),
            });
        }
        // Used even when already stale: the provider's answer is the best there is, and the
        // server decides (e3kit behaves the same).
        *cached = Some(jwt.clone());
        Ok(jwt)
    }
}

async fn fetch(provider: &dyn TokenProvider) -> Result<Jwt> {
    let token = provider.get_token().await.map_err(Error::TokenProvider)?;
    Jwt::parse(token.trim()).map_err(Error::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealkit_crypto::PrivateKey;
    use sealkit_proto::JwtGenerator;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn generator() -> JwtGenerator {
        JwtGenerator::new("app", "kid", PrivateKey::ed25519_from_seed(&[7; 32]), 100)
    }

    #[test]
    fn freshness_margin_is_five_seconds() {
        assert!(is_fresh(1000, 995));
        assert!(!is_fresh(1000, 996));
        assert!(!is_fresh(1000, 2000));
        assert!(is_fresh(i64::MAX, i64::MAX - 10));
    }

    #[tokio::test]
    async fn caches_until_the_margin_and_refreshes_on_force() -> Result<()> {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let provider = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) as i64;
            async move {
                // Issued at 1000 + n, valid 100 s.
                generator()
                    .generate("alice", 1000 + n)
                    .map(|j| j.to_string())
            }
        };
        let cache = TokenCache::new(Arc::new(provider)).await?;
        assert_eq!(cache.identity(), "alice");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // exp = 1100: fresh at 1095, stale at 1096.
        assert_eq!(cache.get(1095, false).await?.claims().iat, 1000);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(1096, false).await?.claims().iat, 1001);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.get(1000, true).await?.claims().iat, 1002);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        Ok(())
    }

    #[tokio::test]
    async fn rejects_garbage_and_identity_changes() {
        let garbage = || async { Ok::<_, std::io::Error>("not a jwt".to_owned()) };
        assert!(matches!(
            TokenCache::new(Arc::new(garbage)).await,
            Err(Error::InvalidToken(_))
        ));
        let failing = || async { Err::<String, _>(std::io::Error::other("backend down")) };
        match TokenCache::new(Arc::new(failing)).await {
            Err(Error::TokenProvider(e)) => assert_eq!(e.to_string(), "backend down"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let switching = move || {
            let who = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                "alice"
            } else {
                "mallory"
            };
            async move { generator().generate(who, 1000).map(|j| j.to_string()) }
        };
        let cache = match TokenCache::new(Arc::new(switching)).await {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert!(matches!(
            cache.get(1000, true).await,
            Err(Error::TokenIdentityChanged { .. })
        ));
    }
}
