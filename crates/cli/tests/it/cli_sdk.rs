//! The SDK commands of the `sealkit` CLI (`user`, `msg`, `group`) against `sealkit serve` as a
//! process: users with separate `--home` directories, tokens from `--app-credentials` and from
//! `--token-command`, messages as base64 lines and as binary files, key backup and restore,
//! groups, and one-line errors.

use crate::common;

use crate::common::bin;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// `sealkit serve` on SQLite in a temporary directory, with an app created beforehand.
pub(crate) struct Server {
    // Declared before `dir`, so the process is killed before its data directory is removed.
    process: std::cell::RefCell<common::Server>,
    url: String,
    creds: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (creds, process) = common::sqlite_deployment(dir.path());
        Self {
            url: process.url.clone(),
            process: std::cell::RefCell::new(process),
            creds,
            dir,
        }
    }

    fn stop(&self) {
        self.process.borrow_mut().kill9();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command acting as `identity` with its own home and `--app-credentials`.
    pub(crate) fn user(&self, identity: &str) -> User<'_> {
        User {
            server: self,
            auth: vec![
                "--app-credentials".into(),
                self.creds.to_str().unwrap().into(),
                "--identity".into(),
                identity.into(),
            ],
            home: self.path(&format!("home-{identity}")),
        }
    }
}

pub(crate) struct User<'a> {
    server: &'a Server,
    auth: Vec<String>,
    home: PathBuf,
}

impl User<'_> {
    /// Runs `sealkit ARGS` with the global options, `stdin` as standard input.
    pub(crate) fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = assert_cmd::Command::new(bin());
        for var in common::SEALKIT_ENV {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .args(["--server", &self.server.url])
            .args(&self.auth)
            .arg("--home")
            .arg(&self.home)
            .current_dir(self.server.dir.path())
            .write_stdin(stdin.to_vec())
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    }

    /// Runs and requires success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "sealkit {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub(crate) fn ok_text(&self, args: &[&str], stdin: &str) -> String {
        String::from_utf8(self.ok(args, stdin.as_bytes())).unwrap()
    }

    /// Runs and requires failure with exactly one line on stderr and nothing on stdout; returns
    /// that line.
    pub(crate) fn fails(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "sealkit {args:?} succeeded");
        assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
        assert!(err.starts_with("sealkit: error: "), "{err}");
        err
    }
}

#[test]
fn register_find_encrypt_decrypt_backup_restore() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let alice_card = alice.ok_text(&["user", "register"], "");
    assert_eq!(alice_card.trim().len(), 64, "{alice_card}");
    let bob_card = bob.ok_text(&["user", "register"], "");
    assert!(bob
        .fails(&["user", "register"], b"")
        .contains("already registered"));

    // find prints the cards as JSON.
    let found: serde_json::Value =
        serde_json::from_str(&alice.ok_text(&["user", "find", "bob"], "")).unwrap();
    let cards = found.as_array().unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["identity"], "bob");
    assert_eq!(cards[0]["card_id"], bob_card.trim());
    assert!(cards[0]["raw_card"]["content_snapshot"].is_string());
    assert!(cards[0]["public_key"].is_string());
    let both: serde_json::Value =
        serde_json::from_str(&bob.ok_text(&["user", "find", "bob", "alice"], "")).unwrap();
    let ids: Vec<_> = both
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["identity"].clone())
        .collect();
    assert_eq!(ids, ["bob", "alice"]);
    let alice_created = both[1]["created_at"].as_i64().unwrap();
    assert!(alice
        .fails(&["user", "find", "nobody"], b"")
        .contains("nobody"));

    // stdin to stdout: one message per line, base64 lines out.
    let text = "hello bob\nsecond message\n\nafter an empty line\n";
    let encrypted = alice.ok_text(&["msg", "encrypt", "--to", "bob"], text);
    assert_eq!(encrypted.lines().count(), 4, "{encrypted}");
    let decrypted = bob.ok_text(&["msg", "decrypt", "--from", "alice"], &encrypted);
    assert_eq!(decrypted, text);
    // The sender can read their own messages, and --to takes several identities.
    let for_both = alice.ok_text(&["msg", "encrypt", "--to", "bob,alice"], "to both\n");
    assert_eq!(
        bob.ok_text(&["msg", "decrypt", "--from", "alice"], &for_both),
        "to both\n"
    );
    assert_eq!(
        alice.ok_text(&["msg", "decrypt", "--from", "alice"], &for_both),
        "to both\n"
    );
    // --at: the card valid then.
    assert_eq!(
        bob.ok_text(
            &[
                "msg",
                "decrypt",
                "--from",
                "alice",
                "--at",
                "2999-01-01T00:00:00Z"
            ],
            &encrypted
        ),
        text
    );
    // A usage error (clap's format, exit code 2).
    let out = bob.run(
        &["msg", "decrypt", "--from", "alice", "--at", "yesterday"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    // Files: binary ciphertext.
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (p, m, o) = (
        server.path("plain.bin"),
        server.path("msg.bin"),
        server.path("out.bin"),
    );
    std::fs::write(&p, &plain).unwrap();
    let (ps, ms, os) = (
        p.to_str().unwrap(),
        m.to_str().unwrap(),
        o.to_str().unwrap(),
    );
    alice.ok(
        &["msg", "encrypt", "--to", "bob", "--in", ps, "--out", ms],
        b"",
    );
    let ciphertext = std::fs::read(&m).unwrap();
    assert!(ciphertext.len() > plain.len());
    assert!(
        base64_decode(&ciphertext).is_none(),
        "the file holds binary, not base64"
    );
    bob.ok(
        &["msg", "decrypt", "--from", "alice", "--in", ms, "--out", os],
        b"",
    );
    assert_eq!(std::fs::read(&o).unwrap(), plain);
    // --in file to stdout.
    assert_eq!(
        bob.ok(&["msg", "decrypt", "--from", "alice", "--in", ms], b""),
        plain
    );
    // stdin to --out file (the whole input is one message), and --in file to a base64 line.
    alice.ok(
        &["msg", "encrypt", "--to", "bob", "--out", ms],
        b"line 1\nline 2\n",
    );
    assert_eq!(
        bob.ok(&["msg", "decrypt", "--from", "alice", "--in", ms], b""),
        b"line 1\nline 2\n"
    );
    let line = alice.ok_text(&["msg", "encrypt", "--to", "bob", "--in", ps], "");
    assert_eq!(line.lines().count(), 1);
    bob.ok(
        &["msg", "decrypt", "--from", "alice", "--out", os],
        line.as_bytes(),
    );
    assert_eq!(
        std::fs::read(&o).unwrap(),
        [plain.as_slice(), b"\n"].concat()
    );

    // Errors: the wrong sender, one line on stderr, no output file.
    std::fs::remove_file(&o).unwrap();
    let err = bob.fails(&["msg", "decrypt", "--from", "bob"], encrypted.as_bytes());
    assert!(err.contains("line 1"), "{err}");
    bob.fails(
        &["msg", "decrypt", "--from", "bob", "--in", ms, "--out", os],
        b"",
    );
    assert!(!o.exists());
    bob.fails(&["msg", "decrypt", "--from", "alice"], b"not base64!\n");
    alice.fails(&["msg", "encrypt", "--to", "nobody"], b"x\n");

    // Backup, cleanup, restore: decrypting still works.
    bob.ok(&["user", "backup", "--password-stdin"], b"correct horse\n");
    assert!(bob
        .fails(&["user", "backup", "--password-stdin"], b"correct horse\n")
        .contains("already exists"));
    bob.ok(&["user", "cleanup"], b"");
    assert!(bob
        .fails(&["msg", "decrypt", "--from", "alice"], encrypted.as_bytes())
        .contains("no private key"));
    assert!(bob
        .fails(&["user", "restore", "--password-stdin"], b"wrong horse\n")
        .contains("password is wrong"));
    bob.fails(&["user", "restore", "--password-stdin"], b"");
    bob.ok(&["user", "restore", "--password-stdin"], b"correct horse\n");
    assert_eq!(
        bob.ok_text(&["msg", "decrypt", "--from", "alice"], &encrypted),
        text
    );

    // change-password: old then new on stdin; then a second device restores with the new one.
    bob.ok(
        &["user", "change-password", "--password-stdin"],
        b"correct horse\nbattery staple\n",
    );
    let bob2 = User {
        home: server.path("home-bob-device2"),
        ..server.user("bob")
    };
    bob2.fails(&["user", "restore", "--password-stdin"], b"correct horse\n");
    bob2.ok(
        &["user", "restore", "--password-stdin"],
        b"battery staple\n",
    );
    assert_eq!(
        bob2.ok_text(&["msg", "decrypt", "--from", "alice"], &encrypted),
        text
    );

    // Named backups and reset-backup.
    alice.ok(
        &["user", "backup", "--key-name", "laptop", "--password-stdin"],
        b"pw1\n",
    );
    alice.ok(&["user", "reset-backup", "--key-name", "laptop"], b"");
    alice.ok(&["user", "cleanup"], b"");
    assert!(alice
        .fails(
            &[
                "user",
                "restore",
                "--key-name",
                "laptop",
                "--password-stdin"
            ],
            b"pw1\n"
        )
        .contains("no backup"));
    bob.ok(&["user", "reset-backup"], b"");

    // Without --password-stdin and without a terminal: a clear error, not a hang.
    // (Only checked where this process has no terminal either, or the child would prompt.)
    if std::fs::File::open("/dev/tty").is_err() {
        let err = bob.fails(&["user", "backup"], b"from stdin\n");
        assert!(err.contains("--password-stdin"), "{err}");
    }

    // Rotation after losing the key: older messages verify with --at (when they were sent).
    std::thread::sleep(Duration::from_millis(1100)); // the new card is a second newer
    let rotated = alice.ok_text(&["user", "rotate"], "");
    let found: serde_json::Value =
        serde_json::from_str(&bob.ok_text(&["user", "find", "alice"], "")).unwrap();
    assert_eq!(found[0]["card_id"], rotated.trim());
    assert_eq!(found[0]["previous_card_id"], alice_card.trim());
    assert_eq!(found[0]["previous_card"]["card_id"], alice_card.trim());
    bob.fails(&["msg", "decrypt", "--from", "alice"], encrypted.as_bytes());
    let at = rfc3339(alice_created);
    assert_eq!(
        bob.ok_text(
            &["msg", "decrypt", "--from", "alice", "--at", &at],
            &encrypted
        ),
        text
    );
    let after = alice.ok_text(&["msg", "encrypt", "--to", "bob"], "after rotation\n");
    assert_eq!(
        bob.ok_text(&["msg", "decrypt", "--from", "alice"], &after),
        "after rotation\n"
    );
    alice.ok(&["user", "unregister"], b"");
    bob.fails(&["user", "find", "alice"], b"");
    assert_ne!(alice_card, "");
}

/// Unix seconds as RFC 3339 UTC (Howard Hinnant's civil_from_days).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn base64_decode(data: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim_ascii())
        .ok()
}

#[test]
fn groups() {
    let server = Server::start();
    let (alice, bob, carol) = (
        server.user("alice"),
        server.user("bob"),
        server.user("carol"),
    );
    for u in [&alice, &bob, &carol] {
        u.ok(&["user", "register"], b"");
    }
    let g = "g1-xxxxxxxxxx";
    alice.ok(&["group", "create", g, "--with", "bob"], b"");
    assert!(alice
        .fails(&["group", "create", "short", "--with", "bob"], b"")
        .contains("group"));
    bob.fails(&["group", "encrypt", g], b"x\n"); // not loaded yet
    bob.ok(&["group", "load", g, "--initiator", "alice"], b"");
    carol.fails(&["group", "load", g, "--initiator", "alice"], b"");

    let text = "hello group\nline two\n";
    let encrypted = alice.ok_text(&["group", "encrypt", g], text);
    assert_eq!(encrypted.lines().count(), 2);
    assert_eq!(
        bob.ok_text(&["group", "decrypt", g, "--from", "alice"], &encrypted),
        text
    );
    let reply = bob.ok_text(&["group", "encrypt", g], "hi alice\n");
    assert_eq!(
        alice.ok_text(&["group", "decrypt", g, "--from", "bob"], &reply),
        "hi alice\n"
    );
    bob.fails(
        &["group", "decrypt", g, "--from", "bob"],
        encrypted.as_bytes(),
    );

    // Files.
    let (m, o) = (server.path("g.bin"), server.path("g.out"));
    let (ms, os) = (m.to_str().unwrap(), o.to_str().unwrap());
    alice.ok(
        &["group", "encrypt", g, "--out", ms],
        b"binary\x00\xff data",
    );
    bob.ok(
        &[
            "group", "decrypt", g, "--from", "alice", "--in", ms, "--out", os,
        ],
        b"",
    );
    assert_eq!(std::fs::read(&o).unwrap(), b"binary\x00\xff data");

    // Add carol; only the initiator may.
    bob.fails(&["group", "add", g, "--member", "carol"], b"");
    alice.ok(&["group", "add", g, "--member", "carol"], b"");
    carol.ok(&["group", "load", g, "--initiator", "alice"], b"");
    assert_eq!(
        carol.ok_text(&["group", "decrypt", g, "--from", "alice"], &encrypted),
        text
    );

    // Remove carol: a new epoch; bob's stored copy is updated on demand.
    alice.ok(&["group", "remove", g, "--member", "carol"], b"");
    let later = alice.ok_text(&["group", "encrypt", g], "after removal\n");
    assert_eq!(
        bob.ok_text(&["group", "decrypt", g, "--from", "alice"], &later),
        "after removal\n"
    );
    carol.fails(
        &["group", "decrypt", g, "--from", "alice"],
        later.as_bytes(),
    );
    carol.fails(&["group", "update", g], b"");
    bob.ok(&["group", "update", g], b"");

    // re-add after bob rotated his key.
    bob.ok(&["user", "cleanup"], b"");
    bob.ok(&["user", "rotate"], b"");
    alice.ok(&["group", "re-add", g, "--member", "bob"], b"");
    bob.ok(&["group", "load", g, "--initiator", "alice"], b"");
    assert_eq!(
        bob.ok_text(&["group", "decrypt", g, "--from", "alice"], &later),
        "after removal\n"
    );

    alice.ok(&["group", "delete", g], b"");
    alice.fails(&["group", "encrypt", g], b"x\n");
    bob.fails(&["group", "load", g, "--initiator", "alice"], b"");
}

#[test]
fn token_command() {
    let server = Server::start();
    let token = format!(
        "'{}' token --app-credentials '{}' --identity",
        bin().display(),
        server.creds.display()
    );
    let alice = server.user("alice");
    alice.ok(&["user", "register"], b"");
    let carol = User {
        auth: vec!["--token-command".into(), format!("{token} carol")],
        ..server.user("carol")
    };
    let card = carol.ok_text(&["user", "register"], "");
    assert_eq!(card.trim().len(), 64);
    let found = carol.ok_text(&["user", "find", "alice", "carol"], "");
    assert!(found.contains("\"alice\"") && found.contains("\"carol\""));
    let msg = alice.ok_text(&["msg", "encrypt", "--to", "carol"], "via token command\n");
    assert_eq!(
        carol.ok_text(&["msg", "decrypt", "--from", "alice"], &msg),
        "via token command\n"
    );

    // --identity is passed to the command as $SEALKIT_IDENTITY, and checked against the token.
    let by_env = User {
        auth: vec![
            "--token-command".into(),
            format!("{token} \"$SEALKIT_IDENTITY\""),
            "--identity".into(),
            "carol".into(),
        ],
        ..server.user("carol")
    };
    by_env.ok(&["msg", "decrypt", "--from", "alice"], msg.as_bytes());
    let mismatch = User {
        auth: vec![
            "--token-command".into(),
            format!("{token} carol"),
            "--identity".into(),
            "alice".into(),
        ],
        ..server.user("carol")
    };
    assert!(mismatch
        .fails(&["user", "find", "alice"], b"")
        .contains("not for --identity"));

    // A failing command: its last stderr line, on one line.
    let failing = User {
        auth: vec![
            "--token-command".into(),
            "echo first >&2; echo 'no session' >&2; exit 3".into(),
        ],
        ..server.user("carol")
    };
    assert!(failing
        .fails(&["user", "find", "alice"], b"")
        .contains("no session"));
    let garbage = User {
        auth: vec!["--token-command".into(), "echo not-a-jwt".into()],
        ..server.user("carol")
    };
    garbage.fails(&["user", "find", "alice"], b"");
    // Offline: cached cards still encrypt and verify; what needs the server fails at once.
    server.stop();
    let offline = alice.ok_text(&["msg", "encrypt", "--to", "carol"], "offline\n");
    assert_eq!(
        carol.ok_text(&["msg", "decrypt", "--from", "alice"], &offline),
        "offline\n"
    );
    assert!(carol
        .fails(&["user", "find", "nobody"], b"")
        .contains("unreachable"));
    assert!(carol
        .fails(&["user", "backup", "--password-stdin"], b"pw\n")
        .contains("reach"));

    let none = User {
        auth: vec![],
        ..server.user("carol")
    };
    assert!(none
        .fails(&["user", "find", "alice"], b"")
        .contains("--app-credentials"));
}
