//! Helpers every command shares: printing to stdout, the async runtime, logging, the clock and
//! the default key store.

use crate::error::{CliError, Result};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints a line on stdout. A closed pipe (`sealkit ... | head`) ends the program quietly
/// instead of panicking like `println!`.
pub(crate) fn print_line(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("sealkit: error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// The multi-threaded tokio runtime the networked commands run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// The default key store: `$XDG_DATA_HOME/sealkit`, else `~/.local/share/sealkit`.
pub(crate) fn default_home() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir.join("sealkit"));
        }
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".local/share/sealkit")),
        _ => Err(CliError::NoHome),
    }
}

/// The current Unix time in seconds.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Logs to stderr, filtered by `SEALKIT_LOG` (default `info`), as text (with colour escapes
/// only when stderr is a terminal, so files and pipes stay clean) or as JSON lines.
pub(crate) fn init_logging(format: crate::args::LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::args::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        crate::args::LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
