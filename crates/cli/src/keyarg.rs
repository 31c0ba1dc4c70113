//! Key and signature arguments: a path to a file, or the value itself (base64 of DER, or PEM).

use crate::error::{CliError, KeyArgument, Result};
use base64::Engine as _;
use sealkit_crypto::{PrivateKey, PublicKey};
use std::path::Path;
use zeroize::Zeroizing;

/// The bytes behind an argument: the file's content if it names a file, else the text itself.
fn bytes(arg: &str) -> Result<Zeroizing<Vec<u8>>> {
    let path = Path::new(arg);
    if path.is_file() {
        let data = std::fs::read(path).map_err(|source| CliError::read(path, source))?;
        Ok(Zeroizing::new(data))
    } else {
        Ok(Zeroizing::new(arg.as_bytes().to_vec()))
    }
}

/// Describes an argument in errors without echoing key material.
fn describe(arg: &str) -> KeyArgument {
    if Path::new(arg).is_file() {
        KeyArgument::File(arg.to_owned())
    } else {
        KeyArgument::Inline
    }
}

/// A private key argument.
pub fn private_key(arg: &str) -> Result<PrivateKey> {
    PrivateKey::import(&bytes(arg)?).map_err(|e| CliError::NotAPrivateKey(describe(arg), e))
}

/// A public key argument.
pub fn public_key(arg: &str) -> Result<PublicKey> {
    PublicKey::import(&bytes(arg)?).map_err(|e| CliError::NotAPublicKey(describe(arg), e))
}

/// A public key, or the public half of a private key.
pub fn any_public_key(arg: &str) -> Result<PublicKey> {
    let data = bytes(arg)?;
    if let Ok(key) = PublicKey::import(&data) {
        return Ok(key);
    }
    PrivateKey::import(&data)
        .map(|k| k.public_key().clone())
        .map_err(|e| CliError::NotAKey(describe(arg), e))
}

/// A signature given as base64 text, or a file holding base64 or DER.
pub fn signature(arg: &str) -> Result<Vec<u8>> {
    let data = bytes(arg)?;
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let text: String = String::from_utf8_lossy(&data)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(CliError::SignatureNotBase64)
}
