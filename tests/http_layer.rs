//! The HTTP layer over real loopback HTTP: an axum server running rmcp's Streamable HTTP service
//! behind `HttpSecurityLayer` and `SecureServer`, a real HTTP client (reqwest), a raw TCP client
//! for what reqwest will not send, and a real rmcp client over Streamable HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_security::Identity;
use mcp_security::adapters::http::{Authenticated, HttpSecurityLayer};
use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::policy::Policy;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_layer::Layer;

/// Says who called and what the handler could see of the HTTP request.
#[derive(Debug, Clone)]
struct Probe {
    calls: Arc<AtomicUsize>,
}

fn whoami_tool() -> Tool {
    let schema = match serde_json::json!({"type": "object", "properties": {}}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    Tool::new("whoami", "Who is calling", schema)
}

impl ServerHandler for Probe {
    fn get_info(&self) -> ServerConfig {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ListToolsResult::with_all_items(vec![whoami_tool()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == "whoami").then(whoami_tool)
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let identity = context.extensions.get::<Identity>();
        let parts = context.extensions.get::<http::request::Parts>();
        let seen = serde_json::json!({
            "host": identity.map(|i| i.host().to_owned()),
            "scopes": identity.map(|i| i.scopes().map(str::to_owned).collect::<Vec<_>>()),
            "authorization_header": parts.map(|p| p.headers.contains_key(http::header::AUTHORIZATION)),
            "layer_identity": parts
                .and_then(|p| p.extensions.get::<Authenticated>())
                .map(|a| a.identity().host().to_owned()),
            "peer": parts
                .and_then(|p| p.extensions.get::<Authenticated>())
                .and_then(Authenticated::peer_addr)
                .map(|a| a.ip().to_string()),
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(seen.to_string())]).into())
    }
}

fn random_key(label: &str) -> String {
    let a = RandomState::new().hash_one(label);
    let b = RandomState::new().hash_one(label);
    format!("mcpk_{label}_{a:016x}{b:016x}")
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Keys {
    alice: String,
    bob: String,
    carol: String,
}

struct Server {
    addr: SocketAddr,
    keys: Keys,
    audit: PathBuf,
    /// How often rmcp built a handler (a session) or a handler method ran.
    handler_calls: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Starts the secured server on a free loopback port. `extra` is appended to the policy.
async fn start(extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let keys = Keys {
        alice: random_key("alice"),
        bob: random_key("bob"),
        carol: random_key("carol"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let policy = Policy::from_toml_str(&format!(
        r#"
[server]
resource = "http://{addr}/mcp"

[[auth.api_keys]]
host = "alice"
key_sha256 = "{alice}"
scopes = ["mcp:tools"]

[[auth.api_keys]]
host = "bob"
key_sha256 = "{bob}"
scopes = ["mcp:tools"]

[[auth.api_keys]]
host = "carol"
key_sha256 = "{carol}"

[[tools]]
name = "whoami"
allowed_hosts = ["*"]

[audit]
path = "{audit}"

{extra}
"#,
        alice = sha256_hex(&keys.alice),
        bob = sha256_hex(&keys.bob),
        carol = sha256_hex(&keys.carol),
        audit = audit.display(),
    ))
    .unwrap();
    let layer = policy.build().unwrap();
    let config = policy
        .http()
        .cloned()
        .expect("the policy has an [http] table");
    let handler_calls = Arc::new(AtomicUsize::new(0));
    let mcp = StreamableHttpService::new(
        {
            let layer = layer.clone();
            let calls = handler_calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(SecureServer::new(
                    Probe {
                        calls: calls.clone(),
                    },
                    layer.clone(),
                ))
            }
        },
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default().disable_allowed_hosts(),
    );
    let app =
        axum::Router::new().fallback_service(HttpSecurityLayer::new(config, layer).layer(mcp));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        addr,
        keys,
        audit,
        handler_calls,
        _dir: dir,
    }
}

const HTTP_TABLE: &str = r#"
[http]
authorization_servers = ["https://auth.example.com"]
scopes_supported = ["mcp:tools"]
required_scopes = ["mcp:tools"]
max_body_bytes = 65536
"#;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

fn post(
    server: &Server,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    let mut r = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r
}

/// Parses `Bearer k="v", k2=token` (RFC 9110 section 11.2 auth-params, quoted-string unescaped).
fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(c) = chars.peek().copied() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        assert_eq!(
            chars.next(),
            Some('='),
            "auth-param without `=` in {header}"
        );
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next().expect("unterminated quoted-string") {
                    '\\' => value.push(chars.next().expect("dangling escape")),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' || c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        assert!(params.insert(key.clone(), value).is_none(), "{key} twice");
    }
    (scheme.to_owned(), params)
}

fn challenge_of(r: &reqwest::Response) -> (String, BTreeMap<String, String>) {
    let all: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(all.len(), 1, "one challenge");
    parse_challenge(all[0].to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_gets_401_with_a_resource_metadata_challenge() {
    let s = start(HTTP_TABLE).await;
    let r = post(&s, None, INITIALIZE).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (scheme, params) = challenge_of(&r);
    assert!(scheme.eq_ignore_ascii_case("bearer"));
    assert_eq!(
        params.get("resource_metadata").map(String::as_str),
        Some(&*format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            s.addr
        ))
    );
    assert_eq!(params.get("scope").map(String::as_str), Some("mcp:tools"));
    // RFC 6750 section 3.1: no error code when no credentials were presented.
    assert!(!params.contains_key("error"));
    assert_eq!(
        s.handler_calls.load(Ordering::SeqCst),
        0,
        "rmcp never saw it"
    );
    let denied: Vec<_> = s.audit_records();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["stage"], "authentication");
    assert_eq!(denied[0]["transport"], "http");
    assert_eq!(denied[0]["peer_addr"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_gets_401_invalid_token_and_is_never_echoed() {
    let s = start(HTTP_TABLE).await;
    let wrong = random_key("wrong");
    let r = post(&s, Some(&wrong), INITIALIZE).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, params) = challenge_of(&r);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_token")
    );
    let headers = format!("{:?}", r.headers());
    let body = r.text().await.unwrap();
    assert!(!headers.contains(&wrong) && !body.contains(&wrong));
    // Another scheme, or two Authorization headers: a malformed request, 400.
    let basic = reqwest::Client::new()
        .post(s.url("/mcp"))
        .header("authorization", "Basic YWxpY2U6cHc=")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 400);
    assert_eq!(
        challenge_of(&basic).1.get("error").map(String::as_str),
        Some("invalid_request")
    );
    let two = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("authorization", format!("Bearer {}", s.keys.alice))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400);
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
    let audit = std::fs::read_to_string(&s.audit).unwrap();
    assert!(
        !audit.contains(&wrong),
        "the token never reaches the audit log"
    );
    assert!(audit.contains("credentials not recognised"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_required_scope_gets_403_insufficient_scope() {
    let s = start(HTTP_TABLE).await;
    let r = post(&s, Some(&s.keys.carol), INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (scheme, params) = challenge_of(&r);
    assert!(scheme.eq_ignore_ascii_case("bearer"));
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("insufficient_scope")
    );
    assert_eq!(params.get("scope").map(String::as_str), Some("mcp:tools"));
    assert!(params.contains_key("resource_metadata"));
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
    let rec = s.audit_records();
    assert_eq!(rec[0]["host"], "carol");
    assert_eq!(rec[0]["rule"], "http.required_scopes");
}

async fn rmcp_client(
    s: &Server,
    token: Option<&str>,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(s.url("/mcp"));
    if let Some(t) = token {
        config = config.auth_header(t.to_owned());
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport).await.map_err(|e| e.to_string())
}

fn refused<T>(r: Result<T, String>) -> String {
    match r {
        Ok(_) => panic!("the connection should have been refused"),
        Err(e) => e,
    }
}

fn whoami_json(r: &CallToolResult) -> serde_json::Value {
    serde_json::from_str(&r.content[0].as_text().unwrap().text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_reaches_the_handler_with_its_identity_and_without_the_header() {
    let s = start(HTTP_TABLE).await;
    let alice = rmcp_client(&s, Some(&s.keys.alice)).await.unwrap();
    let tools = alice.list_tools(None).await.unwrap();
    assert_eq!(tools.tools.len(), 1);
    let seen = whoami_json(
        &alice
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap(),
    );
    assert_eq!(seen["host"], "alice");
    assert_eq!(seen["scopes"], serde_json::json!(["mcp:tools"]));
    assert_eq!(seen["layer_identity"], "alice");
    assert_eq!(seen["authorization_header"], false, "no token passthrough");
    assert_eq!(seen["peer"], "127.0.0.1");

    // A second caller on its own session is seen as itself, request by request.
    let bob = rmcp_client(&s, Some(&s.keys.bob)).await.unwrap();
    let seen = whoami_json(
        &bob.call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap(),
    );
    assert_eq!(seen["host"], "bob");
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();

    let calls: Vec<_> = s
        .audit_records()
        .into_iter()
        .filter(|r| r["method"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["host"], "alice");
    assert_eq!(calls[1]["host"], "bob");
    for c in &calls {
        assert_eq!(c["outcome"], "allow");
        assert_eq!(c["transport"], "http");
        assert_eq!(c["peer_addr"], "127.0.0.1");
        assert!(c["session_id"].is_string(), "the session id is audited");
    }
    // Each caller's own session, as the layer checked it (shared with the handler's context).
    assert_ne!(calls[0]["session_id"], calls[1]["session_id"]);
    for (c, host) in calls.iter().zip(["alice", "bob"]) {
        let same_session = s
            .audit_records()
            .into_iter()
            .filter(|r| r["session_id"] == c["session_id"])
            .all(|r| r["host"] == host || r["host"].is_null());
        assert!(
            same_session,
            "every record of {host}'s session names {host}"
        );
    }
    let audit = std::fs::read_to_string(&s.audit).unwrap();
    assert!(!audit.contains(&s.keys.alice) && !audit.contains(&s.keys.bob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_without_a_token_never_reaches_the_handler() {
    let s = start(HTTP_TABLE).await;
    let err = refused(rmcp_client(&s, None).await);
    assert!(err.to_lowercase().contains("auth"), "{err}");
    let wrong = refused(rmcp_client(&s, Some("mcpk_guess")).await);
    assert!(!wrong.contains("mcpk_guess"), "{wrong}");
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_or_host_gets_403() {
    let s = start(HTTP_TABLE).await;
    let evil = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let null = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(null.status(), 403);
    // DNS rebinding: the browser still sends the attacker's name as Host.
    let rebound = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("host", format!("evil.example:{}", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
    // The loopback names are accepted, with a matching Origin too.
    let local = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("host", format!("localhost:{}", s.addr.port()))
        .header("origin", format!("http://localhost:{}", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    let rules: Vec<_> = s
        .audit_records()
        .into_iter()
        .filter_map(|r| r["rule"].as_str().map(str::to_owned))
        .collect();
    assert!(rules.contains(&"http.origin".to_owned()) && rules.contains(&"http.host".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_hosts_and_origins_replace_the_loopback_default() {
    let s = start(
        r#"
[http]
allowed_hosts = ["mcp.example.com"]
allowed_origins = ["https://app.example.com"]
"#,
    )
    .await;
    let loopback = post(&s, Some(&s.keys.alice), INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        loopback.status(),
        403,
        "127.0.0.1 is no longer an allowed host"
    );
    let named = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("host", "mcp.example.com")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 200);
    let other_origin = post(&s, Some(&s.keys.alice), INITIALIZE)
        .header("host", "mcp.example.com")
        .header("origin", "https://mcp.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), 403);
}

async fn open_session(s: &Server, token: &str) -> String {
    let r = post(s, Some(token), INITIALIZE).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_answers_only_to_the_identity_that_opened_it() {
    let s = start(HTTP_TABLE).await;
    let session = open_session(&s, &s.keys.alice).await;
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let with_session = |token: &str, body: &'static str| {
        post(&s, Some(token), body)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
    };
    let r = with_session(&s.keys.alice, initialized)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Bob is authenticated and holds the scope, but the session is Alice's.
    let hijack = with_session(&s.keys.bob, list).send().await.unwrap();
    assert_eq!(hijack.status(), 404);
    let delete = reqwest::Client::new()
        .delete(s.url("/mcp"))
        .header("authorization", format!("Bearer {}", s.keys.bob))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404, "nor can he end it");
    let made_up = post(&s, Some(&s.keys.alice), list)
        .header("mcp-session-id", "not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), 404);

    let oversized = post(&s, Some(&s.keys.alice), list)
        .header("mcp-session-id", "s".repeat(300))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 400);

    // Nor resume a stream by its event id alone: with an event store, rmcp replays events by
    // id whatever the session.
    let resume = reqwest::Client::new()
        .get(s.url("/mcp"))
        .header("authorization", format!("Bearer {}", s.keys.bob))
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resume.status(), 404);

    let mine = with_session(&s.keys.alice, list).send().await.unwrap();
    assert_eq!(mine.status(), 200);
    let body = mine.text().await.unwrap();
    assert!(body.contains("whoami"), "{body}");
    let refused: Vec<_> = s
        .audit_records()
        .into_iter()
        .filter(|r| r["rule"] == "http.session")
        .collect();
    assert_eq!(refused.len(), 4);
    assert_eq!(refused[0]["host"], "bob");
    assert_eq!(refused[3]["host"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413_declared_or_chunked() {
    let s = start(HTTP_TABLE).await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let declared = post(&s, Some(&s.keys.alice), big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);

    // Chunked, no Content-Length: the limit holds while the body is read.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr.port(),
        s.keys.alice
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.as_bytes().chunks(8192) {
        let piece = format!("{:x}\r\n", chunk.len());
        // The server may answer and close before the whole body is sent.
        if tcp.write_all(piece.as_bytes()).await.is_err()
            || tcp.write_all(chunk).await.is_err()
            || tcp.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_resource_metadata_is_served_at_both_well_known_paths() {
    let s = start(HTTP_TABLE).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = reqwest::get(s.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let doc: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": format!("http://{}/mcp", s.addr),
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"],
            })
        );
    }
    let other = reqwest::get(s.url("/admin")).await.unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_count_per_identity_over_one_endpoint() {
    let s = start(&format!(
        "{HTTP_TABLE}\n[rate_limit]\nper_caller = \"4/min\"\n"
    ))
    .await;
    let alice = rmcp_client(&s, Some(&s.keys.alice)).await.unwrap();
    let bob = rmcp_client(&s, Some(&s.keys.bob)).await.unwrap();
    let mut alice_ok = 0;
    for _ in 0..6 {
        if alice
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .is_ok()
        {
            alice_ok += 1;
        }
    }
    assert!(alice_ok < 6, "alice hits her limit");
    // Bob's requests share the endpoint, not Alice's budget.
    let seen = whoami_json(
        &bob.call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap(),
    );
    assert_eq!(seen["host"], "bob");
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_access_is_named_and_limited_to_its_networks() {
    let loopback = start(
        r#"
[http]
anonymous = { host = "local-tester", from = ["127.0.0.0/8", "::1/128"] }
"#,
    )
    .await;
    let client = rmcp_client(&loopback, None).await.unwrap();
    let seen = whoami_json(
        &client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap(),
    );
    assert_eq!(seen["host"], "local-tester");
    client.cancel().await.unwrap();
    let rec = loopback
        .audit_records()
        .into_iter()
        .find(|r| r["method"] == "tools/call")
        .unwrap();
    assert_eq!(rec["auth_method"], "anonymous");
    // A presented token is still checked: a wrong one is not anonymous.
    let wrong = post(&loopback, Some("mcpk_wrong"), INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let elsewhere = start(
        r#"
[http]
anonymous = { host = "lan-tester", from = ["10.0.0.0/8"] }
"#,
    )
    .await;
    let r = post(&elsewhere, None, INITIALIZE).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_server_over_http_without_the_layer_fails_closed() {
    // The same SecureServer served by rmcp directly: nobody authenticated the request, so even a
    // valid key in the Authorization header gets the caller nowhere.
    let with_layer = start(HTTP_TABLE).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let policy = Policy::from_toml_str(&format!(
        "[[auth.api_keys]]\nhost = \"alice\"\nkey_sha256 = \"{}\"\n[[tools]]\nname = \"whoami\"\nallowed_hosts = [\"*\"]\n[audit]\npath = \"{}\"\n",
        sha256_hex(&with_layer.keys.alice),
        audit.display()
    ))
    .unwrap();
    let layer = policy.build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mcp = StreamableHttpService::new(
        {
            let calls = calls.clone();
            move || {
                Ok(SecureServer::new(
                    Probe {
                        calls: calls.clone(),
                    },
                    layer.clone(),
                ))
            }
        },
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback_service(mcp))
            .await
            .unwrap();
    });
    let transport = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(with_layer.keys.alice.clone()),
    );
    let refused = refused(().serve(transport).await.map_err(|e| e.to_string()));
    assert!(refused.contains("unauthenticated"), "{refused}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no handler method ran");
    let rec: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&audit)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec["method"], "initialize");
    assert_eq!(rec["stage"], "authentication");
    assert_eq!(rec["transport"], "http");
}

#[test]
fn the_http_table_is_checked_when_the_policy_loads() {
    let base = "[auth]\nanonymous = true\n[audit]\npath = \"/tmp/x\"\n";
    for (table, key) in [
        ("[http]\nallowed_hosts = [\"a b\"]", "http.allowed_hosts"),
        (
            "[http]\nallowed_origins = [\"example.com\"]",
            "http.allowed_origins",
        ),
        (
            "[http]\nrequired_scopes = [\"a\\\"b\"]",
            "http.required_scopes",
        ),
        ("[http]\nmax_body_bytes = 0", "http.max_body_bytes"),
        ("[http]\npath = \"mcp\"", "http.path"),
        (
            "[http]\nauthorization_servers = [\"http://auth.example.com\"]",
            "http.authorization_servers",
        ),
        (
            "[http]\nanonymous = { host = \"x\", from = [] }",
            "http.anonymous.from",
        ),
        ("[http]\nunknown = 1", "http"),
    ] {
        let err = Policy::from_toml_str(&format!("{base}{table}"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(key), "{table}: {err}");
    }
    let ok = Policy::from_toml_str(&format!(
        "[server]\nresource = \"https://mcp.example.com/mcp\"\n{base}[http]\nallowed_hosts = [\"mcp.example.com\", \"[::1]:8080\"]"
    ))
    .unwrap();
    assert_eq!(
        ok.http().unwrap().metadata_url().as_deref(),
        Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
    );
}
