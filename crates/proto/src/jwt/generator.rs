//! Issuing Virgil JWTs, as an application backend does with the JS SDK's `JwtGenerator` and
//! `VirgilAccessTokenSigner` (spec §2).

use super::{
    validate_identity, Jwt, JwtClaims, JwtError, JwtHeader, ALGORITHM, CONTENT_TYPE, ISSUER_PREFIX,
    SUBJECT_PREFIX, TYPE,
};
use crate::text::encode_js_text;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{PrivateKey, PublicKey};
use std::sync::Arc;

/// Issues Virgil JWTs for one application (spec §2).
///
/// The header and payload are compact JSON in the JS SDK's key order (`alg,kid,typ,cty` and
/// `iss,sub,iat,exp[,ada]`), encoded as the JS SDK does (Latin-1 for identities with characters
/// U+0080..U+00FF, see [`validate_identity`]), base64url without padding, and signed with a Virgil
/// signature by the API private key. For ASCII input the token is byte-identical to the JS SDK's.
///
/// Cheap to clone: the key is shared. `Debug` shows the key's id, never the key.
#[derive(Clone, Debug)]
pub struct JwtGenerator {
    app_id: String,
    key_id: String,
    key: Arc<PrivateKey>,
    ttl_secs: u64,
}

impl JwtGenerator {
    /// A generator for application `app_id` whose API key `key` is known to servers as `key_id`
    /// (the header's `kid`); tokens live `ttl_secs` seconds.
    pub fn new(
        app_id: impl Into<String>,
        key_id: impl Into<String>,
        key: PrivateKey,
        ttl_secs: u64,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            key_id: key_id.into(),
            key: Arc::new(key),
            ttl_secs,
        }
    }

    /// The application id (`iss` without its prefix).
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The API key id (`kid`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The API public key that verifies the tokens.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The tokens' lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A token for `identity`, issued at `now` (Unix seconds), expiring at `now + ttl_secs`.
    ///
    /// [`JwtError::BadSubject`] if `identity` fails [`validate_identity`]; [`JwtError::Signing`]
    /// if the key cannot sign.
    pub fn generate(&self, identity: &str, now: i64) -> Result<Jwt, JwtError> {
        self.build(identity, now, None)
    }

    /// Like [`JwtGenerator::generate`], with `ada` ("additional data") in the payload. A JSON
    /// `null` is left out, as if no data were given.
    pub fn generate_with_data(
        &self,
        identity: &str,
        now: i64,
        ada: serde_json::Value,
    ) -> Result<Jwt, JwtError> {
        self.build(identity, now, (!ada.is_null()).then_some(ada))
    }

    fn build(
        &self,
        identity: &str,
        now: i64,
        ada: Option<serde_json::Value>,
    ) -> Result<Jwt, JwtError> {
        validate_identity(identity).map_err(|_| JwtError::BadSubject)?;
        let ttl = i64::try_from(self.ttl_secs).unwrap_or(i64::MAX);
        let header = JwtHeader {
            alg: ALGORITHM.to_owned(),
            kid: self.key_id.clone(),
            typ: TYPE.to_owned(),
            cty: CONTENT_TYPE.to_owned(),
        };
        let claims = JwtClaims {
            iss: format!("{ISSUER_PREFIX}{}", self.app_id),
            sub: format!("{SUBJECT_PREFIX}{identity}"),
            iat: now,
            exp: now.saturating_add(ttl),
            ada,
        };
        let header_json = serde_json::to_string(&header)
            .map_err(|_| JwtError::Malformed("header does not serialize"))?;
        let claims_json = serde_json::to_string(&claims)
            .map_err(|_| JwtError::Malformed("payload does not serialize"))?;
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(encode_js_text(&header_json)),
            URL_SAFE_NO_PAD.encode(encode_js_text(&claims_json)),
        );
        let signature = sealkit_crypto::sign(signed.as_bytes(), &self.key, &mut OsRng)
            .map_err(|_| JwtError::Signing)?;
        Jwt::parse(&format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}
