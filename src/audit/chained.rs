//! The hash-chained JSON-lines file sink: a writer thread fed by a bounded queue.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ed25519_dalek::{Signer, SigningKey};
use tokio::sync::{mpsc, oneshot};

use super::alert::{AlertHook, AlertKind, SecurityAlert};
use super::chain::{GENESIS, checkpoint_message, key_id, record_line};
use super::{AuditError, AuditEvent, AuditSink, canonical};

/// When the file sink makes records durable (fsync) before acknowledging them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// fsync after every write batch; nothing is acknowledged before it is on disk. Concurrent
    /// records that queue up while a batch is written share the next fsync.
    Always,
    /// Group commit: at most one fsync per interval; a record is acknowledged after the fsync
    /// that covers it, so it waits at most the interval plus one fsync.
    GroupCommit(Duration),
    /// Acknowledge once the record is written to the operating system (it survives the process
    /// being killed, not a power cut); fsync only at checkpoints, rotation and shutdown.
    OsBuffered,
}

/// How a [`FileSink`] writes. Start from [`FileSinkConfig::new`]; the defaults are
/// [`FsyncPolicy::Always`], rotation at 64 MiB, a 4096-record queue, and (with a signing key) a checkpoint every
/// 10,000 records or 60 seconds, and at shutdown.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    path: PathBuf,
    fsync: FsyncPolicy,
    rotate_bytes: Option<u64>,
    queue: usize,
    checkpoint_every: Option<u64>,
    checkpoint_interval: Option<Duration>,
    signing_key: Option<SigningKey>,
    alert: Option<Arc<dyn AlertHook>>,
}

impl FileSinkConfig {
    /// The defaults, writing to `path` (rotated files are `path.1`, `path.2`, ...; signed
    /// checkpoints are also appended to `path.checkpoints`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSinkConfig {
            path: path.into(),
            fsync: FsyncPolicy::Always,
            rotate_bytes: Some(64 * 1024 * 1024),
            queue: 4096,
            checkpoint_every: Some(10_000),
            checkpoint_interval: Some(Duration::from_secs(60)),
            signing_key: None,
            alert: None,
        }
    }

    /// Sets the fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Starts a new file once the current one reaches `bytes` (`None`: never). The chain goes
    /// on across files: the first record of a new file links to the last of the previous one.
    pub fn rotate_at(mut self, bytes: Option<u64>) -> Self {
        self.rotate_bytes = bytes;
        self
    }

    /// How many records may wait for the writer; past that, `record` waits for room
    /// (back-pressure), it never drops.
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.queue = records.max(1);
        self
    }

    /// Writes a signed checkpoint after this many records (`None`: not by count).
    pub fn checkpoint_every(mut self, records: Option<u64>) -> Self {
        self.checkpoint_every = records.filter(|n| *n > 0);
        self
    }

    /// Writes a signed checkpoint when this long has passed since the last one and records
    /// came in since (`None`: not by time).
    pub fn checkpoint_interval(mut self, interval: Option<Duration>) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Signs checkpoints with this key. Without one the log is chained but has no checkpoints,
    /// so a rewrite of the whole chain cannot be told from the original.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// Calls `hook` when the sink cannot write, or when the log it reopens does not verify.
    pub fn alert_hook(mut self, hook: Arc<dyn AlertHook>) -> Self {
        self.alert = Some(hook);
        self
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

enum Msg {
    Event {
        body: Vec<u8>,
        ack: oneshot::Sender<Result<u64, AuditError>>,
    },
    Close {
        ack: oneshot::Sender<Result<u64, AuditError>>,
    },
}

/// The acknowledgement of one submitted record: resolves to the record's sequence number once
/// it is durable under the [`FsyncPolicy`], or to the error that kept it from being written.
#[derive(Debug)]
#[must_use = "a receipt must be awaited to know the record was written"]
pub struct Receipt(oneshot::Receiver<Result<u64, AuditError>>);

impl Future for Receipt {
    type Output = Result<u64, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(AuditError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Appends hash-chained JSON lines (see [`chain`](super::chain_hash) for the format) from a
/// writer thread fed by a bounded queue.
///
/// [`record`](AuditSink::record) encodes the event on the caller's task, waits for room in the
/// queue (back-pressure: never a silent drop) and returns once the writer has made the record
/// durable under the [`FsyncPolicy`], or with the error that kept it from being written. The
/// writer batches whatever is queued into one `write`, so concurrent callers share writes and
/// fsyncs. A failed write is cut back off the file, so the chain on disk stays whole.
///
/// Reopening an existing log continues its chain: a torn last line (the process was killed
/// mid-write; that record was never acknowledged) is cut off, and a current file whose records
/// do not link or hash correctly (checked whole up to 256 MiB) raises
/// [`AlertKind::TamperDetected`]; the sink still opens, and `verify` names the record.
///
/// ```
/// use mcp_security::audit::{FileSink, FileSinkConfig, FsyncPolicy, generate_signing_key};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let sink = FileSink::open(
///     FileSinkConfig::new(dir.path().join("audit.jsonl"))
///         .fsync(FsyncPolicy::Always)
///         .signing_key(generate_signing_key()?),
/// )?;
/// # drop(sink);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FileSink {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl FileSink {
    /// Opens (or continues) the log and starts its writer thread.
    ///
    /// # Errors
    /// The I/O error when the file cannot be opened or its last record read.
    pub fn open(config: FileSinkConfig) -> Result<Self, AuditError> {
        let path = config.path.clone();
        let writer = Writer::open(config)?;
        let (tx, rx) = mpsc::channel(writer.config.queue);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("mcp-security-audit".into())
            .spawn(move || rt.block_on(writer.run(rx)))?;
        Ok(FileSink {
            tx: Some(tx),
            thread: Mutex::new(Some(thread)),
            path,
        })
    }

    /// The sink already writing `config`'s file in this process, or a new one. Two sinks on
    /// one file would fork its chain; layers built from a reloaded policy share one instead (the
    /// first one's settings stay in force until every layer using it is dropped).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn shared(config: FileSinkConfig) -> Result<Arc<Self>, AuditError> {
        static OPEN: Mutex<Vec<(PathBuf, std::sync::Weak<FileSink>)>> = Mutex::new(Vec::new());
        let key = std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone());
        let mut open = match OPEN.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(sink) = open
            .iter()
            .find(|(p, _)| *p == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(sink);
        }
        let sink = Arc::new(FileSink::open(config)?);
        open.push((key, Arc::downgrade(&sink)));
        Ok(sink)
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `event`, waiting for room in the queue, and returns the receipt to await for its
    /// durability. For callers that pipeline many records; [`record`](AuditSink::record) is
    /// `submit` followed by awaiting the receipt.
    ///
    /// # Errors
    /// [`AuditError::Encode`] when the event cannot be encoded, [`AuditError::Closed`] once the
    /// sink is closed.
    pub async fn submit(&self, event: &AuditEvent<'_>) -> Result<Receipt, AuditError> {
        let mut body = Vec::with_capacity(512);
        event.write_canonical(&mut body)?;
        let (ack, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(AuditError::Closed)?;
        tx.send(Msg::Event { body, ack })
            .await
            .map_err(|_| AuditError::Closed)?;
        Ok(Receipt(rx))
    }

    /// Writes a final signed checkpoint (when a key is set), fsyncs and stops the writer. Records
    /// submitted afterwards fail with [`AuditError::Closed`]. Dropping the sink does the same.
    ///
    /// # Errors
    /// The error of the final write.
    pub async fn close(&self) -> Result<(), AuditError> {
        let tx = self.tx.as_ref().ok_or(AuditError::Closed)?;
        let (ack, rx) = oneshot::channel();
        tx.send(Msg::Close { ack })
            .await
            .map_err(|_| AuditError::Closed)?;
        Receipt(rx).await.map(|_| ())
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Closing the queue makes the writer drain it, checkpoint, fsync and exit.
        self.tx = None;
        let handle = match self.thread.get_mut() {
            Ok(h) => h.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

#[async_trait]
impl AuditSink for FileSink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.submit(event).await?.await.map(|_| ())
    }
}

/// The largest current file checked in full when a sink reopens it.
const MAX_REOPEN_CHECK: u64 = 256 * 1024 * 1024;

/// The longest a batch grows before it is written.
const MAX_BATCH: usize = 4096;

struct Writer {
    config: FileSinkConfig,
    file: File,
    /// Bytes in `file` known to hold whole records.
    size: u64,
    checkpoints: Option<File>,
    /// The next record's sequence number and `prev`.
    seq: u64,
    prev: [u8; 32],
    /// The state as of the last successful write, restored when a write fails.
    written_seq: u64,
    written_prev: [u8; 32],
    since_checkpoint: u64,
    last_checkpoint: Instant,
    last_sync: Instant,
    /// Written but not yet acknowledged (waiting for the group commit's fsync).
    pending: Vec<(oneshot::Sender<Result<u64, AuditError>>, u64)>,
    unsynced: bool,
    /// A regular file: fsync means something. A device (`/dev/null`) or pipe cannot be synced,
    /// so records are acknowledged once written.
    syncable: bool,
    buf: Vec<u8>,
    sidecar_buf: Vec<u8>,
    /// Checkpoints written to the sidecar since its last fsync.
    sidecar_dirty: bool,
    scratch: Vec<u8>,
    next_rotation: u64,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Audit records name callers.
        opts.mode(0o600);
    }
    opts.open(path)
}

fn rotated_name(path: &Path, n: u64) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n}"));
    path.with_file_name(name)
}

/// The highest `N` of an existing `path.N`.
fn last_rotation(path: &Path) -> u64 {
    let Some(dir) = path.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    }) else {
        return 0;
    };
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let rest = name.to_str()?.strip_prefix(base)?.strip_prefix('.')?;
            rest.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// The last complete line of `file`, after cutting off a torn tail. `None` for an empty file.
fn last_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    // Records are bounded (the layer cuts long fields), so the last 1 MiB holds the last one.
    let start = len.saturating_sub(1024 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let Some(last_nl) = tail.iter().rposition(|b| *b == b'\n') else {
        // No complete record at all: a first record torn mid-write.
        file.set_len(start)?;
        return Ok(None);
    };
    if last_nl + 1 < tail.len() {
        // A record torn by a crash: it was never acknowledged, so it is cut off.
        file.set_len(start + last_nl as u64 + 1)?;
    }
    let line_start = tail
        .get(..last_nl)
        .and_then(|t| t.iter().rposition(|b| *b == b'\n'))
        .map_or(0, |p| p + 1);
    Ok(tail.get(line_start..last_nl).map(<[u8]>::to_vec))
}

/// The `seq` and `hash` of a record line, and whether its hash recomputes.
fn chain_state(line: &[u8]) -> Option<(u64, [u8; 32], bool)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let seq = v.get("seq")?.as_u64()?;
    let hash = crate::hex::parse_sha256(v.get("hash")?.as_str()?)?;
    let prev = crate::hex::parse_sha256(v.get("prev")?.as_str()?)?;
    let mut unhashed = Vec::new();
    super::chain::unhashed_bytes(&v, &mut unhashed)?;
    let ok = super::chain::chain_hash(&prev, &unhashed) == hash;
    Some((seq, hash, ok))
}

impl Writer {
    fn open(config: FileSinkConfig) -> Result<Self, AuditError> {
        let path = config.path.clone();
        let mut file = open_append(&path)?;
        let regular = file.metadata()?.is_file();
        let rotation = if regular { last_rotation(&path) } else { 0 };
        let mut last = last_line(&mut file)?;
        if last.is_none() && rotation > 0 {
            let mut prev_file = File::open(rotated_name(&path, rotation))?;
            last = last_line_readonly(&mut prev_file)?;
        }
        // The whole current file is checked, not only its last record: a record changed in the
        // middle of the file the sink goes on writing is reported now, not at the next audit.
        let regular_checked =
            regular && file.metadata()?.len() <= MAX_REOPEN_CHECK && file.metadata()?.len() > 0;
        if regular_checked {
            let mut data = Vec::new();
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut data)?;
            if !super::verify::file_chain_intact(&data) {
                alert(
                    &config.alert,
                    AlertKind::TamperDetected,
                    "the audit log being continued does not verify",
                );
            }
        }
        let (seq, prev) = match last {
            None => (0, GENESIS),
            Some(line) => match chain_state(&line) {
                Some((seq, hash, ok)) => {
                    // (A current file was checked whole above; a rotated one only here.)
                    if !ok && !regular_checked {
                        alert(
                            &config.alert,
                            AlertKind::TamperDetected,
                            "the audit log's last record does not verify",
                        );
                    }
                    (seq.saturating_add(1), hash)
                }
                None => {
                    alert(
                        &config.alert,
                        AlertKind::TamperDetected,
                        "the audit log's last line is not a chained record",
                    );
                    return Err(AuditError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the audit log's last line is not a chained record",
                    )));
                }
            },
        };
        let meta = file.metadata()?;
        let size = meta.len();
        let syncable = meta.is_file();
        let checkpoints = match &config.signing_key {
            Some(_) if regular => Some(open_append(&sidecar(&path))?),
            _ => None,
        };
        let now = Instant::now();
        Ok(Writer {
            file,
            size,
            checkpoints,
            seq,
            prev,
            written_seq: seq,
            written_prev: prev,
            since_checkpoint: 0,
            last_checkpoint: now,
            last_sync: now,
            pending: Vec::new(),
            unsynced: false,
            syncable,
            buf: Vec::with_capacity(1 << 20),
            sidecar_buf: Vec::new(),
            sidecar_dirty: false,
            scratch: Vec::with_capacity(4096),
            next_rotation: rotation + 1,
            config,
        })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
        loop {
            let msg = match self.deadline() {
                Some(d) => match tokio::time::timeout_at(d.into(), rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.on_timer();
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(msg) = msg else {
                let _ = self.shutdown();
                return;
            };
            batch.push(msg);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if self.process(&mut batch) {
                rx.close();
                // Anything still queued is refused, not dropped silently.
                while let Some(m) = rx.recv().await {
                    let ack = match m {
                        Msg::Event { ack, .. } | Msg::Close { ack } => ack,
                    };
                    let _ = ack.send(Err(AuditError::Closed));
                }
                return;
            }
        }
    }

    /// When the loop must wake without a message: the group commit's fsync, or a checkpoint.
    fn deadline(&self) -> Option<Instant> {
        let sync = match self.config.fsync {
            FsyncPolicy::GroupCommit(d) if self.syncable && !self.pending.is_empty() => {
                Some(self.last_sync + d)
            }
            _ => None,
        };
        let checkpoint = match self.config.checkpoint_interval {
            Some(d) if self.config.signing_key.is_some() && self.since_checkpoint > 0 => {
                Some(self.last_checkpoint + d)
            }
            _ => None,
        };
        match (sync, checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self) {
        if self.checkpoint_due_by_time() {
            self.append_checkpoint();
            let _ = self.write_buf();
        }
        self.sync_and_ack(true);
    }

    fn checkpoint_due_by_time(&self) -> bool {
        self.config.signing_key.is_some()
            && self.since_checkpoint > 0
            && self
                .config
                .checkpoint_interval
                .is_some_and(|d| self.last_checkpoint.elapsed() >= d)
    }

    /// Writes a batch. Returns true when the sink was closed.
    fn process(&mut self, batch: &mut Vec<Msg>) -> bool {
        let mut close = None;
        for msg in batch.drain(..) {
            match msg {
                Msg::Event { body, ack } => {
                    if close.is_some() {
                        let _ = ack.send(Err(AuditError::Closed));
                        continue;
                    }
                    let seq = self.seq;
                    self.prev =
                        record_line(&mut self.buf, &mut self.scratch, &self.prev, seq, &body);
                    self.seq += 1;
                    self.since_checkpoint += 1;
                    self.pending.push((ack, seq));
                    if self
                        .config
                        .checkpoint_every
                        .is_some_and(|n| self.since_checkpoint >= n)
                    {
                        self.append_checkpoint();
                    }
                    // Only a regular file rotates: renaming a device (`/dev/null`) would be a
                    // disaster.
                    if self.syncable
                        && self
                            .config
                            .rotate_bytes
                            .is_some_and(|max| self.size + self.buf.len() as u64 >= max)
                        && self.write_buf().is_ok()
                    {
                        self.rotate();
                    }
                }
                Msg::Close { ack } => close = Some(ack),
            }
        }
        if self.checkpoint_due_by_time() {
            self.append_checkpoint();
        }
        if self.write_buf().is_ok() {
            self.sync_and_ack(false);
        }
        match close {
            Some(ack) => {
                let r = self.shutdown();
                let _ = ack.send(r.map(|()| self.seq));
                true
            }
            None => false,
        }
    }

    /// Appends a signed checkpoint record to the buffer (and remembers to copy it to the
    /// sidecar file once written).
    fn append_checkpoint(&mut self) {
        let Some(key) = &self.config.signing_key else {
            return;
        };
        let seq = self.seq;
        let sig = key.sign(&checkpoint_message(seq, &self.prev));
        let body = serde_json::json!({"checkpoint": {
            "key_id": key_id(&key.verifying_key()),
            "signature": crate::hex::encode(&sig.to_bytes()),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }});
        let mut body_bytes = Vec::with_capacity(256);
        canonical::write_value(&body, &mut body_bytes);
        let start = self.buf.len();
        self.prev = record_line(
            &mut self.buf,
            &mut self.scratch,
            &self.prev,
            seq,
            &body_bytes,
        );
        self.seq += 1;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        if let Some(line) = self.buf.get(start..) {
            // Copied to the sidecar once the log holds it (`write_buf`).
            self.sidecar_buf.extend_from_slice(line);
        }
    }

    /// Writes the buffer. On failure the file is cut back to its last whole record, the chain
    /// state rolled back, and every record not yet acknowledged fails.
    fn write_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.size += self.buf.len() as u64;
                self.buf.clear();
                self.written_seq = self.seq;
                self.written_prev = self.prev;
                self.unsynced = true;
                if let Some(side) = &mut self.checkpoints
                    && !self.sidecar_buf.is_empty()
                {
                    // The sidecar lets the verifier notice a log cut before a checkpoint it
                    // signed.
                    self.sidecar_dirty = true;
                    if side.write_all(&self.sidecar_buf).is_err() {
                        alert(
                            &self.config.alert,
                            AlertKind::AuditFailure,
                            "the audit checkpoint file cannot be written",
                        );
                    }
                }
                self.sidecar_buf.clear();
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.size);
                self.buf.clear();
                self.sidecar_buf.clear();
                self.seq = self.written_seq;
                self.prev = self.written_prev;
                self.fail_pending(e.kind());
                Err(e)
            }
        }
    }

    fn fail_pending(&mut self, kind: std::io::ErrorKind) {
        alert(
            &self.config.alert,
            AlertKind::AuditFailure,
            "the audit log cannot be written",
        );
        for (ack, _) in self.pending.drain(..) {
            let _ = ack.send(Err(AuditError::Io(std::io::Error::from(kind))));
        }
    }

    /// fsyncs as the policy says and acknowledges what is durable. `timer`: the group commit's
    /// interval has run out.
    fn sync_and_ack(&mut self, timer: bool) {
        let sync_now = match self.config.fsync {
            _ if !self.syncable => false,
            FsyncPolicy::Always => true,
            FsyncPolicy::OsBuffered => false,
            FsyncPolicy::GroupCommit(d) => timer || self.last_sync.elapsed() >= d,
        };
        if self.syncable && matches!(self.config.fsync, FsyncPolicy::GroupCommit(_)) && !sync_now {
            return;
        }
        if sync_now
            && self.unsynced
            && let Err(e) = self.sync()
        {
            self.fail_pending(e.kind());
            return;
        }
        for (ack, seq) in self.pending.drain(..) {
            let _ = ack.send(Ok(seq));
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        // The group commit's interval runs from the start of an fsync: a disk slower than the
        // interval then syncs back to back instead of waiting an interval more each time.
        let started = Instant::now();
        if self.syncable {
            self.file.sync_data()?;
        }
        if self.sidecar_dirty
            && let Some(side) = &self.checkpoints
        {
            side.sync_data()?;
        }
        self.sidecar_dirty = false;
        self.unsynced = false;
        self.last_sync = started;
        Ok(())
    }

    /// Moves the full file aside as `path.N` and starts a new one; the chain state carries over.
    fn rotate(&mut self) {
        if !self.syncable {
            return;
        }
        let path = self.config.path.clone();
        let result = self.sync().and_then(|()| {
            std::fs::rename(&path, rotated_name(&path, self.next_rotation))?;
            open_append(&path)
        });
        match result {
            Ok(f) => {
                self.file = f;
                self.size = 0;
                self.next_rotation += 1;
                // Everything so far is on disk in the rotated file.
                for (ack, seq) in self.pending.drain(..) {
                    let _ = ack.send(Ok(seq));
                }
            }
            Err(_) => alert(
                &self.config.alert,
                AlertKind::AuditFailure,
                "the audit log cannot be rotated; writing on in the current file",
            ),
        }
    }

    /// Final checkpoint, fsync, acknowledgements.
    fn shutdown(&mut self) -> Result<(), AuditError> {
        if self.since_checkpoint > 0 {
            self.append_checkpoint();
        }
        self.write_buf()?;
        if self.unsynced
            && let Err(e) = self.sync()
        {
            self.fail_pending(e.kind());
            return Err(e.into());
        }
        for (ack, seq) in self.pending.drain(..) {
            let _ = ack.send(Ok(seq));
        }
        Ok(())
    }
}

/// Like [`last_line`], for a rotated file that is never cut.
fn last_line_readonly(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let mut all = Vec::new();
    file.read_to_end(&mut all)?;
    let end = match all.iter().rposition(|b| *b == b'\n') {
        Some(p) => p,
        None => return Ok(None),
    };
    let start = all
        .get(..end)
        .and_then(|t| t.iter().rposition(|b| *b == b'\n'))
        .map_or(0, |p| p + 1);
    Ok(all.get(start..end).map(<[u8]>::to_vec))
}

/// Where a log's signed checkpoints are also kept: `path.checkpoints`.
pub(crate) fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".checkpoints");
    path.with_file_name(name)
}

fn alert(hook: &Option<Arc<dyn AlertHook>>, kind: AlertKind, detail: &str) {
    if let Some(h) = hook {
        h.alert(&SecurityAlert::new(kind, detail));
    }
}
