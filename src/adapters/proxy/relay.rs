//! The relay behind `mcp-security proxy`: one task reads the client, one reads the server, and
//! one writer per direction owns each output, so nothing but whole JSON-RPC lines is ever
//! written to either side.

use std::collections::{HashMap, HashSet};
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use super::ProxyConfig;
use crate::context::{AuthMethod, CorrelationId, Credentials, Identity, RequestContext, Transport};
use crate::decision::{Denial, DenyKind, RuleId, Stage, wire_code};
use crate::layer::{Admission, Completion, SecurityLayer};
use crate::message::{Action, ListKind, MessageError};
use crate::redact::RedactionReport;
use crate::validate::{ArgumentsOf, ToolSchema};

/// Whether any object in `v` has two keys that are equal when case is ignored. Some parsers
/// match keys that way (Go's `encoding/json` folds case, so `"Method"` sets `method`), and of
/// two such keys one parser reads one and another the other: a layer that checked
/// `"method": "ping"` would pass a `"Method": "tools/call"` that the server runs. Exact
/// duplicates never reach here (`serde_json` keeps the last), and a message is re-encoded
/// from what was parsed before it is forwarded, so the server sees only the copy checked.
/// Folding is approximated by upper- then lower-casing each character, which also catches
/// `ſ` for `s` and the Kelvin sign for `k`; where it folds more than a peer would, the
/// message is refused, never passed.
fn has_ambiguous_keys(v: &Value) -> bool {
    match v {
        Value::Object(map) => {
            // Keys of lowercase ASCII letters, digits and punctuation fold to themselves: two
            // of them can only collide if they are equal, which a map rules out.
            let plain = map
                .keys()
                .all(|k| k.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()));
            if !plain {
                let mut seen = std::collections::HashSet::with_capacity(map.len());
                for k in map.keys() {
                    let folded: String = k
                        .chars()
                        .flat_map(char::to_uppercase)
                        .flat_map(char::to_lowercase)
                        .collect();
                    if !seen.insert(folded) {
                        return true;
                    }
                }
            }
            map.values().any(has_ambiguous_keys)
        }
        Value::Array(items) => items.iter().any(has_ambiguous_keys),
        _ => false,
    }
}

/// What a request names besides its method, when the method is one that names a prompt or a
/// resource in its parameters.
enum Named {
    Prompt(String),
    Resource(String),
    /// A reference of a kind this version cannot judge: refused.
    Unknown,
}

fn named_target(method: &str, params: Option<&Value>) -> Option<Named> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match method {
        "completion/complete" => {
            let r = params.and_then(|p| p.get("ref"));
            Some(
                match r.and_then(|r| r.get("type")).and_then(Value::as_str) {
                    Some("ref/prompt") => {
                        text(r.and_then(|r| r.get("name"))).map_or(Named::Unknown, Named::Prompt)
                    }
                    Some("ref/resource") => {
                        text(r.and_then(|r| r.get("uri"))).map_or(Named::Unknown, Named::Resource)
                    }
                    _ => Named::Unknown,
                },
            )
        }
        "resources/directory/read" | "skills/get" => {
            Some(text(params.and_then(|p| p.get("uri"))).map_or(Named::Unknown, Named::Resource))
        }
        _ => None,
    }
}

/// Keeps only the members JSON-RPC 2.0 defines. Whatever else a peer puts beside them never
/// reaches the other side: a member the proxy does not read is one it did not check.
fn keep_jsonrpc_members(obj: &mut Map<String, Value>) {
    obj.retain(|k, _| {
        matches!(
            k.as_str(),
            "jsonrpc" | "id" | "method" | "params" | "result" | "error"
        )
    });
}

/// How long the server gets to exit after the client closed its input before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// How long the proxy waits for the server's own `tools/list`, fetched to learn a tool's schema.
const TOOLS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Pages of `tools/list` read when fetching schemas; a server paging forever is cut off here.
const MAX_TOOL_PAGES: usize = 100;
/// Lines queued for one output before the side producing them waits (back-pressure).
const OUTPUT_QUEUE: usize = 1024;

/// How long the id of a request the client cancelled stays taken. The server may still answer
/// it (the specification only asks it not to); a new request reusing the id meanwhile could be
/// answered with the old one's result, filtered (or not) for the old method.
const CANCELLED_GRACE: Duration = Duration::from_secs(60);

/// The largest integer id: beyond 2^53 - 1 a JavaScript peer rounds ids, so two ids the proxy
/// tells apart would be one to the server.
const MAX_SAFE_ID: i64 = (1 << 53) - 1;

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The server command could not be started.
    #[error("cannot start the server command")]
    Spawn(#[source] io::Error),
    /// The server process has no piped stdin or stdout.
    #[error("the server's stdin and stdout could not be captured")]
    Pipes,
    /// Waiting for or killing the server failed.
    #[error("cannot wait for the server process")]
    Wait(#[source] io::Error),
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEnd {
    /// The client closed its input; the server's output then ended (`drained`) or the grace
    /// period ran out first.
    ClientClosed {
        /// Whether the server closed its output within the grace period.
        drained: bool,
    },
    /// The server closed its output (it exited or crashed) while the client was connected;
    /// every request still waiting was answered with an error.
    ServerClosed,
}

/// How the proxy ended, with the server's exit status when it had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyExit {
    /// The client disconnected and the server was stopped.
    ClientClosed(Option<ExitStatus>),
    /// The server exited while the client was still connected.
    ServerExited(Option<ExitStatus>),
}

impl ProxyExit {
    /// The exit code for the proxy process: the server's own when the client closed, and never
    /// zero when the server went away under a connected client.
    pub fn code(&self) -> i32 {
        match self {
            ProxyExit::ClientClosed(Some(s)) => s.code().unwrap_or(1),
            ProxyExit::ClientClosed(None) => 0,
            ProxyExit::ServerExited(s) => match s.and_then(|s| s.code()) {
                Some(0) | None => 1,
                Some(c) => c,
            },
        }
    }
}

/// The stdio proxy: the [`SecurityLayer`] between an MCP client (this process's stdin and
/// stdout) and an MCP server run as a child process.
///
/// Client to server, every request is authenticated, authorized, rate limited and validated
/// (a refused one is answered here and never reaches the server), and arguments are rewritten
/// as the validators ask. Server to client, responses are matched to their request by id,
/// lists are filtered to what the caller may use, results, errors, notifications and requests
/// are redacted, and requests (`sampling/createMessage`, `elicitation/create`, `roots/list`)
/// pass only when [`ProxyConfig::server_requests`] allows them. Every decision is audited.
///
/// ```no_run
/// use mcp_security::adapters::proxy::Proxy;
/// use mcp_security::policy::Policy;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = Policy::load("policy.toml")?;
/// let proxy = Proxy::new(policy.build()?, policy.proxy().clone())
///     .with_credential_env(policy.api_key_env().unwrap_or("MCP_API_KEY"));
/// let mut server = tokio::process::Command::new("npx");
/// server.args(["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]);
/// let exit = proxy.run(server).await?;
/// std::process::exit(exit.code());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Proxy {
    layer: SecurityLayer,
    config: ProxyConfig,
    credentials: Credentials,
    /// The variable the client's key was read from: the server never sees it.
    credential_env: Option<String>,
}

impl Proxy {
    /// A proxy enforcing `layer`, with the proxy-specific settings of `config`.
    pub fn new(layer: SecurityLayer, config: ProxyConfig) -> Self {
        Proxy {
            layer,
            config,
            credentials: Credentials::none(),
            credential_env: None,
        }
    }

    /// Reads the client's API key from the environment variable `var` (for stdio, the MCP
    /// specification's way), and removes `var` from the server's environment: the client's key
    /// is for the proxy, never passed through.
    pub fn with_credential_env(mut self, var: &str) -> Self {
        self.credentials = Credentials::from_env(var);
        self.credential_env = Some(var.to_owned());
        self
    }

    /// The client's credentials (for stdio, the API key from the environment). Unused when the
    /// configuration names the client's identity.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Starts `command` as the server (stdin and stdout piped, stderr inherited, loader
    /// variables removed from its environment) and relays between it and this process's
    /// stdin and stdout until one side closes.
    ///
    /// # Errors
    /// [`ProxyError`] when the server cannot be started or waited for.
    pub async fn run(self, mut command: Command) -> Result<ProxyExit, ProxyError> {
        for var in self.config.removed_env() {
            command.env_remove(var);
        }
        if let Some(var) = &self.credential_env {
            command.env_remove(var);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(ProxyError::Spawn)?;
        let (Some(server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ProxyError::Pipes);
        };
        let (client_in, client_out) = client_stdio();
        let end = self
            .relay(client_in, client_out, server_in, server_out)
            .await;
        let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            Ok(status) => Some(status.map_err(ProxyError::Wait)?),
            Err(_) => {
                child.kill().await.map_err(ProxyError::Wait)?;
                None
            }
        };
        Ok(match end {
            RelayEnd::ClientClosed { .. } => ProxyExit::ClientClosed(status),
            RelayEnd::ServerClosed => ProxyExit::ServerExited(status),
        })
    }

    /// Relays between a client and a server given as byte streams, until the server's output
    /// ends, or the client's input ends and the server then closes its output (or fails to
    /// within a grace period). [`run`](Self::run) is this over a child process; tests and
    /// benchmarks use it over pipes.
    pub async fn relay<CI, CO, SI, SO>(
        &self,
        client_in: CI,
        client_out: CO,
        server_in: SI,
        server_out: SO,
    ) -> RelayEnd
    where
        CI: AsyncRead + Unpin + Send + 'static,
        CO: AsyncWrite + Unpin + Send + 'static,
        SI: AsyncWrite + Unpin + Send + 'static,
        SO: AsyncRead + Unpin + Send + 'static,
    {
        let (to_client, client_rx) = mpsc::channel(OUTPUT_QUEUE);
        let (to_server, server_rx) = mpsc::channel(OUTPUT_QUEUE);
        let client_writer = tokio::spawn(write_lines(client_out, client_rx, "client"));
        let server_writer = tokio::spawn(write_lines(server_in, server_rx, "server"));
        let identity = self
            .config
            .identity
            .as_ref()
            .map(|host| Identity::new(host.clone()).with_method(AuthMethod::Asserted));
        let shared = Arc::new(Shared {
            layer: self.layer.clone(),
            max_pending: self.config.max_pending,
            gate: self.config.server_requests.clone(),
            credentials: self.credentials.clone(),
            identity,
            table: Mutex::new(Table::default()),
            to_client,
            to_server,
        });
        let max = self.config.max_line_bytes;
        let mut from_client = tokio::spawn(read_client(shared.clone(), client_in, max));
        let mut from_server = tokio::spawn(read_server(shared.clone(), server_out, max));

        let end = tokio::select! {
            _ = &mut from_client => {
                // The client is gone: let the server see end of input, answer what it still
                // owes, and exit.
                let _ = shared.to_server.send(Out::Close).await;
                let drained = tokio::time::timeout(EXIT_GRACE, &mut from_server).await.is_ok();
                if !drained {
                    from_server.abort();
                }
                RelayEnd::ClientClosed { drained }
            }
            _ = &mut from_server => {
                from_client.abort();
                RelayEnd::ServerClosed
            }
        };
        // Requests still waiting get an answer (the server will never send one) and their audit
        // record; then both writers finish what is queued.
        shared.fail_pending().await;
        let _ = shared.to_server.send(Out::Close).await;
        let _ = shared.to_client.send(Out::Close).await;
        drop(shared);
        let _ = server_writer.await;
        let _ = client_writer.await;
        end
    }
}

type Input = Box<dyn AsyncRead + Unpin + Send>;
type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// This process's stdin and stdout for the relay. Pipes (what an MCP host gives a stdio
/// server) are read and written through the event loop; anything else (a terminal, a file)
/// through tokio's blocking-thread stdio, which costs a thread hand-off per read.
fn client_stdio() -> (Input, Output) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use tokio::net::unix::pipe;
        let input: Input = match std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .and_then(pipe::Receiver::from_owned_fd)
        {
            Ok(p) => Box::new(p),
            Err(_) => Box::new(tokio::io::stdin()),
        };
        let output: Output = match std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .and_then(pipe::Sender::from_owned_fd)
        {
            Ok(p) => Box::new(p),
            Err(_) => Box::new(tokio::io::stdout()),
        };
        (input, output)
    }
    #[cfg(not(unix))]
    {
        (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()))
    }
}

/// A JSON-RPC id, as a table key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IdKey {
    Number(i64),
    Text(Box<str>),
}

impl IdKey {
    fn of(v: &Value) -> Option<IdKey> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .filter(|n| (-MAX_SAFE_ID..=MAX_SAFE_ID).contains(n))
                .map(IdKey::Number),
            Value::String(s) => Some(IdKey::Text(s.as_str().into())),
            _ => None,
        }
    }

    fn correlation(&self) -> CorrelationId {
        match self {
            IdKey::Number(n) => CorrelationId::Number(*n),
            IdKey::Text(s) => CorrelationId::Text(Arc::from(&**s)),
        }
    }
}

/// A client request the server has not answered yet.
struct Waiting {
    admission: Admission,
    method: Box<str>,
    target: Option<Box<str>>,
    list: Option<ListKind>,
    cx: RequestContext,
    /// What redaction found in the arguments (counted in the request's audit record).
    from_arguments: RedactionReport,
}

impl Waiting {
    /// Audits a request the server will never answer (cancelled, or the server is gone). A
    /// record that cannot be written is counted by the layer; there is no answer left to hold
    /// back.
    async fn cancelled(self, layer: &SecurityLayer) {
        let _ = layer
            .complete_named(
                self.admission,
                &self.method,
                self.target.as_deref(),
                &self.cx,
                Completion::Cancelled,
            )
            .await;
    }
}

#[derive(Default)]
struct Table {
    /// Client requests waiting for the server.
    client: HashMap<IdKey, Waiting>,
    /// Server requests waiting for the client.
    server: HashSet<IdKey>,
    /// The proxy's own requests to the server (`tools/list` for schemas).
    internal: HashMap<IdKey, oneshot::Sender<Value>>,
    /// Client requests cancelled by the client, and when: their ids stay taken for
    /// [`CANCELLED_GRACE`], and a late answer to one is dropped.
    cancelled: HashMap<IdKey, std::time::Instant>,
    next_internal: u64,
    /// Whether the server's tool list has been fetched since it last changed.
    tools_fetched: bool,
}

enum Out {
    Line(Vec<u8>),
    Close,
}

struct Shared {
    layer: SecurityLayer,
    max_pending: usize,
    gate: crate::authz::ServerRequestGate,
    credentials: Credentials,
    identity: Option<Identity>,
    table: Mutex<Table>,
    to_client: mpsc::Sender<Out>,
    to_server: mpsc::Sender<Out>,
}

/// Where a message came from, for contexts and log lines.
#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic could half-update across fields; keep serving.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The context of a message from `side` with this id.
    fn context(&self, side: Side, id: CorrelationId) -> RequestContext {
        let cx = RequestContext::new(Transport::Stdio).with_correlation_id(id);
        match side {
            Side::Server => cx,
            Side::Client => match &self.identity {
                Some(identity) => cx.with_verified_identity(identity.clone()),
                None => cx.with_credentials(self.credentials.clone()),
            },
        }
    }

    async fn send(&self, side: Side, value: &Value) {
        let tx = match side {
            Side::Client => &self.to_client,
            Side::Server => &self.to_server,
        };
        match serde_json::to_vec(value) {
            Ok(line) => {
                let _ = tx.send(Out::Line(line)).await;
            }
            // A `Value` always serializes; nothing half-written can reach the peer either way.
            Err(_) => eprintln!("mcp-security proxy: a message could not be encoded; dropped"),
        }
    }

    async fn send_error(&self, side: Side, id: &Value, code: i32, message: &str) {
        let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        self.send(side, &v).await;
    }

    /// Answers a refused client request, as `SecureServer` would: argument problems of a tool
    /// call are a tool result the model can read, everything else a JSON-RPC error.
    async fn answer_denial(&self, id: &Value, action: &Action<'_>, d: &Denial) {
        let v = if matches!(action, Action::CallTool { .. })
            && d.kind() == DenyKind::InvalidArguments
        {
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": d.reason()}],
                "isError": true,
            }})
        } else {
            let mut error = json!({"code": wire_code(action, d), "message": d.reason()});
            if let Some(after) = d.retry_after() {
                error["data"] = json!({ "retryAfterMs": after.as_millis() });
            }
            json!({"jsonrpc": "2.0", "id": id, "error": error})
        };
        self.send(Side::Client, &v).await;
    }

    /// Refuses (and audits) a client message that is not a JSON-RPC message at all.
    async fn refuse_unreadable(&self, id: &Value, method: &str, e: &MessageError) {
        let cx = self.context(Side::Client, CorrelationId::None);
        let d = self.layer.reject_malformed(method, &cx, e).await;
        let code = match e {
            MessageError::NotJson => -32700,
            _ => -32600,
        };
        self.send_error(Side::Client, id, code, d.reason()).await;
    }

    /// A client line: one message or a batch, each element on its own.
    async fn on_client_line(&self, line: &[u8]) {
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                return self
                    .refuse_unreadable(&Value::Null, "(unreadable)", &MessageError::NotJson)
                    .await;
            }
        };
        match value {
            Value::Array(items) if items.is_empty() => {
                self.refuse_unreadable(&Value::Null, "(batch)", &MessageError::EmptyBatch)
                    .await;
            }
            Value::Array(items) => {
                let mut forward = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(v) = self.client_message(item, line.len()).await {
                        forward.push(v);
                    }
                }
                match forward.len() {
                    0 => {}
                    1 => self.send(Side::Server, &forward[0]).await,
                    _ => self.send(Side::Server, &Value::Array(forward)).await,
                }
            }
            single => {
                // Always re-encoded from what was checked, never the client's own bytes: a
                // duplicate key that serde_json read as its last copy could be read as its
                // first by the server.
                if let Some(v) = self.client_message(single, line.len()).await {
                    self.send(Side::Server, &v).await;
                }
            }
        }
    }

    /// One client message. Returns what to forward to the server, or `None` when it was
    /// refused or consumed here.
    async fn client_message(&self, value: Value, len: usize) -> Option<Value> {
        // `{"method": "ping", "Method": "tools/call", ...}`: checked as a ping here, run as a
        // tool call by a server whose parser folds case. Refused, wherever in the message.
        if has_ambiguous_keys(&value) {
            let id = value.get("id").cloned().unwrap_or(Value::Null);
            self.refuse_unreadable(&id, "(unreadable)", &MessageError::AmbiguousKeys)
                .await;
            return None;
        }
        let Value::Object(mut obj) = value else {
            self.refuse_unreadable(&Value::Null, "(unreadable)", &MessageError::NotObject)
                .await;
            return None;
        };
        keep_jsonrpc_members(&mut obj);
        let id = obj.get("id").cloned();
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            let id = id.unwrap_or(Value::Null);
            self.refuse_unreadable(&id, "(unreadable)", &MessageError::WrongVersion)
                .await;
            return None;
        }
        let method = match obj.get("method") {
            Some(Value::String(m)) => Some(m.clone()),
            Some(_) => {
                let id = id.unwrap_or(Value::Null);
                self.refuse_unreadable(&id, "(unreadable)", &MessageError::MissingMethod)
                    .await;
                return None;
            }
            None => None,
        };
        match (method, id) {
            (Some(method), Some(id)) => self.client_request(obj, id, &method, len).await,
            (Some(method), None) => self
                .client_notification(&obj, &method, len)
                .await
                .then_some(Value::Object(obj)),
            (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
                let known = IdKey::of(&id).is_some_and(|k| self.table().server.remove(&k));
                if known {
                    // The server's own request is answered; redaction applies to what the server
                    // sends, not to what the host gives it.
                    return Some(Value::Object(std::mem::take(&mut obj)));
                }
                self.unsolicited(Side::Client, &id).await;
                None
            }
            (None, id) => {
                let id = id.unwrap_or(Value::Null);
                self.refuse_unreadable(&id, "(unreadable)", &MessageError::MissingMethod)
                    .await;
                None
            }
        }
    }

    /// A response nobody asked for: dropped, and audited.
    async fn unsolicited(&self, from: Side, id: &Value) {
        let cx = self.context(
            from,
            IdKey::of(id).map_or(CorrelationId::None, |k| k.correlation()),
        );
        let d = Denial::new(
            Stage::Frame,
            DenyKind::InvalidRequest,
            "response to no pending request",
        )
        .with_rule(RuleId::from_static("proxy.correlation"));
        let method = match from {
            Side::Client => "(response from client)",
            Side::Server => "(response from server)",
        };
        let _ = self.layer.audit_refusal(method, None, &cx, None, d).await;
    }

    async fn client_request(
        &self,
        mut obj: Map<String, Value>,
        id: Value,
        method: &str,
        len: usize,
    ) -> Option<Value> {
        let Some(key) = IdKey::of(&id) else {
            self.refuse_unreadable(&Value::Null, method, &MessageError::InvalidId)
                .await;
            return None;
        };
        let cx = self.context(Side::Client, key.correlation());
        let refusal = {
            let t = self.table();
            let recently_cancelled = t
                .cancelled
                .get(&key)
                .is_some_and(|at| at.elapsed() < CANCELLED_GRACE);
            if t.client.contains_key(&key) || t.internal.contains_key(&key) || recently_cancelled {
                Some("duplicate request id")
            } else if t.client.len() >= self.max_pending {
                Some("too many requests waiting for an answer")
            } else {
                None
            }
        };
        if let Some(reason) = refusal {
            let d = Denial::new(Stage::Frame, DenyKind::InvalidRequest, reason)
                .with_rule(RuleId::from_static("proxy.pending"));
            let d = self.layer.audit_refusal(method, None, &cx, None, d).await;
            self.send_error(Side::Client, &id, -32600, d.reason()).await;
            return None;
        }
        // Normalized before any check (invisible characters stripped when the policy says so),
        // so the checks see the arguments the server will get.
        let of_tool = match method {
            "tools/call" => Some(true),
            "prompts/get" => Some(false),
            _ => None,
        };
        if let Some(tool) = of_tool
            && let Some(Value::Object(params)) = obj.get_mut("params")
            && let Some(Value::String(name)) = params.get("name").cloned()
            && let Some(Value::Object(args)) = params.get_mut("arguments")
        {
            let of = if tool {
                ArgumentsOf::Tool(&name)
            } else {
                ArgumentsOf::Prompt(&name)
            };
            self.layer.normalize_arguments(of, args);
        }
        let action = match Action::from_method(method, obj.get("params"), false) {
            Ok(a) => a,
            Err(e) => {
                let d = self.layer.reject_malformed(method, &cx, &e).await;
                self.send_error(Side::Client, &id, d.kind().code(), d.reason())
                    .await;
                return None;
            }
        };
        // A tool called before the client listed tools: learn its schema from the server. Only
        // for a caller who may call it: nobody unauthenticated or refused makes the server list
        // its tools (admission then refuses them, audited).
        if let Action::CallTool { name, .. } = action
            && !self.table().tools_fetched
            && self.layer.needs_tool_schema(name)
            && let Ok(identity) = self.layer.identify(&cx).await
            && self.layer.permits(&identity, &action, &cx)
        {
            self.fetch_tools().await;
        }
        let admission = match self.layer.admit(&action, &cx, Some(len)).await {
            Ok(a) => a,
            Err(d) => {
                self.answer_denial(&id, &action, &d).await;
                return None;
            }
        };
        // A method that names a prompt or resource (a completion's reference, a directory, a
        // skill): the caller must be allowed what it names too, as a request naming it
        // directly would be; otherwise it reads as not found, like a hidden item.
        let named = named_target(method, obj.get("params"));
        if let Some(named) = named {
            let allowed = match &named {
                Named::Prompt(name) => self.layer.permits(
                    admission.identity(),
                    &Action::GetPrompt {
                        name,
                        arguments: None,
                    },
                    &cx,
                ),
                Named::Resource(uri) => {
                    self.layer
                        .permits(admission.identity(), &Action::ReadResource { uri }, &cx)
                }
                Named::Unknown => false,
            };
            if !allowed {
                let d = Denial::new(Stage::Authorization, DenyKind::NotFound, "not found")
                    .with_rule(RuleId::from_static("authorization.named_target"));
                let _ = self
                    .layer
                    .complete(admission, &action, &cx, Completion::Refused(d.clone()))
                    .await;
                self.answer_denial(&id, &action, &d).await;
                return None;
            }
        }
        let target = action.target().map(Box::from);
        let list = match action {
            Action::List(kind) => Some(kind),
            _ => None,
        };
        let arguments_of = match action {
            Action::CallTool { .. } => Some(true),
            Action::GetPrompt { .. } => Some(false),
            _ => None,
        };
        let from_arguments = match (arguments_of, &target) {
            (Some(tool), Some(name)) => self.rewrite_arguments(&mut obj, name, tool),
            _ => RedactionReport::default(),
        };
        let waiting = Waiting {
            admission,
            method: method.into(),
            target,
            list,
            cx,
            from_arguments,
        };
        self.table().client.insert(key, waiting);
        Some(Value::Object(obj))
    }

    /// Rewrites (and, when configured, redacts) the arguments of an admitted call in place.
    fn rewrite_arguments(
        &self,
        obj: &mut Map<String, Value>,
        name: &str,
        tool: bool,
    ) -> RedactionReport {
        let Some(Value::Object(args)) = obj.get_mut("params").and_then(|p| p.get_mut("arguments"))
        else {
            return RedactionReport::default();
        };
        let of = if tool {
            ArgumentsOf::Tool(name)
        } else {
            ArgumentsOf::Prompt(name)
        };
        self.layer.rewrite_arguments(of, args);
        if self.layer.redacts_arguments() {
            let mut v = Value::Object(std::mem::take(args));
            let report = self.layer.redact_value(&mut v);
            if let Value::Object(redacted) = v {
                *args = redacted;
            }
            report
        } else {
            RedactionReport::default()
        }
    }

    /// A client notification: authorized and audited like a request; refused ones are dropped
    /// (a notification has no answer). `notifications/cancelled` also settles the request it
    /// names, since the server will not answer it.
    async fn client_notification(
        &self,
        obj: &Map<String, Value>,
        method: &str,
        len: usize,
    ) -> bool {
        let cx = self.context(Side::Client, CorrelationId::None);
        let action = Action::Notification { method };
        let Ok(admission) = self.layer.admit(&action, &cx, Some(len)).await else {
            return false;
        };
        if self
            .layer
            .complete(admission, &action, &cx, Completion::ok(0))
            .await
            .is_err()
        {
            return false;
        }
        if method == "notifications/cancelled"
            && let Some(key) = obj
                .get("params")
                .and_then(|p| p.get("requestId"))
                .and_then(IdKey::of)
        {
            let cancelled = {
                let mut t = self.table();
                if t.cancelled.len() >= self.max_pending {
                    t.cancelled.retain(|_, at| at.elapsed() < CANCELLED_GRACE);
                }
                if t.cancelled.len() >= self.max_pending {
                    // No room to remember it: it stays pending, and the server's answer (or
                    // the child's exit) settles it.
                    None
                } else {
                    let w = t.client.remove(&key);
                    if w.is_some() {
                        t.cancelled.insert(key, std::time::Instant::now());
                    }
                    w
                }
            };
            if let Some(w) = cancelled {
                w.cancelled(&self.layer).await;
            }
        }
        true
    }

    /// Asks the server for its tools (every page) and shows them to the validators, once per
    /// listing: a tool called before the client listed tools is still checked against its own
    /// schema.
    async fn fetch_tools(&self) {
        if std::mem::replace(&mut self.table().tools_fetched, true) {
            return;
        }
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_TOOL_PAGES {
            let (tx, rx) = oneshot::channel();
            let id = {
                let mut t = self.table();
                loop {
                    t.next_internal += 1;
                    let key = IdKey::Text(format!("mcp-security-proxy-{}", t.next_internal).into());
                    if !t.client.contains_key(&key) {
                        let IdKey::Text(text) = &key else {
                            unreachable!()
                        };
                        let id = Value::String(text.to_string());
                        t.internal.insert(key, tx);
                        break id;
                    }
                }
            };
            let mut request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
            if let Some(c) = cursor.take() {
                request["params"] = json!({ "cursor": c });
            }
            self.send(Side::Server, &request).await;
            let Ok(Ok(response)) = tokio::time::timeout(TOOLS_FETCH_TIMEOUT, rx).await else {
                if let Some(key) = IdKey::of(&id) {
                    self.table().internal.remove(&key);
                }
                // Not asked again until the server says its tools changed: a server that
                // cannot list (or is slow to) would otherwise pay a listing, or its timeout,
                // on every call. Calls go on without a schema, or are refused where the policy
                // requires one.
                return;
            };
            let Some(result) = response.get("result") else {
                return;
            };
            observe_tools(&self.layer, result);
            match result.get("nextCursor") {
                Some(c @ Value::String(_)) => cursor = Some(c.clone()),
                _ => return,
            }
        }
    }

    /// A server line: one message or a batch, each element on its own.
    async fn on_server_line(&self, line: &[u8]) {
        match serde_json::from_slice::<Value>(line) {
            Ok(Value::Array(items)) => {
                for item in items {
                    self.server_message(item).await;
                }
            }
            Ok(v) => self.server_message(v).await,
            Err(_) => self.server_garbage("not json").await,
        }
    }

    /// Output from the server that is not MCP: dropped (the client's stdout carries only MCP),
    /// said on stderr, audited.
    async fn server_garbage(&self, why: &'static str) {
        eprintln!("mcp-security proxy: dropped a line from the server: {why}");
        let cx = self.context(Side::Server, CorrelationId::None);
        let d = Denial::new(Stage::Frame, DenyKind::InvalidRequest, why)
            .with_rule(RuleId::from_static("proxy.server_output"));
        let _ = self
            .layer
            .audit_refusal("(server output)", None, &cx, None, d)
            .await;
    }

    async fn server_message(&self, value: Value) {
        let Value::Object(mut obj) = value else {
            return self.server_garbage("not a json-rpc object").await;
        };
        // As for the client's messages: only the members the proxy reads, and checks, go on.
        keep_jsonrpc_members(&mut obj);
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return self.server_garbage("not json-rpc 2.0").await;
        }
        let method = match obj.get("method") {
            Some(Value::String(m)) => Some(m.clone()),
            Some(_) => return self.server_garbage("method is not a string").await,
            None => None,
        };
        let id = obj.get("id").cloned();
        match (method, id) {
            (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
                self.server_response(obj, &id).await;
            }
            (Some(method), Some(id)) => self.server_request(obj, &id, &method).await,
            (Some(method), None) => {
                if method == "notifications/tools/list_changed" {
                    self.table().tools_fetched = false;
                }
                if method == "notifications/cancelled"
                    && let Some(key) = obj
                        .get("params")
                        .and_then(|p| p.get("requestId"))
                        .and_then(IdKey::of)
                {
                    self.table().server.remove(&key);
                }
                if let Some(params) = obj.get_mut("params") {
                    self.layer.redact_value(params);
                }
                self.send(Side::Client, &Value::Object(obj)).await;
            }
            (None, _) => {
                self.server_garbage("neither a request nor a response")
                    .await
            }
        }
    }

    async fn server_response(&self, mut obj: Map<String, Value>, id: &Value) {
        let Some(key) = IdKey::of(id) else {
            return self.unsolicited(Side::Server, id).await;
        };
        let (internal, waiting, late) = {
            let mut t = self.table();
            match t.internal.remove(&key) {
                Some(tx) => (Some(tx), None, false),
                None => match t.client.remove(&key) {
                    Some(w) => (None, Some(w), false),
                    None => (None, None, t.cancelled.remove(&key).is_some()),
                },
            }
        };
        if let Some(tx) = internal {
            let _ = tx.send(Value::Object(obj));
            return;
        }
        if late {
            // The answer to a request the client cancelled: it no longer waits for it.
            return;
        }
        let Some(w) = waiting else {
            return self.unsolicited(Side::Server, id).await;
        };
        // A response with both `result` and `error` is not JSON-RPC; a client that reads
        // `result` whenever it is present would get it unfiltered. The error alone goes on.
        // A result with keys that differ only in case (`tools` and `Tools`) could be read by
        // the client from the copy no filter looked at: it becomes an error.
        if obj.contains_key("error") {
            obj.remove("result");
        } else if obj.get("result").is_some_and(has_ambiguous_keys) {
            obj.remove("result");
            obj.insert(
                "error".into(),
                json!({"code": -32603, "message": "invalid response from server"}),
            );
        }
        let mut report = w.from_arguments;
        let completion = if let Some(error) = obj.get_mut("error") {
            report.merge(&self.layer.redact_value(error));
            let code = error
                .get("code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(-32603);
            Completion::HandlerError { code }
        } else {
            let result = obj.entry("result").or_insert(Value::Null);
            if let Some(kind) = w.list {
                filter_list(&self.layer, &w.admission, &w.cx, kind, result);
            }
            report.merge(&self.layer.redact_value(result));
            match self.layer.classify(&w.admission, &report) {
                Ok(classification) => Completion::Ok {
                    redactions: report.total(),
                    classification,
                },
                Err(classification) => {
                    let d = crate::decision::withheld();
                    obj.remove("result");
                    obj.insert(
                        "error".into(),
                        json!({"code": d.kind().code(), "message": d.reason()}),
                    );
                    Completion::Withheld { classification }
                }
            }
        };
        match self
            .layer
            .complete_named(
                w.admission,
                &w.method,
                w.target.as_deref(),
                &w.cx,
                completion,
            )
            .await
        {
            Ok(()) => self.send(Side::Client, &Value::Object(obj)).await,
            // Fail closed: the record could not be written, so the result does not go out.
            Err(d) => {
                self.send_error(Side::Client, id, d.kind().code(), d.reason())
                    .await;
            }
        }
    }

    /// A request from the server to the client: passed on only when the gate allows it.
    async fn server_request(&self, mut obj: Map<String, Value>, id: &Value, method: &str) {
        let Some(key) = IdKey::of(id) else {
            return self
                .server_garbage("request id is not a string or an integer")
                .await;
        };
        let cx = self.context(Side::Server, key.correlation());
        let refusal = if !self.gate.permits(method) {
            Some(self.gate.denial())
        } else {
            let t = self.table();
            if t.server.contains(&key) {
                Some(Denial::new(
                    Stage::Frame,
                    DenyKind::InvalidRequest,
                    "duplicate request id",
                ))
            } else if t.server.len() >= self.max_pending {
                Some(Denial::new(
                    Stage::Frame,
                    DenyKind::InvalidRequest,
                    "too many requests waiting for an answer",
                ))
            } else {
                None
            }
        };
        let audited = self
            .layer
            .audit_from_server(method, None, &cx, 0, refusal.as_ref())
            .await;
        let refusal = match (refusal, audited) {
            (Some(d), _) | (None, Err(d)) => Some(d),
            (None, Ok(())) => None,
        };
        if let Some(d) = refusal {
            let code = if d.stage() == Stage::Frame {
                -32600
            } else {
                d.kind().code()
            };
            return self.send_error(Side::Server, id, code, d.reason()).await;
        }
        self.table().server.insert(key);
        // What the server asks the host's model or user can carry its data too.
        if let Some(params) = obj.get_mut("params") {
            self.layer.redact_value(params);
        }
        self.send(Side::Client, &Value::Object(obj)).await;
    }

    /// Answers every client request still waiting (the server will not) and audits each as
    /// cancelled.
    async fn fail_pending(&self) {
        let waiting: Vec<(IdKey, Waiting)> = {
            let mut t = self.table();
            t.internal.clear();
            t.client.drain().collect()
        };
        for (key, w) in waiting {
            let id = match &key {
                IdKey::Number(n) => json!(n),
                IdKey::Text(s) => json!(s),
            };
            self.send_error(Side::Client, &id, -32603, "server exited before answering")
                .await;
            w.cancelled(&self.layer).await;
        }
    }
}

/// Shows a `tools/list` result's tools to the validators.
fn observe_tools(layer: &SecurityLayer, result: &Value) {
    let Some(tools) = result.get("tools").and_then(Value::as_array) else {
        return;
    };
    let declared: Vec<ToolSchema<'_>> = tools
        .iter()
        .filter_map(|t| {
            Some(ToolSchema {
                name: t.get("name")?.as_str()?,
                input_schema: t.get("inputSchema")?.as_object()?,
            })
        })
        .collect();
    layer.observe_tools(&declared);
}

/// Keeps only the items the caller may use, so hidden ones read as unknown. Items without the
/// field authorization needs are dropped.
fn filter_list(
    layer: &SecurityLayer,
    admission: &Admission,
    cx: &RequestContext,
    kind: ListKind,
    result: &mut Value,
) {
    let identity = admission.identity();
    let permits = |a: &Action<'_>| layer.permits(identity, a, cx);
    let (field, key) = match kind {
        ListKind::Tools => {
            observe_tools(layer, result);
            ("tools", "name")
        }
        ListKind::Prompts => ("prompts", "name"),
        ListKind::Resources => ("resources", "uri"),
        ListKind::ResourceTemplates => ("resourceTemplates", "uriTemplate"),
    };
    let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) else {
        return;
    };
    items.retain(|item| {
        let Some(name) = item.get(key).and_then(Value::as_str) else {
            return false;
        };
        permits(&match kind {
            ListKind::Tools => Action::CallTool {
                name,
                arguments: None,
            },
            ListKind::Prompts => Action::GetPrompt {
                name,
                arguments: None,
            },
            ListKind::Resources | ListKind::ResourceTemplates => Action::ReadResource { uri: name },
        })
    });
}

/// What one bounded line read gave.
enum Line {
    Data,
    TooLong,
    Eof,
}

/// Reads one `\n`-terminated line into `buf` (without the terminator), never holding more than
/// `max` bytes: the rest of a longer line is read and thrown away.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            // End of input; a last line without a newline still counts.
            return Ok(if too_long {
                Line::TooLong
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Data
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let data = chunk.get(..take).unwrap_or_default();
        let data = if done {
            data.get(..take - 1).unwrap_or_default()
        } else {
            data
        };
        if !too_long {
            if buf.len() + data.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(data);
            }
        }
        r.consume(take);
        if done {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if too_long { Line::TooLong } else { Line::Data });
        }
    }
}

async fn read_client<R: AsyncRead + Unpin>(shared: Arc<Shared>, input: R, max: usize) {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut input, &mut buf, max).await {
            Ok(Line::Data) if buf.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Line::Data) => shared.on_client_line(&buf).await,
            Ok(Line::TooLong) => {
                let e = MessageError::TooLarge { limit: max };
                shared
                    .refuse_unreadable(&Value::Null, "(unreadable)", &e)
                    .await;
            }
            Ok(Line::Eof) => return,
            Err(e) => {
                eprintln!("mcp-security proxy: reading from the client failed: {e}");
                return;
            }
        }
    }
}

async fn read_server<R: AsyncRead + Unpin>(shared: Arc<Shared>, output: R, max: usize) {
    let mut output = BufReader::with_capacity(64 * 1024, output);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut output, &mut buf, max).await {
            Ok(Line::Data) if buf.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Line::Data) => shared.on_server_line(&buf).await,
            Ok(Line::TooLong) => shared.server_garbage("line longer than the limit").await,
            Ok(Line::Eof) => return,
            Err(e) => {
                eprintln!("mcp-security proxy: reading from the server failed: {e}");
                return;
            }
        }
    }
}

/// Owns one output: writes whole lines, flushes when nothing more is queued, and on `Close`
/// shuts the stream (the server then sees end of input).
async fn write_lines<W: AsyncWrite + Unpin>(
    out: W,
    mut rx: mpsc::Receiver<Out>,
    peer: &'static str,
) {
    let mut out = Some(out);
    while let Some(msg) = rx.recv().await {
        let Some(w) = out.as_mut() else {
            continue;
        };
        let result = match msg {
            Out::Line(mut line) => {
                line.push(b'\n');
                match w.write_all(&line).await {
                    Ok(()) if rx.is_empty() => w.flush().await,
                    other => other,
                }
            }
            Out::Close => {
                let r = w.shutdown().await;
                out = None;
                r
            }
        };
        if let Err(e) = result {
            // The peer is gone; what is still queued for it cannot be delivered.
            if e.kind() != io::ErrorKind::BrokenPipe {
                eprintln!("mcp-security proxy: writing to the {peer} failed: {e}");
            }
            out = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<String, &'static str>> {
        let mut r = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, max).await.unwrap() {
                Line::Data => got.push(Ok(String::from_utf8(buf.clone()).unwrap())),
                Line::TooLong => got.push(Err("too long")),
                Line::Eof => return got,
            }
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_the_rest_of_a_long_line_is_skipped() {
        let got = lines(b"abc\r\n0123456789abcdef\nxy\nlast", 8).await;
        assert_eq!(
            got,
            vec![
                Ok("abc".into()),
                Err("too long"),
                Ok("xy".into()),
                Ok("last".into())
            ]
        );
        assert_eq!(lines(b"", 8).await, vec![]);
        assert_eq!(lines(b"12345678\n", 8).await, vec![Ok("12345678".into())]);
        assert_eq!(lines(b"123456789\n", 8).await, vec![Err("too long")]);
    }

    #[test]
    fn keys_equal_but_for_case_are_ambiguous_at_any_depth() {
        use serde_json::json;
        let ambiguous = [
            json!({"method": "ping", "Method": "tools/call"}),
            json!({"params": {"name": "a", "NAME": "b"}}),
            json!([1, {"x": [{"arguments": 1, "argumentſ": 2}]}]),
            json!({"kind": 1, "\u{212a}ind": 2}),
        ];
        for v in &ambiguous {
            assert!(has_ambiguous_keys(v), "{v}");
        }
        let plain = [
            json!({"method": "ping", "params": {"name": "a", "Name2": "b"}}),
            json!({"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}),
            json!("Method"),
            json!({"\u{e9}t\u{e9}": 1, "ete": 2}),
        ];
        for v in &plain {
            assert!(!has_ambiguous_keys(v), "{v}");
        }
    }

    #[test]
    fn exit_codes_are_never_zero_when_the_server_died_under_a_client() {
        assert_eq!(ProxyExit::ServerExited(None).code(), 1);
        assert_eq!(ProxyExit::ClientClosed(None).code(), 0);
    }

    #[test]
    fn ids_are_keys_only_when_strings_or_integers() {
        assert_eq!(IdKey::of(&json!(7)), Some(IdKey::Number(7)));
        assert_eq!(IdKey::of(&json!("a")), Some(IdKey::Text("a".into())));
        assert_eq!(IdKey::of(&json!(1.5)), None);
        assert_eq!(IdKey::of(&json!(null)), None);
        assert_eq!(IdKey::of(&json!([1])), None);
        // A JavaScript peer would round these into each other.
        let max = (1i64 << 53) - 1;
        assert_eq!(IdKey::of(&json!(max)), Some(IdKey::Number(max)));
        assert_eq!(IdKey::of(&json!(-max)), Some(IdKey::Number(-max)));
        assert_eq!(IdKey::of(&json!(max + 1)), None);
        assert_eq!(IdKey::of(&json!(9_007_199_254_740_993_u64)), None);
    }
}
