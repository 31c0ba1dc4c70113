//! `sealkit user ...`: register, find users, compare safety numbers, back up and restore the
//! private key. Passwords come from `--password-stdin` or the terminal, never from argv.

use crate::args::{PasswordArg, SdkOptions, UserArgs, UserCommand};
use crate::common::{print_line, runtime};
use crate::error::{CliError, Result};
use crate::sdk::{cards, ethree};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealkit::Card;
use std::io::{self, BufRead};
use zeroize::Zeroizing;

/// `sealkit user ...`.
pub(crate) fn user(opts: &SdkOptions, args: UserArgs) -> Result<()> {
    // Passwords are read before anything else, so prompts come first.
    let passwords = match &args.cmd {
        UserCommand::Backup { password, .. } => {
            vec![read_password(password, "Backup password", true)?]
        }
        UserCommand::Restore { password, .. } => {
            vec![read_password(password, "Backup password", false)?]
        }
        UserCommand::ChangePassword { password, .. } => {
            if password.password_stdin {
                read_stdin_lines(2)?
            } else {
                vec![
                    prompt("Current backup password")?,
                    read_password(password, "New backup password", true)?,
                ]
            }
        }
        _ => Vec::new(),
    };
    runtime()?.block_on(async {
        let ethree = ethree(opts).await?;
        match args.cmd {
            UserCommand::Register => {
                let card = ethree.register(None).await?;
                print_line(format_args!("{}", card.id()));
            }
            UserCommand::Unregister => ethree.unregister().await?,
            UserCommand::Rotate => {
                let card = ethree.rotate_private_key().await?;
                print_line(format_args!("{}", card.id()));
            }
            UserCommand::Cleanup => ethree.cleanup().await?,
            UserCommand::Find { identities } => {
                let found = cards(&ethree, &identities).await?;
                let mut out = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for id in identities.iter().filter(|i| seen.insert(i.as_str())) {
                    if let Some(card) = found.get(id) {
                        out.push(card_json(card));
                    }
                }
                print_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
            }
            UserCommand::Monitor => monitor(&ethree).await?,
            UserCommand::SafetyNumber { contact } => {
                let number = ethree.safety_number(&contact).await?;
                print_line(format_args!("{}", number.grouped()));
            }
            UserCommand::Verify {
                contact,
                safety_number,
                accept_change,
            } => {
                let card = match safety_number {
                    Some(digits) if !accept_change => {
                        ethree.verify_safety_number(&contact, &digits).await?
                    }
                    _ => ethree.accept_change(&contact).await?,
                };
                print_line(format_args!("{}", card.id()));
            }
            UserCommand::Backup { key_name, .. } => {
                ethree
                    .backup_private_key(passwords[0].as_bytes(), key_name.key_name.as_deref())
                    .await?;
            }
            UserCommand::Restore { key_name, .. } => {
                ethree
                    .restore_private_key(passwords[0].as_bytes(), key_name.key_name.as_deref())
                    .await?;
            }
            UserCommand::ChangePassword { key_name, .. } => {
                ethree
                    .change_password(
                        passwords[0].as_bytes(),
                        passwords[1].as_bytes(),
                        key_name.key_name.as_deref(),
                    )
                    .await?;
            }
            UserCommand::ResetBackup { key_name } => match key_name.key_name.as_deref() {
                Some(name) => ethree.reset_private_key_backup_with_key_name(name).await?,
                None => ethree.reset_private_key_backup().await?,
            },
        }
        Ok(())
    })
}

/// `user monitor`: prints every version of the own key history, one per line; fails naming
/// the versions this device did not make.
async fn monitor(ethree: &sealkit::EThree) -> Result<()> {
    let history = ethree.monitor_key_history().await?;
    if history.versions.is_empty() {
        print_line(format_args!(
            "{} has no entry in the key directory yet",
            history.identity
        ));
    }
    for version in &history.versions {
        print_line(format_args!("{}", describe(version)));
    }
    let foreign: Vec<String> = history.foreign().map(describe).collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(CliError::ForeignKeyVersions {
        identity: history.identity.clone(),
        count: foreign.len(),
        list: foreign.join("; "),
    })
}

/// One version as a line: number, epoch, who made it, and its cards with their times.
fn describe(version: &sealkit::KeyVersion) -> String {
    let origin = match version.origin {
        sealkit::KeyVersionOrigin::ThisDevice => "made by this device",
        sealkit::KeyVersionOrigin::NoCards => "no cards (revoked)",
        _ => "FOREIGN: not made by a key this device holds or held",
    };
    let mut line = format!(
        "version {} (epoch {}): {origin}",
        version.version, version.epoch
    );
    if version.cards.is_empty() && version.origin != sealkit::KeyVersionOrigin::NoCards {
        line.push_str(", card not shown by the server");
    }
    for card in &version.cards {
        line.push_str(&format!(", card {}", card.card_id));
        if let Some(created) = card.created_at {
            line.push_str(&format!(" created {}", crate::time::format_utc(created)));
        }
    }
    line
}

/// A card as JSON: its fields, the raw card (Virgil's wire format) and its predecessor.
fn card_json(card: &Card) -> serde_json::Value {
    serde_json::json!({
        "identity": card.identity(),
        "card_id": card.id().to_string(),
        "public_key": STANDARD.encode(card.public_key().to_der()),
        "created_at": card.created_at_secs(),
        "previous_card_id": card.previous_card_id().map(ToString::to_string),
        "is_outdated": card.is_outdated(),
        "raw_card": card.raw(),
        "previous_card": card.previous_card().map(card_json),
    })
}

type Password = Zeroizing<String>;

fn strip_newline(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// `n` passwords, one per line of stdin.
fn read_stdin_lines(n: usize) -> Result<Vec<Password>> {
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut line = Zeroizing::new(String::new());
        stdin.read_line(&mut line).map_err(CliError::ReadPassword)?;
        let line = Zeroizing::new(strip_newline(std::mem::take(&mut *line)));
        if line.is_empty() {
            return Err(CliError::MissingPasswordLine {
                expected: n,
                line: i + 1,
            });
        }
        out.push(line);
    }
    Ok(out)
}

fn prompt(what: &str) -> Result<Password> {
    let password =
        Zeroizing::new(rpassword::prompt_password(format!("{what}: ")).map_err(CliError::Prompt)?);
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    Ok(password)
}

fn read_password(arg: &PasswordArg, what: &str, confirm: bool) -> Result<Password> {
    if arg.password_stdin {
        let mut lines = read_stdin_lines(1)?;
        // read_stdin_lines(1) returns one line or an error.
        return lines.pop().ok_or(CliError::MissingPasswordLine {
            expected: 1,
            line: 1,
        });
    }
    let password = prompt(what)?;
    if confirm {
        let again = prompt(&format!("{what} (again)"))?;
        if *again != *password {
            return Err(CliError::PasswordsDiffer);
        }
    }
    Ok(password)
}
