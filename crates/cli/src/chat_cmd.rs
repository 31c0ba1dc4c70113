//! `sealkit chat`: a line-mode terminal client of the end-to-end encrypted chat, over the SDK's
//! `Chat` (glue only: encryption, verification and delivery live in the SDK).

use anyhow::Result;
use clap::Args;

/// `sealkit chat`.
#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// Get tokens from this app backend (`sealkit backend` or Virgil's sample backend): POST
    /// /authenticate, then GET /virgil-jwt.
    #[arg(long, value_name = "URL", conflicts_with_all = ["app_credentials", "token_command"])]
    backend: Option<String>,
    /// Open this channel: join it, or create it as an open group channel.
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// After stdin ends, keep printing incoming messages for SECS seconds (for scripts).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    linger: f64,
}

pub(crate) fn chat(_opts: &crate::sdk_cmds::SdkOptions, _args: ChatArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
