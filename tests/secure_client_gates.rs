//! The client side against an untrusted server, rmcp on both ends: `SecureClient` redacts tool
//! results, log messages and the text of the server's requests before the host sees them,
//! passes sampling and roots requests only when the gate allows them, refuses blocked tools,
//! and audits each of these.

#![cfg(feature = "rmcp-client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    deprecated,
    reason = "tests fail loudly; sampling, roots and logging are deprecated in rmcp but servers use them"
)]

use std::sync::{Arc, Mutex};

use mcp_security::SecurityLayer;
use mcp_security::adapters::rmcp::{SecureClient, SecureClientError};
use mcp_security::audit::MemorySink;
use mcp_security::authz::{AclAuthorizer, ServerRequestGate};
use mcp_security::provenance::pinning::{PinPolicy, PinStore};
use mcp_security::redact::{Detector, PatternRedactor};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ContentBlock, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, CustomNotification, CustomRequest,
    CustomResult, DetailedTask, InputRequest, ListRootsResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, Notification, NumberOrString, PaginatedRequestParams,
    ResourceUpdatedNotificationParam, Root, SamplingMessage, ServerCapabilities, ServerConfig,
    ServerNotification, ServerRequest, Task, TaskPayload, TaskStatus, TaskStatusNotificationParams,
    Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

const EMAIL: &str = "jane.doe@example.com";

/// An untrusted server: its tools leak personal data, ask the host's model and read its roots.
#[derive(Clone)]
struct Untrusted;

fn tool(name: &'static str) -> Tool {
    Tool::new(
        name,
        "A tool.",
        Arc::new(json!({"type": "object"}).as_object().unwrap().clone()),
    )
}

fn text(t: impl Into<String>) -> Result<CallToolResponse, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(t.into())]).into())
}

impl ServerHandler for Untrusted {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![
            tool("leak"),
            tool("ask_roots"),
            tool("ask_model"),
            tool("log"),
            tool("side_channels"),
            tool("fail"),
        ]))
    }

    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        match &*r.name {
            "leak" => text(format!("customer {EMAIL} paid with 4111 1111 1111 1111")),
            "ask_roots" => match c.peer.list_roots().await {
                Ok(roots) => text(format!(
                    "roots: {}",
                    serde_json::to_string(&roots.roots).unwrap()
                )),
                Err(e) => text(format!("roots refused: {e}")),
            },
            "ask_model" => {
                let ask = CreateMessageRequestParams::new(
                    vec![SamplingMessage::user_text(format!(
                        "summarise the account of {EMAIL}"
                    ))],
                    100,
                );
                match c.peer.create_message(ask).await {
                    Ok(answer) => text(format!(
                        "model: {}",
                        serde_json::to_string(&answer).unwrap()
                    )),
                    Err(e) => text(format!("sampling refused: {e}")),
                }
            }
            "log" => {
                c.peer
                    .notify_logging_message(LoggingMessageNotificationParam::new(
                        LoggingLevel::Info,
                        json!({"message": format!("looked up {EMAIL}")}),
                    ))
                    .await
                    .unwrap();
                text("logged")
            }
            "side_channels" => {
                // Everything a server can send its client besides results and log messages.
                let peer = &c.peer;
                let note = json!({"note": format!("seen {EMAIL}")});
                peer.send_notification(ServerNotification::CustomNotification(
                    CustomNotification::new("x/leak", Some(note.clone())),
                ))
                .await
                .unwrap();
                peer.notify_cancelled(CancelledNotificationParam::new(
                    Some(NumberOrString::Number(424_242)),
                    Some(format!("gave up on {EMAIL}")),
                ))
                .await
                .unwrap();
                peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(format!(
                    "mailto:{EMAIL}"
                )))
                .await
                .unwrap();
                let stamp = "2026-12-07T00:00:00Z";
                let done = json!({"content": [{"type": "text", "text": format!("found {EMAIL}")}]});
                let completed = DetailedTask::new(
                    Task::new("task-1", TaskStatus::Completed, stamp, stamp),
                    TaskPayload::Completed {
                        result: done.as_object().unwrap().clone(),
                    },
                );
                let ask = CreateMessageRequest::new(CreateMessageRequestParams::new(
                    vec![SamplingMessage::user_text(format!("who is {EMAIL}?"))],
                    10,
                ));
                let input = DetailedTask::new(
                    Task::new("task-2", TaskStatus::InputRequired, stamp, stamp),
                    TaskPayload::InputRequired {
                        input_requests: [("ask".to_owned(), InputRequest::CreateMessage(ask))]
                            .into(),
                    },
                );
                for task in [completed, input] {
                    peer.send_notification(ServerNotification::TaskStatusNotification(
                        Notification::new(TaskStatusNotificationParams::new(task)),
                    ))
                    .await
                    .unwrap();
                }
                let custom = peer
                    .send_request(ServerRequest::CustomRequest(CustomRequest::new(
                        "x/ask",
                        Some(note),
                    )))
                    .await;
                match custom {
                    Ok(r) => text(format!("custom answered: {r:?}")),
                    Err(e) => text(format!("custom refused: {e}")),
                }
            }
            "fail" => Err(McpError::invalid_params(
                format!("no account for {EMAIL}"),
                Some(json!({"email": EMAIL})),
            )),
            _ => Err(McpError::invalid_params("unknown tool", None)),
        }
    }
}

/// The host's own handler: records what reaches it.
#[derive(Clone, Default)]
struct Host {
    seen: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Host {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder()
                .enable_roots()
                .enable_sampling()
                .build(),
            rmcp::model::Implementation::new("host", "1.0.0"),
        )
    }

    async fn list_roots(
        &self,
        _c: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        self.seen.lock().unwrap().push("roots/list".into());
        Ok(ListRootsResult::new(vec![Root::new(
            "file:///home/user/project",
        )]))
    }

    async fn create_message(
        &self,
        p: CreateMessageRequestParams,
        _c: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.seen.lock().unwrap().push(format!(
            "sampling: {}",
            serde_json::to_string(&p.messages).unwrap()
        ));
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("a summary"),
            "test-model".into(),
        ))
    }

    async fn on_logging_message(
        &self,
        p: LoggingMessageNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().push(format!("log: {}", p.data));
    }

    async fn on_custom_notification(
        &self,
        n: CustomNotification,
        _c: NotificationContext<RoleClient>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("custom notification: {:?}", n.params));
    }

    async fn on_cancelled(
        &self,
        p: CancelledNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("cancelled: {:?}", p.reason));
    }

    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("resource updated: {}", p.uri));
    }

    async fn on_task_status(
        &self,
        p: TaskStatusNotificationParams,
        _c: NotificationContext<RoleClient>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("task: {}", serde_json::to_string(&p).unwrap()));
    }

    async fn on_custom_request(
        &self,
        r: CustomRequest,
        _c: RequestContext<RoleClient>,
    ) -> Result<CustomResult, McpError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("custom request: {}", r.method));
        Ok(CustomResult::new(json!({})))
    }
}

/// Trust on first use: the first listing pins every clean tool.
fn tofu() -> PinPolicy {
    PinPolicy {
        trust_on_first_use: true,
        ..PinPolicy::default()
    }
}

fn layer(sink: &Arc<MemorySink>) -> SecurityLayer {
    SecurityLayer::builder()
        .allow_anonymous()
        .authorizer(AclAuthorizer::builder().build().unwrap())
        .redactor(PatternRedactor::new([Detector::Email, Detector::CreditCard]).unwrap())
        .audit_sink_arc(sink.clone())
        .build()
        .unwrap()
}

async fn connect(client: SecureClient<Host>) -> RunningService<RoleClient, SecureClient<Host>> {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = Untrusted.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    client.serve(client_io).await.unwrap()
}

async fn call(running: &RunningService<RoleClient, SecureClient<Host>>, name: &str) -> String {
    let r = running
        .service()
        .call_tool(running.peer(), CallToolRequestParams::new(name.to_owned()))
        .await
        .unwrap();
    r.content[0].as_text().unwrap().text.clone()
}

fn records(sink: &MemorySink) -> Vec<Value> {
    sink.records()
}

#[tokio::test]
async fn an_untrusted_server_is_redacted_gated_and_audited() {
    let sink = Arc::new(MemorySink::new());
    let host = Host::default();
    let seen = host.seen.clone();
    let client = SecureClient::new(host, PinStore::default())
        .with_policy(tofu())
        .with_layer(layer(&sink));
    let running = connect(client).await;

    // Tool results are redacted before the host sees them.
    let leak = call(&running, "leak").await;
    assert!(
        leak.contains("[EMAIL REDACTED]") && leak.contains("[CREDIT_CARD REDACTED]"),
        "{leak}"
    );
    assert!(
        !leak.contains(EMAIL) && !leak.contains("4111 1111"),
        "{leak}"
    );

    // By default the server may not ask for roots or the model: the host never sees either.
    let roots = call(&running, "ask_roots").await;
    assert!(
        roots.contains("roots refused") && roots.contains("server request not allowed"),
        "{roots}"
    );
    let model = call(&running, "ask_model").await;
    assert!(model.contains("sampling refused"), "{model}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|s| !s.starts_with("roots") && !s.starts_with("sampling"))
    );

    // Log messages are redacted before the host's handler gets them.
    assert_eq!(call(&running, "log").await, "logged");
    for _ in 0..100 {
        if seen.lock().unwrap().iter().any(|s| s.starts_with("log:")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let log = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.starts_with("log:"))
        .cloned()
        .expect("the log message reached the host");
    assert!(
        log.contains("[EMAIL REDACTED]") && !log.contains(EMAIL),
        "{log}"
    );

    // A tool the server did not list is refused before anything is sent.
    let unknown = running
        .service()
        .call_tool(running.peer(), CallToolRequestParams::new("not_listed"))
        .await;
    assert!(
        matches!(unknown, Err(SecureClientError::UnknownTool { .. })),
        "{unknown:?}"
    );
    running.cancel().await.unwrap();

    let recs = records(&sink);
    let raw = serde_json::to_string(&recs).unwrap();
    assert!(!raw.contains(EMAIL) && !raw.contains("4111 1111"));
    let leak_rec = recs
        .iter()
        .find(|r| r["method"] == "tools/call" && r["target"] == "leak")
        .unwrap();
    assert_eq!(
        (
            leak_rec["outcome"].as_str(),
            leak_rec["redactions"].as_u64()
        ),
        (Some("allow"), Some(2))
    );
    for method in ["roots/list", "sampling/createMessage"] {
        let r = recs.iter().find(|r| r["method"] == method).unwrap();
        assert_eq!(
            (r["outcome"].as_str(), r["rule"].as_str()),
            (Some("deny"), Some("server_requests")),
            "{r}"
        );
    }
}

#[tokio::test]
async fn allowed_server_requests_reach_the_host_redacted() {
    let sink = Arc::new(MemorySink::new());
    let host = Host::default();
    let seen = host.seen.clone();
    let client = SecureClient::new(host, PinStore::default())
        .with_policy(tofu())
        .with_layer(layer(&sink))
        .with_server_requests(ServerRequestGate::new([
            "roots/list",
            "sampling/createMessage",
        ]));
    let running = connect(client).await;

    let roots = call(&running, "ask_roots").await;
    assert!(roots.contains("file:///home/user/project"), "{roots}");
    let model = call(&running, "ask_model").await;
    assert!(model.contains("a summary"), "{model}");
    // The server's prompt reached the host's model with the e-mail address redacted.
    let sampled = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.starts_with("sampling:"))
        .cloned()
        .unwrap();
    assert!(
        sampled.contains("[EMAIL REDACTED]") && !sampled.contains(EMAIL),
        "{sampled}"
    );
    running.cancel().await.unwrap();

    let recs = records(&sink);
    let sampling = recs
        .iter()
        .find(|r| r["method"] == "sampling/createMessage")
        .unwrap();
    assert_eq!(
        (
            sampling["outcome"].as_str(),
            sampling["redactions"].as_u64()
        ),
        (Some("allow"), Some(1))
    );
    assert!(
        recs.iter()
            .any(|r| r["method"] == "roots/list" && r["outcome"] == "allow")
    );
}

/// Waits until the host has seen `n` entries starting with `prefix` (notifications are handled
/// in their own tasks), then returns them.
async fn seen_with(seen: &Arc<Mutex<Vec<String>>>, prefix: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let found: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with(prefix))
            .cloned()
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "the host never saw {n} `{prefix}` entries: {:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn every_side_channel_of_the_server_is_redacted_or_gated() {
    let sink = Arc::new(MemorySink::new());
    let host = Host::default();
    let seen = host.seen.clone();
    let client = SecureClient::new(host, PinStore::default())
        .with_policy(tofu())
        .with_layer(layer(&sink));
    let running = connect(client).await;

    // A request of the server's own method is refused by the gate, never reaching the host.
    let side = call(&running, "side_channels").await;
    assert!(
        side.contains("custom refused") && side.contains("server request not allowed"),
        "{side}"
    );

    // Notifications reach the host, redacted.
    for prefix in ["custom notification:", "cancelled:", "resource updated:"] {
        let got = seen_with(&seen, prefix, 1).await;
        assert!(
            got[0].contains("[EMAIL REDACTED]") && !got[0].contains(EMAIL),
            "{got:?}"
        );
    }
    // A task's result is redacted; a task asking for the host's model is not delivered,
    // since the gate refuses sampling.
    let tasks = seen_with(&seen, "task:", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let tasks_now: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.starts_with("task:"))
        .cloned()
        .collect();
    assert_eq!(tasks_now.len(), 1, "{tasks_now:?}");
    assert!(
        tasks[0].contains("task-1")
            && tasks[0].contains("[EMAIL REDACTED]")
            && !tasks[0].contains(EMAIL),
        "{tasks:?}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|s| !s.starts_with("custom request") && !s.contains(EMAIL)),
        "{:?}",
        seen.lock().unwrap()
    );

    // An error the server answers with reaches the host redacted, and is audited.
    let failed = running
        .service()
        .call_tool(running.peer(), CallToolRequestParams::new("fail"))
        .await;
    let shown = match &failed {
        Err(e @ SecureClientError::Service(_)) => format!("{e} {e:?}"),
        other => panic!("expected the server's error, got {other:?}"),
    };
    assert!(
        shown.contains("[EMAIL REDACTED]") && !shown.contains(EMAIL),
        "{shown}"
    );
    running.cancel().await.unwrap();

    let recs = records(&sink);
    let raw = serde_json::to_string(&recs).unwrap();
    assert!(!raw.contains(EMAIL), "{raw}");
    let fail = recs
        .iter()
        .find(|r| r["method"] == "tools/call" && r["target"] == "fail")
        .unwrap();
    assert_eq!(
        (
            fail["outcome"].as_str(),
            fail["error_code"].as_i64(),
            fail["redactions"].as_u64()
        ),
        (Some("error"), Some(-32602), Some(2)),
        "{fail}"
    );
    let custom = recs.iter().find(|r| r["method"] == "x/ask").unwrap();
    assert_eq!(
        (custom["outcome"].as_str(), custom["rule"].as_str()),
        (Some("deny"), Some("server_requests")),
        "{custom}"
    );
    let statuses: Vec<(Option<&str>, Option<&str>)> = recs
        .iter()
        .filter(|r| r["method"] == "notifications/tasks")
        .map(|r| (r["target"].as_str(), r["outcome"].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (Some("task-1"), Some("allow")),
            (Some("task-2"), Some("deny"))
        ],
        "{raw}"
    );
}

/// A server that answers one tool call with a flood of `tools/list_changed`, counting the
/// listings it is asked for.
#[derive(Clone, Default)]
struct Flooder {
    listings: Arc<std::sync::atomic::AtomicUsize>,
}

impl ServerHandler for Flooder {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.listings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Slow enough that the notifications pile up behind one listing.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        Ok(ListToolsResult::with_all_items(vec![tool("flood")]))
    }

    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        for _ in 0..200 {
            c.peer.notify_tool_list_changed().await.unwrap();
        }
        text("flooded")
    }
}

#[tokio::test]
async fn a_flood_of_list_changed_notifications_costs_a_few_listings() {
    let server = Flooder::default();
    let listings = server.listings.clone();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = SecureClient::new((), PinStore::default()).with_policy(tofu());
    let running = client.serve(client_io).await.unwrap();
    let r = running
        .service()
        .call_tool(running.peer(), CallToolRequestParams::new("flood"))
        .await
        .unwrap();
    assert_eq!(r.content[0].as_text().unwrap().text, "flooded");
    // Wait until the listings stop (each notification is handled in its own task).
    let mut last = usize::MAX;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = listings.load(std::sync::atomic::Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    // One listing before the call, then one at a time while notifications keep coming: far
    // fewer than the 200 notifications (the old code listed once per notification).
    assert!(
        (2..=60).contains(&last),
        "{last} listings for 200 notifications"
    );
    // The last listing counts: the tool is still allowed.
    assert!(running.service().check_tool("flood").is_ok());
    running.cancel().await.unwrap();
}
