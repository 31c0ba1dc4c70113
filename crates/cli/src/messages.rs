//! Messages in and out of the `msg` and `group` commands: binary ciphertext in files (`--in` /
//! `--out`), base64 text on stdin / stdout, one message per line.

use crate::args::InOut;
use crate::error::{CliError, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// One line of text input: the bytes without the line end.
fn lines_of(reader: impl BufRead) -> impl Iterator<Item = Result<Vec<u8>>> {
    reader.split(b'\n').map(|line| {
        let mut line = line.map_err(CliError::ReadInput)?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    })
}

fn read_all(path: Option<&Path>) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    match path {
        Some(p) => {
            File::open(p)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(|source| CliError::read(p, source))?;
        }
        None => {
            io::stdin()
                .lock()
                .read_to_end(&mut data)
                .map_err(CliError::ReadStdin)?;
        }
    }
    Ok(data)
}

fn decode_line(line: &[u8], n: usize) -> Result<Vec<u8>> {
    STANDARD
        .decode(line.trim_ascii())
        .map_err(|source| CliError::LineNotBase64 { line: n, source })
}

/// Encrypts with `encrypt` (one message at a time): stdin lines to stdout lines, or the whole
/// input into one message.
pub(crate) async fn encrypt_messages<F, Fut>(io: &InOut, mut encrypt: F) -> Result<()>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = sealkit::Result<Vec<u8>>>,
{
    match (&io.input, &io.output) {
        (None, None) => {
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            for line in lines_of(io::stdin().lock()) {
                let message = encrypt(line?).await?;
                writeln!(out, "{}", STANDARD.encode(message)).map_err(CliError::WriteStdout)?;
            }
            out.flush().map_err(CliError::WriteStdout)
        }
        (input, output) => {
            let message = encrypt(read_all(input.as_deref())?).await?;
            crate::io::write_output(output.as_deref(), |w| {
                match output {
                    Some(_) => w.write_all(&message)?,
                    None => writeln!(w, "{}", STANDARD.encode(&message))?,
                }
                Ok(())
            })
        }
    }
}

/// Decrypts with `decrypt`: base64 lines from stdin (each plaintext followed by a newline), or
/// one binary message from `--in`.
pub(crate) async fn decrypt_messages<F, Fut>(io: &InOut, mut decrypt: F) -> Result<()>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = sealkit::Result<Vec<u8>>>,
{
    match &io.input {
        Some(path) => {
            let message = read_all(Some(path))?;
            let plaintext = Zeroizing::new(decrypt(message).await?);
            crate::io::write_output(io.output.as_deref(), |w| Ok(w.write_all(&plaintext)?))
        }
        None => {
            let mut plaintexts = Vec::new();
            for (i, line) in lines_of(io::stdin().lock()).enumerate() {
                let line = line?;
                if line.trim_ascii().is_empty() {
                    continue;
                }
                let message = decode_line(&line, i + 1)?;
                let plaintext =
                    decrypt(message)
                        .await
                        .map_err(|source| CliError::MessageOnLine {
                            line: i + 1,
                            source,
                        })?;
                plaintexts.push(Zeroizing::new(plaintext));
            }
            crate::io::write_output(io.output.as_deref(), |w| {
                for p in &plaintexts {
                    w.write_all(p)?;
                    w.write_all(b"\n")?;
                }
                Ok(())
            })
        }
    }
}

/// The input as a file of known length: `--in`, or stdin spooled to a temporary file.
pub(crate) fn input_file(path: Option<&Path>) -> Result<(File, u64)> {
    match path {
        Some(p) => {
            let file = File::open(p).map_err(|source| CliError::read(p, source))?;
            let len = file
                .metadata()
                .map_err(|source| CliError::read(p, source))?
                .len();
            Ok((file, len))
        }
        None => {
            let mut file = tempfile::tempfile().map_err(CliError::TempFile)?;
            let len = io::copy(&mut io::stdin().lock(), &mut file).map_err(CliError::ReadStdin)?;
            file.rewind()?;
            Ok((file, len))
        }
    }
}
