//! Design notes: what is fixed forever, what is checked, what is constant time, and where this
//! crate deliberately differs from Virgil's relic-based implementation.
//!
//! # Permanent choices
//!
//! The derivation of `kw` and of the tweak is documented on [`BrainkeyServer`](crate::BrainkeyServer).
//! Changing a label, the length-prefix width, the order of the fields or the hash changes every
//! user's brain key and makes every Keyknox backup undecryptable. Brain keys made against
//! Virgil's cloud cannot be restored through a Sealkit server: Virgil's `kw` is unknown.
//!
//! # Compatibility surface (what the official client checks)
//!
//! * the blinded password is decoded with relic's **Montgomery** parity bit
//!   ([`G1Point::from_relic`](crate::G1Point::from_relic)); a stock decoder would evaluate the
//!   PRF at −X for half the requests and the brain key would flip between u and u⁻¹;
//! * the answer is relic's **packed** 384-byte GT form ([`Gt`](crate::Gt));
//! * the pairing is arkworks' optimal ate pairing with its final exponentiation, bit-identical to
//!   relic's `pp_map_oatep_k12` + `pp_exp_b12` (checked against the WASM with `kw = 1`);
//! * for `/pythia/v1/password` only: H2 of the client's `user_id`, `hashZ`, and the proof.
//!
//! # Deliberate differences from relic / virgil-crypto-c
//!
//! * Decoders are strict. relic reduces coordinates ≥ p, accepts the point at infinity and
//!   integers with leading zeros; these are refused here. A GT value whose `a10` is zero cannot
//!   be decompressed (relic would invert zero) and is refused.
//! * Virgil's client rejects a GT answer with more than 24 zero bytes (a `TODO` heuristic in
//!   `gt_read_buf`); [`deblind`](crate::deblind) instead checks that the value has order r.
//! * [`blind`](crate::blind) draws `r` uniformly from `[1, r)` instead of a raw 256-bit integer,
//!   and returns `r⁻¹ mod r` as a non-negative value (relic's extended gcd may give a negative
//!   one; both are accepted by [`BlindingSecret::from_relic_bn`](crate::BlindingSecret::from_relic_bn)).
//! * Proof responses `u` are always emitted non-negative.
//!
//! # Constant time
//!
//! Secret scalars — the server's `kw`, the proof nonce `v`, the client's `r` and `r⁻¹` — are
//! used only through a fixed-schedule G1 multiplication (regular signed 4-bit windows over
//! complete Renes–Costello–Batina formulas, masked table reads) and a fixed-window GT
//! exponentiation with masked table reads; inverses of secrets are Fermat exponentiations with
//! public exponents. The schedule of field operations and the memory access pattern do not
//! depend on secrets.
//!
//! **Residual risk.** The field arithmetic underneath is arkworks' Montgomery arithmetic, which
//! ends additions, subtractions and multiplications with a conditional subtraction of the
//! modulus, i.e. a branch on intermediate values. arkworks does not claim constant time for it.
//! These branches depend on coordinates of intermediate points, not directly on scalar bits, and
//! we know of no practical attack on this pattern, but it is weaker than zkcrypto's audited
//! `bls12_381`. Other residual points: the pairing of the secret point `kw·X` runs arkworks'
//! Miller loop (fixed schedule, same arithmetic caveat); `H1(password)` is relic's
//! try-and-increment map, whose number of iterations depends on the password (inherent in the
//! legacy map the official client uses); and copies of secret field elements made by arkworks
//! during arithmetic are not zeroized (only the values this crate stores are), nor is the
//! key schedule that the `hmac` crate derives from the master secret during a derivation.
//!
//! # Key derivation on the client
//!
//! [`brainkey_from_deblinded`](crate::brainkey_from_deblinded) reproduces virgil-crypto's
//! `generateKeysFromKeyMaterial`: KDF2-SHA-512 to 48 bytes, mbedTLS CTR_DRBG (AES-256 with the
//! derivation function, no nonce, no personalization), first 32 bytes as the Ed25519 seed.
