//! The layer's added cost on a `tools/call`: the same call through the unwrapped handler and
//! through `SecureServer`, in the same run, on the allow path and denied at each stage.
//!
//! Both arms build the same rmcp `RequestContext` and request per iteration, so the difference
//! between them is what the layer adds: frame limits, authentication (SHA-256 of the key and a
//! constant-time scan), authorization, validation, redaction of the result and the audit record.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use demo::{DemoKeys, DemoServer, demo_policy};
use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::policy::Policy;
use mcp_security::{Credentials, Transport};
use rmcp::model::{CallToolRequestParams, NumberOrString};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, ServerHandler, ServiceExt};
use serde_json::json;

fn params(name: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name);
    p.arguments = args.as_object().cloned();
    p
}

/// A live server-side peer, so the handlers get a real `RequestContext`.
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
        // Keep the client alive for the whole benchmark.
        std::mem::forget(client);
        peer
    })
}

fn secured(keys: &DemoKeys, audit: &Path, key: &str) -> SecureServer<DemoServer> {
    let layer = Policy::from_toml_str(&demo_policy(keys, audit))
        .unwrap()
        .build()
        .unwrap();
    SecureServer::new(DemoServer, layer)
        .with_credentials(Credentials::api_key(key))
        .with_transport(Transport::InProcess)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = peer(&rt);
    let keys = DemoKeys::generate();
    // /dev/null: the full audit path (encode and write(2) per record) without growing a file by
    // gigabytes over millions of iterations; `allow_audit_to_file` below measures a real file.
    let null = Path::new("/dev/null");
    let cx = |n: i64| RequestContext::new(NumberOrString::Number(n), peer.clone());
    let echo = params("echo", json!({"text": "hello"}));

    let mut g = c.benchmark_group("tools_call");
    g.sample_size(60)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));

    g.bench_function("unwrapped", |b| {
        b.to_async(&rt)
            .iter(|| async { DemoServer.call_tool(echo.clone(), cx(1)).await.unwrap() })
    });

    let allow = secured(&keys, null, &keys.analytics);
    g.bench_function("secured_allow", |b| {
        b.to_async(&rt)
            .iter(|| async { allow.call_tool(echo.clone(), cx(1)).await.unwrap() })
    });

    let big = params("echo", json!({"text": "x".repeat(70 * 1024)}));
    g.bench_function("deny_frame", |b| {
        b.to_async(&rt)
            .iter(|| async { allow.call_tool(big.clone(), cx(1)).await.unwrap_err() })
    });

    let wrong = secured(&keys, null, "mcpk_wrong_key");
    g.bench_function("deny_authentication", |b| {
        b.to_async(&rt)
            .iter(|| async { wrong.call_tool(echo.clone(), cx(1)).await.unwrap_err() })
    });

    let limited = secured(&keys, null, &keys.limited);
    let delete = params("delete_all_data", json!({}));
    g.bench_function("deny_authorization", |b| {
        b.to_async(&rt)
            .iter(|| async { limited.call_tool(delete.clone(), cx(1)).await.unwrap_err() })
    });

    let injection = params(
        "query_database",
        json!({"query": "'; DROP TABLE users; --"}),
    );
    g.bench_function("deny_validation", |b| {
        b.to_async(&rt)
            .iter(|| async { limited.call_tool(injection.clone(), cx(1)).await.unwrap() })
    });

    // A result with an e-mail and a card number: redaction has work to do.
    let query = params(
        "query_database",
        json!({"query": "SELECT id FROM orders", "limit": 5}),
    );
    g.bench_function("unwrapped_pii_result", |b| {
        b.to_async(&rt)
            .iter(|| async { DemoServer.call_tool(query.clone(), cx(1)).await.unwrap() })
    });
    g.bench_function("secured_allow_redacting", |b| {
        b.to_async(&rt)
            .iter(|| async { limited.call_tool(query.clone(), cx(1)).await.unwrap() })
    });
    g.finish();

    // A real append-only file: fewer samples, so the file stays small.
    let dir = tempfile::tempdir().unwrap();
    let file = secured(&keys, &dir.path().join("audit.jsonl"), &keys.analytics);
    let mut g = c.benchmark_group("tools_call_file_audit");
    g.sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    g.bench_function("secured_allow_audit_to_file", |b| {
        b.to_async(&rt)
            .iter(|| async { file.call_tool(echo.clone(), cx(1)).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
