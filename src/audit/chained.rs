//! The hash-chained JSON-lines file sink: a writer thread fed by a bounded queue.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
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
    write_from_caller: bool,
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
            write_from_caller: true,
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

    /// Whether a record that needs no fsync of its own ([`FsyncPolicy::OsBuffered`], or a log
    /// that is not a regular file) is written by the caller's own task when the log is idle (no
    /// record queued for the writer thread, and nobody writing, or done within 10 µs).
    /// Defaults to `true`.
    ///
    /// Handing a lone record to the writer thread and waiting for its acknowledgement costs two
    /// cross-thread wake-ups, about 50 µs on an idle machine, against a few microseconds for
    /// the `write(2)` itself. Whatever the setting, records that wait for an fsync
    /// ([`FsyncPolicy::Always`], [`FsyncPolicy::GroupCommit`]) and the record that starts a new
    /// file at rotation go to the writer thread, so the caller's async runtime thread never
    /// blocks on a disk flush. `false` sends every record to the writer thread, keeping all
    /// file I/O off the caller's thread (for a log on a file system whose writes can block
    /// for long, such as a network mount).
    pub fn write_from_caller(mut self, enabled: bool) -> Self {
        self.write_from_caller = enabled;
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
    /// A record written by a caller set a timer (a checkpoint by time) the writer thread does
    /// not know of yet.
    Wake,
}

/// Who is told a record's outcome.
enum Ack {
    /// A caller waiting on its [`Receipt`].
    Queued(oneshot::Sender<Result<u64, AuditError>>),
    /// The caller writing the record itself, holding the writer's lock: the outcome is left in
    /// [`Writer::caller_result`].
    Caller,
}

/// The acknowledgement of one submitted record: resolves to the record's sequence number once
/// it is durable under the [`FsyncPolicy`], or to the error that kept it from being written.
#[derive(Debug)]
#[must_use = "a receipt must be awaited to know the record was written"]
pub struct Receipt(ReceiptState);

#[derive(Debug)]
enum ReceiptState {
    /// Written by the caller: the outcome is known (taken by the first poll).
    Ready(Option<Result<u64, AuditError>>),
    /// Queued for the writer thread.
    Waiting(oneshot::Receiver<Result<u64, AuditError>>),
}

impl Future for Receipt {
    type Output = Result<u64, AuditError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            // Polled again after completion: there is nothing more to report.
            ReceiptState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(AuditError::Closed))),
            ReceiptState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(r)) => Poll::Ready(r),
                Poll::Ready(Err(_)) => Poll::Ready(Err(AuditError::Closed)),
                Poll::Pending => Poll::Pending,
            },
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
/// A record that needs no fsync of its own (see [`FileSinkConfig::write_from_caller`]) is
/// written by the caller itself when nothing is queued and nobody is writing: the same code
/// under the same lock, so there is still one chain in one order, but without waking the
/// writer thread and waiting to be woken by it. Under contention records queue as above.
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
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

/// What the writer thread and callers writing for themselves share.
struct Shared {
    writer: Mutex<Writer>,
    /// Records (and close requests) handed to the writer thread and not yet written. A caller
    /// writes for itself only when this is zero under the lock, so a record never overtakes one
    /// submitted before it.
    queued: AtomicUsize,
    /// The policy lets callers write (see [`FileSinkConfig::write_from_caller`]).
    caller_writes: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .field("caller_writes", &self.caller_writes)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        // The writer never panics while holding the lock; if something did, its state is
        // still the last consistent one (a failed write rolls itself back).
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer's lock for a caller, if it comes free within a few microseconds and nothing
    /// is queued meanwhile. The usual holder is another caller's `write(2)` or the writer
    /// thread's batch, over in less time than handing a record to the writer thread costs (two
    /// wake-ups); a holder that fsyncs (rotation, shutdown) takes far longer than the spin, so
    /// a caller never waits out a flush. `None`: queue the record.
    fn lock_briefly(&self) -> Option<MutexGuard<'_, Writer>> {
        const SPIN: Duration = Duration::from_micros(10);
        let mut started = None;
        loop {
            match self.writer.try_lock() {
                Ok(w) => return Some(w),
                Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            let since = *started.get_or_insert_with(Instant::now);
            if self.queued.load(Ordering::Acquire) != 0 || since.elapsed() >= SPIN {
                return None;
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
    }
}

/// Counts a record as queued until it is handed to the writer thread; a caller whose `submit`
/// is dropped while it waits for room must not leave the count raised.
struct QueuedGuard<'a> {
    queued: &'a AtomicUsize,
    handed_over: bool,
}

impl<'a> QueuedGuard<'a> {
    fn new(queued: &'a AtomicUsize) -> Self {
        queued.fetch_add(1, Ordering::AcqRel);
        QueuedGuard {
            queued,
            handed_over: false,
        }
    }
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
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
        let caller_writes = writer.config.write_from_caller
            && (!writer.syncable || writer.config.fsync == FsyncPolicy::OsBuffered);
        let shared = Arc::new(Shared {
            writer: Mutex::new(writer),
            queued: AtomicUsize::new(0),
            caller_writes,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mcp-security-audit".into())
            .spawn(move || rt.block_on(run(for_thread, rx)))?;
        Ok(FileSink {
            tx: Some(tx),
            shared,
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
    /// `submit` followed by awaiting the receipt. A record the caller wrote itself (see
    /// [`FileSinkConfig::write_from_caller`]) comes back with a receipt that is already
    /// resolved.
    ///
    /// # Errors
    /// [`AuditError::Encode`] when the event cannot be encoded, [`AuditError::Closed`] once the
    /// sink is closed.
    pub async fn submit(&self, event: &AuditEvent<'_>) -> Result<Receipt, AuditError> {
        let mut body = Vec::with_capacity(512);
        event.write_canonical(&mut body)?;
        if let Some(written) = self.write_here(&body) {
            return match written {
                Err(AuditError::Closed) => Err(AuditError::Closed),
                r => Ok(Receipt(ReceiptState::Ready(Some(r)))),
            };
        }
        let (ack, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(AuditError::Closed)?;
        let mut guard = QueuedGuard::new(&self.shared.queued);
        tx.send(Msg::Event { body, ack })
            .await
            .map_err(|_| AuditError::Closed)?;
        guard.handed_over = true;
        Ok(Receipt(ReceiptState::Waiting(rx)))
    }

    /// Writes `body` on the caller's thread if the log is idle. `None`: it is not (or the
    /// policy says no); queue it.
    fn write_here(&self, body: &[u8]) -> Option<Result<u64, AuditError>> {
        let shared = &*self.shared;
        if !shared.caller_writes || shared.queued.load(Ordering::Acquire) != 0 {
            return None;
        }
        let mut writer = shared.lock_briefly()?;
        // INVARIANT: checked under the lock, which the writer thread holds while it writes and
        // counts down what it wrote: zero means every record queued before this one is in the
        // file.
        if shared.queued.load(Ordering::Acquire) != 0 || writer.rotation_due(body.len()) {
            return None;
        }
        let had_timer = writer.deadline().is_some();
        let written = writer.write_one(body);
        let wake = !had_timer && writer.deadline().is_some();
        drop(writer);
        if wake && let Some(tx) = &self.tx {
            // The writer thread sleeps without a deadline; a checkpoint is now due by time.
            // Full queue: the writer is awake anyway and looks at the deadline after the batch.
            let _ = tx.try_send(Msg::Wake);
        }
        Some(written)
    }

    /// Writes a final signed checkpoint (when a key is set), fsyncs and stops the writer. Records
    /// submitted afterwards fail with [`AuditError::Closed`]. Dropping the sink does the same.
    ///
    /// # Errors
    /// The error of the final write.
    pub async fn close(&self) -> Result<(), AuditError> {
        let tx = self.tx.as_ref().ok_or(AuditError::Closed)?;
        let (ack, rx) = oneshot::channel();
        let mut guard = QueuedGuard::new(&self.shared.queued);
        tx.send(Msg::Close { ack })
            .await
            .map_err(|_| AuditError::Closed)?;
        guard.handed_over = true;
        Receipt(ReceiptState::Waiting(rx)).await.map(|_| ())
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

/// The writer thread: takes what is queued, writes it as one batch under the lock, and wakes
/// for the group commit's fsync and for checkpoints by time.
async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Msg> = Vec::with_capacity(MAX_BATCH);
    loop {
        let deadline = shared.lock().deadline();
        let msg = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    shared.lock().on_timer();
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(msg) = msg else {
            let _ = shared.lock().shutdown();
            return;
        };
        batch.push(msg);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let counted = batch.iter().filter(|m| !matches!(m, Msg::Wake)).count();
        let closed = {
            let mut writer = shared.lock();
            let closed = writer.process(&mut batch);
            // Under the lock: a caller that sees zero finds these records in the file.
            shared.queued.fetch_sub(counted, Ordering::AcqRel);
            closed
        };
        if closed {
            rx.close();
            // Anything still queued is refused, not dropped silently.
            while let Some(m) = rx.recv().await {
                match m {
                    Msg::Event { ack, .. } | Msg::Close { ack } => {
                        let _ = ack.send(Err(AuditError::Closed));
                    }
                    Msg::Wake => {}
                }
            }
            return;
        }
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
    pending: Vec<(Ack, u64)>,
    /// The outcome of the record a caller is writing itself ([`Ack::Caller`]).
    caller_result: Option<Result<u64, AuditError>>,
    /// Shut down: nothing more is written.
    closed: bool,
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
            caller_result: None,
            closed: false,
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
                    if close.is_some() || self.closed {
                        let _ = ack.send(Err(AuditError::Closed));
                        continue;
                    }
                    self.append_event(&body, Ack::Queued(ack));
                }
                Msg::Close { ack } => close = Some(ack),
                Msg::Wake => {}
            }
        }
        self.finish_batch();
        match close {
            Some(ack) => {
                let r = self.shutdown();
                let _ = ack.send(r.map(|()| self.seq));
                true
            }
            None => false,
        }
    }

    /// Writes one record for a caller holding the lock, as [`process`](Self::process) writes
    /// a batch of one. Only for records acknowledged without waiting for an fsync.
    fn write_one(&mut self, body: &[u8]) -> Result<u64, AuditError> {
        if self.closed {
            return Err(AuditError::Closed);
        }
        self.caller_result = None;
        self.append_event(body, Ack::Caller);
        self.finish_batch();
        // The record is acknowledged once written (the caller only writes when no fsync is
        // awaited), or failed with the write; anything else would be a record left pending for
        // a caller that is not waiting, so it counts as not written.
        self.caller_result.take().unwrap_or(Err(AuditError::Closed))
    }

    /// Whether a record of about `body` bytes would start a new file: rotation fsyncs, so it
    /// is left to the writer thread.
    fn rotation_due(&self, body: usize) -> bool {
        // A record line is its body plus about 180 bytes of chain fields, and a checkpoint it
        // triggers about 400 more: 1024 bytes of margin cover both.
        self.syncable
            && self
                .config
                .rotate_bytes
                .is_some_and(|max| self.size + (self.buf.len() + body + 1024) as u64 >= max)
    }

    /// Chains one record into the buffer, with the checkpoint and rotation it triggers.
    fn append_event(&mut self, body: &[u8], ack: Ack) {
        let seq = self.seq;
        self.prev = record_line(&mut self.buf, &mut self.scratch, &self.prev, seq, body);
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
        // Only a regular file rotates: renaming a device (`/dev/null`) would be a disaster.
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

    /// After a batch: a checkpoint due by time, the write, and the fsync and acknowledgements
    /// the policy asks for.
    fn finish_batch(&mut self) {
        if self.checkpoint_due_by_time() {
            self.append_checkpoint();
        }
        if self.write_buf().is_ok() {
            self.sync_and_ack(false);
        }
    }

    /// Tells `ack` the outcome of its record.
    fn ack(&mut self, ack: Ack, result: Result<u64, AuditError>) {
        match ack {
            Ack::Queued(tx) => {
                let _ = tx.send(result);
            }
            Ack::Caller => self.caller_result = Some(result),
        }
    }

    /// Acknowledges every pending record as written.
    fn ack_pending(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for (ack, seq) in pending.drain(..) {
            self.ack(ack, Ok(seq));
        }
        // Keep the allocation for the next batch.
        self.pending = pending;
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
        let mut pending = std::mem::take(&mut self.pending);
        for (ack, _) in pending.drain(..) {
            self.ack(ack, Err(AuditError::Io(std::io::Error::from(kind))));
        }
        self.pending = pending;
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
        self.ack_pending();
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
                self.ack_pending();
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
        if self.closed {
            return Ok(());
        }
        self.closed = true;
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
        self.ack_pending();
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
