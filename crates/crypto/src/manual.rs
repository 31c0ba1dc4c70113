//! Design notes, in the manner of a user manual.

pub mod differences {
    //! # Deliberate differences from virgil-crypto
    //!
    //! Sealkit reads and writes the same bytes as virgil-crypto 4.2.2/5.1.2. Where the reference
    //! accepts input that is unsafe, or behaves in a way that invites mistakes, Sealkit differs on
    //! purpose:
    //!
    //! * **No unauthenticated plaintext from streams.** virgil-crypto's stream decipher returns
    //!   plaintext from `update()` before the single GCM tag at the end has been checked.
    //!   [`crate::Decryptor`] writes into a [`crate::Stage`] that is committed only after the tag
    //!   (and the signature, when requested) verified; on failure the stage is dropped. The CLI
    //!   stages into a temporary file beside the destination and renames it on success.
    //! * **Oversize RandomPadding is rejected.** The reference reads the pad length `n` from the
    //!   last four bytes and, for `n > 160`, silently returns garbage appended to the plaintext.
    //!   Sealkit rejects `n > 160` (and `n + 4 >` the body) as `DecryptionFailed`.
    //! * **Strict DER.** Non-minimal lengths and integers, indefinite lengths, trailing bytes and
    //!   message-info versions that do not match the fields present are errors. The lenient forms
    //!   the reference's reader accepts and that are harmless (unsorted SETs, hash identifiers
    //!   without NULL parameters, the RFC 5084 GCM parameter form) are accepted.
    //! * **X25519 keys cannot verify.** virgil-crypto 4.2.2 and 5.1.2 `verifySignature` return
    //!   `true` for *any* signature, over any data, when given an X25519 (`CURVE25519`) public key
    //!   (found while testing; `decryptThenVerify` inherits it). Sealkit answers
    //!   [`crate::Error::Unsupported`], and a message whose signer is looked up among X25519 keys
    //!   does not verify.
    //! * **Public keys are validated.** An Ed25519 key that is not a curve point, or an X25519
    //!   agreement that yields the all-zero secret, is rejected.
    //! * **Either key id matches.** A recipient entry is found by the 8-byte id or the SHA-256 id
    //!   of the key, so one private key opens messages from both configurations.
    //! * **No malleable bytes in sign-and-encrypt.** The AES-GCM nonce stored in the message info
    //!   of a sign-and-encrypt message is ignored by the reference (the derived nonce is used);
    //!   Sealkit requires it to equal the derived nonce, which every writer stores.
    //! * **The sign-then-encrypt signer id must match.** With a single verification key the
    //!   reference ignores `VIRGIL-DATA-SIGNER-ID`; Sealkit requires it (when present) to be that
    //!   key's id. The message info of sign-then-encrypt messages is otherwise unauthenticated by
    //!   design of the format (the signature covers the plaintext only): renaming a custom
    //!   parameter makes it unknown, and unknown parameters are ignored, as by the reference.
    //! * **Footer signatures.** Any signer info whose id and algorithm match one of the given keys
    //!   may carry the valid signature (the reference checks only the first signer info).
    //! * **Group messages.** Plaintext is capped at [`crate::MAX_GROUP_PLAINTEXT`] bytes so that
    //!   every message stays within the reference decoder's 30032-byte ciphertext limit; protobuf
    //!   fields may come in any order, but duplicate and unknown fields are rejected.
}
