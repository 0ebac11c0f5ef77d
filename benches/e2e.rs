//! End to end: `tools/call echo` from a real rmcp client to a real rmcp server, unwrapped and
//! wrapped, in the same run (issue #8).
//!
//! - In process: client and server over a tokio duplex pipe on one current-thread runtime. The
//!   wrapped server is `SecureServer` with the demo policy (API-key authentication, tool ACL,
//!   argument validation, redaction of the result) and a hash-chained `FileSink` with signed
//!   checkpoints in a temp dir, once per fsync policy, plus an in-memory sink that isolates
//!   what the file costs.
//! - Streamable HTTP on 127.0.0.1: rmcp's `StreamableHttpService` served by axum, bare, and
//!   behind `HttpSecurityLayer` + `SecureServer` (and behind the HTTP layer alone, to split the
//!   cost), driven by rmcp's own Streamable HTTP client
//!   (reqwest, keep-alive): per-call latency with one client, and throughput with 8 and 16
//!   concurrent clients (one session each). The server runs on its own two-worker runtime, the
//!   clients on another; both share the machine's cores, so the process's CPU is also split by
//!   thread to report what the server spent per call.
//! - Over stdio through the proxy: not here yet (another part of issue #8); see `main`.
//!
//! `cargo bench --features http --bench e2e`; the summary (percentiles, ratios, CPU per call)
//! is printed at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    reason = "benchmark harness"
)]

#[path = "../examples/support/demo.rs"]
mod demo;
#[path = "../examples/support/http.rs"]
mod http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use criterion::{Criterion, Throughput};
use demo::{DemoKeys, DemoServer, demo_policy};
use mcp_security::adapters::http::HttpSecurityLayer;
use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::audit::{
    AuditError, AuditEvent, AuditSink, FileSink, FileSinkConfig, FsyncPolicy,
};
use mcp_security::policy::Policy;
use mcp_security::{SecurityLayer, audit};
use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tower_layer::Layer;

/// Concurrent clients in the throughput runs.
const CLIENTS: [usize; 2] = [8, 16];
/// Calls timed one by one for the percentiles.
const PERCENTILE_CALLS: usize = 4000;

fn echo() -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new("echo");
    p.arguments = json!({"text": "hello"}).as_object().cloned();
    p
}

async fn call(peer: &Peer<RoleClient>, req: &CallToolRequestParams) {
    let r = peer.call_tool(req.clone()).await.unwrap();
    // Both arms must really answer the call (the wrapped one could refuse it as an error).
    assert_ne!(r.is_error, Some(true), "the echo call failed: {r:?}");
}

/// The audit sinks a wrapped server is measured with.
#[derive(Clone, Copy, Debug)]
enum Audit {
    /// Encodes the record as the file sink does, keeps nothing: the layer without file I/O.
    Memory,
    /// The hash-chained file, `fsync = "os"`: written (by the caller when the log is idle)
    /// before the answer, fsynced at checkpoints, rotation and shutdown.
    FileOs,
    /// The same with every record handed to the writer thread (the behaviour before the
    /// caller-writes change; `FileSinkConfig::write_from_caller(false)`).
    FileOsViaWriter,
    /// The hash-chained file with the default policy, `fsync = "always"`.
    FileAlways,
}

impl Audit {
    fn name(self) -> &'static str {
        match self {
            Audit::Memory => "wrapped_audit_memory",
            Audit::FileOs => "wrapped_audit_file_os",
            Audit::FileOsViaWriter => "wrapped_audit_file_os_via_writer",
            Audit::FileAlways => "wrapped_audit_file_always",
        }
    }

    /// A sink writing in `dir`, as the policy's `[audit]` table builds it (plus the setting the
    /// policy file does not expose, for the before/after comparison).
    fn sink(self, dir: &Path) -> Arc<dyn AuditSink> {
        // As `[audit] signing_key_file` would: checkpoints signed every 10,000 records.
        let key = audit::generate_signing_key().unwrap();
        let file = |fsync, from_caller| -> Arc<dyn AuditSink> {
            Arc::new(
                FileSink::open(
                    FileSinkConfig::new(dir.join(format!("{}.jsonl", self.name())))
                        .fsync(fsync)
                        .signing_key(key.clone())
                        .write_from_caller(from_caller),
                )
                .unwrap(),
            )
        };
        match self {
            Audit::Memory => Arc::new(EncodeOnlySink),
            Audit::FileOs => file(FsyncPolicy::OsBuffered, true),
            Audit::FileOsViaWriter => file(FsyncPolicy::OsBuffered, false),
            Audit::FileAlways => file(FsyncPolicy::Always, true),
        }
    }
}

/// Encodes each record (canonical JSON, as the file sink does) and drops it: the audit stage
/// without the file, and without `MemorySink`'s growth over millions of calls.
#[derive(Debug)]
struct EncodeOnlySink;

#[async_trait::async_trait]
impl AuditSink for EncodeOnlySink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let mut body = Vec::with_capacity(512);
        event.write_canonical(&mut body)?;
        std::hint::black_box(body);
        Ok(())
    }
}

/// The demo policy's layer (API keys, ACL, validation, redaction) with `sink` as its audit.
fn layer(policy: &Policy, sink: Arc<dyn AuditSink>) -> SecurityLayer {
    policy
        .builder_without_audit()
        .audit_sink_arc(sink)
        .build()
        .unwrap()
}

/// Summary lines, printed as they come and again together at the end.
static SUMMARY: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(line: String) {
    println!("{line}");
    SUMMARY.lock().unwrap().push(line);
}

/// Times `n` calls one by one; returns (p50, p90, p99) in microseconds.
async fn percentiles(peer: &Peer<RoleClient>, n: usize) -> (f64, f64, f64) {
    let req = echo();
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        call(peer, &req).await;
        t.push(start.elapsed());
    }
    t.sort();
    let at = |q: f64| {
        let i = ((t.len() as f64 - 1.0) * q).round() as usize;
        t.get(i).copied().unwrap_or_default().as_secs_f64() * 1e6
    };
    (at(0.50), at(0.90), at(0.99))
}

// ---------------------------------------------------------------------------------------------
// In process: a duplex pipe.

fn in_process(c: &mut Criterion, keys: &DemoKeys, policy: &Policy, dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut arms: Vec<(&str, RunningService<RoleClient, ()>)> = Vec::new();
    let bare = rt.block_on(async {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let running = DemoServer.serve(server_io).await.unwrap();
            let _ = running.waiting().await;
        });
        ().serve(client_io).await.unwrap()
    });
    arms.push(("unwrapped", bare));
    for a in [
        Audit::Memory,
        Audit::FileOs,
        Audit::FileOsViaWriter,
        Audit::FileAlways,
    ] {
        let l = layer(policy, a.sink(dir));
        let client = rt
            .block_on(demo::connect(&l, &keys.analytics))
            .expect("the wrapped server accepts the analytics key");
        arms.push((a.name(), client));
    }

    let req = echo();
    let mut g = c.benchmark_group("e2e_in_process");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, client) in &arms {
        let peer = client.peer().clone();
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| call(&peer, &req));
        });
    }
    g.finish();
    for (name, client) in &arms {
        let (p50, p90, p99) = rt.block_on(percentiles(client.peer(), PERCENTILE_CALLS));
        note(format!(
            "in_process {name}: p50 {p50:.1} us, p90 {p90:.1} us, p99 {p99:.1} us ({PERCENTILE_CALLS} calls)"
        ));
    }
    rt.block_on(async {
        for (_, client) in arms {
            let _ = client.cancel().await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP on loopback.

const SERVER_THREADS: &str = "e2e-server";
const CLIENT_THREADS: &str = "e2e-client";

/// CPU seconds used so far by this process's threads whose name starts with each prefix, from
/// `/proc/self/task/*/stat` (Linux; empty elsewhere). The audit writer thread counts as server.
fn cpu_by_thread() -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    // USER_HZ: 100 on every Linux this runs on (the kernel exports ticks in these units).
    const TICK: f64 = 0.01;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ..."; comm may hold spaces, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after "state".
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
            .sum();
        let who = if comm.starts_with(SERVER_THREADS) || comm.starts_with("mcp-security") {
            "server"
        } else if comm.starts_with(CLIENT_THREADS) {
            "client"
        } else {
            "other"
        };
        *out.entry(who).or_insert(0.0) += ticks * TICK;
    }
    out
}

/// One HTTP arm: a server on a loopback port and `max(CLIENTS)` connected rmcp clients.
struct HttpArm {
    name: &'static str,
    clients: Vec<RunningService<RoleClient, ()>>,
    /// (calls, server CPU seconds, client CPU seconds) over the throughput runs.
    cpu: Mutex<(u64, f64, f64)>,
}

/// What stands in front of the demo server over HTTP.
enum Front {
    /// Nothing: rmcp's service alone.
    Bare,
    /// Only `HttpSecurityLayer` (bearer authentication, Host/Origin, session binding, body
    /// limit) in front of the bare handler: the HTTP layer's share. (`SecureServer` alone is
    /// no deployment: over HTTP it takes the caller from the HTTP layer and refuses without it.)
    HttpLayerOnly(SecurityLayer),
    /// Both, as `examples/http_server.rs` wires them.
    Both(SecurityLayer),
}

async fn serve_http(front: Front, policy: &Policy) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Without TCP_NODELAY the last small write of each SSE response waits for the client's
    // delayed ACK: every call took 44 ms (both arms) in a first run.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let config = http::http_config(policy, addr).unwrap();
    // Behind the HTTP layer, which checks Host and Origin itself with the policy's lists.
    let rmcp_config = || {
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_max_request_body_bytes(config.max_body_bytes())
    };
    let sessions = || LocalSessionManager::default().into();
    let app = match front {
        Front::Bare => axum::Router::new().fallback_service(StreamableHttpService::new(
            || Ok(DemoServer),
            sessions(),
            StreamableHttpServerConfig::default(),
        )),
        Front::HttpLayerOnly(l) => {
            let mcp = StreamableHttpService::new(|| Ok(DemoServer), sessions(), rmcp_config());
            axum::Router::new().fallback_service(HttpSecurityLayer::new(config, l).layer(mcp))
        }
        Front::Both(l) => {
            let mcp = StreamableHttpService::new(
                {
                    let l = l.clone();
                    move || Ok(SecureServer::new(DemoServer, l.clone()))
                },
                sessions(),
                rmcp_config(),
            );
            axum::Router::new().fallback_service(HttpSecurityLayer::new(config, l).layer(mcp))
        }
    };
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn http_clients(
    addr: SocketAddr,
    key: Option<&str>,
    n: usize,
) -> Vec<RunningService<RoleClient, ()>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut config =
            StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"));
        if let Some(k) = key {
            config = config.auth_header(k.to_owned());
        }
        // One reqwest client (one keep-alive connection pool) per MCP client.
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let transport = StreamableHttpClientTransport::with_client(http, config);
        out.push(().serve(transport).await.unwrap());
    }
    out
}

/// `total` calls spread over the first `n` clients, all in flight at once; the wall time.
async fn burst(clients: &[Peer<RoleClient>], total: u64) -> Duration {
    let n = clients.len() as u64;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for (i, peer) in clients.iter().enumerate() {
        let calls = total / n + u64::from((i as u64) < total % n);
        let peer = peer.clone();
        tasks.push(tokio::spawn(async move {
            let req = echo();
            for _ in 0..calls {
                call(&peer, &req).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn over_http(c: &mut Criterion, keys: &DemoKeys, policy: &Policy, dir: &Path) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let most = CLIENTS.iter().copied().max().unwrap_or(1);
    let mut arms = Vec::new();
    let mut add = |name: &'static str, front: Front, key: Option<&str>| {
        let addr = server_rt.block_on(serve_http(front, policy));
        arms.push(HttpArm {
            name,
            clients: client_rt.block_on(http_clients(addr, key, most)),
            cpu: Mutex::new((0, 0.0, 0.0)),
        });
    };
    add("unwrapped", Front::Bare, None);
    add(
        "http_layer_only",
        Front::HttpLayerOnly(layer(policy, Audit::Memory.sink(dir))),
        Some(&keys.analytics),
    );
    for a in [Audit::Memory, Audit::FileOs, Audit::FileAlways] {
        let l = layer(policy, a.sink(dir));
        add(a.name(), Front::Both(l), Some(&keys.analytics));
    }

    let req = echo();
    let mut g = c.benchmark_group("e2e_http_latency");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for arm in &arms {
        let peer = arm.clients[0].peer().clone();
        g.bench_function(arm.name, |b| {
            b.to_async(&client_rt).iter(|| call(&peer, &req));
        });
    }
    g.finish();

    for n in CLIENTS {
        let mut g = c.benchmark_group(format!("e2e_http_throughput_{n}_clients"));
        // One element per call: criterion reports calls per second.
        g.throughput(Throughput::Elements(1))
            .sample_size(15)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(6));
        for arm in &arms {
            let peers: Vec<Peer<RoleClient>> = arm
                .clients
                .iter()
                .take(n)
                .map(|c| c.peer().clone())
                .collect();
            g.bench_function(arm.name, |b| {
                b.iter_custom(|iters| {
                    let before = cpu_by_thread();
                    let took = client_rt.block_on(burst(&peers, iters));
                    let after = cpu_by_thread();
                    let spent = |who| {
                        after.get(who).copied().unwrap_or_default()
                            - before.get(who).copied().unwrap_or_default()
                    };
                    let mut acc = arm.cpu.lock().unwrap();
                    acc.0 += iters;
                    acc.1 += spent("server");
                    acc.2 += spent("client");
                    took
                });
            });
        }
        g.finish();
    }

    for arm in &arms {
        let (p50, p90, p99) =
            client_rt.block_on(percentiles(arm.clients[0].peer(), PERCENTILE_CALLS));
        note(format!(
            "http {}: one client, p50 {p50:.1} us, p90 {p90:.1} us, p99 {p99:.1} us ({PERCENTILE_CALLS} calls)",
            arm.name
        ));
        let (calls, server, client) = *arm.cpu.lock().unwrap();
        if calls > 0 && server > 0.0 {
            note(format!(
                "http {}: CPU per call over {calls} calls of the throughput runs: server threads {:.1} us, client threads {:.1} us",
                arm.name,
                server / calls as f64 * 1e6,
                client / calls as f64 * 1e6
            ));
        }
    }
    // The same-run ratio against the target. Other builds on a shared machine come and go
    // within seconds and halve the calls per second while they run, so long runs of one arm
    // after another compare machine states, not servers. Short rounds instead, the unwrapped
    // arm first and each wrapped arm right after it, each wrapped round divided by the
    // unwrapped round just before it; the median of those ratios over the rounds.
    const ROUNDS: usize = 21;
    const ROUND_CALLS: u64 = 2_000;
    for n in CLIENTS {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); arms.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); arms.len()];
        for _round in 0..ROUNDS {
            let mut base = None;
            for (i, arm) in arms.iter().enumerate() {
                let peers: Vec<Peer<RoleClient>> = arm
                    .clients
                    .iter()
                    .take(n)
                    .map(|c| c.peer().clone())
                    .collect();
                let took = client_rt.block_on(burst(&peers, ROUND_CALLS));
                let rate = ROUND_CALLS as f64 / took.as_secs_f64();
                let b = *base.get_or_insert(rate);
                rates[i].push(rate);
                ratios[i].push(rate / b);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or_default()
        };
        for ((arm, r), q) in arms.iter().zip(rates.iter_mut()).zip(ratios.iter_mut()) {
            // Sorted by `median`, so the ends and quarters below are the extremes and quartiles.
            let rate = median(r);
            let ratio = median(q);
            let (lo, hi) = (
                q.get(q.len() / 4).copied().unwrap_or_default(),
                q.get(q.len() * 3 / 4).copied().unwrap_or_default(),
            );
            note(format!(
                "http {n} clients {}: median {rate:.0} calls/s over {ROUNDS} rounds of {ROUND_CALLS} calls (min {:.0}, max {:.0}); {:.1} % of the unwrapped round before it (median; quartiles {:.1}-{:.1} %; target at least 90 %)",
                arm.name,
                r.first().copied().unwrap_or_default(),
                r.last().copied().unwrap_or_default(),
                ratio * 100.0,
                lo * 100.0,
                hi * 100.0,
            ));
        }
    }
    client_rt.block_on(async {
        for arm in arms {
            for client in arm.clients {
                let _ = client.cancel().await;
            }
        }
    });
    drop(client_rt);
    drop(server_rt);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let keys = DemoKeys::generate();
    // A real disk (the work tree's file system), not tmpfs: fsync must mean something.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let policy =
        Policy::from_toml_str(&demo_policy(&keys, &dir.path().join("policy.jsonl"))).unwrap();
    note(format!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    in_process(&mut c, &keys, &policy, dir.path());
    over_http(&mut c, &keys, &policy, dir.path());
    // Issue #8's stdio part (a wrapped server behind the stdio proxy, as a child process) goes
    // here, as `stdio_proxy(&mut c, &keys, &policy, dir.path())`, so its figures land in the same
    // run as the two transports above.
    note(format!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    println!("\n== e2e summary ==");
    for line in SUMMARY.lock().unwrap().iter() {
        println!("{line}");
    }
    c.final_summary();
}
