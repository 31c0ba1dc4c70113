//! The e3kit flow against a Sealkit server: authenticate against the app backend → initialize →
//! register → find users → encrypt → decrypt.
//!
//! ```text
//! sealkit app create --name demo --json --data-dir ./data > app.json
//! sealkit serve --data-dir ./data &
//! cargo run -p sealkit --example quickstart -- http://127.0.0.1:8080 app.json
//! ```
//!
//! Real applications get tokens from their backend, which authenticates the user; here the
//! "backend" is the app credentials file, minting tokens locally with `sealkit_proto`'s
//! `AppCredentials` and `JwtGenerator` (what `sealkit token` does).

use sealkit::{EThree, EThreeOptions};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::time::{SystemTime, UNIX_EPOCH};

/// A token provider for `identity`: an async closure returning the JWT string.
fn tokens(
    backend: &JwtGenerator,
    identity: &'static str,
) -> impl Fn() -> std::future::Ready<Result<String, sealkit::JwtError>> + Send + Sync + 'static {
    let backend = backend.clone();
    move || {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        std::future::ready(backend.generate(identity, now).map(|jwt| jwt.to_string()))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(api_url), Some(credentials)) = (args.next(), args.next()) else {
        eprintln!("usage: quickstart API_URL APP_CREDENTIALS_JSON");
        std::process::exit(2);
    };
    // The app backend's token minter, in-process; tokens live an hour.
    let backend =
        AppCredentials::from_json(&std::fs::read_to_string(&credentials)?)?.generator(3600)?;
    let storage = std::env::temp_dir().join("sealkit-quickstart");

    // 1. Initialize one client per user (normally one per app instance).
    let alice = EThree::initialize(
        tokens(&backend, "alice"),
        EThreeOptions::new(&api_url, &storage),
    )
    .await?;
    let bob = EThree::initialize(
        tokens(&backend, "bob"),
        EThreeOptions::new(&api_url, &storage),
    )
    .await?;

    // 2. Register once per user and device.
    for user in [&alice, &bob] {
        if !user.has_local_private_key().await? {
            match user.register(None).await {
                Ok(card) => println!("registered {} (card {})", user.identity(), card.id()),
                Err(sealkit::Error::IdentityAlreadyExists) => {
                    // Registered earlier from another storage dir: replace the lost key.
                    user.rotate_private_key().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    // 3. Find the recipient, 4. encrypt, 5. decrypt.
    let bob_card = alice.find_user("bob").await?;
    let message = alice.auth_encrypt_text("Hello, Bob!", &[&bob_card]).await?;
    println!("encrypted: {message}");

    let alice_card = bob.find_user("alice").await?;
    let text = bob.auth_decrypt_text(&message, &alice_card, None).await?;
    println!("decrypted: {text}");
    Ok(())
}
