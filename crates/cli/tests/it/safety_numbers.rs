//! `sealkit user safety-number` and `sealkit user verify` against `sealkit serve` as a process:
//! both users see the same digits, a wrong number pins nothing, and once bob verified alice, her
//! key rotation makes `user find` and `msg encrypt` fail with "changed" until bob accepts it
//! (`--accept-change`) or verifies the new number. Pins survive `user cleanup`.

use crate::common;

use crate::common::bin;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A user of one server: `--app-credentials`, `--identity` and a home of their own.
struct User {
    url: String,
    creds: PathBuf,
    identity: &'static str,
    home: PathBuf,
}

impl User {
    fn new(dir: &Path, url: &str, creds: &Path, identity: &'static str) -> Self {
        Self {
            url: url.to_owned(),
            creds: creds.to_owned(),
            identity,
            home: dir.join(format!("home-{identity}")),
        }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = assert_cmd::Command::new(bin());
        for var in common::SEALKIT_ENV {
            cmd.env_remove(var);
        }
        cmd.args(args)
            .args(["--server", &self.url, "--identity", self.identity])
            .arg("--app-credentials")
            .arg(&self.creds)
            .arg("--home")
            .arg(&self.home)
            .write_stdin(stdin.as_bytes().to_vec())
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{} sealkit {args:?} failed: {}",
            self.identity,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires failure (exit 1, one line on stderr, nothing on stdout); returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, "");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} sealkit {args:?}",
            self.identity
        );
        assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
        err
    }

    fn safety_number(&self, with: &str) -> String {
        let number = self.ok(&["user", "safety-number", with], "");
        let number = number.trim_end_matches('\n').to_owned();
        // 12 groups of 5 digits, one space between them.
        let groups: Vec<&str> = number.split(' ').collect();
        assert_eq!(groups.len(), 12, "{number:?}");
        assert!(groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        number
    }
}

#[test]
fn verify_pin_rotate_refuse_accept() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = common::sqlite_deployment(dir.path());
    let user = |identity| User::new(dir.path(), &server.url, &creds, identity);
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    for u in [&alice, &bob, &carol] {
        u.ok(&["user", "register"], "");
    }

    // Both sides see the same digits; another pair other ones.
    let number = alice.safety_number("bob");
    assert_eq!(bob.safety_number("alice"), number);
    assert_ne!(carol.safety_number("alice"), number);
    assert!(alice
        .fails(&["user", "safety-number", "alice"])
        .contains("not with yourself"));

    // A wrong number pins nothing; a malformed one is refused.
    let mut wrong: Vec<char> = number.chars().collect();
    wrong[0] = if wrong[0] == '9' { '0' } else { '9' };
    let wrong: String = wrong.into_iter().collect();
    let err = bob.fails(&["user", "verify", "alice", "--safety-number", &wrong]);
    assert!(err.contains("does not match"), "{err}");
    assert!(bob
        .fails(&["user", "verify", "alice", "--safety-number", "12345"])
        .contains("60 digits"));
    // --accept-change needs an earlier verification.
    assert!(bob
        .fails(&["user", "verify", "alice", "--accept-change"])
        .contains("not a verified contact"));
    // One of --safety-number and --accept-change (a usage error, exit 2).
    assert_eq!(
        bob.run(&["user", "verify", "alice"], "").status.code(),
        Some(2)
    );

    // The right number, with or without spaces, pins alice's key.
    let alice_card = bob.ok(&["user", "verify", "alice", "--safety-number", &number], "");
    let compact = number.replace(' ', "");
    assert_eq!(
        bob.ok(
            &["user", "verify", "alice", "--safety-number", &compact],
            ""
        ),
        alice_card
    );
    bob.ok(&["user", "find", "alice"], "");
    let before = bob.ok(&["msg", "encrypt", "--to", "alice"], "before\n");
    assert_eq!(
        alice.ok(&["msg", "decrypt", "--from", "bob"], &before),
        "before\n"
    );

    // Alice replaces her key (the server could equally hand out a key of its own).
    alice.ok(&["user", "cleanup"], "");
    std::thread::sleep(Duration::from_millis(1100)); // the new card is a second newer
    let rotated = alice.ok(&["user", "rotate"], "");
    assert_ne!(rotated, alice_card);

    // Bob, who verified her, is refused; carol, who did not, is not.
    for args in [
        &["user", "find", "alice"][..],
        &["user", "find", "carol", "alice"][..],
        &["msg", "encrypt", "--to", "alice"][..],
        &["msg", "encrypt", "--to", "carol,alice"][..],
    ] {
        let err = bob.fails(args);
        assert!(err.contains("alice changed"), "{args:?}: {err}");
    }
    carol.ok(&["user", "find", "alice"], "");
    carol.ok(&["msg", "encrypt", "--to", "alice"], "hi\n");
    bob.ok(&["msg", "encrypt", "--to", "carol"], "hi\n");

    // The old number no longer matches, and the new one differs from it.
    let new_number = alice.safety_number("bob");
    assert_ne!(new_number, number);
    assert_eq!(bob.safety_number("alice"), new_number);
    assert!(bob
        .fails(&["user", "verify", "alice", "--safety-number", &number])
        .contains("does not match"));
    bob.fails(&["user", "find", "alice"]);

    // Bob accepts the change: find and encrypt work again, for the new key.
    assert_eq!(
        bob.ok(&["user", "verify", "alice", "--accept-change"], ""),
        rotated
    );
    let found: serde_json::Value =
        serde_json::from_str(&bob.ok(&["user", "find", "alice"], "")).unwrap();
    assert_eq!(found[0]["card_id"], rotated.trim());
    let after = bob.ok(&["msg", "encrypt", "--to", "alice"], "after\n");
    assert_eq!(
        alice.ok(&["msg", "decrypt", "--from", "bob"], &after),
        "after\n"
    );

    // Pins outlive `cleanup` (which empties the card cache): after another rotation of
    // alice's key, bob is still refused.
    bob.ok(&["user", "cleanup"], "");
    alice.ok(&["user", "cleanup"], "");
    std::thread::sleep(Duration::from_millis(1100));
    let rotated_again = alice.ok(&["user", "rotate"], "");
    assert!(bob.fails(&["user", "find", "alice"]).contains("changed"));
    // Verifying the new number is the other way to accept it (bob has a new key by then).
    bob.ok(&["user", "rotate"], "");
    let third = alice.safety_number("bob");
    assert_eq!(
        bob.ok(&["user", "verify", "alice", "--safety-number", &third], ""),
        rotated_again
    );
    bob.ok(&["user", "find", "alice"], "");
}
