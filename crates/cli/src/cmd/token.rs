//! `sealkit token`: mint a JWT from application credentials (development, tests).

use crate::args::{SdkOptions, TokenArgs};
use crate::common::print_line;
use anyhow::Result;

/// `sealkit token`.
pub(crate) fn token(opts: &SdkOptions, args: TokenArgs) -> Result<()> {
    let Some(path) = &opts.app_credentials else {
        anyhow::bail!("token needs --app-credentials FILE (`sealkit app create --json` output)");
    };
    let Some(identity) = &opts.identity else {
        anyhow::bail!("token needs --identity ID");
    };
    let generator = crate::sdk::generator(path, args.ttl)?;
    let jwt = generator
        .generate(identity, sealkit_server::now())
        .map_err(|e| anyhow::anyhow!("cannot mint a token: {e}"))?;
    print_line(format_args!("{jwt}"));
    Ok(())
}
