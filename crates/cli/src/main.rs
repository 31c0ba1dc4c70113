//! `sealkit`: Virgil-compatible keys, signatures and encryption from the terminal.
//!
//! This file is the edge: it parses the arguments (`args.rs`), runs one command (`cmd/`), and
//! maps an error to one line on stderr and an exit code. Input/output plumbing lives in `io.rs`,
//! key arguments in `keyarg.rs`, the SDK setup shared by the client commands in `sdk.rs`.

mod args;
mod cmd;
mod common;
mod io;
mod keyarg;
mod messages;
mod sdk;
mod time;

use anyhow::Result;
use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("sealkit: error: {}", msg.join(": "));
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
    }
    Ok(ExitCode::SUCCESS)
}
