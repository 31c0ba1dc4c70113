//! Entry points for the `cargo fuzz` targets in `fuzz/`. Each decodes untrusted bytes, must never
//! panic, and where decoding succeeds checks that the encoding is stable: encode → decode → encode
//! gives the same bytes. (Not decode(encode(x)) == x: decoders accept SETs in any order, as the
//! reference does, and the encoder writes DER order.) Compiled only with the `fuzzing` feature.

use crate::format::ecies::EciesEnvelope;
use crate::format::footer::Footer;
use crate::format::group::GroupMessage;
use crate::format::message_info::MessageInfo;
use crate::format::signature::VirgilSignature;
use crate::{Crypto, Decryptor, PrivateKey, PublicKey};

/// Message info decoder (spec §4.2).
pub fn message_info(data: &[u8]) {
    if let Ok(info) = MessageInfo::decode(data) {
        let enc = info.encode();
        let again = MessageInfo::decode(&enc).map(|i| i.encode());
        assert_eq!(again.ok(), Some(enc));
    }
}

/// A whole message through the streaming decryptor, in two pieces split at the first byte.
pub fn decrypt(data: &[u8]) {
    let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    if let Ok(mut dec) = Decryptor::new(
        &key,
        Some(core::slice::from_ref(key.public_key())),
        Vec::new(),
    ) {
        if dec.update(&data[..split]).is_ok() && dec.update(&data[split..]).is_ok() {
            let _ = dec.finish();
        }
    }
    let _ = Crypto::new().decrypt(data, &key);
}

/// Private and public key DER decoders (spec §2).
pub fn key_der(data: &[u8]) {
    if let Ok(key) = PrivateKey::from_der(data) {
        let again = PrivateKey::from_der(&key.to_der());
        assert_eq!(
            again.ok().map(|k| k.public_key().clone()).as_ref(),
            Some(key.public_key())
        );
    }
    if let Ok(key) = PublicKey::from_der(data) {
        assert_eq!(PublicKey::from_der(&key.to_der()).ok(), Some(key));
    }
}

/// Key import from DER, base64 or PEM text.
pub fn key_text(data: &[u8]) {
    let _ = PrivateKey::import(data);
    let _ = PublicKey::import(data);
}

/// Signature wrapper (spec §3).
pub fn signature(data: &[u8]) {
    if let Ok(sig) = VirgilSignature::decode(data) {
        assert_eq!(VirgilSignature::decode(&sig.encode()).ok(), Some(sig));
    }
}

/// Sign-and-encrypt footer (spec §6).
pub fn footer(data: &[u8]) {
    if let Ok(footer) = Footer::decode(data) {
        let enc = footer.encode();
        assert_eq!(Footer::decode(&enc).map(|f| f.encode()).ok(), Some(enc));
    }
}

/// ECIES envelope (spec §4.4).
pub fn ecies(data: &[u8]) {
    if let Ok(env) = EciesEnvelope::decode(data) {
        assert_eq!(EciesEnvelope::decode(&env.encode()).ok(), Some(env));
    }
}

/// Group messages and tickets (spec §8.1).
pub fn group_message(data: &[u8]) {
    if let Ok(msg) = GroupMessage::decode(data) {
        let enc = msg.encode();
        let again = GroupMessage::decode(&enc).map(|m| m.encode());
        assert_eq!(again.ok(), Some(enc));
    }
}
