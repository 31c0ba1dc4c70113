//! `sealkit ratchet ...`: e3kit's double-ratchet channels: create, join, encrypt, decrypt,
//! delete, and key rotation.

use crate::args::{ChannelArg, RatchetArgs, RatchetCommand, SdkOptions};
use crate::common::runtime;
use crate::error::{CliError, Result};
use crate::messages::encrypt_messages;
use crate::sdk::{card, ratchet_ethree};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealkit::{EThree, RatchetChannel, DEFAULT_RATCHET_CHANNEL};
use std::io::{self, BufRead, Read, Write};
use zeroize::Zeroizing;

/// The channel of `arg` from this device's store.
async fn local_channel(ethree: &EThree, arg: &ChannelArg) -> Result<RatchetChannel> {
    ethree
        .get_ratchet_channel(&arg.with, arg.name.as_deref())
        .await?
        .ok_or_else(|| CliError::RatchetChannelNotLocal {
            with: arg.with.clone(),
            name: arg
                .name
                .clone()
                .unwrap_or_else(|| DEFAULT_RATCHET_CHANNEL.to_owned()),
        })
}

/// `sealkit ratchet ...`.
pub(crate) fn ratchet(opts: &SdkOptions, args: RatchetArgs) -> Result<()> {
    runtime()?.block_on(async {
        let ethree = ratchet_ethree(opts).await?;
        match args.cmd {
            RatchetCommand::Create { channel } => {
                let peer = card(&ethree, &channel.with).await?;
                ethree
                    .create_ratchet_channel(&peer, channel.name.as_deref())
                    .await?;
            }
            RatchetCommand::Join { channel } => {
                let peer = card(&ethree, &channel.with).await?;
                ethree
                    .join_ratchet_channel(&peer, channel.name.as_deref())
                    .await?;
            }
            RatchetCommand::Encrypt { channel, io } => {
                let channel = local_channel(&ethree, &channel).await?;
                encrypt_messages(&io, |data| {
                    let channel = &channel;
                    async move { channel.encrypt(&data).await }
                })
                .await?;
            }
            RatchetCommand::Decrypt { channel, io } => {
                let channel = local_channel(&ethree, &channel).await?;
                decrypt_each(&channel, &io).await?;
            }
            RatchetCommand::Delete { channel } => {
                ethree
                    .delete_ratchet_channel(&channel.with, channel.name.as_deref())
                    .await?;
            }
            RatchetCommand::Rotate => {
                ethree.rotate_ratchet_keys().await?;
            }
        }
        Ok(())
    })
}

/// Decrypts one binary message from `--in`, or base64 lines from stdin. Unlike `msg decrypt`,
/// each plaintext is written as soon as it is decrypted: a ratchet message decrypts only once,
/// so a later failure must not lose the plaintexts before it.
async fn decrypt_each(channel: &RatchetChannel, io: &crate::args::InOut) -> Result<()> {
    if let Some(path) = &io.input {
        let mut message = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut message))
            .map_err(|source| CliError::read(path, source))?;
        let plaintext = Zeroizing::new(channel.decrypt(&message).await?);
        return crate::io::write_output(io.output.as_deref(), |w| Ok(w.write_all(&plaintext)?));
    }
    let mut out: Box<dyn Write> = match &io.output {
        Some(path) => {
            Box::new(
                std::fs::File::create(path).map_err(|source| CliError::WriteFile {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => Box::new(io::stdout().lock()),
    };
    for (i, line) in io::stdin().lock().split(b'\n').enumerate() {
        let line = line.map_err(CliError::ReadInput)?;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let message = STANDARD
            .decode(line)
            .map_err(|source| CliError::LineNotBase64 {
                line: i + 1,
                source,
            })?;
        let plaintext = Zeroizing::new(channel.decrypt(&message).await.map_err(|source| {
            CliError::MessageOnLine {
                line: i + 1,
                source,
            }
        })?);
        out.write_all(&plaintext)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(CliError::WriteStdout)?;
    }
    Ok(())
}
