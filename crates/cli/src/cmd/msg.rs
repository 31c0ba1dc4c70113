//! `sealkit msg ...`: e3kit authEncrypt / authDecrypt between registered users.

use crate::args::{MsgArgs, MsgCommand, SdkOptions};
use crate::common::runtime;
use crate::error::{CliError, Result};
use crate::messages::{decrypt_messages, encrypt_messages, input_file};
use crate::sdk::{card, cards, ethree};
use sealkit::Card;
use std::fs::File;
use std::io::BufReader;

/// `sealkit msg ...`.
pub(crate) fn msg(opts: &SdkOptions, args: MsgArgs) -> Result<()> {
    runtime()?.block_on(async {
        let ethree = ethree(opts).await?;
        match args.cmd {
            MsgCommand::Encrypt { to, io } => {
                let found = cards(&ethree, &to).await?;
                let recipients: Vec<&Card> = found.values().collect();
                match &io.output {
                    // Into a file: streamed, constant memory.
                    Some(out) => {
                        let (src, len) = input_file(io.input.as_deref())?;
                        let stage = sealkit::FileStage::new(out)?;
                        let stage = ethree
                            .auth_encrypt_stream(
                                BufReader::new(src),
                                len,
                                stage,
                                &recipients,
                                |_| (),
                            )
                            .await?;
                        sealkit::Stage::commit(stage).map_err(|source| CliError::WriteFile {
                            path: out.clone(),
                            source,
                        })?;
                        Ok(())
                    }
                    None => {
                        encrypt_messages(&io, |data| {
                            let ethree = ethree.clone();
                            let recipients = recipients.clone();
                            async move { ethree.auth_encrypt(&data, &recipients).await }
                        })
                        .await
                    }
                }
            }
            MsgCommand::Decrypt { from, at, io } => {
                let sender = card(&ethree, &from).await?;
                match &io.input {
                    // From a file: streamed; the plaintext appears only once verified.
                    Some(path) => {
                        let src =
                            File::open(path).map_err(|source| CliError::read(path, source))?;
                        let stage = crate::io::StagedOutput::new(io.output.as_deref())?;
                        ethree
                            .auth_decrypt_stream(BufReader::new(src), stage, &sender, at, |_| ())
                            .await?;
                        Ok(())
                    }
                    None => {
                        decrypt_messages(&io, |data| {
                            let ethree = ethree.clone();
                            let sender = sender.clone();
                            async move { ethree.auth_decrypt(&data, &sender, at).await }
                        })
                        .await
                    }
                }
            }
        }
    })
}
