//! `SecureServer` forwards every `ServerHandler` method of the rmcp in Cargo.lock.
//!
//! A canary handler overrides every method and records each call. Each method is then driven
//! through the wrapper (requests directly on the handler with a live peer, notifications,
//! `initialize`, `server/discover` and `subscriptions/listen` through real rmcp clients), and
//! the recorded set must equal [`FORWARDED_METHODS`]. A second test reads rmcp's own source to
//! check that `FORWARDED_METHODS` is every method rmcp declares, so an rmcp upgrade that adds
//! one fails here instead of silently answering with rmcp's unchecked default.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    deprecated,
    reason = "tests; deprecated rmcp methods are forwarded too"
)]

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_security::adapters::rmcp::{FORWARDED_METHODS, SecureServer};
use mcp_security::audit::MemorySink;
use mcp_security::authz::authorize_fn;
use mcp_security::{Action, Decision, Identity, RequestContext as Cx, SecurityLayer};
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{
    ClientLifecycleMode, ClientServiceExt, ErrorData as McpError, RoleServer, ServerHandler,
    ServiceExt,
};
use serde_json::json;

#[derive(Clone, Default)]
struct Canary {
    seen: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl Canary {
    fn saw(&self, m: &'static str) {
        self.seen.lock().unwrap().insert(m);
    }
}

fn task(id: &str) -> CreateTaskResult {
    from(
        json!({"resultType": "task", "taskId": id, "status": "working",
        "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z"}),
    )
}

fn canary_error() -> McpError {
    McpError::internal_error("canary", None)
}

impl ServerHandler for Canary {
    async fn ping(&self, _c: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.saw("ping");
        Ok(())
    }
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        self.saw("initialize");
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }
    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.saw("negotiate_initialize");
        let mut info = self.get_info();
        info.protocol_version = request.protocol_version.clone();
        Ok(info)
    }
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.saw("supported_protocol_versions");
        Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
    }
    async fn discover(&self, _c: RequestContext<RoleServer>) -> Result<DiscoverResult, McpError> {
        self.saw("discover");
        Ok(DiscoverResult::from_server_info(
            ProtocolVersion::KNOWN_VERSIONS.to_vec(),
            self.get_info(),
        ))
    }
    async fn complete(
        &self,
        _r: CompleteRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        self.saw("complete");
        Ok(CompleteResult::default())
    }
    async fn set_level(
        &self,
        _r: SetLevelRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.saw("set_level");
        Ok(())
    }
    async fn get_prompt(
        &self,
        _r: GetPromptRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.saw("get_prompt");
        Ok(GetPromptResult::new(vec![]).into())
    }
    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.saw("list_prompts");
        Ok(ListPromptsResult::default())
    }
    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.saw("list_resources");
        Ok(ListResourcesResult::default())
    }
    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.saw("list_resource_templates");
        Ok(ListResourceTemplatesResult::default())
    }
    async fn read_resource(
        &self,
        r: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.saw("read_resource");
        Ok(ReadResourceResult::new(vec![ResourceContents::text("x", r.uri)]).into())
    }
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.saw("accepted_subscription_filter");
        Some(requested.supported_by(&self.get_info().capabilities))
    }
    async fn listen(&self, _c: SubscriptionContext) -> Result<(), McpError> {
        self.saw("listen");
        Ok(())
    }
    async fn subscribe(
        &self,
        _r: SubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.saw("subscribe");
        Ok(())
    }
    async fn unsubscribe(
        &self,
        _r: UnsubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.saw("unsubscribe");
        Ok(())
    }
    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.saw("call_tool");
        // The identity reaches the inner handler.
        assert!(c.extensions.get::<Identity>().is_some());
        if r.name == "make_task" {
            return Ok(CallToolResponse::Task(task("task-1")));
        }
        Ok(CallToolResult::success(vec![]).into())
    }
    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.saw("list_tools");
        Ok(ListToolsResult::default())
    }
    fn get_tool(&self, _name: &str) -> Option<Tool> {
        self.saw("get_tool");
        None
    }
    async fn on_custom_request(
        &self,
        _r: CustomRequest,
        _c: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        self.saw("on_custom_request");
        Ok(CustomResult::new(json!({})))
    }
    async fn on_cancelled(
        &self,
        _n: CancelledNotificationParam,
        _c: NotificationContext<RoleServer>,
    ) {
        self.saw("on_cancelled");
    }
    async fn on_progress(
        &self,
        _n: ProgressNotificationParam,
        _c: NotificationContext<RoleServer>,
    ) {
        self.saw("on_progress");
    }
    async fn on_initialized(&self, _c: NotificationContext<RoleServer>) {
        self.saw("on_initialized");
    }
    async fn on_roots_list_changed(&self, _c: NotificationContext<RoleServer>) {
        self.saw("on_roots_list_changed");
    }
    async fn on_custom_notification(
        &self,
        _n: CustomNotification,
        _c: NotificationContext<RoleServer>,
    ) {
        self.saw("on_custom_notification");
    }
    fn get_info(&self) -> ServerConfig {
        self.saw("get_info");
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_prompts()
                .enable_completions()
                .enable_logging()
                .build(),
        )
    }
    async fn get_task(
        &self,
        _r: GetTaskParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        self.saw("get_task");
        Err(canary_error())
    }
    async fn update_task(
        &self,
        _r: UpdateTaskParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.saw("update_task");
        Ok(())
    }
    async fn cancel_task(
        &self,
        _r: CancelTaskParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.saw("cancel_task");
        Ok(())
    }
    async fn list_skills(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListSkillsResult, McpError> {
        self.saw("list_skills");
        Ok(ListSkillsResult::default())
    }
    async fn get_skill(
        &self,
        _r: GetSkillRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, McpError> {
        self.saw("get_skill");
        Err(canary_error())
    }
    async fn read_resource_directory(
        &self,
        _r: ReadResourceDirectoryRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceDirectoryResult, McpError> {
        self.saw("read_resource_directory");
        Err(canary_error())
    }
}

fn allow_all_layer(audit: Arc<MemorySink>) -> SecurityLayer {
    SecurityLayer::builder()
        .allow_anonymous()
        .authorizer(authorize_fn(|_: &Identity, _: &Action<'_>, _: &Cx| {
            Decision::Allow(None)
        }))
        .audit_sink_arc(audit)
        .build()
        .unwrap()
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn every_server_handler_method_is_forwarded() {
    let canary = Canary::default();
    let audit = Arc::new(MemorySink::new());
    let secure = SecureServer::new(canary.clone(), allow_all_layer(audit.clone()));

    // A legacy client: initialize, negotiate, initialized.
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let (peer_tx, peer_rx) = tokio::sync::oneshot::channel();
    let served = secure.clone();
    tokio::spawn(async move {
        let running = served.serve(server_io).await.unwrap();
        let _ = peer_tx.send(running.peer().clone());
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    let peer = peer_rx.await.unwrap();
    let cx = |id: i64| RequestContext::new(NumberOrString::Number(1000 + id), peer.clone());

    // Notifications, through the real client.
    client
        .notify_cancelled(from(json!({"requestId": 99, "reason": "test"})))
        .await
        .unwrap();
    client
        .notify_progress(from(json!({"progressToken": "t", "progress": 1.0})))
        .await
        .unwrap();
    client.notify_roots_list_changed().await.unwrap();
    client
        .send_notification(ClientNotification::CustomNotification(
            CustomNotification::new("notifications/custom", None),
        ))
        .await
        .unwrap();

    // Every request method, directly on the wrapper, with a live peer.
    secure.ping(cx(1)).await.unwrap();
    secure.complete(from(json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "b"}})), cx(2)).await.unwrap();
    secure
        .set_level(SetLevelRequestParams::new(LoggingLevel::Info), cx(3))
        .await
        .unwrap();
    secure
        .get_prompt(GetPromptRequestParams::new("p"), cx(4))
        .await
        .unwrap();
    secure.list_prompts(None, cx(5)).await.unwrap();
    secure.list_resources(None, cx(6)).await.unwrap();
    secure.list_resource_templates(None, cx(7)).await.unwrap();
    secure
        .read_resource(ReadResourceRequestParams::new("file:///x"), cx(8))
        .await
        .unwrap();
    secure
        .subscribe(SubscribeRequestParams::new("file:///x"), cx(9))
        .await
        .unwrap();
    secure
        .unsubscribe(from(json!({"uri": "file:///x"})), cx(10))
        .await
        .unwrap();
    secure
        .call_tool(CallToolRequestParams::new("t"), cx(11))
        .await
        .unwrap();
    // tasks/* answer only for tasks the caller created.
    secure
        .call_tool(CallToolRequestParams::new("make_task"), cx(20))
        .await
        .unwrap();
    secure.list_tools(None, cx(12)).await.unwrap();
    secure
        .on_custom_request(CustomRequest::new("custom/thing", None), cx(13))
        .await
        .unwrap();
    assert!(
        secure
            .get_task(GetTaskParams::new("task-1"), cx(14))
            .await
            .is_err()
    );
    secure
        .update_task(UpdateTaskParams::new("task-1", Default::default()), cx(15))
        .await
        .unwrap();
    secure
        .cancel_task(CancelTaskParams::new("task-1"), cx(16))
        .await
        .unwrap();
    secure.list_skills(None, cx(17)).await.unwrap();
    assert!(
        secure
            .get_skill(GetSkillRequestParams::new("skill://x"), cx(18))
            .await
            .is_err()
    );
    assert!(
        secure
            .read_resource_directory(
                ReadResourceDirectoryRequestParams::new("file:///d/"),
                cx(19)
            )
            .await
            .is_err()
    );
    assert!(secure.get_tool("t").is_none());
    assert!(secure.supported_protocol_versions().len() > 1);
    client.cancel().await.unwrap();

    // A 2026-07-28 client: server/discover, then subscriptions/listen.
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let served = secure.clone();
    tokio::spawn(async move {
        if let Ok(running) = served.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let modern = ()
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    let mut sub = modern
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
    modern.cancel().await.unwrap();

    // Notifications are handled asynchronously: wait for them.
    let want: BTreeSet<&str> = FORWARDED_METHODS.iter().copied().collect();
    for _ in 0..200 {
        if *canary.seen.lock().unwrap() == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = canary.seen.lock().unwrap().clone();
    let missing: Vec<_> = want.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not forwarded: {missing:?}; unexpected: {extra:?}"
    );

    // Every gated call was audited, handler errors included.
    let records = audit.records();
    let methods: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r["method"].as_str().map(str::to_owned))
        .collect();
    for m in [
        "initialize",
        "ping",
        "tools/call",
        "tasks/get",
        "subscriptions/listen",
        "server/discover",
        "notifications/custom",
    ] {
        assert!(methods.contains(m), "no audit record for {m}: {methods:?}");
    }
    let task = records.iter().find(|r| r["method"] == "tasks/get").unwrap();
    assert_eq!(
        (task["outcome"].as_str(), task["error_code"].as_i64()),
        (Some("error"), Some(-32603))
    );
}

/// The rmcp version Cargo.lock resolved.
fn locked_rmcp_version() -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"rmcp\"" {
            let version = lines.next().unwrap().trim();
            return version
                .trim_start_matches("version = ")
                .trim_matches('"')
                .to_owned();
        }
    }
    panic!("rmcp is not in Cargo.lock");
}

/// The method names rmcp declares in `server_handler_methods!`, read from the source of the
/// rmcp that Cargo.lock resolved, in cargo's registry.
fn rmcp_server_handler_methods() -> BTreeSet<String> {
    let version = locked_rmcp_version();
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .unwrap();
    let registry = home.join("registry/src");
    let src = std::fs::read_dir(&registry)
        .unwrap()
        .filter_map(Result::ok)
        .map(|index| {
            index
                .path()
                .join(format!("rmcp-{version}/src/handler/server.rs"))
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "rmcp {version} source not found under {}",
                registry.display()
            )
        });
    let src = std::fs::read_to_string(src).unwrap();
    let start = src
        .find("macro_rules! server_handler_methods")
        .expect("rmcp declares its methods in server_handler_methods!");
    let body = &src[start..];
    // The macro body ends where the trait that expands it begins.
    let end = body.find("pub trait ServerHandler").unwrap_or(body.len());
    let mut names = BTreeSet::new();
    for line in body[..end].lines() {
        if let Some(rest) = line.trim_start().strip_prefix("fn ") {
            names.insert(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
}

#[test]
fn forwarded_methods_match_the_rmcp_in_cargo_lock() {
    let declared = rmcp_server_handler_methods();
    let forwarded: BTreeSet<String> = FORWARDED_METHODS.iter().map(|s| (*s).to_owned()).collect();
    assert!(
        declared.len() >= 30,
        "parsed too few methods from rmcp: {declared:?}"
    );
    assert_eq!(
        declared, forwarded,
        "rmcp's ServerHandler methods changed: update SecureServer and FORWARDED_METHODS"
    );
}

/// A handler that never answers a tool call.
#[derive(Clone)]
struct Stuck;

impl ServerHandler for Stuck {
    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_request_dropped_mid_handler_is_still_audited() {
    let audit = Arc::new(MemorySink::new());
    let secure = SecureServer::new(Stuck, allow_all_layer(audit.clone()));
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let (peer_tx, peer_rx) = tokio::sync::oneshot::channel();
    let served = secure.clone();
    tokio::spawn(async move {
        let running = served.serve(server_io).await.unwrap();
        let _ = peer_tx.send(running.peer().clone());
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    let peer = peer_rx.await.unwrap();

    let call = secure.call_tool(
        CallToolRequestParams::new("slow"),
        RequestContext::new(NumberOrString::Number(7), peer),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err(),
        "the stuck handler answered"
    );
    let mut record = None;
    for _ in 0..100 {
        record = audit
            .records()
            .into_iter()
            .find(|r| r["method"] == "tools/call");
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let record = record.expect("the dropped request was audited");
    assert_eq!(record["outcome"], "cancelled");
    assert_eq!(record["target"], "slow");
    assert_eq!(record["correlation_id"], 7);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tasks_answer_only_to_the_identity_that_created_them() {
    use mcp_security::authn::{ApiKeyAuthenticator, ApiKeyEntry};
    let audit = Arc::new(MemorySink::new());
    let layer = SecurityLayer::builder()
        .authenticator(ApiKeyAuthenticator::new([
            ApiKeyEntry::from_key("alice", "key-a"),
            ApiKeyEntry::from_key("mallory", "key-m"),
        ]))
        .authorizer(authorize_fn(|_: &Identity, _: &Action<'_>, _: &Cx| {
            Decision::Allow(None)
        }))
        .audit_sink_arc(audit.clone())
        .build()
        .unwrap();
    let canary = Canary::default();
    let alice = SecureServer::new(canary.clone(), layer)
        .with_credentials(mcp_security::Credentials::api_key("key-a"));
    // Same server (same task table), another caller.
    let mallory = alice
        .clone()
        .with_credentials(mcp_security::Credentials::api_key("key-m"));

    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let (peer_tx, peer_rx) = tokio::sync::oneshot::channel();
    let served = alice.clone();
    tokio::spawn(async move {
        let running = served.serve(server_io).await.unwrap();
        let _ = peer_tx.send(running.peer().clone());
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    let peer = peer_rx.await.unwrap();
    let cx = |id: i64| RequestContext::new(NumberOrString::Number(id), peer.clone());

    alice
        .call_tool(CallToolRequestParams::new("make_task"), cx(1))
        .await
        .unwrap();
    let e = mallory
        .get_task(GetTaskParams::new("task-1"), cx(2))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_ref()),
        (ErrorCode::INVALID_PARAMS, "task not found")
    );
    assert!(
        mallory
            .cancel_task(CancelTaskParams::new("task-1"), cx(3))
            .await
            .is_err()
    );
    assert!(
        mallory
            .update_task(UpdateTaskParams::new("task-1", Default::default()), cx(4))
            .await
            .is_err()
    );
    assert!(
        !canary.seen.lock().unwrap().contains("get_task"),
        "mallory's call reached the handler"
    );
    // Alice reaches her task (the canary then answers with its own error).
    assert_eq!(
        alice
            .get_task(GetTaskParams::new("task-1"), cx(5))
            .await
            .unwrap_err()
            .message,
        "canary"
    );
    assert!(
        alice
            .cancel_task(CancelTaskParams::new("task-1"), cx(6))
            .await
            .is_ok()
    );
    // An unknown task reads the same as someone else's.
    assert_eq!(
        alice
            .get_task(GetTaskParams::new("nope"), cx(7))
            .await
            .unwrap_err()
            .message,
        "task not found"
    );

    let refused: Vec<_> = audit
        .records()
        .into_iter()
        .filter(|r| r["rule"] == "tasks.owner")
        .collect();
    assert_eq!(refused.len(), 4);
    assert!(
        refused
            .iter()
            .all(|r| r["outcome"] == "deny" && r["stage"] == "authorization")
    );
    assert_eq!(refused[0]["host"], "mallory");
    client.cancel().await.unwrap();
}

/// A layer that allows every method but hides the prompt `hidden` and everything under
/// `file:///secret/`.
fn hiding_layer(audit: Arc<MemorySink>) -> SecurityLayer {
    SecurityLayer::builder()
        .allow_anonymous()
        .authorizer(authorize_fn(|_: &Identity, a: &Action<'_>, _: &Cx| {
            let hidden = match a {
                Action::GetPrompt { name, .. } => *name == "hidden",
                Action::ReadResource { uri } => uri.starts_with("file:///secret/"),
                _ => false,
            };
            if hidden {
                Decision::Deny(mcp_security::Denial::new(
                    mcp_security::Stage::Authorization,
                    mcp_security::DenyKind::NotFound,
                    "hidden",
                ))
            } else {
                Decision::Allow(None)
            }
        }))
        .audit_sink_arc(audit)
        .build()
        .unwrap()
}

#[tokio::test]
async fn methods_that_name_a_prompt_or_resource_need_it_allowed_too() {
    let canary = Canary::default();
    let audit = Arc::new(MemorySink::new());
    let secure = SecureServer::new(canary.clone(), hiding_layer(audit.clone()));
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let (peer_tx, peer_rx) = tokio::sync::oneshot::channel();
    let served = secure.clone();
    tokio::spawn(async move {
        let running = served.serve(server_io).await.unwrap();
        let _ = peer_tx.send(running.peer().clone());
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    let peer = peer_rx.await.unwrap();
    let cx = |id: i64| RequestContext::new(NumberOrString::Number(2000 + id), peer.clone());
    let complete = |r: serde_json::Value| -> CompleteRequestParams {
        from(json!({"ref": r, "argument": {"name": "a", "value": "b"}}))
    };

    // Allowed method, hidden target: not found, and the handler never runs.
    let hidden = [
        secure
            .complete(
                complete(json!({"type": "ref/prompt", "name": "hidden"})),
                cx(1),
            )
            .await
            .map(|_| ()),
        secure
            .complete(
                complete(json!({"type": "ref/resource", "uri": "file:///secret/{name}"})),
                cx(2),
            )
            .await
            .map(|_| ()),
        secure
            .read_resource_directory(
                ReadResourceDirectoryRequestParams::new("file:///secret/"),
                cx(3),
            )
            .await
            .map(|_| ()),
        secure
            .get_skill(GetSkillRequestParams::new("file:///secret/SKILL.md"), cx(4))
            .await
            .map(|_| ()),
    ];
    for r in &hidden {
        let e = r.as_ref().expect_err("refused");
        assert_eq!(e.message, "not found", "{e:?}");
    }
    {
        let seen = canary.seen.lock().unwrap();
        for m in ["complete", "read_resource_directory", "get_skill"] {
            assert!(!seen.contains(m), "{m} reached the handler: {seen:?}");
        }
    }

    // Allowed targets reach the handler.
    secure
        .complete(
            complete(json!({"type": "ref/prompt", "name": "open"})),
            cx(5),
        )
        .await
        .unwrap();
    assert!(canary.seen.lock().unwrap().contains("complete"));
    client.cancel().await.unwrap();
    let refused = audit
        .records()
        .into_iter()
        .filter(|r| r["rule"] == "authorization.named_target")
        .count();
    assert_eq!(refused, 4);
}
