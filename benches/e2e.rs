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
//! - Over stdio through the proxy: benches/proxy.rs.
//!
//! - Streamable HTTP with the server alone on one core and a light load generator (raw
//!   HTTP/1.1 on keep-alive connections) on the other: the server's own throughput, unwrapped
//!   and wrapped.
//!
//! `cargo bench --features http --bench e2e`; the summary (percentiles, ratios, CPU per call)
//! is printed at the end. `E2E_SECTIONS=in_process,http,one_core` runs only the sections named.

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

/// The HTTP arms, in the order they are measured: the bare service, the HTTP layer alone, and
/// both layers with each audit sink; with the bearer key each needs.
fn http_fronts<'k>(
    keys: &'k DemoKeys,
    policy: &Policy,
    dir: &Path,
) -> Vec<(&'static str, Front, Option<&'k str>)> {
    let key = Some(keys.analytics.as_str());
    let mut fronts = vec![
        ("unwrapped", Front::Bare, None),
        (
            "http_layer_only",
            Front::HttpLayerOnly(layer(policy, Audit::Memory.sink(dir))),
            key,
        ),
    ];
    for a in [Audit::Memory, Audit::FileOs, Audit::FileAlways] {
        fronts.push((a.name(), Front::Both(layer(policy, a.sink(dir))), key));
    }
    fronts
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
    for (name, front, key) in http_fronts(keys, policy, dir) {
        let addr = server_rt.block_on(serve_http(front, policy));
        arms.push(HttpArm {
            name,
            clients: client_rt.block_on(http_clients(addr, key, most)),
            cpu: Mutex::new((0, 0.0, 0.0)),
        });
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

// ---------------------------------------------------------------------------------------------
// Streamable HTTP with the server alone on one core: the server's own throughput.
//
// The rmcp client above spends more CPU per call than the server (50-90 µs against 40-65), and
// both share the machine's two cores, so the end-to-end figures say more about the clients
// and the scheduler than about the server. Here the server gets one core to itself (one
// runtime worker pinned to CPU 0) and a load generator that costs a few µs a call runs on the
// other: keep-alive connections speaking just enough HTTP/1.1 to call `echo` on an initialized
// session. The server is then the bottleneck, and calls per second measure its CPU per call.

/// The core the server's runtime (and the audit writer thread) runs on; the load generator
/// takes the other.
const SERVER_CPU: usize = 0;
const LOAD_CPU: usize = 1;
/// Connections (one MCP session each) the load generator keeps busy.
const RAW_CONNECTIONS: usize = 16;

/// Pins the calling thread (and the threads it starts later) to `cpu`; false when it could not.
fn pin(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// Lets the calling thread run on every core again.
fn unpin() {
    #[cfg(target_os = "linux")]
    {
        let mut set = rustix::thread::CpuSet::new();
        for cpu in 0..std::thread::available_parallelism().map_or(1, usize::from) {
            set.set(cpu);
        }
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

/// One HTTP/1.1 response, read by its framing.
struct RawResponse {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

/// A keep-alive connection with one MCP session on it.
struct RawConn {
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    bearer: Option<String>,
    session: Option<String>,
    buf: Vec<u8>,
    calls: u64,
}

impl RawConn {
    async fn open(addr: SocketAddr, key: Option<&str>) -> RawConn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut c = RawConn {
            stream,
            addr,
            bearer: key.map(str::to_owned),
            session: None,
            buf: Vec::with_capacity(4096),
            calls: 0,
        };
        let init = c
            .post(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw-load","version":"0"}}}"#)
            .await;
        assert_eq!(
            init.status,
            200,
            "initialize: {}",
            String::from_utf8_lossy(&init.body)
        );
        c.session = Some(init.session.expect("the server names a session"));
        let done = c
            .post(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        assert_eq!(done.status, 202, "notifications/initialized");
        c
    }

    /// One `tools/call echo`, checked: answered, not an error.
    async fn call(&mut self) {
        self.calls += 1;
        // A string id of fixed width keeps the request the same length every time.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"c{:012}","method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello"}}}}}}"#,
            self.calls
        );
        let r = self.post(body.as_bytes()).await;
        let ok = r.status == 200
            && contains(&r.body, br#""result""#)
            && !contains(&r.body, br#""isError":true"#);
        assert!(
            ok,
            "the echo call failed: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    async fn post(&mut self, body: &[u8]) -> RawResponse {
        use std::fmt::Write as _;
        use tokio::io::AsyncWriteExt;
        let mut head = String::with_capacity(512);
        let _ = write!(
            head,
            "POST /mcp HTTP/1.1\r\nhost: {}\r\naccept: application/json, text/event-stream\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(k) = &self.bearer {
            let _ = write!(head, "authorization: Bearer {k}\r\n");
        }
        if let Some(s) = &self.session {
            let _ = write!(
                head,
                "mcp-session-id: {s}\r\nmcp-protocol-version: 2025-06-18\r\n"
            );
        }
        head.push_str("\r\n");
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req).await.unwrap();
        self.read_response().await
    }

    /// Reads until `self.buf` holds `n` bytes at least.
    async fn fill(&mut self, n: usize) {
        use tokio::io::AsyncReadExt;
        while self.buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = self.stream.read(&mut chunk).await.unwrap();
            assert!(got > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..got]);
        }
    }

    /// Reads until `self.buf[from..]` holds `needle`; its position.
    async fn fill_until(&mut self, from: usize, needle: &[u8]) -> usize {
        loop {
            if let Some(i) = find(&self.buf[from..], needle) {
                return from + i;
            }
            let have = self.buf.len();
            self.fill(have + 1).await;
        }
    }

    async fn read_response(&mut self) -> RawResponse {
        let end = self.fill_until(0, b"\r\n\r\n").await;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (mut length, mut chunked, mut session) = (0usize, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "mcp-session-id" => session = Some(value.to_owned()),
                _ => {}
            }
        }
        let mut at = end + 4;
        let mut body = Vec::new();
        if chunked {
            loop {
                let line_end = self.fill_until(at, b"\r\n").await;
                let size_text = String::from_utf8_lossy(&self.buf[at..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
                at = line_end + 2;
                self.fill(at + size + 2).await;
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
                if size == 0 {
                    break;
                }
            }
        } else {
            self.fill(at + length).await;
            body.extend_from_slice(&self.buf[at..at + length]);
            at += length;
        }
        self.buf.drain(..at);
        RawResponse {
            status,
            session,
            body,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// `RAW_CONNECTIONS` initialized sessions on `addr`.
async fn raw_conns(addr: SocketAddr, key: Option<&str>) -> Vec<RawConn> {
    let mut v = Vec::with_capacity(RAW_CONNECTIONS);
    for _ in 0..RAW_CONNECTIONS {
        v.push(RawConn::open(addr, key).await);
    }
    v
}

/// `total` calls spread over `conns`, all in flight at once; the wall time. Each connection
/// runs as its own task and comes back when done.
async fn raw_burst(conns: &mut Vec<RawConn>, total: u64) -> Duration {
    let n = conns.len() as u64;
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .drain(..)
        .enumerate()
        .map(|(i, mut c)| {
            let k = total / n + u64::from((i as u64) < total % n);
            tokio::spawn(async move {
                for _ in 0..k {
                    c.call().await;
                }
                c
            })
        })
        .collect();
    for t in tasks {
        conns.push(t.await.unwrap());
    }
    start.elapsed()
}

fn server_on_one_core(c: &mut Criterion, keys: &DemoKeys, policy: &Policy, dir: &Path) {
    // The sinks' writer threads start on the thread that opens them: on the server's core.
    if !pin(SERVER_CPU) {
        note("http one core: could not pin threads to cores; section skipped".to_owned());
        return;
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREADS)
        .on_thread_start(|| {
            pin(SERVER_CPU);
        })
        .enable_all()
        .build()
        .unwrap();
    let fronts = http_fronts(keys, policy, dir);
    // The load generator: this thread, on the other core, one current-thread runtime.
    pin(LOAD_CPU);
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut arms: Vec<(&'static str, Vec<RawConn>)> = Vec::new();
    for (name, front, key) in fronts {
        let addr = server_rt.block_on(serve_http(front, policy));
        arms.push((name, client_rt.block_on(raw_conns(addr, key))));
    }

    let mut g = c.benchmark_group("e2e_http_server_one_core");
    g.throughput(Throughput::Elements(1))
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, conns) in arms.iter_mut() {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| client_rt.block_on(raw_burst(conns, iters)));
        });
    }
    g.finish();

    // Paired rounds, as above: each arm's round divided by the unwrapped round just before it.
    const ROUNDS: usize = 21;
    const ROUND_CALLS: u64 = 4_000;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); arms.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); arms.len()];
    for _ in 0..ROUNDS {
        let mut base = None;
        for (i, (_, conns)) in arms.iter_mut().enumerate() {
            let took = client_rt.block_on(raw_burst(conns, ROUND_CALLS));
            let rate = ROUND_CALLS as f64 / took.as_secs_f64();
            let b = *base.get_or_insert(rate);
            rates[i].push(rate);
            ratios[i].push(rate / b);
        }
    }
    for (((name, _), r), q) in arms.iter().zip(rates.iter_mut()).zip(ratios.iter_mut()) {
        r.sort_by(f64::total_cmp);
        q.sort_by(f64::total_cmp);
        let at = |v: &Vec<f64>, k: usize| v.get(k).copied().unwrap_or_default();
        let rate = at(r, r.len() / 2);
        note(format!(
            "http one core {name}: median {rate:.0} calls/s ({:.1} us of server core per call) over {ROUNDS} rounds of {ROUND_CALLS} calls on {RAW_CONNECTIONS} connections (min {:.0}, max {:.0}); {:.1} % of the unwrapped round before it (median; quartiles {:.1}-{:.1} %; target at least 90 %)",
            1e6 / rate,
            at(r, 0),
            at(r, r.len() - 1),
            at(q, q.len() / 2) * 100.0,
            at(q, q.len() / 4) * 100.0,
            at(q, q.len() * 3 / 4) * 100.0,
        ));
    }
    drop(arms);
    drop(client_rt);
    drop(server_rt);
    unpin();
}

/// `E2E_PROFILE=ARM [E2E_PROFILE_CALLS=N]`: only `N` calls (default 2,000) over HTTP to one
/// arm, one client, no criterion, for a profiler: the server on one worker thread named
/// `e2e-server`, the client on the main thread, so that `valgrind --tool=callgrind
/// --separate-threads=yes` counts the server's instructions apart from the client's. Instruction
/// counts repeat run to run whatever else the machine does, which wall time on a shared machine
/// does not. ARM: `unwrapped`, `http_layer_only`, `wrapped_audit_memory`, `wrapped_audit_file_os`,
/// `wrapped_audit_file_always`.
/// With `E2E_PROFILE_RAW=1` the calls come from the one-core section's load generator instead
/// (16 raw HTTP connections, all in flight at once).
fn profile(arm: &str, keys: &DemoKeys, policy: &Policy, dir: &Path) -> Result<(), String> {
    let calls: usize = std::env::var("E2E_PROFILE_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The other arms' layers are dropped here, their audit files closed, before any call.
    let Some((_, front, key)) = http_fronts(keys, policy, dir)
        .into_iter()
        .find(|(name, _, _)| *name == arm)
    else {
        return Err(format!("E2E_PROFILE: no arm `{arm}`"));
    };
    let addr = server_rt.block_on(serve_http(front, policy));
    if std::env::var_os("E2E_PROFILE_RAW").is_some() {
        // As the one-core section drives the server: raw HTTP on 16 connections.
        let mut conns = client_rt.block_on(raw_conns(addr, key));
        let took = client_rt.block_on(raw_burst(&mut conns, calls as u64));
        println!("E2E_PROFILE {arm}: {calls} raw calls in {took:?}");
        return Ok(());
    }
    let clients = client_rt.block_on(http_clients(addr, key, 1));
    let peer = clients[0].peer().clone();
    let req = echo();
    client_rt.block_on(async {
        for _ in 0..calls {
            call(&peer, &req).await;
        }
    });
    println!("E2E_PROFILE {arm}: {calls} calls done");
    client_rt.block_on(async {
        for c in clients {
            let _ = c.cancel().await;
        }
    });
    drop(server_rt);
    Ok(())
}

fn main() {
    let keys = DemoKeys::generate();
    // A real disk (the work tree's file system), not tmpfs: fsync must mean something.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let policy =
        Policy::from_toml_str(&demo_policy(&keys, &dir.path().join("policy.jsonl"))).unwrap();
    if let Ok(arm) = std::env::var("E2E_PROFILE") {
        if let Err(e) = profile(&arm, &keys, &policy, dir.path()) {
            eprintln!("{e}");
            // After the temp dir is gone: `exit` runs no destructors.
            drop(dir);
            std::process::exit(2);
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    note(format!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    // `E2E_SECTIONS=in_process,http,one_core` (the default: all three) picks sections.
    let sections = std::env::var("E2E_SECTIONS").unwrap_or_default();
    let wanted = |name: &str| sections.is_empty() || sections.split(',').any(|s| s == name);
    if wanted("in_process") {
        in_process(&mut c, &keys, &policy, dir.path());
    }
    if wanted("http") {
        over_http(&mut c, &keys, &policy, dir.path());
    }
    if wanted("one_core") {
        server_on_one_core(&mut c, &keys, &policy, dir.path());
    }
    // The stdio proxy's figures come from benches/proxy.rs (it needs the `cli` feature).
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
