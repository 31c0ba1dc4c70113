//! The `sealkit` command line as a contract: `trycmd` cases under `tests/cmd/`, each a command
//! with its expected stdout, stderr and exit status. `*.trycmd` files hold the `--help` of every
//! command; `*.toml` files (with `*.in/` as their working directory) hold failures that need no
//! server. Regenerate the expected output after a deliberate change with
//! `TRYCMD=overwrite cargo test -p sealkit-cli --test cli_tests`, and review the diff.

#![allow(missing_docs)]

/// Environment variables that change what `sealkit` prints: the options' defaults (`--help`
/// shows `[env: NAME=value]`), the help width and forced colours.
const VARIABLES: [&str; 10] = [
    "SEALKIT_SERVER",
    "SEALKIT_IDENTITY",
    "SEALKIT_HOME",
    "SEALKIT_APP_CREDENTIALS",
    "SEALKIT_TOKEN_COMMAND",
    "SEALKIT_DATABASE_URL",
    "XDG_DATA_HOME",
    "COLUMNS",
    "CLICOLOR_FORCE",
    "SEALKIT_LOG",
];

#[test]
fn cli_tests() {
    // This is the only test of this binary, so nothing else reads the environment meanwhile.
    for name in VARIABLES {
        std::env::remove_var(name);
    }
    trycmd::TestCases::new()
        .case("tests/cmd/*.trycmd")
        .case("tests/cmd/*.toml");
}
