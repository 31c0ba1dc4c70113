//! Brainkey v3: the OPRF over NIST P-256 with a DLEQ proof that the mobile e3kit SDKs
//! (e3kit-kotlin 3.x, e3kit-x) use for key backups through `POST /brainkey/v3/harden`
//! (`e3kit-mobile-v3.md`, "Brainkey v3"). Byte-compatible with virgil-crypto-c's foundation
//! `vscf_brainkey_client` / `vscf_brainkey_server` (checked against `virgil-crypto-lib` 0.23.1).
//!
//! # The protocol, as virgil-crypto-c computes it
//!
//! * Points are 65-byte uncompressed SEC1 encodings (`04 ‖ X ‖ Y`); scalars and proof values are
//!   32-byte big-endian integers below the group order n.
//! * **Password to point** (`vscf_simple_swu_data_to_point`): `t` = the first 32 bytes of
//!   SHA-512(password) read as a big-endian integer mod p, then the *simplified SWU* map of
//!   Brier et al. (not RFC 9380's): `α = −t²`, `x₂ = (1/(α² + α) + 1)·(−b/a)`, `x₃ = α·x₂`,
//!   `h(x) = x³ + a·x + b`; if `h(x₂)` is a non-zero square the point is `(x₂, h(x₂)^((p+1)/4))`,
//!   else `(x₃, h(x₃)^((p+1)/4))`. No cofactor clearing is needed (P-256 has cofactor 1).
//! * **Blind**: random `r ∈ [1, n)`, `A = r·P`; the client keeps `r⁻¹ mod n` (the *deblind
//!   factor*).
//! * **Harden** (server): `Y = x·A` with the identity secret `x ∈ [1, n)`; its public key is
//!   `G_x = x·G`.
//! * **Prove** (server): random `k`, `V₁ = k·G`, `V₂ = k·A`,
//!   `c = SHA-256(G_x ‖ A ‖ Y ‖ V₁ ‖ V₂) mod n` (all five uncompressed), `s = k − c·x mod n`.
//! * **Verify** (client): `V₁' = s·G + c·G_x`, `V₂' = s·A + c·Y`, accept when the same hash of
//!   `G_x ‖ A ‖ Y ‖ V₁' ‖ V₂'` equals `c`.
//! * **Deblind**: `S = r⁻¹·Y` (= x·P), seed = HKDF-SHA-512(salt = password, ikm = S uncompressed,
//!   info = key name, 32 bytes). e3kit's key name is [`E3KIT_BACKUP_KEY_NAME`], and its backup key
//!   pair is [`crate::private_key_from_key_material`] of the seed (Ed25519).
//!
//! # Differences from virgil-crypto-c
//!
//! Decoders are strict in the same places mbedTLS is (uncompressed only, coordinates below p,
//! on the curve, scalars in `[1, n)`); in addition a proof value `c` or `s` at or above n is
//! refused up front (mbedTLS ends up refusing both too). Secret scalars are held in zeroizing
//! wrappers and multiplied with p256's constant-time ladder; the hash to the curve selects its
//! branch without a secret-dependent jump.

use crate::error::{decode_err, DecodeErrorKind, Encoding, Error, Result};
use hkdf::Hkdf;
use p256::elliptic_curve::bigint::U256;
use p256::elliptic_curve::group::Group as _;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::sec1::{EncodedPoint, FromEncodedPoint, ToEncodedPoint};
use p256::elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use p256::elliptic_curve::{Field as _, PrimeField as _};
use p256::{AffinePoint, FieldBytes, FieldElement, NistP256, ProjectivePoint, Scalar};
use primeorder::PrimeCurveParams;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// Length of an encoded point: uncompressed SEC1, `04 ‖ X ‖ Y`.
pub const POINT_LEN: usize = 65;
/// Length of an encoded scalar (deblind factor, identity secret, proof values).
pub const SCALAR_LEN: usize = 32;
/// Length of the seed [`deblind`] derives.
pub const SEED_LEN: usize = 32;
/// Longest password the C client accepts (`vscf_brainkey_client_MAX_PASSWORD_LEN`); the
/// shortest is one byte.
pub const PASSWORD_MAX_LEN: usize = 128;
/// Longest key name the C client accepts (`vscf_brainkey_client_MAX_KEY_NAME_LEN`).
pub const KEY_NAME_MAX_LEN: usize = 128;
/// The key name e3kit-kotlin and e3kit-x pass to `deblind` for their key backups.
pub const E3KIT_BACKUP_KEY_NAME: &[u8] = b"e3kit-backup";

/// An encoded point: 65 bytes, uncompressed.
pub type PointBytes = [u8; POINT_LEN];

/// The client's blinding secret `r⁻¹ mod n`, kept between [`blind`] and [`deblind`].
///
/// Secret: zeroized on drop, no `Clone`, and `Debug` prints nothing of it.
pub struct DeblindFactor(Scalar);

impl DeblindFactor {
    /// Decodes the 32-byte big-endian factor virgil-crypto-c's `blind` returns.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode_nonzero_scalar(bytes).map(Self)
    }

    /// The 32-byte big-endian encoding (what virgil-crypto-c's `blind` returns). The copy is
    /// zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(self.0.to_bytes().into())
    }
}

impl Drop for DeblindFactor {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for DeblindFactor {}

impl core::fmt::Debug for DeblindFactor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeblindFactor").finish_non_exhaustive()
    }
}

/// The server's per-identity secret `x ∈ [1, n)`.
///
/// Secret: zeroized on drop, no `Clone`, and `Debug` prints only the public key.
pub struct IdentitySecret(Scalar);

impl IdentitySecret {
    /// Decodes a 32-byte big-endian secret in `[1, n)`, as virgil-crypto-c's
    /// `generate_identity_secret` makes them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        decode_nonzero_scalar(bytes).map(Self)
    }

    /// A random secret (tests and tools; a server derives its secrets with
    /// [`IdentitySecret::derive`]).
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        Self(*p256::NonZeroScalar::random(rng))
    }

    /// The deterministic secret of one identity of one application, derived from the
    /// deployment's brainkey secret, so that every replica answers the same without storing
    /// anything:
    ///
    /// `x = OS2IP(HKDF-SHA-512(salt = "sealkit brainkey v3 identity secret",
    ///   ikm = master, info = u32be(len app_id) ‖ app_id ‖ u32be(len identity) ‖ identity,
    ///   L = 48)) mod (n − 1) + 1`
    ///
    /// 48 bytes reduced modulo n − 1 keep the bias below 2⁻¹²⁸, and the `+ 1` keeps x non-zero.
    /// This derivation is permanent: changing it changes every v3 backup key of the deployment.
    pub fn derive(master: &[u8], app_id: &str, identity: &str) -> Result<Self> {
        let mut info = Vec::with_capacity(8 + app_id.len() + identity.len());
        for part in [app_id.as_bytes(), identity.as_bytes()] {
            let len = u32::try_from(part.len())
                .map_err(|_| Error::InvalidArgument("app id or identity too long"))?;
            info.extend_from_slice(&len.to_be_bytes());
            info.extend_from_slice(part);
        }
        let mut okm = Zeroizing::new([0u8; 48]);
        Hkdf::<Sha512>::new(Some(IDENTITY_SECRET_SALT), master)
            .expand(&info, &mut okm[..])
            .map_err(|_| Error::InvalidArgument("HKDF output length"))?;
        Ok(Self(reduce_to_nonzero_scalar(&okm)))
    }

    /// The 32-byte big-endian encoding. The copy is zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(self.0.to_bytes().into())
    }

    /// `compute_public_key`: `G_x = x·G`, 65 bytes.
    pub fn public_key(&self) -> PointBytes {
        encode_point(&(ProjectivePoint::GENERATOR * self.0))
    }
}

impl Drop for IdentitySecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for IdentitySecret {}

impl core::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentitySecret")
            .field("public_key", &hex_lower(&self.public_key()))
            .finish_non_exhaustive()
    }
}

/// Salt of [`IdentitySecret::derive`] (domain separation from the v1 Pythia derivations).
const IDENTITY_SECRET_SALT: &[u8] = b"sealkit brainkey v3 identity secret";

/// A DLEQ proof: `proof_value_c` and `proof_value_s`, 32 bytes each, big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The challenge c.
    pub c: [u8; SCALAR_LEN],
    /// The response s.
    pub s: [u8; SCALAR_LEN],
}

/// The client's first step: hashes `password` to the curve and blinds it with a fresh `r`.
/// Returns the deblind factor `r⁻¹` (keep it) and the blinded point (send it).
pub fn blind(password: &[u8], rng: &mut impl CryptoRngCore) -> Result<(DeblindFactor, PointBytes)> {
    check_password(password)?;
    let point = hash_to_point(password)?;
    let r = p256::NonZeroScalar::random(rng);
    let blinded = encode_point(&(point * *r));
    let r_inv: Option<Scalar> = (*r).invert().into();
    Ok((DeblindFactor(r_inv.ok_or(Error::DegenerateKey)?), blinded))
}

/// The server's transform: `hardened = x·blinded`.
pub fn harden(secret: &IdentitySecret, blinded_point: &[u8]) -> Result<PointBytes> {
    let blinded = decode_point(blinded_point)?;
    Ok(encode_point(&(blinded * secret.0)))
}

/// `compute_public_key`: the server's public key `x·G` for `secret`.
pub fn compute_public_key(secret: &IdentitySecret) -> PointBytes {
    secret.public_key()
}

/// The server's DLEQ proof that `hardened = x·blinded` for the `x` of `server_public_key = x·G`.
pub fn prove(
    blinded_point: &[u8],
    hardened_point: &[u8],
    secret: &IdentitySecret,
    server_public_key: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Proof> {
    let a = decode_point(blinded_point)?;
    let y = decode_point(hardened_point)?;
    let gx = decode_point(server_public_key)?;
    let k = p256::NonZeroScalar::random(rng);
    let v1 = ProjectivePoint::GENERATOR * *k;
    let v2 = a * *k;
    let c = challenge(&gx, &a, &y, &v1, &v2)?;
    let s = *k - c * secret.0;
    Ok(Proof {
        c: c.to_bytes().into(),
        s: s.to_bytes().into(),
    })
}

/// The client's check of the server's answer. Fails with [`Error::ProofInvalid`] when the proof
/// does not hold (e3kit reports that as a wrong password), and with a decode error when a point
/// is malformed.
pub fn verify(
    blinded_point: &[u8],
    hardened_point: &[u8],
    server_public_key: &[u8],
    proof_value_c: &[u8],
    proof_value_s: &[u8],
) -> Result<()> {
    let a = decode_point(blinded_point)?;
    let y = decode_point(hardened_point)?;
    let gx = decode_point(server_public_key)?;
    let c = decode_proof_scalar(proof_value_c)?;
    let s = decode_proof_scalar(proof_value_s)?;
    let v1 = ProjectivePoint::GENERATOR * s + gx * c;
    let v2 = a * s + y * c;
    let expected = challenge(&gx, &a, &y, &v1, &v2).map_err(|_| Error::ProofInvalid)?;
    if bool::from(expected.ct_eq(&c)) {
        Ok(())
    } else {
        Err(Error::ProofInvalid)
    }
}

/// The client's last step: removes the blinding and derives the 32-byte seed for `key_name`.
/// Call [`verify`] first.
pub fn deblind(
    password: &[u8],
    hardened_point: &[u8],
    factor: &DeblindFactor,
    key_name: &[u8],
) -> Result<Zeroizing<[u8; SEED_LEN]>> {
    check_password(password)?;
    if key_name.len() > KEY_NAME_MAX_LEN {
        return Err(Error::InvalidArgument("key name longer than 128 bytes"));
    }
    let y = decode_point(hardened_point)?;
    let unblinded = Zeroizing::new(encode_point(&(y * factor.0)));
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    Hkdf::<Sha512>::new(Some(password), &unblinded[..])
        .expand(key_name, &mut seed[..])
        .map_err(|_| Error::InvalidArgument("HKDF output length"))?;
    Ok(seed)
}

/// The password's point on P-256 (`vscf_simple_swu_data_to_point`), before blinding.
pub fn hash_to_point(password: &[u8]) -> Result<ProjectivePoint> {
    let digest = Zeroizing::new(Sha512::digest(password));
    let mut head = Zeroizing::new([0u8; 32]);
    head.copy_from_slice(&digest[..32]);
    let t = reduce_to_field(&U256::from_be_slice(&head[..]));
    simple_swu(&t)
}

/// Brier et al.'s simplified SWU map, exactly as `vscf_simple_swu_bignum_to_point` computes it.
fn simple_swu(t: &FieldElement) -> Result<ProjectivePoint> {
    let a = NistP256::EQUATION_A;
    let b = NistP256::EQUATION_B;
    let minus_b_over_a =
        -(b * Option::<FieldElement>::from(a.invert()).ok_or(Error::DegenerateKey)?);
    let alpha = -t.square();
    // α² + α = 0 only for t ∈ {0, ±1}: SHA-512 output that virgil-crypto-c would crash on.
    let denominator: Option<FieldElement> = (alpha.square() + alpha).invert().into();
    let denominator = denominator.ok_or(Error::DegenerateKey)?;
    let x2 = (denominator + FieldElement::ONE) * minus_b_over_a;
    let x3 = alpha * x2;
    let curve = |x: &FieldElement| x.square() * x + a * x + b;
    let (h2, h3) = (curve(&x2), curve(&x3));
    // p ≡ 3 (mod 4): p256's sqrt is exactly h^((p+1)/4), the root virgil-crypto-c takes.
    let root2 = h2.sqrt();
    let use_x2: Choice = root2.is_some() & !h2.is_zero();
    let root3 = h3.sqrt();
    let x = FieldElement::conditional_select(&x3, &x2, use_x2);
    let y = FieldElement::conditional_select(
        &root3.unwrap_or(FieldElement::ZERO),
        &root2.unwrap_or(FieldElement::ZERO),
        use_x2,
    );
    let encoded =
        EncodedPoint::<NistP256>::from_affine_coordinates(&x.to_bytes(), &y.to_bytes(), false);
    let point: Option<AffinePoint> = AffinePoint::from_encoded_point(&encoded).into();
    point.map(ProjectivePoint::from).ok_or(Error::DegenerateKey)
}

/// `t mod p` for a 256-bit `t` (< 2p), without a secret-dependent branch.
fn reduce_to_field(t: &U256) -> FieldElement {
    let direct = FieldElement::from_uint(*t);
    let reduced = FieldElement::from_uint(t.wrapping_sub(
        &p256::elliptic_curve::bigint::U256::from_be_hex(FIELD_MODULUS_HEX),
    ));
    let fallback = reduced.unwrap_or(FieldElement::ZERO);
    FieldElement::conditional_select(
        &fallback,
        &direct.unwrap_or(FieldElement::ZERO),
        direct.is_some(),
    )
}

/// p of P-256, big-endian hex.
const FIELD_MODULUS_HEX: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

/// `okm mod (n − 1) + 1` for 48 bytes of key material, through p256's wide reduction.
fn reduce_to_nonzero_scalar(okm: &[u8; 48]) -> Scalar {
    let mut wide = Zeroizing::new([0u8; 64]);
    wide[16..].copy_from_slice(okm);
    let value = p256::elliptic_curve::bigint::U512::from_be_slice(&wide[..]);
    let n_minus_one = p256::elliptic_curve::bigint::NonZero::new(
        U256::from_be_hex(ORDER_MINUS_ONE_HEX).resize::<{ 512 / 64 }>(),
    );
    let reduced = match Option::<_>::from(n_minus_one) {
        Some(modulus) => value.rem(&modulus),
        None => p256::elliptic_curve::bigint::U512::ZERO,
    };
    let low: U256 = reduced.resize();
    <Scalar as Reduce<U256>>::reduce(low) + Scalar::ONE
}

/// n − 1 of P-256, big-endian hex.
const ORDER_MINUS_ONE_HEX: &str =
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";

fn challenge(
    gx: &ProjectivePoint,
    a: &ProjectivePoint,
    y: &ProjectivePoint,
    v1: &ProjectivePoint,
    v2: &ProjectivePoint,
) -> Result<Scalar> {
    let mut hash = Sha256::new();
    for point in [gx, a, y, v1, v2] {
        if bool::from(point.is_identity()) {
            return Err(Error::ProofInvalid);
        }
        hash.update(encode_point(point));
    }
    let digest: FieldBytes = hash.finalize();
    Ok(<Scalar as Reduce<U256>>::reduce_bytes(&digest))
}

fn check_password(password: &[u8]) -> Result<()> {
    if password.is_empty() || password.len() > PASSWORD_MAX_LEN {
        return Err(Error::InvalidArgument(
            "password must be 1 to 128 bytes long",
        ));
    }
    Ok(())
}

/// Decodes a 65-byte uncompressed point on P-256 (never the identity: it has no such encoding).
pub fn decode_point(bytes: &[u8]) -> Result<ProjectivePoint> {
    let err = |kind| decode_err(Encoding::P256, kind);
    if bytes.len() != POINT_LEN {
        return Err(err(DecodeErrorKind::InvalidLength {
            actual: bytes.len(),
        }));
    }
    if bytes[0] != 0x04 {
        return Err(err(DecodeErrorKind::InvalidFlag(bytes[0])));
    }
    let encoded = EncodedPoint::<NistP256>::from_bytes(bytes)
        .map_err(|_| err(DecodeErrorKind::NotOnCurve))?;
    let point: Option<AffinePoint> = AffinePoint::from_encoded_point(&encoded).into();
    point
        .map(ProjectivePoint::from)
        .ok_or_else(|| err(DecodeErrorKind::NotOnCurve))
}

fn encode_point(point: &ProjectivePoint) -> PointBytes {
    let encoded = point.to_affine().to_encoded_point(false);
    let mut out = [0u8; POINT_LEN];
    let bytes = encoded.as_bytes();
    if bytes.len() == POINT_LEN {
        out.copy_from_slice(bytes);
    }
    out
}

fn decode_canonical_scalar(bytes: &[u8]) -> Result<Scalar> {
    let err = |kind| decode_err(Encoding::P256Scalar, kind);
    let array: [u8; SCALAR_LEN] = bytes.try_into().map_err(|_| {
        err(DecodeErrorKind::InvalidLength {
            actual: bytes.len(),
        })
    })?;
    let scalar: Option<Scalar> = Scalar::from_repr(FieldBytes::from(array)).into();
    scalar.ok_or_else(|| err(DecodeErrorKind::NonCanonical))
}

fn decode_nonzero_scalar(bytes: &[u8]) -> Result<Scalar> {
    let scalar = decode_canonical_scalar(bytes)?;
    if bool::from(scalar.is_zero()) {
        return Err(decode_err(
            Encoding::P256Scalar,
            DecodeErrorKind::OutOfRange,
        ));
    }
    Ok(scalar)
}

fn decode_proof_scalar(bytes: &[u8]) -> Result<Scalar> {
    decode_canonical_scalar(bytes).map_err(|_| Error::ProofInvalid)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn round_trip_gives_a_seed_independent_of_the_blinding() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let secret = IdentitySecret::random(&mut rng);
        let public_key = compute_public_key(&secret);
        let mut seeds = Vec::new();
        for _ in 0..3 {
            let (factor, blinded) = blind(b"hunter2", &mut rng).unwrap();
            let hardened = harden(&secret, &blinded).unwrap();
            let proof = prove(&blinded, &hardened, &secret, &public_key, &mut rng).unwrap();
            verify(&blinded, &hardened, &public_key, &proof.c, &proof.s).unwrap();
            seeds.push(*deblind(b"hunter2", &hardened, &factor, E3KIT_BACKUP_KEY_NAME).unwrap());
        }
        assert!(seeds.iter().all(|s| s == &seeds[0]));
        let (factor, blinded) = blind(b"hunter3", &mut rng).unwrap();
        let hardened = harden(&secret, &blinded).unwrap();
        let other = deblind(b"hunter3", &hardened, &factor, E3KIT_BACKUP_KEY_NAME).unwrap();
        assert_ne!(*other, seeds[0]);
    }

    #[test]
    fn a_proof_for_another_secret_fails() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (secret, liar) = (
            IdentitySecret::random(&mut rng),
            IdentitySecret::random(&mut rng),
        );
        let (_, blinded) = blind(b"pw", &mut rng).unwrap();
        let hardened = harden(&liar, &blinded).unwrap();
        let public_key = secret.public_key();
        let proof = prove(&blinded, &hardened, &secret, &public_key, &mut rng).unwrap();
        assert!(matches!(
            verify(&blinded, &hardened, &public_key, &proof.c, &proof.s),
            Err(Error::ProofInvalid)
        ));
    }

    #[test]
    fn identity_secrets_are_deterministic_and_separated() {
        let master = [0x42u8; 32];
        let a = IdentitySecret::derive(&master, "app", "alice").unwrap();
        let again = IdentitySecret::derive(&master, "app", "alice").unwrap();
        assert_eq!(*a.to_bytes(), *again.to_bytes());
        for (app, id) in [
            ("app", "bob"),
            ("app2", "alice"),
            ("ap", "palice"),
            ("appa", "lice"),
        ] {
            let other = IdentitySecret::derive(&master, app, id).unwrap();
            assert_ne!(*a.to_bytes(), *other.to_bytes(), "{app}/{id}");
        }
        let other_master = IdentitySecret::derive(&[0x43u8; 32], "app", "alice").unwrap();
        assert_ne!(*a.to_bytes(), *other_master.to_bytes());
    }

    #[test]
    fn debug_shows_no_secret() {
        let secret = IdentitySecret::from_bytes(&[1u8; 32]).unwrap();
        let text = format!("{secret:?}");
        assert_eq!(
            text,
            format!(
                "IdentitySecret {{ public_key: {:?}, .. }}",
                hex_lower(&secret.public_key())
            )
        );
        let factor = DeblindFactor::from_bytes(&[1u8; 32]).unwrap();
        assert_eq!(format!("{factor:?}"), "DeblindFactor { .. }");
    }

    #[test]
    fn scalars_out_of_range_are_refused() {
        assert!(IdentitySecret::from_bytes(&[0u8; 32]).is_err());
        assert!(IdentitySecret::from_bytes(&[0xffu8; 32]).is_err());
        assert!(IdentitySecret::from_bytes(&[1u8; 31]).is_err());
        let n = hex_decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        assert!(DeblindFactor::from_bytes(&n).is_err());
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
