//! Field helpers shared by the codec, the hash maps and the constant-time code: canonical
//! big-endian conversion, relic's square roots, the Montgomery parity bit and limb-wise
//! constant-time selection.

use ark_bls12_381::{Fq, Fq12, Fq2, Fq6, Fr};
use ark_ff::{AdditiveGroup, BigInt, BigInteger, Field, PrimeField};
use rand_core::{CryptoRng, RngCore};
use subtle::{Choice, ConditionallySelectable};
use zeroize::Zeroizing;

/// Bytes of a base-field element.
pub(crate) const FQ_BYTES: usize = 48;

/// `(p + 1) / 4`, relic's square-root exponent for p ≡ 3 (mod 4).
pub(crate) fn p_plus_1_div_4() -> BigInt<6> {
    let mut e = Fq::MODULUS;
    e.add_with_carry(&BigInt::from(1u64));
    e.div2();
    e.div2();
    e
}

/// `p - 2`, the Fermat inversion exponent (public, so the exponentiation is regular).
pub(crate) fn p_minus_2() -> BigInt<6> {
    let mut e = Fq::MODULUS;
    e.sub_with_borrow(&BigInt::from(2u64));
    e
}

/// Reads a canonical 48-byte big-endian base-field element; `None` if it is `>= p`.
pub(crate) fn fq_from_be(bytes: &[u8; FQ_BYTES]) -> Option<Fq> {
    let mut limbs = [0u64; 6];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        limbs[5 - i] = u64::from_be_bytes(b);
    }
    Fq::from_bigint(BigInt(limbs))
}

/// Writes a base-field element as 48 canonical big-endian bytes.
pub(crate) fn fq_to_be(x: &Fq, out: &mut [u8]) {
    let limbs = x.into_bigint().0;
    for (i, chunk) in out.chunks_exact_mut(8).take(6).enumerate() {
        chunk.copy_from_slice(&limbs[5 - i].to_be_bytes());
    }
}

/// Reads a 48-byte big-endian slice; `None` for a wrong length or a non-canonical value.
pub(crate) fn fq_from_be_slice(bytes: &[u8]) -> Option<Fq> {
    let arr: &[u8; FQ_BYTES] = bytes.try_into().ok()?;
    fq_from_be(arr)
}

/// relic's `fp_get_bit(a, 0)`: the least significant bit of the *Montgomery* representation
/// `a·2^384 mod p`, which is what relic stores and therefore what its point compression flags.
pub(crate) fn mont_parity(x: &Fq) -> u8 {
    (x.0 .0[0] & 1) as u8
}

/// relic's `fp_srt` for p ≡ 3 (mod 4): `c = a^((p+1)/4)`, returned only if `c² = a`.
pub(crate) fn fq_srt(a: &Fq) -> Option<Fq> {
    let c = a.pow(p_plus_1_div_4());
    (c.square() == *a).then_some(c)
}

/// relic 0.4.1's `fp2_srt` for Fp2 = Fp[u]/(u²+1), reproduced step by step because the root it
/// picks decides which point the legacy hash to G2 lands on:
/// `N = a0² + a1²`, `t = (a0 + √N)/2` (or `(a0 − √N)/2` if the first has no root),
/// `c0 = √t`, `c1 = a1 / (2·c0)`.
pub(crate) fn fq2_srt(a: &Fq2) -> Option<Fq2> {
    let norm = a.c0.square() + a.c1.square();
    let s = fq_srt(&norm)?;
    let half = Fq::from(2u64).inverse()?;
    let c0 = match fq_srt(&((a.c0 + s) * half)) {
        Some(c0) => c0,
        // relic does not check the second root: when `a` is a square one of the two halves is.
        None => ((a.c0 - s) * half).pow(p_plus_1_div_4()),
    };
    let c1 = a.c1 * c0.double().inverse()?;
    let c = Fq2::new(c0, c1);
    (c.square() == *a).then_some(c)
}

/// Constant-time selection of a base-field element: `b` if `choice` is set, else `a`. Works on
/// the Montgomery limbs, so no field operation (and no branch) is involved.
pub(crate) fn fq_select(a: &Fq, b: &Fq, choice: Choice) -> Fq {
    let mut out = *a;
    for i in 0..6 {
        out.0 .0[i] = u64::conditional_select(&a.0 .0[i], &b.0 .0[i], choice);
    }
    out
}

fn fq2_select(a: &Fq2, b: &Fq2, choice: Choice) -> Fq2 {
    Fq2::new(
        fq_select(&a.c0, &b.c0, choice),
        fq_select(&a.c1, &b.c1, choice),
    )
}

fn fq6_select(a: &Fq6, b: &Fq6, choice: Choice) -> Fq6 {
    Fq6::new(
        fq2_select(&a.c0, &b.c0, choice),
        fq2_select(&a.c1, &b.c1, choice),
        fq2_select(&a.c2, &b.c2, choice),
    )
}

/// Constant-time selection of an Fp12 element.
pub(crate) fn fq12_select(a: &Fq12, b: &Fq12, choice: Choice) -> Fq12 {
    Fq12::new(
        fq6_select(&a.c0, &b.c0, choice),
        fq6_select(&a.c1, &b.c1, choice),
    )
}

/// A scalar's canonical little-endian limbs.
pub(crate) fn fr_limbs(k: &Fr) -> [u64; 4] {
    k.into_bigint().0
}

/// Reduces a big-endian integer of any length modulo r.
pub(crate) fn fr_from_be_mod_order(bytes: &[u8]) -> Fr {
    Fr::from_be_bytes_mod_order(bytes)
}

/// A scalar as 32 big-endian bytes.
pub(crate) fn fr_to_be(k: &Fr) -> [u8; 32] {
    let limbs = fr_limbs(k);
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&limbs[3 - i].to_be_bytes());
    }
    out
}

/// A uniformly random non-zero scalar (64 random bytes reduced mod r), zeroized on drop.
pub(crate) fn random_nonzero_fr<R: RngCore + CryptoRng>(rng: &mut R) -> Zeroizing<Fr> {
    let mut bytes = Zeroizing::new([0u8; 64]);
    loop {
        rng.fill_bytes(bytes.as_mut());
        let k = Zeroizing::new(Fr::from_le_bytes_mod_order(bytes.as_ref()));
        if !ark_ff::Zero::is_zero(&*k) {
            return k;
        }
    }
}
