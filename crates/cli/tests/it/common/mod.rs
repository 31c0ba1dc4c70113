//! The harness shared by the tests that run `sealkit serve` as a process: the binary, free
//! ports, a server that is killed when dropped, app creation and fresh PostgreSQL databases,
//! token minting from the app credentials, and the e3kit-node peer ([`node_peer::NodePeer`]).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

pub mod json_lines;
pub mod node_peer;

use sealkit_proto::{AppCredentials, JwtGenerator};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variables `sealkit` takes defaults from: tests remove them, so that the
/// shell the tests run in cannot change what a command does.
pub const SEALKIT_ENV: [&str; 7] = [
    "SEALKIT_SERVER",
    "SEALKIT_IDENTITY",
    "SEALKIT_HOME",
    "SEALKIT_APP_CREDENTIALS",
    "SEALKIT_TOKEN_COMMAND",
    "SEALKIT_DATABASE_URL",
    "XDG_DATA_HOME",
];

pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("sealkit")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    // The child is waited for in `kill9`/`Drop`; on the panic paths the test is over anyway.
    #[allow(clippy::zombie_processes)]
    pub fn start(storage: &[&str]) -> Self {
        Self::start_at(free_port(), storage)
    }

    /// A server on a given port, e.g. to bring a killed replica back where its clients look.
    #[allow(clippy::zombie_processes)]
    pub fn start_at(port: u16, storage: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(storage)
            .env("SEALKIT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(resp) = ureq::get(&format!("{url}/healthz")).call() {
                if resp.status() == 200 {
                    return Self { child, url };
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(e) = child.stderr.take() {
                    for line in BufReader::new(e).lines().map_while(Result::ok) {
                        err.push_str(&line);
                        err.push('\n');
                    }
                }
                panic!("server exited with {status}: {err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become healthy");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn create_app(storage: &[&str], dir: &Path) -> PathBuf {
    let out = Command::new(bin())
        .args(["app", "create", "--name", "e2e", "--json"])
        .args(storage)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("app.json");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// A fresh PostgreSQL database for this test.
pub fn fresh_pg_database(tag: &str) -> String {
    let base = std::env::var("SEALKIT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("sealkit_{tag}_{}_{}", std::process::id(), rand_suffix());
    let status = Command::new("psql")
        .args([&base, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql must be installed to create test databases");
    assert!(status.success(), "cannot create database {name} on {base}");
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000
}

/// A server on SQLite in `dir/data` with an application: the credentials file and the server.
pub fn sqlite_deployment(dir: &Path) -> (PathBuf, Server) {
    let data = dir.join("data");
    let storage = ["--data-dir", data.to_str().unwrap()];
    let creds = create_app(&storage, dir);
    (creds, Server::start(&storage))
}

/// A fresh PostgreSQL database with an application: the credentials file, and the `serve`
/// arguments for it. With PostgreSQL the brainkey secret would default to `./sealkit-data` in
/// the working directory, so the arguments keep it in `dir` (shared by every server started
/// with them, as replicas must).
pub fn pg_deployment(tag: &str, dir: &Path) -> (PathBuf, Vec<String>) {
    let url = fresh_pg_database(tag);
    let creds = create_app(&["--database-url", &url], dir);
    let secret = dir.join("pythia.secret");
    let kt_key = dir.join("kt.key");
    let serve = vec![
        "--database-url".to_owned(),
        url,
        "--pythia-secret-file".to_owned(),
        secret.to_str().unwrap().to_owned(),
        "--kt-key-file".to_owned(),
        kt_key.to_str().unwrap().to_owned(),
    ];
    (creds, serve)
}

/// `&[String]` as the `&[&str]` that [`Server::start`] takes.
pub fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The app backend: a token generator (tokens live an hour) from `sealkit app create --json`
/// output at `creds`.
pub fn backend(creds: &Path) -> JwtGenerator {
    AppCredentials::from_json(&std::fs::read_to_string(creds).unwrap())
        .unwrap()
        .generator(3600)
        .unwrap()
}

/// Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Whether the e3kit-node interop tests run: not when `SEALKIT_SKIP_INTEROP` is set (said on
/// stderr); otherwise `interop/node_modules` must be installed.
pub fn e3kit_node_enabled() -> bool {
    if std::env::var_os("SEALKIT_SKIP_INTEROP").is_some() {
        eprintln!("SEALKIT_SKIP_INTEROP is set: skipping e3kit-node");
        return false;
    }
    assert!(
        repo_root()
            .join("interop/node_modules/@virgilsecurity/e3kit-node")
            .is_dir(),
        "run `npm ci --prefix interop`"
    );
    true
}
