//! The server commands: `serve`, `app ...`, `token`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sealkit_crypto::PrivateKey;
use sealkit_proto::jwt::JwtGenerator;
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
}

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
    /// JSON credentials from `sealkit app create --json`.
    #[arg(long, value_name = "FILE")]
    pub(crate) app_credentials: PathBuf,
    /// The user identity the token is for.
    #[arg(long, value_name = "ID")]
    pub(crate) identity: String,
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

fn init_logging() {
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
    runtime()?.block_on(async {
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
                    crate::print_line(format_args!("api_public_key:  {}", creds.api_public_key));
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

#[derive(serde::Deserialize)]
struct Credentials {
    app_id: String,
    api_key_id: String,
    api_private_key: String,
}

pub(crate) fn token(args: TokenArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.app_credentials)
        .with_context(|| format!("cannot read {}", args.app_credentials.display()))?;
    let creds: Credentials = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not `sealkit app create --json` output",
            args.app_credentials.display()
        )
    })?;
    let key = PrivateKey::import(creds.api_private_key.as_bytes())
        .context("api_private_key is not a private key")?;
    let generator = JwtGenerator::new(creds.app_id, creds.api_key_id, key, args.ttl);
    let jwt = generator
        .generate(&args.identity, sealkit_server::now())
        .map_err(|e| anyhow::anyhow!("cannot mint a token: {e}"))?;
    crate::print_line(format_args!("{jwt}"));
    Ok(())
}
