//! The server commands: `serve` and `app ...` (applications and their API keys, directly in the
//! database).

use crate::args::{AppCommand, HookCommand, ServeArgs, StorageArgs};
use crate::common::{init_logging, print_line, runtime};
use crate::error::{CliError, ConfigError, Result};
use crate::io::write_secret_file;
use sealkit_server::Config;
use std::path::PathBuf;

/// The demo application's credentials, in the data directory.
pub(crate) const DEMO_APP_FILE: &str = "demo-app.json";

/// The server configuration: the `--config` file (or the defaults), then the storage options.
fn config(storage: &StorageArgs, file: Option<&PathBuf>) -> Result<Config> {
    let mut config = match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| CliError::read(path, source))?;
            Config::from_toml(&text).map_err(|message| CliError::InvalidConfig {
                path: path.clone(),
                source: ConfigError(message),
            })?
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

/// `sealkit serve`.
pub(crate) fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    let mut config = config(&args.storage, args.config.as_ref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert.clone();
        config.tls_key = args.tls_key.clone();
    }
    if args.pythia_secret_file.is_some() {
        config.pythia_secret_file = args.pythia_secret_file.clone();
    }
    if args.kt_key_file.is_some() {
        config.kt_key_file = args.kt_key_file.clone();
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
        .map_err(CliError::CreateDemoApp)?;
    drop(store);
    let json = serde_json::to_string_pretty(&creds)?;
    write_secret_file(&path, json.as_bytes()).map_err(|source| CliError::WriteDemoApp {
        path: path.clone(),
        source,
    })?;
    print_demo_instructions(config, &path);
    Ok(())
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
    let tls = config.tls_cert.is_some();
    if config.listen != Config::default().listen || tls {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if tls { "https" } else { "http" };
        extra.push_str(&format!(" --server {scheme}://{addr}"));
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

/// `sealkit app ...`.
pub(crate) fn app(cmd: AppCommand) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            AppCommand::Create { name, storage, json } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                let creds = sealkit_server::admin::create_app(store.as_ref(), &name, sealkit_server::now()).await?;
                if json {
                    print_line(format_args!("{}", serde_json::to_string_pretty(&creds)?));
                } else {
                    print_line(format_args!("app_id:          {}", creds.app_id));
                    print_line(format_args!("api_key_id:      {}", creds.api_key_id));
                    print_line(format_args!("api_public_key:  {}", creds.api_public_key.as_deref().unwrap_or_default()));
                    print_line(format_args!("api_private_key: {}", creds.api_private_key));
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
                    print_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
                } else {
                    for app in &out {
                        print_line(format_args!("{}  {}", app["app_id"].as_str().unwrap_or_default(), app["name"].as_str().unwrap_or_default()));
                        for k in app["keys"].as_array().into_iter().flatten() {
                            let state = if k["revoked_at"].is_null() { "active" } else { "revoked" };
                            print_line(format_args!("    key {}  {state}", k["api_key_id"].as_str().unwrap_or_default()));
                        }
                    }
                }
            }
            AppCommand::AddKey { app_id, storage } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                let creds = sealkit_server::admin::add_key(store.as_ref(), &app_id, sealkit_server::now())
                    .await
                    .map_err(|source| CliError::AddKey { app_id: app_id.clone(), source })?;
                print_line(format_args!("{}", serde_json::to_string_pretty(&creds)?));
            }
            AppCommand::RevokeKey { key_id, storage } => {
                let store = sealkit_server::open_store(&config(&storage, None)?).await?;
                store
                    .revoke_app_key(&key_id, sealkit_server::now())
                    .await
                    .map_err(|source| CliError::RevokeKey { key_id: key_id.clone(), source })?;
                eprintln!("sealkit: key {key_id} revoked");
            }
            AppCommand::Hook(command) => hook(command).await?,
        }
        Ok(())
    })
}

/// `sealkit app hook ...`.
async fn hook(command: HookCommand) -> Result<()> {
    match command {
        HookCommand::Set {
            app_id,
            url,
            storage,
        } => {
            let store = sealkit_server::open_store(&config(&storage, None)?).await?;
            let hook = sealkit_server::admin::set_hook(
                store.as_ref(),
                &app_id,
                &url,
                sealkit_server::now(),
            )
            .await
            .map_err(|source| CliError::SetHook {
                app_id: app_id.clone(),
                source,
            })?;
            print_line(format_args!("url:    {}", hook.url));
            print_line(format_args!("secret: {}", hook.secret));
            eprintln!(
                "Keep the secret on your backend only: it verifies the Sealkit-Signature header \
                 of every event (docs/chat.md, \"Push hooks\"). Running servers deliver to the new URL."
            );
        }
        HookCommand::Show {
            app_id,
            storage,
            json,
        } => {
            let store = sealkit_server::open_store(&config(&storage, None)?).await?;
            let hook = store
                .hook_get(&app_id)
                .await?
                .ok_or_else(|| CliError::NoHook(app_id.clone()))?;
            let backlog = store.hook_backlog(&app_id).await?;
            if json {
                let out = serde_json::json!({
                    "app_id": hook.app_id, "url": hook.url, "created_at": hook.created_at,
                    "queued": backlog.queued, "last_error": backlog.last_error,
                });
                print_line(format_args!("{}", serde_json::to_string_pretty(&out)?));
            } else {
                print_line(format_args!("url:        {}", hook.url));
                print_line(format_args!("queued:     {}", backlog.queued));
                if let Some(error) = &backlog.last_error {
                    print_line(format_args!("last error: {error}"));
                }
            }
        }
        HookCommand::Remove { app_id, storage } => {
            let store = sealkit_server::open_store(&config(&storage, None)?).await?;
            if store.hook_remove(&app_id).await? {
                eprintln!("sealkit: push hook of app {app_id} removed");
            } else {
                return Err(CliError::NoHook(app_id));
            }
        }
    }
    Ok(())
}
