//! relic 0.4.1's legacy hash-to-curve maps (`pythia-brainkey.md` §1, "Hash-to-curve"). These
//! are *not* RFC 9380: no domain separation tag, try-and-increment over SHA-384.
//!
//! Both loops run a data-dependent number of times, so their timing depends on the input (the
//! password for [`hash_to_g1`]). That is inherent in the legacy maps that Virgil's clients use;
//! an implementation that wants the same outputs cannot avoid it.

use crate::codec::{g1_rhs, g2_rhs};
use crate::field::{fq2_srt, fq_srt};
use ark_bls12_381::{Fq, Fq2, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{PrimeField, Zero};
use sha2::{Digest, Sha384};

/// `x₀ = OS2IP(SHA-384(m)) mod p` (relic: `md_map`, `bn_read_bin` of 48 bytes, `fp_prime_conv`).
fn initial_x(msg: &[u8]) -> Fq {
    Fq::from_be_bytes_mod_order(&Sha384::digest(msg))
}

/// H1, relic's `ep_map`: x ← x₀, x ← x + 1 until `x³ + 4` is a square, `y = (x³ + 4)^((p+1)/4)`,
/// then multiply by the *full* G1 cofactor `h = 0x396c8c005555e1568c00aaab0000aaab` (not the
/// `1 − x` that RFC 9380 uses).
pub(crate) fn hash_to_g1(msg: &[u8]) -> G1Affine {
    let mut x = initial_x(msg);
    loop {
        if let Some(y) = fq_srt(&g1_rhs(&x)) {
            // `mul_by_cofactor` multiplies by the curve's full cofactor.
            return G1Affine::new_unchecked(x, y).mul_by_cofactor();
        }
        x += Fq::from(1u64);
    }
}

/// H2, relic's `ep2_map`: x ← (x₀, 0), add 1 to `x.c0` until relic's `fp2_srt` finds a root of
/// `x³ + 4(1 + u)`, then clear the cofactor with `[x²−x−1]P + [x−1]ψ(P) + ψ²(2P)` (relic's
/// `ep2_mul_cof_b12`, identical to arkworks' `clear_cofactor` for BLS12-381 G2).
pub(crate) fn hash_to_g2(msg: &[u8]) -> G2Affine {
    let mut x = Fq2::new(initial_x(msg), Fq::zero());
    loop {
        if let Some(y) = fq2_srt(&g2_rhs(&x)) {
            return G2Affine::new_unchecked(x, y).clear_cofactor();
        }
        x.c0 += Fq::from(1u64);
    }
}
