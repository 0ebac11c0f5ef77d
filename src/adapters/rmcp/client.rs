//! [`SecureClient`]: the client side. Wraps any rmcp [`ClientHandler`] and gates the server's
//! tools: every listing (`tools/list`, and again on `notifications/tools/list_changed`) is
//! checked against the pinned definitions and scanned for poisoning
//! ([`pinning`](crate::provenance::pinning)); changed, new and poisoned tools are blocked by
//! default, and [`SecureClient::call_tool`] refuses a blocked tool before anything is sent.
//!
//! ```no_run
//! use mcp_security::adapters::rmcp::SecureClient;
//! use mcp_security::provenance::pinning::{PinPolicy, PinStore};
//! use rmcp::ServiceExt;
//! use rmcp::model::CallToolRequestParams;
//!
//! # async fn run(transport: tokio::io::DuplexStream) -> Result<(), Box<dyn std::error::Error>> {
//! let client = SecureClient::new((), PinStore::load("pins.json")?).with_pin_file("pins.json");
//! let mut reports = client.reports();
//! let running = client.serve(transport).await?;
//! let listed = running.service().list_tools(running.peer()).await?;
//! for blocked in listed.report.blocked() {
//!     eprintln!("blocked {}: {:?} {:?}", blocked.name, blocked.status, blocked.findings);
//! }
//! let result = running
//!     .service()
//!     .call_tool(running.peer(), CallToolRequestParams::new("add"))
//!     .await?;
//! // Later listings (after `tools/list_changed`) arrive on `reports`.
//! reports.changed().await?;
//! # Ok(())
//! # }
//! ```

// Sampling, roots and logging are deprecated by SEP-2577, but servers still use them: the
// wrapper must forward them, or the inner handler would silently stop receiving them.
#![allow(
    deprecated,
    reason = "forwards every ClientHandler method, deprecated ones included"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rmcp::model::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, CancelledNotificationParam, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, CustomNotification, CustomRequest,
    CustomResult, ElicitRequestParams, ElicitResult, ListRootsResult,
    LoggingMessageNotificationParam, ProgressNotificationParam, ResourceUpdatedNotificationParam,
    SubscriptionsAcknowledgedNotificationParams, TaskStatusNotificationParams, Tool,
};
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, RoleClient};
use rmcp::{ClientHandler, ErrorData as McpError, Peer};
use tokio::sync::watch;

use crate::authz::ServerRequestGate;
use crate::context::Transport;
use crate::decision::{Denial, DenyKind, RuleId, Stage};
use crate::layer::SecurityLayer;
use crate::provenance::pinning::{PinError, PinPolicy, PinReport, PinStore};

/// Why a [`SecureClient`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecureClientError {
    /// The tool is blocked: changed since it was pinned, new, or poisoned.
    #[error("tool `{tool}` is blocked by tool pinning")]
    ToolBlocked {
        /// The tool.
        tool: String,
    },
    /// The server did not list the tool.
    #[error("tool `{tool}` is not listed by the server")]
    UnknownTool {
        /// The tool.
        tool: String,
    },
    /// The MCP request failed.
    #[error("mcp request failed: {0}")]
    Service(#[from] rmcp::service::ServiceError),
    /// The pin file could not be written.
    #[error(transparent)]
    Pins(#[from] PinError),
    /// The layer refused to pass the answer on (its audit record could not be written and the
    /// policy fails closed).
    #[error("refused: {reason}")]
    Refused {
        /// The denial's reason.
        reason: String,
    },
}

/// The allowed tools of one listing, and the full report.
#[derive(Debug, Clone)]
pub struct ToolList {
    /// The tools that may be used (blocked ones are left out).
    pub tools: Vec<Tool>,
    /// What was checked and what was blocked.
    pub report: Arc<PinReport>,
}

#[derive(Debug)]
struct GuardState {
    pins: PinStore,
    /// name -> allowed; a name absent here was not in the last listing.
    listed: HashMap<String, bool>,
    listed_once: bool,
}

/// What a [`SecureClient`] is configured with (set by its builders before it is served).
#[derive(Debug, Clone, Default)]
struct Settings {
    policy: PinPolicy,
    pin_file: Option<PathBuf>,
    /// Redaction and audit of what the server sends; none without a layer.
    layer: Option<SecurityLayer>,
    /// Which server-to-client requests reach the inner handler.
    gate: ServerRequestGate,
}

#[derive(Debug)]
struct Guard {
    settings: Settings,
    state: Mutex<GuardState>,
    reports: watch::Sender<Option<Arc<PinReport>>>,
}

/// A client handler wrapper for hosts that use servers they do not trust: it pins tool
/// definitions, passes the server's own requests (sampling, elicitation, roots) to the inner
/// handler only when a [`ServerRequestGate`] allows them (only `ping` by default), and, with a
/// [`SecurityLayer`] ([`with_layer`](Self::with_layer)), redacts what the server sends (tool
/// results, log and progress messages, the text of its requests) before the host sees it and
/// audits every call, refusal and gate decision. Cloning shares the pins and state.
#[derive(Debug, Clone)]
pub struct SecureClient<H = ()> {
    inner: H,
    guard: Arc<Guard>,
}

impl<H: ClientHandler> SecureClient<H> {
    /// Wraps `inner`, checking tools against `pins` with the default [`PinPolicy`] (block
    /// changed, new and poisoned tools).
    pub fn new(inner: H, pins: PinStore) -> Self {
        SecureClient {
            inner,
            guard: Arc::new(Guard {
                settings: Settings::default(),
                state: Mutex::new(GuardState {
                    pins,
                    listed: HashMap::new(),
                    listed_once: false,
                }),
                reports: watch::channel(None).0,
            }),
        }
    }

    /// A fresh guard with the same pins and listing state (builders run before the client is
    /// served, so nothing else observes the old one).
    fn rebuild(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.guard.settings.clone();
        change(&mut settings);
        let state = {
            let s = self.guard.lock();
            GuardState {
                pins: s.pins.clone(),
                listed: s.listed.clone(),
                listed_once: s.listed_once,
            }
        };
        SecureClient {
            inner: self.inner,
            guard: Arc::new(Guard {
                settings,
                state: Mutex::new(state),
                reports: watch::channel(None).0,
            }),
        }
    }

    /// Uses `policy` instead of the default. Call before [`reports`](Self::reports).
    pub fn with_policy(self, policy: PinPolicy) -> Self {
        self.rebuild(|s| s.policy = policy)
    }

    /// Saves the pins to this file whenever trust on first use learns them. Call before
    /// [`reports`](Self::reports).
    pub fn with_pin_file(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.rebuild(|s| s.pin_file = Some(path))
    }

    /// Redacts what the server sends with `layer`'s redactor before the host sees it, and
    /// audits every tool call, refusal and server request decision to `layer`'s sink. The
    /// layer's authentication and authorization are not used: the server is not the caller
    /// here. Call before [`reports`](Self::reports).
    pub fn with_layer(self, layer: SecurityLayer) -> Self {
        self.rebuild(|s| s.layer = Some(layer))
    }

    /// Which requests the server may send the inner handler (`Policy::server_requests()` reads
    /// them from `[server_requests]`). Refused ones get a `-31403` error and never reach the
    /// inner handler. Call before [`reports`](Self::reports).
    pub fn with_server_requests(self, gate: ServerRequestGate) -> Self {
        self.rebuild(|s| s.gate = gate)
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The report of every listing, latest first: `None` until the first one.
    pub fn reports(&self) -> watch::Receiver<Option<Arc<PinReport>>> {
        self.guard.reports.subscribe()
    }

    /// The current pins.
    pub fn pins(&self) -> PinStore {
        self.guard.lock().pins.clone()
    }

    /// Lists every tool (all pages), checks the listing against the pins, and returns the
    /// allowed tools with the report.
    ///
    /// # Errors
    /// [`SecureClientError::Service`] when listing fails; [`SecureClientError::Pins`] when
    /// learned pins cannot be saved.
    pub async fn list_tools(&self, peer: &Peer<RoleClient>) -> Result<ToolList, SecureClientError> {
        let tools = peer.list_all_tools().await?;
        self.guard.apply(tools)
    }

    /// Calls a tool, after checking that the last listing allowed it (listing first if there
    /// was none). MRTR input requests are not driven here; use the tool list to gate calls
    /// made through `RunningService::call_tool` when you need them.
    ///
    /// # Errors
    /// [`SecureClientError::ToolBlocked`], [`SecureClientError::UnknownTool`], or the request's
    /// error.
    pub async fn call_tool(
        &self,
        peer: &Peer<RoleClient>,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, SecureClientError> {
        if !self.guard.lock().listed_once {
            self.list_tools(peer).await?;
        }
        let name = params.name.clone();
        if let Err(e) = self.check_tool(&name) {
            if let Some(layer) = &self.guard.settings.layer {
                let d = Denial::new(
                    Stage::Authorization,
                    DenyKind::Forbidden,
                    "tool blocked by tool pinning",
                )
                .with_rule(RuleId::from_static("tool_pinning"));
                // The call is refused either way; a failed record is counted by the layer.
                let _ = layer
                    .audit_from_server("tools/call", Some(&name), &host_context(), 0, Some(&d))
                    .await;
            }
            return Err(e);
        }
        let mut result = peer.call_tool(params).await?;
        if let Some(layer) = &self.guard.settings.layer {
            let redacted = redact_typed(layer, &mut result);
            let refused = redacted.is_none().then(unredactable);
            let audited = layer
                .audit_from_server(
                    "tools/call",
                    Some(&name),
                    &host_context(),
                    redacted.unwrap_or(0),
                    refused.as_ref(),
                )
                .await;
            if let Some(d) = refused.or(audited.err()) {
                return Err(SecureClientError::Refused {
                    reason: d.reason().to_owned(),
                });
            }
        }
        Ok(result)
    }

    /// Whether the last listing allowed `tool`.
    ///
    /// # Errors
    /// [`SecureClientError::ToolBlocked`] or [`SecureClientError::UnknownTool`].
    pub fn check_tool(&self, tool: &str) -> Result<(), SecureClientError> {
        match self.guard.lock().listed.get(tool) {
            Some(true) => Ok(()),
            Some(false) => Err(SecureClientError::ToolBlocked {
                tool: tool.to_owned(),
            }),
            None => Err(SecureClientError::UnknownTool {
                tool: tool.to_owned(),
            }),
        }
    }
}

/// The context of client-side audit records: the host's own process.
fn host_context() -> crate::RequestContext {
    crate::RequestContext::new(Transport::InProcess)
}

/// Redacts every string of a typed MCP value in place (through its JSON form); returns how
/// many values were replaced, or `None` when the value could not be taken apart or put back
/// together: it must then not be passed on, since it may still hold what redaction would have
/// removed. (rmcp's own types always survive the round trip.)
fn redact_typed<T: serde::Serialize + serde::de::DeserializeOwned>(
    layer: &SecurityLayer,
    value: &mut T,
) -> Option<u32> {
    let mut json = serde_json::to_value(&*value).ok()?;
    let report = layer.redact_value(&mut json);
    if report.is_empty() {
        return Some(0);
    }
    *value = serde_json::from_value(json).ok()?;
    Some(report.total())
}

/// The refusal of something from the server that could not be redacted (fail closed).
fn unredactable() -> Denial {
    Denial::new(
        Stage::Redaction,
        DenyKind::Unavailable,
        "could not be redacted",
    )
    .with_rule(RuleId::from_static("redaction"))
}

impl<H: ClientHandler> SecureClient<H> {
    /// Passes a server request on when the gate allows it (redacting its text), and refuses it
    /// otherwise; audits either way.
    async fn gated<P, R, F>(
        &self,
        method: &'static str,
        mut params: P,
        forward: F,
    ) -> Result<R, McpError>
    where
        P: serde::Serialize + serde::de::DeserializeOwned,
        F: AsyncFnOnce(P) -> Result<R, McpError>,
    {
        let settings = &self.guard.settings;
        let mut refused = (!settings.gate.permits(method)).then(|| settings.gate.denial());
        if let Some(layer) = &settings.layer {
            let mut redactions = 0;
            if refused.is_none() {
                match redact_typed(layer, &mut params) {
                    Some(n) => redactions = n,
                    None => refused = Some(unredactable()),
                }
            }
            let audited = layer
                .audit_from_server(method, None, &host_context(), redactions, refused.as_ref())
                .await;
            if let Err(d) = audited {
                refused = refused.or(Some(d));
            }
        }
        match refused {
            Some(d) => Err(McpError::new(
                ErrorCode(d.kind().code()),
                d.reason().to_owned(),
                None,
            )),
            None => forward(params).await,
        }
    }
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        // A panic while holding the lock leaves consistent data (plain inserts).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, tools: Vec<Tool>) -> Result<ToolList, SecureClientError> {
        let values: Vec<serde_json::Value> = tools
            .iter()
            .map(|t| serde_json::to_value(t).unwrap_or(serde_json::Value::Null))
            .collect();
        let (report, save) = {
            let mut state = self.lock();
            let was_empty = state.pins.is_empty();
            let report = state
                .pins
                .check_and_learn(values.iter(), &self.settings.policy);
            let learned = was_empty && !state.pins.is_empty();
            state.listed = report
                .tools
                .iter()
                .map(|t| (t.name.clone(), !t.blocked))
                .collect();
            state.listed_once = true;
            (Arc::new(report), learned.then(|| state.pins.clone()))
        };
        if let (Some(pins), Some(path)) = (save, &self.settings.pin_file) {
            pins.save(path)?;
        }
        let allowed: Vec<Tool> = tools
            .into_iter()
            .zip(&report.tools)
            .filter(|(_, c)| !c.blocked)
            .map(|(t, _)| t)
            .collect();
        self.reports.send_replace(Some(Arc::clone(&report)));
        Ok(ToolList {
            tools: allowed,
            report,
        })
    }
}

impl<H: ClientHandler> ClientHandler for SecureClient<H> {
    fn ping(
        &self,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.gated("sampling/createMessage", params, async |p| {
            self.inner.create_message(p, context).await
        })
        .await
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        self.gated("roots/list", (), async |()| {
            self.inner.list_roots(context).await
        })
        .await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        self.gated("elicitation/create", request, async |r| {
            self.inner.create_elicitation(r, context).await
        })
        .await
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        params: CancelledNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(params, context)
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // A message that could not be redacted is not delivered.
        if let Some(layer) = &self.guard.settings.layer
            && redact_typed(layer, &mut params).is_none()
        {
            return;
        }
        self.inner.on_progress(params, context).await;
    }

    async fn on_logging_message(
        &self,
        mut params: LoggingMessageNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // A message that could not be redacted is not delivered.
        if let Some(layer) = &self.guard.settings.layer
            && redact_typed(layer, &mut params).is_none()
        {
            return;
        }
        self.inner.on_logging_message(params, context).await;
    }

    fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_resource_updated(params, context)
    }

    fn on_resource_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_resource_list_changed(context)
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        // rmcp runs each notification in its own task, so listing here cannot deadlock.
        match context.peer.list_all_tools().await {
            Ok(tools) => {
                // A pin file that cannot be saved is reported by the next list_tools call;
                // the gate itself is already updated.
                let _ = self.guard.apply(tools);
            }
            Err(_) => {
                // Cannot see the new definitions: block everything until a listing works.
                let mut state = self.guard.lock();
                for allowed in state.listed.values_mut() {
                    *allowed = false;
                }
            }
        }
        self.inner.on_tool_list_changed(context).await;
    }

    fn on_prompt_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_prompt_list_changed(context)
    }

    fn on_subscriptions_acknowledged(
        &self,
        params: SubscriptionsAcknowledgedNotificationParams,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_subscriptions_acknowledged(params, context)
    }

    fn on_task_status(
        &self,
        params: TaskStatusNotificationParams,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_task_status(params, context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ClientConfig {
        self.inner.get_info()
    }
}
