//! Verifying a hash-chained log: the chain, the signed checkpoints, and the sidecar copy of the
//! checkpoints that shows a log cut short.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

use super::chain::{GENESIS, chain_hash, checkpoint_message, key_id};

/// What was wrong with a log, at the first place it went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TamperKind {
    /// A record's content (or its chain fields) changed.
    Modified,
    /// Records are missing.
    Deleted,
    /// Records are out of order.
    Reordered,
    /// A record that is not part of the chain was added.
    Inserted,
    /// The log ends before records a signed checkpoint covers.
    Truncated,
    /// A checkpoint's signature does not verify (the records before it were rewritten, or it was
    /// signed by another key).
    BadCheckpoint,
    /// A line is not a chained record.
    Malformed,
}

impl TamperKind {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Modified => "modified",
            TamperKind::Deleted => "deleted",
            TamperKind::Reordered => "reordered",
            TamperKind::Inserted => "inserted",
            TamperKind::Truncated => "truncated",
            TamperKind::BadCheckpoint => "bad_checkpoint",
            TamperKind::Malformed => "malformed",
        }
    }
}

/// Where and how a log was found tampered with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tamper {
    /// What.
    pub kind: TamperKind,
    /// The file.
    pub file: PathBuf,
    /// The line in that file (1-based).
    pub line: usize,
    /// The record's sequence number, when it has one.
    pub seq: Option<u64>,
    /// The event's id, when the record is an event.
    pub event_id: Option<String>,
    /// What was found.
    pub detail: String,
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} line {}",
            self.kind.as_str(),
            self.file.display(),
            self.line
        )?;
        if let Some(s) = self.seq {
            write!(f, " (seq {s}")?;
            if let Some(id) = &self.event_id {
                write!(f, ", event {id}")?;
            }
            f.write_str(")")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The verifier's findings. [`is_intact`](Self::is_intact) says whether the log verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files read.
    pub files: usize,
    /// Chained records that verified (events and checkpoints).
    pub records: u64,
    /// Of which events.
    pub events: u64,
    /// Of which checkpoints whose signature verified (or, without a key, that were found).
    pub checkpoints: u64,
    /// Records covered by the last verified checkpoint.
    pub signed_records: u64,
    /// Records after the last verified checkpoint: intact as a chain, but not signed, so a
    /// rewrite of them could not be told.
    pub unsigned_tail: u64,
    /// Whether checkpoint signatures were checked (a key was given).
    pub signatures_checked: bool,
    /// Signed checkpoints read from the sidecar file and matched against the log.
    pub sidecar_checkpoints: u64,
    /// A final line cut short (the writer was killed mid-write): file and line. Tolerated.
    pub incomplete_final_line: Option<(PathBuf, usize)>,
    /// The first problem found, if any.
    pub problem: Option<Tamper>,
}

impl VerifyReport {
    /// No problem was found.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// The log could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No file was given.
    #[error("no log file given")]
    NoFiles,
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

struct Rec {
    file: usize,
    line: usize,
    seq: u64,
    prev: [u8; 32],
    hash: [u8; 32],
    hash_ok: bool,
    event_id: Option<String>,
    checkpoint: Option<(String, String)>,
}

enum Parsed {
    Rec(Rec),
    Bad(&'static str),
}

fn parse_record(bytes: &[u8], file: usize, line: usize) -> Parsed {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Parsed::Bad("not JSON");
    };
    let field = |k: &str| v.get(k);
    let (Some(seq), Some(prev), Some(hash)) = (
        field("seq").and_then(Value::as_u64),
        field("prev")
            .and_then(Value::as_str)
            .and_then(crate::hex::parse_sha256),
        field("hash")
            .and_then(Value::as_str)
            .and_then(crate::hex::parse_sha256),
    ) else {
        return Parsed::Bad("not a chained record (seq, prev, hash)");
    };
    let event_id = v.get("event_id").and_then(Value::as_str).map(str::to_owned);
    let checkpoint = v.get("checkpoint").map(|c| {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        (s("key_id"), s("signature"))
    });
    let mut unhashed = Vec::with_capacity(bytes.len());
    if super::chain::unhashed_bytes(&v, &mut unhashed).is_none() {
        return Parsed::Bad("not a chained record (seq, prev, hash)");
    }
    // The line must be exactly the canonical form of what it says: otherwise a change that
    // keeps the meaning (an upper-case digit in `hash`, an escaped letter) would pass unseen.
    let canonical = bytes.len() == unhashed.len() + 74
        && bytes.get(..9) == Some(b"{\"hash\":\"".as_slice())
        && bytes
            .get(9..73)
            .is_some_and(|h| h == crate::hex::encode(&hash).as_bytes())
        && bytes.get(73..75) == Some(b"\",".as_slice())
        && bytes.get(75..) == unhashed.get(1..);
    let hash_ok = canonical && chain_hash(&prev, &unhashed) == hash;
    Parsed::Rec(Rec {
        file,
        line,
        seq,
        prev,
        hash,
        hash_ok,
        event_id,
        checkpoint,
    })
}

/// Verifies a chained log made of `paths` (in any order: they are put in chain order by their
/// first record), checking checkpoint signatures against `key` when given, and the signed
/// checkpoints of `checkpoints` (default: `FILE.checkpoints` beside any given file) against the
/// log's end.
///
/// # Errors
/// [`VerifyError`] when a file cannot be read; a log that does not verify is a report with a
/// [`problem`](VerifyReport::problem).
pub fn verify_files(
    paths: &[PathBuf],
    key: Option<&VerifyingKey>,
    checkpoints: Option<&Path>,
) -> Result<VerifyReport, VerifyError> {
    if paths.is_empty() {
        return Err(VerifyError::NoFiles);
    }
    let mut data = Vec::with_capacity(paths.len());
    for path in paths {
        data.push(std::fs::read(path).map_err(|source| VerifyError::Io {
            path: path.clone(),
            source,
        })?);
    }
    let sidecar = checkpoints.map(Path::to_path_buf).or_else(|| {
        paths
            .iter()
            .map(|p| super::chained::sidecar(p))
            .find(|p| p.is_file())
    });
    let sidecar = match sidecar {
        Some(side) => {
            let bytes = std::fs::read(&side).map_err(|source| VerifyError::Io {
                path: side.clone(),
                source,
            })?;
            Some((side, bytes))
        }
        None => None,
    };
    Ok(verify_data(paths, &data, key, sidecar))
}

/// [`verify_files`] over logs already in memory: `names[i]` names `data[i]` in the report.
pub(crate) fn verify_data(
    paths: &[PathBuf],
    data: &[Vec<u8>],
    key: Option<&VerifyingKey>,
    sidecar: Option<(PathBuf, Vec<u8>)>,
) -> VerifyReport {
    let mut report = VerifyReport {
        files: paths.len(),
        signatures_checked: key.is_some(),
        ..VerifyReport::default()
    };
    // Each file's records; a problem while parsing is remembered with its place in the chain.
    let mut files: Vec<(usize, Vec<Rec>, Option<Tamper>)> = Vec::new();
    let mut torn: Option<(usize, usize)> = None;
    for (fi, (path, data)) in paths.iter().zip(data).enumerate() {
        let mut recs = Vec::new();
        let mut bad = None;
        let mut lines = data.split(|b| *b == b'\n').enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            let last = lines.peek().is_none();
            if last {
                if !line.is_empty() {
                    torn = Some((fi, i + 1));
                }
                break;
            }
            match parse_record(line, fi, i + 1) {
                Parsed::Rec(r) => recs.push(r),
                Parsed::Bad(why) => {
                    bad = Some(Tamper {
                        kind: TamperKind::Malformed,
                        file: path.clone(),
                        line: i + 1,
                        seq: None,
                        event_id: None,
                        detail: why.to_owned(),
                    });
                    break;
                }
            }
        }
        files.push((fi, recs, bad));
    }
    files.sort_by_key(|(_, recs, _)| recs.first().map_or(u64::MAX, |r| r.seq));
    // A torn line is tolerated only at the very end of the log.
    if let Some((fi, line)) = torn {
        let is_last = files
            .iter()
            .rev()
            .find(|(_, recs, _)| !recs.is_empty())
            .is_none_or(|(f, _, _)| *f == fi);
        if is_last {
            report.incomplete_final_line = Some((paths[fi].clone(), line));
        } else {
            report.problem = Some(Tamper {
                kind: TamperKind::Malformed,
                file: paths[fi].clone(),
                line,
                seq: None,
                event_id: None,
                detail: "a line cut short in the middle of the log".into(),
            });
            return report;
        }
    }
    let mut recs: Vec<Rec> = Vec::new();
    let mut parse_problem = None;
    for (_, r, bad) in files {
        recs.extend(r);
        if bad.is_some() {
            parse_problem = bad;
            break;
        }
    }

    let key_id_expected = key.map(key_id);
    let mut expected_seq = 0u64;
    let mut expected_prev = GENESIS;
    let mut last_checkpoint: Option<usize> = None;
    for i in 0..recs.len() {
        let r = &recs[i];
        let linked = r.seq == expected_seq && r.prev == expected_prev;
        if !(linked && r.hash_ok) {
            report.problem = Some(classify(&recs, i, expected_seq, &expected_prev, paths));
            break;
        }
        if let Some((kid, sig)) = &r.checkpoint {
            if let (Some(key), Some(expected)) = (key, &key_id_expected) {
                let problem = if kid != expected {
                    Some(format!(
                        "checkpoint signed by key {kid}, not by the given key {expected}"
                    ))
                } else if !signature_ok(key, sig, r.seq, &r.prev) {
                    Some(
                        "the checkpoint's signature does not verify: the records it covers were rewritten"
                            .to_owned(),
                    )
                } else {
                    None
                };
                if let Some(detail) = problem {
                    report.problem = Some(tamper(r, TamperKind::BadCheckpoint, paths, detail));
                    break;
                }
            }
            report.checkpoints += 1;
            last_checkpoint = Some(i);
            report.signed_records = r.seq;
        } else {
            report.events += 1;
        }
        report.records += 1;
        expected_seq = r.seq + 1;
        expected_prev = r.hash;
    }
    if report.problem.is_none() {
        report.problem = parse_problem;
    }
    report.unsigned_tail = match last_checkpoint {
        Some(i) => report.records.saturating_sub(i as u64 + 1),
        None => report.records,
    };
    if report.problem.is_some() {
        return report;
    }

    // The sidecar: every signed checkpoint in it must be in the log, unchanged.
    if let Some((side, data)) = sidecar {
        let by_seq: HashMap<u64, usize> =
            recs.iter().enumerate().map(|(i, r)| (r.seq, i)).collect();
        let log_end = expected_seq;
        for (i, line) in data.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let Parsed::Rec(cp) = parse_record(line, usize::MAX, i + 1) else {
                // A torn last line of the sidecar is not a checkpoint; skip it.
                continue;
            };
            let Some((kid, sig)) = &cp.checkpoint else {
                continue;
            };
            // Only checkpoints that verify count: anyone could append a fake one.
            let verified = match (key, &key_id_expected) {
                (Some(key), Some(expected)) => {
                    cp.hash_ok && kid == expected && signature_ok(key, sig, cp.seq, &cp.prev)
                }
                _ => cp.hash_ok,
            };
            if !verified {
                continue;
            }
            report.sidecar_checkpoints += 1;
            match by_seq.get(&cp.seq).map(|j| &recs[*j]) {
                Some(r) if r.hash == cp.hash => {}
                Some(r) => {
                    report.problem = Some(tamper(
                        r,
                        TamperKind::Modified,
                        paths,
                        format!(
                            "differs from the signed checkpoint for seq {} in {}",
                            cp.seq,
                            side.display()
                        ),
                    ));
                    return report;
                }
                None if cp.seq >= log_end => {
                    let (file, line) = recs
                        .last()
                        .map_or((paths.first().cloned().unwrap_or_default(), 0), |r| {
                            (paths[r.file].clone(), r.line)
                        });
                    report.problem = Some(Tamper {
                        kind: TamperKind::Truncated,
                        file,
                        line,
                        seq: log_end.checked_sub(1),
                        event_id: recs.last().and_then(|r| r.event_id.clone()),
                        detail: format!(
                            "the log ends after {log_end} records, but a checkpoint in {} signed {} records and itself",
                            side.display(),
                            cp.seq
                        ),
                    });
                    return report;
                }
                None => {}
            }
        }
    }
    report
}

/// Whether the records of one file (a rotated part may start anywhere in the chain) link and
/// hash correctly. For a writer reopening its log; the full check is [`verify_files`].
pub(crate) fn file_chain_intact(data: &[u8]) -> bool {
    let mut last: Option<(u64, [u8; 32])> = None;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let Parsed::Rec(r) = parse_record(line, 0, i + 1) else {
            return false;
        };
        if !r.hash_ok || last.is_some_and(|(seq, hash)| r.seq != seq + 1 || r.prev != hash) {
            return false;
        }
        last = Some((r.seq, r.hash));
    }
    true
}

fn signature_ok(key: &VerifyingKey, sig_hex: &str, records: u64, head: &[u8; 32]) -> bool {
    let Some(bytes) = parse_hex64(sig_hex) else {
        return false;
    };
    let sig = Signature::from_bytes(&bytes);
    key.verify_strict(&checkpoint_message(records, head), &sig)
        .is_ok()
}

fn parse_hex64(s: &str) -> Option<[u8; 64]> {
    let (a, b) = (s.get(..64)?, s.get(64..)?);
    let (a, b) = (crate::hex::parse_sha256(a)?, crate::hex::parse_sha256(b)?);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&a);
    out[32..].copy_from_slice(&b);
    Some(out)
}

fn tamper(r: &Rec, kind: TamperKind, paths: &[PathBuf], detail: String) -> Tamper {
    Tamper {
        kind,
        file: paths[r.file].clone(),
        line: r.line,
        seq: Some(r.seq),
        event_id: r.event_id.clone(),
        detail,
    }
}

/// Names what happened at the first record `i` that does not continue the chain.
fn classify(
    recs: &[Rec],
    i: usize,
    expected_seq: u64,
    expected_prev: &[u8; 32],
    paths: &[PathBuf],
) -> Tamper {
    let r = &recs[i];
    let next = recs.get(i + 1);
    if let Some(n) = next
        && n.seq == expected_seq
        && n.prev == *expected_prev
        && n.hash_ok
    {
        // The record after this one continues from the one before.
        if r.hash_ok && r.prev == n.hash {
            // ... and this one continues from it: the two were swapped.
            return tamper(
                r,
                TamperKind::Reordered,
                paths,
                format!(
                    "out of order: it belongs after seq {} (line {})",
                    n.seq, n.line
                ),
            );
        }
        return tamper(
            r,
            TamperKind::Inserted,
            paths,
            "not part of the chain: the record after it continues from the one before it".into(),
        );
    }
    if !r.hash_ok {
        return tamper(
            r,
            TamperKind::Modified,
            paths,
            "the record's hash does not match its content".into(),
        );
    }
    if r.seq == expected_seq {
        // It links to a different previous hash: the record before was changed and rehashed.
        return match i.checked_sub(1).map(|p| &recs[p]) {
            Some(p) => tamper(
                p,
                TamperKind::Modified,
                paths,
                "changed and rehashed: the next record does not link to it".into(),
            ),
            None => tamper(
                r,
                TamperKind::Modified,
                paths,
                "the first record does not start the chain".into(),
            ),
        };
    }
    if r.seq > expected_seq {
        if let Some(j) = recs.iter().skip(i + 1).position(|x| x.seq == expected_seq) {
            let moved = &recs[i + 1 + j];
            return tamper(
                moved,
                TamperKind::Reordered,
                paths,
                format!(
                    "out of order: expected before {} line {}",
                    paths[r.file].display(),
                    r.line
                ),
            );
        }
        let missing = r.seq - expected_seq;
        let detail = if expected_seq == 0 && i == 0 {
            format!(
                "{missing} records before this one are missing (the log must start at seq 0: give every file)"
            )
        } else {
            format!(
                "{missing} records (seq {expected_seq}..={}) are missing before this one",
                r.seq - 1
            )
        };
        return tamper(r, TamperKind::Deleted, paths, detail);
    }
    // seq went backwards.
    if let Some(p) = recs.iter().take(i).position(|x| x.seq == r.seq) {
        // Two records claim one place. The one the chain goes on from is genuine.
        let genuine_is_this = next.is_none_or(|n| n.prev == r.hash);
        let inserted = if genuine_is_this { &recs[p] } else { r };
        return tamper(
            inserted,
            TamperKind::Inserted,
            paths,
            format!(
                "a second record with seq {}: the chain does not go on from this one",
                r.seq
            ),
        );
    }
    tamper(
        r,
        TamperKind::Reordered,
        paths,
        "out of order: its sequence number belongs earlier".into(),
    )
}
