//! Seeding shared by the server's load generators (`load.rs`, `kt_load.rs`): real cards (an
//! Ed25519 key per identity, the self signature and the service's `"virgil"` signature, exactly
//! what `POST /card/v5` would have stored) inserted in batches straight into the `cards` table.

use std::time::Instant;

use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use sealkit_proto::cards::{CardContent, RawSignedModel, CARD_VERSION, VIRGIL_SIGNER};
use sqlx::{Connection, Executor, QueryBuilder};

/// The examples' error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The examples' result type.
pub type Res<T> = Result<T, BoxError>;

/// An error from a message.
pub fn fail(message: impl Into<String>) -> BoxError {
    message.into().into()
}

/// The database a load generator runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite store.
    Sqlite,
    /// PostgreSQL at `--database-url`.
    Postgres,
}

impl Backend {
    /// The value of `--backend`.
    pub fn parse(name: &str) -> Res<Self> {
        match name {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            other => Err(fail(format!("unknown backend {other}"))),
        }
    }

    /// The name shown in result tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// splitmix64: a fast non-cryptographic generator for picking identities.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self(seed ^ 0x5eed_1234_abcd_9876)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The identity of seeded user `i`.
pub fn identity(i: usize) -> String {
    format!("user-{i:08}@bench.example")
}

// ---------------------------------------------------------------------------------------------
// Seeding

/// One `cards` row.
pub struct SeedRow {
    id: String,
    identity: String,
    previous: Option<String>,
    superseded_by: Option<String>,
    raw: Vec<u8>,
    created_at: i64,
}

/// Cards per identity: every tenth identity has rotated its key once (a superseded predecessor
/// plus the current card, so search walks a chain of two), the others have one card.
pub fn plan(cards: usize) -> Vec<u8> {
    let mut counts = Vec::with_capacity(cards);
    let mut total = 0;
    while total < cards {
        let c = if counts.len() % 10 == 0 && total + 2 <= cards {
            2
        } else {
            1
        };
        counts.push(c);
        total += c as usize;
    }
    counts
}

/// A card as the service stores it: self-signed by a fresh key, plus the `"virgil"` signature.
pub fn stored_card(
    identity: &str,
    previous: Option<&str>,
    created_at: i64,
    service: &PrivateKey,
) -> Res<(String, Vec<u8>)> {
    let mut card = client_card(identity, previous, created_at)?;
    card.add_signature(VIRGIL_SIGNER, service)?;
    Ok((card.card_id()?.to_string(), serde_json::to_vec(&card)?))
}

/// A card as a client sends it to `POST /card/v5`.
pub fn client_card(identity: &str, previous: Option<&str>, created_at: i64) -> Res<RawSignedModel> {
    let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let content = CardContent {
        identity: identity.to_owned(),
        previous_card_id: previous.map(str::to_owned),
        created_at,
        version: CARD_VERSION.to_owned(),
        public_key: key.public_key().to_base64(),
    };
    Ok(RawSignedModel::from_content(&content, &key)?)
}

fn seed_rows(
    range: std::ops::Range<usize>,
    counts: &[u8],
    service: &PrivateKey,
    now: i64,
) -> Res<Vec<SeedRow>> {
    let mut rows = Vec::with_capacity(range.len() * 11 / 10 + 1);
    for i in range {
        let who = identity(i);
        if counts[i] == 2 {
            let (old_id, old_raw) = stored_card(&who, None, now - 30 * 86_400, service)?;
            let (new_id, new_raw) = stored_card(&who, Some(&old_id), now - 86_400, service)?;
            rows.push(SeedRow {
                id: old_id.clone(),
                identity: who.clone(),
                previous: None,
                superseded_by: Some(new_id.clone()),
                raw: old_raw,
                created_at: now - 30 * 86_400,
            });
            rows.push(SeedRow {
                id: new_id,
                identity: who,
                previous: Some(old_id),
                superseded_by: None,
                raw: new_raw,
                created_at: now - 86_400,
            });
        } else {
            let (id, raw) = stored_card(&who, None, now - 86_400, service)?;
            rows.push(SeedRow {
                id,
                identity: who,
                previous: None,
                superseded_by: None,
                raw,
                created_at: now - 86_400,
            });
        }
    }
    Ok(rows)
}

/// `f(range)` over `range` split across `threads` OS threads, results in order.
pub fn parallel<T: Send>(
    range: std::ops::Range<usize>,
    threads: usize,
    f: impl Fn(std::ops::Range<usize>) -> Res<Vec<T>> + Sync,
) -> Res<Vec<T>> {
    let threads = threads.max(1);
    let step = range.len().div_ceil(threads).max(1);
    let parts: Vec<Res<Vec<T>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (range.start..range.end)
            .step_by(step)
            .map(|start| {
                let part = start..(start + step).min(range.end);
                let f = &f;
                s.spawn(move || f(part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(fail("worker panicked"))))
            .collect()
    });
    let mut out = Vec::with_capacity(range.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Where seeded rows go: one connection, one transaction per chunk.
pub enum Seeder {
    /// A SQLite connection to the database file.
    Sqlite(sqlx::SqliteConnection),
    /// A PostgreSQL connection with the schema on its search path.
    Postgres(sqlx::PgConnection),
}

const INSERT_CARDS: &str = "INSERT INTO cards \
    (id, app_id, identity, previous_card_id, superseded_by, revoked, raw, created_at) ";

impl Seeder {
    async fn insert(&mut self, app_id: &str, rows: &[SeedRow]) -> Res<()> {
        match self {
            Seeder::Sqlite(conn) => {
                let mut tx = conn.begin().await?;
                for batch in rows.chunks(500) {
                    let mut q = QueryBuilder::<sqlx::Sqlite>::new(INSERT_CARDS);
                    q.push_values(batch, |mut b, r| {
                        b.push_bind(r.id.as_str())
                            .push_bind(app_id)
                            .push_bind(r.identity.as_str())
                            .push_bind(r.previous.as_deref())
                            .push_bind(r.superseded_by.as_deref())
                            .push_bind(false)
                            .push_bind(r.raw.as_slice())
                            .push_bind(r.created_at);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Seeder::Postgres(conn) => {
                let mut tx = conn.begin().await?;
                for batch in rows.chunks(1000) {
                    let mut q = QueryBuilder::<sqlx::Postgres>::new(INSERT_CARDS);
                    q.push_values(batch, |mut b, r| {
                        b.push_bind(r.id.as_str())
                            .push_bind(app_id)
                            .push_bind(r.identity.as_str())
                            .push_bind(r.previous.as_deref())
                            .push_bind(r.superseded_by.as_deref())
                            .push_bind(false)
                            .push_bind(r.raw.as_slice())
                            .push_bind(r.created_at);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    async fn finish(self) -> Res<()> {
        match self {
            Seeder::Sqlite(mut conn) => {
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
                conn.close().await?;
            }
            Seeder::Postgres(mut conn) => {
                // A steady-state table: vacuumed (visibility map set, as autovacuum would soon do
                // after a bulk insert, and would otherwise do during a measured phase) and
                // analysed. CHECKPOINT needs a privileged role; without it the run goes on.
                conn.execute("VACUUM (ANALYZE) cards").await?;
                if let Err(e) = conn.execute("CHECKPOINT").await {
                    eprintln!("  (no CHECKPOINT after seeding: {e})");
                }
                conn.close().await?;
            }
        }
        Ok(())
    }
}

/// Seeds `counts` identities, printing progress; returns the seconds it took.
pub fn seed(
    rt: &tokio::runtime::Runtime,
    mut seeder: Seeder,
    app_id: &str,
    counts: &[u8],
    service: &PrivateKey,
    gen_threads: usize,
) -> Res<(f64, f64)> {
    let start = Instant::now();
    let now = sealkit_server::now();
    let mut gen_secs = 0.0;
    let chunk = 20_000;
    let mut done_cards = 0usize;
    for first in (0..counts.len()).step_by(chunk) {
        let range = first..(first + chunk).min(counts.len());
        let g = Instant::now();
        let rows = parallel(range, gen_threads, |part| {
            seed_rows(part, counts, service, now)
        })?;
        gen_secs += g.elapsed().as_secs_f64();
        rt.block_on(seeder.insert(app_id, &rows))?;
        done_cards += rows.len();
        eprint!(
            "\r  seeded {done_cards} cards ({:.0} s)   ",
            start.elapsed().as_secs_f64()
        );
    }
    rt.block_on(seeder.finish())?;
    eprintln!();
    Ok((start.elapsed().as_secs_f64(), gen_secs))
}
