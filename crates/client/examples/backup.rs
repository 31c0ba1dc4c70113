//! Key backup and restore on a second device: register on device 1, back the key up with a
//! password (Keyknox + Pythia brainkey, e3kit's format), restore it on device 2 (another storage
//! directory), and read there a message that was encrypted for device 1's key.
//!
//! ```text
//! sealkit app create --name demo --json --data-dir ./data > app.json
//! sealkit serve --data-dir ./data &
//! cargo run -p sealkit --example backup -- http://127.0.0.1:8080 app.json
//! ```
//!
//! Each run uses a new identity and removes its card and backup at the end.

use sealkit::{EThree, EThreeOptions};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn tokens(
    backend: &JwtGenerator,
    identity: String,
) -> impl Fn() -> std::future::Ready<Result<String, sealkit::JwtError>> + Send + Sync + 'static {
    let backend = backend.clone();
    move || {
        std::future::ready(
            backend
                .generate(&identity, now())
                .map(|jwt| jwt.to_string()),
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(api_url), Some(credentials)) = (args.next(), args.next()) else {
        eprintln!("usage: backup API_URL APP_CREDENTIALS_JSON");
        std::process::exit(2);
    };
    let backend =
        AppCredentials::from_json(&std::fs::read_to_string(&credentials)?)?.generator(3600)?;
    let identity = format!("backup-demo-{}", now());
    let root = tempfile::tempdir()?;

    // Device 1: register, encrypt a note to self, back the key up.
    let device1 = EThree::initialize(
        tokens(&backend, identity.clone()),
        EThreeOptions::new(&api_url, root.path().join("device1")),
    )
    .await?;
    let card = device1.register(None).await?;
    let note = device1.auth_encrypt_text("a note to self", &[]).await?;
    // In an app the password is typed by the user; derive_passwords splits one password into a
    // login and a backup password (read its documentation for its weakness).
    let password = "correct horse battery staple";
    device1.backup_private_key(password, None).await?;
    println!("{identity}: registered (card {}) and backed up", card.id());

    // Device 2: same identity, empty storage. Restore, then read the note.
    let device2 = EThree::initialize(
        tokens(&backend, identity.clone()),
        EThreeOptions::new(&api_url, root.path().join("device2")),
    )
    .await?;
    assert!(!device2.has_local_private_key().await?);
    match device2.restore_private_key("wrong password", None).await {
        Err(sealkit::Error::WrongKeyknoxPassword) => println!("wrong password refused"),
        other => return Err(format!("expected a wrong password error, got {other:?}").into()),
    }
    device2.restore_private_key(password, None).await?;
    let own_card = device2.find_user(&identity).await?;
    let text = device2.auth_decrypt_text(&note, &own_card, None).await?;
    println!("restored on device 2 and decrypted: {text}");

    // Clean up: the backup and the card.
    device2.reset_private_key_backup().await?;
    device2.unregister().await?;
    Ok(())
}
