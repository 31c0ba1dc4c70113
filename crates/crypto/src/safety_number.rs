//! Safety numbers: 60 digits that two users compare (read aloud, or side by side) to check that
//! each holds the other's real public keys, whatever the key directory says.
//!
//! The construction follows Signal's numeric fingerprint (an iterated SHA-512 per side, 30 digits
//! per side, the two halves sorted so both users see the same 60 digits), with Sealkit's own
//! encoding: a version, the identity and every current public key of the identity, each
//! length-prefixed so that no two inputs share an encoding. The exact algorithm and test vectors
//! are in `docs/key-transparency.md`, section "Safety numbers":
//!
//! ```text
//! keys   = count (u16 BE) || for each key, sorted by this encoding, duplicates removed:
//!            type (u8: 1 Ed25519, 2 X25519, 3 P-256) || length (u16 BE) || raw key
//! h[0]   = version (u16 BE, = 1) || length of identity (u16 BE) || identity (UTF-8) || keys
//! h[i+1] = SHA-512(h[i] || keys)                for i in 0..5200
//! half   = 6 chunks: the big-endian integer of h[5200][5j..5j+5] mod 100000, as 5 digits
//! number = the smaller half || the larger half  (compared as digit strings)
//! ```
//!
//! The raw key is what the key's `SubjectPublicKeyInfo` carries in its BIT STRING: 32 bytes for
//! Ed25519 and X25519, the 65-byte uncompressed SEC1 point for P-256.
//!
//! ```
//! use sealkit_crypto::{PrivateKey, SafetyNumber};
//!
//! # fn main() -> Result<(), sealkit_crypto::Error> {
//! let alice = PrivateKey::ed25519_from_seed(&[1; 32]);
//! let bob = PrivateKey::ed25519_from_seed(&[2; 32]);
//! let alice_key = [alice.public_key().clone()];
//! let bob_key = [bob.public_key().clone()];
//!
//! // Each side computes with its own key and the key the directory gave for the other.
//! let on_alices_phone = SafetyNumber::compute("alice", &alice_key, "bob", &bob_key)?;
//! let on_bobs_phone = SafetyNumber::compute("bob", &bob_key, "alice", &alice_key)?;
//! assert_eq!(on_alices_phone, on_bobs_phone);
//! println!("{}", on_alices_phone.grouped()); // "12345 67890 ..." (12 groups of 5)
//!
//! // Bob types what Alice reads out, spaces or not:
//! assert!(on_bobs_phone.matches(&on_alices_phone.grouped()));
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::keys::PublicKey;
use sha2::{Digest, Sha512};
use std::fmt;
use std::str::FromStr;

/// The version of the construction, hashed first so that a future change gives other digits.
pub const SAFETY_NUMBER_VERSION: u16 = 1;

/// How many times each side's hash is iterated (Signal's count), so that finding keys whose
/// half collides with a given one costs 5200 SHA-512 per try.
pub const SAFETY_NUMBER_ITERATIONS: usize = 5200;

/// Digits in a safety number: 30 per side.
pub const SAFETY_NUMBER_DIGITS: usize = 60;

/// Digits per side.
const HALF_DIGITS: usize = SAFETY_NUMBER_DIGITS / 2;
/// Digits per displayed group (and per 5-byte chunk of the hash).
const GROUP: usize = 5;

/// The 60-digit safety number of two users, the same whichever of them computes it.
///
/// Built by [`SafetyNumber::compute`], or parsed from what a user typed with [`str::parse`]
/// (60 ASCII digits; spaces, tabs and line breaks are ignored).
///
/// ```
/// use sealkit_crypto::SafetyNumber;
///
/// let typed = "12345 67890 12345 67890 12345 67890\n12345 67890 12345 67890 12345 67890";
/// let number: SafetyNumber = typed.parse()?;
/// assert_eq!(number.as_str().len(), 60);
/// assert_eq!(number.grouped(), typed.replace('\n', " "));
/// assert!("1234".parse::<SafetyNumber>().is_err());
/// # Ok::<(), sealkit_crypto::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyNumber([u8; SAFETY_NUMBER_DIGITS]);

impl SafetyNumber {
    /// The safety number of `local_identity` holding `local_keys` and `remote_identity` holding
    /// `remote_keys`. Swapping the two sides gives the same number.
    ///
    /// Each side's keys are every current public key of the identity (usually one; several only
    /// while a user has several valid cards); their order does not matter and duplicates count
    /// once. Errors ([`Error::InvalidArgument`]): a side without keys, more than 65535 keys, or an
    /// identity longer than 65535 bytes.
    ///
    /// ```
    /// use sealkit_crypto::{KeyType, PrivateKey, SafetyNumber};
    /// use rand_core::OsRng;
    ///
    /// # fn main() -> Result<(), sealkit_crypto::Error> {
    /// let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    /// let bob = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    /// let mallory = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    /// let alice_key = [alice.public_key().clone()];
    ///
    /// let real = SafetyNumber::compute("alice", &alice_key, "bob", &[bob.public_key().clone()])?;
    /// // A directory that gave Alice Mallory's key as Bob's shows her other digits than Bob sees.
    /// let swapped =
    ///     SafetyNumber::compute("alice", &alice_key, "bob", &[mallory.public_key().clone()])?;
    /// assert_ne!(real, swapped);
    /// # Ok(()) }
    /// ```
    pub fn compute(
        local_identity: &str,
        local_keys: &[PublicKey],
        remote_identity: &str,
        remote_keys: &[PublicKey],
    ) -> Result<Self> {
        let local = half(local_identity, local_keys)?;
        let remote = half(remote_identity, remote_keys)?;
        let (first, second) = if local <= remote {
            (local, remote)
        } else {
            (remote, local)
        };
        let mut digits = [0u8; SAFETY_NUMBER_DIGITS];
        digits[..HALF_DIGITS].copy_from_slice(&first);
        digits[HALF_DIGITS..].copy_from_slice(&second);
        Ok(Self(digits))
    }

    /// The 60 digits without separators.
    ///
    /// ```
    /// # use sealkit_crypto::SafetyNumber;
    /// let number: SafetyNumber = "0".repeat(60).parse()?;
    /// assert_eq!(number.as_str(), "0".repeat(60));
    /// # Ok::<(), sealkit_crypto::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        // Every byte is an ASCII digit (checked by every constructor), so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The 60 digits in 12 groups of 5, separated by single spaces: the form to show users
    /// (Signal shows the same groups in 3 rows of 4).
    ///
    /// ```
    /// # use sealkit_crypto::SafetyNumber;
    /// let number: SafetyNumber = "0123456789".repeat(6).parse()?;
    /// assert!(number.grouped().starts_with("01234 56789 01234"));
    /// assert_eq!(number.grouped().split(' ').count(), 12);
    /// # Ok::<(), sealkit_crypto::Error>(())
    /// ```
    pub fn grouped(&self) -> String {
        self.to_string()
    }

    /// Whether `typed` (digits with or without whitespace between them) is this number. Text
    /// that is not a safety number does not match.
    ///
    /// ```
    /// # use sealkit_crypto::SafetyNumber;
    /// let number: SafetyNumber = "0123456789".repeat(6).parse()?;
    /// assert!(number.matches(&number.grouped()));
    /// assert!(number.matches(number.as_str()));
    /// assert!(!number.matches(&"0123456789".repeat(5)));
    /// # Ok::<(), sealkit_crypto::Error>(())
    /// ```
    pub fn matches(&self, typed: &str) -> bool {
        typed.parse::<Self>().is_ok_and(|other| other == *self)
    }
}

impl fmt::Display for SafetyNumber {
    /// The [`SafetyNumber::grouped`] form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.as_str().as_bytes().chunks(GROUP).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

impl FromStr for SafetyNumber {
    type Err = Error;

    /// 60 ASCII digits; ASCII whitespace anywhere is ignored.
    fn from_str(text: &str) -> Result<Self> {
        let mut digits = [0u8; SAFETY_NUMBER_DIGITS];
        let mut count = 0;
        for byte in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
            if !byte.is_ascii_digit() {
                return Err(Error::InvalidArgument(
                    "a safety number holds only digits (and spaces)",
                ));
            }
            let slot = digits.get_mut(count).ok_or(Error::InvalidArgument(
                "a safety number has 60 digits; this has more",
            ))?;
            *slot = byte;
            count += 1;
        }
        if count != SAFETY_NUMBER_DIGITS {
            return Err(Error::InvalidArgument(
                "a safety number has 60 digits; this has fewer",
            ));
        }
        Ok(Self(digits))
    }
}

/// The type byte of a key in the encoding.
fn type_tag(key: &PublicKey) -> u8 {
    match key {
        PublicKey::Ed25519(_) => 1,
        PublicKey::X25519(_) => 2,
        PublicKey::P256(_) => 3,
    }
}

/// `count || (type || length || raw)*` over the keys sorted by their encoding, without duplicates.
fn encode_keys(keys: &[PublicKey]) -> Result<Vec<u8>> {
    let mut encoded: Vec<Vec<u8>> = keys
        .iter()
        .map(|key| {
            let raw = key.raw_bytes();
            let len = u16::try_from(raw.len())
                .map_err(|_| Error::InvalidArgument("a public key is too long"))?;
            let mut out = Vec::with_capacity(3 + raw.len());
            out.push(type_tag(key));
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&raw);
            Ok(out)
        })
        .collect::<Result<_>>()?;
    encoded.sort();
    encoded.dedup();
    if encoded.is_empty() {
        return Err(Error::InvalidArgument(
            "a safety number needs at least one public key per side",
        ));
    }
    let count = u16::try_from(encoded.len())
        .map_err(|_| Error::InvalidArgument("a safety number takes at most 65535 keys per side"))?;
    let mut out = count.to_be_bytes().to_vec();
    for key in encoded {
        out.extend_from_slice(&key);
    }
    Ok(out)
}

/// One side's 30 digits, as ASCII.
fn half(identity: &str, keys: &[PublicKey]) -> Result<[u8; HALF_DIGITS]> {
    let keys = encode_keys(keys)?;
    let identity_len = u16::try_from(identity.len()).map_err(|_| {
        Error::InvalidArgument("a safety number takes identities of at most 65535 bytes")
    })?;
    let mut start = Vec::with_capacity(4 + identity.len() + keys.len());
    start.extend_from_slice(&SAFETY_NUMBER_VERSION.to_be_bytes());
    start.extend_from_slice(&identity_len.to_be_bytes());
    start.extend_from_slice(identity.as_bytes());
    start.extend_from_slice(&keys);
    let mut hash = Sha512::new()
        .chain_update(&start)
        .chain_update(&keys)
        .finalize();
    for _ in 1..SAFETY_NUMBER_ITERATIONS {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(&keys)
            .finalize();
    }
    let mut digits = [0u8; HALF_DIGITS];
    for (chunk, out) in hash.chunks_exact(GROUP).zip(digits.chunks_exact_mut(GROUP)) {
        let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) % 100_000;
        let mut rest = value;
        for slot in out.iter_mut().rev() {
            // rest % 10 < 10, so the cast keeps the value.
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keys::{KeyType, PrivateKey};
    use proptest::prelude::*;

    fn ed(seed: u8) -> PublicKey {
        PrivateKey::ed25519_from_seed(&[seed; 32])
            .public_key()
            .clone()
    }

    #[test]
    fn first_iteration_hashes_the_start_then_the_keys() {
        // One iteration by hand, against `half`'s loop, guards the chaining order.
        let keys = encode_keys(&[ed(1)]).unwrap();
        let mut start = vec![0, 1, 0, 5];
        start.extend_from_slice(b"alice");
        start.extend_from_slice(&keys);
        let mut by_hand = Sha512::digest([start, keys.clone()].concat());
        for _ in 1..SAFETY_NUMBER_ITERATIONS {
            by_hand = Sha512::digest([by_hand.to_vec(), keys.clone()].concat());
        }
        let first: [u8; 5] = by_hand[..5].try_into().unwrap();
        let value = u64::from_be_bytes([0, 0, 0, first[0], first[1], first[2], first[3], first[4]]);
        let half = half("alice", &[ed(1)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&half[..5]).unwrap(),
            format!("{:05}", value % 100_000)
        );
    }

    #[test]
    fn key_order_and_duplicates_do_not_matter_but_types_do() {
        let (a, b) = (ed(1), ed(2));
        assert_eq!(
            half("bob", &[a.clone(), b.clone()]).unwrap(),
            half("bob", &[b.clone(), a.clone(), b.clone()]).unwrap()
        );
        assert_ne!(
            half("bob", std::slice::from_ref(&a)).unwrap(),
            half("bob", &[a.clone(), b]).unwrap()
        );
        // The same 32 bytes as an X25519 key are another key.
        let bytes = match &a {
            PublicKey::Ed25519(k) => k.to_bytes(),
            _ => unreachable!(),
        };
        let x = PublicKey::X25519(x25519_dalek::PublicKey::from(bytes));
        assert_ne!(half("bob", &[a]).unwrap(), half("bob", &[x]).unwrap());
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(matches!(
            SafetyNumber::compute("a", &[], "b", &[ed(1)]),
            Err(Error::InvalidArgument(_))
        ));
        let long = "x".repeat(70_000);
        assert!(matches!(
            SafetyNumber::compute(&long, &[ed(1)], "b", &[ed(2)]),
            Err(Error::InvalidArgument(_))
        ));
        for bad in [
            "",
            "1",
            &"1".repeat(59),
            &"1".repeat(61),
            &format!("{}x", "1".repeat(59)),
        ] {
            assert!(bad.parse::<SafetyNumber>().is_err(), "{bad:?}");
        }
        let number: SafetyNumber = format!(" {} \t\r\n", "7".repeat(60)).parse().unwrap();
        assert_eq!(number.as_str(), "7".repeat(60));
        assert_eq!(
            format!("{number:?}"),
            format!("SafetyNumber({})", number.grouped())
        );
    }

    fn any_key() -> impl Strategy<Value = PublicKey> {
        (any::<[u8; 32]>(), 0..3u8).prop_map(|(seed, kind)| {
            use rand_core::SeedableRng;
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
            let key_type = match kind {
                0 => KeyType::Ed25519,
                1 => KeyType::Curve25519,
                _ => KeyType::Secp256r1,
            };
            PrivateKey::generate(key_type, &mut rng)
                .public_key()
                .clone()
        })
    }

    fn any_identity() -> impl Strategy<Value = String> {
        "\\PC{0,24}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Both users see the same 60 digits.
        #[test]
        fn symmetric(a in any_identity(), ka in any_key(), b in any_identity(), kb in any_key()) {
            let (ka, kb) = ([ka], [kb]);
            let ab = SafetyNumber::compute(&a, &ka, &b, &kb).unwrap();
            let ba = SafetyNumber::compute(&b, &kb, &a, &ka).unwrap();
            prop_assert_eq!(ab, ba);
            prop_assert_eq!(ab.as_str().len(), 60);
            prop_assert!(ab.as_str().bytes().all(|d| d.is_ascii_digit()));
            prop_assert_eq!(ab.grouped().parse::<SafetyNumber>().unwrap(), ab);
        }

        /// Any other key or identity on either side gives other digits.
        #[test]
        fn changes_with_any_key_or_identity(
            a in any_identity(), ka in any_key(), b in any_identity(), kb in any_key(),
            other_identity in any_identity(), other_key in any_key(),
        ) {
            let compute = |a: &str, ka: Vec<PublicKey>, b: &str, kb: Vec<PublicKey>| {
                SafetyNumber::compute(a, &ka, b, &kb).unwrap()
            };
            let base = compute(&a, vec![ka.clone()], &b, vec![kb.clone()]);
            if other_key != kb {
                let changed = compute(&a, vec![ka.clone()], &b, vec![other_key.clone()]);
                prop_assert_ne!(base, changed);
                // An added key (a second card) changes it too.
                let added = compute(&a, vec![ka.clone()], &b, vec![kb.clone(), other_key.clone()]);
                prop_assert_ne!(base, added);
            }
            if other_key != ka {
                let changed = compute(&a, vec![other_key], &b, vec![kb.clone()]);
                prop_assert_ne!(base, changed);
            }
            if other_identity != b {
                let changed = compute(&a, vec![ka.clone()], &other_identity, vec![kb.clone()]);
                prop_assert_ne!(base, changed);
            }
            if other_identity != a {
                let changed = compute(&other_identity, vec![ka], &b, vec![kb]);
                prop_assert_ne!(base, changed);
            }
        }
    }
}
