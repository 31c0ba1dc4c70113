//! The crypto commands: `key`, `sign`, `verify`, `encrypt`, `decrypt`.

use crate::args::{DecryptArgs, EncryptArgs, KeyCommand, Mode, SignArgs, VerifyArgs};
use crate::common::print_line;
use crate::error::{CliError, Result};
use crate::io;
use crate::keyarg;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{Crypto, KeyIdScheme, PrivateKey, Signing};
use std::process::ExitCode;

/// `sealkit sign`: prints the signature as base64.
pub(crate) fn sign(a: SignArgs) -> Result<()> {
    let key = keyarg::private_key(&a.key)?;
    let mut signer = sealkit_crypto::Signer::new();
    io::for_each_chunk(a.input.input.as_deref(), |c| signer.update(c))?;
    let sig = signer.finish(&key, &mut OsRng)?;
    print_line(format_args!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    ));
    Ok(())
}

/// `sealkit key ...`.
pub(crate) fn key_command(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Generate { key_type, out } => {
            let key = PrivateKey::generate(key_type.into(), &mut OsRng);
            let text = key.to_base64();
            match out {
                Some(path) => io::write_key_file(&path, text.as_bytes())?,
                None => print_line(format_args!("{}", text.as_str())),
            }
        }
        KeyCommand::Public { key } => {
            print_line(format_args!(
                "{}",
                keyarg::private_key(&key)?.public_key().to_base64()
            ));
        }
        KeyCommand::Id { key, sha256 } => {
            let scheme = if sha256 {
                KeyIdScheme::Sha256
            } else {
                KeyIdScheme::Sha512Truncated
            };
            print_line(format_args!(
                "{}",
                keyarg::any_public_key(&key)?.key_id_with(scheme)
            ));
        }
    }
    Ok(())
}

/// `sealkit verify`: exit code 0 when the signature is valid, 1 when it is not.
pub(crate) fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let key = keyarg::public_key(&a.key)?;
    let signature = keyarg::signature(&a.signature)?;
    let mut verifier = sealkit_crypto::Verifier::new();
    io::for_each_chunk(a.input.input.as_deref(), |c| verifier.update(c))?;
    match verifier.finish(&signature, &key) {
        Ok(()) => {
            eprintln!("sealkit: signature is valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sealkit: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `sealkit encrypt`.
pub(crate) fn encrypt(a: EncryptArgs) -> Result<()> {
    let recipients =
        a.to.iter()
            .map(|k| keyarg::public_key(k))
            .collect::<Result<Vec<_>>>()?;
    let signer = a
        .sign_with
        .as_deref()
        .map(keyarg::private_key)
        .transpose()?;
    let mode = a.mode.unwrap_or(if signer.is_some() {
        Mode::Auth
    } else {
        Mode::Plain
    });
    let crypto = if a.sha256_ids {
        Crypto::with_key_ids(KeyIdScheme::Sha256)
    } else {
        Crypto::new()
    };
    let signer_ref = match (mode, &signer) {
        (Mode::Plain, Some(_)) => return Err(CliError::SignerInPlainMode),
        (Mode::Auth | Mode::Legacy, None) => return Err(CliError::ModeNeedsSigner),
        (_, s) => s.as_ref(),
    };

    // Sign-and-encrypt records the length up front and sign-then-encrypt needs the signature
    // first: both read the input twice, so a pipe is spooled to a temporary file.
    let input = io::Input::open(a.input.input.as_deref(), mode != Mode::Plain)?;
    let signature = match (mode, signer_ref) {
        (Mode::Legacy, Some(key)) => {
            let mut signer = sealkit_crypto::Signer::new();
            io::for_each_chunk_of(input.reader()?, |c| signer.update(c))?;
            Some(signer.finish(key, &mut OsRng)?)
        }
        _ => None,
    };
    let signing = match (mode, signer_ref, &signature) {
        (Mode::Auth, Some(signer), _) => Signing::SignAndEncrypt {
            signer,
            plaintext_len: input.len()?,
        },
        (Mode::Legacy, Some(signer), Some(sig)) => Signing::SignThenEncrypt {
            signer,
            signature: sig,
        },
        _ => Signing::None,
    };
    let padding = a.padding || mode == Mode::Auth;
    let reader = io::with_progress(input.reader()?, input.known_len());
    io::write_output(a.output.as_deref(), |w| {
        crypto
            .encrypt_stream(&mut OsRng, reader, w, &recipients, signing, padding)
            .map_err(Into::into)
    })
}

/// `sealkit decrypt`: the plaintext appears only once the message was authenticated.
pub(crate) fn decrypt(a: DecryptArgs) -> Result<()> {
    let key = keyarg::private_key(&a.key)?;
    let verify_with = a
        .verify_with
        .iter()
        .map(|k| keyarg::public_key(k))
        .collect::<Result<Vec<_>>>()?;
    let input = io::Input::open(a.input.input.as_deref(), false)?;
    let reader = io::with_progress(input.reader()?, input.known_len());
    let stage = io::StagedOutput::new(a.output.as_deref())?;
    let verify = (!verify_with.is_empty()).then_some(verify_with.as_slice());
    Crypto::new().decrypt_stream(reader, &key, verify, stage)?;
    Ok(())
}
