//! Pythia brainkey (spec §6): the per-deployment secret, the per-identity rate limit and the
//! transform, which runs on the blocking pool (a pairing costs milliseconds of CPU).
//!
//! The secret turns a user's password into their backup key together with the client's
//! blinding, so it must never be stored beside the backups: it lives in a file (mode 0600) that
//! every replica reads, and the database keeps only its SHA-256 fingerprint, so a replica started
//! with a different secret refuses to run instead of silently breaking every restore.

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{Store, StoreError};
use crate::Config;
use base64::Engine as _;
use rand_core::RngCore;
use sealkit_proto::brainkey::HardenResponse;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Length of a generated master secret (and the shortest accepted).
const SECRET_LEN: usize = 32;
/// Longest master secret accepted (HMAC key limit of the derivation).
const MAX_SECRET_LEN: usize = 128;
/// Name of the setting holding the secret's fingerprint.
const FINGERPRINT_SETTING: &str = "pythia.secret.sha256";

/// Errors loading the brainkey secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Reading or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The secret file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is too short or too long to be a secret.
    #[error("{0}: the brainkey secret must hold 32 to 128 bytes")]
    BadLength(PathBuf),
    /// The file differs from the secret the database was set up with.
    #[error("{0} is not the brainkey secret this database was set up with; every replica must use the same secret file (existing backups depend on it)")]
    Mismatch(PathBuf),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The secret file: `--pythia-secret-file`, else `pythia.secret` in the data directory.
pub fn secret_path(config: &Config) -> PathBuf {
    config
        .pythia_secret_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("pythia.secret"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the secret, creating it (random, mode 0600) on first start, and checks it against the
/// fingerprint in the database.
pub async fn load_secret(
    config: &Config,
    store: &dyn Store,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let path = secret_path(config);
    let secret = read_or_create_secret(&path)?;
    if !(SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
        return Err(SecretError::BadLength(path));
    }
    let fingerprint = sha2::Sha256::digest(&secret[..]).to_vec();
    let stored = store
        .setting_or_insert(FINGERPRINT_SETTING, &fingerprint)
        .await?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&stored[..], &fingerprint[..])) {
        return Err(SecretError::Mismatch(path));
    }
    Ok(secret)
}

/// Reads the secret file, creating it first if there is none. Replicas starting together on
/// one shared file all end up with the first complete file: a new secret is written and synced
/// under a temporary name, then hard-linked to `path`, which fails when another process got
/// there first (whose file is then read: it was complete before it got its name).
fn read_or_create_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    match std::fs::read(path) {
        Ok(bytes) => return Ok(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(path))?;
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rand_core::OsRng.fill_bytes(&mut secret);
    let temp = dir.join(format!(
        ".pythia-secret-{}-{:016x}",
        std::process::id(),
        rand_core::OsRng.next_u64()
    ));
    let published = write_new_file(&temp, &secret).and_then(|()| std::fs::hard_link(&temp, path));
    // The temporary name is removed whatever happened; only `path` may keep the secret.
    let _ = std::fs::remove_file(&temp);
    match published {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "created the brainkey secret: back it up; losing or changing it makes every key backup unrecoverable");
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map(Zeroizing::new).map_err(io(path))
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Creates `path` (mode 0600, failing if it exists) holding `data`, synced to disk.
pub(crate) fn write_new_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, data)?;
    file.sync_all()
}

/// Longest accepted `brainkey_id`, in bytes. e3kit sends none or a short name; a bound keeps
/// a client from making the server hash (and log) arbitrarily long ids.
pub const MAX_BRAINKEY_ID_LEN: usize = 128;

/// The brainkey service: the v1 transform, the v3 harden and their shared rate limit.
pub struct Brainkey {
    server: Arc<sealkit_pythia::BrainkeyServer>,
    /// The master secret, from which v3 derives each identity's P-256 secret on every request
    /// ([`sealkit_pythia::v3::IdentitySecret::derive`]): nothing per identity is stored.
    v3_master: Arc<Zeroizing<Vec<u8>>>,
    burst: u32,
    per_second: f64,
}

impl std::fmt::Debug for Brainkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brainkey")
            .field("burst", &self.burst)
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

impl Brainkey {
    /// A brainkey service over the master secret.
    pub fn new(secret: &[u8], burst: u32, per_second: f64) -> Result<Self, sealkit_pythia::Error> {
        Ok(Self {
            server: Arc::new(sealkit_pythia::BrainkeyServer::new(secret)?),
            v3_master: Arc::new(Zeroizing::new(secret.to_vec())),
            burst,
            per_second,
        })
    }

    /// Transforms a blinded password for `identity` of `app_id`, after taking a token from the
    /// identity's bucket (shared by every replica through the database).
    pub async fn transform(
        &self,
        store: &dyn Store,
        caller: &Caller,
        blinded_b64: &str,
        brainkey_id: Option<&str>,
        now_ms: i64,
    ) -> Result<String, ServiceError> {
        let Caller { app_id, identity } = caller;
        if brainkey_id.is_some_and(|id| id.len() > MAX_BRAINKEY_ID_LEN) {
            return Err(ServiceError::BadRequest(format!(
                "brainkey_id is longer than {MAX_BRAINKEY_ID_LEN} bytes"
            )));
        }
        let blinded = base64::engine::general_purpose::STANDARD
            .decode(blinded_b64)
            .map_err(|_| ServiceError::BadRequest("blinded_password is not base64".into()))?;
        self.take_token(store, caller, now_ms).await?;
        let server = self.server.clone();
        let (app, id, key_id) = (
            app_id.to_owned(),
            identity.to_owned(),
            brainkey_id.map(str::to_owned),
        );
        let seed = tokio::task::spawn_blocking(move || {
            server.transform_with_brainkey_id(&blinded, &app, &id, key_id.as_deref())
        })
        .await
        .map_err(ServiceError::internal)?
        .map_err(|e| ServiceError::BadRequest(format!("blinded_password: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(seed))
    }

    /// Brainkey v3 (`POST /brainkey/v3/harden`): hardens the caller's blinded P-256 point with
    /// the identity's secret and proves it, after taking a token from the same bucket as v1 (one
    /// password-guessing budget per identity, whichever protocol asks).
    pub async fn harden_v3(
        &self,
        store: &dyn Store,
        caller: &Caller,
        blinded_b64: &str,
        now_ms: i64,
    ) -> Result<HardenResponse, ServiceError> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let blinded = b64
            .decode(blinded_b64)
            .map_err(|_| ServiceError::BadRequest("blinded_point is not base64".into()))?;
        // Malformed points are refused before they cost the caller a token.
        sealkit_pythia::v3::decode_point(&blinded)
            .map_err(|e| ServiceError::BadRequest(format!("blinded_point: {e}")))?;
        self.take_token(store, caller, now_ms).await?;
        let master = self.v3_master.clone();
        let (app, id) = (caller.app_id.clone(), caller.identity.clone());
        let answer = tokio::task::spawn_blocking(move || {
            use sealkit_pythia::v3;
            let secret = v3::IdentitySecret::derive(&master, &app, &id)?;
            let hardened = v3::harden(&secret, &blinded)?;
            let public_key = secret.public_key();
            let proof = v3::prove(
                &blinded,
                &hardened,
                &secret,
                &public_key,
                &mut rand_core::OsRng,
            )?;
            Ok::<_, sealkit_pythia::Error>((hardened, public_key, proof))
        })
        .await
        .map_err(ServiceError::internal)?;
        let (hardened, public_key, proof) =
            answer.map_err(|e| ServiceError::BadRequest(format!("blinded_point: {e}")))?;
        Ok(HardenResponse {
            hardened_point: b64.encode(hardened),
            server_public_key: b64.encode(public_key),
            proof_value_c: b64.encode(proof.c),
            proof_value_s: b64.encode(proof.s),
        })
    }

    /// Takes one token from the identity's brainkey bucket (shared by every replica through
    /// the database), or fails with [`ServiceError::Throttled`].
    async fn take_token(
        &self,
        store: &dyn Store,
        caller: &Caller,
        now_ms: i64,
    ) -> Result<(), ServiceError> {
        let Caller { app_id, identity } = caller;
        let bucket = format!("brainkey\u{1f}{app_id}\u{1f}{identity}");
        if !store
            .rate_limit_take(&bucket, now_ms, self.burst, self.per_second)
            .await?
        {
            tracing::info!(app = %app_id, identity = %identity, "brainkey throttled");
            return Err(ServiceError::Throttled);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Replicas started together on one shared (empty) secret path: all get the same, complete
    /// secret and no temporary file is left behind.
    #[test]
    fn concurrent_first_starts_agree_on_one_secret() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("nested/pythia.secret");
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let secrets: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let barrier = barrier.clone();
                        let path = path.clone();
                        scope.spawn(move || {
                            barrier.wait();
                            read_or_create_secret(&path).unwrap().to_vec()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(secrets[0].len(), SECRET_LEN);
            assert!(secrets.iter().all(|s| s == &secrets[0]));
            assert_eq!(std::fs::read(&path).unwrap(), secrets[0]);
            let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["pythia.secret"]);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }
}
