//! What the stdio proxy adds to a `tools/call`, end to end, against the same server without it,
//! in the same run:
//!
//! - in process: a real rmcp client and a real rmcp server joined by in-memory pipes, directly
//!   or through `Proxy::relay` (two pipes, the whole pipeline, audit to a hash-chained file);
//! - as processes: a real rmcp client starting tests/proxy/raw_server.py (an SDK-less Python
//!   server) directly, or `mcp-security proxy` in front of it (OS pipes both ways).
//!
//! Besides criterion's per-iteration medians it prints p50/p90/p99 of single calls, since the
//! target is a p50 ("under 50 µs added per call beyond the pipe itself").
//!
//! `cargo bench --features cli --bench proxy`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    reason = "a benchmark"
)]

#[path = "../examples/support/relay.rs"]
mod relay;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_security::adapters::proxy::Proxy;
use mcp_security::policy::Policy;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use sha2::{Digest, Sha256};

const KEY: &str = "bench-proxy-key-0123456789abcdef";

#[derive(Clone)]
struct Echo;

impl ServerHandler for Echo {
    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = req
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

fn policy(dir: &Path) -> PathBuf {
    let hash: String = Sha256::digest(KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let p = dir.join("policy.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[[auth.api_keys]]
host = "desktop"
key_sha256 = "{hash}"

[[tools]]
name = "echo"
allowed_hosts = ["desktop"]

[redaction]
detectors = ["email", "credit_card"]

[audit]
path = "audit.jsonl"
fsync = "os"
"#
        ),
    )
    .unwrap();
    p
}

fn echo_call() -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new("echo");
    p.arguments = serde_json::json!({"text": "hello from the benchmark"})
        .as_object()
        .cloned();
    p
}

/// rmcp client and server over one in-memory pipe.
async fn direct() -> RunningService<RoleClient, ()> {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = Echo.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

/// rmcp client, the proxy's relay, rmcp server: two in-memory pipes.
async fn proxied(policy: &Path) -> RunningService<RoleClient, ()> {
    let policy = Policy::load(policy).unwrap();
    let proxy = Proxy::new(policy.build().unwrap(), policy.proxy().clone())
        .with_credentials(mcp_security::Credentials::api_key(KEY));
    relay::through_proxy(proxy, Echo).await
}

/// rmcp client starting `program args` as a child (OS pipes).
async fn child(program: &Path, args: &[&str]) -> RunningService<RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env("MCP_API_KEY", KEY);
    ().serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .unwrap()
}

/// p50, p90 and p99 of `n` single calls, in microseconds.
async fn percentiles(client: &RunningService<RoleClient, ()>, n: usize) -> [f64; 3] {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.call_tool(echo_call()).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: f64| {
        let i = ((n as f64 - 1.0) * q).round() as usize;
        times[i].as_secs_f64() * 1e6
    };
    [at(0.5), at(0.9), at(0.99)]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy_path = policy(dir.path());
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("python3"))
                    .find(|p| p.is_file())
            })
        });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/raw_server.py");

    let mut g = c.benchmark_group("proxy/in_process");
    let client = rt.block_on(direct());
    g.bench_function("direct", |b| {
        b.to_async(&rt)
            .iter(|| async { client.call_tool(echo_call()).await.unwrap() });
    });
    let direct_p = rt.block_on(percentiles(&client, 20_000));
    drop(client);
    let client = rt.block_on(proxied(&policy_path));
    g.bench_function("through_proxy", |b| {
        b.to_async(&rt)
            .iter(|| async { client.call_tool(echo_call()).await.unwrap() });
    });
    let proxied_p = rt.block_on(percentiles(&client, 20_000));
    drop(client);
    g.finish();
    println!(
        "in process, single calls (µs) p50/p90/p99: direct {direct_p:.1?}, through the proxy {proxied_p:.1?}"
    );

    let Some(python) = python else {
        println!("python3 not found: the process arms are skipped");
        return;
    };
    let (py, sc) = (python.to_str().unwrap(), script.to_str().unwrap());
    let mut g = c.benchmark_group("proxy/processes");
    g.measurement_time(Duration::from_secs(8));
    let client = rt.block_on(child(Path::new(py), &[sc]));
    g.bench_function("direct", |b| {
        b.to_async(&rt)
            .iter(|| async { client.call_tool(echo_call()).await.unwrap() });
    });
    let direct_p = rt.block_on(percentiles(&client, 5_000));
    rt.block_on(client.cancel()).unwrap();
    let bin = env!("CARGO_BIN_EXE_mcp-security");
    let client = rt.block_on(child(
        Path::new(bin),
        &[
            "proxy",
            "--policy",
            policy_path.to_str().unwrap(),
            "--",
            py,
            sc,
        ],
    ));
    g.bench_function("through_proxy", |b| {
        b.to_async(&rt)
            .iter(|| async { client.call_tool(echo_call()).await.unwrap() });
    });
    let proxied_p = rt.block_on(percentiles(&client, 5_000));
    rt.block_on(client.cancel()).unwrap();
    g.finish();
    println!(
        "processes, single calls (µs) p50/p90/p99: direct {direct_p:.1?}, through the proxy {proxied_p:.1?}"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
