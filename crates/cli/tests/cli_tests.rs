//! The `sealkit` command line as a contract: `trycmd` cases under `tests/cmd/`, each a command
//! with its expected stdout, stderr and exit status. `*.trycmd` files hold the `--help` of every
//! command; `*.toml` files hold exit codes and failures that need no server (their working
//! directory `tests/cmd/fixtures/` holds a throwaway test key and a signature). Regenerate the
//! expected output after a deliberate change with
//! `TRYCMD=overwrite cargo test -p sealkit-cli --test cli_tests`, and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "it/common/mod.rs"]
mod common;

/// Besides the options' variables (whose values `--help` shows as `[env: NAME=value]`): the help
/// width, forced colours and the log filter.
const OUTPUT_VARIABLES: [&str; 3] = ["COLUMNS", "CLICOLOR_FORCE", "SEALKIT_LOG"];

#[test]
fn cli_tests() {
    // This is the only test of this binary, so nothing else reads the environment meanwhile.
    for name in common::SEALKIT_ENV.into_iter().chain(OUTPUT_VARIABLES) {
        std::env::remove_var(name);
    }
    trycmd::TestCases::new()
        .case("tests/cmd/*.trycmd")
        .case("tests/cmd/*.toml");
}
