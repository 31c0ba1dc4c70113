//! Error types.
//!
//! Format errors are precise: they name the field and the byte offset, because they describe
//! attacker-visible bytes only. Everything after key agreement collapses into
//! [`Error::DecryptionFailed`], so that a wrong key, a bad tag and bad padding cannot be told apart
//! (no decryption oracle).

use core::fmt;

/// The kind of a [`FormatError`]. Every variant names the field it was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatErrorKind {
    /// The input ended inside the named field.
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A DER tag other than the expected one.
    UnexpectedTag {
        /// The field being read.
        field: &'static str,
        /// The tag the schema requires.
        expected: u8,
        /// The tag found.
        actual: u8,
    },
    /// A DER length that is indefinite, non-minimal or too large.
    InvalidLength {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes left after a structure that must consume its whole input.
    TrailingData {
        /// The structure that should have ended.
        field: &'static str,
    },
    /// An object identifier this implementation does not support in that place.
    UnknownOid {
        /// The field being read.
        field: &'static str,
    },
    /// A field whose value is out of range or inconsistent with the rest of the structure.
    InvalidValue {
        /// The field being read.
        field: &'static str,
    },
}

/// A malformed structure: what was wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// What was wrong.
    pub kind: FormatErrorKind,
    /// Byte offset, from the start of the decoded buffer, of the element that was rejected.
    pub offset: usize,
}

impl FormatError {
    pub(crate) fn new(kind: FormatErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    pub(crate) fn invalid(field: &'static str, offset: usize) -> Self {
        Self::new(FormatErrorKind::InvalidValue { field }, offset)
    }

    pub(crate) fn truncated(field: &'static str, offset: usize) -> Self {
        Self::new(FormatErrorKind::Truncated { field }, offset)
    }

    /// Shifts the offset, for errors found inside a sub-buffer.
    pub(crate) fn shifted(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FormatErrorKind::Truncated { field } => write!(f, "truncated input in {field}"),
            FormatErrorKind::UnexpectedTag {
                field,
                expected,
                actual,
            } => write!(
                f,
                "unexpected tag 0x{actual:02x} in {field} (expected 0x{expected:02x})"
            ),
            FormatErrorKind::InvalidLength { field } => write!(f, "invalid length in {field}"),
            FormatErrorKind::TrailingData { field } => write!(f, "trailing data after {field}"),
            FormatErrorKind::UnknownOid { field } => write!(f, "unsupported algorithm in {field}"),
            FormatErrorKind::InvalidValue { field } => write!(f, "invalid value in {field}"),
        }?;
        write!(f, " at byte {}", self.offset)
    }
}

impl std::error::Error for FormatError {}

/// Errors returned by `sealkit-crypto`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a well-formed structure of the expected kind.
    #[error("malformed input: {0}")]
    Format(#[from] FormatError),
    /// The input is well formed, but uses an algorithm or key type this library does not handle
    /// in that role (for example an RSA private key, or signing with an X25519 key).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A key was given where a different one was needed, or key material is invalid
    /// (not on the curve, wrong length).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// None of the message's recipients is the given private key.
    #[error("the message is not addressed to this key")]
    RecipientNotFound,
    /// Decryption failed: wrong key, tampered ciphertext or padding. Deliberately uninformative.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The signature does not verify with any of the given keys.
    #[error("signature is not valid")]
    SignatureInvalid,
    /// The message carries no signature although one was required, or its signer is none of the
    /// given keys.
    #[error("the message has no signature from any of the given keys")]
    SignerNotFound,
    /// An argument is out of range (empty recipient list, too large plaintext, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A group message refers to a session or epoch that is not known.
    #[error("group session: {0}")]
    Group(&'static str),
    /// The system crypto library of the `openssl` backend failed (out of memory, or a build of
    /// it that lacks AES-256-GCM). Decryption reports [`Error::DecryptionFailed`] instead.
    #[error("crypto library: {0}")]
    Library(&'static str),
    /// Reading the input or writing the output failed (streaming APIs only).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
