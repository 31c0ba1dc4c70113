//! Virgil's RandomPadding (spec §4.6): `plaintext ‖ n random bytes ‖ LE32(n)`, with
//! `n = 160 − ((len + 4) mod 160)`, so the body is a positive multiple of 160.
//!
//! Deliberate difference from virgil-crypto: its decoder accepts any `n` and, for `n > 160`,
//! silently returns garbage. Here `n` must be at most 160 and fit in the body, otherwise the
//! message is rejected as [`crate::Error::DecryptionFailed`]. Like the reference, an unaligned
//! body (or `n = 0`, which no encoder produces) is accepted: it is harmless.

use rand_core::CryptoRngCore;

/// The padding frame.
pub(crate) const FRAME: u64 = 160;
/// The most bytes padding can add: 160 random bytes and the 4-byte length.
pub(crate) const MAX_TAIL: usize = 164;

/// Number of random bytes for a plaintext of `len` bytes.
pub(crate) fn pad_len(len: u64) -> u64 {
    FRAME - (len.wrapping_add(4) % FRAME)
}

/// The padded length of a plaintext of `len` bytes.
pub(crate) fn padded_len(len: u64) -> u64 {
    len + pad_len(len) + 4
}

/// The bytes appended to a plaintext of `len` bytes.
pub(crate) fn tail(len: u64, rng: &mut impl CryptoRngCore) -> Vec<u8> {
    let n = pad_len(len);
    let mut out = vec![0u8; n as usize];
    rng.fill_bytes(&mut out);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out
}

/// How many bytes to strip from the end of a padded body, or `None` when the padding is invalid.
/// `body_tail` is the last (up to [`MAX_TAIL`]) bytes of the body; `body_len` its full length.
pub(crate) fn strip_len(body_tail: &[u8], body_len: u64) -> Option<u64> {
    let start = body_tail.len().checked_sub(4)?;
    let n = u32::from_le_bytes(body_tail.get(start..)?.try_into().ok()?);
    let n = u64::from(n);
    if n > FRAME || n + 4 > body_len {
        return None;
    }
    Some(n + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_frame() {
        assert_eq!(padded_len(0), 160);
        assert_eq!(pad_len(0), 156);
        assert_eq!(padded_len(156), 320);
        assert_eq!(pad_len(156), 160);
        assert_eq!(padded_len(155), 160);
        assert_eq!(pad_len(155), 1);
        for len in 0..1000u64 {
            assert_eq!(padded_len(len) % FRAME, 0);
            assert!((1..=160).contains(&pad_len(len)));
        }
    }

    #[test]
    fn oversize_padding_is_rejected() {
        let mut body = vec![0u8; 300];
        body[296..].copy_from_slice(&200u32.to_le_bytes());
        assert_eq!(strip_len(&body[136..], 300), None);
        body[296..].copy_from_slice(&160u32.to_le_bytes());
        assert_eq!(strip_len(&body[136..], 300), Some(164));
        body[296..].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(strip_len(&body[136..], 300), Some(4));
        assert_eq!(strip_len(&[5, 0, 0, 0], 4), None);
    }
}
