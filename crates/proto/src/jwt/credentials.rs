//! An application's API credentials as `sealkit app create --json` prints them, the input of an
//! app backend's [`JwtGenerator`].

use super::JwtGenerator;
use sealkit_crypto::PrivateKey;
use serde::{Deserialize, Serialize};

/// What `sealkit app create --json` prints: everything an app backend needs to mint tokens.
///
/// ```json
/// {
///   "app_id": "…",
///   "api_key_id": "…",
///   "api_private_key": "<base64 of PKCS#8 DER>",
///   "api_public_key": "<base64 of SubjectPublicKeyInfo DER>"
/// }
/// ```
///
/// `api_private_key` is importable by virgil-sdk's `JwtGenerator` too. Unknown fields are ignored
/// and `api_public_key` may be left out, so hand-written files work. `Debug` hides the private key.
///
/// This crate does no I/O: read the file yourself and pass its text.
///
/// ```
/// use rand_core::OsRng;
/// use sealkit_crypto::{KeyType, PrivateKey};
/// use sealkit_proto::{AppCredentials, Jwt};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
/// // Normally `std::fs::read_to_string("app.json")?`.
/// let text = format!(
///     r#"{{"app_id": "my-app", "api_key_id": "key-1", "api_private_key": "{}"}}"#,
///     key.to_base64().as_str()
/// );
/// let backend = AppCredentials::from_json(&text)?.generator(3600)?;
///
/// let now = 1_795_801_646;
/// let jwt: Jwt = backend.generate("alice", now)?.to_string().parse()?;
/// jwt.verify(key.public_key(), "my-app", now, 30)?;
///
/// let err = AppCredentials::from_json(r#"{"app_id": "my-app"}"#).unwrap_err();
/// assert!(err.to_string().contains("missing field `api_key_id`"), "{err}");
/// # Ok(())
/// # }
/// ```
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// The application id (`iss = "virgil-" + app_id`).
    pub app_id: String,
    /// The API key id (the JWT `kid`).
    pub api_key_id: String,
    /// The API private key, base64 of PKCS#8 DER. Secret.
    pub api_private_key: String,
    /// The API public key, base64 of SubjectPublicKeyInfo DER. Informational: tokens are minted
    /// from the private key alone. Not written when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_public_key: Option<String>,
}

/// Why [`AppCredentials`] could not be read or turned into a [`JwtGenerator`].
///
/// The message includes the cause's, and `source()` is `None`, so that a report printing the
/// whole chain does not say it twice.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum CredentialsError {
    /// The text is not a JSON object with string fields `app_id`, `api_key_id` and
    /// `api_private_key`; the inner error names the missing or mistyped field.
    #[error("not app credentials (`sealkit app create --json` output): {0}")]
    Json(serde_json::Error),
    /// `api_private_key` does not decode as a private key.
    #[error("api_private_key is not a private key: {0}")]
    BadKey(sealkit_crypto::Error),
}

impl AppCredentials {
    /// Parses the JSON that `sealkit app create --json` prints.
    pub fn from_json(text: &str) -> Result<Self, CredentialsError> {
        serde_json::from_str(text).map_err(CredentialsError::Json)
    }

    /// A token generator for this application's key; tokens live `ttl_secs` seconds.
    ///
    /// [`CredentialsError::BadKey`] if `api_private_key` is not a private key (DER, base64 of
    /// DER or PEM).
    pub fn generator(&self, ttl_secs: u64) -> Result<JwtGenerator, CredentialsError> {
        let key = PrivateKey::import(self.api_private_key.as_bytes())
            .map_err(CredentialsError::BadKey)?;
        Ok(JwtGenerator::new(
            self.app_id.clone(),
            self.api_key_id.clone(),
            key,
            ttl_secs,
        ))
    }
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("api_key_id", &self.api_key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rand_core::OsRng;
    use sealkit_crypto::KeyType;

    fn key_b64() -> String {
        PrivateKey::generate(KeyType::Ed25519, &mut OsRng)
            .to_base64()
            .to_string()
    }

    #[test]
    fn serializes_in_the_cli_order_and_round_trips() {
        let creds = AppCredentials {
            app_id: "a".into(),
            api_key_id: "k".into(),
            api_private_key: "p".into(),
            api_public_key: Some("q".into()),
        };
        let text = serde_json::to_string(&creds).unwrap();
        assert_eq!(
            text,
            r#"{"app_id":"a","api_key_id":"k","api_private_key":"p","api_public_key":"q"}"#
        );
        assert_eq!(AppCredentials::from_json(&text).unwrap(), creds);

        let without = AppCredentials {
            api_public_key: None,
            ..creds
        };
        let text = serde_json::to_string(&without).unwrap();
        assert!(!text.contains("api_public_key"), "{text}");
        assert_eq!(AppCredentials::from_json(&text).unwrap(), without);
    }

    #[test]
    fn generator_mints_verifiable_tokens_and_ignores_unknown_fields() {
        let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        let text = format!(
            r#"{{"app_id":"app","api_key_id":"kid","api_private_key":"{}","name":"demo","created_at":1}}"#,
            key.to_base64().as_str()
        );
        let generator = AppCredentials::from_json(&text)
            .unwrap()
            .generator(60)
            .unwrap();
        assert_eq!(
            (generator.app_id(), generator.key_id(), generator.ttl_secs()),
            ("app", "kid", 60)
        );
        assert_eq!(generator.public_key(), key.public_key());
        let jwt = generator.generate("alice", 1000).unwrap();
        jwt.verify(key.public_key(), "app", 1000, 0).unwrap();
        assert_eq!(jwt.header().kid, "kid");
    }

    #[test]
    fn errors_name_the_missing_field_or_the_bad_key() {
        for (text, field) in [
            (r#"{"api_key_id":"k","api_private_key":"p"}"#, "app_id"),
            (r#"{"app_id":"a","api_private_key":"p"}"#, "api_key_id"),
            (r#"{"app_id":"a","api_key_id":"k"}"#, "api_private_key"),
        ] {
            let err = AppCredentials::from_json(text).unwrap_err();
            assert!(matches!(err, CredentialsError::Json(_)), "{err:?}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let err =
            AppCredentials::from_json(r#"{"app_id":1,"api_key_id":"k","api_private_key":"p"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert!(AppCredentials::from_json("not json").is_err());

        let creds = AppCredentials::from_json(&format!(
            r#"{{"app_id":"a","api_key_id":"k","api_private_key":"{}"}}"#,
            &key_b64()[..20]
        ))
        .unwrap();
        let err = creds.generator(60).unwrap_err();
        assert!(matches!(err, CredentialsError::BadKey(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("api_private_key is not a private key"),
            "{err}"
        );
        // The cause is in the message already: a chain printer must not repeat it.
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn debug_hides_the_private_key() {
        let secret = key_b64();
        let creds = AppCredentials {
            app_id: "a".into(),
            api_key_id: "k".into(),
            api_private_key: secret.clone(),
            api_public_key: None,
        };
        assert!(!format!("{creds:?}").contains(&secret));
    }
}
