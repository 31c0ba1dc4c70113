//! The OpenSSL backend's AES-256-GCM: EVP through the `openssl` crate's safe `CipherCtx`.
//!
//! EVP's GCM streams natively (update as often as needed, then final), so this is a thin
//! adapter: it fixes the cipher, sets non-96-bit nonce lengths, works in place, and turns
//! OpenSSL's error stack into [`BodyCipherError::Library`] (its contents never leave here: a
//! decryption failure must not tell more than "failed").

use crate::backend::{BodyCipherError, Direction};
use crate::gcm::TAG_LEN;
use openssl::cipher::Cipher;
use openssl::cipher_ctx::{CipherCtx, CipherCtxRef};

/// The longest nonce OpenSSL's GCM accepts (its `GCM_IV_MAX_SIZE`, 1024 bits).
pub(crate) const MAX_NONCE_LEN: usize = 128;
/// `EVP_CipherUpdate` takes an `int` length; pieces stay far below it.
const PIECE: usize = 1 << 20;

/// One EVP AES-256-GCM context. OpenSSL wipes the key schedule when it is freed.
pub(crate) struct OpenSslGcm {
    ctx: CipherCtx,
}

impl OpenSslGcm {
    /// `None` when OpenSSL cannot take this nonce length (the caller then uses RustCrypto).
    pub(crate) fn new(
        direction: Direction,
        key: &[u8; 32],
        nonce: &[u8],
    ) -> Result<Option<Self>, BodyCipherError> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return Ok(None);
        }
        let init = match direction {
            Direction::Encrypt => CipherCtxRef::encrypt_init,
            Direction::Decrypt => CipherCtxRef::decrypt_init,
        };
        let mut ctx = CipherCtx::new().map_err(library)?;
        init(&mut ctx, Some(Cipher::aes_256_gcm()), None, None).map_err(library)?;
        if nonce.len() != ctx.iv_length() {
            ctx.set_iv_length(nonce.len()).map_err(library)?;
        }
        // The crate asserts that the nonce is at least the context's IV length; a library that
        // did not take the new length would make that a panic, so check rather than trust.
        if ctx.iv_length() != nonce.len() {
            return Ok(None);
        }
        init(&mut ctx, None, Some(key), Some(nonce)).map_err(library)?;
        Ok(Some(Self { ctx }))
    }

    pub(crate) fn set_aad(&mut self, aad: &[u8]) -> Result<(), BodyCipherError> {
        if !aad.is_empty() {
            self.ctx.cipher_update(aad, None).map_err(library)?;
        }
        Ok(())
    }

    /// Encrypts or decrypts in place (the direction was fixed by [`new`](Self::new)).
    pub(crate) fn update(&mut self, data: &mut [u8]) -> Result<(), BodyCipherError> {
        for piece in data.chunks_mut(PIECE) {
            let len = piece.len();
            let written = self
                .ctx
                .cipher_update_inplace(piece, len)
                .map_err(library)?;
            // GCM is a stream mode: every byte in comes straight out.
            if written != len {
                return Err(BodyCipherError::Library);
            }
        }
        Ok(())
    }

    pub(crate) fn tag(mut self) -> Result<[u8; TAG_LEN], BodyCipherError> {
        let mut rest = [0u8; 16];
        if self.ctx.cipher_final(&mut rest).map_err(library)? != 0 {
            return Err(BodyCipherError::Library);
        }
        let mut tag = [0u8; TAG_LEN];
        self.ctx.tag(&mut tag).map_err(library)?;
        Ok(tag)
    }

    /// OpenSSL checks the tag in `EVP_DecryptFinal_ex` (with `CRYPTO_memcmp`, constant time).
    pub(crate) fn verify(mut self, tag: &[u8]) -> bool {
        // GCM would also accept a truncated tag of 4 to 15 bytes; Sealkit's tags are whole.
        if tag.len() != TAG_LEN || self.ctx.set_tag(tag).is_err() {
            return false;
        }
        let mut rest = [0u8; 16];
        matches!(self.ctx.cipher_final(&mut rest), Ok(0))
    }
}

fn library(_: openssl::error::ErrorStack) -> BodyCipherError {
    BodyCipherError::Library
}
