//! Error types.
//!
//! Decoding errors are precise: they name the encoding and say what was wrong with it, because
//! they describe bytes an attacker already knows. Proof verification fails with the single,
//! detail-free [`Error::ProofInvalid`].

use core::fmt;

/// Which relic encoding a [`DecodeError`] was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// A G1 point (49-byte compressed, 97-byte uncompressed or the 1-byte point at infinity).
    G1,
    /// A G2 point (97-byte compressed or the 1-byte point at infinity).
    G2,
    /// A target-group element (384-byte packed form).
    Gt,
    /// A signed integer (sign byte followed by a minimal big-endian magnitude).
    Bn,
    /// A NIST P-256 point of brainkey v3 (65-byte uncompressed SEC1).
    P256,
    /// A NIST P-256 scalar of brainkey v3 (32-byte big-endian, below the group order).
    P256Scalar,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::G1 => "G1 point",
            Self::G2 => "G2 point",
            Self::Gt => "GT element",
            Self::Bn => "integer",
            Self::P256 => "P-256 point",
            Self::P256Scalar => "P-256 scalar",
        })
    }
}

/// What was wrong with an encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input has a length this encoding never has.
    InvalidLength {
        /// The length found.
        actual: usize,
    },
    /// The leading format byte (`0x02`/`0x03` compressed, `0x04` uncompressed, `0x00`
    /// infinity; `0`/`1` for an integer's sign) is not allowed here.
    InvalidFlag(u8),
    /// A base-field element is not below the field prime (relic would reduce it; we refuse).
    NonCanonical,
    /// An integer magnitude has a leading zero byte, or is negative zero.
    NonMinimal,
    /// The coordinates do not satisfy the curve equation (no square root exists for x).
    NotOnCurve,
    /// The point or element is not in the prime-order subgroup.
    NotInSubgroup,
    /// The point at infinity or the identity of GT, where a proper element is required.
    Identity,
    /// The value is out of the range its role allows (for example a zero scalar).
    OutOfRange,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLength { actual } => write!(f, "invalid length {actual}"),
            Self::InvalidFlag(b) => write!(f, "invalid format byte 0x{b:02x}"),
            Self::NonCanonical => f.write_str("field element not in canonical form"),
            Self::NonMinimal => f.write_str("integer not minimally encoded"),
            Self::NotOnCurve => f.write_str("not on the curve"),
            Self::NotInSubgroup => f.write_str("not in the prime-order subgroup"),
            Self::Identity => f.write_str("identity element not allowed"),
            Self::OutOfRange => f.write_str("value out of range"),
        }
    }
}

/// A rejected encoding: which one, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// The encoding being decoded.
    pub encoding: Encoding,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn new(encoding: Encoding, kind: DecodeErrorKind) -> Self {
        Self { encoding, kind }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.encoding, self.kind)
    }
}

impl std::error::Error for DecodeError {}

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that are not a valid relic encoding of the expected kind.
    #[error("invalid encoding: {0}")]
    Decode(#[from] DecodeError),
    /// An argument outside what the protocol allows (the message names the argument).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A Chaum–Pedersen proof that does not verify.
    #[error("the transformation proof does not verify")]
    ProofInvalid,
    /// A derived secret scalar came out as zero. The chance is about 2^-255 per derivation; it is
    /// reported rather than silently used because a zero key maps every password to the same value.
    #[error("the derived key is degenerate")]
    DegenerateKey,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

pub(crate) fn decode_err(encoding: Encoding, kind: DecodeErrorKind) -> Error {
    Error::Decode(DecodeError::new(encoding, kind))
}
