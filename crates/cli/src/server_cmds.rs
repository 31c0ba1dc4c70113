//! The server commands: `serve`, `app ...`, `token`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sealkit_server::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the server's data lives (shared by `serve` and `app`).
#[derive(Args, Debug, Clone)]
pub(crate) struct StorageArgs {
    /// Directory of the embedded SQLite database [default: ./sealkit-data].
    #[arg(long, value_name = "DIR", conflicts_with = "database_url")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Use PostgreSQL instead of SQLite (postgres://user@host:port/db).
    #[arg(long, value_name = "URL", env = "SEALKIT_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// The brainkey (Pythia) master secret [default: DATA_DIR/pythia.secret, created on first
    /// start]. Every replica must use the same file, and it must never change: key backups
    /// depend on it.
    #[arg(long, value_name = "FILE")]
    pub(crate) pythia_secret_file: Option<PathBuf>,
    /// TOML configuration file (keys: listen, data_dir, database_url, body_limit,
    /// jwt_leeway_secs, pythia_secret_file, brainkey_burst, brainkey_per_second); command-line
    /// options win.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Do not create the demo application on first start (SQLite only: when the database has
    /// no application yet, `serve` creates one named "demo" and writes its credentials to
    /// DATA_DIR/demo-app.json for `sealkit chat`).
    #[arg(long)]
    pub(crate) no_demo_app: bool,
}

/// The demo application's credentials, in the data directory.
pub(crate) const DEMO_APP_FILE: &str = "demo-app.json";

#[derive(Subcommand, Debug)]
pub(crate) enum AppCommand {
    /// Create an application and its first API key; prints the credentials (keep them secret).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        storage: StorageArgs,
        /// Print the credentials as JSON: {"app_id","api_key_id","api_private_key","api_public_key"}.
        #[arg(long)]
        json: bool,
    },
    /// List applications and their API keys.
    List {
        #[command(flatten)]
        storage: StorageArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add an API key to an application (rotate keys without downtime); prints credentials JSON.
    AddKey {
        /// The application.
        #[arg(long)]
        app_id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke an API key: tokens it signed stop working (within a minute on running servers).
    RevokeKey {
        /// The key id (the JWT `kid`).
        #[arg(long)]
        key_id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub(crate) ttl: u64,
}

fn config(storage: &StorageArgs, file: Option<&PathBuf>) -> Result<Config> {
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_toml(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("invalid configuration in {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(dir) = &storage.data_dir {
        config.data_dir = dir.clone();
    }
    if storage.database_url.is_some() {
        config.database_url = storage.database_url.clone();
    }
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) fn serve(args: ServeArgs) -> Result<()> {
    init_logging();
    let mut config = config(&args.storage, args.config.as_ref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.pythia_secret_file.is_some() {
        config.pythia_secret_file = args.pythia_secret_file.clone();
    }
    let runtime = runtime()?;
    if !args.no_demo_app && config.database_url.is_none() {
        runtime.block_on(demo_app(&config))?;
    }
    runtime.block_on(async {
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            tracing::info!("shutting down");
        };
        sealkit_server::serve(config, shutdown).await
    })?;
    Ok(())
}

/// On the first start of a SQLite deployment (no application at all), creates the "demo" app
/// and writes its credentials next to the database, so `sealkit chat` works without setup.
/// PostgreSQL deployments are left alone: their data directory need not exist or be shared
/// with the clients, and operators create their apps themselves.
async fn demo_app(config: &Config) -> Result<()> {
    let path = config.data_dir.join(DEMO_APP_FILE);
    if path.exists() {
        eprintln!(
            "sealkit: demo app credentials in {} (try `sealkit chat --identity alice --channel \
             general`)",
            path.display()
        );
        return Ok(());
    }
    let store = sealkit_server::open_store(config).await?;
    if !store.list_apps().await?.is_empty() {
        return Ok(());
    }
    let creds = sealkit_server::admin::create_app(store.as_ref(), "demo", sealkit_server::now())
        .await
        .context("cannot create the demo app")?;
    drop(store);
    let json = serde_json::to_string_pretty(&creds)?;
    write_secret_file(&path, json.as_bytes()).with_context(|| {
        format!(
            "cannot write the demo app credentials to {}",
            path.display()
        )
    })?;
    print_demo_instructions(config, &path);
    Ok(())
}

/// Writes a new file readable by its owner only; never replaces an existing one.
fn write_secret_file(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(data)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How the user can run this same binary from the current directory: `sealkit` when that is
/// what they typed, else its path (`./target/release/sealkit` after `cargo run --release`).
fn self_command() -> String {
    let typed = std::env::args_os().next().unwrap_or_default();
    let typed = std::path::Path::new(&typed);
    if typed.components().count() == 1 {
        return typed.to_string_lossy().into_owned();
    }
    let Ok(exe) = std::env::current_exe() else {
        return shell_quote(&typed.to_string_lossy());
    };
    let relative = std::env::current_dir().ok().and_then(|cwd| {
        exe.strip_prefix(cwd)
            .ok()
            .map(|p| format!("./{}", p.display()))
    });
    shell_quote(&relative.unwrap_or_else(|| exe.display().to_string()))
}

fn print_demo_instructions(config: &Config, creds: &std::path::Path) {
    let mut extra = String::new();
    if config.listen != Config::default().listen {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        extra.push_str(&format!(" --server http://{addr}"));
    }
    if config.data_dir != Config::default().data_dir {
        extra.push_str(&format!(
            " --app-credentials {}",
            shell_quote(&creds.display().to_string())
        ));
    }
    let exe = self_command();
    let data = shell_quote(&config.data_dir.display().to_string());
    eprintln!(
        "\n\
sealkit: first start: created the application \"demo\"; its credentials are in {creds}
  (secret: they mint tokens for any user). Skip this with --no-demo-app.

Try the end-to-end encrypted chat. In a second terminal:
    {exe} chat{extra} --identity alice --channel general
and in a third:
    {exe} chat{extra} --identity bob --channel general
Type \"hello bob\" as alice; bob sees it. Then check that the server stored only ciphertext:
    grep -r -a -l \"hello bob\" {data} || echo \"no plaintext on the server\"
",
        creds = creds.display(),
    );
}

pub(crate) fn app(cmd: AppCommand) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            AppCommand::Create { name, storage, json } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                let creds = sealkit_server::admin::create_app(store.as_ref(), &name, sealkit_server::now()).await?;
                if json {
                    crate::print_line(format_args!("{}", serde_json::to_string_pretty(&creds)?));
                } else {
                    crate::print_line(format_args!("app_id:          {}", creds.app_id));
                    crate::print_line(format_args!("api_key_id:      {}", creds.api_key_id));
                    crate::print_line(format_args!("api_public_key:  {}", creds.api_public_key.as_deref().unwrap_or_default()));
                    crate::print_line(format_args!("api_private_key: {}", creds.api_private_key));
                    eprintln!("Keep api_private_key secret: it mints tokens for any identity. Use --json to save it to a file.");
                }
            }
            AppCommand::List { storage, json } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                let mut out = Vec::new();
                for app in store.list_apps().await? {
                    let keys = store.app_keys(&app.app_id).await?;
                    out.push(serde_json::json!({
                        "app_id": app.app_id, "name": app.name, "created_at": app.created_at,
                        "keys": keys.iter().map(|k| serde_json::json!({
                            "api_key_id": k.key_id, "created_at": k.created_at, "revoked_at": k.revoked_at,
                        })).collect::<Vec<_>>(),
                    }));
                }
                if json {
                    crate::print_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
                } else {
                    for app in &out {
                        crate::print_line(format_args!("{}  {}", app["app_id"].as_str().unwrap_or_default(), app["name"].as_str().unwrap_or_default()));
                        for k in app["keys"].as_array().into_iter().flatten() {
                            let state = if k["revoked_at"].is_null() { "active" } else { "revoked" };
                            crate::print_line(format_args!("    key {}  {state}", k["api_key_id"].as_str().unwrap_or_default()));
                        }
                    }
                }
            }
            AppCommand::AddKey { app_id, storage } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                let creds = sealkit_server::admin::add_key(store.as_ref(), &app_id, sealkit_server::now())
                    .await
                    .with_context(|| format!("cannot add a key to app {app_id}"))?;
                crate::print_line(format_args!("{}", serde_json::to_string_pretty(&creds)?));
            }
            AppCommand::RevokeKey { key_id, storage } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                store
                    .revoke_app_key(&key_id, sealkit_server::now())
                    .await
                    .with_context(|| format!("cannot revoke key {key_id}"))?;
                eprintln!("sealkit: key {key_id} revoked");
            }
        }
        Ok(())
    })
}

pub(crate) fn token(opts: &crate::sdk_cmds::SdkOptions, args: TokenArgs) -> Result<()> {
    let Some(path) = &opts.app_credentials else {
        anyhow::bail!("token needs --app-credentials FILE (`sealkit app create --json` output)");
    };
    let Some(identity) = &opts.identity else {
        anyhow::bail!("token needs --identity ID");
    };
    let generator = crate::sdk_cmds::generator(path, args.ttl)?;
    let jwt = generator
        .generate(identity, sealkit_server::now())
        .map_err(|e| anyhow::anyhow!("cannot mint a token: {e}"))?;
    crate::print_line(format_args!("{jwt}"));
    Ok(())
}
