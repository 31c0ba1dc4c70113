//! Input and output plumbing: rereadable inputs, staged outputs that appear only when complete,
//! and a progress bar on terminals.

use crate::error::{CliError, KeyFileError, Result};
use sealkit_crypto::Stage;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 64 << 10;
/// Inputs smaller than this finish too quickly for a progress bar to be useful.
const PROGRESS_MIN: u64 = 8 << 20;

/// Where the data comes from.
pub enum Input {
    /// A regular file, read as many times as needed.
    File(PathBuf, u64),
    /// Standard input copied to an anonymous temporary file, so it can be read twice.
    Spooled(File, u64),
    /// Standard input, read once.
    Stdin,
}

impl Input {
    /// Opens `path` (or stdin). With `rereadable`, a non-seekable input is spooled to disk (the
    /// memory use stays constant whatever the size).
    pub fn open(path: Option<&Path>, rereadable: bool) -> Result<Self> {
        match path {
            Some(p) => {
                let meta = std::fs::metadata(p).map_err(|source| CliError::read(p, source))?;
                if meta.is_file() {
                    return Ok(Self::File(p.to_owned(), meta.len()));
                }
                if !rereadable {
                    return Ok(Self::File(p.to_owned(), 0));
                }
                let mut src = File::open(p).map_err(|source| CliError::read(p, source))?;
                Self::spool(&mut src)
            }
            None if rereadable => Self::spool(&mut io::stdin().lock()),
            None => Ok(Self::Stdin),
        }
    }

    fn spool(src: &mut impl Read) -> Result<Self> {
        let mut file = tempfile::tempfile().map_err(CliError::TempFile)?;
        let len = io::copy(src, &mut file).map_err(CliError::ReadInput)?;
        Ok(Self::Spooled(file, len))
    }

    /// A fresh reader from the start of the input.
    pub fn reader(&self) -> Result<Box<dyn Read + '_>> {
        Ok(match self {
            Self::File(p, _) => {
                Box::new(File::open(p).map_err(|source| CliError::read(p, source))?)
            }
            Self::Spooled(f, _) => {
                let mut f = f.try_clone()?;
                f.rewind()?;
                Box::new(f)
            }
            Self::Stdin => Box::new(io::stdin().lock()),
        })
    }

    /// The input's length, when it is known without reading it.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            Self::File(_, len) | Self::Spooled(_, len) => Some(*len),
            Self::Stdin => None,
        }
    }

    /// The input's length; only for rereadable inputs.
    pub fn len(&self) -> Result<u64> {
        self.known_len().ok_or(CliError::UnknownInputLength)
    }
}

/// Calls `f` with every chunk of a file (or stdin).
pub fn for_each_chunk(path: Option<&Path>, f: impl FnMut(&[u8])) -> Result<()> {
    let input = Input::open(path, false)?;
    let reader = input.reader()?;
    for_each_chunk_of(reader, f)
}

/// Calls `f` with every chunk a reader yields.
pub fn for_each_chunk_of(mut reader: impl Read, mut f: impl FnMut(&[u8])) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::ReadInput(e)),
        };
        f(&buf[..n]);
    }
}

/// Wraps a reader in a progress bar when stderr is a terminal and the input is large or of
/// unknown size.
pub fn with_progress<'a>(reader: Box<dyn Read + 'a>, len: Option<u64>) -> Box<dyn Read + 'a> {
    if !io::stderr().is_terminal() || len.is_some_and(|l| l < PROGRESS_MIN) {
        return reader;
    }
    let bar = match len {
        Some(l) => indicatif::ProgressBar::new(l),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Box::new(bar.wrap_read(reader))
}

/// Runs `f` on the output: stdout, or a temporary file beside `path` that replaces `path` only
/// once `f` succeeded (so a failed run leaves no partial file).
pub fn write_output(
    path: Option<&Path>,
    f: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    match path {
        None => {
            let stdout = io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            f(&mut w)?;
            w.flush().map_err(CliError::WriteStdout)
        }
        Some(p) => {
            let tmp = temp_beside(p)?;
            let mut w = BufWriter::new(tmp);
            f(&mut w)?;
            let tmp = w.into_inner().map_err(|e| e.into_error())?;
            tmp.persist(p)
                .map(drop)
                .map_err(|source| CliError::Persist {
                    path: p.to_owned(),
                    source,
                })
        }
    }
}

fn temp_beside(p: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".sealkit-")
        .tempfile_in(dir)
        .map_err(|source| CliError::CreateIn {
            dir: dir.to_owned(),
            source,
        })
}

/// A decryption stage: plaintext goes to a temporary file (mode 0600) that becomes `--out`, or is
/// copied to stdout, only on commit. Dropping it uncommitted deletes the file.
pub struct StagedOutput {
    target: Option<PathBuf>,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl StagedOutput {
    pub fn new(target: Option<&Path>) -> Result<Self> {
        let tmp = match target {
            Some(p) => temp_beside(p)?,
            None => tempfile::NamedTempFile::new().map_err(CliError::TempFile)?,
        };
        Ok(Self {
            target: target.map(Path::to_owned),
            file: BufWriter::new(tmp),
        })
    }
}

impl Write for StagedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Stage for StagedOutput {
    type Output = ();

    fn commit(self) -> io::Result<()> {
        let tmp = self.file.into_inner().map_err(|e| e.into_error())?;
        match self.target {
            Some(p) => tmp.persist(p).map(drop).map_err(|e| e.error),
            None => {
                let mut f = tmp.reopen()?;
                let stdout = io::stdout();
                let mut out = stdout.lock();
                io::copy(&mut f, &mut out)?;
                out.flush()
            }
        }
    }
}

/// Creates `path` readable by its owner only (mode 0600); never replaces an existing file.
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes `data` and a newline into a new file and syncs it.
fn write_line_synced(file: &mut File, data: &[u8]) -> io::Result<()> {
    file.write_all(data)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Creates `path` with mode 0600 and writes a secret into it; refuses to replace a file.
pub fn write_secret_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = create_private_file(path)?;
    write_line_synced(&mut file, data)
}

/// [`write_secret_file`] for a private key, saying why the file could not be created.
pub fn write_key_file(path: &Path, data: &[u8]) -> Result<()> {
    let written = match create_private_file(path) {
        Ok(mut file) => write_line_synced(&mut file, data).map_err(KeyFileError::Write),
        Err(e) if path.exists() => Err(KeyFileError::Exists(e)),
        Err(e) => Err(KeyFileError::Create(e)),
    };
    written.map_err(|source| CliError::WriteKeyFile {
        path: path.to_owned(),
        source,
    })
}
