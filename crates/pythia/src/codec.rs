//! relic 0.4.1's byte encodings, as Virgil's pythia module puts them on the wire
//! (`pythia-brainkey.md` §1, "Byte encodings"; `virgil-services-api.md` §6).
//!
//! ```text
//! Fp         48 bytes   canonical big-endian
//! G1 packed  49 bytes   0x02 | b  ‖ x            b = LSB of y in Montgomery form (y·2^384 mod p)
//! G1 full    97 bytes   0x04      ‖ x ‖ y
//! G2 packed  97 bytes   0x02 | b  ‖ x.c0 ‖ x.c1  b = LSB of y.c0 in Montgomery form
//! infinity    1 byte    0x00                     (G1 and G2; never accepted by the decoders here)
//! GT        384 bytes   fp2(a01) ‖ fp2(a02) ‖ fp2(a10) ‖ fp2(a12),   fp2(c0 + c1·u) = c0 ‖ c1
//!                       with a = (a00 + a01·v + a02·v²) + (a10 + a11·v + a12·v²)·w; the reader
//!                       rebuilds a00 and a11 (Karabina's decompression, relic's fp12_back_cyc)
//! integer   ≤ 50 bytes  sign (0 = +, 1 = −) ‖ minimal big-endian magnitude; zero is the single byte 0x00
//! ```
//!
//! The Montgomery parity bit is the trap: relic's `fp_get_bit(y, 0)` reads the raw limb, so the
//! flag is *not* the parity of the canonical y, nor ZCash's "lexicographically largest" flag.
//! A stock decoder picks −x for about half the inputs.
//!
//! Decoders are stricter than relic: they reject non-canonical coordinates (relic reduces them
//! mod p), the point at infinity (no value in the protocol is ever the identity), points outside
//! the prime-order subgroup, GT values outside the order-r subgroup and non-minimal integers.

use crate::error::{decode_err, DecodeErrorKind as K, Encoding, Result};
use crate::field::{fq2_srt, fq_from_be_slice, fq_srt, fq_to_be, mont_parity, FQ_BYTES};
use ark_bls12_381::{g1, g2, Fq, Fq12, Fq2, Fq6, Fr, G1Affine, G2Affine};
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ec::AffineRepr;
use ark_ff::{AdditiveGroup, Field, One, PrimeField, Zero};
use core::fmt;

/// Length of a compressed G1 point (blinded password, proof key, proof commitment t1).
pub const G1_COMPRESSED_LEN: usize = 1 + FQ_BYTES;
/// Length of an uncompressed G1 point.
pub const G1_UNCOMPRESSED_LEN: usize = 1 + 2 * FQ_BYTES;
/// Length of a compressed G2 point (the "transformed tweak").
pub const G2_COMPRESSED_LEN: usize = 1 + 2 * FQ_BYTES;
/// Length of a packed GT element (seed, transformed and deblinded password).
pub const GT_LEN: usize = 8 * FQ_BYTES;
/// Longest integer encoding relic's pythia wrapper accepts (sign byte included).
pub const BN_MAX_LEN: usize = 50;

// ---------------------------------------------------------------------------------------------
// G1
// ---------------------------------------------------------------------------------------------

/// A point of the prime-order subgroup G1 of BLS12-381, other than the point at infinity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct G1Point(pub(crate) G1Affine);

impl G1Point {
    /// Decodes relic's 49-byte compressed or 97-byte uncompressed form, checking canonical
    /// coordinates, the curve equation and subgroup membership. The 1-byte point at infinity
    /// is rejected with [`DecodeErrorKind::Identity`](crate::DecodeErrorKind::Identity).
    pub fn from_relic(bytes: &[u8]) -> Result<Self> {
        let p = g1_decode_on_curve(bytes)?;
        if !p.is_in_correct_subgroup_assuming_on_curve() {
            return Err(decode_err(Encoding::G1, K::NotInSubgroup));
        }
        Ok(Self(p))
    }

    /// relic's compressed form: `0x02 | b` ‖ x, b = Montgomery parity of y.
    pub fn to_relic_compressed(&self) -> [u8; G1_COMPRESSED_LEN] {
        let mut out = [0u8; G1_COMPRESSED_LEN];
        if let Some((x, y)) = self.0.xy() {
            out[0] = 0x02 | mont_parity(&y);
            fq_to_be(&x, &mut out[1..]);
        }
        out
    }

    /// relic's uncompressed form: `0x04` ‖ x ‖ y.
    pub fn to_relic_uncompressed(&self) -> [u8; G1_UNCOMPRESSED_LEN] {
        let mut out = [0u8; G1_UNCOMPRESSED_LEN];
        if let Some((x, y)) = self.0.xy() {
            out[0] = 0x04;
            fq_to_be(&x, &mut out[1..1 + FQ_BYTES]);
            fq_to_be(&y, &mut out[1 + FQ_BYTES..]);
        }
        out
    }

    pub(crate) fn new(p: G1Affine) -> Result<Self> {
        if p.is_zero() {
            return Err(decode_err(Encoding::G1, K::Identity));
        }
        Ok(Self(p))
    }
}

impl fmt::Debug for G1Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G1Point(")?;
        for b in self.to_relic_compressed() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// relic's `g1_write_bin(.., pack = 1)` for any point, the identity included (one `0x00` byte).
/// This is what the proof hash is computed over.
pub(crate) fn g1_to_relic_vec(p: &G1Affine) -> Vec<u8> {
    match G1Point::new(*p) {
        Ok(p) => p.to_relic_compressed().to_vec(),
        Err(_) => vec![0],
    }
}

/// Decodes a G1 encoding and checks everything but subgroup membership.
fn g1_decode_on_curve(bytes: &[u8]) -> Result<G1Affine> {
    let err = |k| decode_err(Encoding::G1, k);
    let (&flag, rest) = bytes
        .split_first()
        .ok_or(err(K::InvalidLength { actual: 0 }))?;
    match (bytes.len(), flag) {
        (1, 0x00) => Err(err(K::Identity)),
        (G1_COMPRESSED_LEN, 0x02 | 0x03) => {
            let x = fq_from_be_slice(rest).ok_or(err(K::NonCanonical))?;
            let mut y = fq_srt(&g1_rhs(&x)).ok_or(err(K::NotOnCurve))?;
            if mont_parity(&y) != flag & 1 {
                y = -y;
            }
            Ok(G1Affine::new_unchecked(x, y))
        }
        (G1_UNCOMPRESSED_LEN, 0x04) => {
            let (xb, yb) = rest.split_at(FQ_BYTES);
            let x = fq_from_be_slice(xb).ok_or(err(K::NonCanonical))?;
            let y = fq_from_be_slice(yb).ok_or(err(K::NonCanonical))?;
            let p = G1Affine::new_unchecked(x, y);
            if !p.is_on_curve() {
                return Err(err(K::NotOnCurve));
            }
            Ok(p)
        }
        (1 | G1_COMPRESSED_LEN | G1_UNCOMPRESSED_LEN, f) => Err(err(K::InvalidFlag(f))),
        (n, _) => Err(err(K::InvalidLength { actual: n })),
    }
}

/// The right-hand side `x³ + 4` of G1's curve equation.
pub(crate) fn g1_rhs(x: &Fq) -> Fq {
    x.square() * x + g1::Config::COEFF_B
}

// ---------------------------------------------------------------------------------------------
// G2
// ---------------------------------------------------------------------------------------------

/// A point of the prime-order subgroup G2 of BLS12-381, other than the point at infinity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct G2Point(pub(crate) G2Affine);

impl G2Point {
    /// Decodes relic's 97-byte compressed form, checking canonical coordinates, the curve
    /// equation and subgroup membership. The root is chosen as relic's `ep2_upk` does: relic's
    /// `fp2_srt` root, negated if the Montgomery parity of its `c0` differs from the flag.
    pub fn from_relic(bytes: &[u8]) -> Result<Self> {
        let err = |k| decode_err(Encoding::G2, k);
        let (&flag, rest) = bytes
            .split_first()
            .ok_or(err(K::InvalidLength { actual: 0 }))?;
        let p = match (bytes.len(), flag) {
            (1, 0x00) => return Err(err(K::Identity)),
            (G2_COMPRESSED_LEN, 0x02 | 0x03) => {
                let (c0, c1) = rest.split_at(FQ_BYTES);
                let c0 = fq_from_be_slice(c0).ok_or(err(K::NonCanonical))?;
                let c1 = fq_from_be_slice(c1).ok_or(err(K::NonCanonical))?;
                let x = Fq2::new(c0, c1);
                let mut y = fq2_srt(&g2_rhs(&x)).ok_or(err(K::NotOnCurve))?;
                if mont_parity(&y.c0) != flag & 1 {
                    y = -y;
                }
                G2Affine::new_unchecked(x, y)
            }
            (1 | G2_COMPRESSED_LEN, f) => return Err(err(K::InvalidFlag(f))),
            (n, _) => return Err(err(K::InvalidLength { actual: n })),
        };
        if !p.is_in_correct_subgroup_assuming_on_curve() {
            return Err(err(K::NotInSubgroup));
        }
        Ok(Self(p))
    }

    /// relic's compressed form: `0x02 | b` ‖ x.c0 ‖ x.c1, b = Montgomery parity of y.c0.
    pub fn to_relic_compressed(&self) -> [u8; G2_COMPRESSED_LEN] {
        let mut out = [0u8; G2_COMPRESSED_LEN];
        if let Some((x, y)) = self.0.xy() {
            out[0] = 0x02 | mont_parity(&y.c0);
            fq_to_be(&x.c0, &mut out[1..1 + FQ_BYTES]);
            fq_to_be(&x.c1, &mut out[1 + FQ_BYTES..]);
        }
        out
    }

    pub(crate) fn new(p: G2Affine) -> Result<Self> {
        if p.is_zero() {
            return Err(decode_err(Encoding::G2, K::Identity));
        }
        Ok(Self(p))
    }
}

impl fmt::Debug for G2Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G2Point(")?;
        for b in self.to_relic_compressed() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The right-hand side `x³ + 4(1 + u)` of G2's (M-twist) curve equation.
pub(crate) fn g2_rhs(x: &Fq2) -> Fq2 {
    x.square() * x + g2::Config::COEFF_B
}

// ---------------------------------------------------------------------------------------------
// GT
// ---------------------------------------------------------------------------------------------

/// An element of the order-r subgroup GT of Fp12* other than 1: a pairing value.
///
/// Its `Debug` shows no value, because a GT element may be a deblinded password (key material).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Gt(pub(crate) Fq12);

impl Gt {
    /// Decodes relic's 384-byte packed form. The missing coefficients are rebuilt with relic's
    /// `fp12_back_cyc`, then the result must have order r. An element whose `a10` is zero cannot
    /// be decompressed this way (relic would invert zero) and is rejected as not in the subgroup.
    pub fn from_relic(bytes: &[u8]) -> Result<Self> {
        let err = |k| decode_err(Encoding::Gt, k);
        if bytes.len() != GT_LEN {
            return Err(err(K::InvalidLength {
                actual: bytes.len(),
            }));
        }
        let mut fp2 = [Fq2::zero(); 4];
        for (slot, chunk) in fp2.iter_mut().zip(bytes.chunks_exact(2 * FQ_BYTES)) {
            let (c0, c1) = chunk.split_at(FQ_BYTES);
            let c0 = fq_from_be_slice(c0).ok_or(err(K::NonCanonical))?;
            let c1 = fq_from_be_slice(c1).ok_or(err(K::NonCanonical))?;
            *slot = Fq2::new(c0, c1);
        }
        let [a01, a02, a10, a12] = fp2;
        let a = back_cyc(a01, a02, a10, a12).ok_or(err(K::NotInSubgroup))?;
        if a.is_one() {
            return Err(err(K::Identity));
        }
        if !a.pow(Fr::MODULUS).is_one() {
            return Err(err(K::NotInSubgroup));
        }
        Ok(Self(a))
    }

    /// relic's packed form (`gt_write_bin(.., pack = 1)`).
    pub fn to_relic(&self) -> [u8; GT_LEN] {
        gt_to_relic(&self.0)
    }
}

impl fmt::Debug for Gt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gt(..)")
    }
}

/// Packs any Fp12 element as relic does: `fp2(a01) ‖ fp2(a02) ‖ fp2(a10) ‖ fp2(a12)`.
pub(crate) fn gt_to_relic(a: &Fq12) -> [u8; GT_LEN] {
    let mut out = [0u8; GT_LEN];
    let parts = [&a.c0.c1, &a.c0.c2, &a.c1.c0, &a.c1.c2];
    for (chunk, x) in out.chunks_exact_mut(2 * FQ_BYTES).zip(parts) {
        let (c0, c1) = chunk.split_at_mut(FQ_BYTES);
        fq_to_be(&x.c0, c0);
        fq_to_be(&x.c1, c1);
    }
    out
}

/// relic's `fp12_back_cyc` (Karabina): rebuilds `a11` and `a00` of a cyclotomic element from
/// `g4 = a01`, `g3 = a02`, `g2 = a10`, `g5 = a12`, with ξ = 1 + u:
/// `a11 = (ξ·g5² + 3·g4² − 2·g3) / (4·g2)`, `a00 = ξ·(2·a11² + g2·g5 − 3·g3·g4) + 1`.
/// `None` when `g2 = 0`.
fn back_cyc(g4: Fq2, g3: Fq2, g2: Fq2, g5: Fq2) -> Option<Fq12> {
    let xi = |x: Fq2| x * Fq2::new(Fq::one(), Fq::one());
    let t0 = g4.square();
    let t1 = (t0 - g3).double() + t0;
    let num = xi(g5.square()) + t1;
    let inv = g2.double().double().inverse()?;
    let a11 = num * inv;
    let g3g4 = g3 * g4;
    let t2 = (a11.square() - g3g4).double() - g3g4 + g2 * g5;
    let mut a00 = xi(t2);
    a00.c0 += Fq::one();
    Some(Fq12::new(Fq6::new(a00, g4, g3), Fq6::new(g2, a11, g5)))
}

// ---------------------------------------------------------------------------------------------
// Integers (relic `bn_t` through pythia's `bn_write_buf`/`bn_read_buf`)
// ---------------------------------------------------------------------------------------------

/// A decoded relic integer: sign and minimal big-endian magnitude.
pub(crate) struct Bn<'a> {
    pub(crate) negative: bool,
    pub(crate) magnitude: &'a [u8],
}

/// Decodes the integer encoding: accepts exactly what relic's `bn_write_buf` writes.
pub(crate) fn bn_decode(bytes: &[u8]) -> Result<Bn<'_>> {
    let err = |k| decode_err(Encoding::Bn, k);
    if bytes.len() > BN_MAX_LEN {
        return Err(err(K::InvalidLength {
            actual: bytes.len(),
        }));
    }
    let (&sign, magnitude) = bytes
        .split_first()
        .ok_or(err(K::InvalidLength { actual: 0 }))?;
    let negative = match sign {
        0 => false,
        1 => true,
        f => return Err(err(K::InvalidFlag(f))),
    };
    match magnitude.first() {
        // relic writes zero as the single byte 0x00 (an empty magnitude).
        None if !negative => {}
        None => return Err(err(K::NonMinimal)),
        Some(0) => return Err(err(K::NonMinimal)),
        Some(_) => {}
    }
    Ok(Bn {
        negative,
        magnitude,
    })
}

/// Encodes a non-negative big-endian integer: `0x00` ‖ magnitude without leading zeros.
pub(crate) fn bn_encode_be(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    let mut out = Vec::with_capacity(1 + be.len() - start);
    out.push(0);
    out.extend_from_slice(&be[start..]);
    out
}

/// Decodes an integer and reduces it modulo r, honouring its sign.
pub(crate) fn bn_decode_fr(bytes: &[u8]) -> Result<Fr> {
    let bn = bn_decode(bytes)?;
    let k = Fr::from_be_bytes_mod_order(bn.magnitude);
    Ok(if bn.negative { -k } else { k })
}
