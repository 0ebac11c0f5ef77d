#![cfg(all(feature = "http", feature = "jwt"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]
//! JWT bearer tokens through the HTTP layer, end to end over real loopback HTTP: an axum server
//! running rmcp's Streamable HTTP service behind `HttpSecurityLayer` and `SecureServer`, with a
//! `SecurityLayer` built from a policy whose `[auth.jwt]` fetches its JWKS from a server this
//! test runs on 127.0.0.1. Keys are generated here and tokens signed here (jsonwebtoken).

#[path = "support/jwt.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_security::Identity;
use mcp_security::adapters::http::HttpSecurityLayer;
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
use serde_json::{Value, json};
use support::{ISSUER, JwksServer, TestKey, ed25519_key, jwks, now, p256_key, shared_rsa, sign};
use tower_layer::Layer;

/// Echoes what the handler can see of its caller.
#[derive(Debug, Clone)]
struct Probe {
    calls: Arc<AtomicUsize>,
}

fn whoami_tool() -> Tool {
    let schema = match json!({"type": "object", "properties": {}}) {
        Value::Object(m) => m,
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
        let seen = json!({
            "host": identity.map(|i| i.host().to_owned()),
            "subject": identity.map(|i| i.subject().to_owned()),
            "scopes": identity.map(|i| i.scopes().map(str::to_owned).collect::<Vec<_>>()),
            "method": identity.map(|i| i.method().as_str()),
            "authorization_header": parts.map(|p| p.headers.contains_key(http::header::AUTHORIZATION)),
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(seen.to_string())]).into())
    }
}

struct Server {
    addr: SocketAddr,
    jwks: JwksServer,
    audit: PathBuf,
    /// How often rmcp built a handler (a session) or a handler method ran.
    handler_calls: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `server.resource`, and so the JWT audience (RFC 8707).
    fn resource(&self) -> String {
        self.url("/mcp")
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit).unwrap_or_default()
    }

    fn audit_records(&self) -> Vec<Value> {
        self.audit_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Claims that pass every check, for `sub`, with `scope`.
    fn claims(&self, sub: &str, scope: &str) -> Value {
        let mut c = support::claims(sub);
        c["aud"] = json!([self.resource(), "https://other.example.test"]);
        c["scope"] = json!(scope);
        c.as_object_mut().unwrap().remove("scp");
        c
    }
}

/// Starts the JWKS server (serving `jwks_doc`) and the secured MCP server, each on a free
/// loopback port, the MCP server's `SecurityLayer` built from a policy TOML string.
async fn start(jwks_doc: String, refetch_seconds: u64) -> Server {
    let jwks = JwksServer::start(jwks_doc).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let policy = Policy::from_toml_str(&format!(
        r#"
[server]
resource = "http://{addr}/mcp"

[auth.jwt]
issuer = "{ISSUER}"
audience = "http://{addr}/mcp"
jwks_url = "{jwks_url}"
algorithms = ["RS256", "ES256", "EdDSA"]
leeway_seconds = 5
jwks_refetch_seconds = {refetch_seconds}
jwks_timeout_seconds = 5

[http]
authorization_servers = ["{ISSUER}"]
scopes_supported = ["mcp:tools", "tools:call"]
required_scopes = ["mcp:tools"]

[[tools]]
name = "whoami"
scopes = ["tools:call"]

[audit]
path = "{audit}"
"#,
        jwks_url = jwks.url,
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
        jwks,
        audit,
        handler_calls,
        _dir: dir,
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

fn post(server: &Server, token: Option<&str>) -> reqwest::RequestBuilder {
    let mut r = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE);
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

/// The challenge's common part: the scheme, the metadata URL and the required scope.
fn assert_challenge_names_metadata_and_scope(s: &Server, params: &BTreeMap<String, String>) {
    assert_eq!(
        params.get("resource_metadata").map(String::as_str),
        Some(&*format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            s.addr
        ))
    );
    assert_eq!(params.get("scope").map(String::as_str), Some("mcp:tools"));
}

async fn rmcp_client(
    s: &Server,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(s.url("/mcp")).auth_header(token.to_owned());
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport).await.unwrap()
}

fn whoami_json(r: &CallToolResult) -> Value {
    serde_json::from_str(&r.content[0].as_text().unwrap().text).unwrap()
}

/// The JWKS most tests serve: an RSA key (for the HS256 confusion attack) and a P-256 key.
fn default_keys() -> (&'static TestKey, TestKey) {
    (shared_rsa(), p256_key("ec-1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_gets_401_naming_the_metadata_and_the_scope() {
    let (rsa, ec) = default_keys();
    let s = start(jwks(&[rsa, &ec]), 30).await;
    let r = post(&s, None).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (scheme, params) = challenge_of(&r);
    assert_eq!(scheme, "Bearer");
    assert_challenge_names_metadata_and_scope(&s, &params);
    // RFC 6750 section 3.1: no error code when no credentials were presented.
    assert!(!params.contains_key("error"), "{params:?}");
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
    assert_eq!(s.jwks.requests(), 0, "nothing presented, nothing fetched");
    let denied = s.audit_records();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["stage"], "authentication");
    assert_eq!(denied[0]["transport"], "http");
    assert!(s.audit_text().contains("no credentials presented"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_gets_401_invalid_token_and_is_never_echoed() {
    let (rsa, ec) = default_keys();
    let s = start(jwks(&[rsa, &ec]), 30).await;

    // The control: the same claims, properly signed, get in.
    let good = sign(&ec, &s.claims("bot", "mcp:tools"));
    let ok = post(&s, Some(&good)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(s.jwks.requests(), 1);
    let handler_calls = s.handler_calls.load(Ordering::SeqCst);

    let mut cases: Vec<(&str, String, &str)> = Vec::new();

    let mut c = s.claims("bot", "mcp:tools");
    c["aud"] = json!("https://evil.example.test/mcp");
    cases.push((
        "wrong audience",
        sign(&ec, &c),
        "token audience not accepted",
    ));

    let mut c = s.claims("bot", "mcp:tools");
    c["iss"] = json!("https://evil.example.test");
    cases.push(("wrong issuer", sign(&ec, &c), "token issuer not accepted"));

    let mut c = s.claims("bot", "mcp:tools");
    c["exp"] = json!(now() - 60); // beyond the 5 s leeway
    cases.push(("expired", sign(&ec, &c), "credentials expired"));

    let mut c = s.claims("bot", "mcp:tools");
    c["nbf"] = json!(now() + 60); // beyond the 5 s leeway
    cases.push(("not yet valid", sign(&ec, &c), "credentials not yet valid"));

    // Another P-256 key claiming the published kid.
    let impostor = p256_key("ec-1");
    cases.push((
        "bad signature",
        sign(&impostor, &s.claims("bot", "mcp:tools")),
        "token signature invalid",
    ));

    // alg: none, hand-built, with an empty signature segment.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"ec-1"}"#);
    let body = URL_SAFE_NO_PAD.encode(s.claims("bot", "mcp:tools").to_string());
    cases.push((
        "alg none",
        format!("{header}.{body}."),
        "token algorithm not allowed",
    ));

    // HS256 with the RSA public key (PEM) as the HMAC secret: the key confusion attack.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(rsa.kid.clone());
    let pem = rsa.public_pem.as_deref().unwrap();
    let hs = jsonwebtoken::encode(
        &h,
        &s.claims("bot", "mcp:tools"),
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    cases.push(("HS256 with the RSA PEM", hs, "token algorithm not allowed"));

    for (name, token, reason) in &cases {
        let before = s.audit_records().len();
        let r = post(&s, Some(token)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        let (scheme, params) = challenge_of(&r);
        assert_eq!(scheme, "Bearer", "{name}");
        assert_eq!(
            params.get("error").map(String::as_str),
            Some("invalid_token"),
            "{name}"
        );
        assert_challenge_names_metadata_and_scope(&s, &params);
        let headers = format!("{:?}", r.headers());
        let text = r.text().await.unwrap();
        assert!(!headers.contains(token.as_str()), "{name}: {headers}");
        assert!(!text.contains(token.as_str()), "{name}: {text}");
        // The payload alone (what a log line might quote) is not echoed either.
        let payload = token.split('.').nth(1).unwrap();
        assert!(
            !headers.contains(payload) && !text.contains(payload),
            "{name}"
        );

        // One audit record, naming the reason, never the token.
        let records = s.audit_records();
        assert_eq!(records.len(), before + 1, "{name}");
        let last = records.last().unwrap();
        assert_eq!(last["stage"], "authentication", "{name}");
        assert_eq!(last["transport"], "http", "{name}");
        assert!(last.to_string().contains(reason), "{name}: {last}");
    }
    let audit = s.audit_text();
    for (name, token, _) in &cases {
        assert!(!audit.contains(token.as_str()), "{name} in the audit log");
    }
    assert!(!audit.contains(&good));
    assert_eq!(
        s.handler_calls.load(Ordering::SeqCst),
        handler_calls,
        "no refused token reached rmcp"
    );
    // Every kid was known after the first fetch: no bad token made the server fetch again.
    assert_eq!(s.jwks.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_without_the_required_scope_gets_403_insufficient_scope() {
    let (rsa, ec) = default_keys();
    let s = start(jwks(&[rsa, &ec]), 30).await;
    let token = sign(&ec, &s.claims("scopeless-bot", "tools:call"));
    let r = post(&s, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (scheme, params) = challenge_of(&r);
    assert_eq!(scheme, "Bearer");
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("insufficient_scope")
    );
    assert_challenge_names_metadata_and_scope(&s, &params);
    assert!(!r.text().await.unwrap().contains(&token));
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
    let rec = s.audit_records();
    assert_eq!(rec.len(), 1);
    assert_eq!(
        rec[0]["host"], "scopeless-bot",
        "authenticated, then refused"
    );
    assert_eq!(rec[0]["rule"], "http.required_scopes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_reaches_the_handler_with_its_identity() {
    let (rsa, ec) = default_keys();
    let s = start(jwks(&[rsa, &ec]), 30).await;
    // Signed with the RSA key this time: RS256 end to end.
    let token = sign(rsa, &s.claims("analytics-bot", "mcp:tools tools:call"));
    let client = rmcp_client(&s, &token).await;
    let tools = client.list_tools(None).await.unwrap();
    assert_eq!(tools.tools.len(), 1, "the rule grants whoami by scope");
    let seen = whoami_json(
        &client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap(),
    );
    assert_eq!(seen["host"], "analytics-bot", "host from `sub`");
    assert_eq!(seen["subject"], "analytics-bot");
    assert_eq!(seen["scopes"], json!(["mcp:tools", "tools:call"]));
    assert_eq!(seen["method"], "bearer");
    assert_eq!(seen["authorization_header"], false, "no token passthrough");
    client.cancel().await.unwrap();

    // Authenticated and through the HTTP layer, but without the scope the rule grants by: the
    // tool is hidden and the call never reaches the handler.
    let calls_before = s.handler_calls.load(Ordering::SeqCst);
    let lister = sign(&ec, &s.claims("lister-bot", "mcp:tools"));
    let client = rmcp_client(&s, &lister).await;
    assert!(client.list_tools(None).await.unwrap().tools.is_empty());
    assert!(
        client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .is_err()
    );
    client.cancel().await.unwrap();
    let after = s.handler_calls.load(Ordering::SeqCst);
    assert!(after > calls_before, "the session was served");

    let calls: Vec<_> = s
        .audit_records()
        .into_iter()
        .filter(|r| r["method"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["host"], "analytics-bot");
    assert_eq!(calls[0]["outcome"], "allow");
    assert_eq!(calls[0]["auth_method"], "bearer");
    assert_eq!(calls[0]["transport"], "http");
    assert_eq!(calls[0]["peer_addr"], "127.0.0.1");
    assert!(calls[0]["session_id"].is_string());
    assert_eq!(calls[1]["host"], "lister-bot");
    assert_ne!(calls[1]["outcome"], "allow");
    let audit = s.audit_text();
    assert!(!audit.contains(&token) && !audit.contains(&lister));
    assert_eq!(s.jwks.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_gets_403_even_with_a_valid_token() {
    let (rsa, ec) = default_keys();
    let s = start(jwks(&[rsa, &ec]), 30).await;
    let token = sign(&ec, &s.claims("bot", "mcp:tools tools:call"));
    let evil = post(&s, Some(&token))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    assert!(
        evil.headers().get("www-authenticate").is_none(),
        "not an authentication problem"
    );
    assert!(!evil.text().await.unwrap().contains(&token));
    assert_eq!(s.handler_calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        s.jwks.requests(),
        0,
        "refused before the token was looked at"
    );
    let rec = s.audit_records();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0]["rule"], "http.origin");

    // The same token from a loopback origin (or none) is served.
    let local = post(&s, Some(&token))
        .header("origin", format!("http://127.0.0.1:{}", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_jwks_is_refetched_once_and_the_new_key_accepted_over_http() {
    let a = ed25519_key("2026-01");
    // A refetch interval well above the time the steps after the refetch take, so a token of
    // the withdrawn key cannot cause a second refetch.
    let s = start(jwks(&[&a]), 3).await;
    assert_eq!(
        s.jwks.requests(),
        0,
        "nothing fetched before a token needs a key"
    );

    let first = sign(&a, &s.claims("bot", "mcp:tools"));
    assert_eq!(post(&s, Some(&first)).send().await.unwrap().status(), 200);
    assert_eq!(s.jwks.requests(), 1);

    // The issuer rotates: key B (a new kid) published, key A withdrawn.
    let b = p256_key("2026-02");
    s.jwks.serve(jwks(&[&b]));
    tokio::time::sleep(Duration::from_millis(3_200)).await;

    // Several B tokens at once: the unknown kid causes one refetch, shared by all.
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let r = post(
                &s,
                Some(&sign(&b, &s.claims(&format!("bot-{i}"), "mcp:tools"))),
            );
            tokio::spawn(async move { r.send().await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(s.jwks.requests(), 2, "exactly one refetch");

    // A's tokens are refused now, the cached one too, without another fetch (inside the
    // refetch interval an unknown kid fetches nothing).
    for token in [first.clone(), sign(&a, &s.claims("bot", "mcp:tools"))] {
        let r = post(&s, Some(&token)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            challenge_of(&r).1.get("error").map(String::as_str),
            Some("invalid_token")
        );
    }
    assert_eq!(s.jwks.requests(), 2);
    assert!(s.audit_text().contains("token signing key unknown"));

    // A full MCP session on B's token: the handler sees the identity; no further fetch.
    let token = sign(&b, &s.claims("rotated-bot", "mcp:tools tools:call"));
    let client = rmcp_client(&s, &token).await;
    let seen = whoami_json(
        &client
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap(),
    );
    assert_eq!(seen["host"], "rotated-bot");
    client.cancel().await.unwrap();
    assert_eq!(s.jwks.requests(), 2);
    let call = s
        .audit_records()
        .into_iter()
        .find(|r| r["method"] == "tools/call")
        .unwrap();
    assert_eq!(call["host"], "rotated-bot");
    assert_eq!(call["outcome"], "allow");
}
