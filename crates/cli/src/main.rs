//! `sealkit`: Virgil-compatible keys, signatures and encryption from the terminal.
//!
//! This file is the edge: it parses the arguments (`args.rs`), runs one command (`cmd/`), and
//! turns its typed error (`error.rs`) into one line on stderr and exit status 1. Input/output plumbing lives in `io.rs`,
//! key arguments in `keyarg.rs`, the SDK setup shared by the client commands in `sdk.rs`.

mod args;
mod cmd;
mod common;
mod error;
mod io;
mod keyarg;
mod messages;
mod sdk;
mod time;

use args::{Cli, Command};
use clap::Parser;
use error::{one_line, Result};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sealkit: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Key(k) => cmd::crypto::key_command(k)?,
        Command::Sign(a) => cmd::crypto::sign(a)?,
        Command::Verify(a) => return cmd::crypto::verify(a),
        Command::Encrypt(a) => cmd::crypto::encrypt(a)?,
        Command::Decrypt(a) => cmd::crypto::decrypt(a)?,
        Command::Serve(a) => cmd::server::serve(a)?,
        Command::App(a) => cmd::server::app(a)?,
        Command::Token(a) => cmd::token::token(&cli.client, a)?,
        Command::Backend(a) => cmd::backend::backend(&cli.client, a)?,
        Command::Chat(a) => cmd::chat::chat(&cli.client, a)?,
        Command::User(a) => cmd::user::user(&cli.client, a)?,
        Command::Msg(a) => cmd::msg::msg(&cli.client, a)?,
        Command::Group(a) => cmd::group::group(&cli.client, a)?,
        Command::Kt(a) => cmd::kt::kt(&cli.client, a)?,
        Command::Ratchet(a) => cmd::ratchet::ratchet(&cli.client, a)?,
    }
    Ok(ExitCode::SUCCESS)
}
