//! Constant-time multiplication by secret scalars: `k·P` in G1 and `a^k` in GT.
//!
//! arkworks' `mul`/`pow` are variable-time (double-and-add that skips zero bits, GLV with a
//! data-dependent decomposition, early returns on the identity). The secrets this crate handles
//! — the server's `kw`, the proof nonce `v`, the client's blinding scalar and its inverse — go
//! through the routines here instead:
//!
//! * **G1**: the scalar is made odd (`k` or `r − k`, chosen with a mask; the result is negated
//!   back by mask), recoded into 64 signed odd base-16 digits (Joye–Tunstall regular recoding, no
//!   zero digits), and evaluated with a fixed schedule of 252 doublings and 63 additions. The
//!   table `{P, 3P, …, 15P}` is read by scanning all eight entries with `subtle` masks. Point
//!   arithmetic uses the *complete* formulas of Renes–Costello–Batina 2015 (Alg. 7 and 9,
//!   a = 0) in homogeneous projective coordinates, written here over arkworks' `Fq`, so there
//!   is no branch on the identity or on doubling. The single final inversion is Fermat's
//!   `z^(p−2)` with a public exponent.
//! * **GT**: fixed 4-bit windows over all 256 bits of the scalar, 4 cyclotomic squarings and one
//!   multiplication per window (the multiplication by the table's `1` is an ordinary one), the
//!   table `{1, a, …, a^15}` read by masked scanning.
//!
//! Residual risk, stated precisely: the schedule of field operations and the memory access
//! pattern do not depend on the secret, but the field operations themselves are arkworks'
//! Montgomery arithmetic, whose additions and multiplications finish with a *conditional*
//! subtraction of p (`if a ≥ p { a -= p }`). arkworks does not claim constant time for it. The
//! leak is a data-dependent branch per field operation whose outcome depends on intermediate
//! coordinates, not directly on scalar bits; no practical attack on this pattern is known to us,
//! but it is not the audited constant-time arithmetic of, e.g., zkcrypto's `bls12_381`. The
//! final `into_bigint` of the scalar is one Montgomery reduction with the same caveat.

use crate::field::{fq12_select, fq_select, fr_limbs, p_minus_2};
use ark_bls12_381::{g1, Fq, Fq12, Fr, G1Affine};
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ff::{AdditiveGroup, CyclotomicMultSubgroup, Field, One, PrimeField, Zero};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// A G1 point in homogeneous projective coordinates `(X : Y : Z)`, `x = X/Z`, `y = Y/Z`;
/// the identity is `(0 : 1 : 0)`.
#[derive(Clone, Copy)]
struct Proj {
    x: Fq,
    y: Fq,
    z: Fq,
}

/// `3·b·x = 12·x` with three doublings and one addition instead of a multiplication by the
/// constant (a full Montgomery multiplication in arkworks): 12x = 4·(2x + x).
fn mul_by_b3(x: Fq) -> Fq {
    debug_assert!(g1::Config::COEFF_B == Fq::from(4u64));
    let x3 = x.double() + x;
    x3.double().double()
}

impl Proj {
    fn identity() -> Self {
        Self {
            x: Fq::zero(),
            y: Fq::one(),
            z: Fq::zero(),
        }
    }

    fn from_affine(p: &G1Affine) -> Self {
        if p.infinity {
            Self::identity()
        } else {
            Self {
                x: p.x,
                y: p.y,
                z: Fq::one(),
            }
        }
    }

    /// Renes–Costello–Batina 2015, Algorithm 7 (complete addition, a = 0).
    fn add(&self, o: &Self) -> Self {
        let mut t0 = self.x * o.x;
        let mut t1 = self.y * o.y;
        let mut t2 = self.z * o.z;
        let mut t3 = self.x + self.y;
        let mut t4 = o.x + o.y;
        t3 *= t4;
        t4 = t0 + t1;
        t3 -= t4;
        t4 = self.y + self.z;
        let mut x3 = o.y + o.z;
        t4 *= x3;
        x3 = t1 + t2;
        t4 -= x3;
        x3 = self.x + self.z;
        let mut y3 = o.x + o.z;
        x3 *= y3;
        y3 = t0 + t2;
        y3 = x3 - y3;
        x3 = t0.double();
        t0 += x3;
        t2 = mul_by_b3(t2);
        let mut z3 = t1 + t2;
        t1 -= t2;
        y3 = mul_by_b3(y3);
        x3 = t4 * y3;
        t2 = t3 * t1;
        x3 = t2 - x3;
        y3 *= t0;
        t1 *= z3;
        y3 += t1;
        t0 *= t3;
        z3 *= t4;
        z3 += t0;
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// Renes–Costello–Batina 2015, Algorithm 9 (complete doubling, a = 0).
    fn double(&self) -> Self {
        let mut t0 = self.y.square();
        let mut z3 = t0.double().double().double();
        let mut t1 = self.y * self.z;
        let mut t2 = mul_by_b3(self.z.square());
        let mut x3 = t2 * z3;
        let mut y3 = t0 + t2;
        z3 *= t1;
        t1 = t2.double();
        t2 += t1;
        t0 -= t2;
        y3 *= t0;
        y3 += x3;
        t1 = self.x * self.y;
        x3 = t0 * t1;
        x3.double_in_place();
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    fn conditional_negate(&self, choice: Choice) -> Self {
        Self {
            x: self.x,
            y: fq_select(&self.y, &-self.y, choice),
            z: self.z,
        }
    }

    fn conditional_assign(&mut self, o: &Self, choice: Choice) {
        self.x = fq_select(&self.x, &o.x, choice);
        self.y = fq_select(&self.y, &o.y, choice);
        self.z = fq_select(&self.z, &o.z, choice);
    }

    /// Back to affine with a Fermat inversion (public exponent, regular).
    fn to_affine(self) -> G1Affine {
        if self.z.is_zero() {
            return G1Affine::identity();
        }
        let zinv = self.z.pow(p_minus_2());
        G1Affine::new_unchecked(self.x * zinv, self.y * zinv)
    }
}

/// Number of signed base-16 digits: 63 recoded digits plus the final positive one.
const DIGITS: usize = 64;

/// Regular signed recoding of an odd integer `k < 2^255`: `k = Σ dᵢ·16^i` with every `dᵢ` odd,
/// `|dᵢ| ≤ 15`, and the top digit positive. Branch-free: each step is
/// `d = (k mod 32) − 16`, `k = (k − d) / 16`.
fn recode_odd(k: &[u64; 4]) -> [i8; DIGITS] {
    let mut w = [k[0], k[1], k[2], k[3], 0u64];
    let mut digits = [0i8; DIGITS];
    for d_out in digits.iter_mut().take(DIGITS - 1) {
        let d = (w[0] & 31) as i64 - 16;
        *d_out = d as i8;
        // w ← w − d, with −d sign-extended over all limbs (two's complement); w − d ≥ 0.
        let neg = -d;
        let ext = (neg >> 63) as u64;
        let mut carry = 0u128;
        for (i, limb) in w.iter_mut().enumerate() {
            let addend = if i == 0 { neg as u64 } else { ext };
            let s = *limb as u128 + addend as u128 + carry;
            *limb = s as u64;
            carry = s >> 64;
        }
        // w ← w / 16 (exact).
        for i in 0..5 {
            let hi = if i < 4 { w[i + 1] << 60 } else { 0 };
            w[i] = (w[i] >> 4) | hi;
        }
    }
    digits[DIGITS - 1] = w[0] as i8;
    digits
}

/// `r − k` for `k < r` (as 4 little-endian limbs).
fn r_minus(k: &[u64; 4]) -> [u64; 4] {
    let r = Fr::MODULUS.0;
    let mut out = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d1, b1) = r[i].overflowing_sub(k[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        out[i] = d2;
        borrow = (b1 | b2) as u64;
    }
    out
}

/// `k·P` in constant time with respect to `k` (see the module documentation for the residual
/// risk). `P` may be any point of G1; `k = 0` gives the identity.
pub(crate) fn g1_mul(p: &G1Affine, k: &Fr) -> G1Affine {
    let limbs = fr_limbs(k);
    // Make the scalar odd: k' = k if k is odd, r − k if it is even (r is odd); then k'·P is
    // negated back when r − k was used.
    let even = Choice::from(((limbs[0] & 1) ^ 1) as u8);
    let alt = r_minus(&limbs);
    let mut odd = [0u64; 4];
    for i in 0..4 {
        odd[i] = u64::conditional_select(&limbs[i], &alt[i], even);
    }
    let digits = recode_odd(&odd);

    // table[j] = (2j + 1)·P
    let base = Proj::from_affine(p);
    let twice = base.double();
    let mut table = [base; 8];
    for j in 1..8 {
        table[j] = table[j - 1].add(&twice);
    }
    let lookup = |d: i8| -> Proj {
        let sign = (d as u8) >> 7;
        let mask = 0u8.wrapping_sub(sign);
        let abs = ((d as u8) ^ mask).wrapping_add(sign);
        let idx = abs >> 1;
        let mut out = Proj::identity();
        for (j, entry) in table.iter().enumerate() {
            out.conditional_assign(entry, (j as u8).ct_eq(&idx));
        }
        out.conditional_negate(Choice::from(sign))
    };

    let mut acc = lookup(digits[DIGITS - 1]);
    for &d in digits[..DIGITS - 1].iter().rev() {
        for _ in 0..4 {
            acc = acc.double();
        }
        acc = acc.add(&lookup(d));
    }
    acc.conditional_negate(even).to_affine()
}

/// `a^k` in GT in constant time with respect to `k`. `a` must be in the cyclotomic subgroup
/// (any pairing value or decoded [`Gt`](crate::Gt) is), because the squarings are cyclotomic.
pub(crate) fn gt_pow(a: &Fq12, k: &Fr) -> Fq12 {
    let limbs = fr_limbs(k);
    let mut table = [Fq12::one(); 16];
    for j in 1..16 {
        table[j] = table[j - 1] * a;
    }
    let mut acc = Fq12::one();
    for window in (0..64).rev() {
        for _ in 0..4 {
            acc.cyclotomic_square_in_place();
        }
        let limb = limbs[window / 16];
        let nibble = ((limb >> ((window % 16) * 4)) & 15) as u8;
        let mut t = Fq12::one();
        for (j, entry) in table.iter().enumerate() {
            t = fq12_select(&t, entry, (j as u8).ct_eq(&nibble));
        }
        acc *= t;
    }
    acc
}
