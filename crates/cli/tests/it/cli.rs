//! The `sealkit` command as a user runs it: the interface of the crypto issue, exit codes, files
//! that must not appear on failure, and round trips with the official npm packages.

use assert_cmd::Command;
use base64::Engine as _;
use std::fs;
use std::path::{Path, PathBuf};

fn sealkit(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("sealkit").unwrap();
    cmd.current_dir(dir);
    cmd
}

fn stdout(dir: &Path, args: &[&str]) -> String {
    let out = sealkit(dir)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// alice (Ed25519), bob (Curve25519) and erin (P-256) with their public keys as files.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sealkit(d)
        .args(["key", "generate", "--out", "alice.key"])
        .assert()
        .success();
    let bob = stdout(d, &["key", "generate", "--type", "curve25519"]);
    fs::write(d.join("bob.key"), &bob).unwrap();
    let erin = stdout(d, &["key", "generate", "--type", "secp256r1"]);
    fs::write(d.join("erin.key"), erin).unwrap();
    for name in ["alice", "bob", "erin"] {
        let public = stdout(d, &["key", "public", "--key", &format!("{name}.key")]);
        fs::write(d.join(format!("{name}.pub")), public).unwrap();
    }
    dir
}

#[test]
fn help_exists_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["key", "--help"],
        vec!["key", "generate", "--help"],
        vec!["key", "public", "--help"],
        vec!["key", "id", "--help"],
        vec!["sign", "--help"],
        vec!["verify", "--help"],
        vec!["encrypt", "--help"],
        vec!["decrypt", "--help"],
    ] {
        let out = stdout(dir.path(), &args);
        assert!(out.contains("Usage: sealkit"), "{args:?}: {out}");
    }
}

#[test]
fn keys_are_base64_der_and_the_private_file_is_private() {
    let dir = setup();
    let d = dir.path();
    let text = fs::read_to_string(d.join("alice.key")).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    assert_eq!(der.len(), 48, "Ed25519 PKCS#8 as virgil-crypto exports it");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.join("alice.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwrite a key.
    sealkit(d)
        .args(["key", "generate", "--out", "alice.key"])
        .assert()
        .failure();
    assert_eq!(fs::read_to_string(d.join("alice.key")).unwrap(), text);
    let public = fs::read_to_string(d.join("erin.pub")).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(public.trim())
            .unwrap()
            .len(),
        91
    );
    // Key ids: private and public key give the same; --sha256 is 32 bytes.
    let id = stdout(d, &["key", "id", "--key", "alice.key"]);
    assert_eq!(id.len(), 16);
    assert_eq!(stdout(d, &["key", "id", "--key", "alice.pub"]), id);
    assert_eq!(
        stdout(d, &["key", "id", "--key", "alice.pub", "--sha256"]).len(),
        64
    );
    // DER and PEM key files are accepted too.
    fs::write(d.join("alice.der"), &der).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    fs::write(d.join("alice.pem"), pem).unwrap();
    assert_eq!(stdout(d, &["key", "id", "--key", "alice.der"]), id);
    assert_eq!(stdout(d, &["key", "id", "--key", "alice.pem"]), id);
    // A key given inline.
    assert_eq!(stdout(d, &["key", "id", "--key", text.trim()]), id);
    // Garbage is a one-line error, not a panic.
    let out = sealkit(d)
        .args(["key", "id", "--key", "not-a-key"])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sealkit: error:"), "{err}");
}

#[test]
fn sign_and_verify_exit_codes() {
    let dir = setup();
    let d = dir.path();
    fs::write(d.join("doc"), b"the document").unwrap();
    let sig = stdout(d, &["sign", "--key", "alice.key", "--in", "doc"]);
    sealkit(d)
        .args([
            "verify",
            "--key",
            "alice.pub",
            "--signature",
            &sig,
            "--in",
            "doc",
        ])
        .assert()
        .code(0);
    sealkit(d)
        .args(["verify", "--key", "alice.pub", "--signature", &sig])
        .write_stdin("the document")
        .assert()
        .code(0);
    sealkit(d)
        .args(["verify", "--key", "alice.pub", "--signature", &sig])
        .write_stdin("another document")
        .assert()
        .code(1);
    let erin_sig = stdout(d, &["sign", "--key", "erin.key", "--in", "doc"]);
    sealkit(d)
        .args([
            "verify",
            "--key",
            "erin.pub",
            "--signature",
            &erin_sig,
            "--in",
            "doc",
        ])
        .assert()
        .code(0);
    sealkit(d)
        .args([
            "verify",
            "--key",
            "erin.pub",
            "--signature",
            &sig,
            "--in",
            "doc",
        ])
        .assert()
        .code(1);
}

#[test]
fn every_mode_round_trips_and_failures_write_nothing() {
    let dir = setup();
    let d = dir.path();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(d.join("pt"), &data).unwrap();
    let modes: [&[&str]; 5] = [
        &["--sign-with", "alice.key"],
        &["--sign-with", "alice.key", "--mode", "auth"],
        &["--sign-with", "alice.key", "--mode", "legacy", "--padding"],
        &["--mode", "plain"],
        &["--padding"],
    ];
    for (i, mode) in modes.iter().enumerate() {
        let ct = format!("ct{i}");
        let mut args = vec![
            "encrypt",
            "--to",
            "bob.pub",
            "--to",
            "erin.pub",
            "--to",
            "alice.pub",
        ];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--in", "pt", "--out", &ct]);
        sealkit(d).args(&args).assert().success();
        let signed = mode.contains(&"--sign-with");
        for key in ["bob.key", "erin.key", "alice.key"] {
            let out = format!("out{i}-{key}");
            let mut args = vec!["decrypt", "--key", key, "--in", &ct, "--out", &out];
            if signed {
                args.extend_from_slice(&["--verify-with", "alice.pub"]);
            }
            sealkit(d).args(&args).assert().success();
            assert!(
                fs::read(d.join(&out)).unwrap() == data,
                "mode {mode:?} for {key}"
            );
        }
        // Through pipes as well (stdin spools when the mode needs two passes).
        let piped = sealkit(d)
            .args(["encrypt", "--to", "bob.pub"])
            .args(*mode)
            .write_stdin(data.clone())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let mut dec = sealkit(d);
        dec.args(["decrypt", "--key", "bob.key"]);
        if signed {
            dec.args(["--verify-with", "alice.pub"]);
        }
        let back = dec
            .write_stdin(piped)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert!(back == data, "piped mode {mode:?}");
    }

    // Failures: wrong key, missing signature, wrong signer, tampering. Each exits non-zero with
    // one line on stderr and leaves no --out file behind.
    let mut tampered = fs::read(d.join("ct0")).unwrap();
    let n = tampered.len();
    tampered[n / 2] ^= 1;
    fs::write(d.join("tampered"), tampered).unwrap();
    let outsider = stdout(d, &["key", "generate"]);
    fs::write(d.join("outsider.key"), &outsider).unwrap();
    let outsider_pub = stdout(d, &["key", "public", "--key", "outsider.key"]);
    let failures: [&[&str]; 4] = [
        &["decrypt", "--key", "outsider.key", "--in", "ct0"],
        &[
            "decrypt",
            "--key",
            "bob.key",
            "--verify-with",
            "alice.pub",
            "--in",
            "ct3",
        ],
        &[
            "decrypt",
            "--key",
            "bob.key",
            "--verify-with",
            &outsider_pub,
            "--in",
            "ct0",
        ],
        &["decrypt", "--key", "bob.key", "--in", "tampered"],
    ];
    for args in failures {
        let out = sealkit(d)
            .args(args)
            .args(["--out", "must-not-exist"])
            .assert()
            .failure();
        let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            !d.join("must-not-exist").exists(),
            "{args:?} left a partial file"
        );
        // Nor does a failure print plaintext to stdout.
        let out = sealkit(d).args(args).assert().failure();
        assert!(
            out.get_output().stdout.is_empty(),
            "{args:?} printed plaintext"
        );
    }
    // No temporary files left behind either.
    let leftovers: Vec<PathBuf> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".sealkit-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Bad combinations are refused.
    sealkit(d)
        .args(["encrypt", "--to", "bob.pub", "--mode", "auth"])
        .write_stdin("x")
        .assert()
        .failure();
    sealkit(d)
        .args([
            "encrypt",
            "--to",
            "bob.pub",
            "--mode",
            "plain",
            "--sign-with",
            "alice.key",
        ])
        .write_stdin("x")
        .assert()
        .failure();
}

fn oracle(args: &[&str]) -> Option<std::process::Output> {
    if std::env::var_os("SEALKIT_SKIP_INTEROP").is_some() {
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("interop/node_modules/virgil-crypto").is_dir(),
        "run `npm ci --prefix interop` (or set SEALKIT_SKIP_INTEROP=1)"
    );
    Some(
        std::process::Command::new("node")
            .arg(root.join("interop/oracle.js"))
            .args(args)
            .output()
            .unwrap(),
    )
}

/// The CLI opens what virgil-crypto 5.1.2 made, and virgil-crypto 5.1.2 and 4.2.2 open what the
/// CLI made (a case directory in the oracle's format).
#[test]
fn cli_interoperates_with_virgil_crypto() {
    let made = tempfile::tempdir().unwrap();
    let Some(out) = oracle(&["make", "--lib", "5", "--out", made.path().to_str().unwrap()]) else {
        return;
    };
    assert!(out.status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(made.path().join("manifest.json")).unwrap()).unwrap();
    let key_file = |name: &str| {
        let k = &manifest["keys"][name];
        let path = made.path().join(format!("{name}.key"));
        fs::write(&path, k["private_key_der_b64"].as_str().unwrap()).unwrap();
        let public = made.path().join(format!("{name}.pub"));
        fs::write(&public, k["public_key_der_b64"].as_str().unwrap()).unwrap();
        (path, public)
    };
    let (_, alice_pub) = key_file("alice");
    let mut opened = 0;
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let recipient = case["recipients"][0].as_str().unwrap();
        if recipient == "frank" {
            continue;
        }
        let (key, _) = key_file(recipient);
        let ct = made.path().join(case["ciphertext_file"].as_str().unwrap());
        let out = made.path().join(format!("{name}.out"));
        let mut cmd = sealkit(made.path());
        cmd.arg("decrypt")
            .arg("--key")
            .arg(&key)
            .arg("--in")
            .arg(&ct)
            .arg("--out")
            .arg(&out);
        if case["signer"] == "alice" {
            cmd.arg("--verify-with").arg(&alice_pub);
        }
        cmd.assert().success();
        let expected =
            fs::read(made.path().join(case["plaintext_file"].as_str().unwrap())).unwrap();
        assert!(fs::read(&out).unwrap() == expected, "{name}");
        opened += 1;
    }
    assert!(opened >= 40, "{opened}");

    // The other direction: CLI-made messages in a case directory.
    let dir = setup();
    let d = dir.path();
    // carol is there so the oracle has an Ed25519 key to try as a wrong signer (virgil-crypto
    // accepts any signature when asked to verify it with an X25519 key; see manual::differences).
    let carol = stdout(d, &["key", "generate"]);
    fs::write(d.join("carol.key"), &carol).unwrap();
    let carol_pub = stdout(d, &["key", "public", "--key", "carol.key"]);
    fs::write(d.join("carol.pub"), carol_pub).unwrap();
    let mut keys = serde_json::Map::new();
    for (name, t) in [
        ("alice", "ED25519"),
        ("bob", "CURVE25519"),
        ("erin", "SECP256R1"),
        ("carol", "ED25519"),
    ] {
        keys.insert(name.into(), serde_json::json!({
            "type": t,
            "private_key_der_b64": fs::read_to_string(d.join(format!("{name}.key"))).unwrap().trim(),
            "public_key_der_b64": fs::read_to_string(d.join(format!("{name}.pub"))).unwrap().trim(),
        }));
    }
    let mut cases = Vec::new();
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(d.join("data.pt"), &data).unwrap();
    for (name, mode, extra) in [
        (
            "cli_auth",
            "sign_and_encrypt",
            vec!["--sign-with", "alice.key"],
        ),
        (
            "cli_legacy",
            "sign_then_encrypt",
            vec!["--sign-with", "alice.key", "--mode", "legacy"],
        ),
        ("cli_plain_padded", "encrypt", vec!["--padding"]),
    ] {
        let ct = format!("{name}.ct");
        let mut args = vec![
            "encrypt", "--to", "bob.pub", "--to", "erin.pub", "--in", "data.pt", "--out", &ct,
        ];
        args.extend(extra.iter().copied());
        sealkit(d).args(&args).assert().success();
        cases.push(serde_json::json!({
            "name": name, "mode": mode, "api": "oneshot",
            "padding": mode != "sign_then_encrypt",
            "signer": if mode == "encrypt" { None } else { Some("alice") },
            "recipients": ["bob", "erin"], "plaintext_file": "data.pt", "ciphertext_file": ct,
        }));
    }
    let manifest =
        serde_json::json!({"producer": "sealkit CLI", "keys": keys, "cases": cases, "groups": []});
    fs::write(
        d.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    for lib in ["5", "4"] {
        let out = oracle(&["check", "--lib", lib, "--dir", d.to_str().unwrap()]).unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "virgil-crypto {lib}: {summary}");
    }
}
