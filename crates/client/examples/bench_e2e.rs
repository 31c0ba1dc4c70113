//! End-to-end SDK benchmark (issue 5), the Rust side: against a running Sealkit server,
//! times initialize + register of one user, registering 50 more users (setup, timed as a whole),
//! one `find_users` call for the 50, `auth_encrypt` of 1 KiB for the 50 and `auth_decrypt` of
//! that message by one of them. `interop/bench_e2e.js` does the same with e3kit-node;
//! `bench/sdk_e2e.sh` runs both against one server and prints the comparison.
//!
//! ```text
//! cargo run --release -p sealkit --example bench_e2e -- API_URL APP_JSON STORAGE_DIR [PREFIX] [REPS]
//! ```
//!
//! Prints one line `RESULT {json}` with the milliseconds of every step (the median over `REPS`
//! repetitions where a step repeats; `register_50` is one run). Every identity starts with
//! `PREFIX` so repeated runs against one server do not collide.

use sealkit::{Card, EThree, EThreeOptions};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const USERS: usize = 50;
const PAYLOAD: usize = 1024;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A token provider for `identity`.
fn tokens(
    backend: &JwtGenerator,
    identity: String,
) -> impl Fn() -> std::future::Ready<Result<String, sealkit::JwtError>> + Send + Sync + 'static {
    let backend = backend.clone();
    move || {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        std::future::ready(backend.generate(&identity, now).map(|jwt| jwt.to_string()))
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

struct Bench {
    url: String,
    backend: JwtGenerator,
    storage: PathBuf,
}

impl Bench {
    /// `EThree::initialize` + `register` for a fresh identity with its own storage directory;
    /// also returns the milliseconds of the two calls.
    async fn init_register(&self, identity: &str) -> BoxResult<(EThree, f64, f64)> {
        let dir: PathBuf = self.storage.join(identity);
        let start = Instant::now();
        let ethree = EThree::initialize(
            tokens(&self.backend, identity.to_owned()),
            EThreeOptions::new(&self.url, &dir),
        )
        .await?;
        let init = ms(start);
        let start = Instant::now();
        ethree.register(None).await?;
        Ok((ethree, init, ms(start)))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: bench_e2e API_URL APP_CREDENTIALS_JSON STORAGE_DIR [PREFIX] [REPS]");
        std::process::exit(2);
    }
    let prefix = args.get(3).cloned().unwrap_or_else(|| "rs".to_owned());
    let reps: usize = args.get(4).map_or(Ok(5), |r| r.parse())?;
    let bench = Bench {
        url: args[0].trim_end_matches('/').to_owned(),
        backend: AppCredentials::from_json(&std::fs::read_to_string(&args[1])?)?.generator(3600)?,
        storage: Path::new(&args[2]).to_owned(),
    };
    std::fs::create_dir_all(&bench.storage)?;

    // 1. initialize + register one user: `reps` fresh users, the median; the first is the sender.
    let (mut samples, mut inits, mut registers) = (Vec::new(), Vec::new(), Vec::new());
    let mut sender = None;
    for i in 0..reps.max(1) {
        let start = Instant::now();
        let (ethree, init, register) = bench.init_register(&format!("{prefix}-sender-{i}")).await?;
        samples.push(ms(start));
        inits.push(init);
        registers.push(register);
        sender.get_or_insert(ethree);
    }
    let init_register = median(samples);
    let sender = sender.ok_or("no sender")?;

    // 2. register 50 other users, one after the other (setup; timed as a whole).
    let identities: Vec<String> = (0..USERS).map(|i| format!("{prefix}-user-{i}")).collect();
    let start = Instant::now();
    let mut recipient = None;
    for identity in &identities {
        let (ethree, _, _) = bench.init_register(identity).await?;
        recipient.get_or_insert(ethree);
    }
    let register_50 = ms(start);
    let recipient = recipient.ok_or("no recipient")?;

    // 3. find the 50 users, one call.
    let ids: Vec<&str> = identities.iter().map(String::as_str).collect();
    let mut samples = Vec::new();
    let mut found = None;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        let cards = sender.find_users(&ids).await?;
        samples.push(ms(start));
        found = Some(cards);
    }
    let find_50 = median(samples);
    let found = found.ok_or("no cards")?;
    if found.len() != USERS {
        return Err(format!("found {} cards, expected {USERS}", found.len()).into());
    }
    let cards: Vec<&Card> = found.values().collect();

    // 4. auth_encrypt 1 KiB for the 50.
    let payload: Vec<u8> = (0..PAYLOAD)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    let mut samples = Vec::new();
    let mut message = Vec::new();
    for _ in 0..reps.max(1) * 4 {
        let start = Instant::now();
        message = sender.auth_encrypt(&payload, &cards).await?;
        samples.push(ms(start));
    }
    let encrypt_50 = median(samples);

    // 5. auth_decrypt by one recipient (the sender's card looked up first, untimed).
    let sender_card = recipient.find_user(sender.identity()).await?;
    let mut samples = Vec::new();
    for _ in 0..reps.max(1) * 4 {
        let start = Instant::now();
        let plain = recipient.auth_decrypt(&message, &sender_card, None).await?;
        samples.push(ms(start));
        if plain != payload {
            return Err("decrypted text differs".into());
        }
    }
    let decrypt = median(samples);

    let result = serde_json::json!({
        "side": "sealkit",
        "reps": reps,
        "init_register": init_register,
        "initialize": median(inits),
        "register": median(registers),
        "register_50": register_50,
        "find_50": find_50,
        "auth_encrypt_50": encrypt_50,
        "auth_decrypt": decrypt,
        "ciphertext_bytes": message.len(),
    });
    println!("RESULT {result}");
    Ok(())
}
