//! The server side: per-user transformation keys, the transform, and the Chaum–Pedersen proof
//! of `/pythia/v1/password` (`pythia-brainkey.md` §1 "Protocol", §3 "Free design choices";
//! `virgil-services-api.md` §6).

use crate::codec::{
    bn_decode, bn_decode_fr, bn_encode_be, g1_to_relic_vec, gt_to_relic, G1Point, G2Point, Gt,
    GT_LEN,
};
use crate::ct;
use crate::error::{decode_err, DecodeErrorKind, Encoding, Error, Result};
use crate::field::{fr_from_be_mod_order, fr_to_be, random_nonzero_fr};
use crate::hash::hash_to_g2;
use ark_bls12_381::{Bls12_381, Fq12, Fr, G1Affine, G2Affine};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{Field, PrimeField, Zero};
use core::fmt;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha384;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Shortest master secret [`BrainkeyServer::new`] accepts.
pub const MASTER_SECRET_MIN_LEN: usize = 32;
/// Longest master secret [`BrainkeyServer::new`] accepts (relic's limit for the Pythia secret).
pub const MASTER_SECRET_MAX_LEN: usize = 128;

const BRAINKEY_KW_LABEL: &[u8] = b"sealkit-pythia/brainkey/kw/v1";
const BRAINKEY_TWEAK_LABEL: &[u8] = b"sealkit-pythia/brainkey/tweak/v1";
const PASSWORD_KW_LABEL: &[u8] = b"sealkit-pythia/password/kw/v1";

/// HMAC key of relic's `hashZ`: the 30 characters below and their terminating NUL.
const HASH_Z_TAG: &[u8; 31] = b"TAG_RELIC_HASH_ZMESSAGE_HASH_Z\0";

/// Appends `u16_be(len(x)) ‖ x`.
fn push_lp(out: &mut Vec<u8>, x: &[u8], what: &'static str) -> Result<()> {
    let len = u16::try_from(x.len()).map_err(|_| Error::InvalidArgument(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(x);
    Ok(())
}

/// The tweak of a brain-key transform (fixed forever, see [`BrainkeyServer`]):
/// `"sealkit-pythia/brainkey/tweak/v1" ‖ lp(app_id) ‖ lp(identity) ‖ lp(brainkey_id)`, with
/// `lp(x) = u16_be(len(x)) ‖ x` and an absent `brainkey_id` written as the empty string.
pub fn brainkey_tweak(app_id: &str, identity: &str, brainkey_id: Option<&str>) -> Result<Vec<u8>> {
    let mut t = BRAINKEY_TWEAK_LABEL.to_vec();
    push_lp(&mut t, app_id.as_bytes(), "app id longer than 65535 bytes")?;
    push_lp(
        &mut t,
        identity.as_bytes(),
        "identity longer than 65535 bytes",
    )?;
    push_lp(
        &mut t,
        brainkey_id.unwrap_or("").as_bytes(),
        "brainkey id longer than 65535 bytes",
    )?;
    Ok(t)
}

/// The Pythia server of one deployment: holds the master secret and derives every
/// transformation key from it.
///
/// # The derivation (permanent)
///
/// Every brain key of every user is a function of the master secret and of the byte layout
/// below. **Neither may ever change once users exist**: a different `kw` or tweak gives every
/// user a different brain key, and their Keyknox backups become undecryptable.
///
/// With `lp(x) = u16_be(len(x)) ‖ x`, strings as UTF-8, and `brainkey_id` the empty string
/// when absent (e3kit never sends one; an empty one is the same as none):
///
/// ```text
/// brain key (POST /pythia/v1/brainkey)
///   S     = "sealkit-pythia/brainkey/kw/v1" ‖ lp(app_id)             relic's "scope secret"
///   W     = lp(identity) ‖ lp(brainkey_id)                           relic's "key id"
///   kw    = OS2IP(HMAC-SHA-384(key = master_secret, msg = S ‖ W)) mod r
///   tweak = "sealkit-pythia/brainkey/tweak/v1" ‖ lp(app_id) ‖ lp(identity) ‖ lp(brainkey_id)
///   seed  = e(kw·X, H2(tweak))                                       X = blinded password
///
/// breach-proof password (POST /pythia/v1/password), key version n
///   S     = "sealkit-pythia/password/kw/v1" ‖ lp(app_id)
///   W     = u32_be(n)
///   kw    = OS2IP(HMAC-SHA-384(key = master_secret, msg = S ‖ W)) mod r,   pk = kw·G1
///   tweak = the base64-decoded `user_id`, verbatim (the client hashes it itself to verify)
/// ```
///
/// `kw` is exactly relic's `pythia_compute_kw(w = W, msk = master_secret, s = S)` (HMAC key =
/// the Pythia secret, message = scope secret ‖ key id, the 48-byte MAC read big-endian and
/// reduced mod r). The brain-key `kw` is per user: the client never sees a public key for it,
/// and a leaked per-user key exposes nobody else. The password `kw` is per application and
/// version, because Virgil's client verifies proofs against one configured `PK.<n>.<pk>`.
///
/// The master secret is zeroized on drop and never printed.
pub struct BrainkeyServer {
    master_secret: Zeroizing<Vec<u8>>,
    /// `H2(tweak)` per user, see [`TweakCache`].
    tweaks: std::sync::Mutex<TweakCache>,
}

/// arkworks' precomputed Miller-loop lines of a G2 point.
type G2Prepared = <Bls12_381 as Pairing>::G2Prepared;

/// The tweak points of recent users: `H2(tweak)` costs about a third of a transform and
/// depends only on the app and the identity (and the optional brainkey id), so it is cached.
/// The points are public values (anyone can hash a tweak): nothing secret is kept here, and
/// nothing derived from `kw` is.
///
/// Two tiers, both keyed by SHA-256 of the tweak (fixed-size keys however long the identity;
/// the tweak's length-prefixed layout keeps apps, identities and brainkey ids apart, so two
/// users never share an entry):
/// * `prepared`: the point with its Miller-loop lines precomputed (arkworks' `G2Prepared`,
///   about 20 KB each), so a transform for a user seen very recently does no G2 arithmetic at
///   all; at most `2 × PREPARED_GENERATION` entries (~40 MB);
/// * `points`: the affine point (192 bytes), for many more users; at most
///   `2 × POINT_GENERATION` entries (~50 MB with the map's overhead).
struct TweakCache {
    prepared: Generations<std::sync::Arc<G2Prepared>>,
    points: Generations<G2Affine>,
}

/// Prepared tweak points per generation of the hot tier.
pub(crate) const PREPARED_GENERATION: usize = 1024;
/// Affine tweak points per generation of the large tier.
pub(crate) const POINT_GENERATION: usize = 100_000;

/// A bounded map that forgets its least recently used entries in bulk (a two-generation
/// approximation of LRU): a lookup searches the current generation, then the previous one,
/// moving a hit there into the current one; when the current generation is full it becomes the
/// previous one and the old previous one is dropped. Holds at most `2 × generation` entries,
/// and an entry used at least once per `generation` insertions is never dropped.
pub(crate) struct Generations<V> {
    current: std::collections::HashMap<[u8; 32], V>,
    previous: std::collections::HashMap<[u8; 32], V>,
    generation: usize,
}

impl<V: Clone> Generations<V> {
    pub(crate) fn new(generation: usize) -> Self {
        Self {
            current: std::collections::HashMap::new(),
            previous: std::collections::HashMap::new(),
            generation: generation.max(1),
        }
    }

    pub(crate) fn get(&mut self, key: &[u8; 32]) -> Option<V> {
        if let Some(v) = self.current.get(key) {
            return Some(v.clone());
        }
        let v = self.previous.remove(key)?;
        self.insert(*key, v.clone());
        Some(v)
    }

    pub(crate) fn insert(&mut self, key: [u8; 32], value: V) {
        if self.current.len() >= self.generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

impl fmt::Debug for BrainkeyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrainkeyServer").finish_non_exhaustive()
    }
}

impl BrainkeyServer {
    /// A server with the deployment's master secret (32 to 128 uniformly random bytes).
    pub fn new(master_secret: &[u8]) -> Result<Self> {
        Self::with_cache_generations(master_secret, PREPARED_GENERATION, POINT_GENERATION)
    }

    /// [`Self::new`] with the tweak cache's generation sizes (small ones in tests).
    pub(crate) fn with_cache_generations(
        master_secret: &[u8],
        prepared: usize,
        points: usize,
    ) -> Result<Self> {
        if !(MASTER_SECRET_MIN_LEN..=MASTER_SECRET_MAX_LEN).contains(&master_secret.len()) {
            return Err(Error::InvalidArgument(
                "the master secret must be 32 to 128 bytes long",
            ));
        }
        Ok(Self {
            master_secret: Zeroizing::new(master_secret.to_vec()),
            tweaks: std::sync::Mutex::new(TweakCache {
                prepared: Generations::new(prepared),
                points: Generations::new(points),
            }),
        })
    }

    /// Entries in the two tiers of the tweak cache.
    #[cfg(test)]
    pub(crate) fn cached_tweaks(&self) -> (usize, usize) {
        self.tweaks
            .lock()
            .map(|c| (c.prepared.len(), c.points.len()))
            .unwrap_or_default()
    }

    /// relic's `compute_kw`: `OS2IP(HMAC-SHA-384(master_secret, scope ‖ key_id)) mod r`.
    fn compute_kw_scalar(&self, scope: &[u8], key_id: &[u8]) -> Result<Zeroizing<Fr>> {
        let mut mac = <Hmac<Sha384> as Mac>::new_from_slice(&self.master_secret)
            .map_err(|_| Error::InvalidArgument("master secret"))?;
        mac.update(scope);
        mac.update(key_id);
        let mut tag: [u8; 48] = mac.finalize().into_bytes().into();
        let kw = Zeroizing::new(fr_from_be_mod_order(&tag));
        tag.zeroize();
        if kw.is_zero() {
            return Err(Error::DegenerateKey);
        }
        Ok(kw)
    }

    /// relic's `compute_kw` as a key pair (the public key costs one more multiplication).
    fn compute_kw(&self, scope: &[u8], key_id: &[u8]) -> Result<TransformationKey> {
        TransformationKey::from_scalar(self.compute_kw_scalar(scope, key_id)?)
    }

    /// The brain-key transformation key of one user (see the type's documentation).
    pub fn brainkey_key(
        &self,
        app_id: &str,
        identity: &str,
        brainkey_id: Option<&str>,
    ) -> Result<TransformationKey> {
        let (scope, key_id) = brainkey_kw_input(app_id, identity, brainkey_id)?;
        self.compute_kw(&scope, &key_id)
    }

    /// `H2(tweak)` with its Miller-loop lines precomputed, from the cache when this user was
    /// seen before. The lock is never held while hashing or preparing a point.
    fn tweak_prepared(&self, tweak: &[u8]) -> Result<std::sync::Arc<G2Prepared>> {
        let key: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(tweak).into();
        let point = match self.tweaks.lock() {
            Ok(mut cache) => {
                if let Some(prepared) = cache.prepared.get(&key) {
                    return Ok(prepared);
                }
                cache.points.get(&key)
            }
            // A poisoned lock only costs the cache: the values are recomputed.
            Err(_) => None,
        };
        let point = match point {
            Some(p) => p,
            None => transformed_tweak(tweak)?.0,
        };
        let prepared = std::sync::Arc::new(G2Prepared::from(point));
        if let Ok(mut cache) = self.tweaks.lock() {
            cache.points.insert(key, point);
            cache.prepared.insert(key, prepared.clone());
        }
        Ok(prepared)
    }

    /// The `kw` of [`Self::brainkey_key`] without its public key (which the brainkey flow never
    /// uses and which costs a second constant-time multiplication).
    fn brainkey_kw(
        &self,
        app_id: &str,
        identity: &str,
        brainkey_id: Option<&str>,
    ) -> Result<Zeroizing<Fr>> {
        let (scope, key_id) = brainkey_kw_input(app_id, identity, brainkey_id)?;
        self.compute_kw_scalar(&scope, &key_id)
    }
}

/// The HMAC input of a user's brain-key `kw`: (scope, key id), see [`BrainkeyServer`].
fn brainkey_kw_input(
    app_id: &str,
    identity: &str,
    brainkey_id: Option<&str>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut scope = BRAINKEY_KW_LABEL.to_vec();
    push_lp(
        &mut scope,
        app_id.as_bytes(),
        "app id longer than 65535 bytes",
    )?;
    let mut key_id = Vec::new();
    push_lp(
        &mut key_id,
        identity.as_bytes(),
        "identity longer than 65535 bytes",
    )?;
    push_lp(
        &mut key_id,
        brainkey_id.unwrap_or("").as_bytes(),
        "brainkey id longer than 65535 bytes",
    )?;
    Ok((scope, key_id))
}

impl BrainkeyServer {
    /// The breach-proof-password transformation key of an application, key version `version`.
    pub fn password_key(&self, app_id: &str, version: u32) -> Result<TransformationKey> {
        let mut scope = PASSWORD_KW_LABEL.to_vec();
        push_lp(
            &mut scope,
            app_id.as_bytes(),
            "app id longer than 65535 bytes",
        )?;
        self.compute_kw(&scope, &version.to_be_bytes())
    }

    /// `POST /pythia/v1/brainkey` without `brainkey_id` (what e3kit sends): decodes the
    /// blinded password (relic G1, normally 49 bytes), and returns the 384-byte `seed`
    /// `e(kw·X, H2(tweak))` for this application and identity.
    pub fn transform(
        &self,
        blinded_password: &[u8],
        app_id: &str,
        identity: &str,
    ) -> Result<[u8; GT_LEN]> {
        self.transform_with_brainkey_id(blinded_password, app_id, identity, None)
    }

    /// [`Self::transform`] with the optional `brainkey_id` of the request body.
    pub fn transform_with_brainkey_id(
        &self,
        blinded_password: &[u8],
        app_id: &str,
        identity: &str,
        brainkey_id: Option<&str>,
    ) -> Result<[u8; GT_LEN]> {
        let x = G1Point::from_relic(blinded_password)?;
        let kw = self.brainkey_kw(app_id, identity, brainkey_id)?;
        let t = self.tweak_prepared(&brainkey_tweak(app_id, identity, brainkey_id)?)?;
        // The same optimal ate pairing as `Bls12_381::pairing`, with the G2 side's lines taken
        // from the cache instead of being recomputed (arkworks consumes its argument, hence the
        // copy of the public lines).
        let miller = Bls12_381::multi_miller_loop([ct::g1_mul(&x.0, &kw)], [(*t).clone()]);
        let y = Bls12_381::final_exponentiation(miller)
            .ok_or(Error::InvalidArgument("the pairing is degenerate"))?;
        Ok(gt_to_relic(&y.0))
    }
}

/// A transformation key pair `(kw, pk = kw·G1)`. The secret scalar is zeroized on drop and is
/// only ever multiplied in constant time (see [`crate::manual`]); `Debug` shows the public key.
pub struct TransformationKey {
    kw: Zeroizing<Fr>,
    pk: G1Point,
}

impl fmt::Debug for TransformationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformationKey")
            .field("public_key", &self.pk)
            .finish_non_exhaustive()
    }
}

/// `H2(tweak)`, relic's `g2_map`: what Virgil's API calls the "transformed tweak".
pub fn transformed_tweak(tweak: &[u8]) -> Result<G2Point> {
    G2Point::new(hash_to_g2(tweak))
        .map_err(|_| Error::InvalidArgument("the tweak hashes to the point at infinity"))
}

fn pairing(p: &G1Affine, q: &G2Affine) -> Fq12 {
    Bls12_381::pairing(p, q).0
}

impl TransformationKey {
    fn from_scalar(kw: Zeroizing<Fr>) -> Result<Self> {
        if kw.is_zero() {
            return Err(Error::DegenerateKey);
        }
        let pk = G1Point::new(ct::g1_mul(&G1Affine::generator(), &kw))?;
        Ok(Self { kw, pk })
    }

    /// Imports a transformation private key in relic's integer encoding (what Virgil's
    /// `computeTransformationKeyPair` exports). Negative values are taken mod r; zero is refused.
    pub fn from_relic_bn(kw: &[u8]) -> Result<Self> {
        let k = Zeroizing::new(bn_decode_fr(kw)?);
        if k.is_zero() {
            return Err(decode_err(Encoding::Bn, DecodeErrorKind::OutOfRange));
        }
        Self::from_scalar(k)
    }

    /// The private scalar in relic's integer encoding (non-negative, below r). The copy is
    /// zeroized when dropped.
    pub fn to_relic_bn(&self) -> Zeroizing<Vec<u8>> {
        let be = Zeroizing::new(fr_to_be(&self.kw));
        Zeroizing::new(bn_encode_be(be.as_ref()))
    }

    /// The public key `kw·G1` (Virgil's proof key `PK.<version>.<base64(relic G1)>`).
    pub fn public_key(&self) -> G1Point {
        self.pk
    }

    /// relic's `pythia_eval`: `y = e(kw·X, H2(tweak))` for a blinded password `X` in relic's G1
    /// encoding; returns the packed 384-byte `y`. `kw·X` is computed in constant time.
    pub fn transform(&self, blinded_password: &[u8], tweak: &[u8]) -> Result<[u8; GT_LEN]> {
        let x = G1Point::from_relic(blinded_password)?;
        let t = transformed_tweak(tweak)?;
        let y = pairing(&ct::g1_mul(&x.0, &self.kw), &t.0);
        Ok(gt_to_relic(&y))
    }

    /// [`Self::transform`] plus relic's `pythia_prove`: a Chaum–Pedersen proof that
    /// `log_G(pk) = log_β(y)` with `β = e(X, H2(tweak))`:
    /// `v ←$ Z_r`, `t1 = v·G`, `t2 = β^v` (computed as `e(v·X, H2(tweak))`),
    /// `c = hashZ(G ‖ pk ‖ β ‖ y ‖ t1 ‖ t2)`, `u = v − c·kw mod r`.
    pub fn transform_with_proof<R: RngCore + CryptoRng>(
        &self,
        blinded_password: &[u8],
        tweak: &[u8],
        rng: &mut R,
    ) -> Result<([u8; GT_LEN], Proof)> {
        let x = G1Point::from_relic(blinded_password)?;
        let t = transformed_tweak(tweak)?;
        let y = pairing(&ct::g1_mul(&x.0, &self.kw), &t.0);
        let beta = pairing(&x.0, &t.0);

        let v = random_nonzero_fr(rng);
        let t1 = ct::g1_mul(&G1Affine::generator(), &v);
        let t2 = pairing(&ct::g1_mul(&x.0, &v), &t.0);
        let c = hash_z(&self.pk.0, &beta, &y, &t1, &t2);
        let u = *v - fr_from_be_mod_order(&c) * *self.kw;
        Ok((gt_to_relic(&y), Proof { c, u }))
    }
}

/// relic's `hashZ(G ‖ pk ‖ β ‖ y ‖ t1 ‖ t2)`: the first 32 bytes of
/// HMAC-SHA-384(key = `"TAG_RELIC_HASH_ZMESSAGE_HASH_Z\0"`, message = the relic encodings),
/// read as a 256-bit integer (not reduced).
fn hash_z(pk: &G1Affine, beta: &Fq12, y: &Fq12, t1: &G1Affine, t2: &Fq12) -> [u8; 32] {
    // HMAC pads a key shorter than the hash's 128-byte block with zeros (RFC 2104).
    let mut key = [0u8; 128];
    key[..HASH_Z_TAG.len()].copy_from_slice(HASH_Z_TAG);
    let mut mac = <Hmac<Sha384> as KeyInit>::new(&key.into());
    mac.update(&g1_to_relic_vec(&G1Affine::generator()));
    mac.update(&g1_to_relic_vec(pk));
    mac.update(&gt_to_relic(beta));
    mac.update(&gt_to_relic(y));
    mac.update(&g1_to_relic_vec(t1));
    mac.update(&gt_to_relic(t2));
    let tag = mac.finalize().into_bytes();
    let mut c = [0u8; 32];
    c.copy_from_slice(&tag[..32]);
    c
}

/// A Chaum–Pedersen proof of `/pythia/v1/password` (`proof.value_c`, `proof.value_u`).
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    /// The challenge, a 256-bit integer (big-endian), not reduced mod r.
    c: [u8; 32],
    /// The response, mod r.
    u: Fr,
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        f.debug_struct("Proof")
            .field("value_c", &hex(&self.value_c()))
            .field("value_u", &hex(&self.value_u()))
            .finish()
    }
}

impl Proof {
    /// Decodes `value_c` and `value_u` (relic integers). `c` must be a non-negative integer of at
    /// most 256 bits, as relic's hash produces; `u` may be any integer and is reduced mod r.
    pub fn from_relic(value_c: &[u8], value_u: &[u8]) -> Result<Self> {
        let cb = bn_decode(value_c)?;
        if cb.negative || cb.magnitude.len() > 32 {
            return Err(decode_err(Encoding::Bn, DecodeErrorKind::OutOfRange));
        }
        let mut c = [0u8; 32];
        c[32 - cb.magnitude.len()..].copy_from_slice(cb.magnitude);
        let u = bn_decode_fr(value_u)?;
        Ok(Self { c, u })
    }

    /// `value_c` in relic's integer encoding.
    pub fn value_c(&self) -> Vec<u8> {
        bn_encode_be(&self.c)
    }

    /// `value_u` in relic's integer encoding (non-negative, below r).
    pub fn value_u(&self) -> Vec<u8> {
        bn_encode_be(&fr_to_be(&self.u))
    }
}

/// relic's `pythia_verify`, what Virgil's client runs on a `/pythia/v1/password` answer:
/// `t1' = c·pk + u·G`, `t2' = β^u · y^c`, accept iff `c = hashZ(G ‖ pk ‖ β ‖ y ‖ t1' ‖ t2')`.
/// Only public values are involved, so arkworks' variable-time arithmetic is used.
pub fn verify_proof(
    public_key: &[u8],
    blinded_password: &[u8],
    tweak: &[u8],
    transformed_password: &[u8],
    proof: &Proof,
) -> Result<()> {
    let pk = G1Point::from_relic(public_key)?;
    let x = G1Point::from_relic(blinded_password)?;
    let y = Gt::from_relic(transformed_password)?;
    let t = transformed_tweak(tweak)?;
    let beta = pairing(&x.0, &t.0);
    let c = fr_from_be_mod_order(&proof.c);
    let t1 = (pk.0 * c + G1Affine::generator() * proof.u).into_affine();
    let t2 = beta.pow(proof.u.into_bigint()) * y.0.pow(c.into_bigint());
    let expected = hash_z(&pk.0, &beta, &y.0, &t1, &t2);
    if bool::from(expected.ct_eq(&proof.c)) {
        Ok(())
    } else {
        Err(Error::ProofInvalid)
    }
}

#[cfg(test)]
impl TransformationKey {
    pub(crate) fn scalar(&self) -> Fr {
        *self.kw
    }
}
