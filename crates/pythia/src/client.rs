//! The client side of BrainKey: blind, deblind (`pythia-brainkey.md` §1 "Protocol";
//! `virgil-services-api.md` §6). The key derivation from the deblinded value is in
//! [`brainkey_from_deblinded`](crate::brainkey_from_deblinded).

use crate::codec::{
    bn_decode_fr, bn_encode_be, gt_to_relic, G1Point, Gt, G1_COMPRESSED_LEN, GT_LEN,
};
use crate::ct;
use crate::error::{decode_err, DecodeErrorKind, Encoding, Error, Result};
use crate::field::{fr_to_be, random_nonzero_fr};
use crate::hash::hash_to_g1;
use ark_bls12_381::Fr;
use ark_ff::{BigInteger, Field, PrimeField, Zero};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Shortest password Virgil's pythia accepts (`DEF_PYTHIA_BIN_MIN_BUF_SIZE`).
pub const PASSWORD_MIN_LEN: usize = 1;
/// Longest password Virgil's pythia accepts (`DEF_PYTHIA_BIN_MAX_BUF_SIZE`). A longer one
/// would work here, but not with e3kit against the same server, so it is refused.
pub const PASSWORD_MAX_LEN: usize = 128;

/// The client's blinding secret `r⁻¹ mod r`, kept between [`blind`] and [`deblind`].
///
/// It has no `Debug`, no `Clone` and is zeroized on drop: together with the blinded password it
/// reveals `H1(password)`, which allows an offline dictionary attack against the server's answer.
pub struct BlindingSecret {
    inverse: Zeroizing<Fr>,
}

impl BlindingSecret {
    /// Imports a blinding secret in relic's integer encoding (what Virgil's `blind` returns as
    /// `blindingSecret`, possibly negative). Zero is refused.
    pub fn from_relic_bn(bytes: &[u8]) -> Result<Self> {
        let inverse = Zeroizing::new(bn_decode_fr(bytes)?);
        if inverse.is_zero() {
            return Err(decode_err(Encoding::Bn, DecodeErrorKind::OutOfRange));
        }
        Ok(Self { inverse })
    }

    /// The secret in relic's integer encoding (non-negative, below r); the copy is zeroized
    /// when dropped.
    pub fn to_relic_bn(&self) -> Zeroizing<Vec<u8>> {
        let be = Zeroizing::new(fr_to_be(&self.inverse));
        Zeroizing::new(bn_encode_be(be.as_ref()))
    }
}

/// `r⁻¹` by Fermat (`r^(q−2)` with q the group order): the exponent is public, so the
/// exponentiation's schedule does not depend on the secret (arkworks' `inverse` is a
/// variable-time binary Euclid).
fn invert(k: &Fr) -> Zeroizing<Fr> {
    let mut e = Fr::MODULUS;
    e.sub_with_borrow(&2u64.into());
    Zeroizing::new(k.pow(e))
}

/// relic's `pythia_blind`: `X = r·H1(password)` for a fresh random `r`; returns `X` in relic's
/// 49-byte compressed form (the request's `blinded_password`) and the secret `r⁻¹`.
///
/// The password must be 1 to 128 bytes (e3kit passes its UTF-8). `r·H1(password)` is computed
/// in constant time; `H1` itself is relic's try-and-increment map, whose running time depends
/// on the password (see [`crate::manual`]).
pub fn blind<R: RngCore + CryptoRng>(
    password: &[u8],
    rng: &mut R,
) -> Result<([u8; G1_COMPRESSED_LEN], BlindingSecret)> {
    if !(PASSWORD_MIN_LEN..=PASSWORD_MAX_LEN).contains(&password.len()) {
        return Err(Error::InvalidArgument(
            "the password must be 1 to 128 bytes long",
        ));
    }
    let h = hash_to_g1(password);
    let r = random_nonzero_fr(rng);
    let x = G1Point::new(ct::g1_mul(&h, &r))?;
    Ok((
        x.to_relic_compressed(),
        BlindingSecret {
            inverse: invert(&r),
        },
    ))
}

/// relic's `pythia_deblind`: `u = y^(r⁻¹) = e(H1(password), H2(tweak))^kw` for the server's
/// 384-byte answer `y` (the `seed`). The answer is fully validated (canonical, order r, not 1)
/// and the exponentiation is constant time. The result is the brain key's key material and is
/// zeroized when dropped.
pub fn deblind(transformed: &[u8], secret: &BlindingSecret) -> Result<Zeroizing<[u8; GT_LEN]>> {
    let y = Gt::from_relic(transformed)?;
    let u = Zeroizing::new(gt_to_relic(&ct::gt_pow(&y.0, &secret.inverse)));
    Ok(u)
}

#[cfg(test)]
impl BlindingSecret {
    pub(crate) fn scalar(&self) -> Fr {
        *self.inverse
    }
}
