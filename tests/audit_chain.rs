//! The hash-chained audit log: a clean log verifies; modified, deleted, reordered, inserted and
//! truncated records are each found and named; a writer killed mid-stream leaves a log that
//! verifies with every acknowledged record in it; 8 x 100,000 concurrent records land exactly
//! once; back-pressure, failure modes, alerts, the policy keys and the CLI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mcp_security::CorrelationId;
use mcp_security::audit::{
    AlertKind, AuditEvent, AuditSink, EventType, FileSink, FileSinkConfig, FsyncPolicy,
    SecurityAlert, TamperKind, VerifyReport, generate_signing_key, verify_files,
};
use serde_json::Value;

fn key() -> SigningKey {
    generate_signing_key().unwrap()
}

/// Writes `n` events (detail `event N`) through a sink with a checkpoint every `every`
/// records, and closes it (final checkpoint).
async fn write_log(path: &Path, key: &SigningKey, n: usize, every: u64) {
    let sink = FileSink::open(
        FileSinkConfig::new(path)
            .fsync(FsyncPolicy::OsBuffered)
            .checkpoint_every(Some(every))
            .signing_key(key.clone()),
    )
    .unwrap();
    for i in 0..n {
        let detail = format!("event {i}");
        let e = AuditEvent::system(
            EventType::ToolInvocation,
            "tools/call",
            &CorrelationId::None,
        )
        .with_detail(&detail);
        sink.record(&e).await.unwrap();
    }
    sink.close().await.unwrap();
}

fn verify(path: &Path, key: &SigningKey) -> VerifyReport {
    verify_files(&[path.to_path_buf()], Some(&key.verifying_key()), None).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// The record line for `v` with its `hash` recomputed, as an attacker without the signing key
/// can do.
fn rehash(v: &Value) -> String {
    let prev = v["prev"].as_str().unwrap().to_owned();
    let seq = v["seq"].as_u64().unwrap();
    let rest: serde_json::Map<String, Value> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "hash" | "prev" | "seq"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut fields = Vec::new();
    mcp_security::audit::to_canonical_json(&rest, &mut fields).unwrap();
    let unhashed = format!(
        "{{\"prev\":\"{prev}\",\"seq\":{seq},{}",
        std::str::from_utf8(&fields[1..]).unwrap()
    );
    let prev_bytes: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&prev[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let h = mcp_security::audit::chain_hash(&prev_bytes, unhashed.as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("{{\"hash\":\"{hex}\",{}", &unhashed[1..])
}

fn event_id(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap();
    v["event_id"].as_str().unwrap().to_owned()
}

/// A log of 20 events with checkpoints after every 5: lines 1-5 events, 6 checkpoint, ...
async fn fixture() -> (tempfile::TempDir, PathBuf, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let k = key();
    write_log(&path, &k, 20, 5).await;
    (dir, path, k)
}

#[tokio::test]
async fn a_clean_log_verifies_with_counts() {
    let (_dir, path, k) = fixture().await;
    let r = verify(&path, &k);
    assert!(r.is_intact(), "{:?}", r.problem);
    // 20 events, a checkpoint after every 5 (the last one also serves as the shutdown one).
    assert_eq!((r.events, r.checkpoints, r.records), (20, 4, 24));
    assert_eq!(r.unsigned_tail, 0);
    assert_eq!(r.signed_records, 23);
    assert_eq!(r.sidecar_checkpoints, 4);
    assert!(r.signatures_checked);
    // Every line is one JSON object with the event's fields at the top level.
    let first: Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["seq"], 0);
    assert_eq!(first["event_type"], "tool_invocation");
    assert_eq!(first["detail"], "event 0");
    assert_eq!(first["prev"].as_str().unwrap(), "0".repeat(64));
}

#[tokio::test]
async fn a_modified_record_is_named() {
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    let id = event_id(&l[8]);
    l[8] = l[8].replace("event 7", "event 9");
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!(p.kind, TamperKind::Modified, "{p}");
    assert_eq!(
        (p.line, p.seq, p.event_id.as_deref()),
        (9, Some(8), Some(&*id))
    );
}

#[tokio::test]
async fn a_modified_and_rehashed_record_is_named() {
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    // Change a field and recompute that record's own hash: the next record no longer links.
    let mut v: Value = serde_json::from_str(&l[2]).unwrap();
    v["detail"] = "nothing happened".into();
    l[2] = rehash(&v);
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!(
        (p.kind, p.line, p.seq),
        (TamperKind::Modified, 3, Some(2)),
        "{p}"
    );
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    l.remove(3);
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!(p.kind, TamperKind::Deleted, "{p}");
    // Line 4 now holds seq 4: seq 3 is missing before it.
    assert_eq!((p.line, p.seq), (4, Some(4)));
    assert!(p.detail.contains("seq 3..=3"), "{}", p.detail);
}

#[tokio::test]
async fn reordered_records_are_named() {
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    l.swap(10, 11);
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!(p.kind, TamperKind::Reordered, "{p}");
    assert_eq!(p.line, 11);
    assert_eq!(p.seq, Some(11));

    // A record moved further down.
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    let moved = l.remove(1);
    l.insert(4, moved);
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!(p.kind, TamperKind::Reordered, "{p}");
    assert_eq!((p.line, p.seq), (5, Some(1)));
}

#[tokio::test]
async fn inserted_records_are_named() {
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    // A forged record slipped in between seq 6 and 7.
    let forged = l[7].replace("event 6", "event 6b");
    l.insert(8, forged);
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!((p.kind, p.line), (TamperKind::Inserted, 9), "{p}");

    // A replayed copy of a genuine record.
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    let copy = l[12].clone();
    l.insert(13, copy);
    write_lines(&path, &l);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!(
        (p.kind, p.line, p.seq),
        (TamperKind::Inserted, 14, Some(12)),
        "{p}"
    );
}

#[tokio::test]
async fn an_insertion_with_the_chain_rewritten_fails_the_signed_checkpoint() {
    let (_dir, path, k) = fixture().await;
    // The attacker rebuilds the whole chain with an extra record: every hash recomputes, but
    // the checkpoint signatures (made with a key the attacker lacks) no longer match.
    let original: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let forged_path = path.with_file_name("forged.jsonl");
    let sink = FileSink::open(
        FileSinkConfig::new(&forged_path)
            .fsync(FsyncPolicy::OsBuffered)
            .checkpoint_every(None)
            .checkpoint_interval(None),
    )
    .unwrap();
    for (i, v) in original.iter().enumerate() {
        if v.get("checkpoint").is_some() {
            break;
        }
        let d = v["detail"].as_str().unwrap().to_owned();
        let e = AuditEvent::system(
            EventType::ToolInvocation,
            "tools/call",
            &CorrelationId::None,
        )
        .with_detail(&d);
        sink.record(&e).await.unwrap();
        if i == 1 {
            let e = AuditEvent::system(
                EventType::ToolInvocation,
                "tools/call",
                &CorrelationId::None,
            )
            .with_detail("forged");
            sink.record(&e).await.unwrap();
        }
    }
    sink.close().await.unwrap();
    drop(sink);
    // Splice the original checkpoint (from the signer) after the forged records.
    let mut forged = lines(&forged_path);
    let last: Value = serde_json::from_str(forged.last().unwrap()).unwrap();
    let mut cp = original[5].clone();
    cp["prev"] = last["hash"].clone();
    cp["seq"] = (last["seq"].as_u64().unwrap() + 1).into();
    forged.push(rehash(&cp));
    write_lines(&path, &forged);
    // The chain is whole; only the signature can tell.
    let no_sidecar = path.with_file_name("empty.checkpoints");
    std::fs::write(&no_sidecar, "").unwrap();
    let chain_only = verify_files(std::slice::from_ref(&path), None, Some(&no_sidecar)).unwrap();
    assert!(chain_only.is_intact(), "{:?}", chain_only.problem);
    let p = verify(&path, &k).problem.unwrap();
    assert_eq!((p.kind, p.line), (TamperKind::BadCheckpoint, 7), "{p}");
    assert!(p.detail.contains("rewritten"), "{}", p.detail);
}

#[tokio::test]
async fn a_log_cut_before_a_signed_checkpoint_is_reported_truncated() {
    let (_dir, path, k) = fixture().await;
    let l = lines(&path);
    // Cut after seq 13: the checkpoints at seq 17 and 23 (in the sidecar) sign more than that.
    write_lines(&path, &l[..14]);
    let r = verify(&path, &k);
    let p = r.problem.unwrap();
    assert_eq!(p.kind, TamperKind::Truncated, "{p}");
    assert_eq!((p.line, p.seq), (14, Some(13)));
    assert!(p.detail.contains("ends after 14 records"), "{}", p.detail);
}

#[tokio::test]
async fn records_after_the_last_checkpoint_are_an_unsigned_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let k = key();
    let sink = FileSink::open(
        FileSinkConfig::new(&path)
            .fsync(FsyncPolicy::OsBuffered)
            .checkpoint_every(Some(5))
            .signing_key(k.clone()),
    )
    .unwrap();
    for _ in 0..8 {
        let e = AuditEvent::system(EventType::Authorization, "x", &CorrelationId::None);
        sink.record(&e).await.unwrap();
    }
    // Read before the sink closes: 5 events, a checkpoint, 3 unsigned events.
    let r = verify(&path, &k);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(
        (r.checkpoints, r.signed_records, r.unsigned_tail),
        (1, 5, 3)
    );
    drop(sink);
    let r = verify(&path, &k);
    assert_eq!((r.checkpoints, r.unsigned_tail), (2, 0));
}

#[tokio::test]
async fn a_checkpoint_from_another_key_fails() {
    let (_dir, path, _k) = fixture().await;
    let p = verify(&path, &key()).problem.unwrap();
    assert_eq!((p.kind, p.line), (TamperKind::BadCheckpoint, 6), "{p}");
    assert!(p.detail.contains("not by the given key"), "{}", p.detail);
}

#[tokio::test]
async fn a_torn_final_line_is_tolerated_and_reported() {
    let (_dir, path, k) = fixture().await;
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"hash":"12ab","prev":"#);
    std::fs::write(&path, text).unwrap();
    let r = verify(&path, &k);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.incomplete_final_line, Some((path.clone(), 25)));
    // Reopening cuts the torn record off and continues the chain.
    let sink = FileSink::open(FileSinkConfig::new(&path).signing_key(k.clone())).unwrap();
    let e = AuditEvent::system(EventType::Authorization, "after", &CorrelationId::None);
    sink.record(&e).await.unwrap();
    drop(sink);
    let r = verify(&path, &k);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!((r.events, r.incomplete_final_line), (21, None));
}

#[tokio::test]
async fn rotation_continues_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let k = key();
    let sink = FileSink::open(
        FileSinkConfig::new(&path)
            .fsync(FsyncPolicy::Always)
            .rotate_at(Some(4096))
            .checkpoint_every(Some(7))
            .signing_key(k.clone()),
    )
    .unwrap();
    for i in 0..100 {
        let d = format!("rotation {i}");
        let e = AuditEvent::system(
            EventType::ResourceAccess,
            "resources/read",
            &CorrelationId::None,
        )
        .with_detail(&d);
        sink.record(&e).await.unwrap();
    }
    drop(sink);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".checkpoints"))
        .collect();
    assert!(files.len() > 3, "{files:?}");
    // Given in a shuffled order: the verifier puts them in chain order.
    files.sort();
    files.reverse();
    let r = verify_files(&files, Some(&k.verifying_key()), None).unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 100);
    // The first record of each rotated file links to the last of the one before it.
    let mut prev_hash = None;
    for n in 1.. {
        let f = dir.path().join(format!("audit.jsonl.{n}"));
        if !f.exists() {
            break;
        }
        let l = lines(&f);
        let first: Value = serde_json::from_str(&l[0]).unwrap();
        if let Some(h) = &prev_hash {
            assert_eq!(&first["prev"], h);
        }
        let last: Value = serde_json::from_str(l.last().unwrap()).unwrap();
        prev_hash = Some(last["hash"].clone());
    }
    // A whole rotated file missing is a deletion.
    let without: Vec<PathBuf> = files
        .iter()
        .filter(|p| !p.ends_with("audit.jsonl.2"))
        .cloned()
        .collect();
    let p = verify_files(&without, Some(&k.verifying_key()), None)
        .unwrap()
        .problem
        .unwrap();
    assert_eq!(p.kind, TamperKind::Deleted, "{p}");
}

#[tokio::test]
async fn a_tiny_queue_applies_back_pressure_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = Arc::new(
        FileSink::open(
            FileSinkConfig::new(&path)
                .queue_capacity(1)
                .fsync(FsyncPolicy::GroupCommit(Duration::from_millis(1))),
        )
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for t in 0..16 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let d = format!("{t}/{i}");
                let e = AuditEvent::system(EventType::Authorization, "x", &CorrelationId::None)
                    .with_detail(&d);
                sink.record(&e).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(sink);
    let r = verify_files(std::slice::from_ref(&path), None, None).unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 800);
    let details: HashSet<String> = lines(&path)
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["detail"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(details.len(), 800);
}

/// 8 concurrent tasks x 100,000 events: exactly 800,000 records, chain intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_8_tasks_x_100k_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let k = key();
    let sink = Arc::new(
        FileSink::open(
            FileSinkConfig::new(&path)
                .fsync(FsyncPolicy::GroupCommit(Duration::from_millis(5)))
                .rotate_at(Some(256 * 1024 * 1024))
                .checkpoint_every(Some(50_000))
                .signing_key(k.clone()),
        )
        .unwrap(),
    );
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            // Pipelined: up to 1024 records in flight per task, every receipt awaited.
            let mut inflight = VecDeque::new();
            for i in 0..100_000u32 {
                let d = format!("{t}:{i}");
                let e = AuditEvent::system(
                    EventType::ToolInvocation,
                    "tools/call",
                    &CorrelationId::None,
                )
                .with_detail(&d);
                inflight.push_back(sink.submit(&e).await.unwrap());
                if inflight.len() >= 1024 {
                    inflight.pop_front().unwrap().await.unwrap();
                }
            }
            for r in inflight {
                r.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let written = started.elapsed();
    sink.close().await.unwrap();
    drop(sink);
    let started = std::time::Instant::now();
    // The log rotated at 256 MiB: verify every file.
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".checkpoints"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let r = verify_files(&files, Some(&k.verifying_key()), None).unwrap();
    eprintln!(
        "load: 800,000 records written in {written:?}, verified in {:?}",
        started.elapsed()
    );
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 800_000);
    assert_eq!(r.checkpoints, 16);
    assert_eq!(r.unsigned_tail, 0);
    // Every (task, i) exactly once.
    let mut text = String::new();
    for f in &files {
        text.push_str(&std::fs::read_to_string(f).unwrap());
    }
    let mut seen = HashSet::with_capacity(800_000);
    for line in text.lines() {
        if let Some(pos) = line.find("\"detail\":\"") {
            let rest = &line[pos + 10..];
            let end = rest.find('"').unwrap();
            assert!(
                seen.insert(rest[..end].to_owned()),
                "duplicate {}",
                &rest[..end]
            );
        }
    }
    assert_eq!(seen.len(), 800_000);
}

const CHILD_ENV: &str = "MCP_SECURITY_AUDIT_CRASH_CHILD";

/// The child half of the crash test: does nothing unless started by it.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let k = mcp_security::audit::read_signing_key(dir.join("audit.key")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sink = Arc::new(
            FileSink::open(
                FileSinkConfig::new(dir.join("audit.jsonl"))
                    .fsync(FsyncPolicy::GroupCommit(Duration::from_millis(2)))
                    .checkpoint_every(Some(100))
                    .signing_key(k),
            )
            .unwrap(),
        );
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let sink = sink.clone();
            let out = out.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let d = format!("crash {t}/{i} {}", "x".repeat(200));
                    let e = AuditEvent::system(
                        EventType::ToolInvocation,
                        "tools/call",
                        &CorrelationId::None,
                    )
                    .with_detail(&d);
                    sink.record(&e).await.unwrap();
                    // Acknowledged: durable under the policy. Tell the parent.
                    use std::io::Write;
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {}", e.event_id).unwrap();
                    o.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn a_writer_killed_mid_stream_leaves_a_log_that_verifies_with_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    std::fs::write(
        dir.path().join("audit.key"),
        mcp_security::audit::signing_key_pem(&k).unwrap(),
    )
    .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < 3000 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the child stopped early"
        );
        if let Some(id) = line.trim().strip_prefix("ACK ") {
            acked.push(id.to_owned());
        }
    }
    // SIGKILL: no shutdown, no final checkpoint, possibly a record half written.
    child.kill().unwrap();
    // Acknowledgements printed before the kill are still in the pipe.
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(id) = line.trim().strip_prefix("ACK ")
            && line.ends_with('\n')
        {
            acked.push(id.to_owned());
        }
    }
    child.wait().unwrap();

    let path = dir.path().join("audit.jsonl");
    let r = verify(&path, &k);
    assert!(r.is_intact(), "{:?}", r.problem);
    eprintln!(
        "crash: {} acknowledged, {} records in the log, {} checkpoints, unsigned tail {}, torn line {:?}",
        acked.len(),
        r.events,
        r.checkpoints,
        r.unsigned_tail,
        r.incomplete_final_line
    );
    assert!(r.checkpoints > 0);
    let text = std::fs::read_to_string(&path).unwrap();
    let in_log: HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["event_id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !in_log.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the log: {missing:?}"
    );
    assert!(r.events as usize >= acked.len());

    // The next writer continues the chain after the crash.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sink = FileSink::open(FileSinkConfig::new(&path).signing_key(k.clone())).unwrap();
        let e = AuditEvent::system(EventType::SecurityEvent, "restart", &CorrelationId::None);
        sink.record(&e).await.unwrap();
    });
    let r2 = verify(&path, &k);
    assert!(r2.is_intact(), "{:?}", r2.problem);
    assert_eq!(r2.events, r.events + 1);
    assert_eq!(r2.incomplete_final_line, None);
}

#[tokio::test]
async fn reopening_a_tampered_log_raises_an_alert() {
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    let last = l.len() - 1;
    l[last] = l[last].replace("\"seq\":23", "\"seq\":99");
    write_lines(&path, &l);
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let seen = alerts.clone();
    let hook = Arc::new(move |a: &SecurityAlert<'_>| seen.lock().unwrap().push(a.kind));
    let sink = FileSink::open(
        FileSinkConfig::new(&path)
            .signing_key(k.clone())
            .alert_hook(hook.clone()),
    )
    .unwrap();
    drop(sink);
    assert_eq!(*alerts.lock().unwrap(), vec![AlertKind::TamperDetected]);

    // A record changed in the middle of the file is found too.
    let (_dir, path, k) = fixture().await;
    let mut l = lines(&path);
    l[3] = l[3].replace("event 3", "event 4");
    write_lines(&path, &l);
    alerts.lock().unwrap().clear();
    let _sink = FileSink::open(FileSinkConfig::new(&path).signing_key(k).alert_hook(hook)).unwrap();
    assert_eq!(*alerts.lock().unwrap(), vec![AlertKind::TamperDetected]);

    // An intact log raises nothing.
    let (_dir, path, k) = fixture().await;
    let quiet = Arc::new(Mutex::new(0));
    let q = quiet.clone();
    let hook = Arc::new(move |_: &SecurityAlert<'_>| *q.lock().unwrap() += 1);
    let _sink = FileSink::open(FileSinkConfig::new(&path).signing_key(k).alert_hook(hook)).unwrap();
    assert_eq!(*quiet.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_sink_that_cannot_write_fails_every_record_and_alerts() {
    // /dev/full takes the open and refuses every write (ENOSPC).
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full here; nothing to test");
        return;
    }
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let hook = Arc::new(move |a: &SecurityAlert<'_>| {
        if a.kind == AlertKind::AuditFailure {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    let sink = FileSink::open(
        FileSinkConfig::new("/dev/full")
            .fsync(FsyncPolicy::Always)
            .rotate_at(None)
            .alert_hook(hook),
    )
    .unwrap();
    for _ in 0..3 {
        let e = AuditEvent::system(EventType::Authorization, "x", &CorrelationId::None);
        assert!(sink.record(&e).await.is_err());
    }
    assert!(count.load(Ordering::Relaxed) >= 3);
}

/// The `seq` of each record line whose `detail` starts with `prefix`, in file order.
fn seqs_with_detail(files: &[PathBuf], prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for f in files {
        for l in lines(f) {
            let v: Value = serde_json::from_str(&l).unwrap();
            if let Some(d) = v["detail"].as_str()
                && d.starts_with(prefix)
            {
                out.push((d.to_owned(), v["seq"].as_u64().unwrap()));
            }
        }
    }
    out
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".checkpoints"))
        .collect()
}

/// With `fsync = "os"` an idle log is written by the caller itself: the record is in the file
/// when `submit` returns, before its receipt is awaited, and the receipt is already resolved.
#[tokio::test]
async fn an_idle_log_is_written_by_the_caller_before_submit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::open(FileSinkConfig::new(&path).fsync(FsyncPolicy::OsBuffered)).unwrap();
    for i in 0..3u64 {
        let d = format!("idle {i}");
        let e = AuditEvent::system(
            EventType::ToolInvocation,
            "tools/call",
            &CorrelationId::None,
        )
        .with_detail(&d);
        let receipt = sink.submit(&e).await.unwrap();
        // Not awaited yet: only a caller write puts it in the file this early.
        assert_eq!(lines(&path).len() as u64, i + 1);
        assert_eq!(receipt.await.unwrap(), i);
    }
    // Through the writer thread instead, the chain simply goes on.
    let queued = FileSink::open(
        FileSinkConfig::new(dir.path().join("queued.jsonl"))
            .fsync(FsyncPolicy::OsBuffered)
            .write_from_caller(false),
    )
    .unwrap();
    let e = AuditEvent::system(
        EventType::ToolInvocation,
        "tools/call",
        &CorrelationId::None,
    );
    assert_eq!(queued.submit(&e).await.unwrap().await.unwrap(), 0);
    drop((sink, queued));
    let r = verify_files(&[path], None, None).unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(r.events, 3);
}

/// Callers writing for themselves and the writer thread writing queued batches (pipelined
/// submits, back-pressure from a small queue, checkpoints by count, rotation) produce one
/// chain with every record exactly once, and one task's pipelined records in the order it
/// submitted them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_writes_and_queued_batches_form_one_ordered_chain() {
    for from_caller in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let k = key();
        let sink = Arc::new(
            FileSink::open(
                FileSinkConfig::new(&path)
                    .fsync(FsyncPolicy::OsBuffered)
                    .queue_capacity(16)
                    .rotate_at(Some(64 * 1024))
                    .checkpoint_every(Some(97))
                    .signing_key(k.clone())
                    .write_from_caller(from_caller),
            )
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for t in 0..6u32 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                let mut inflight = VecDeque::new();
                for i in 0..1500u32 {
                    let d = format!("mix {t}:{i:05}");
                    let e = AuditEvent::system(
                        EventType::ToolInvocation,
                        "tools/call",
                        &CorrelationId::None,
                    )
                    .with_detail(&d);
                    if t % 2 == 0 {
                        // One record at a time, as the layer does: mostly written by the caller
                        // when the others leave the log idle.
                        sink.record(&e).await.unwrap();
                    } else {
                        inflight.push_back(sink.submit(&e).await.unwrap());
                        if inflight.len() >= 32 {
                            inflight.pop_front().unwrap().await.unwrap();
                        }
                    }
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                for r in inflight {
                    r.await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        sink.close().await.unwrap();
        drop(sink);
        let files = log_files(dir.path());
        assert!(files.len() > 1, "the log should have rotated: {files:?}");
        let r = verify_files(&files, Some(&k.verifying_key()), None).unwrap();
        assert!(r.is_intact(), "from_caller {from_caller}: {:?}", r.problem);
        assert_eq!(r.events, 9000);
        assert_eq!(r.unsigned_tail, 0);
        let mut records = seqs_with_detail(&files, "mix ");
        assert_eq!(records.len(), 9000);
        records.sort_by_key(|(_, seq)| *seq);
        let unique: HashSet<&str> = records.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(unique.len(), 9000, "a record was written twice");
        // Each task's records appear in the order it submitted them.
        for t in 0..6u32 {
            let mine: Vec<&str> = records
                .iter()
                .map(|(d, _)| d.as_str())
                .filter(|d| d.starts_with(&format!("mix {t}:")))
                .collect();
            let mut sorted = mine.clone();
            sorted.sort_unstable();
            assert_eq!(mine, sorted, "task {t}'s records out of order");
        }
    }
}

/// A checkpoint due by time is written while the log sits idle after records the callers
/// wrote themselves: the writer thread learns of the new deadline.
#[tokio::test]
async fn a_checkpoint_by_time_follows_caller_writes_on_an_idle_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let k = key();
    let sink = FileSink::open(
        FileSinkConfig::new(&path)
            .fsync(FsyncPolicy::OsBuffered)
            .checkpoint_every(None)
            .checkpoint_interval(Some(Duration::from_millis(150)))
            .signing_key(k.clone()),
    )
    .unwrap();
    for _ in 0..3 {
        let e = AuditEvent::system(EventType::Authorization, "x", &CorrelationId::None);
        sink.submit(&e).await.unwrap().await.unwrap();
    }
    assert_eq!(
        lines(&path).len(),
        3,
        "written by the callers, no checkpoint yet"
    );
    let mut waited = Duration::ZERO;
    while lines(&path).len() < 4 && waited < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let r = verify(&path, &k);
    assert!(r.is_intact(), "{:?}", r.problem);
    assert_eq!(
        (r.events, r.checkpoints, r.unsigned_tail),
        (3, 1, 0),
        "no checkpoint after {waited:?}"
    );
    drop(sink);
}

/// After `close`, a record is refused on the caller's path as on the writer's.
#[tokio::test]
async fn a_closed_sink_refuses_caller_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::open(FileSinkConfig::new(&path).fsync(FsyncPolicy::OsBuffered)).unwrap();
    let e = AuditEvent::system(EventType::Authorization, "x", &CorrelationId::None);
    sink.record(&e).await.unwrap();
    sink.close().await.unwrap();
    assert!(matches!(
        sink.record(&e).await,
        Err(mcp_security::audit::AuditError::Closed)
    ));
    assert!(matches!(
        sink.submit(&e).await,
        Err(mcp_security::audit::AuditError::Closed)
    ));
    drop(sink);
    let r = verify_files(&[path], None, None).unwrap();
    assert_eq!(r.events, 1);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// One signed log, built once: its bytes and its key.
    fn base() -> &'static (Vec<u8>, Vec<u8>, SigningKey) {
        static BASE: std::sync::OnceLock<(Vec<u8>, Vec<u8>, SigningKey)> =
            std::sync::OnceLock::new();
        BASE.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (dir, path, k) = rt.block_on(fixture());
            let log = std::fs::read(&path).unwrap();
            let side = std::fs::read(path.with_file_name("audit.jsonl.checkpoints")).unwrap();
            drop(dir);
            (log, side, k)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any change of one byte anywhere in a signed log is found (or, for the final newline,
        /// reported as an incomplete last line that the signed sidecar then shows truncated).
        #[test]
        fn any_single_byte_change_is_found(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let (log, side, k) = base();
            let i = pos.index(log.len());
            prop_assume!(log[i] != byte);
            let mut bad = log.clone();
            bad[i] = byte;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            std::fs::write(&path, &bad).unwrap();
            std::fs::write(dir.path().join("audit.jsonl.checkpoints"), side).unwrap();
            let r = verify(&path, k);
            prop_assert!(r.problem.is_some(), "byte {i} changed to {byte:#04x} went unseen: {r:?}");
        }

        /// Arbitrary bytes never make the verifier panic.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            std::fs::write(&path, &data).unwrap();
            let _ = verify_files(&[path], Some(&base().2.verifying_key()), None).unwrap();
        }
    }
}
