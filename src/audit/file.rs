//! JSON-lines file sink.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};

thread_local! {
    // One encoding buffer per thread: the hot path encodes without allocating.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends one JSON object per line to a file.
///
/// The file is opened in append mode (created with mode `0600` on Unix: audit records name
/// callers) and each record goes out in a single `write` of the complete line, so concurrent
/// writers never interleave and a crash leaves at most one partial last line. Records reach the
/// operating system before `record` returns; they are not fsynced one by one (a per-record
/// fsync costs about 150 µs on this class of machine).
#[derive(Debug)]
pub struct JsonLinesSink {
    file: File,
    path: PathBuf,
}

impl JsonLinesSink {
    /// Opens (or creates) `path` for appending.
    ///
    /// # Errors
    /// The I/O error when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path)?;
        Ok(JsonLinesSink { file, path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        BUF.with(|cell| {
            // A sink called re-entrantly on one thread (it never is) gets a fresh buffer
            // instead of a panic.
            let mut fresh = Vec::new();
            let mut guard = cell.try_borrow_mut().ok();
            let buf = guard.as_deref_mut().unwrap_or(&mut fresh);
            buf.clear();
            serde_json::to_writer(&mut *buf, event).map_err(|_| AuditError::Encode)?;
            buf.push(b'\n');
            (&self.file).write_all(buf)?;
            Ok(())
        })
    }
}

#[async_trait]
impl AuditSink for JsonLinesSink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.write(event)
    }
}
