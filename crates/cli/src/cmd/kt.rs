//! `sealkit kt audit`: an auditor of a server's verifiable key directory. It keeps the pinned
//! signing key and the last accepted head in a state file, and each run proves that the newest
//! head only extends it (`sealkit::audit_directory`). Needs no token.

use crate::args::{KtCommand, SdkOptions};
use crate::common::{print_line, runtime};
use crate::error::{CliError, Result};
use crate::io::write_output;
use sealkit::{audit_directory, AuditState, DEFAULT_REQUEST_TIMEOUT};
use std::path::Path;

/// `sealkit kt ...`.
pub(crate) fn kt(opts: &SdkOptions, command: KtCommand) -> Result<()> {
    match command {
        KtCommand::Audit { app_id, state } => {
            audit(opts.server.trim_end_matches('/'), &app_id, &state)
        }
    }
}

fn audit(server: &str, app_id: &str, path: &Path) -> Result<()> {
    let previous = read_state(path)?;
    let report = runtime()?.block_on(audit_directory(
        server,
        app_id,
        previous.as_ref(),
        DEFAULT_REQUEST_TIMEOUT,
    ))?;
    let text = serde_json::to_string_pretty(&report.state)?;
    write_output(Some(path), |w| {
        w.write_all(text.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|source| CliError::WriteFile {
                path: path.to_owned(),
                source,
            })
    })?;
    let epoch = report.state.head.epoch;
    match report.previous_epoch {
        None => print_line(format_args!(
            "trusted epoch {epoch} of {app_id} (first run; signing key {})",
            report.state.signing_public_key
        )),
        Some(before) if before == epoch => {
            print_line(format_args!("ok: epoch {epoch} of {app_id}, unchanged"))
        }
        Some(before) => print_line(format_args!(
            "ok: epoch {epoch} of {app_id} extends epoch {before}"
        )),
    }
    Ok(())
}

/// The stored state; `None` when the file does not exist yet (first run).
fn read_state(path: &Path) -> Result<Option<AuditState>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CliError::AuditState {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CliError::read(path, source)),
    }
}
