//! The audit trail's cost: records per second into the hash-chained file (per fsync policy), and
//! the latency the audit record adds to a `tools/call` through `SecureServer` (per sink), in the
//! same run as an in-memory sink.
//!
//! Also one record's encoding, field by field against serde (`audit_encode`).
//!
//! Run on one core to check the target: `taskset -c 0 cargo bench --bench audit`.
//! The latency group also measures the file sinks with `write_from_caller(false)` (every record
//! through the writer thread, as before callers wrote an idle log themselves), in the same run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use demo::{DemoKeys, DemoServer, demo_policy};
use mcp_security::CorrelationId;
use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::audit::{
    AuditEvent, AuditSink, EventType, FileSink, FileSinkConfig, FsyncPolicy, MemorySink,
    generate_signing_key,
};
use mcp_security::policy::Policy;
use mcp_security::{Credentials, Transport};
use rmcp::model::{CallToolRequestParams, NumberOrString};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, ServerHandler, ServiceExt};
use serde_json::json;

const BATCH: u64 = 20_000;

fn sink(dir: &std::path::Path, name: &str, fsync: FsyncPolicy) -> FileSink {
    sink_with(dir, name, fsync, true)
}

fn sink_with(dir: &std::path::Path, name: &str, fsync: FsyncPolicy, from_caller: bool) -> FileSink {
    FileSink::open(
        FileSinkConfig::new(dir.join(name))
            .fsync(fsync)
            .queue_capacity(8192)
            .checkpoint_every(Some(10_000))
            .signing_key(generate_signing_key().unwrap())
            .write_from_caller(from_caller),
    )
    .unwrap()
}

/// `BATCH` records from one task, pipelined (up to 8192 in flight), every receipt awaited.
async fn pump(sink: &FileSink) {
    let cid = CorrelationId::Number(7);
    let mut inflight = VecDeque::with_capacity(8192);
    for _ in 0..BATCH {
        let e = AuditEvent::system(EventType::ToolInvocation, "tools/call", &cid)
            .with_server_id("bench")
            .with_detail("query_database allowed by tools[2]");
        inflight.push_back(sink.submit(&e).await.unwrap());
        if inflight.len() == 8192 {
            inflight.pop_front().unwrap().await.unwrap();
        }
    }
    for r in inflight {
        r.await.unwrap();
    }
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A real disk (the work tree's file system), not tmpfs: fsync must mean something.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let mut g = c.benchmark_group("audit_file_records");
    g.throughput(Throughput::Elements(BATCH))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, policy, from_caller) in [
        (
            "group_commit_5ms",
            FsyncPolicy::GroupCommit(Duration::from_millis(5)),
            true,
        ),
        ("fsync_always", FsyncPolicy::Always, true),
        ("os_buffered", FsyncPolicy::OsBuffered, true),
        // One producer pipelining into an idle `os` log writes most records itself, one
        // `write(2)` each; through the writer thread they are batched.
        ("os_buffered_via_writer", FsyncPolicy::OsBuffered, false),
    ] {
        let s = sink_with(dir.path(), name, policy, from_caller);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(pump(&s));
                }
                start.elapsed()
            })
        });
        drop(s);
        // Keep the disk from filling over the runs.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let _ = std::fs::remove_file(e.unwrap().path());
        }
    }
    g.finish();
}

fn params(name: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name);
    p.arguments = args.as_object().cloned();
    p
}

fn peer(rt: &tokio::runtime::Runtime) -> Peer<RoleServer> {
    rt.block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let running = DemoServer.serve(server_io).await.unwrap();
            let _ = tx.send(running.peer().clone());
            let _ = running.waiting().await;
        });
        let client = ().serve(client_io).await.unwrap();
        let peer = rx.await.unwrap();
        std::mem::forget(client);
        peer
    })
}

fn latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = peer(&rt);
    let keys = DemoKeys::generate();
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let policy =
        Policy::from_toml_str(&demo_policy(&keys, &dir.path().join("unused.jsonl"))).unwrap();
    let secured = |sink: Arc<dyn AuditSink>| {
        let layer = policy
            .builder_without_audit()
            .audit_sink_arc(sink)
            .build()
            .unwrap();
        SecureServer::new(DemoServer, layer)
            .with_credentials(Credentials::api_key(keys.analytics.clone()))
            .with_transport(Transport::InProcess)
    };
    let cx = |n: i64| RequestContext::new(NumberOrString::Number(n), peer.clone());
    let echo = params("echo", json!({"text": "hello"}));

    let mut g = c.benchmark_group("tools_call_audit");
    g.sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("unwrapped", |b| {
        b.to_async(&rt)
            .iter(|| async { DemoServer.call_tool(echo.clone(), cx(1)).await.unwrap() })
    });
    let cases: Vec<(&str, Arc<dyn AuditSink>)> = vec![
        ("memory_sink", Arc::new(NullCountingSink::default())),
        (
            "chained_file_dev_null",
            Arc::new(FileSink::open(FileSinkConfig::new("/dev/null").rotate_at(None)).unwrap()),
        ),
        // The same two sinks with every record handed to the writer thread: the behaviour
        // before callers wrote an idle log themselves, measured in the same run.
        (
            "chained_file_dev_null_via_writer",
            Arc::new(
                FileSink::open(
                    FileSinkConfig::new("/dev/null")
                        .rotate_at(None)
                        .write_from_caller(false),
                )
                .unwrap(),
            ),
        ),
        (
            "chained_file_os_buffered",
            Arc::new(sink(dir.path(), "os.jsonl", FsyncPolicy::OsBuffered)),
        ),
        (
            "chained_file_os_buffered_via_writer",
            Arc::new(sink_with(
                dir.path(),
                "os_via_writer.jsonl",
                FsyncPolicy::OsBuffered,
                false,
            )),
        ),
        (
            "chained_file_fsync_always",
            Arc::new(sink(dir.path(), "always.jsonl", FsyncPolicy::Always)),
        ),
        (
            "chained_file_group_commit_2ms",
            Arc::new(sink(
                dir.path(),
                "group.jsonl",
                FsyncPolicy::GroupCommit(Duration::from_millis(2)),
            )),
        ),
    ];
    for (name, s) in cases {
        let server = secured(s);
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { server.call_tool(echo.clone(), cx(1)).await.unwrap() })
        });
    }
    g.finish();
    let _ = MemorySink::new();
}

/// The in-memory baseline without the memory growth of `MemorySink` over millions of
/// iterations: encodes the record as `MemorySink` does, then drops it.
#[derive(Debug, Default)]
struct NullCountingSink(std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl AuditSink for NullCountingSink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), mcp_security::audit::AuditError> {
        let v = serde_json::to_value(event).unwrap();
        std::hint::black_box(v);
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// One record's encoding, as a `tools/call` over HTTP fills it, three ways in the same run: the
/// field-by-field encoder records use, the derived `Serialize` through serde_json (what records
/// used before), and the generic canonical encoder (a `Value`, keys sorted).
fn encode(c: &mut Criterion) {
    let cid = CorrelationId::Number(41);
    let rule = mcp_security::RuleId::new("tools[0]");
    let mut e =
        AuditEvent::system(EventType::ToolInvocation, "tools/call", &cid).with_server_id("demo");
    e.transport = Transport::Http;
    e.session_id = Some("5f0c4a8e-2b1d-4c7a-9e3f-7a6b5c4d3e2f");
    e.peer_addr = Some("127.0.0.1".parse().unwrap());
    e.user_agent = Some("rmcp/3.11");
    e.host = Some("analytics");
    e.subject = Some("analytics");
    e.auth_method = Some(mcp_security::AuthMethod::ApiKey);
    e.target = Some("echo");
    e.tool_name = Some("echo");
    e.rule = Some(&rule);
    e.stage = mcp_security::Stage::Redaction;
    e.latency_us = 37;
    let mut g = c.benchmark_group("audit_encode");
    let mut out = Vec::with_capacity(1024);
    g.bench_function("field_by_field", |b| {
        b.iter(|| {
            out.clear();
            e.write_canonical(&mut out).unwrap();
            std::hint::black_box(&out);
        });
    });
    g.bench_function("serde_derive", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, &e).unwrap();
            std::hint::black_box(&out);
        });
    });
    g.bench_function("generic_canonical", |b| {
        b.iter(|| {
            out.clear();
            mcp_security::audit::to_canonical_json(&e, &mut out).unwrap();
            std::hint::black_box(&out);
        });
    });
    g.finish();
}

criterion_group!(benches, encode, throughput, latency);
criterion_main!(benches);
