//! `sealkit token`: mint a JWT from application credentials (development, tests).

use crate::args::{SdkOptions, TokenArgs};
use crate::common::print_line;
use crate::error::{CliError, Result};

/// `sealkit token`.
pub(crate) fn token(opts: &SdkOptions, args: TokenArgs) -> Result<()> {
    let path = opts
        .app_credentials
        .as_ref()
        .ok_or(CliError::TokenNeedsCredentials)?;
    let identity = opts.identity.as_ref().ok_or(CliError::TokenNeedsIdentity)?;
    let generator = crate::sdk::generator(path, args.ttl)?;
    let jwt = generator
        .generate(identity, sealkit_server::now())
        .map_err(CliError::MintToken)?;
    print_line(format_args!("{jwt}"));
    Ok(())
}
