//! `sealkit group ...`: e3kit groups: create, load, manage participants, encrypt and decrypt.

use crate::args::{GroupArgs, GroupCommand, SdkOptions};
use crate::common::runtime;
use crate::error::{CliError, Result};
use crate::messages::{decrypt_messages, encrypt_messages};
use crate::sdk::{card, cards, ethree};
use sealkit::{Card, EThree, Group, GroupErrorCode};

/// The group `id` from this device's store.
async fn local_group(ethree: &EThree, id: &str) -> Result<Group> {
    ethree
        .get_group(id)
        .await?
        .ok_or_else(|| CliError::GroupNotLocal(id.to_owned()))
}

/// `sealkit group ...`.
pub(crate) fn group(opts: &SdkOptions, args: GroupArgs) -> Result<()> {
    runtime()?.block_on(async {
        let ethree = ethree(opts).await?;
        match args.cmd {
            GroupCommand::Create { id, with } => {
                let found = cards(&ethree, &with).await?;
                let participants: Vec<&Card> = found.values().collect();
                ethree.create_group(&id, &participants).await?;
            }
            GroupCommand::Load { id, initiator } => {
                let initiator = card(&ethree, &initiator).await?;
                ethree.load_group(&id, &initiator).await?;
            }
            GroupCommand::Add { id, member } => {
                let mut group = local_group(&ethree, &id).await?;
                let found = cards(&ethree, &member.member).await?;
                let members: Vec<&Card> = found.values().collect();
                group.add(&members).await?;
            }
            GroupCommand::Remove { id, member } => {
                let mut group = local_group(&ethree, &id).await?;
                let found = cards(&ethree, &member.member).await?;
                let members: Vec<&Card> = found.values().collect();
                group.remove(&members).await?;
            }
            GroupCommand::ReAdd { id, member } => {
                let group = local_group(&ethree, &id).await?;
                for card in cards(&ethree, &member.member).await?.values() {
                    group.re_add(card).await?;
                }
            }
            GroupCommand::Update { id } => {
                let mut group = local_group(&ethree, &id).await?;
                group.update().await?;
            }
            GroupCommand::Delete { id } => ethree.delete_group(&id).await?,
            GroupCommand::Encrypt { id, io } => {
                let group = local_group(&ethree, &id).await?;
                encrypt_messages(&io, |data| {
                    let group = &group;
                    async move { group.encrypt(&data).await }
                })
                .await?;
            }
            GroupCommand::Decrypt { id, from, at, io } => {
                let group = tokio::sync::Mutex::new(local_group(&ethree, &id).await?);
                let sender = card(&ethree, &from).await?;
                decrypt_messages(&io, |data| {
                    let (group, sender) = (&group, &sender);
                    async move {
                        let mut group = group.lock().await;
                        match group.decrypt(&data, sender, at).await {
                            // A newer epoch: fetch the group's state once and retry.
                            Err(sealkit::Error::Group {
                                code: GroupErrorCode::GroupIsOutdated,
                                ..
                            }) => {
                                group.update().await?;
                                group.decrypt(&data, sender, at).await
                            }
                            other => other,
                        }
                    }
                })
                .await?;
            }
        }
        Ok(())
    })
}
