//! The Virgil JWT that authenticates every request (spec §2).
//!
//! ```text
//! <jwt>   = b64url(header JSON) "." b64url(payload JSON) "." b64url(signature)   (base64url, no padding)
//! header  = {"alg":"VEDS512","kid":"<API key id>","typ":"JWT","cty":"virgil-jwt;v=1"}
//! payload = {"iss":"virgil-<app id>","sub":"identity-<identity>","iat":<secs>,"exp":<secs>[,"ada":<any>]}
//! signature = Virgil signature (spec §2, 83 bytes of DER for Ed25519) over the ASCII bytes of
//!             "<b64url header>.<b64url payload>", by the application's API private key
//! ```
//!
//! [`Jwt::parse`] keeps the received segments and verifies the signature over them: the JSON is
//! never re-serialized (spec §8.1). [`JwtGenerator`] plays the app backend's role and emits the same
//! bytes as the JS SDK's `JwtGenerator`; [`AppCredentials`] builds one from `sealkit app create --json`
//! output.

mod credentials;
mod generator;
#[cfg(test)]
mod tests;

pub use credentials::{AppCredentials, CredentialsError};
pub use generator::JwtGenerator;

use crate::text::{decode_js_text, json_object, JsonObjectError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sealkit_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The only accepted `alg` header value (spec §2).
pub const ALGORITHM: &str = "VEDS512";
/// The only accepted `typ` header value (spec §2).
pub const TYPE: &str = "JWT";
/// The only accepted `cty` header value (spec §2).
pub const CONTENT_TYPE: &str = "virgil-jwt;v=1";
/// `iss` = this prefix + the application id (spec §2).
pub const ISSUER_PREFIX: &str = "virgil-";
/// `sub` = this prefix + the user identity (spec §2).
pub const SUBJECT_PREFIX: &str = "identity-";
/// The `Authorization` header scheme: `Authorization: Virgil <jwt>` (spec §2).
pub const AUTH_SCHEME: &str = "Virgil";
/// The longest identity [`validate_identity`] accepts, in bytes of UTF-8.
pub const MAX_IDENTITY_LEN: usize = 256;

/// The JWT header (spec §2). Serializes compactly in the JS SDK's key order: `alg`, `kid`, `typ`,
/// `cty`. Unknown fields are accepted and ignored when parsing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    /// Signature algorithm; must be [`ALGORITHM`].
    pub alg: String,
    /// The application's API key id: selects the verification key. Free-form.
    pub kid: String,
    /// Must be [`TYPE`].
    pub typ: String,
    /// Must be [`CONTENT_TYPE`].
    pub cty: String,
}

/// The JWT payload (spec §2). Serializes compactly in the JS SDK's key order: `iss`, `sub`, `iat`,
/// `exp`, `ada` (left out when `None`). Unknown fields are accepted and ignored when parsing.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JwtClaims {
    /// `"virgil-" + app id`.
    pub iss: String,
    /// `"identity-" + identity`.
    pub sub: String,
    /// Issued at, Unix seconds (an integer on the wire).
    pub iat: i64,
    /// Expires at, Unix seconds (an integer on the wire).
    pub exp: i64,
    /// Optional "additional data", any JSON value; omitted entirely when absent. A JSON `null`
    /// parses as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ada: Option<serde_json::Value>,
}

/// Why a JWT was rejected.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// The token is not three unpadded base64url segments holding a JSON object header and payload
    /// with the required fields; the text names what is wrong.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// `alg` is not `VEDS512`.
    #[error("unsupported JWT algorithm (expected VEDS512)")]
    UnsupportedAlgorithm,
    /// `typ` is not `JWT` or `cty` is not `virgil-jwt;v=1`.
    #[error("wrong JWT type (expected typ JWT and cty virgil-jwt;v=1)")]
    WrongType,
    /// `iss` lacks the `virgil-` prefix or names another application.
    #[error("wrong JWT issuer")]
    WrongIssuer,
    /// `sub` lacks the `identity-` prefix, or the identity fails [`validate_identity`].
    #[error("bad JWT subject")]
    BadSubject,
    /// The signature does not verify with the application's key.
    #[error("JWT signature is not valid")]
    SignatureInvalid,
    /// `exp` is in the past by more than the allowed leeway (answer HTTP 401 + code 20304, spec §1.2).
    #[error("JWT is expired")]
    Expired,
    /// `iat` is in the future by more than the allowed leeway.
    #[error("JWT is not valid yet")]
    NotYetValid,
    /// [`JwtGenerator`] could not sign: the API key is of a type that cannot make signatures
    /// (an X25519 key).
    #[error("the API key cannot make signatures")]
    Signing,
}

/// Checks that `identity` is acceptable as a user identity: non-empty, at most
/// [`MAX_IDENTITY_LEN`] bytes of UTF-8, and free of control characters.
///
/// Identities should be ASCII in practice (spec §8.10): the JS SDK encodes the JWT payload and the
/// card snapshot as Latin-1, so characters U+0080..U+00FF arrive as single bytes (which this crate
/// decodes, see [`Jwt::parse`]), characters above U+00FF make the JS SDK throw, and the JS SDK
/// signs and hashes card snapshots over a different byte string than it sends for non-ASCII
/// identities (spec §3.1), so such cards fail self-signature verification.
pub fn validate_identity(identity: &str) -> Result<(), &'static str> {
    if identity.is_empty() {
        return Err("identity is empty");
    }
    if identity.len() > MAX_IDENTITY_LEN {
        return Err("identity is longer than 256 bytes");
    }
    if identity.chars().any(char::is_control) {
        return Err("identity contains a control character");
    }
    Ok(())
}

/// A parsed Virgil JWT (spec §2) that keeps the exact bytes it was parsed from.
///
/// Parsing checks only the structure; [`Jwt::verify`] checks the contents, the signature and the
/// times. `Display` prints the token; `Debug` shows the header and claims but not the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwt {
    header: JwtHeader,
    claims: JwtClaims,
    /// The ASCII bytes `"<b64url header>.<b64url payload>"`, which the signature covers.
    signed: Vec<u8>,
    /// The decoded signature segment (a Virgil signature DER).
    signature: Vec<u8>,
    /// The whole token as received.
    token: String,
}

impl Jwt {
    /// Parses a token strictly: exactly three segments, each unpadded base64url (no `=`, no
    /// standard-alphabet `+`/`/`, canonical trailing bits), a non-empty signature, header and
    /// payload JSON objects with all required fields and integer `iat`/`exp`, no duplicate keys.
    ///
    /// Header and payload are decoded as UTF-8, or as Latin-1 when they are not valid UTF-8 (the
    /// JS SDK's encoding, spec §2 "Encoding caveat"). Nothing is re-serialized: the signature is
    /// later checked over the received segments.
    pub fn parse(token: &str) -> Result<Jwt, JwtError> {
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JwtError::Malformed(
                "a JWT has exactly three dot-separated segments",
            ));
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| JwtError::Malformed("header segment is not unpadded base64url"))?;
        let payload_bytes = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| JwtError::Malformed("payload segment is not unpadded base64url"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwtError::Malformed("signature segment is not unpadded base64url"))?;
        if signature.is_empty() {
            return Err(JwtError::Malformed("signature segment is empty"));
        }
        let header: JwtHeader =
            json_object(&decode_js_text(&header_bytes)).map_err(|e| match e {
                JsonObjectError::NotObject => JwtError::Malformed("header is not a JSON object"),
                JsonObjectError::Invalid(_) => JwtError::Malformed(
                    "header is invalid JSON or lacks alg, kid, typ or cty as strings",
                ),
            })?;
        let claims: JwtClaims =
            json_object(&decode_js_text(&payload_bytes)).map_err(|e| match e {
                JsonObjectError::NotObject => JwtError::Malformed("payload is not a JSON object"),
                JsonObjectError::Invalid(_) => JwtError::Malformed(
                    "payload is invalid JSON or lacks iss, sub (strings), iat, exp (integers)",
                ),
            })?;
        let signed_len = header_b64.len() + 1 + payload_b64.len();
        let signed = token
            .as_bytes()
            .get(..signed_len)
            .ok_or(JwtError::Malformed("token is shorter than its segments"))?
            .to_vec();
        Ok(Jwt {
            header,
            claims,
            signed,
            signature,
            token: token.to_owned(),
        })
    }

    /// Parses the value of an `Authorization` header: `Virgil <jwt>` (spec §2). The scheme is
    /// matched case-insensitively and must be followed by exactly one space.
    pub fn from_authorization(value: &str) -> Result<Jwt, JwtError> {
        let scheme_len = AUTH_SCHEME.len();
        match (value.get(..scheme_len), value.get(scheme_len..)) {
            (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case(AUTH_SCHEME) => {
                match rest.strip_prefix(' ') {
                    Some(token) => Jwt::parse(token),
                    None => Err(JwtError::Malformed(
                        "Authorization header is not \"Virgil <jwt>\"",
                    )),
                }
            }
            _ => Err(JwtError::Malformed(
                "Authorization header does not use the Virgil scheme",
            )),
        }
    }

    /// The `Authorization` header value that carries this token: `Virgil <jwt>`.
    pub fn authorization(&self) -> String {
        format!("{AUTH_SCHEME} {}", self.token)
    }

    /// The parsed header.
    pub fn header(&self) -> &JwtHeader {
        &self.header
    }

    /// The parsed payload.
    pub fn claims(&self) -> &JwtClaims {
        &self.claims
    }

    /// The user identity: `sub` after the `identity-` prefix ([`JwtError::BadSubject`] without it).
    pub fn identity(&self) -> Result<&str, JwtError> {
        self.claims
            .sub
            .strip_prefix(SUBJECT_PREFIX)
            .ok_or(JwtError::BadSubject)
    }

    /// The application id: `iss` after the `virgil-` prefix ([`JwtError::WrongIssuer`] without it).
    pub fn app_id(&self) -> Result<&str, JwtError> {
        self.claims
            .iss
            .strip_prefix(ISSUER_PREFIX)
            .ok_or(JwtError::WrongIssuer)
    }

    /// The token exactly as parsed.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The bytes the signature covers: `"<b64url header>.<b64url payload>"` as received.
    pub fn signed_part(&self) -> &[u8] {
        &self.signed
    }

    /// The decoded signature (a Virgil signature DER).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the token for the application `expected_app_id` whose API public key (selected by
    /// `header().kid`) is `app_key`, at Unix time `now` (spec §2, server algorithm).
    ///
    /// Checks, in order: `alg` ([`JwtError::UnsupportedAlgorithm`]); `typ` and `cty`
    /// ([`JwtError::WrongType`]); `iss == "virgil-" + expected_app_id` ([`JwtError::WrongIssuer`]);
    /// `sub` has the `identity-` prefix and the identity passes [`validate_identity`]
    /// ([`JwtError::BadSubject`]); the Virgil signature over [`Jwt::signed_part`]
    /// ([`JwtError::SignatureInvalid`]); `exp >= now - leeway` ([`JwtError::Expired`]);
    /// `iat <= now + leeway` ([`JwtError::NotYetValid`]). A negative leeway counts as zero. Times
    /// are checked only after the signature, so only genuine tokens earn the 20304 retry.
    pub fn verify(
        &self,
        app_key: &PublicKey,
        expected_app_id: &str,
        now: i64,
        leeway_secs: i64,
    ) -> Result<(), JwtError> {
        if self.header.alg != ALGORITHM {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        if self.header.typ != TYPE || self.header.cty != CONTENT_TYPE {
            return Err(JwtError::WrongType);
        }
        if self.app_id()? != expected_app_id {
            return Err(JwtError::WrongIssuer);
        }
        validate_identity(self.identity()?).map_err(|_| JwtError::BadSubject)?;
        sealkit_crypto::verify(&self.signed, &self.signature, app_key)
            .map_err(|_| JwtError::SignatureInvalid)?;
        let leeway = leeway_secs.max(0);
        if self.claims.exp < now.saturating_sub(leeway) {
            return Err(JwtError::Expired);
        }
        if self.claims.iat > now.saturating_add(leeway) {
            return Err(JwtError::NotYetValid);
        }
        Ok(())
    }
}

impl FromStr for Jwt {
    type Err = JwtError;

    /// Same as [`Jwt::parse`].
    fn from_str(token: &str) -> Result<Self, Self::Err> {
        Jwt::parse(token)
    }
}

impl fmt::Display for Jwt {
    /// Writes the token string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token)
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}
